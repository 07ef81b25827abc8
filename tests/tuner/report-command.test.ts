// `tuneloop report` as an operator runs it (the command function with captured output): the default week is the last
// complete one, paths in the config file are relative to it, --out and --week override, a second run changes
// nothing, and a bad week, a missing store or a bad flag exit non-zero with a clear message.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { reportCommand, type ReportIo } from '../../src/tuner/report/command.js';
import { TunerStore } from '../../src/tuner/store.js';
import { fillStore } from './report-fixtures.js';

function io(now = Date.UTC(2026, 2, 10, 9)): ReportIo & { out: () => string; err: () => string } {
  let out = '',
    err = '';
  const sink = (f: (s: string) => void) =>
    new Writable({
      write(c, _e, cb) {
        f(String(c));
        cb();
      },
    });
  return {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    env: {},
    now: () => now,
    out: () => out,
    err: () => err,
  };
}

describe('tuneloop report', () => {
  let dir: string;
  let config: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-report-cli-'));
    const clock = { ms: 0 };
    const store = TunerStore.open(join(dir, 'state', 'tuner.db'), { now: () => clock.ms });
    fillStore(store, clock);
    store.close();
    config = join(dir, 'tuneloop.yaml');
    writeFileSync(config, 'tuner:\n  storePath: state/tuner.db\n  reportsDir: weekly\n  timezone: UTC\n  serviceName: shop-llm\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the last complete week by default, relative to the config file, and prints the paths', async () => {
    const x = io();
    expect(await reportCommand(['--config', config], x), x.err()).toBe(0);
    const paths = x.out().trim().split('\n').slice(1);
    expect(paths).toEqual(['md', 'html', 'json'].map((f) => join(dir, 'weekly', `2026-W10.${f}`)));
    for (const p of paths) expect(existsSync(p)).toBe(true);
    expect(x.out()).toMatch(/^2026-W10 \(2026-03-02 00:00 – 2026-03-09 00:00 UTC\): 120 windows, 2400 requests\n/);
    expect(JSON.parse(readFileSync(paths[2]!, 'utf8'))).toMatchObject({ week: '2026-W10', service: 'shop-llm' });
    // Again: nothing to rewrite.
    const y = io();
    expect(await reportCommand(['--config', config], y)).toBe(0);
    expect(y.out()).toContain('; unchanged');
  });

  it('takes --week and --out', async () => {
    const out = join(dir, 'elsewhere');
    const x = io();
    expect(await reportCommand(['--config', config, '--week', '2026-W11', '--out', out], x), x.err()).toBe(0);
    expect(existsSync(join(out, '2026-W11.html'))).toBe(true);
    expect(readFileSync(join(out, '2026-W11.md'), 'utf8')).toContain('1. KV-cache pressure');
  });

  it('says so for a week with no data, without failing', async () => {
    const x = io();
    expect(await reportCommand(['--config', config, '--week', '2026-W30', '--out', join(dir, 'empty')], x)).toBe(0);
    expect(x.out()).toContain('0 windows, 0 requests, not enough data to rank bottlenecks');
  });

  it('exits 2 for a bad week or a missing store, 1 for a bad flag', async () => {
    let x = io();
    expect(await reportCommand(['--config', config, '--week', '2025-W53'], x)).toBe(2);
    expect(x.err()).toContain("--week: '2025-W53': 2025 has ISO weeks 01 to 52");
    x = io();
    expect(await reportCommand(['--config', config, '--week', 'last'], x)).toBe(2);
    expect(x.err()).toContain('expected YYYY-Www');
    x = io();
    const missing = join(dir, 'nowhere.yaml');
    writeFileSync(missing, 'tuner:\n  storePath: no/such/tuner.db\n');
    expect(await reportCommand(['--config', missing], x)).toBe(2);
    expect(x.err()).toContain(`no tuner store at ${join(dir, 'no', 'such', 'tuner.db')}`);
    expect(existsSync(join(dir, 'no'))).toBe(false); // nothing was created
    x = io();
    expect(await reportCommand(['--weeks', '2026-W10'], x)).toBe(1);
    expect(x.err()).toContain('usage:');
    x = io();
    expect(await reportCommand(['--config', join(dir, 'absent.yaml')], x)).toBe(2);
    expect(x.err()).toContain('config:');
  });

  it('is a subcommand of the tuneloop CLI', async () => {
    const x = io();
    expect(await reportCommand(['--help'], x)).toBe(0);
    expect(x.out()).toContain('tuneloop report [--config FILE] [--week YYYY-Www] [--out DIR]');
    const write = process.stderr.write.bind(process.stderr);
    let err = '';
    process.stderr.write = (s: string) => ((err += s), true);
    try {
      expect(await main(['report', '--config', config, '--week', 'nope'])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(err).toContain("'nope' is not an ISO week");
  });
});
