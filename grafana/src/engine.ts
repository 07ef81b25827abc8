// Engine: how the scheduler batches and where step time goes, to explain the latency on the SLO board.
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelIds, SEL, heatmapPanel, newDashboard, q, quantile, seriesHeatmapPanel, statPanel, timeseriesPanel } from './common.js';

const RATE = '[$__rate_interval]';

export function buildEngineDashboard(): dashboard.Dashboard {
  const ids = new PanelIds();
  return (
    newDashboard({
      uid: 'tuneloop-engine',
      title: 'tuneloop / Engine',
      description: 'Batching, step time by phase, queueing, tensor-parallel ranks, per-op time, and Mixture-of-Experts routing.',
      tags: ['engine'],
    })
      .withPanel(
        statPanel(ids, {
          title: 'Engine up',
          description: '1 while the engine is loaded and serving.',
          unit: 'bool_on_off',
          targets: [q(`min(tuneloop_engine_up{${SEL}})`, 'up')],
        }),
      )
      .withPanel(
        statPanel(ids, {
          title: 'Utilisation now',
          description: 'Share of wall time the engine spent stepping.',
          unit: 'percentunit',
          min: 0,
          max: 1,
          targets: [q(`avg(tuneloop_engine_utilization_ratio{${SEL}})`, 'utilisation')],
        }),
      )
      .withPanel(
        statPanel(ids, {
          title: 'Scheduler steps',
          description: 'Scheduler steps per second.',
          unit: 'ops',
          targets: [q(`sum(rate(tuneloop_scheduler_steps_total{${SEL}}${RATE}))`, 'steps')],
        }),
      )
      .withPanel(
        statPanel(ids, {
          title: 'Max batch size',
          description: 'The live max_batch_size knob.',
          unit: 'short',
          targets: [q(`max(tuneloop_config_max_batch_size{${SEL}})`, 'max batch size')],
        }),
      )
      .withPanel(
        heatmapPanel(ids, {
          title: 'Batch size',
          description: 'Distribution of sequences per step (histogram buckets).',
          unit: 'short',
          targets: [q(`sum by (le) (rate(tuneloop_batch_size_bucket{${SEL}}${RATE}))`, '{{le}}')],
        }),
      )
      .withPanel(
        heatmapPanel(ids, {
          title: 'Batch tokens',
          description: 'Distribution of tokens per step (histogram buckets).',
          unit: 'short',
          targets: [q(`sum by (le) (rate(tuneloop_batch_tokens_bucket{${SEL}}${RATE}))`, '{{le}}')],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Batch flushes by reason',
          description: 'Why a batch was started: full, timeout, or queue threshold.',
          unit: 'ops',
          stacked: true,
          targets: [q(`sum by (reason) (rate(tuneloop_batch_flush_total{${SEL}}${RATE}))`, '{{reason}}')],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Step duration by phase',
          description: 'p50 and p99 step time for prefill, decode and mixed steps.',
          unit: 's',
          targets: [
            q(quantile(0.5, 'tuneloop_step_duration_seconds', SEL, 'phase'), 'p50 {{phase}}'),
            q(quantile(0.99, 'tuneloop_step_duration_seconds', SEL, 'phase'), 'p99 {{phase}}'),
          ],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Queue length',
          description: 'Waiting and running requests against the queue limit.',
          unit: 'short',
          targets: [
            q(`sum(tuneloop_requests_waiting{${SEL}})`, 'waiting'),
            q(`sum(tuneloop_requests_running{${SEL}})`, 'running'),
            q(`sum(tuneloop_config_max_queue_length{${SEL}})`, 'max queue length'),
          ],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Utilisation',
          description: 'Engine utilisation gauge and busy seconds per second.',
          unit: 'percentunit',
          min: 0,
          targets: [
            q(`avg by (instance) (tuneloop_engine_utilization_ratio{${SEL}})`, 'utilisation {{instance}}'),
            q(`sum by (instance) (rate(tuneloop_engine_busy_seconds_total{${SEL}}${RATE}))`, 'busy {{instance}}'),
          ],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Per-rank busy time',
          description: 'Busy seconds per second for each tensor-parallel rank.',
          unit: 'percentunit',
          min: 0,
          targets: [q(`sum by (rank) (rate(tuneloop_tp_rank_busy_seconds_total{${SEL}}${RATE}))`, 'rank {{rank}}')],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'All-reduce time',
          description: 'Seconds per second each rank spent in all-reduce.',
          unit: 'percentunit',
          min: 0,
          targets: [q(`sum by (rank) (rate(tuneloop_tp_allreduce_seconds_total{${SEL}}${RATE}))`, 'rank {{rank}}')],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Op time breakdown',
          description: 'Seconds per second spent in each kernel family (stacked).',
          unit: 'percentunit',
          stacked: true,
          min: 0,
          width: 24,
          targets: [q(`sum by (op) (rate(tuneloop_op_seconds_total{${SEL}}${RATE}))`, '{{op}}')],
        }),
      )
      // Mixture-of-Experts models only (docs/metrics.md "Mixture-of-Experts"): a dense model's engine reports none of
      // these series, so the row stays empty for it.
      .withRow(new dashboard.RowBuilder('Mixture of Experts').id(ids.take()))
      .withPanel(
        statPanel(ids, {
          title: 'Active parameters',
          description: 'Parameters one token runs through (dense parts, shared and top-k routed experts) and the total.',
          unit: 'short',
          width: 8,
          targets: [q(`max(tuneloop_model_parameters{${SEL}, kind="active"})`, 'active'), q(`max(tuneloop_model_parameters{${SEL}, kind="total"})`, 'total')],
        }),
      )
      .withPanel(
        statPanel(ids, {
          title: 'Active weight bytes per token',
          description: "Weight bytes one token's forward pass reads, as held: what a decode step streams per token.",
          unit: 'bytes',
          width: 8,
          targets: [q(`max(tuneloop_model_active_weight_bytes_per_token{${SEL}})`, 'bytes per token')],
        }),
      )
      .withPanel(
        statPanel(ids, {
          title: 'KV bytes per token',
          description: 'KV-cache bytes per token as stored (MLA: compressed latent) against what plain multi-head attention would store.',
          unit: 'bytes',
          width: 8,
          targets: [q(`max(tuneloop_kv_cache_bytes_per_token{${SEL}, kind="model"})`, 'stored'), q(`max(tuneloop_kv_cache_bytes_per_token{${SEL}, kind="mha"})`, 'MHA')],
        }),
      )
      .withPanel(
        seriesHeatmapPanel(ids, {
          title: 'Tokens per expert',
          description:
            'Tokens routed per second to each expert (rows: layer/expert). A trained router is skewed; hot rows that stay hot are the candidates for redundantExperts. Experts past 63 and layers past the 64th are summed as "other".',
          unit: 'short',
          width: 24,
          height: 10,
          targets: [q(`sum by (layer, expert) (rate(tuneloop_moe_expert_tokens_total{${SEL}}${RATE}))`, 'L{{layer}} E{{expert}}')],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Expert load imbalance',
          description:
            'Max over mean of the tokens routed to the experts of each layer, in the recent window (1 = balanced). The TuneloopExpertImbalanceHigh alert fires above 2 for 15 minutes.',
          unit: 'short',
          min: 1,
          targets: [q(`max by (layer) (tuneloop_moe_expert_load_imbalance_ratio{${SEL}})`, 'layer {{layer}}')],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'All-to-all share of busy time',
          description:
            "Share of each expert-parallel rank's busy time spent in all-to-alls, combining the routed experts' outputs across ranks (injected alltoallDelayUs included).",
          unit: 'percentunit',
          min: 0,
          targets: [
            q(
              `sum by (instance, rank) (rate(tuneloop_moe_alltoall_seconds_total{${SEL}}${RATE})) / on (instance) group_left sum by (instance) (rate(tuneloop_engine_busy_seconds_total{${SEL}}${RATE}))`,
              '{{instance}} rank {{rank}}',
            ),
          ],
        }),
      )
      .withPanel(
        timeseriesPanel(ids, {
          title: 'Routed-expert time per rank',
          description:
            'Seconds per second each expert-parallel rank spends in routed-expert matmuls: one rank well above the others is the expert_imbalance the tuner acts on.',
          unit: 'percentunit',
          min: 0,
          width: 24,
          targets: [q(`sum by (rank) (rate(tuneloop_moe_expert_busy_seconds_total{${SEL}}${RATE}))`, 'rank {{rank}}')],
        }),
      )
      .build()
  );
}
