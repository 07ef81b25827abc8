// One contract for both metrics sources: a real tuneloop server (the shipped model, one thread) answers a fixed set
// of requests; the in-process RegistrySource and the fleet PrometheusSource (reading a real Prometheus that scrapes
// the server's /metrics every second) must agree on requests finished, tokens generated and the e2e/TTFT medians.
//
// Tolerances, stated:
//   - counts and tokens: exact for the registry. For Prometheus, increase() extrapolates to the window's edges; the
//     window here ends on the last scrape and starts while every counter is still 0 (where Prometheus does not
//     extrapolate below zero), so the answer is exact in practice; the contract allows 1%.
//   - p50: the registry's comes from per-request samples (exact), Prometheus' from bucket interpolation: they must
//     lie in the same or adjacent histogram buckets. A registry without samples interpolates the very same buckets,
//     so it must match Prometheus to 1e-6 — and Prometheus' own histogram_quantile must too.
// The Prometheus half is skipped (the reason in its name) when /usr/bin/prometheus is missing.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { DEFAULT_SERVER_OPTIONS } from '../../src/controlplane/app.js';
import { loadConfig } from '../../src/config/load.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { Engine } from '../../src/engine/index.js';
import { RegistrySource, requestSampleFromResult, type MetricsSource } from '../../src/tuner/monitor.js';
import { MetricsSourceError, PrometheusSource } from '../../src/tuner/prometheus-source.js';
import type { SloTargets, WindowSummary } from '../../src/tuner/types.js';
import { MODEL, MODEL_NAME, postJson, sleep } from '../controlplane/harness.js';

const PROMETHEUS = spawnSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).stdout.trim() || undefined;
const SKIP_NOTE = PROMETHEUS ? '' : ' [SKIPPED: prometheus not on PATH — apt-get install prometheus]';
const SLO: SloTargets = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
/** The fixed traffic: completion lengths (ignore_eos, so each yields exactly that many tokens), four at a time. */
const MAX_TOKENS = [8, 12, 16, 20, 8, 12, 16, 20, 24, 6, 10, 14];
const PARALLEL = 4;
/** Upper bounds of the engine's latency buckets (native/src/stats.h LATENCY_BUCKETS_S). */
const LATENCY_BOUNDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
const bucketOf = (x: number): number => LATENCY_BOUNDS.findIndex((b) => x <= b);

/** A port nothing listens on now: bind port 0, read it, let it go. */
async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 200): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The traffic both sources summarise. */
interface Traffic {
  finished: number;
  generated: number;
  /** Exact medians over the requests' own timings. */
  e2eP50: number;
  ttftP50: number;
}

interface Rig {
  engine: Engine;
  server: RunningServer;
  registry: RegistrySource;
  /** Same engine, no samples recorded: latency from the engine's histograms only. */
  registryHistogramsOnly: RegistrySource;
  windowStartMs: number;
  traffic: Traffic;
  registryWindow?: WindowSummary;
  prom?: { url: string; proc: ChildProcess; dir: string; log: string };
}

const rig = {} as Rig;

async function startPrometheus(targetPort: number): Promise<NonNullable<Rig['prom']>> {
  const dir = mkdtempSync(join(tmpdir(), 'tuneloop-contract-prom-'));
  const port = await freePort();
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    toYaml({
      global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
      scrape_configs: [{ job_name: 'tuneloop', static_configs: [{ targets: [`127.0.0.1:${targetPort}`] }] }],
    }),
  );
  const log = join(dir, 'prometheus.log');
  const fd = openSync(log, 'w');
  const proc = spawn(PROMETHEUS!, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
    stdio: ['ignore', fd, fd],
    cwd: dir,
  });
  closeSync(fd);
  return { url: `http://127.0.0.1:${port}`, proc, dir, log };
}

async function promValue(url: string, expr: string): Promise<number | undefined> {
  const body = (await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as {
    status: string;
    data: { result: { value: [number, string] }[] };
  };
  const v = body.status === 'success' ? body.data.result[0]?.value[1] : undefined;
  return v === undefined ? undefined : Number(v);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

beforeAll(async () => {
  const config = loadConfig({ overrides: { 'model.threads': '1' } });
  rig.engine = await Engine.load({ threads: 1, model: MODEL });
  const metrics = createMetrics({ engine: rig.engine, config, modelName: MODEL_NAME });
  rig.server = await startServer({
    engine: rig.engine,
    options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME },
    logger: pino({ level: 'silent' }),
    metricsHook: metrics,
    // What the tuner wires: each generation that reached the engine becomes a sample.
    onGeneration: (e) => {
      if (e.result) rig.registry.record(requestSampleFromResult(e.result, Date.now()));
    },
  });
  if (PROMETHEUS) {
    rig.prom = await startPrometheus(rig.server.port);
    // Two scrapes of the idle server first: every counter has a 0 to rise from.
    await waitUntil(
      'two scrapes of tuneloop',
      async () => (((await promValue(rig.prom!.url, 'count_over_time(up{job="tuneloop"}[1m])')) ?? 0) >= 2 ? true : undefined),
      30_000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${readFileSync(rig.prom!.log, 'utf8').slice(-2000)}`);
    });
  }
  rig.registry = new RegistrySource({ engine: () => rig.engine, slo: SLO });
  rig.registryHistogramsOnly = new RegistrySource({ engine: () => rig.engine, slo: SLO });
  rig.windowStartMs = Date.now();
  // A scrape inside the window before the traffic, so the window's first sample is still all zeros.
  if (PROMETHEUS) await sleep(1500);

  const completionTokens: number[] = [];
  for (let i = 0; i < MAX_TOKENS.length; i += PARALLEL) {
    await Promise.all(
      MAX_TOKENS.slice(i, i + PARALLEL).map(async (maxTokens, j) => {
        const res = await postJson(`${rig.server.url}/v1/completions`, {
          model: MODEL_NAME,
          prompt: `ROMEO ${i + j}:`,
          max_tokens: maxTokens,
          temperature: 0,
          ignore_eos: true,
        });
        expect(res.status).toBe(200);
        const body = (await res.json()) as { usage: { completion_tokens: number } };
        completionTokens.push(body.usage.completion_tokens);
      }),
    );
  }
  // The exact medians, from the samples the server recorded (the engine's own timings of each request).
  const samples = rig.registry.recentSamples(rig.windowStartMs);
  rig.traffic = {
    finished: MAX_TOKENS.length,
    generated: completionTokens.reduce((a, b) => a + b, 0),
    e2eP50: median(samples.map((s) => s.e2eS)),
    ttftP50: median(samples.map((s) => s.ttftS)),
  };
  expect(samples).toHaveLength(MAX_TOKENS.length);
  expect(rig.traffic.generated).toBe(MAX_TOKENS.reduce((a, b) => a + b, 0));
}, 90_000);

afterAll(async () => {
  if (rig.prom) {
    const exited = new Promise<void>((res) => rig.prom!.proc.once('exit', () => res()));
    rig.prom.proc.kill('SIGTERM');
    const t = setTimeout(() => rig.prom!.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    rmSync(rig.prom.dir, { recursive: true, force: true });
  }
  await rig.server?.close();
  await rig.engine?.close();
}, 30_000);

/** The shared contract: what any MetricsSource must say about the fixed traffic. */
function contract(name: string, tolerance: number, window: () => Promise<WindowSummary>): void {
  describe(`${name} (contract)`, () => {
    let w: WindowSummary;
    beforeAll(async () => {
      w = await window();
    }, 60_000);

    it('counts the requests finished and the tokens generated', () => {
      expect(w.requests.finished).toBeGreaterThanOrEqual(rig.traffic.finished * (1 - tolerance) - 1e-9);
      expect(w.requests.finished).toBeLessThanOrEqual(rig.traffic.finished * (1 + tolerance) + 1e-9);
      expect(w.tokens.generated).toBeGreaterThanOrEqual(rig.traffic.generated * (1 - tolerance) - 1e-9);
      expect(w.tokens.generated).toBeLessThanOrEqual(rig.traffic.generated * (1 + tolerance) + 1e-9);
      expect(w.requests.errors).toBe(0);
      expect(w.latency.e2e.count).toBeCloseTo(rig.traffic.finished, tolerance > 0 ? 0 : 9);
    });

    it('puts the e2e and TTFT medians within histogram-bucket resolution of the exact ones', () => {
      for (const [got, exact] of [
        [w.latency.e2e.p50, rig.traffic.e2eP50],
        [w.latency.ttft.p50, rig.traffic.ttftP50],
      ] as const) {
        expect(Number.isFinite(got)).toBe(true);
        expect(Math.abs(bucketOf(got) - bucketOf(exact)), `p50 ${got} vs exact ${exact}`).toBeLessThanOrEqual(1);
      }
    });

    it('derives the rates and ratios from the same counts', () => {
      const windowS = (w.endMs - w.startMs) / 1000;
      expect(w.throughputTokensPerS).toBeCloseTo(w.tokens.generated / windowS, 6);
      // A tiny model against generous targets: every request meets the SLO.
      expect(w.sloAttainment).toBeCloseTo(1, 6);
      expect(w.goodputTokensPerS).toBeCloseTo(w.throughputTokensPerS, 6);
      expect(w.batch.meanSize).toBeGreaterThan(1);
      expect(w.batch.fillRatio).toBeCloseTo(w.batch.meanSize / 16, 6);
      expect(w.utilization).toBeGreaterThan(0);
      expect(w.utilization).toBeLessThanOrEqual(1);
    });
  });
}

contract('RegistrySource', 0, async () => {
  rig.registryWindow = await rig.registry.collect();
  return rig.registryWindow;
});

describe.skipIf(!PROMETHEUS)(`PrometheusSource against a live Prometheus${SKIP_NOTE}`, () => {
  let source: PrometheusSource;
  let lastScrapeMs = 0;

  beforeAll(async () => {
    const url = rig.prom!.url;
    // Wait for the scrape that saw the end of the traffic, then end the window on that scrape (no extrapolation).
    await waitUntil(
      'Prometheus to see every request',
      async () => ((await promValue(url, 'sum(tuneloop_requests_finished_total{job="tuneloop"})')) === rig.traffic.finished ? true : undefined),
      20_000,
    );
    lastScrapeMs = Math.round((await promValue(url, 'max(timestamp(tuneloop_requests_finished_total{job="tuneloop"}))'))! * 1000);
    source = new PrometheusSource({
      url,
      slo: SLO,
      windowSeconds: (lastScrapeMs - rig.windowStartMs) / 1000,
      selector: 'job="tuneloop"',
      now: () => lastScrapeMs,
    });
  }, 30_000);

  contract('PrometheusSource', 0.01, () => source.collect());

  it('interpolates exactly as the registry does over the same buckets, and as histogram_quantile does', async () => {
    const w = await source.collect();
    expect(w.source).toBe('prometheus');
    const hOnly = await rig.registryHistogramsOnly.collect();
    expect(w.latency.e2e.p50).toBeCloseTo(hOnly.latency.e2e.p50, 6);
    expect(w.latency.ttft.p99).toBeCloseTo(hOnly.latency.ttft.p99, 6);
    expect(w.latency.e2e.mean).toBeCloseTo(hOnly.latency.e2e.mean, 6);
    const range = `${Math.round(w.endMs - w.startMs)}ms`;
    const promP50 = await promValue(
      rig.prom!.url,
      `histogram_quantile(0.5, sum by (le) (increase(tuneloop_e2e_request_latency_seconds_bucket{job="tuneloop"}[${range}])))`,
    );
    expect(w.latency.e2e.p50).toBeCloseTo(promP50!, 6);
  });

  it('says NO_DATA, not zeros, when no engine series match the selector', async () => {
    const none = new PrometheusSource({ url: rig.prom!.url, slo: SLO, windowSeconds: 10, selector: 'job="not-tuneloop"' });
    await expect(none.collect()).rejects.toMatchObject({ name: 'MetricsSourceError', code: 'NO_DATA' });
  });
});

describe('PrometheusSource errors', () => {
  it('rejects with UNREACHABLE when nothing listens', async () => {
    const port = await freePort();
    const src: MetricsSource = new PrometheusSource({ url: `http://127.0.0.1:${port}`, slo: SLO, windowSeconds: 60 });
    const err = await src.collect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MetricsSourceError);
    expect(err).toMatchObject({ code: 'UNREACHABLE' });
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
  });

  it('rejects with BAD_RESPONSE when Prometheus answers an error or something that is not a query result', async () => {
    const answer =
      (status: number, body: string): typeof fetch =>
      async () =>
        new Response(body, { status });
    const bad = new PrometheusSource({
      url: 'http://prometheus.invalid',
      slo: SLO,
      windowSeconds: 60,
      fetch: answer(400, JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 3' })),
    });
    await expect(bad.collect()).rejects.toMatchObject({ code: 'BAD_RESPONSE', message: expect.stringContaining('parse error') });
    const html = new PrometheusSource({ url: 'http://prometheus.invalid', slo: SLO, windowSeconds: 60, fetch: answer(200, '<html>login</html>') });
    await expect(html.collect()).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
    const down = new PrometheusSource({ url: 'http://prometheus.invalid', slo: SLO, windowSeconds: 60, fetch: answer(503, 'Service Unavailable') });
    await expect(down.collect()).rejects.toMatchObject({ code: 'UNREACHABLE' });
  });
});
