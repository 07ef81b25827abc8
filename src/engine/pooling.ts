// Embeddings from the engine's final hidden states ([n][dim], after the output norm, before the output head): which
// pooling a model gets, the pooling itself and the L2 normalisation OpenAI's embeddings carry.
//
// The pooling comes from the GGUF's `<arch>.pooling_type` (llama.cpp's enum) when the file has one. Decoder LMs carry
// none; for them the default is `last`: under causal attention only the last token has seen the whole input, and it
// is what vLLM pools decoder models with (its default for generative architectures run as embedding models, the
// convention of e5-mistral, gte-Qwen2 and Qwen3-Embedding), and what llama.cpp computes for a decoder file without a
// pooling type (llama_get_embeddings_ith(ctx, -1), as node-llama-cpp's embedding context returns). llama.cpp's
// server instead refuses `/v1/embeddings` for such a model unless started with --pooling: serving the last token is
// the more useful of the two and is documented (docs/api.md).
import { EngineError } from './errors.js';

export type Pooling = 'mean' | 'cls' | 'last';
export const POOLINGS: readonly Pooling[] = ['mean', 'cls', 'last'];

/** llama.cpp's llama_pooling_type values. */
const GGUF_POOLING: Record<number, Pooling | 'none' | 'rank'> = { 0: 'none', 1: 'mean', 2: 'cls', 3: 'last', 4: 'rank' };

/** The pooling a model's embeddings use: the file's pooling_type, else `last` (decoder LMs: see above). */
export function modelPooling(poolingType: number): Pooling {
  if (poolingType < 0) return 'last';
  const p = GGUF_POOLING[poolingType];
  if (p === 'none')
    throw new EngineError('INVALID_ARGUMENT', "the model's pooling_type is none (one vector per token), which the embeddings API cannot return: one vector per input");
  if (p === 'rank') throw new EngineError('INVALID_ARGUMENT', "the model's pooling_type is rank (a reranker's score), not an embedding: reranking is not served");
  if (p === undefined) throw new EngineError('INVALID_ARGUMENT', `the model's pooling_type ${poolingType} is not one of llama.cpp's (0..4)`);
  return p;
}

/** One vector of `dim` from the hidden states of n tokens ([n][dim], row-major). */
export function poolHidden(hidden: Float32Array, dim: number, pooling: Pooling): Float32Array {
  const n = hidden.length / dim;
  if (!Number.isInteger(n) || n < 1) throw new EngineError('INTERNAL', `hidden states of ${hidden.length} values are not rows of ${dim}`);
  if (pooling === 'cls') return hidden.slice(0, dim);
  if (pooling === 'last') return hidden.slice((n - 1) * dim, n * dim);
  // Mean in float64, so long inputs lose nothing to float32 accumulation.
  const acc = new Float64Array(dim);
  for (let t = 0; t < n; t++) for (let j = 0; j < dim; j++) acc[j]! += hidden[t * dim + j]!;
  const out = new Float32Array(dim);
  for (let j = 0; j < dim; j++) out[j] = acc[j]! / n;
  return out;
}

/** v / ||v||₂ (a zero vector stays zero), as OpenAI's embeddings are unit length. */
export function l2Normalize(v: Float32Array): Float32Array {
  let ss = 0;
  for (const x of v) ss += x * x;
  const norm = Math.sqrt(ss);
  const out = new Float32Array(v.length);
  if (norm > 0) for (let i = 0; i < v.length; i++) out[i] = v[i]! / norm;
  return out;
}
