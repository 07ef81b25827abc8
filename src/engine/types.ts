// Public types of the engine's TypeScript face. Units are in the names (Ms, PerS, Bytes).

/** How weights are stored in memory, chosen at load whatever the file holds. `mixed`: attention projections in
 *  bf16 (16-bit), FFN and output head in int8 (seed 000's mixed quantization). */
export type WeightsPolicy = 'f32' | 'bf16' | 'int8' | 'int4' | 'mixed';
export const WEIGHTS_POLICIES: readonly WeightsPolicy[] = ['f32', 'bf16', 'int8', 'int4', 'mixed'];

export interface EngineOptions {
  /** Path to a GGUF v3 file (general.architecture = llama). */
  model: string;
  /** Weight storage policy; default 'f32'. */
  weights?: WeightsPolicy;
  /** Compute threads; default: all cores (os.availableParallelism()). */
  threads?: number;
  /** Context window in tokens; default and maximum: the model's llama.context_length. */
  contextLength?: number;
}

export interface GenerateRequest {
  /** Text prompt; exactly one of `prompt` and `tokens`. */
  prompt?: string;
  /** Prompt as token ids. */
  tokens?: number[];
  /** Prepend BOS (default: the tokenizer's add_bos_token). Ignored for `tokens`. */
  addBos?: boolean;
  /** Tokens to generate at most; default 16. */
  maxTokens?: number;
  /** 0 = greedy; default 1. */
  temperature?: number;
  /** 0 = off (default). */
  topK?: number;
  /** 1 = off (default). */
  topP?: number;
  /** RNG seed; default random. The same seed and settings give the same tokens. */
  seed?: number;
  /** Stop sequences (at most 4 by OpenAI's rule; we allow 16); never included in the output. */
  stop?: string[];
  /** Per-token logprobs: 0 = chosen token only, k = also the top-k alternatives (k ≤ 20). Off when absent. */
  logprobs?: number;
  /** Stop at the end-of-generation token (default true). */
  stopAtEos?: boolean;
}

export interface TokenLogprob {
  token: number;
  logprob: number;
  top: { token: number; logprob: number }[];
}

/** A piece of streamed output: text that is safe to show (complete UTF-8, not part of a stop sequence). */
export interface TokenChunk {
  text: string;
  tokens: number[];
  logprobs?: TokenLogprob[];
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerationTimings {
  /** From generate() to the first step that included this request. */
  queueMs: number;
  prefillMs: number;
  decodeMs: number;
  /** From generate() to the first generated token. */
  timeToFirstTokenMs: number;
  prefillTokensPerS: number;
  decodeTokensPerS: number;
}

export interface GenerationUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface GenerationResult {
  text: string;
  tokens: number[];
  finishReason: FinishReason;
  usage: GenerationUsage;
  timings: GenerationTimings;
  logprobs?: TokenLogprob[];
}

export interface ModelInfo {
  path: string;
  architecture: string;
  name: string;
  nVocab: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  contextLength: number;
  ropeTheta: number;
  tokenizer: 'llama' | 'gpt2';
  bos: number;
  eos: number;
  weights: WeightsPolicy;
  /** Bytes of weights as held in memory, by storage type (f32, bf16, int8, int4). */
  weightBytes: Record<string, number>;
  threads: number;
  kernels: string;
  loadMs: number;
}
