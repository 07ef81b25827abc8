// Configuration, SLO and health families. Live settings come from the engine snapshot (what is in force, after
// reconfigure/reload), so dashboards and alert rules compare against the running configuration, not the file.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import { packageRoot } from '../defaults.js';
import type { TuneloopConfig } from '../config/schema.js';
import type { FamilyBuilder } from './families.js';
import { PulledMetric, registerPulled } from './pulled.js';
import type { ScrapeSnapshots } from './snapshot.js';

export function defineConfigFamilies(f: FamilyBuilder): void {
  f.labelled('tuneloop_config_info', 'The live engine settings as labels (value 1).', 'gauge', (s) => {
    const c = s.stats.settings;
    return [
      [
        {
          weights: c.weights,
          kv_dtype: c.kvDtype,
          tp_degree: c.tpDegree,
          threads_per_rank: c.threadsPerRank,
          threads: s.info.threads,
          kv_block_size_tokens: c.kvBlockSizeTokens,
          context_length: c.contextLength,
          kv_cache_blocks: c.kvCacheBlocks,
          max_batch_size: c.maxBatchSize,
          max_batch_tokens: c.maxBatchTokens,
          max_queue_delay_ms: c.maxQueueDelayMs,
          queue_grow_threshold: c.queueGrowThreshold,
          max_queue_length: c.maxQueueLength,
          allreduce_delay_us: c.allreduceDelayUs,
        },
        1,
      ],
    ];
  });
  // One gauge per numeric knob, so alert rules and the tuner can do arithmetic on them.
  const knob = (name: string, help: string, v: (c: import('../engine/types.js').EngineStats['settings']) => number): void =>
    f.gauge(`tuneloop_config_${name}`, help, (s) => v(s.stats.settings));
  knob('max_batch_size', 'Live scheduler.maxBatchSize: sequences per step.', (c) => c.maxBatchSize);
  knob('max_batch_tokens', 'Live scheduler.maxBatchTokens: tokens per step.', (c) => c.maxBatchTokens);
  knob('max_queue_delay_seconds', 'Live scheduler.maxQueueDelayMs, in seconds.', (c) => c.maxQueueDelayMs / 1000);
  knob('queue_grow_threshold', 'Live scheduler.queueGrowThreshold: waiting requests that trigger a batch at once.', (c) => c.queueGrowThreshold);
  knob('max_queue_length', 'Live scheduler.maxQueueLength: waiting requests beyond which new ones are refused.', (c) => c.maxQueueLength);
  knob('tp_degree', 'Live tensor-parallel degree.', (c) => c.tpDegree);
  knob('threads_per_rank', 'Live compute threads per tensor-parallel rank.', (c) => c.threadsPerRank);
  knob('kv_block_size_tokens', 'Live tokens per KV-cache block.', (c) => c.kvBlockSizeTokens);
  knob('context_length_tokens', 'Live context window.', (c) => c.contextLength);
  knob('kv_cache_blocks', 'Live KV-cache pool size in blocks.', (c) => c.kvCacheBlocks);
  knob('allreduce_delay_seconds', 'Injected delay per all-reduce (benchmarks only), in seconds.', (c) => c.allreduceDelayUs / 1e6);
  f.gauge('tuneloop_config_threads', 'Compute threads in all.', (s) => s.info.threads);

  // ---- health read from the engine ----
  f.gauge('tuneloop_model_load_seconds', 'Time the model took to load.', (s) => s.info.loadMs / 1000);
  f.counter('tuneloop_cold_starts_total', 'Model instances built: the initial load plus each reload.', (s) => 1 + s.stats.reloads);
  f.labelled('tuneloop_model_info', 'The loaded model (value 1).', 'gauge', (s) => [
    [
      {
        architecture: s.info.architecture,
        model_file_name: s.info.name,
        tokenizer: s.info.tokenizer.model,
        kernels: s.info.kernels,
      },
      1,
    ],
  ]);
}

export function defineUpFamily(registry: Registry, snapshots: ScrapeSnapshots): void {
  registerPulled(
    registry,
    new PulledMetric('tuneloop_engine_up', 'Whether the engine is loaded and serving (1) or not (0).', 'gauge', () =>
      snapshots.read().map((s) => ({ labels: s.labels, value: s.stats ? 1 : 0 })),
    ),
  );
}

/** Families fixed for the life of the process: set once. */
export function defineStaticFamilies(registry: Registry, config: TuneloopConfig): void {
  const slo = new Gauge({
    name: 'tuneloop_slo_target_seconds',
    help: 'Latency objectives from the config (slo.*), so alert rules need no hard-coded numbers.',
    labelNames: ['objective'] as const,
    registers: [registry],
  });
  slo.set({ objective: 'ttft_p99' }, config.slo.ttftP99Seconds);
  slo.set({ objective: 'inter_token_p99' }, config.slo.interTokenP99Seconds);
  slo.set({ objective: 'e2e_p99' }, config.slo.e2eP99Seconds);
  new Gauge({
    name: 'tuneloop_slo_error_rate_budget_ratio',
    help: 'Fraction of requests allowed to fail (slo.errorRateBudget).',
    registers: [registry],
  }).set(config.slo.errorRateBudget);
  new Gauge({
    name: 'tuneloop_config_price_per_core_hour',
    help: 'Price of one CPU core for an hour (metrics.pricePerCoreHour), for cost figures.',
    registers: [registry],
  }).set(config.metrics.pricePerCoreHour);
  new Gauge({
    name: 'tuneloop_build_info',
    help: 'Build of the running server (value 1).',
    labelNames: ['version', 'node_version'] as const,
    registers: [registry],
  }).set({ version: packageVersion(), node_version: process.version }, 1);
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
