// The Prometheus registry of one server: engine families pulled from one engine.stats() snapshot per scrape,
// HTTP families driven by the server, config/SLO/health/build families, tuner families (zero until the tuner runs),
// prom-client's process metrics, and with metrics.compat = vllm the vllm:* names. The registry is injected state of
// this object, never prom-client's global one, so tests and a shadow server can each have their own.
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { TuneloopConfig } from '../config/schema.js';
import { defineConfigFamilies, defineStaticFamilies, defineUpFamily } from './config-families.js';
import { defineEngineFamilies } from './engine-families.js';
import { defineMoeFamilies } from './moe-families.js';
import { defineGrammarFamilies } from './grammar-families.js';
import { FamilyBuilder } from './families.js';
import { defineHttpFamilies, type HttpRecorders } from './http-families.js';
import { defineStructuredFamilies, type StructuredRecorders } from './structured-families.js';
import { defineEmbeddingFamilies, type EmbeddingRecorders } from './embedding-families.js';
import { ScrapeSnapshots, type EngineBinding, type Role, type StatsSource } from './snapshot.js';
import { defineToolFamilies, type ToolOutcome } from './tool-families.js';
import { defineTunerFamilies, type TunerMetrics } from './tuner-families.js';
import { defineVllmFamilies } from './vllm-families.js';

export type { Role, StatsSource } from './snapshot.js';
export type { TunerMetrics } from './tuner-families.js';

export interface CreateMetricsOptions {
  /** The engine, or a getter for the one serving now (undefined while none is loaded: engine_up 0). */
  engine: StatsSource | (() => StatsSource | undefined);
  config: TuneloopConfig;
  /** Role of `engine`; default 'primary'. */
  role?: Role;
  /** The `model` label; default config.model.name. */
  modelName?: string;
}

export interface Metrics extends HttpRecorders, StructuredRecorders, EmbeddingRecorders {
  registry: Registry;
  /** Content-Type for the /metrics response. */
  contentType: string;
  /** The exposition text of one scrape (every engine read once). */
  metricsText(): Promise<string>;
  /** Report another engine (the tuner's shadow) in the same registry; returns a function that removes it. */
  attachEngine(engine: StatsSource | (() => StatsSource | undefined), role: Role, modelName: string): () => void;
  /** The tuner's families, for the tuner to drive. */
  tuner: TunerMetrics;
  /** Each finished generation request (hooks.ts fanOutFinished): the tool-call and reasoning families. */
  onRequest(record: { tools?: ToolOutcome | undefined }): void;
}

/** prom-client reports these gauges with a _total suffix, which Prometheus' linter rejects for non-counters
 *  ("non-counter metrics should not have _total suffix"); their unsuffixed siblings (by type) carry the same data. */
const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function createMetrics(opts: CreateMetricsOptions): Metrics {
  const registry = new Registry();
  const getter = (e: CreateMetricsOptions['engine']): (() => StatsSource | undefined) => (typeof e === 'function' ? e : () => e);
  const modelName = opts.modelName ?? opts.config.model.name;
  const role = opts.role ?? 'primary';
  const bindings: EngineBinding[] = [{ role, modelName, engine: getter(opts.engine) }];
  const snapshots = new ScrapeSnapshots(() => bindings);

  collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);

  const builder = new FamilyBuilder(registry, snapshots);
  defineEngineFamilies(builder);
  defineMoeFamilies(builder);
  defineGrammarFamilies(builder);
  defineConfigFamilies(builder);
  defineUpFamily(registry, snapshots);
  defineStaticFamilies(registry, opts.config);
  const http = defineHttpFamilies(registry, { model: modelName, role });
  const structured = defineStructuredFamilies(registry, { model: modelName, role });
  const embeddings = defineEmbeddingFamilies(registry, { model: modelName, role });
  const tuner = defineTunerFamilies(registry);
  const tools = defineToolFamilies(registry, { model: modelName, role });
  if (opts.config.metrics.compat === 'vllm') defineVllmFamilies(registry, snapshots);

  return {
    registry,
    contentType: registry.contentType,
    metricsText: () => snapshots.during(() => registry.metrics()),
    attachEngine(engine, r, name) {
      const b: EngineBinding = { role: r, modelName: name, engine: getter(engine) };
      bindings.push(b);
      return () => {
        const i = bindings.indexOf(b);
        if (i >= 0) bindings.splice(i, 1);
      };
    },
    tuner,
    onRequest(record) {
      if (record.tools) tools.observeTools(record.tools);
    },
    ...http,
    ...structured,
    ...embeddings,
  };
}
