// The configuration's shape, defaults and documentation in one table. The validator (config.ts), the env-var names,
// docs/configuration.md and its test all read this table, so a key cannot exist without a type, a default and a doc.
import { defaultModelPath } from '../defaults.js';
import { KV_DTYPES, WEIGHTS_POLICIES, type KvDtype, type SchedulerSettings, type WeightsPolicy } from '../engine/types.js';
import { COLD_KNOBS, HOT_KNOBS, type ColdKnob, type HotKnob } from '../engine/knobs.js';

export interface ServerConfig {
  host: string;
  port: number;
  /** Bearer tokens accepted on /v1/*; empty = authentication off there (the tuner API uses auth.tokens). */
  apiKeys: string[];
  requestBodyLimitBytes: number;
  drainTimeoutMs: number;
  /** Exact origins allowed cross-origin (CORS); empty = none (security.ts). */
  corsOrigins: string[];
  /** Requests per minute per key or client address on /v1 and /api; 0 = no limit. */
  rateLimitPerMinute: number;
  /** Requests a key may send at once before the per-minute rate applies. */
  rateLimitBurst: number;
  /** Generation requests in flight per key or client address; 0 = no limit. */
  maxConcurrentStreamsPerKey: number;
  /** Most prompt tokens per request; undefined = the context window's. */
  maxPromptTokens: number | undefined;
  /** Largest max_tokens accepted; undefined = only the context window bounds it. */
  maxTokensLimit: number | undefined;
  /** Tokens per streamed event after the first; 1 = every delivered batch at once. */
  streamInterval: number;
}

/** Engine settings. Keys left undefined are chosen by the engine (see EngineOptions). */
export interface ModelConfig {
  path: string;
  name: string;
  weights: WeightsPolicy;
  kvDtype: KvDtype;
  tpDegree: number;
  /** Expert-parallel ranks (MoE models). */
  epDegree: number;
  /** Replicated experts as `LAYER:EXPERT` (MoE models). */
  redundantExperts: string[];
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

/** Any knob the tuner manages (hot or cold). */
export type TunerKnob = HotKnob | ColdKnob;
export const TUNER_KNOBS: readonly TunerKnob[] = [...HOT_KNOBS, ...COLD_KNOBS];

export type MetricsSource = 'registry' | 'prometheus';
export const METRICS_SOURCES: readonly MetricsSource[] = ['registry', 'prometheus'];

export interface TunerConfig {
  enabled: boolean;
  /** SQLite file of proposals, settings history, rollups and the audit log. */
  storePath: string;
  /** IANA zone the three cron schedules are read in. */
  timezone: string;
  monitorCron: string;
  analyzeCron: string;
  reportCron: string;
  /** Folder the weekly reports are written to (`<YYYY>-W<ww>.md`, `.html`, `.json`). */
  reportsDir: string;
  /** The service's name in report headers. */
  serviceName: string;
  metricsSource: MetricsSource;
  /** Base URL of the Prometheus HTTP API; required when metricsSource is 'prometheus'. */
  prometheusUrl: string;
  /** Extra PromQL label matchers added to every query, e.g. `job="tuneloop"`. */
  prometheusSelector: string;
  analysisWindowMinutes: number;
  alertTriggersAnalysis: boolean;
  maxCandidates: number;
  /** Knobs applied after verification without a human. */
  autoApply: TunerKnob[];
  /** Knobs whose proposals wait for an approver. */
  requireApproval: TunerKnob[];
  /** Knobs never proposed (wins over autoApply and requireApproval). */
  forbid: TunerKnob[];
  failedCooldownHours: number;
  proposalTtlHours: number;
  rollupRetentionDays: number;
  watchChecks: number;
  watchFailureThreshold: number;
  watchIntervalSeconds: number;
  /** Largest relative goodput drop during the watch before a change is rolled back (0..1). */
  watchMaxGoodputDrop: number;
}

/** Shadow verification of a candidate (named …Section: `VerifyConfig` reads like a function). */
export interface VerifyConfigSection {
  /** Share of live requests mirrored to the shadows, 0..1. */
  shadowShare: number;
  /** Mean cosine similarity of next-token distributions the candidate must reach. */
  similarityBar: number;
  /** Share of positions where baseline and candidate pick the same greedy token, at least. */
  greedyAgreementBar: number;
  /** Relative probe-set perplexity increase allowed (0.05 = 5%). */
  perplexityDeltaBar: number;
  /** Minimum mirrored requests, and minimum replayed requests per arm. */
  minSamples: number;
  /** Confidence of the latency tests; alpha = 1 − confidence. */
  confidence: number;
  /** |rank-biserial correlation| needed to call a latency difference (a tiny but significant shift is 'same'). */
  effectSizeBar: number;
  /** Compute threads per shadow engine. */
  shadowThreads: number;
  timeoutSeconds: number;
  seed: number;
}

export type ApiRole = 'viewer' | 'approver' | 'admin';
/** Least to most privileged: a role may do everything the roles before it may. */
export const API_ROLES: readonly ApiRole[] = ['viewer', 'approver', 'admin'];

/** One bearer token of the tuner's REST API: only its SHA-256 is configured, never the token itself. */
export interface ApiToken {
  /** Who holds it; recorded in the audit log as the actor. */
  name: string;
  role: ApiRole;
  /** 64 lowercase hex digits: `tuneloop hash-token`. */
  sha256: string;
}

export interface AuthConfig {
  tokens: ApiToken[];
  /** Refuse an approval by the identity that requested the change (four-eyes rule). */
  requireDistinctApprover: boolean;
}

export interface TuneloopConfig {
  server: ServerConfig;
  model: ModelConfig;
  scheduler: SchedulerSettings;
  slo: SloConfig;
  metrics: MetricsConfig;
  logging: LoggingConfig;
  alerts: AlertsConfig;
  tuner: TunerConfig;
  verify: VerifyConfigSection;
  auth: AuthConfig;
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
    | { kind: 'string'; allowEmpty?: boolean; format?: StringFormat }
    | { kind: 'enum'; values: readonly string[] }
    /** `values`: every item must be one of them (and the list has no repeats). */
    | { kind: 'stringList'; values?: readonly string[]; format?: StringFormat }
    | { kind: 'boolean' }
    /** A list of {name, role, sha256}; in env vars and overrides comma-separated `name:role:sha256`. */
    | { kind: 'tokenList' }
  );

/** What a string must also be, beyond its kind (checked in config.ts). */
export type StringFormat = 'cron' | 'timezone' | 'url' | 'origin' | 'apiKey' | 'expertRef';

/** Every key of every section must have a spec: the mapped type makes a missing one a compile error. */
export type ConfigSchema = { [S in SectionName]: { [K in keyof TuneloopConfig[S]]-?: FieldSpec } };

const MiB = 1024 * 1024;

export const CONFIG_SCHEMA: ConfigSchema = {
  server: {
    host: { kind: 'string', doc: 'Interface to listen on. 127.0.0.1 keeps the server local; 0.0.0.0 exposes it.' },
    port: { kind: 'integer', min: 0, max: 65535, doc: 'TCP port; 0 picks a free one (tests).' },
    apiKeys: {
      kind: 'stringList',
      format: 'apiKey',
      doc:
        'Bearer tokens (Authorization: Bearer …) accepted on the OpenAI routes (/v1/*); empty turns authentication off ' +
        'there. Give each as sha256:HEX, the output of `tuneloop hash-token KEY` prefixed, so the config never holds the ' +
        'key itself; a plain key still works but is warned about at startup. The tuner API under /api uses auth.tokens ' +
        'instead. In env vars and CLI overrides: comma-separated.',
    },
    requestBodyLimitBytes: { kind: 'integer', min: 1, max: 1024 * MiB, doc: 'Largest JSON request body accepted.' },
    drainTimeoutMs: {
      kind: 'integer',
      min: 0,
      max: 3_600_000,
      doc: 'On SIGTERM, how long in-flight requests may run before they are cancelled.',
    },
    corsOrigins: {
      kind: 'stringList',
      format: 'origin',
      doc:
        'Browser origins (exact scheme://host[:port], e.g. https://ops.example.com) allowed to call the server cross-origin ' +
        '(CORS). Empty: CORS is closed, no Access-Control-Allow-Origin is ever sent. In env vars and CLI overrides: comma-separated.',
    },
    rateLimitPerMinute: {
      kind: 'integer',
      min: 0,
      max: 1_000_000,
      doc:
        'Requests per minute per API key or token (per client address when anonymous or the token is unknown) on /v1 and ' +
        '/api, as a token bucket; beyond it 429 rate_limit_exceeded with Retry-After. 0 turns it off. /healthz, /readyz and ' +
        '/metrics are not limited.',
    },
    rateLimitBurst: {
      kind: 'integer',
      min: 1,
      max: 1_000_000,
      doc: "Requests a key may send back to back before rateLimitPerMinute paces it (the token bucket's size).",
    },
    maxConcurrentStreamsPerKey: {
      kind: 'integer',
      min: 0,
      max: 1_000_000,
      doc:
        'Generation requests (/v1/completions, /v1/chat/completions; streamed or not) one API key or client address may have ' +
        'in flight; one more is 429 rate_limit_exceeded. 0 turns it off.',
    },
    maxPromptTokens: {
      kind: 'integer',
      min: 1,
      max: 1 << 20,
      optional: true,
      defaultDoc: "the model's context length",
      doc: 'Most prompt tokens per request (after the chat template); more is 400 context_length_exceeded naming prompt or messages.',
    },
    maxTokensLimit: {
      kind: 'integer',
      min: 1,
      max: 1 << 20,
      optional: true,
      defaultDoc: 'no limit but the context window',
      doc: 'Largest max_tokens (max_completion_tokens) a request may ask for; more is 400 naming the field. Requests without ' + 'one are capped to it.',
    },
    streamInterval: {
      kind: 'integer',
      min: 1,
      max: 4096,
      doc:
        "Tokens per server-sent event of a stream after its first (as vLLM's and SGLang's --stream-interval): tokens are " +
        'held until that many have gathered, so clients get fewer, larger events and each token waits up to that many ' +
        'decode steps. The first event never waits. 1 sends every batch of tokens as soon as it is delivered (tokens that ' +
        'arrive together always share one event).',
    },
  },
  model: {
    path: {
      kind: 'string',
      defaultDoc: 'the embedded model, models/tuneloop-shakespeare.gguf',
      doc:
        'GGUF v3 file (llama architecture). A relative path in the config file is relative to that file; ' +
        'from an env var or CLI override, relative to the working directory.',
    },
    name: { kind: 'string', doc: 'Model id served on /v1/models and in the `model` metric label.' },
    weights: {
      kind: 'enum',
      values: WEIGHTS_POLICIES,
      doc:
        'Weight storage chosen at load (cold setting). native: every tensor in the type the file holds (F16, BF16, ' +
        'Q8_0, Q4_K, … as is); f32, bf16: dequantized; q8_0, q6_k, q5_k, q4_k, q4_0: re-quantized to that GGUF block ' +
        "type (rows that are not whole blocks fall back as llama.cpp's quantizer does); mixed: bf16 attention, q8_0 " +
        'FFN, embeddings and output head. int8 and int4 are accepted aliases of q8_0 and q4_0. The engine refuses ' +
        '(INVALID_ARGUMENT) a policy that would re-quantize an already quantized tensor into as many or more bits.',
    },
    kvDtype: { kind: 'enum', values: KV_DTYPES, doc: 'KV-cache element type (cold setting).' },
    tpDegree: {
      kind: 'integer',
      min: 1,
      max: 64,
      doc: "Tensor-parallel ranks; must divide the model's KV heads and FFN width (cold setting).",
    },
    epDegree: {
      kind: 'integer',
      min: 1,
      max: 64,
      doc:
        "Mixture-of-Experts models: expert-parallel ranks, each owning a slice of every MoE layer's routed experts; tokens " +
        'go to the rank that owns their expert and come back (an all-to-all). Must divide the expert count; a dense model ' +
        'takes only 1 (cold setting, a tuner knob).',
    },
    redundantExperts: {
      kind: 'stringList',
      format: 'expertRef',
      doc:
        'Mixture-of-Experts models: experts also held on a second rank, as LAYER:EXPERT (3:17 = expert 17 of block 3), so ' +
        "the hottest experts' tokens split between two ranks. Only meaningful with epDegree > 1 (cold setting, a tuner " +
        'knob). In env vars and CLI overrides: comma-separated.',
    },
    threadsPerRank: {
      kind: 'integer',
      min: 1,
      max: 256,
      optional: true,
      defaultDoc: 'threads / tpDegree',
      doc: 'Compute threads per tensor-parallel rank (cold setting).',
    },
    threads: {
      kind: 'integer',
      min: 1,
      max: 256,
      optional: true,
      defaultDoc: 'all cores',
      doc: 'Compute threads in all (tpDegree × threadsPerRank).',
    },
    contextLength: {
      kind: 'integer',
      min: 2,
      max: 1 << 20,
      optional: true,
      defaultDoc: "the model's trained context length",
      doc: "Context window in tokens; at most the model's trained context length (cold setting).",
    },
    kvBlockSizeTokens: { kind: 'integer', min: 1, max: 1024, doc: 'Tokens per KV-cache block (cold setting).' },
    kvCacheMaxBytes: {
      kind: 'integer',
      min: 1 << 16,
      max: Number.MAX_SAFE_INTEGER,
      doc: 'Byte budget of the KV-cache pool (at least one full context, at most 64 blocks are allocated).',
    },
  },
  scheduler: {
    maxBatchSize: { kind: 'integer', min: 1, max: 4096, doc: 'Sequences per engine step (hot: changes live).' },
    maxBatchTokens: {
      kind: 'integer',
      min: 1,
      max: 1 << 20,
      doc: 'Tokens per engine step; longer prompts are prefilled in chunks (hot).',
    },
    maxQueueDelayMs: {
      kind: 'number',
      min: 0,
      max: 60_000,
      doc: 'How long an under-full batch may wait for more work when nothing is running (hot).',
    },
    queueGrowThreshold: {
      kind: 'integer',
      min: 0,
      max: 1 << 20,
      doc: 'When more than this many requests wait, a batch runs at once at up to maxBatchSize (hot).',
    },
    maxQueueLength: {
      kind: 'integer',
      min: 0,
      max: 1 << 20,
      doc: 'Beyond this many waiting requests new ones are refused (HTTP 429, QUEUE_FULL) (hot).',
    },
  },
  slo: {
    ttftP99Seconds: {
      kind: 'number',
      min: 0,
      max: 3600,
      minExclusive: true,
      doc: 'Objective for the p99 time to first token; exported as tuneloop_slo_target_seconds{objective="ttft_p99"}.',
    },
    interTokenP99Seconds: {
      kind: 'number',
      min: 0,
      max: 3600,
      minExclusive: true,
      doc: 'Objective for the p99 inter-token latency (objective="inter_token_p99").',
    },
    e2eP99Seconds: {
      kind: 'number',
      min: 0,
      max: 86_400,
      minExclusive: true,
      doc: 'Objective for the p99 end-to-end request latency (objective="e2e_p99").',
    },
    errorRateBudget: {
      kind: 'number',
      min: 0,
      max: 1,
      doc: 'Fraction of requests allowed to fail; exported as tuneloop_slo_error_rate_budget_ratio.',
    },
  },
  metrics: {
    compat: {
      kind: 'enum',
      values: METRICS_COMPAT,
      doc: 'vllm: also export the vllm:* names that vLLM dashboards and autoscalers read (label model_name).',
    },
    pricePerCoreHour: {
      kind: 'number',
      min: 0,
      max: 1000,
      doc: 'Price of one CPU core for an hour, in your currency; used for capacity and cost figures.',
    },
  },
  logging: {
    level: { kind: 'enum', values: LOG_LEVELS, doc: 'Log level (pino).' },
  },
  alerts: {
    webhookToken: {
      kind: 'string',
      allowEmpty: true,
      doc:
        'Bearer token Alertmanager must send (http_config.authorization) to the webhook receiver POST /api/alerts ' +
        '(and GET /api/alerts). Empty disables both routes (404). Wrong or missing token: 401.',
    },
  },
  tuner: {
    enabled: { kind: 'boolean', doc: 'Run the tuner: scheduled monitoring, analysis and proposals. false leaves the settings alone.' },
    storePath: {
      kind: 'string',
      doc:
        'SQLite file of proposals, settings history, rollups and the audit log. A relative path in the config file is ' +
        'relative to that file; from the default, an env var or CLI override, relative to the working directory.',
    },
    timezone: { kind: 'string', format: 'timezone', doc: 'IANA time zone the cron schedules are read in (e.g. Europe/Berlin).' },
    monitorCron: { kind: 'string', format: 'cron', doc: 'When to roll up the metrics into a window summary (cron, 5 or 6 fields).' },
    analyzeCron: { kind: 'string', format: 'cron', doc: 'When to analyze the recent windows and propose changes.' },
    reportCron: { kind: 'string', format: 'cron', doc: 'When to write the weekly report on the last complete ISO week (default Monday 09:00).' },
    reportsDir: {
      kind: 'string',
      doc:
        'Folder the weekly reports are written to (YYYY-Www.md, .html and .json, e.g. 2026-W47.md) and GET /api/reports reads. ' +
        'A relative path in the config file is relative to that file; from the default, an env var or CLI override, relative ' +
        'to the working directory.',
    },
    serviceName: { kind: 'string', doc: 'The service named in the weekly report header.' },
    metricsSource: {
      kind: 'enum',
      values: METRICS_SOURCES,
      doc: "Where the tuner reads metrics: registry (this process's own) or prometheus (tuner.prometheusUrl).",
    },
    prometheusUrl: {
      kind: 'string',
      allowEmpty: true,
      format: 'url',
      doc: 'Base URL of the Prometheus HTTP API (http://prometheus:9090); required when metricsSource is prometheus.',
    },
    prometheusSelector: {
      kind: 'string',
      allowEmpty: true,
      doc: 'Extra PromQL label matchers added to every query, e.g. job="tuneloop" (without braces).',
    },
    analysisWindowMinutes: { kind: 'integer', min: 1, max: 1440, doc: 'How many minutes of recent windows one analysis reads.' },
    alertTriggersAnalysis: {
      kind: 'boolean',
      doc: 'A firing alert on POST /api/alerts starts an analysis at once, outside the schedule.',
    },
    maxCandidates: { kind: 'integer', min: 1, max: 10, doc: 'Most candidate changes proposed (and verified) per analysis.' },
    autoApply: {
      kind: 'stringList',
      values: TUNER_KNOBS,
      doc: 'Knobs whose verified changes are applied without a human. In env vars and CLI overrides: comma-separated.',
    },
    requireApproval: {
      kind: 'stringList',
      values: TUNER_KNOBS,
      doc: 'Knobs whose verified changes wait for an approver (POST /api/proposals/:id/approve). ' + 'A knob may not be in both autoApply and requireApproval.',
    },
    forbid: {
      kind: 'stringList',
      values: TUNER_KNOBS,
      doc: 'Knobs the tuner never proposes; wins over autoApply and requireApproval.',
    },
    failedCooldownHours: {
      kind: 'number',
      min: 0,
      max: 8760,
      doc: 'After a change fails verification or is rolled back, how long the same change is not proposed again.',
    },
    proposalTtlHours: {
      kind: 'number',
      min: 0,
      max: 8760,
      minExclusive: true,
      doc: 'A proposal not approved or applied within this many hours expires.',
    },
    rollupRetentionDays: {
      kind: 'integer',
      min: 35,
      max: 3650,
      doc: 'Days of per-minute window summaries kept (at least five weeks, for week-over-week reports).',
    },
    watchChecks: { kind: 'integer', min: 1, max: 1000, doc: 'Checks after an apply before a change is confirmed.' },
    watchFailureThreshold: {
      kind: 'integer',
      min: 1,
      max: 1000,
      doc: 'Failed watch checks that roll a change back; at most watchChecks.',
    },
    watchIntervalSeconds: { kind: 'integer', min: 1, max: 86_400, doc: 'Seconds between watch checks.' },
    watchMaxGoodputDrop: {
      kind: 'number',
      min: 0,
      max: 1,
      doc: 'A watch check fails when goodput falls by more than this fraction of the pre-change baseline (or an SLO is missed).',
    },
  },
  verify: {
    shadowShare: {
      kind: 'number',
      min: 0,
      max: 1,
      minExclusive: true,
      doc: 'Share of live requests mirrored to the shadow engines while a candidate is verified.',
    },
    similarityBar: {
      kind: 'number',
      min: 0,
      max: 1,
      doc: 'Mean cosine similarity of next-token distributions (candidate vs baseline) the candidate must reach.',
    },
    greedyAgreementBar: {
      kind: 'number',
      min: 0,
      max: 1,
      doc: 'Share of positions where candidate and baseline pick the same greedy token, at least.',
    },
    perplexityDeltaBar: {
      kind: 'number',
      min: 0,
      max: 10,
      doc: 'Relative probe-set perplexity increase allowed (0.05 = 5%).',
    },
    minSamples: { kind: 'integer', min: 2, max: 1_000_000, doc: 'Fewest mirrored requests, and replayed requests per arm, for a verdict; fewer: inconclusive.' },
    confidence: {
      kind: 'number',
      min: 0.5,
      max: 0.9999,
      doc: 'Confidence of the latency tests (Mann-Whitney U): a difference counts when p < 1 − confidence.',
    },
    effectSizeBar: {
      kind: 'number',
      min: 0,
      max: 1,
      doc: '|Rank-biserial correlation| needed to call a latency difference (a tiny but significant shift is the same).',
    },
    shadowThreads: { kind: 'integer', min: 1, max: 256, doc: 'Compute threads of each shadow engine.' },
    timeoutSeconds: { kind: 'integer', min: 1, max: 86_400, doc: 'A verification not done within this many seconds is inconclusive.' },
    seed: { kind: 'integer', min: 0, max: 0xffff_ffff, doc: 'Random seed of verification (which requests are mirrored, replay sampling), for reproducible runs.' },
  },
  auth: {
    tokens: {
      kind: 'tokenList',
      doc:
        'Bearer tokens of the tuner REST API (/api/tuner, /api/proposals, /api/config, /api/audit): entries ' +
        '{name, role, sha256} with role viewer, approver or admin and sha256 the hex SHA-256 of the token ' +
        '(`tuneloop hash-token`). Empty: GET routes are open read-only and every change is refused (403). ' +
        'In env vars and CLI overrides: comma-separated name:role:sha256.',
    },
    requireDistinctApprover: {
      kind: 'boolean',
      doc:
        'Four-eyes rule: the identity whose POST /api/tuner/run produced a proposal may not approve it (403). ' +
        'Proposals from scheduled runs are requested by the tuner itself.',
    },
  },
};

/** Defaults; `model.path` is computed from the package location. Deep-frozen: loadConfig() returns copies. */
export const DEFAULT_CONFIG: Readonly<TuneloopConfig> = deepFreeze({
  server: {
    host: '127.0.0.1',
    port: 8080,
    apiKeys: [],
    requestBodyLimitBytes: MiB,
    drainTimeoutMs: 30_000,
    corsOrigins: [],
    rateLimitPerMinute: 6000,
    rateLimitBurst: 200,
    maxConcurrentStreamsPerKey: 64,
    maxPromptTokens: undefined,
    maxTokensLimit: undefined,
    streamInterval: 1,
  },
  model: {
    path: defaultModelPath(),
    name: 'tuneloop-shakespeare',
    weights: 'native',
    kvDtype: 'f32',
    tpDegree: 1,
    epDegree: 1,
    redundantExperts: [],
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
  tuner: {
    enabled: true,
    storePath: '.tuneloop/tuner.db',
    timezone: 'UTC',
    monitorCron: '* * * * *',
    analyzeCron: '*/15 * * * *',
    reportCron: '0 9 * * 1',
    reportsDir: 'reports',
    serviceName: 'tuneloop',
    metricsSource: 'registry',
    prometheusUrl: '',
    prometheusSelector: '',
    analysisWindowMinutes: 15,
    alertTriggersAnalysis: true,
    maxCandidates: 3,
    autoApply: ['maxBatchSize', 'maxBatchTokens', 'maxQueueDelayMs', 'queueGrowThreshold', 'maxQueueLength'],
    requireApproval: ['weights', 'kvDtype', 'tpDegree', 'threadsPerRank', 'epDegree', 'redundantExperts'],
    forbid: [],
    failedCooldownHours: 24,
    proposalTtlHours: 72,
    rollupRetentionDays: 42,
    watchChecks: 5,
    watchFailureThreshold: 2,
    watchIntervalSeconds: 60,
    watchMaxGoodputDrop: 0.1,
  },
  verify: {
    shadowShare: 0.05,
    similarityBar: 0.98,
    greedyAgreementBar: 0.9,
    perplexityDeltaBar: 0.05,
    minSamples: 20,
    confidence: 0.95,
    effectSizeBar: 0.2,
    shadowThreads: 1,
    timeoutSeconds: 600,
    seed: 0,
  },
  auth: { tokens: [], requireDistinctApprover: false },
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

const STRING_FORMAT_DOCS: Record<StringFormat, string> = {
  cron: 'cron expression',
  timezone: 'IANA time zone',
  url: 'http(s) URL',
  origin: 'origin (scheme://host[:port])',
  apiKey: 'sha256:HEX digest (or a plain key)',
  expertRef: 'LAYER:EXPERT',
};

export function typeDoc(spec: FieldSpec): string {
  switch (spec.kind) {
    case 'integer':
      return `integer ${spec.min}..${spec.max}`;
    case 'number':
      return `number ${spec.minExclusive ? '>' : '≥'} ${spec.min}, ≤ ${spec.max}`;
    case 'string': {
      const what = spec.format ? STRING_FORMAT_DOCS[spec.format] : 'string';
      return spec.allowEmpty ? `${what} (may be empty)` : spec.format ? what : 'non-empty string';
    }
    case 'enum':
      return spec.values.join(' | ');
    case 'stringList':
      if (spec.values) return `list of: ${spec.values.join(' | ')}`;
      return spec.format ? `list of ${STRING_FORMAT_DOCS[spec.format]}` : 'list of non-empty strings';
    case 'boolean':
      return 'boolean';
    case 'tokenList':
      return `list of {name, role: ${API_ROLES.join(' | ')}, sha256}`;
  }
}
