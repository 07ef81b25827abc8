// Families the HTTP server drives (it knows endpoints and statuses; the engine does not). Label values come from
// callers, so each label is guarded: values are truncated and, past a cap of distinct values, folded into 'other'
// — a route or reason built from user input can never blow up the series count or leak request text.
import { Counter, type Registry } from 'prom-client';
import type { Role } from './snapshot.js';

const MAX_LABEL_LENGTH = 64;

export class LabelGuard {
  private readonly seen = new Set<string>();
  constructor(private readonly maxValues: number) {}

  value(raw: string): string {
    // Only a conservative character set: templates like /v1/chat/completions, codes like queue_full.
    const v = String(raw)
      .slice(0, MAX_LABEL_LENGTH)
      .replace(/[^A-Za-z0-9_:/.\-{}]/g, '_');
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.maxValues) return 'other';
    this.seen.add(v);
    return v;
  }
}

export interface HttpRecorders {
  /** One finished HTTP request; `endpoint` must be the route template (/v1/completions), not the raw URL. */
  observeRequest(endpoint: string, status: number | string): void;
  /** One HTTP-level error by its stable reason (an error code such as invalid_request or queue_full). */
  observeError(reason: string): void;
  /** A knob changed (maxBatchSize, weights, …) and who changed it (startup, api, tuner, rollback). */
  observeConfigChange(knob: string, source: string): void;
}

export function defineHttpFamilies(registry: Registry, base: { model: string; role: Role }): HttpRecorders {
  const requests = new Counter({
    name: 'tuneloop_requests_total',
    help: 'HTTP requests answered, by route template and status code.',
    labelNames: ['model', 'role', 'endpoint', 'status'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'tuneloop_request_errors_total',
    help: 'HTTP requests that ended in an error, by error reason.',
    labelNames: ['model', 'role', 'reason'] as const,
    registers: [registry],
  });
  const changes = new Counter({
    name: 'tuneloop_config_changes_total',
    help: 'Configuration changes applied, by knob and source (startup, api, tuner, rollback).',
    labelNames: ['model', 'role', 'knob', 'source'] as const,
    registers: [registry],
  });
  const endpoints = new LabelGuard(32),
    reasons = new LabelGuard(64),
    knobs = new LabelGuard(32),
    sources = new LabelGuard(16);
  return {
    observeRequest(endpoint, status) {
      const code = Number(status);
      const s = Number.isInteger(code) && code >= 100 && code <= 599 ? String(code) : 'other';
      requests.inc({ ...base, endpoint: endpoints.value(endpoint), status: s });
    },
    observeError(reason) {
      errors.inc({ ...base, reason: reasons.value(reason) });
    },
    observeConfigChange(knob, source) {
      changes.inc({ ...base, knob: knobs.value(knob), source: sources.value(source) });
    },
  };
}
