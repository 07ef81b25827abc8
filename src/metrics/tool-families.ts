// Tool-call and reasoning families, fed by the HTTP layer: each finished chat request that had tools or a reasoning
// template carries a ToolOutcome (hooks.ts RequestRecord.tools, filled by the router from tools/output-parser.ts), and
// Metrics.onRequest turns it into these counters. Labels are closed sets (the tool_choice modes, the families), so no
// request text can reach a label value.
import { Counter, type Registry } from 'prom-client';
import type { Role } from './snapshot.js';

/** A chat request's tools and reasoning (structurally the control plane's hooks.ts ToolOutcome: src/metrics does
 *  not import the control plane). */
export interface ToolOutcome {
  family: string;
  toolChoice?: string;
  calls: number;
  failures: number;
  reasoning: boolean;
}

const MODES = new Set(['none', 'auto', 'required', 'named']);
const FAMILIES = new Set(['deepseek', 'mistral', 'hermes', 'llama3', 'generic']);

export interface ToolRecorders {
  observeTools(o: ToolOutcome): void;
}

export function defineToolFamilies(registry: Registry, base: { model: string; role: Role }): ToolRecorders {
  const requests = new Counter({
    name: 'tuneloop_tool_requests_total',
    help: 'Chat requests with tools, by tool_choice mode (none, auto, required, named) and the template family.',
    labelNames: ['model', 'role', 'tool_choice', 'family'] as const,
    registers: [registry],
  });
  const calls = new Counter({
    name: 'tuneloop_tool_calls_total',
    help: 'Tool calls parsed out of answers (message.tool_calls entries), by template family.',
    labelNames: ['model', 'role', 'family'] as const,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'tuneloop_tool_call_parse_failures_total',
    help: 'Blocks of generated text that opened like a tool call but were not a valid one (returned as content), by template family.',
    labelNames: ['model', 'role', 'family'] as const,
    registers: [registry],
  });
  const reasoning = new Counter({
    name: 'tuneloop_reasoning_responses_total',
    help: 'Chat answers that carried reasoning_content (a <think> block).',
    labelNames: ['model', 'role'] as const,
    registers: [registry],
  });
  return {
    observeTools(o) {
      const family = FAMILIES.has(o.family) ? o.family : 'other';
      if (o.toolChoice !== undefined) requests.inc({ ...base, tool_choice: MODES.has(o.toolChoice) ? o.toolChoice : 'other', family });
      if (o.calls > 0) calls.inc({ ...base, family }, o.calls);
      if (o.failures > 0) failures.inc({ ...base, family }, o.failures);
      if (o.reasoning) reasoning.inc(base);
    },
  };
}
