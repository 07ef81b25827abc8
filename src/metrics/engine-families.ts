// Families read from engine.stats(): requests, tokens, scheduler, KV cache, compute. Names follow
// ARCHITECTURE.md "Metrics": tuneloop_*, units in the name, counters end in _total; labels model and role.
import type { EngineStats, HistogramSnapshot } from '../engine/types.js';
import { byKey, type FamilyBuilder } from './families.js';
import type { Labels } from './pulled.js';
import type { UpSnapshot } from './snapshot.js';

export function defineEngineFamilies(f: FamilyBuilder): void {
  // ---- requests (engine side; HTTP-level counts are in http-families.ts) ----
  f.counter('tuneloop_requests_submitted_total', 'Requests accepted by the engine.', (s) => s.stats.requests.submitted);
  f.counter('tuneloop_requests_finished_total', 'Requests that ended normally (stop sequence, end token or length).', (s) => s.stats.requests.finished);
  f.counter('tuneloop_requests_cancelled_total', 'Requests cancelled by the client (disconnect or explicit cancel).', (s) => s.stats.requests.cancelled);
  f.counter('tuneloop_requests_timed_out_total', 'Requests cut by their deadline (waiting or running).', (s) => s.stats.requests.timedOut);
  f.counter('tuneloop_requests_failed_total', 'Requests failed by an engine error.', (s) => s.stats.requests.failed);
  f.labelled('tuneloop_requests_rejected_total', 'Requests refused at admission, by reason.', 'counter', (s) => byKey('reason', s.stats.requests.rejected));
  f.gauge('tuneloop_requests_running', 'Requests in the running batch now.', (s) => s.stats.requests.running);
  f.gauge('tuneloop_requests_waiting', 'Requests queued for admission now.', (s) => s.stats.requests.waiting);

  const lat =
    (key: keyof EngineStats['latency']) =>
    (s: UpSnapshot): [Labels, HistogramSnapshot][] => [[{}, s.stats.latency[key]]];
  f.histogram('tuneloop_request_queue_time_seconds', 'Time from submission to the first step that included the request.', lat('queueTimeSeconds'));
  f.histogram('tuneloop_time_to_first_token_seconds', 'Time from submission to the first generated token.', lat('timeToFirstTokenSeconds'));
  f.histogram('tuneloop_inter_token_latency_seconds', 'Time between consecutive generated tokens of a request.', lat('interTokenSeconds'));
  f.histogram('tuneloop_e2e_request_latency_seconds', 'Time from submission to the end of a finished request.', lat('e2eSeconds'));
  f.histogram('tuneloop_request_prompt_tokens', 'Prompt length of each request, tokens.', lat('promptTokens'));
  f.histogram('tuneloop_request_generation_tokens', 'Generated tokens of each request.', lat('generationTokens'));

  // ---- tokens ----
  f.counter('tuneloop_prompt_tokens_total', 'Prompt tokens of admitted requests.', (s) => s.stats.tokens.prompt);
  f.counter('tuneloop_generation_tokens_total', 'Tokens generated.', (s) => s.stats.tokens.generated);
  f.counter('tuneloop_prefill_computed_tokens_total', 'Prompt tokens run through the model (not served from the prefix cache).', (s) => s.stats.tokens.prefillComputed);
  f.counter('tuneloop_prompt_cached_tokens_total', 'Prompt tokens whose KV came from the prefix cache.', (s) => s.stats.tokens.promptCached);

  // ---- scheduler ----
  f.histogram('tuneloop_batch_size', 'Sequences per engine step.', (s) => [[{}, s.stats.batches.size]]);
  f.histogram('tuneloop_batch_tokens', 'Tokens per engine step.', (s) => [[{}, s.stats.batches.tokens]]);
  f.histogram('tuneloop_step_duration_seconds', 'Duration of an engine step, by phase (prefill, decode, mixed).', (s) =>
    Object.entries(s.stats.batches.stepDurationSeconds).map(([phase, h]) => [{ phase }, h]),
  );
  f.labelled('tuneloop_batch_flush_total', 'Why a batch started: full, timeout (maxQueueDelayMs) or queue_threshold.', 'counter', (s) =>
    byKey('reason', s.stats.batches.flushes),
  );
  f.counter('tuneloop_preemptions_total', 'Running requests preempted for lack of KV blocks.', (s) => s.stats.batches.preemptions);
  f.counter('tuneloop_scheduler_steps_total', 'Engine steps run.', (s) => s.stats.batches.steps);

  // ---- KV cache ----
  f.labelled('tuneloop_kv_cache_blocks', 'KV-cache blocks by state: used (held by requests), cached (prefix cache, evictable), free.', 'gauge', (s) => [
    [{ state: 'used' }, s.stats.kvCache.blocksUsed],
    [{ state: 'cached' }, s.stats.kvCache.blocksCached],
    [{ state: 'free' }, s.stats.kvCache.blocksFree],
  ]);
  f.gauge('tuneloop_kv_cache_usage_ratio', 'Fraction of KV-cache blocks held by requests.', (s) => s.stats.kvCache.usageRatio);
  f.gauge(
    'tuneloop_kv_cache_fragmentation_ratio',
    'KV token slots reserved by running sequences over slots they fill (1 = no waste; seed 003 alerts above 1.5).',
    (s) => s.stats.kvCache.fragmentationRatio,
  );
  f.counter('tuneloop_prefix_cache_queries_total', 'Prompt KV blocks looked up in the prefix cache (blocks).', (s) => s.stats.kvCache.prefixQueries);
  f.counter('tuneloop_prefix_cache_hits_total', 'Prompt KV blocks found in the prefix cache (blocks).', (s) => s.stats.kvCache.prefixHits);

  // ---- compute ----
  f.labelled('tuneloop_tp_rank_busy_seconds_total', 'Time each tensor-parallel rank spent computing.', 'counter', (s) =>
    s.stats.tensorParallel.rankBusySeconds.map((v, rank) => [{ rank }, v]),
  );
  f.labelled('tuneloop_tp_allreduce_seconds_total', 'Time each tensor-parallel rank spent in all-reduce.', 'counter', (s) =>
    s.stats.tensorParallel.rankAllreduceSeconds.map((v, rank) => [{ rank }, v]),
  );
  f.counter('tuneloop_tp_allreduces_total', 'All-reduce operations run.', (s) => s.stats.tensorParallel.allreduces);
  f.labelled('tuneloop_op_seconds_total', 'Compute time by operation (matmul, attention, …).', 'counter', (s) => byKey('op', s.stats.opSeconds));
  f.labelled('tuneloop_engine_memory_bytes', 'Engine memory by kind: weights, kv, scratch.', 'gauge', (s) => byKey('kind', s.stats.memoryBytes));
  f.labelled('tuneloop_model_weight_bytes', 'Weight bytes held in memory by storage type.', 'gauge', (s) => byKey('dtype', s.stats.weightBytesByDtype));
  f.gauge('tuneloop_engine_utilization_ratio', 'Fraction of wall time spent in engine steps since the previous scrape.', (s) => s.utilizationRatio);
  f.counter('tuneloop_engine_busy_seconds_total', 'Wall time spent in engine steps.', (s) => s.stats.busySeconds);
  f.gauge('tuneloop_engine_uptime_seconds', 'Time since the engine was loaded.', (s) => s.stats.uptimeSeconds);
  f.counter('tuneloop_engine_reloads_total', 'Cold reconfigurations (new model instance built beside the old one).', (s) => s.stats.reloads);
  f.counter('tuneloop_engine_reconfigures_total', 'Hot reconfigurations (batching knobs changed live).', (s) => s.stats.reconfigures);
}
