// Tuner and verification: what the autotuner proposed, how shadow verification judged it, and
// the live settings it changed, so a latency shift can be traced to a decision.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelIds, SEL, SEL_INSTANCE, newDashboard, q, quantile, statPanel, timeseriesPanel } from './common.js';

const RATE = '[$__rate_interval]';

export function buildTunerDashboard(): dashboard.Dashboard {
  const ids = new PanelIds();
  return newDashboard({
    uid: 'tuneloop-tuner',
    title: 'tuneloop / Tuner & verification',
    description: 'Proposals, verification verdicts, shadow traffic, rollbacks and the live settings.',
    tags: ['tuner'],
  })
    .withPanel(
      statPanel(ids, {
        title: 'Since last tuner run',
        description: 'Age of the last tuner run (large when it never ran).',
        unit: 's',
        targets: [q(`time() - max(tuneloop_tuner_last_run_timestamp_seconds{${SEL_INSTANCE}})`, 'age')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Open proposals',
        description: 'Proposals not yet confirmed, rejected, rolled back or expired.',
        unit: 'short',
        targets: [q(`sum(tuneloop_tuner_proposals{${SEL_INSTANCE}, state=~"proposed|verifying|verified|approved|applying|watching"})`, 'open')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        // The raw counter rather than increase over $__range: only $__rate_interval windows are used,
        // so the e2e check can substitute one variable for every range.
        title: 'Rollbacks',
        description: 'Rollbacks since the server started.',
        unit: 'short',
        targets: [q(`sum(tuneloop_rollbacks_total{${SEL_INSTANCE}})`, 'rollbacks')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Bottleneck',
        description: 'Bottleneck kinds named by the last analysis (0 before any analysis).',
        unit: 'short',
        targets: [q(`count by (kind) (tuneloop_bottleneck_info{${SEL_INSTANCE}} == 1) or vector(0)`, '{{kind}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Proposals by state',
        description: 'Tuner proposals in each lifecycle state.',
        unit: 'short',
        stacked: true,
        targets: [q(`sum by (state) (tuneloop_tuner_proposals{${SEL_INSTANCE}})`, '{{state}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Verification verdicts',
        description: 'Shadow verification verdicts per interval.',
        unit: 'short',
        stacked: true,
        targets: [q(`sum by (verdict) (increase(tuneloop_verification_verdicts_total{${SEL_INSTANCE}}${RATE}))`, '{{verdict}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Shadow similarity',
        description: 'Similarity of shadow outputs to primary outputs (1 = identical).',
        unit: 'percentunit',
        min: 0,
        max: 1,
        targets: [q(quantile(0.5, 'tuneloop_shadow_similarity', SEL_INSTANCE), 'p50'), q(quantile(0.1, 'tuneloop_shadow_similarity', SEL_INSTANCE), 'p10')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Shadow traffic',
        description: 'Requests mirrored to a shadow engine per second.',
        unit: 'reqps',
        targets: [q(`sum(rate(tuneloop_shadow_requests_total{${SEL_INSTANCE}}${RATE}))`, 'shadow')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Tuner runs',
        description: 'Tuner stage runs per second by stage and outcome.',
        unit: 'ops',
        targets: [q(`sum by (stage, outcome) (rate(tuneloop_tuner_runs_total{${SEL_INSTANCE}}${RATE}))`, '{{stage}} {{outcome}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Rollbacks and config changes',
        description: 'Rollbacks and knob changes per interval (0 before any change).',
        unit: 'short',
        targets: [
          q(`sum(increase(tuneloop_rollbacks_total{${SEL_INSTANCE}}${RATE}))`, 'rollbacks'),
          q(`sum by (knob, source) (increase(tuneloop_config_changes_total{${SEL}}${RATE})) or vector(0)`, '{{knob}} ({{source}})'),
        ],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Live settings: batching and queue',
        description: 'The live knob values over time.',
        unit: 'short',
        targets: [
          q(`max by (instance) (tuneloop_config_max_batch_size{${SEL}})`, 'max_batch_size {{instance}}'),
          q(`max by (instance) (tuneloop_config_max_batch_tokens{${SEL}})`, 'max_batch_tokens {{instance}}'),
          q(`max by (instance) (tuneloop_config_max_queue_length{${SEL}})`, 'max_queue_length {{instance}}'),
          q(`max by (instance) (tuneloop_config_queue_grow_threshold{${SEL}})`, 'queue_grow_threshold {{instance}}'),
        ],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Live settings: parallelism and KV',
        description: 'Threads, tensor-parallel degree and KV pool size over time.',
        unit: 'short',
        targets: [
          q(`max by (instance) (tuneloop_config_threads{${SEL}})`, 'threads {{instance}}'),
          q(`max by (instance) (tuneloop_config_tp_degree{${SEL}})`, 'tp_degree {{instance}}'),
          q(`max by (instance) (tuneloop_config_kv_cache_blocks{${SEL}})`, 'kv_cache_blocks {{instance}}'),
        ],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Live settings: delays',
        description: 'Batching delay and injected all-reduce delay over time.',
        unit: 's',
        width: 24,
        targets: [
          q(`max by (instance) (tuneloop_config_max_queue_delay_seconds{${SEL}})`, 'max_queue_delay {{instance}}'),
          q(`max by (instance) (tuneloop_config_allreduce_delay_seconds{${SEL}})`, 'allreduce_delay {{instance}}'),
        ],
      }),
    )
    .build();
}
