// A load run, independent of what serves it: build the workload, drive arrivals (open or closed loop), collect one
// record per request, stop at the end, and report. `runLoad` sends over HTTP; inprocess.ts drives an Engine with the
// same loop, so the two reports compare like for like (bench:serve).
import { setMaxListeners } from 'node:events';
import { driveClosedLoop, driveOpenLoop, poissonArrivals } from './arrivals.js';
import { firstModel, streamCompletion } from './client.js';
import { createProgress } from './progress.js';
import { buildReport, type LoadConfig, type LoadReport } from './report.js';
import { DEFAULT_SLO, type RequestRecord, type SloTargets } from './types.js';
import { BUILTIN_PROMPTS, createRng, createWorkload, formatOutputLen, parseOutputLen, type OutputLenDist, type RequestSpec } from './workload.js';

/** What to send and how fast; shared by HTTP and in-process runs. */
export interface WorkloadOptions {
  /** Open loop: Poisson arrivals per second (needs durationS). Without it the run is a closed loop. */
  rate?: number;
  /** Seconds of sending. Requests still running afterwards get drainTimeoutS to finish, then are aborted. */
  durationS?: number;
  /** Closed loop: workers back to back. Open loop: a cap on requests in flight. */
  concurrency?: number;
  /** Stop after this many requests (either mode). */
  maxRequests?: number;
  /** Default: BUILTIN_PROMPTS. */
  prompts?: readonly string[];
  /** N, uniform:A-B, exp:MEAN or a parsed distribution; default 64. */
  outputLen?: string | OutputLenDist;
  /** Default 0.8. */
  temperature?: number;
  /** Generate max tokens whatever the model says (OpenAI extension `ignore_eos`, as vLLM's), so every request has
   *  the configured length: benchmarks compare like with like. Default false (only then is the field sent). */
  ignoreEos?: boolean;
  /** Seeds arrivals, prompt choice, output lengths and per-request sampling; default 0. */
  seed?: number;
  slo?: Partial<SloTargets>;
  /** Default 30 s. */
  drainTimeoutS?: number;
  /** Ends the run early (Ctrl-C): no new requests, those in flight are aborted. */
  signal?: AbortSignal;
  /** Progress on stderr; off by default for programmatic use. */
  progress?: boolean;
  /** Keep every request record in the report (large). */
  includeRecords?: boolean;
  onRecord?: (r: RequestRecord) => void;
}

export interface LoadOptions extends WorkloadOptions {
  /** Server root (`http://host:port`, with or without /v1). */
  url: string;
  /** Default: the first of GET /v1/models. */
  model?: string;
  apiKey?: string;
}

/** Sends one request and always resolves with its record (failures included). */
export type SendOne = (spec: RequestSpec, signal: AbortSignal, runStartMs: number) => Promise<RequestRecord>;

export interface DriveContext {
  target: 'http' | 'in-process';
  url?: string;
  model: string;
}

function modeOf(o: WorkloadOptions): LoadConfig['mode'] {
  if (o.rate !== undefined) {
    if (o.durationS === undefined) throw new Error('an open-loop run (rate) needs a duration');
    return 'open';
  }
  if (o.concurrency === undefined) throw new Error('give a rate (open loop) or a concurrency (closed loop)');
  if (o.durationS === undefined && o.maxRequests === undefined) throw new Error('a closed-loop run needs a duration or a request count');
  return 'closed';
}

/** The loop itself: exported for the in-process driver; most callers want runLoad or runLoadInProcess. */
export async function driveLoad(o: WorkloadOptions, ctx: DriveContext, send: SendOne): Promise<LoadReport> {
  const mode = modeOf(o);
  const seed = o.seed ?? 0;
  const dist = typeof o.outputLen === 'string' ? parseOutputLen(o.outputLen) : (o.outputLen ?? { kind: 'fixed', tokens: 64 });
  const prompts = o.prompts ?? BUILTIN_PROMPTS;
  const workload = createWorkload(prompts, dist, seed);
  const temperature = o.temperature ?? 0.8;
  const slo: SloTargets = { ...DEFAULT_SLO, ...o.slo };
  const config: LoadConfig = {
    mode,
    ...(o.rate !== undefined ? { rate: o.rate } : {}),
    ...(o.durationS !== undefined ? { durationS: o.durationS } : {}),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    ...(o.maxRequests !== undefined ? { maxRequests: o.maxRequests } : {}),
    outputLen: formatOutputLen(dist),
    temperature,
    seed,
    prompts: prompts.length,
  };
  // Arrival times come from their own RNG stream, so the workload is the same request by request in either mode.
  const offsets = mode === 'open' ? poissonArrivals(o.rate!, o.durationS!, createRng(seed), o.maxRequests) : undefined;

  // Two signals: `stopSending` ends arrivals, `abortRequests` cuts requests in flight (after the drain, or at once
  // when the caller aborts).
  const stopSending = new AbortController();
  const abortRequests = new AbortController();
  // Every request in flight listens on it (fetch, or the engine's cancel): hundreds are normal, not a leak.
  setMaxListeners(0, abortRequests.signal);
  const onOuterAbort = () => {
    stopSending.abort();
    abortRequests.abort();
  };
  if (o.signal?.aborted) onOuterAbort();
  o.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const hardStop = o.durationS !== undefined ? setTimeout(() => onOuterAbort(), (o.durationS + (o.drainTimeoutS ?? 30)) * 1000) : undefined;

  const progress = createProgress({
    quiet: !o.progress,
    ...(o.durationS !== undefined ? { durationS: o.durationS } : {}),
    ...(offsets ? { total: offsets.length } : o.maxRequests !== undefined ? { total: o.maxRequests } : {}),
  });
  const records: RequestRecord[] = [];
  const startedAt = new Date();
  const runStartMs = performance.now();
  const fire = async (i: number): Promise<void> => {
    const rec = await send(workload(i), abortRequests.signal, runStartMs);
    records.push(rec);
    progress.settled(rec);
    o.onRecord?.(rec);
  };
  try {
    if (offsets) {
      await driveOpenLoop({ offsets, fire, signal: stopSending.signal, onSent: progress.sent, ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}) });
    } else {
      await driveClosedLoop({
        concurrency: o.concurrency!,
        fire,
        signal: stopSending.signal,
        onSent: progress.sent,
        ...(o.durationS !== undefined ? { durationS: o.durationS } : {}),
        ...(o.maxRequests !== undefined ? { maxRequests: o.maxRequests } : {}),
      });
    }
  } finally {
    clearTimeout(hardStop);
    o.signal?.removeEventListener('abort', onOuterAbort);
    progress.stop();
  }
  const wallSeconds = (performance.now() - runStartMs) / 1000;
  records.sort((a, b) => a.index - b.index);
  return buildReport(records, { ...ctx, startedAt, config, slo, wallSeconds, ...(o.includeRecords ? { includeRecords: true } : {}) });
}

/** A load run against an OpenAI-compatible server (streaming /v1/completions). */
export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  const model = o.model ?? (await firstModel(o.url, o.apiKey, o.signal));
  const temperature = o.temperature ?? 0.8;
  const send: SendOne = (spec, signal, runStartMs) =>
    streamCompletion({ url: o.url, model, spec, temperature, signal, runStartMs, ignoreEos: o.ignoreEos ?? false, ...(o.apiKey ? { apiKey: o.apiKey } : {}) });
  return driveLoad(o, { target: 'http', url: o.url, model }, send);
}
