// Capacity and cost: efficiency of the CPU we pay for, priced with the configured core-hour price.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelIds, SEL, SEL_INSTANCE, newDashboard, q, statPanel, timeseriesPanel } from './common.js';

const RATE = '[$__rate_interval]';
const TOKENS = `(sum(rate(tuneloop_prompt_tokens_total{${SEL}}${RATE})) + sum(rate(tuneloop_generation_tokens_total{${SEL}}${RATE})))`;
const GEN_TOKENS = `sum(rate(tuneloop_generation_tokens_total{${SEL}}${RATE}))`;
// process_* series also come from Prometheus itself and other exporters: keep tuneloop servers only.
const TUNELOOP_ONLY = `and on (instance) tuneloop_build_info{${SEL_INSTANCE}}`;
const CPU = `sum(rate(process_cpu_seconds_total{${SEL_INSTANCE}}${RATE}) ${TUNELOOP_ONLY})`;
const PRICE = `scalar(max(tuneloop_config_price_per_core_hour{${SEL_INSTANCE}}))`;
// Dollars per second of the CPU actually burnt: cores in use times the per-core-hour price.
const COST_PER_SECOND = `(${CPU} * ${PRICE} / 3600)`;
// Idle periods divide by zero and show +Inf/NaN rather than a made-up number.
const COST_PER_MTOK = `${COST_PER_SECOND} / ${GEN_TOKENS} * 1e6`;

export function buildCapacityDashboard(): dashboard.Dashboard {
  const ids = new PanelIds();
  return newDashboard({
    uid: 'tuneloop-capacity',
    title: 'tuneloop / Capacity & cost',
    description: 'Tokens per CPU-second, cost per million tokens and headroom.',
    tags: ['capacity', 'cost'],
  })
    .withPanel(
      statPanel(ids, {
        title: 'Tokens per CPU-second now',
        description: 'Prompt plus generated tokens per second of process CPU.',
        unit: 'suffix: tok/CPU-s',
        targets: [q(`${TOKENS} / clamp_min(${CPU}, 1e-9)`, 'tokens per CPU-s')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Cost per million generated tokens now',
        description: 'CPU cost at tuneloop_config_price_per_core_hour per million generated tokens (+Inf when idle).',
        unit: 'currencyUSD',
        targets: [q(COST_PER_MTOK, 'USD per Mtok')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'CPU cost per hour',
        description: 'CPU cores in use times the per-core-hour price.',
        unit: 'currencyUSD',
        targets: [q(`${COST_PER_SECOND} * 3600`, 'USD/h')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Price per core-hour',
        description: 'The configured price used for cost panels.',
        unit: 'currencyUSD',
        targets: [q(`max(tuneloop_config_price_per_core_hour{${SEL_INSTANCE}})`, 'price')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Tokens per CPU-second',
        description: 'Efficiency: tokens (prompt + generation) per CPU-second of the process.',
        unit: 'suffix: tok/CPU-s',
        targets: [q(`${TOKENS} / clamp_min(${CPU}, 1e-9)`, 'all tokens'), q(`${GEN_TOKENS} / clamp_min(${CPU}, 1e-9)`, 'generated tokens')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Cost per million generated tokens',
        description: 'USD per million generated tokens from CPU time and the configured price.',
        unit: 'currencyUSD',
        targets: [q(COST_PER_MTOK, 'USD per Mtok')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'CPU in use',
        description: 'Process CPU-seconds per second (cores busy) per instance.',
        unit: 'short',
        targets: [q(`sum by (instance) (rate(process_cpu_seconds_total{${SEL_INSTANCE}}${RATE}) ${TUNELOOP_ONLY})`, 'cores {{instance}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Headroom',
        description: 'Running requests over max batch size, waiting over max queue length, and engine utilisation.',
        unit: 'percentunit',
        min: 0,
        targets: [
          q(`sum(tuneloop_requests_running{${SEL}}) / clamp_min(sum(tuneloop_config_max_batch_size{${SEL}}), 1)`, 'batch slots used'),
          q(`sum(tuneloop_requests_waiting{${SEL}}) / clamp_min(sum(tuneloop_config_max_queue_length{${SEL}}), 1)`, 'queue used'),
          q(`avg(tuneloop_engine_utilization_ratio{${SEL}})`, 'utilisation'),
        ],
      }),
    )
    .build();
}
