// `tuneloop report`: write one week's report from the tuner store on demand (the cron job writes the last complete
// week every Monday). Reads the store at tuner.storePath, never creates one.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../../config/load.js';
import { IsoWeekError, formatIsoWeek, lastCompleteIsoWeek, parseIsoWeek } from './iso-week.js';
import { reportOptionsFromConfig, writeWeeklyReport } from './writer.js';
import { TunerStore } from '../store.js';

export const REPORT_USAGE = `usage:
  tuneloop report [--config FILE] [--week YYYY-Www] [--out DIR]
  Writes the weekly performance report (DIR/YYYY-Www.md, .html and .json) from the tuner store (tuner.storePath).
  Default week: the last complete ISO week in tuner.timezone; default DIR: tuner.reportsDir ("reports" under the
  working directory). Regenerating a week from the same data leaves its files unchanged.
`;

export interface ReportIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  now: () => number;
}

/** Exit codes: 0 written, 1 usage error, 2 bad week, bad config or no store. */
export async function reportCommand(argv: string[], io: ReportIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, now: Date.now }): Promise<number> {
  let values: { config?: string; week?: string; out?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, week: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    io.stderr.write(`tuneloop report: ${(e as Error).message}\n${REPORT_USAGE}`);
    return 1;
  }
  if (values.help) {
    io.stdout.write(REPORT_USAGE);
    return 0;
  }
  let config;
  try {
    config = loadConfig({ ...(values.config !== undefined ? { file: values.config } : {}), env: io.env });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.stderr.write(`tuneloop report: config: ${e.message}\n`);
    return 2;
  }
  let week: string;
  try {
    week = values.week !== undefined ? formatIsoWeek(parseIsoWeek(values.week)) : formatIsoWeek(lastCompleteIsoWeek(io.now(), config.tuner.timezone));
  } catch (e) {
    if (!(e instanceof IsoWeekError)) throw e;
    io.stderr.write(`tuneloop report: --week: ${e.message}\n`);
    return 2;
  }
  const storePath = config.tuner.storePath;
  if (!existsSync(storePath)) {
    io.stderr.write(
      `tuneloop report: no tuner store at ${resolve(storePath)}: set tuner.storePath (--config FILE, or ` +
        'TUNELOOP_TUNER_STORE_PATH) to the file `tuneloop serve` writes\n',
    );
    return 2;
  }
  let store: TunerStore;
  try {
    store = TunerStore.open(storePath);
  } catch (e) {
    io.stderr.write(`tuneloop report: tuner store ${storePath}: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    const opts = { ...reportOptionsFromConfig(config), week, ...(values.out !== undefined ? { dir: values.out } : {}) };
    const written = await writeWeeklyReport(store, opts, io.now());
    const r = written.report;
    io.stdout.write(
      `${r.week} (${r.period.start} – ${r.period.end} ${r.period.timezone}): ${r.coverage.windows} windows, ` +
        `${r.traffic.requests} requests${r.coverage.enough ? '' : ', not enough data to rank bottlenecks'}` +
        `${written.rewritten.length === 0 ? '; unchanged' : ''}\n`,
    );
    for (const f of ['md', 'html', 'json'] as const) io.stdout.write(`${written.paths[f]}\n`);
    return 0;
  } finally {
    store.close();
  }
}
