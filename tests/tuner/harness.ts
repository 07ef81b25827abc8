// A real tuned server for the closed-loop tests: the shipped model, a SQLite store in a temp dir, the real tuner
// behind the real HTTP routes, cron off (the tests drive monitor ticks and runs themselves, so nothing waits a minute).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine, type EngineOptions } from '../../src/engine/index.js';
import { DEFAULT_CONFIG, loadConfig, type TuneloopConfig } from '../../src/config/load.js';
import { hashToken } from '../../src/controlplane/auth.js';
import { createMetrics, type Metrics } from '../../src/metrics/registry.js';
import { AlertInbox } from '../../src/alerts/inbox.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { modelNameOf, serverOptionsFromConfig } from '../../src/serve.js';
import { engineOptionsWithSettings, openTunerStore, startTuner, type RunningTuner } from '../../src/tuner/bootstrap.js';
import type { TunerStore } from '../../src/tuner/store.js';
import { runLoad, type LoadOptions } from '../../src/loadgen/index.js';
import type { LoadReport } from '../../src/loadgen/report.js';
import { MODEL, MODEL_NAME } from '../controlplane/harness.js';

export const TOKENS = { viewer: 'viewer-token-0123456789', approver: 'approver-token-0123456789', admin: 'admin-token-0123456789' } as const;

export function bearer(role: keyof typeof TOKENS): Record<string, string> {
  return { authorization: `Bearer ${TOKENS[role]}`, 'content-type': 'application/json' };
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? Partial<T[K]> : T[K] };

/** Test config: the shipped model, one compute thread per engine, tokens for every role, quick watch windows, no rate limit. */
export function testConfig(dir: string, over: DeepPartial<TuneloopConfig> = {}): TuneloopConfig {
  const c = loadConfig();
  c.model.path = MODEL;
  c.model.name = MODEL_NAME;
  c.model.threads = 1;
  c.server.port = 0;
  // Load here comes from one client address as fast as the engine answers; the per-client rate limit (its own tests:
  // controlplane/limits) would turn a faster engine's throughput into 429s instead of measuring it.
  c.server.rateLimitPerMinute = 0;
  c.logging.level = 'silent';
  c.tuner.storePath = join(dir, 'tuner.db');
  c.tuner.watchIntervalSeconds = 1;
  c.tuner.watchChecks = 2;
  c.auth.tokens = (Object.keys(TOKENS) as (keyof typeof TOKENS)[]).map((role) => ({ name: `${role}-user`, role, sha256: hashToken(TOKENS[role]) }));
  for (const [section, values] of Object.entries(over)) Object.assign((c as unknown as Record<string, object>)[section]!, values);
  // An override that spreads a whole default section must not move the store into the working directory or the
  // server onto port 8080: keep the test's own unless the override names another.
  if (c.tuner.storePath === DEFAULT_CONFIG.tuner.storePath) c.tuner.storePath = join(dir, 'tuner.db');
  if (c.server.port === DEFAULT_CONFIG.server.port) c.server.port = 0;
  return c;
}

export interface TunedServer {
  config: TuneloopConfig;
  engine: Engine;
  store: TunerStore;
  server: RunningServer;
  metrics: Metrics;
  tuned: RunningTuner;
  url: string;
  dir: string;
  api(path: string, init?: { method?: string; role?: keyof typeof TOKENS; body?: unknown }): Promise<{ status: number; body: any }>;
  /** Closed-loop HTTP load from `clients` workers for `seconds`, with a monitor tick every `tickS`. */
  load(o: { clients: number; seconds: number; tickS?: number; outputLen?: number; signal?: AbortSignal }): Promise<LoadReport>;
  stop(): Promise<void>;
}

export async function startTunedServer(
  o: {
    dir?: string;
    /** Another GGUF than the shipped model (served under its file name). */
    model?: string;
    config?: DeepPartial<TuneloopConfig>;
    loadShadowEngine?: (opts: EngineOptions, role: 'baseline' | 'candidate') => Promise<Engine>;
  } = {},
): Promise<TunedServer> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'tuneloop-tuner-'));
  const config = testConfig(dir, o.config);
  if (o.model) {
    config.model.path = o.model;
    config.model.name = modelNameOf(o.model);
  }
  const { store, live } = openTunerStore(config);
  const engine = await Engine.load(
    engineOptionsWithSettings(
      { model: config.model.path, ...(config.model.threads !== undefined ? { threads: config.model.threads } : {}), kvCacheMaxBytes: config.model.kvCacheMaxBytes },
      live.settings,
    ),
  );
  const logger = pino({ level: 'silent' });
  const metrics = createMetrics({ engine, config, modelName: config.model.name });
  const alerts = new AlertInbox({ registry: metrics.registry });
  const tuned = await startTuner({
    config,
    engine,
    store,
    logger,
    metrics,
    alerts,
    cron: false,
    ...(o.loadShadowEngine ? { loadShadowEngine: o.loadShadowEngine } : {}),
  });
  const server = await startServer({
    engine,
    options: serverOptionsFromConfig(config),
    logger,
    metricsHook: metrics,
    alerts,
    tuner: tuned.tuner,
    authTokens: config.auth.tokens,
    onGeneration: (e) => tuned.tuner.onGeneration(e),
    // As `tuneloop serve` mounts them (serve.ts), so the harness serves every /api route.
    reports: { dir: config.tuner.reportsDir, timezone: config.tuner.timezone, index: () => store.reports() },
  });
  const url = server.url;
  return {
    config,
    engine,
    store,
    server,
    metrics,
    tuned,
    url,
    dir,
    async api(path, init = {}) {
      const res = await fetch(`${url}${path}`, {
        method: init.method ?? 'GET',
        headers: init.role ? bearer(init.role) : { 'content-type': 'application/json' },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async load({ clients, seconds, tickS = 1.5, outputLen = 24, signal }) {
      const timer = setInterval(() => void tuned.tuner.monitorTick('test'), tickS * 1000);
      try {
        const opts: LoadOptions = {
          url,
          model: config.model.name,
          concurrency: clients,
          durationS: seconds,
          outputLen: String(outputLen),
          ignoreEos: true,
          temperature: 0,
          seed: 1,
          slo: config.slo,
        };
        if (signal) opts.signal = signal;
        return await runLoad(opts);
      } finally {
        clearInterval(timer);
        await tuned.tuner.monitorTick('test');
      }
    },
    async stop() {
      await server.close();
      await tuned.close();
      await engine.close();
      store.close();
      if (!o.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
