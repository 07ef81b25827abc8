// The configuration's shape, defaults and documentation in one table. The validator (config.ts), the env-var names,
// docs/configuration.md and its test all read this table, so a key cannot exist without a type, a default and a doc.
import { defaultModelPath } from '../defaults.js';
import { KV_DTYPES, WEIGHTS_POLICIES, type KvDtype, type SchedulerSettings, type WeightsPolicy } from '../engine/types.js';

export interface ServerConfig {
  host: string;
  port: number;
  /** Bearer tokens accepted on every route; empty = authentication off. */
  apiKeys: string[];
  requestBodyLimitBytes: number;
  drainTimeoutMs: number;
}

/** Engine settings. Keys left undefined are chosen by the engine (see EngineOptions). */
export interface ModelConfig {
  path: string;
  name: string;
  weights: WeightsPolicy;
  kvDtype: KvDtype;
  tpDegree: number;
  threadsPerRank: number | undefined;
  threads: number | undefined;
  contextLength: number | undefined;
  kvBlockSizeTokens: number;
  kvCacheMaxBytes: number;
}

export interface SloConfig {
  ttftP99Seconds: number;
  interTokenP99Seconds: number;
  e2eP99Seconds: number;
  /** Fraction of requests allowed to fail (0..1). */
  errorRateBudget: number;
}

export type MetricsCompat = 'none' | 'vllm';
export const METRICS_COMPAT: readonly MetricsCompat[] = ['none', 'vllm'];

export interface MetricsConfig {
  compat: MetricsCompat;
  pricePerCoreHour: number;
}

/** pino's levels. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LoggingConfig {
  level: LogLevel;
}

export interface AlertsConfig {
  /** Bearer token Alertmanager sends to POST /api/alerts; '' disables the webhook routes. */
  webhookToken: string;
}

export interface TuneloopConfig {
  server: ServerConfig;
  model: ModelConfig;
  scheduler: SchedulerSettings;
  slo: SloConfig;
  metrics: MetricsConfig;
  logging: LoggingConfig;
  alerts: AlertsConfig;
}

export type SectionName = keyof TuneloopConfig;

interface FieldBase {
  doc: string;
  /** Absent (undefined) is allowed and means "the engine chooses"; YAML `null` means the same. */
  optional?: boolean;
  /** How the default reads in the docs when it is not a literal (e.g. computed at run time). */
  defaultDoc?: string;
}
export type FieldSpec = FieldBase &
  (
    | { kind: 'integer'; min: number; max: number }
    | { kind: 'number'; min: number; max: number; minExclusive?: boolean }
    | { kind: 'string'; allowEmpty?: boolean }
    | { kind: 'enum'; values: readonly string[] }
    | { kind: 'stringList' }
  );

/** Every key of every section must have a spec: the mapped type makes a missing one a compile error. */
export type ConfigSchema = { [S in SectionName]: { [K in keyof TuneloopConfig[S]]-?: FieldSpec } };

const MiB = 1024 * 1024;

export const CONFIG_SCHEMA: ConfigSchema = {
  server: {
    host: { kind: 'string', doc: 'Interface to listen on. 127.0.0.1 keeps the server local; 0.0.0.0 exposes it.' },
    port: { kind: 'integer', min: 0, max: 65535, doc: 'TCP port; 0 picks a free one (tests).' },
    apiKeys: {
      kind: 'stringList',
      doc: 'Bearer tokens (Authorization: Bearer …) accepted on the API routes; empty turns authentication off. ' +
        'In env vars and CLI overrides: comma-separated.',
    },
    requestBodyLimitBytes: { kind: 'integer', min: 1, max: 1024 * MiB, doc: 'Largest JSON request body accepted.' },
    drainTimeoutMs: {
      kind: 'integer', min: 0, max: 3_600_000,
      doc: 'On SIGTERM, how long in-flight requests may run before they are cancelled.',
    },
  },
  model: {
    path: {
      kind: 'string', defaultDoc: 'the embedded model, models/tuneloop-shakespeare.gguf',
      doc: 'GGUF v3 file (llama architecture). A relative path in the config file is relative to that file; ' +
        'from an env var or CLI override, relative to the working directory.',
    },
    name: { kind: 'string', doc: 'Model id served on /v1/models and in the `model` metric label.' },
    weights: {
      kind: 'enum', values: WEIGHTS_POLICIES,
      doc: 'Weight storage chosen at load (cold setting): f32, bf16, int8, int4, or mixed (bf16 attention, int8 FFN).',
    },
    kvDtype: { kind: 'enum', values: KV_DTYPES, doc: 'KV-cache element type (cold setting).' },
    tpDegree: {
      kind: 'integer', min: 1, max: 64,
      doc: "Tensor-parallel ranks; must divide the model's KV heads and FFN width (cold setting).",
    },
    threadsPerRank: {
      kind: 'integer', min: 1, max: 256, optional: true, defaultDoc: 'threads / tpDegree',
      doc: 'Compute threads per tensor-parallel rank (cold setting).',
    },
    threads: {
      kind: 'integer', min: 1, max: 256, optional: true, defaultDoc: 'all cores',
      doc: 'Compute threads in all (tpDegree × threadsPerRank).',
    },
    contextLength: {
      kind: 'integer', min: 2, max: 1 << 20, optional: true, defaultDoc: "the model's trained context length",
      doc: "Context window in tokens; at most the model's trained context length (cold setting).",
    },
    kvBlockSizeTokens: { kind: 'integer', min: 1, max: 1024, doc: 'Tokens per KV-cache block (cold setting).' },
    kvCacheMaxBytes: {
      kind: 'integer', min: 1 << 16, max: Number.MAX_SAFE_INTEGER,
      doc: 'Byte budget of the KV-cache pool (at least one full context, at most 64 blocks are allocated).',
    },
  },
  scheduler: {
    maxBatchSize: { kind: 'integer', min: 1, max: 4096, doc: 'Sequences per engine step (hot: changes live).' },
    maxBatchTokens: {
      kind: 'integer', min: 1, max: 1 << 20,
      doc: 'Tokens per engine step; longer prompts are prefilled in chunks (hot).',
    },
    maxQueueDelayMs: {
      kind: 'number', min: 0, max: 60_000,
      doc: 'How long an under-full batch may wait for more work when nothing is running (hot).',
    },
    queueGrowThreshold: {
      kind: 'integer', min: 0, max: 1 << 20,
      doc: 'When more than this many requests wait, a batch runs at once at up to maxBatchSize (hot).',
    },
    maxQueueLength: {
      kind: 'integer', min: 0, max: 1 << 20,
      doc: 'Beyond this many waiting requests new ones are refused (HTTP 429, QUEUE_FULL) (hot).',
    },
  },
  slo: {
    ttftP99Seconds: {
      kind: 'number', min: 0, max: 3600, minExclusive: true,
      doc: 'Objective for the p99 time to first token; exported as tuneloop_slo_target_seconds{objective="ttft_p99"}.',
    },
    interTokenP99Seconds: {
      kind: 'number', min: 0, max: 3600, minExclusive: true,
      doc: 'Objective for the p99 inter-token latency (objective="inter_token_p99").',
    },
    e2eP99Seconds: {
      kind: 'number', min: 0, max: 86_400, minExclusive: true,
      doc: 'Objective for the p99 end-to-end request latency (objective="e2e_p99").',
    },
    errorRateBudget: {
      kind: 'number', min: 0, max: 1,
      doc: 'Fraction of requests allowed to fail; exported as tuneloop_slo_error_rate_budget_ratio.',
    },
  },
  metrics: {
    compat: {
      kind: 'enum', values: METRICS_COMPAT,
      doc: 'vllm: also export the vllm:* names that vLLM dashboards and autoscalers read (label model_name).',
    },
    pricePerCoreHour: {
      kind: 'number', min: 0, max: 1000,
      doc: 'Price of one CPU core for an hour, in your currency; used for capacity and cost figures.',
    },
  },
  logging: {
    level: { kind: 'enum', values: LOG_LEVELS, doc: 'Log level (pino).' },
  },
  alerts: {
    webhookToken: {
      kind: 'string', allowEmpty: true,
      doc: 'Bearer token Alertmanager must send (http_config.authorization) to the webhook receiver POST /api/alerts ' +
        '(and GET /api/alerts). Empty disables both routes (404). Wrong or missing token: 401.',
    },
  },
};

/** Defaults; `model.path` is computed from the package location. Deep-frozen: loadConfig() returns copies. */
export const DEFAULT_CONFIG: Readonly<TuneloopConfig> = deepFreeze({
  server: { host: '127.0.0.1', port: 8080, apiKeys: [], requestBodyLimitBytes: MiB, drainTimeoutMs: 30_000 },
  model: {
    path: defaultModelPath(),
    name: 'tuneloop-shakespeare',
    weights: 'f32',
    kvDtype: 'f32',
    tpDegree: 1,
    threadsPerRank: undefined,
    threads: undefined,
    contextLength: undefined,
    kvBlockSizeTokens: 16,
    kvCacheMaxBytes: 256 * MiB,
  },
  scheduler: { maxBatchSize: 16, maxBatchTokens: 512, maxQueueDelayMs: 2, queueGrowThreshold: 32, maxQueueLength: 256 },
  slo: { ttftP99Seconds: 1.0, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 },
  metrics: { compat: 'none', pricePerCoreHour: 0.05 },
  logging: { level: 'info' },
  alerts: { webhookToken: '' },
});

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** `maxBatchSize` → `MAX_BATCH_SIZE`; `ttftP99Seconds` → `TTFT_P99_SECONDS`. */
export function envKeyOf(section: string, key: string): string {
  const snake = key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
  return `TUNELOOP_${section.toUpperCase()}_${snake}`;
}

export interface ConfigKeyDoc {
  path: string;
  env: string;
  type: string;
  default: string;
  doc: string;
}

/** One row per key, in schema order: what docs/configuration.md must list. */
export function configKeyDocs(): ConfigKeyDoc[] {
  const rows: ConfigKeyDoc[] = [];
  for (const [section, fields] of Object.entries(CONFIG_SCHEMA) as [SectionName, Record<string, FieldSpec>][]) {
    for (const [key, spec] of Object.entries(fields)) {
      const def = (DEFAULT_CONFIG[section] as unknown as Record<string, unknown>)[key];
      rows.push({
        path: `${section}.${key}`,
        env: envKeyOf(section, key),
        type: typeDoc(spec),
        default: spec.defaultDoc ?? JSON.stringify(def),
        doc: spec.doc,
      });
    }
  }
  return rows;
}

export function typeDoc(spec: FieldSpec): string {
  switch (spec.kind) {
    case 'integer': return `integer ${spec.min}..${spec.max}`;
    case 'number': return `number ${spec.minExclusive ? '>' : '≥'} ${spec.min}, ≤ ${spec.max}`;
    case 'string': return spec.allowEmpty ? 'string (may be empty)' : 'non-empty string';
    case 'enum': return spec.values.join(' | ');
    case 'stringList': return 'list of non-empty strings';
  }
}
