// KV cache and memory: the resource that bounds batch size and forces preemptions.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelIds, SEL, SEL_INSTANCE, newDashboard, q, statPanel, timeseriesPanel } from './common.js';

const RATE = '[$__rate_interval]';

export function buildKvCacheDashboard(): dashboard.Dashboard {
  const ids = new PanelIds();
  const hitRate = `sum(rate(tuneloop_prefix_cache_hits_total{${SEL}}${RATE})) / clamp_min(sum(rate(tuneloop_prefix_cache_queries_total{${SEL}}${RATE})), 1e-9)`;
  return newDashboard({
    uid: 'tuneloop-kv-cache',
    title: 'tuneloop / KV cache & memory',
    description: 'KV-cache usage, fragmentation, prefix-cache hits, preemptions and memory by kind.',
    tags: ['kv-cache', 'memory'],
  })
    .withPanel(
      statPanel(ids, {
        title: 'KV cache usage',
        description: 'Share of KV blocks in use.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        targets: [q(`max(tuneloop_kv_cache_usage_ratio{${SEL}})`, 'usage')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Prefix-cache hit rate now',
        description: 'Prefix-cache hits over lookups (0 with no lookups).',
        unit: 'percentunit',
        min: 0,
        max: 1,
        targets: [q(hitRate, 'hit rate')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Preemption rate now',
        description: 'Sequences preempted per second for lack of KV blocks.',
        unit: 'ops',
        targets: [q(`sum(rate(tuneloop_preemptions_total{${SEL}}${RATE}))`, 'preemptions')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Engine memory',
        description: 'Total engine memory across kinds.',
        unit: 'bytes',
        targets: [q(`sum(tuneloop_engine_memory_bytes{${SEL}})`, 'memory')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'KV cache usage and fragmentation',
        description: 'Usage and fragmentation ratios of the KV block pool.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        targets: [
          q(`max by (instance) (tuneloop_kv_cache_usage_ratio{${SEL}})`, 'usage {{instance}}'),
          q(`max by (instance) (tuneloop_kv_cache_fragmentation_ratio{${SEL}})`, 'fragmentation {{instance}}'),
        ],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'KV blocks by state',
        description: 'Used, cached (reusable prefix) and free blocks.',
        unit: 'short',
        stacked: true,
        targets: [q(`sum by (state) (tuneloop_kv_cache_blocks{${SEL}})`, '{{state}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Prefix-cache hit rate',
        description: 'Lookup hit rate and share of prompt tokens served from cache.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        targets: [
          q(hitRate, 'lookup hit rate'),
          q(
            `sum(rate(tuneloop_prompt_cached_tokens_total{${SEL}}${RATE})) / clamp_min(sum(rate(tuneloop_prompt_tokens_total{${SEL}}${RATE})), 1e-9)`,
            'cached prompt tokens',
          ),
        ],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Preemptions',
        description: 'Sequences preempted per second.',
        unit: 'ops',
        targets: [q(`sum by (instance) (rate(tuneloop_preemptions_total{${SEL}}${RATE}))`, '{{instance}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Memory by kind',
        description: 'Engine memory for weights, KV cache and scratch.',
        unit: 'bytes',
        stacked: true,
        targets: [q(`sum by (kind) (tuneloop_engine_memory_bytes{${SEL}})`, '{{kind}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Process memory',
        description: 'Resident set of the tuneloop process and model weights by dtype.',
        unit: 'bytes',
        targets: [
          // and-on keeps tuneloop servers only: Prometheus itself also exports process_* series.
          q(`sum by (instance) (process_resident_memory_bytes{${SEL_INSTANCE}} and on (instance) tuneloop_build_info{${SEL_INSTANCE}})`, 'rss {{instance}}'),
          q(`sum by (dtype) (tuneloop_model_weight_bytes{${SEL}})`, 'weights {{dtype}}'),
        ],
      }),
    )
    .build();
}
