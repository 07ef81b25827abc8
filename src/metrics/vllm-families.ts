// metrics.compat: vllm — the vllm:* names that vLLM dashboards, autoscalers (KEDA) and gateways read, computed from
// the same snapshot as the tuneloop_* families. Label model_name, as vLLM has; only the primary engine is reported.
// promtool's linter flags the ':' in these names; vLLM chose them, and compatibility is the point.
import { PulledMetric, histogramSamples, registerPulled, type Sample } from './pulled.js';
import type { Registry } from 'prom-client';
import type { HistogramSnapshot } from '../engine/types.js';
import type { ScrapeSnapshots, UpSnapshot } from './snapshot.js';

export function defineVllmFamilies(registry: Registry, snapshots: ScrapeSnapshots): void {
  const primary = (): UpSnapshot[] => snapshots.up().filter((s) => s.labels.role === 'primary');
  const scalar = (name: string, help: string, type: 'counter' | 'gauge', v: (s: UpSnapshot) => number): void => {
    registerPulled(registry, new PulledMetric(name, help, type, () => primary().map((s): Sample => ({ labels: { model_name: s.labels.model }, value: v(s) }))));
  };
  const hist = (name: string, help: string, h: (s: UpSnapshot) => HistogramSnapshot): void => {
    registerPulled(registry, new PulledMetric(name, help, 'histogram', () => primary().flatMap((s) => histogramSamples(name, { model_name: s.labels.model }, h(s)))));
  };
  scalar('vllm:num_requests_running', 'Number of requests in model execution batches.', 'gauge', (s) => s.stats.requests.running);
  scalar('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', 'gauge', (s) => s.stats.requests.waiting);
  scalar('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', 'gauge', (s) => s.stats.kvCache.usageRatio);
  hist('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', (s) => s.stats.latency.timeToFirstTokenSeconds);
  hist('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', (s) => s.stats.latency.e2eSeconds);
  hist('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', (s) => s.stats.latency.interTokenSeconds);
  scalar('vllm:prompt_tokens_total', 'Number of prefill tokens processed.', 'counter', (s) => s.stats.tokens.prompt);
  scalar('vllm:generation_tokens_total', 'Number of generation tokens processed.', 'counter', (s) => s.stats.tokens.generated);
  scalar('vllm:request_success_total', 'Count of successfully processed requests.', 'counter', (s) => s.stats.requests.finished);
  scalar('vllm:num_preemptions_total', 'Cumulative number of preemptions from the engine.', 'counter', (s) => s.stats.batches.preemptions);
  // vLLM counts these in tokens; the engine looks up whole blocks, so blocks × block size (the hit rate is the same).
  scalar(
    'vllm:prefix_cache_queries_total',
    'Prefix cache queries, in terms of number of queried tokens.',
    'counter',
    (s) => s.stats.kvCache.prefixQueries * s.stats.kvCache.blockSizeTokens,
  );
  scalar(
    'vllm:prefix_cache_hits_total',
    'Prefix cache hits, in terms of number of cached tokens.',
    'counter',
    (s) => s.stats.kvCache.prefixHits * s.stats.kvCache.blockSizeTokens,
  );
}
