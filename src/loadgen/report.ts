// From request records to the run's figures: throughput, goodput under the SLO, latency percentiles, errors.
//
// JSON shape (LoadReport, written by --json; `schema` changes when the shape does):
//   { schema: "tuneloop.load/v1", target: "http" | "in-process", url?, model, startedAt (ISO),
//     config: { mode: "open" | "closed", rate?, durationS?, concurrency?, maxRequests?, outputLen, temperature, seed, prompts },
//     slo: { ttftP99Seconds, interTokenP99Seconds, e2eP99Seconds },
//     wallSeconds,                                   run start to the last request's end
//     requests: { sent, completed, failed, good },
//     errors: { [kind]: count },                     kinds as RequestRecord.errorKind
//     throughput: { requestsPerS, outputTokensPerS, promptTokensPerS },   completed requests only
//     goodput: { requestsPerS, outputTokensPerS, fraction },              requests meeting every SLO target
//     latency: { ttftSeconds, interTokenSeconds, e2eSeconds }: each { count, mean, p50, p90, p99, max },
//                                                    completed requests; inter-token pools every gap of every request
//     records?: RequestRecord[] }                    only with includeRecords
import type { RequestRecord, SloTargets } from './types.js';

/** Nearest-rank percentile (q in [0, 1]) of an ascending array: a value that was observed, never interpolated;
 *  NaN when empty. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export interface Distribution {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(values: readonly number[]): Distribution {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN;
  return { count: s.length, mean, p50: percentile(s, 0.5), p90: percentile(s, 0.9), p99: percentile(s, 0.99), max: s.length ? s[s.length - 1]! : NaN };
}

/** Does one request meet every target? Failed requests never do; a request with no gaps (one token) meets the
 *  inter-token target trivially. */
export function meetsSlo(r: RequestRecord, slo: SloTargets): boolean {
  if (!r.ok || r.ttftS === undefined) return false;
  if (r.ttftS > slo.ttftP99Seconds || r.e2eS > slo.e2eP99Seconds) return false;
  const itl = [...r.itlS].sort((a, b) => a - b);
  return itl.length === 0 || percentile(itl, 0.99) <= slo.interTokenP99Seconds;
}

export interface LoadConfig {
  mode: 'open' | 'closed';
  rate?: number;
  durationS?: number;
  concurrency?: number;
  maxRequests?: number;
  outputLen: string;
  temperature: number;
  seed: number;
  prompts: number;
}

export interface LoadReport {
  schema: 'tuneloop.load/v1';
  target: 'http' | 'in-process';
  url?: string;
  model: string;
  startedAt: string;
  config: LoadConfig;
  slo: SloTargets;
  wallSeconds: number;
  requests: { sent: number; completed: number; failed: number; good: number };
  errors: Record<string, number>;
  throughput: { requestsPerS: number; outputTokensPerS: number; promptTokensPerS: number };
  goodput: { requestsPerS: number; outputTokensPerS: number; fraction: number };
  latency: { ttftSeconds: Distribution; interTokenSeconds: Distribution; e2eSeconds: Distribution };
  records?: RequestRecord[];
}

export interface ReportContext {
  target: 'http' | 'in-process';
  url?: string;
  model: string;
  startedAt: Date;
  config: LoadConfig;
  slo: SloTargets;
  wallSeconds: number;
  includeRecords?: boolean;
}

export function buildReport(records: readonly RequestRecord[], ctx: ReportContext): LoadReport {
  const ok = records.filter((r) => r.ok);
  const good = ok.filter((r) => meetsSlo(r, ctx.slo));
  const errors: Record<string, number> = {};
  for (const r of records) if (!r.ok) errors[r.errorKind ?? 'unknown'] = (errors[r.errorKind ?? 'unknown'] ?? 0) + 1;
  const wall = ctx.wallSeconds > 0 ? ctx.wallSeconds : NaN;
  const tokens = (rs: readonly RequestRecord[]) => rs.reduce((a, r) => a + r.completionTokens, 0);
  const promptTokens = ok.reduce((a, r) => a + (r.promptTokens ?? 0), 0);
  const report: LoadReport = {
    schema: 'tuneloop.load/v1',
    target: ctx.target,
    ...(ctx.url !== undefined ? { url: ctx.url } : {}),
    model: ctx.model,
    startedAt: ctx.startedAt.toISOString(),
    config: ctx.config,
    slo: ctx.slo,
    wallSeconds: ctx.wallSeconds,
    requests: { sent: records.length, completed: ok.length, failed: records.length - ok.length, good: good.length },
    errors,
    throughput: { requestsPerS: ok.length / wall, outputTokensPerS: tokens(ok) / wall, promptTokensPerS: promptTokens / wall },
    goodput: {
      requestsPerS: good.length / wall,
      outputTokensPerS: tokens(good) / wall,
      fraction: records.length ? good.length / records.length : NaN,
    },
    latency: {
      ttftSeconds: summarize(ok.map((r) => r.ttftS).filter((x): x is number => x !== undefined)),
      interTokenSeconds: summarize(ok.flatMap((r) => r.itlS)),
      e2eSeconds: summarize(ok.map((r) => r.e2eS)),
    },
  };
  if (ctx.includeRecords) report.records = [...records];
  return report;
}

const ms = (s: number) => (Number.isFinite(s) ? `${(s * 1000).toFixed(1)} ms` : '-');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

/** The human summary printed at the end of `tuneloop load`. */
export function formatReport(r: LoadReport): string {
  const c = r.config;
  const mode =
    c.mode === 'open'
      ? `open loop, Poisson ${c.rate}/s for ${c.durationS} s${c.concurrency ? `, at most ${c.concurrency} in flight` : ''}`
      : `closed loop, ${c.concurrency} streams${c.durationS !== undefined ? ` for ${c.durationS} s` : ''}${c.maxRequests !== undefined ? `, ${c.maxRequests} requests` : ''}`;
  const lat = (name: string, d: Distribution) =>
    `  ${name.padEnd(12)} p50 ${ms(d.p50).padStart(10)}  p90 ${ms(d.p90).padStart(10)}  p99 ${ms(d.p99).padStart(10)}  (n=${d.count})`;
  const errs = Object.entries(r.errors)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return [
    `target       ${r.target}${r.url ? ` ${r.url}` : ''}, model ${r.model}`,
    `workload     ${mode}; output ${c.outputLen} tokens, temperature ${c.temperature}, seed ${c.seed}`,
    `requests     ${r.requests.sent} sent, ${r.requests.completed} completed, ${r.requests.failed} failed in ${f1(r.wallSeconds)} s`,
    `throughput   ${f1(r.throughput.outputTokensPerS)} tok/s, ${r.throughput.requestsPerS.toFixed(2)} req/s`,
    `goodput      ${f1(r.goodput.outputTokensPerS)} tok/s, ${r.goodput.requestsPerS.toFixed(2)} req/s ` +
      `(${f1(r.goodput.fraction * 100)}% of requests meet TTFT <= ${r.slo.ttftP99Seconds} s, ITL p99 <= ${r.slo.interTokenP99Seconds} s, e2e <= ${r.slo.e2eP99Seconds} s)`,
    lat('TTFT', r.latency.ttftSeconds),
    lat('inter-token', r.latency.interTokenSeconds),
    lat('e2e', r.latency.e2eSeconds),
    `errors       ${errs || 'none'}`,
  ].join('\n');
}
