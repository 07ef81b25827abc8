// Service / SLO: what a user of the API feels, drawn against the SLO targets the server publishes.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelIds, SEL, SEL_INSTANCE, newDashboard, q, quantile, statPanel, timeseriesPanel } from './common.js';

const RATE = '[$__rate_interval]';

function latencyPanel(ids: PanelIds, title: string, metric: string, objective: string) {
  return timeseriesPanel(ids, {
    title,
    description: `p50/p90/p99 of ${metric} against the ${objective} target from tuneloop_slo_target_seconds.`,
    unit: 's',
    width: 8,
    targets: [
      q(quantile(0.5, metric), 'p50'),
      q(quantile(0.9, metric), 'p90'),
      q(quantile(0.99, metric), 'p99'),
      q(`max(tuneloop_slo_target_seconds{${SEL_INSTANCE}, objective="${objective}"})`, 'SLO p99 target'),
    ],
  });
}

// p99 <= target as 0/1 per objective; averaging gives the share of objectives currently met.
function met(metric: string, objective: string): string {
  return `(${quantile(0.99, metric)} <= bool max(tuneloop_slo_target_seconds{${SEL_INSTANCE}, objective="${objective}"}))`;
}

export function buildServiceDashboard(): dashboard.Dashboard {
  const ids = new PanelIds();
  const errorExpr =
    `(sum(rate(tuneloop_requests_failed_total{${SEL}}${RATE})) + sum(rate(tuneloop_requests_timed_out_total{${SEL}}${RATE})))` +
    ` / clamp_min(sum(rate(tuneloop_requests_submitted_total{${SEL}}${RATE})), 1e-9)`;
  return newDashboard({
    uid: 'tuneloop-service',
    title: 'tuneloop / Service & SLO',
    description: 'Request rate, errors, latency against SLO targets, throughput and rejections.',
    tags: ['slo'],
  })
    .withPanel(
      statPanel(ids, {
        title: 'SLO attainment',
        description: 'Share of the three p99 objectives (TTFT, inter-token, e2e) currently met; 1 means all met. No traffic counts as not met.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        targets: [
          q(
            `(${met('tuneloop_time_to_first_token_seconds', 'ttft_p99')} + ${met('tuneloop_inter_token_latency_seconds', 'inter_token_p99')} + ${met('tuneloop_e2e_request_latency_seconds', 'e2e_p99')}) / 3`,
            'attainment',
          ),
        ],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Error ratio',
        description: 'Failed plus timed-out requests over submitted requests.',
        unit: 'percentunit',
        targets: [q(errorExpr, 'errors')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Running requests',
        description: 'Requests currently in the batch.',
        unit: 'short',
        targets: [q(`sum(tuneloop_requests_running{${SEL}})`, 'running')],
      }),
    )
    .withPanel(
      statPanel(ids, {
        title: 'Waiting requests',
        description: 'Requests queued for admission.',
        unit: 'short',
        targets: [q(`sum(tuneloop_requests_waiting{${SEL}})`, 'waiting')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Request rate',
        description: 'Engine requests submitted, finished, cancelled and timed out per second.',
        unit: 'reqps',
        targets: [
          q(`sum by (model) (rate(tuneloop_requests_submitted_total{${SEL}}${RATE}))`, 'submitted {{model}}'),
          q(`sum by (model) (rate(tuneloop_requests_finished_total{${SEL}}${RATE}))`, 'finished {{model}}'),
          q(`sum by (model) (rate(tuneloop_requests_cancelled_total{${SEL}}${RATE}))`, 'cancelled {{model}}'),
          q(`sum by (model) (rate(tuneloop_requests_timed_out_total{${SEL}}${RATE}))`, 'timed out {{model}}'),
        ],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Error rate',
        description: 'Error ratio against the error-rate budget from tuneloop_slo_error_rate_budget_ratio.',
        unit: 'percentunit',
        min: 0,
        targets: [q(errorExpr, 'error ratio'), q(`max(tuneloop_slo_error_rate_budget_ratio{${SEL_INSTANCE}})`, 'budget')],
      }),
    )
    .withPanel(latencyPanel(ids, 'Time to first token', 'tuneloop_time_to_first_token_seconds', 'ttft_p99'))
    .withPanel(latencyPanel(ids, 'Inter-token latency', 'tuneloop_inter_token_latency_seconds', 'inter_token_p99'))
    .withPanel(latencyPanel(ids, 'End-to-end latency', 'tuneloop_e2e_request_latency_seconds', 'e2e_p99'))
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Token throughput',
        description: 'Prompt and generated tokens per second.',
        unit: 'suffix: tok/s',
        targets: [q(`sum(rate(tuneloop_prompt_tokens_total{${SEL}}${RATE}))`, 'prompt'), q(`sum(rate(tuneloop_generation_tokens_total{${SEL}}${RATE}))`, 'generation')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Rejected requests by reason',
        description: 'Requests refused at admission (queue full, context overflow, invalid, closed).',
        unit: 'reqps',
        stacked: true,
        targets: [q(`sum by (reason) (rate(tuneloop_requests_rejected_total{${SEL}}${RATE}))`, '{{reason}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'HTTP responses by status',
        description: 'API responses per second by endpoint and status code.',
        unit: 'reqps',
        targets: [q(`sum by (endpoint, status) (rate(tuneloop_requests_total{${SEL}}${RATE}))`, '{{endpoint}} {{status}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'HTTP errors by reason',
        description: 'API errors per second by reason; 0 when no error has ever happened (the series does not exist yet).',
        unit: 'reqps',
        targets: [q(`sum by (reason) (rate(tuneloop_request_errors_total{${SEL}}${RATE})) or vector(0)`, '{{reason}}')],
      }),
    )
    .withPanel(
      timeseriesPanel(ids, {
        title: 'Queue time',
        description: 'Time from submission to admission into the batch.',
        unit: 's',
        targets: [q(quantile(0.5, 'tuneloop_request_queue_time_seconds'), 'p50'), q(quantile(0.99, 'tuneloop_request_queue_time_seconds'), 'p99')],
      }),
    )
    .build();
}
