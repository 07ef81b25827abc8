// Structured-output families the HTTP server drives: requests by mode (response_format json_object / json_schema, or
// the raw `grammar` field) and the answers that turned out not to be what was asked for — not JSON at all, or JSON
// that does not validate against the request's schema (an answer cut by max_tokens, a client grammar that allows
// non-JSON). The check runs once per finished request in the control plane (schema-structured.ts structuredOutcome).
import { Counter, type Registry } from 'prom-client';
import type { Role } from './snapshot.js';

export type StructuredMetricMode = 'json_object' | 'json_schema' | 'grammar';
/** valid: the answer is what was asked; invalid_json / schema_mismatch: a parse failure; unchecked: nothing to check
 *  (a raw grammar, a request that failed or was cancelled before an answer). */
export type StructuredMetricOutcome = 'valid' | 'invalid_json' | 'schema_mismatch' | 'unchecked';

export interface StructuredRecorders {
  observeStructured(mode: StructuredMetricMode, outcome: StructuredMetricOutcome): void;
}

const MODES: readonly string[] = ['json_object', 'json_schema', 'grammar'];

export function defineStructuredFamilies(registry: Registry, base: { model: string; role: Role }): StructuredRecorders {
  const requests = new Counter({
    name: 'tuneloop_structured_requests_total',
    help: 'Generation requests with structured output that reached the engine, by mode (json_object, json_schema, grammar).',
    labelNames: ['model', 'role', 'mode'] as const,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'tuneloop_structured_parse_failures_total',
    help: 'Structured-output answers that are not valid JSON (reason invalid_json) or do not validate against the schema (schema_mismatch), by mode.',
    labelNames: ['model', 'role', 'mode', 'reason'] as const,
    registers: [registry],
  });
  // Zero series up front, so a dashboard's rate() has a baseline before the first structured request.
  for (const mode of MODES) {
    requests.inc({ ...base, mode }, 0);
    if (mode !== 'grammar') for (const reason of ['invalid_json', 'schema_mismatch']) failures.inc({ ...base, mode, reason }, 0);
  }
  return {
    observeStructured(mode, outcome) {
      if (!MODES.includes(mode)) return;
      requests.inc({ ...base, mode });
      if (outcome === 'invalid_json' || outcome === 'schema_mismatch') failures.inc({ ...base, mode, reason: outcome });
    },
  };
}
