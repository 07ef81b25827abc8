// Watching a server from outside while load runs: how fast a liveness probe answers (is the event loop still free
// under overload?) and values read from its /metrics exposition (resident memory, counters), for overload and soak
// runs (overload.ts, soak.ts).
import { Worker } from 'node:worker_threads';
import { percentile } from './report.js';

/** The server's root (`http://host:port`), whatever form of the URL was given (with or without /v1). */
export function serverRoot(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/v1$/, '');
}

export interface ProbeSummary {
  /** Polls that answered 2xx in time. */
  count: number;
  /** Polls that failed, answered otherwise, or took longer than the timeout. */
  failures: number;
  p50S: number;
  p99S: number;
  maxS: number;
}

export interface LatencyProbe {
  /** Stops polling (waiting for the poll in progress) and summarizes. */
  stop(): Promise<ProbeSummary>;
}

// The poll loop, plain JavaScript for an eval'd worker. It runs on its own thread and event loop: a load generator in
// the same process keeps its loop busy (hundreds of requests a second), and a probe on that loop would time the
// client's backlog, not the server's answer.
const PROBE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { target, everyMs, timeoutMs } = workerData;
const latencies = [];
let failures = 0, stopped = false;
parentPort.once('message', () => { stopped = true; });
(async () => {
  while (!stopped) {
    const t0 = performance.now();
    try {
      const res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      if (res.ok) latencies.push((performance.now() - t0) / 1000); else failures++;
    } catch { failures++; }
    await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (performance.now() - t0))));
  }
  parentPort.postMessage({ latencies, failures });
})();
`;

/** GET `root + path` every `everyMs` from a worker thread, one poll at a time: a slow answer delays the next poll
 *  instead of piling more onto a struggling server, and still counts with its full latency. */
export function startLatencyProbe(url: string, o: { path?: string; everyMs?: number; timeoutMs?: number } = {}): LatencyProbe {
  const workerData = { target: `${serverRoot(url)}${o.path ?? '/healthz'}`, everyMs: o.everyMs ?? 150, timeoutMs: o.timeoutMs ?? 5000 };
  const worker = new Worker(PROBE_WORKER, { eval: true, workerData });
  const done = new Promise<{ latencies: number[]; failures: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const { latencies, failures } = await done;
      await worker.terminate();
      const s = [...latencies].sort((a, b) => a - b);
      return { count: s.length, failures, p50S: percentile(s, 0.5), p99S: percentile(s, 0.99), maxS: s.length ? s[s.length - 1]! : NaN };
    },
  };
}

/** One scrape of GET /metrics (Prometheus text). */
export async function scrapeMetrics(url: string): Promise<string> {
  const res = await fetch(`${serverRoot(url)}/metrics`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET /metrics answered HTTP ${res.status}`);
  return res.text();
}

const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of metric `name` in an exposition, with their labels. */
export function metricSamples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue; // a longer name with this prefix
    const close = rest[0] === '{' ? rest.lastIndexOf('}') : 0;
    const labels: Record<string, string> = {};
    for (const m of rest.slice(0, close).matchAll(LABEL)) labels[m[1]!] = m[2]!;
    out.push({
      labels,
      value: Number(
        rest
          .slice(close + 1)
          .trim()
          .split(' ')[0],
      ),
    });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include every pair in `match` (a counter over its series); 0 when none
 *  match, as a counter that has not been incremented yet is absent. */
export function metricSum(text: string, name: string, match: Record<string, string> = {}): number {
  return metricSamples(text, name)
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
