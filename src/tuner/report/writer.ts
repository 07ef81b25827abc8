// Writing a week's report: `<dir>/<YYYY>-W<ww>.md`, `.html` and the `.json` twin, and its row in the store's report
// index. Each file is written to a temporary name in the same folder, fsynced and renamed over the old one, so a
// kill -9 at any moment leaves either the previous file or the new one, never half of one. The files carry no
// generation time (that is in the store's index), so regenerating a week from the same store data rewrites nothing:
// a file whose content is unchanged is left alone.
import { readdirSync, statSync, unlinkSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { TuneloopConfig } from '../../config/schema.js';
import { faultPoint } from '../../faults.js';
import { formatIsoWeek, parseIsoWeek, previousIsoWeek } from './iso-week.js';
import { buildWeeklyReport, type BuildReportOptions, type ReportStore } from './build.js';
import { renderReportCharts } from './charts.js';
import { renderHtml, renderMarkdown } from './render.js';
import { REPORT_SCHEMA, type WeeklyReport } from './types.js';
import type { ReportRecord, TunerStore } from '../store.js';

export type ReportFormat = 'json' | 'md' | 'html';
export const REPORT_FORMATS: readonly ReportFormat[] = ['json', 'md', 'html'];

/** Temporary files older than this, or whose writer process is gone, are leftovers of a killed writer: removed. */
const STALE_TMP_MS = 60_000;

export function reportPath(dir: string, week: string, format: ReportFormat): string {
  return join(dir, `${week}.${format}`);
}

export interface WriteReportOptions extends Omit<BuildReportOptions, 'previous'> {
  dir: string;
}

export interface WrittenReport {
  week: string;
  paths: Record<ReportFormat, string>;
  /** Formats whose file content changed (empty when a regeneration found everything identical). */
  rewritten: ReportFormat[];
  report: WeeklyReport;
  record: ReportRecord;
}

/** The report settings of a config (everything but the week). */
export function reportOptionsFromConfig(c: TuneloopConfig): Omit<WriteReportOptions, 'week'> {
  return {
    dir: c.tuner.reportsDir,
    timezone: c.tuner.timezone,
    service: c.tuner.serviceName,
    model: c.model.name,
    slo: { ...c.slo },
    pricePerCoreHour: c.metrics.pricePerCoreHour,
    verify: { shadowShare: c.verify.shadowShare, minSamples: c.verify.minSamples },
  };
}

/** The previous week's JSON twin, when it is there and of this schema. */
async function readPrevious(dir: string, week: string): Promise<WeeklyReport | undefined> {
  const prev = formatIsoWeek(previousIsoWeek(parseIsoWeek(week)));
  try {
    const r = JSON.parse(await readFile(reportPath(dir, prev, 'json'), 'utf8')) as WeeklyReport;
    return r.schema === REPORT_SCHEMA && r.week === prev ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Write `content` to `path` atomically (tmp + fsync + rename); false when the file already holds exactly that. */
export async function writeFileAtomic(path: string, content: string): Promise<boolean> {
  try {
    if ((await readFile(path, 'utf8')) === content) return false;
  } catch {
    // absent or unreadable: write it
  }
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    // In two halves so a crash test can land between them: a torn temporary file, the real one untouched.
    const bytes = Buffer.from(content, 'utf8');
    const half = bytes.length >> 1;
    await fh.write(bytes, 0, half);
    faultPoint('report.writing');
    await fh.write(bytes, half, bytes.length - half);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return true;
}

/** Make the renames durable: fsync the folder (not possible on every platform; best effort). */
async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // e.g. Windows cannot open a directory
  }
}

/** False only when no process has that pid (another user's process answers EPERM: alive). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function removeStaleTmp(dir: string, week: string, nowMs: number): void {
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${week}.`) || !name.endsWith('.tmp')) continue;
    // `<week>.<format>.<pid>.tmp`: a dead writer's file goes at once, a live one's (another process writing the same
    // week right now) only once it is too old to be in progress.
    const pid = Number(/\.(\d+)\.tmp$/.exec(name)?.[1]);
    try {
      if (pid !== process.pid && Number.isInteger(pid) && pid > 0 && !processAlive(pid)) unlinkSync(join(dir, name));
      else if (nowMs - statSync(join(dir, name)).mtimeMs > STALE_TMP_MS) unlinkSync(join(dir, name));
    } catch {
      // raced with another writer: its problem
    }
  }
}

function summaryOf(r: WeeklyReport): Record<string, unknown> {
  return {
    requests: r.traffic.requests,
    sloAttainment: r.slo.allObjectives.attainment,
    enoughData: r.coverage.enough,
    topBottlenecks: r.bottlenecks.ranked.map((b) => b.kind),
    proposals: r.changes.length,
    alerts: r.alerts.firings,
  };
}

/** Build, render and write one week; record it in the store's report index. */
export async function writeWeeklyReport(
  store: ReportStore & Pick<TunerStore, 'recordReport'>,
  o: WriteReportOptions,
  nowMs: number = Date.now(),
): Promise<WrittenReport> {
  const week = formatIsoWeek(parseIsoWeek(o.week));
  await mkdir(o.dir, { recursive: true });
  const previous = await readPrevious(o.dir, week);
  const report = buildWeeklyReport(store, { ...o, week, now: o.now ?? nowMs, ...(previous ? { previous } : {}) });
  const charts = await renderReportCharts(report);
  const contents: Record<ReportFormat, string> = {
    md: renderMarkdown(report, charts),
    html: renderHtml(report, charts),
    json: `${JSON.stringify(report, null, 2)}\n`,
  };
  const paths = Object.fromEntries(REPORT_FORMATS.map((f) => [f, reportPath(o.dir, week, f)])) as Record<ReportFormat, string>;
  const rewritten: ReportFormat[] = [];
  // The JSON twin last: whoever sees it can rely on the readable files being there.
  for (const f of ['md', 'html', 'json'] as const) if (await writeFileAtomic(paths[f], contents[f])) rewritten.push(f);
  if (rewritten.length) await syncDir(o.dir);
  removeStaleTmp(o.dir, week, nowMs);
  const record = store.recordReport({ week, generatedMs: nowMs, periodStartMs: report.period.startMs, periodEndMs: report.period.endMs, summary: summaryOf(report) });
  return { week, paths, rewritten, report, record };
}
