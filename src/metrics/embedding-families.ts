// Families of POST /v1/embeddings, driven by the route when it answers (the engine sees only forward passes): how
// many requests and inputs it served and the tokens they held. Requests by status are tuneloop_requests_total's
// (endpoint /v1/embeddings); these count what the answered ones carried.
import { Counter, type Registry } from 'prom-client';
import type { Role } from './snapshot.js';

export interface EmbeddingRecorders {
  /** One answered embeddings request: its number of inputs and their tokens. */
  observeEmbeddings(inputs: number, tokens: number): void;
}

export function defineEmbeddingFamilies(registry: Registry, base: { model: string; role: Role }): EmbeddingRecorders {
  const requests = new Counter({
    name: 'tuneloop_embedding_requests_total',
    help: 'POST /v1/embeddings requests answered with embeddings.',
    labelNames: ['model', 'role'] as const,
    registers: [registry],
  });
  const inputs = new Counter({
    name: 'tuneloop_embedding_inputs_total',
    help: 'Inputs embedded (one vector each) by POST /v1/embeddings.',
    labelNames: ['model', 'role'] as const,
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'tuneloop_embedding_input_tokens_total',
    help: 'Tokens of the inputs embedded by POST /v1/embeddings (its usage.prompt_tokens).',
    labelNames: ['model', 'role'] as const,
    registers: [registry],
  });
  // Zero from the start, so a dashboard's rate() has a series before the first request.
  requests.inc(base, 0);
  inputs.inc(base, 0);
  tokens.inc(base, 0);
  return {
    observeEmbeddings(n, t) {
      requests.inc(base);
      inputs.inc(base, n);
      tokens.inc(base, t);
    },
  };
}
