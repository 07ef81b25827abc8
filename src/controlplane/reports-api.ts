// The weekly reports over REST (mount at /api): GET /api/reports lists the weeks that have a report, GET
// /api/reports/:week answers one week's JSON twin, or with ?format=md|html the rendered file. Reads only, viewer role
// (the same bearer tokens as the tuner routes, auth.ts). The files in the reports folder are the truth (the cron job
// and `tuneloop report` write them); the store's report index adds when each was last written. Only these two
// routes are matched: any other /api path falls through.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { IsoWeekError, isoWeekRange, parseIsoWeek, formatIsoWeek } from '../tuner/report/iso-week.js';
import { REPORT_FORMATS, reportPath, type ReportFormat } from '../tuner/report/writer.js';
import type { ReportRecord } from '../tuner/store.js';
import type { ApiAuth } from './auth.js';
import { ControlPlaneError } from './errors.js';

export interface ReportsRouterOptions {
  /** tuner.reportsDir. */
  dir: string;
  auth: ApiAuth;
  /** The store's report index (TunerStore.reports); absent: the list shows the files only. */
  index?: () => ReportRecord[];
  /** tuner.timezone: the period of a week listed without an index row. */
  timezone: string;
}

export interface ReportListEntry {
  week: string;
  /** Formats whose file is in the reports folder. */
  formats: ReportFormat[];
  periodStartMs: number;
  periodEndMs: number;
  /** When it was last written (the store's index); null when the index does not know it. */
  generatedMs: number | null;
  summary: Record<string, unknown> | null;
}

const FILE_RE = /^(\d{4}-W\d{2})\.(json|md|html)$/;

const CONTENT_TYPES: Record<ReportFormat, string> = {
  json: 'application/json; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  html: 'text/html; charset=utf-8',
};

/** The report page needs nothing from outside (inline CSS and SVG): forbid everything else in a browser. */
const HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function filesByWeek(dir: string): Map<string, ReportFormat[]> {
  const out = new Map<string, ReportFormat[]>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out; // no reports written yet
  }
  for (const name of names) {
    const m = FILE_RE.exec(name);
    if (!m) continue;
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2] as ReportFormat]);
  }
  return out;
}

/** Every week with a report file, newest first. */
export function listReports(o: Pick<ReportsRouterOptions, 'dir' | 'index' | 'timezone'>): ReportListEntry[] {
  const files = filesByWeek(o.dir);
  const index = new Map((o.index?.() ?? []).map((r) => [r.week, r]));
  const out: ReportListEntry[] = [];
  for (const [week, formats] of files) {
    let range: { startMs: number; endMs: number };
    try {
      range = isoWeekRange(parseIsoWeek(week), o.timezone);
    } catch {
      continue; // a file named like a week that does not exist (2025-W53)
    }
    const rec = index.get(week);
    out.push({
      week,
      formats: REPORT_FORMATS.filter((f) => formats.includes(f)),
      periodStartMs: rec?.periodStartMs ?? range.startMs,
      periodEndMs: rec?.periodEndMs ?? range.endMs,
      generatedMs: rec?.generatedMs ?? null,
      summary: rec?.summary ?? null,
    });
  }
  return out.sort((a, b) => b.week.localeCompare(a.week));
}

function weekParam(raw: unknown): string {
  try {
    return formatIsoWeek(parseIsoWeek(typeof raw === 'string' ? raw : ''));
  } catch (e) {
    const message = e instanceof IsoWeekError ? e.message : `'week' must be an ISO week such as 2026-W47`;
    throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', message, { param: 'week' });
  }
}

function formatParam(raw: unknown): ReportFormat {
  if (raw === undefined) return 'json';
  if (typeof raw !== 'string' || !(REPORT_FORMATS as readonly string[]).includes(raw)) {
    throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', `'format' must be one of ${REPORT_FORMATS.join(', ')}`, { param: 'format' });
  }
  return raw as ReportFormat;
}

const handle =
  (fn: (req: Request, res: Response) => Promise<void> | void) =>
  async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      await fn(req, res);
    } catch (e) {
      next(e);
    }
  };

export function reportsRouter(o: ReportsRouterOptions): Router {
  const router = express.Router();
  const viewer = o.auth.requireRole('viewer');

  router.get(
    '/reports',
    viewer,
    handle((_req, res) => {
      res.json({ reports: listReports(o) });
    }),
  );

  router.get(
    '/reports/:week',
    viewer,
    handle(async (req, res) => {
      const week = weekParam(req.params['week']);
      const format = formatParam(req.query['format']);
      let body: string;
      try {
        body = await readFile(reportPath(o.dir, week, format), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        throw new ControlPlaneError(
          'CP_ERR_RESOURCE_NOT_FOUND',
          `No ${format} report for ${week}: it is written by the weekly job, or on demand with \`tuneloop report --week ${week}\``,
          { param: 'week' },
        );
      }
      res.setHeader('Content-Type', CONTENT_TYPES[format]);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      if (format === 'html') res.setHeader('Content-Security-Policy', HTML_CSP);
      res.send(body);
    }),
  );

  return router;
}
