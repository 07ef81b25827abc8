// Issue 9's "kill -9 during a report write": `tuneloop report` in a child process SIGKILLs itself halfway through a
// report file's temporary copy (fault point report.writing). The week's files from the earlier run must stay whole
// and unchanged, the torn temporary file must never be served, and the next run must write the new report and
// remove the dead writer's leftover.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportCommand, type ReportIo } from '../../src/tuner/report/command.js';
import { TunerStore } from '../../src/tuner/store.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { fillStore } from './report-fixtures.js';

const WEEK = '2026-W10';
const NOW = Date.UTC(2026, 2, 10, 9);

function io(): ReportIo & { err: () => string } {
  let err = '';
  const sink = (f: (s: string) => void) =>
    new Writable({
      write(c, _e, cb) {
        f(String(c));
        cb();
      },
    });
  return { stdout: sink(() => undefined), stderr: sink((s) => (err += s)), env: {}, now: () => NOW, err: () => err };
}

/** `tuneloop report` as its own process; resolves with how it ended. */
function reportChild(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const code = `import('./src/tuner/report/command.ts').then((m) => m.reportCommand(${JSON.stringify(args)})).then((c) => process.exit(c))`;
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', code], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (c, s) => resolve({ code: c, signal: s, stderr })));
}

describe('kill -9 during a report write', () => {
  let dir: string;
  const config = (service: string): string => {
    const file = join(dir, `${service}.yaml`);
    writeFileSync(file, `tuner:\n  storePath: state/tuner.db\n  reportsDir: weekly\n  timezone: UTC\n  serviceName: ${service}\n`);
    return file;
  };
  const files = (): Record<string, string> => Object.fromEntries(['md', 'html', 'json'].map((f) => [f, readFileSync(join(dir, 'weekly', `${WEEK}.${f}`), 'utf8')]));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-report-crash-'));
    const clock = { ms: 0 };
    const store = TunerStore.open(join(dir, 'state', 'tuner.db'), { now: () => clock.ms });
    fillStore(store, clock);
    store.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('leaves the previous files whole, and the next run replaces them and clears the torn leftover', async () => {
    const x = io();
    expect(await reportCommand(['--config', config('shop-llm'), '--week', WEEK], x), x.err()).toBe(0);
    const before = files();
    expect(JSON.parse(before['json']!)).toMatchObject({ week: WEEK, service: 'shop-llm' });

    // The same week under another service name: every file's content changes, so the writer must replace them.
    const killed = await reportChild(['--config', config('shop-llm-eu'), '--week', WEEK], { TUNELOOP_FAULTS: 'report.writing' });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    // It died inside a write: a torn temporary file is there, and the real files are byte for byte the earlier ones.
    const leftovers = readdirSync(join(dir, 'weekly')).filter((n) => n.endsWith('.tmp'));
    expect(leftovers).toHaveLength(1);
    const torn = readFileSync(join(dir, 'weekly', leftovers[0]!), 'utf8');
    expect(torn.length).toBeGreaterThan(0);
    expect(torn.length).toBeLessThan(before[leftovers[0]!.split('.')[1]!]!.length);
    expect(files()).toEqual(before);
    expect(() => JSON.parse(files()['json']!)).not.toThrow();

    // Restart: the report is written in full, the dead writer's leftover is gone at once (its pid is not running).
    const y = io();
    expect(await reportCommand(['--config', config('shop-llm-eu'), '--week', WEEK], y), y.err()).toBe(0);
    const after = files();
    expect(JSON.parse(after['json']!)).toMatchObject({ week: WEEK, service: 'shop-llm-eu' });
    expect(after['md']).toContain('shop-llm-eu');
    expect(after['html']).toMatch(/^<!DOCTYPE html>[\s\S]*<\/html>\n?$/);
    expect(readdirSync(join(dir, 'weekly')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(existsSync(join(dir, 'weekly', leftovers[0]!))).toBe(false);
    // The store's index names the week once, from the completed run.
    const store = TunerStore.open(join(dir, 'state', 'tuner.db'));
    try {
      expect(store.reports().filter((r) => r.week === WEEK)).toHaveLength(1);
    } finally {
      store.close();
    }
  });
});
