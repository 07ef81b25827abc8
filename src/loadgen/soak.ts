// Soak: mixed traffic (mixed.ts) for a long time while the server's settings change under it (live reconfigures and
// a reload, as the tuner makes them), sampling the process's memory and KV blocks throughout. What a healthy server
// shows: flat memory once warm, KV blocks all returned, and counters that add up to exactly the traffic sent
// (checkSoakCounters). The server and what to sample are the caller's (in process: the engine and process RSS).
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Engine } from '../engine/engine.js';
import { metricSamples, metricSum } from './probe.js';
import { MIXED_ROUTES, runMixedTraffic, type MixedEndpoint, type MixedOptions, type MixedSummary } from './mixed.js';

/** Something to do at `atS` seconds into the run (a reconfigure, a reload). */
export interface SoakEvent {
  atS: number;
  name: string;
  run: () => unknown;
}

export interface SoakSample {
  tS: number;
  rssBytes: number;
  /** Live JS objects (V8 heapUsed; after a full GC with gcBeforeSample): tells a JS leak from a native one. */
  heapUsedBytes?: number;
  kvBlocksUsed: number;
}

export interface SoakOptions extends Omit<MixedOptions, 'onRecord'> {
  events?: SoakEvent[];
  /** Read once every sampleEveryS (default 5) and once at the end. */
  sample: () => Omit<SoakSample, 'tS'> | Promise<Omit<SoakSample, 'tS'>>;
  sampleEveryS?: number;
  /** Collect this process's garbage (a full V8 GC) before each sample. For in-process runs: between collections the
   *  V8 heap swings RSS by ±100 MiB, up and down over minutes, which would hide a leak or fake one; after a full
   *  collection RSS moves by a few MiB. */
  gcBeforeSample?: boolean;
}

export interface RssTrend {
  firstBytes: number;
  maxBytes: number;
  lastBytes: number;
  /** Least-squares slopes of RSS over each half of the run, MiB per minute. */
  firstHalfMiBPerMin: number;
  secondHalfMiBPerMin: number;
}

export interface SoakReport {
  durationS: number;
  traffic: MixedSummary;
  events: { name: string; atS: number; ms: number; error?: string }[];
  samples: SoakSample[];
  rss: RssTrend;
}

const MiB = 1024 * 1024;

function slopeMiBPerMin(samples: readonly SoakSample[]): number {
  const n = samples.length;
  if (n < 2) return NaN;
  const mt = samples.reduce((a, s) => a + s.tS, 0) / n;
  const mr = samples.reduce((a, s) => a + s.rssBytes, 0) / n;
  let num = 0,
    den = 0;
  for (const s of samples) {
    num += (s.tS - mt) * (s.rssBytes - mr);
    den += (s.tS - mt) ** 2;
  }
  return den > 0 ? ((num / den) * 60) / MiB : NaN;
}

export function rssTrend(samples: readonly SoakSample[]): RssTrend {
  const end = samples.length ? samples[samples.length - 1]!.tS : 0;
  return {
    firstBytes: samples[0]?.rssBytes ?? NaN,
    maxBytes: Math.max(...samples.map((s) => s.rssBytes)),
    lastBytes: samples[samples.length - 1]?.rssBytes ?? NaN,
    firstHalfMiBPerMin: slopeMiBPerMin(samples.filter((s) => s.tS <= end / 2)),
    secondHalfMiBPerMin: slopeMiBPerMin(samples.filter((s) => s.tS >= end / 2)),
  };
}

/** V8's gc(), without starting node with --expose-gc: the flag can be set at run time, and a new context then sees it. */
function exposedGc(): () => void {
  setFlagsFromString('--expose_gc');
  return runInNewContext('gc') as () => void;
}

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const t0 = performance.now();
  const elapsedS = (): number => (performance.now() - t0) / 1000;
  const samples: SoakSample[] = [];
  const gc = o.gcBeforeSample ? exposedGc() : undefined;
  const take = async (): Promise<void> => {
    gc?.();
    samples.push({ tS: elapsedS(), ...(await o.sample()) });
  };
  const stop = new AbortController();
  const events: SoakReport['events'] = [];
  const schedule = (async () => {
    for (const ev of [...(o.events ?? [])].sort((a, b) => a.atS - b.atS)) {
      await sleep(Math.max(0, ev.atS - elapsedS()) * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
      if (stop.signal.aborted) return;
      const at = elapsedS(),
        e0 = performance.now();
      try {
        await ev.run();
        events.push({ name: ev.name, atS: at, ms: performance.now() - e0 });
      } catch (e) {
        events.push({ name: ev.name, atS: at, ms: performance.now() - e0, error: (e as Error).message });
      }
    }
  })();
  const sampler = (async () => {
    while (!stop.signal.aborted) {
      await take();
      await sleep((o.sampleEveryS ?? 5) * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  })();
  let traffic: MixedSummary;
  try {
    traffic = await runMixedTraffic(o);
  } finally {
    stop.abort();
    await Promise.all([schedule, sampler]);
  }
  await take();
  return { durationS: o.durationS, traffic, events, samples, rss: rssTrend(samples) };
}

/** The standard schedule: a reconfigure every `everyS` seconds, alternating two batching settings, and at the slot
 *  nearest the middle one reload instead (KV blocks of 32 tokens: a new model instance, with a pool of the same bytes,
 *  so RSS before and after stays comparable). */
export function standardSoakEvents(engine: Pick<Engine, 'reconfigure' | 'reload'>, durationS: number, everyS = 15): SoakEvent[] {
  const events: SoakEvent[] = [];
  const slots = Math.floor((durationS - 1) / everyS);
  const mid = Math.max(1, Math.round(slots / 2));
  for (let i = 1; i <= slots; i++) {
    const atS = i * everyS;
    if (i === mid) {
      events.push({ atS, name: 'reload kvBlockSizeTokens=32', run: () => engine.reload({ kvBlockSizeTokens: 32 }) });
    } else {
      const s = i % 2 === 0 ? { maxBatchSize: 8, maxQueueDelayMs: 5 } : { maxBatchSize: 16, maxQueueDelayMs: 2 };
      events.push({ atS, name: `reconfigure maxBatchSize=${s.maxBatchSize}`, run: () => engine.reconfigure(s) });
    }
  }
  return events;
}

/**
 * Server counters against what the client saw, between two scrapes of /metrics around the run: requests by route and
 * status, engine submissions and outcomes, tokens generated. Returns the inconsistencies (empty when all agree).
 * A disconnected stream is an HTTP 200 (its headers were sent) and a cancelled generation, unless it finished
 * before the cancel arrived; its tokens are somewhere between the chunks its client saw and maxTokens.
 */
export function checkSoakCounters(t: MixedSummary, before: string, after: string): string[] {
  const problems: string[] = [];
  const delta = (name: string, match: Record<string, string> = {}): number => metricSum(after, name, match) - metricSum(before, name, match);
  const expect = (what: string, got: number, want: number): void => {
    if (got !== want) problems.push(`${what}: the server counted ${got}, the client saw ${want}`);
  };
  for (const endpoint of Object.keys(MIXED_ROUTES) as MixedEndpoint[]) {
    const route = MIXED_ROUTES[endpoint];
    const seen = t.byEndpoint[endpoint];
    expect(
      `${route} requests`,
      delta('tuneloop_requests_total', { endpoint: route }),
      Object.values(seen).reduce((a, b) => a + b, 0),
    );
    expect(`${route} 200s`, delta('tuneloop_requests_total', { endpoint: route, status: '200' }), (seen.ok ?? 0) + (seen.disconnected ?? 0));
    const statuses = new Set([
      ...metricSamples(after, 'tuneloop_requests_total')
        .filter((s) => s.labels.endpoint === route)
        .map((s) => s.labels.status!),
    ]);
    for (const status of statuses) {
      if (status !== '200') expect(`${route} ${status}s`, delta('tuneloop_requests_total', { endpoint: route, status }), seen[`http_${status}`] ?? 0);
    }
  }
  const submitted = delta('tuneloop_requests_submitted_total');
  const finished = delta('tuneloop_requests_finished_total');
  const cancelled = delta('tuneloop_requests_cancelled_total');
  expect('engine submissions', submitted, t.ok + t.disconnected);
  expect('engine outcomes (finished + cancelled)', finished + cancelled, submitted);
  if (cancelled > t.disconnected) problems.push(`engine cancellations: ${cancelled}, more than the ${t.disconnected} clients that left`);
  expect('engine failures', delta('tuneloop_requests_failed_total') + delta('tuneloop_requests_timed_out_total'), 0);
  const generated = delta('tuneloop_generation_tokens_total');
  const low = t.okCompletionTokens + t.disconnectedTokensSeen,
    high = t.okCompletionTokens + t.disconnected * t.maxTokens;
  if (generated < low || generated > high) {
    problems.push(
      `generated tokens: the server counted ${generated}, the client saw ${t.okCompletionTokens} in completed requests ` +
        `and ${t.disconnected} disconnects (expected ${low}..${high})`,
    );
  }
  return problems;
}

const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;

/** Reconfigures as a count (a 20-minute run has 80), everything else one by one. */
function describeEvents(events: SoakReport['events']): string {
  const one = (e: SoakReport['events'][number]): string => `${e.name} @${e.atS.toFixed(0)}s ${e.error ? `FAILED: ${e.error}` : `${e.ms.toFixed(0)} ms`}`;
  const reconf = events.filter((e) => e.name.startsWith('reconfigure'));
  const others = events.filter((e) => !e.name.startsWith('reconfigure') || e.error);
  const parts = reconf.length ? [`${reconf.length} reconfigures (${reconf.filter((e) => e.error).length} failed)`] : [];
  return [...parts, ...others.map(one)].join('; ') || '-';
}

export function formatSoak(r: SoakReport, extra: [string, string][] = []): string {
  const t = r.traffic;
  const rows: [string, string][] = [
    ['duration', `${r.durationS} s`],
    ['requests', `${t.sent} sent: ${t.ok} completed, ${t.disconnected} disconnected by the client, ${t.failed} failed`],
    [
      'by kind',
      Object.entries(t.byKind)
        .sort()
        .map(([k, v]) => `${k}=${v}`)
        .join(', '),
    ],
    ['tokens', `${t.okCompletionTokens} in completed requests`],
    ['e2e', `p50 ${(t.e2e.p50 * 1000).toFixed(0)} ms, p99 ${(t.e2e.p99 * 1000).toFixed(0)} ms`],
    ['events', describeEvents(r.events)],
    [
      'RSS',
      `first ${mib(r.rss.firstBytes)}, max ${mib(r.rss.maxBytes)}, last ${mib(r.rss.lastBytes)}; slope ` +
        `${r.rss.firstHalfMiBPerMin.toFixed(2)} MiB/min (first half), ${r.rss.secondHalfMiBPerMin.toFixed(2)} MiB/min (second half)`,
    ],
    ['KV blocks used', `max ${Math.max(...r.samples.map((s) => s.kvBlocksUsed))}, at the end ${r.samples[r.samples.length - 1]?.kvBlocksUsed ?? '-'}`],
    ...extra,
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
