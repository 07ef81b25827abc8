// Public types of the engine's TypeScript face. Units are in the names (Ms, PerS, Bytes).

/** How weights are held in memory, chosen at load (README "Weights policies").
 *  - `native` (default): every tensor in the type the file holds (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 *    Q2_K..Q6_K, IQ4_NL, IQ4_XS; mixed freely), executed as is.
 *  - `f32`, `bf16`: dequantized (no precision lost beyond bf16's rounding).
 *  - `q8_0`, `q6_k`, `q5_k`, `q4_k`, `q4_0`: re-quantized to that GGUF block type; rows that are not whole blocks
 *    fall back as llama.cpp's quantizer does (q4_k → q5_0, q5_k → q5_1, q6_k → q8_0; rows not a multiple of 32 keep
 *    the file's 16/32-bit type), listed in ModelInfo.weightFallbacks. Re-quantizing a quantized tensor to a type with
 *    at least as many bits per weight is refused (INVALID_ARGUMENT): it would lose precision and save nothing.
 *  - `int8`, `int4`: aliases of `q8_0` and `q4_0` (the names older configs use; reported back as given).
 *  - `mixed`: attention projections in bf16 (16-bit), FFN, embeddings and output head in q8_0 (seed 000). */
export type WeightsPolicy = 'native' | 'f32' | 'bf16' | 'q8_0' | 'q6_k' | 'q5_k' | 'q4_k' | 'q4_0' | 'mixed' | 'int8' | 'int4';
export const WEIGHTS_POLICIES: readonly WeightsPolicy[] = ['native', 'f32', 'bf16', 'q8_0', 'q6_k', 'q5_k', 'q4_k', 'q4_0', 'mixed', 'int8', 'int4'];

export type KvDtype = 'f32' | 'f16' | 'int8';
export const KV_DTYPES: readonly KvDtype[] = ['f32', 'f16', 'int8'];

/** Batching knobs: all change live through engine.reconfigure() ("hot" settings). */
export interface SchedulerSettings {
  /** Sequences per step. Default 16. */
  maxBatchSize: number;
  /** Tokens per step; longer prompts are prefilled in chunks. Default 512. */
  maxBatchTokens: number;
  /** How long an under-full batch may wait for more work when nothing is running. Default 2. */
  maxQueueDelayMs: number;
  /** When more than this many requests wait, the batch runs at once at up to maxBatchSize. Default 32 (seed 000). */
  queueGrowThreshold: number;
  /** Beyond this many waiting requests, new ones are refused with QUEUE_FULL. Default 256. */
  maxQueueLength: number;
}

/** Settings that need a new model instance: engine.reload() ("cold" settings). */
export interface ModelLayoutSettings {
  /** Weight storage policy; default 'native' (the file's types). */
  weights: WeightsPolicy;
  /** KV-cache element type; default 'f32'. */
  kvDtype: KvDtype;
  /** Tensor-parallel ranks; must divide the model's KV heads and FFN width. Default 1. */
  tpDegree: number;
  /** Threads per rank. Default: threads / tpDegree. */
  threadsPerRank: number;
  /** Tokens per KV block; default 16. */
  kvBlockSizeTokens: number;
  /** Context window in tokens; default and maximum: the model's trained context (`<architecture>.context_length`). */
  contextLength: number;
  /** Mixture-of-Experts models only: expert-parallel ranks, each owning a slice of every MoE layer's routed experts
   *  (tokens are dispatched to the owning rank and combined back: an all-to-all). Default 1. Optional in the type: an
   *  engine built before MoE does not report it; a dense model takes only 1. */
  epDegree?: number;
  /** Mixture-of-Experts models only: experts held on one more rank beside their owner, so the hottest experts'
   *  tokens split across two ranks (DeepSeek-V3's redundant experts). Default none. */
  redundantExperts?: ExpertRef[];
}

/** One routed expert of one MoE layer: `layer` is the model's block index (blk.N), `expert` the expert's index. */
export interface ExpertRef {
  layer: number;
  expert: number;
}

export interface EngineOptions extends Partial<ModelLayoutSettings> {
  /** Path to a GGUF v2/v3 file of an architecture the engine implements (general.architecture: llama). */
  model: string;
  /** Compute threads in all (tpDegree x threadsPerRank); default: all cores (os.availableParallelism()). */
  threads?: number;
  /** KV pool size in blocks; default: as many as fit kvCacheMaxBytes (at least one full context, at most 64). */
  kvCacheBlocks?: number;
  /** Byte budget of the KV pool when kvCacheBlocks is not given; default 256 MiB. */
  kvCacheMaxBytes?: number;
  /** Injected delay per all-reduce, microseconds: emulates a slow interconnect in benchmarks (seed 001). */
  allreduceDelayUs?: number;
  /** Injected delay per expert-parallel all-to-all (one per MoE layer and step: the combine, after the ranks' routed
   *  experts ran), microseconds: the same slow-interconnect emulation for expert parallelism. */
  alltoallDelayUs?: number;
  scheduler?: Partial<SchedulerSettings>;
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
  /** Added to the raw logit of each token id before sampling (OpenAI's logit_bias: -100..100; ids < nVocab).
   *  Stages run in the order bias → repetition → frequency/presence → temperature → min_p → top-k → top-p
   *  (docs/api.md, "Sampling"). */
  logitBias?: Record<number, number>;
  /** OpenAI's presence penalty (-2..2): subtracted from the logit of every token generated so far. Default 0. */
  presencePenalty?: number;
  /** OpenAI's frequency penalty (-2..2): subtracted count × penalty, count over the generated tokens. Default 0. */
  frequencyPenalty?: number;
  /** vLLM's / llama.cpp's repetition penalty (> 0, at most 10; 1 = off): over prompt and generated tokens, a
   *  positive logit is divided by it and a negative one multiplied. */
  repetitionPenalty?: number;
  /** min-p (0..1; 0 = off): drop tokens whose tempered probability is below minP × the top token's. */
  minP?: number;
  /** Stop sequences (at most 4 by OpenAI's rule; we allow 16); never included in the output. */
  stop?: string[];
  /** Per-token logprobs: 0 = chosen token only, k = also the top-k alternatives (k ≤ 20). Off when absent. They are
   *  the log-softmax of the model's raw logits (before bias, penalties, temperature and truncation), as vLLM reports
   *  them by default and as engine.evaluate / perplexity compute them. */
  logprobs?: number;
  /** Stop at the end-of-generation token (default true). */
  stopAtEos?: boolean;
  /** Deadline from submission, ms: refused while waiting or cut while running with code TIMEOUT. */
  deadlineMs?: number;
  /** Test hook: after this many generated tokens the request is paused — it keeps its batch slot and KV blocks but
   *  is not stepped — until engine.resume(id), a cancel, its deadline or close(). Lets a test act at a known token
   *  count however late its event loop runs. Absent or 0: never. */
  pauseAfterTokens?: number;
  /** A GBNF grammar (llama.cpp's dialect, start rule `root`; docs/structured-output.md) the generated text must
   *  match: tokens the grammar refuses are masked out before sampling, and the request ends with 'stop' once the
   *  grammar can take no further character. Invalid grammar → EngineError INVALID_ARGUMENT naming line:column. */
  grammar?: string;
  /** Lazy grammar: unconstrained until the generated text contains one of these strings (control tokens count by
   *  their text); from the trigger's first character on, the text must match `root`. Requires `grammar`. */
  grammarTriggers?: string[];
}

export interface TokenLogprob {
  token: number;
  logprob: number;
  /** The token's text on its own: exactly what engine.detokenize([token]) returns (a lone byte token → U+FFFD). */
  text: string;
  /** Top alternatives, best first; `text` as for the chosen token. */
  top: { token: number; logprob: number; text: string }[];
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
  /** Prompt tokens whose KV came from the prefix cache. */
  cachedPromptTokens: number;
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
  /** `<arch>.pooling_type` (llama.cpp's enum: 0 none, 1 mean, 2 cls, 3 last, 4 rank); -1 when the file has none,
   *  as decoder LMs do. What embed() pools with by default (src/engine/pooling.ts). */
  poolingType: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  contextLength: number;
  ropeTheta: number;
  /** The vocabulary and its special tokens, pre-tokenizer and chat templates (docs/tokenizers.md). */
  tokenizer: TokenizerInfo;
  bos: number;
  eos: number;
  weights: WeightsPolicy;
  /** Bytes of weights as held in memory (all ranks), by GGUF type name of the values: f32, f16, bf16, q8_0, q4_0,
   *  q4_K, q6_K, ... (norm vectors count as f32). */
  weightBytes: Record<string, number>;
  /** Tensors held in another type than the weights policy asked for (rows that are not whole blocks of it). */
  weightFallbacks: WeightFallback[];
  threads: number;
  /** Kernel set of the f32 / bf16 / q8_0 / q4_0 layouts (TL_KERNELS) ... */
  kernels: string;
  /** ... and of every other GGUF block type (TL_QUANT_KERNELS): scalar, avx2 or avx512. */
  quantKernels: string;
  loadMs: number;
  trainedContextLength: number;
  layout: ModelLayoutSettings & { kvCacheBlocks: number; allreduceDelayUs: number; alltoallDelayUs?: number };
  /** Mixture-of-Experts models only (absent for dense ones). */
  moe?: MoeModelInfo;
  /** KV-cache bytes one token takes as laid out (layout.kvDtype, every tensor-parallel rank, int8 scales included):
   *  what the pool is sized by. For an MLA model, one row of kvLoraRank + qkRopeDim values per layer (per rank). */
  kvBytesPerToken: number;
  /** What plain multi-head attention over the same query heads would take per token in that dtype: nLayers x nHeads x
   *  (key head + value head) values (MLA: qkNopeDim + qkRopeDim and vHeadDim). Equal to kvBytesPerToken for MHA
   *  models (at tpDegree 1), larger for GQA and MLA ones. */
  kvBytesPerTokenMha: number;
  /** Multi-head Latent Attention (deepseek2), when the model has it (docs/architecture.md, MLA). */
  mla?: MlaInfo;
}

/** The expert structure of a Mixture-of-Experts model (ModelInfo.moe). */
export interface MoeModelInfo {
  /** Routed experts per MoE layer. */
  expertCount: number;
  /** Experts each token is routed to (top-k). */
  expertUsed: number;
  /** Shared experts every token runs through (deepseek2), 0 for qwen3moe. */
  sharedExperts: number;
  /** Leading layers with a dense FFN (deepseek2's leading_dense_block_count). */
  leadingDenseLayers: number;
  gating: 'softmax' | 'sigmoid';
  /** Parameters one token runs through (dense parts, shared experts and expertUsed routed experts) and in all. */
  activeParams: number;
  totalParams: number;
  /** Weight bytes a single token's forward pass reads, as the weights are held. */
  activeWeightBytesPerToken: number;
}

/** The MLA shape of a deepseek2 model, as the file declares it. */
export interface MlaInfo {
  /** attention.q_lora_rank: 0 when the query projection reads the layer input directly. */
  qLoraRank: number;
  /** attention.kv_lora_rank: the cached latent's width. */
  kvLoraRank: number;
  /** Per head: the query/key part without position, the rotated part (shared by all heads' keys), the value width. */
  qkNopeDim: number;
  qkRopeDim: number;
  vHeadDim: number;
  /** The query . key scale: mscale^2 / sqrt(qkNopeDim + qkRopeDim) under YaRN, as llama.cpp computes it. */
  kqScale: number;
}

/** Routing and expert-parallel counters of a Mixture-of-Experts model (EngineStats.moe), cumulative since load. */
export interface MoeStats {
  expertCount: number;
  expertUsed: number;
  sharedExperts: number;
  /** The layer indices that are MoE, ascending. */
  moeLayers: number[];
  /** [i over moeLayers][expert]: tokens routed to each expert (each token counts once per expert it selects). */
  tokensPerExpert: number[][];
  epDegree: number;
  redundantExperts: ExpertRef[];
  /** Per rank: seconds in expert-parallel all-to-alls (the combine; injected delay included). */
  allToAllSeconds: number[];
  allToAlls: number;
  /** Routed rows computed on a rank other than their token's home rank (token index mod ranks): the rows a real
   *  interconnect would dispatch to the expert's rank and return, cumulative. Always set by the engine; absent in
   *  windows the tuner reads back from Prometheus (no metric carries it). */
  allToAllRows?: number;
  /** Per rank: seconds in routed-expert matmuls. */
  expertSecondsPerRank: number[];
}

/** What the GGUF's tokenizer metadata says and how the engine reads it (Engine.info.tokenizer, VocabTokenizer.info). */
export interface TokenizerInfo {
  /** tokenizer.ggml.model: 'llama' (SentencePiece) or 'gpt2' (byte-level BPE). */
  model: 'llama' | 'gpt2';
  /** The pre-tokenizer: the file's tokenizer.ggml.pre ('default' for a gpt2 file without one, with a warning). */
  pre: string;
  nVocab: number;
  bosId: number | null;
  eosId: number | null;
  /** Texts of the BOS / EOS tokens (null when the file has none). */
  bos: string | null;
  eos: string | null;
  /** Every id that ends generation: EOS, EOT, EOM and the turn-end control tokens (<|eot_id|>, <|im_end|>, ...). */
  eogIds: number[];
  /** Their texts, in the same order. */
  eogTokens: string[];
  /** tokenizer.ggml.add_bos_token (what tokenize() does when addBos is not given). */
  addBos: boolean;
  /** SentencePiece only: a space is prefixed to text (tokenizer.ggml.add_space_prefix). */
  addSpacePrefix: boolean;
  /** tokenizer.chat_template, or null. */
  chatTemplate: string | null;
  /** Named templates (tokenizer.chat_template.NAME), by NAME. */
  chatTemplates: Record<string, string>;
  /** Load-time warnings (missing pre-tokenizer, turn-end tokens not typed control, ...). */
  warnings: string[];
}

/** tokenize() options (Engine.tokenize, VocabTokenizer.tokenize). */
export interface TokenizeOptions {
  /** Control-token texts (<|im_end|>, <|eot_id|>, ...) in the text become those tokens (default false: plain text).
   *  User-defined tokens are always matched, as in Hugging Face tokenizers and llama.cpp. */
  parseSpecial?: boolean;
  /** Flat [start, end) pairs of UTF-8 byte offsets where control-token text stays plain text even with
   *  parseSpecial (user content inside a rendered chat template). */
  plainRanges?: Int32Array | readonly number[];
}

export interface WeightFallback {
  tensor: string;
  /** GGUF type names, e.g. requested 'q4_K', used 'q5_0'. */
  requested: string;
  used: string;
}

/** What a GGUF file holds, read from its header and tensor infos only (native().inspectModel, Engine.inspect). Numbers
 *  the file does not state are 0. Type names are ggml's (f32, f16, bf16, q8_0, q4_K, ...; unknown(ID) for an id
 *  nobody knows, whose bytes count as 0). */
export interface ModelInspection {
  architecture: string;
  name: string;
  /** Elements of every tensor. */
  parameters: number;
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  vocabSize: number;
  tokenizer: { model: string; pre: string; tokens: number; bos: number | null; eos: number | null };
  /** Per type, most bytes first. */
  tensorTypes: { type: string; tensors: number; elements: number; bytes: number }[];
  /** 8 x tensor bytes / parameters (tensors of known types). */
  bitsPerWeight: number;
  fileBytes: number;
  tensors: { name: string; type: string; shape: number[]; bytes: number }[];
  /** KV-cache bytes per token at f16 (one rank) as tuneloop lays the model out, next to plain multi-head attention's
   *  over the same query heads (ModelInfo.kvBytesPerToken / kvBytesPerTokenMha); `latent` for MLA. `error` instead
   *  when tuneloop cannot read the file's hyperparameters. */
  kvCache: { dtype: 'f16'; bytesPerToken: number; bytesPerTokenMha: number; latent: boolean } | { error: string };
}

export interface HistogramSnapshot {
  /** Upper bounds; a last +Inf bucket is implied. */
  bounds: number[];
  /** Per-bucket counts (not cumulative), bounds.length + 1 of them. */
  counts: number[];
  sum: number;
  count: number;
}

/** One snapshot of the engine's counters and histograms (engine.stats()). */
export interface EngineStats {
  requests: {
    submitted: number;
    finished: number;
    cancelled: number;
    timedOut: number;
    failed: number;
    running: number;
    waiting: number;
    rejected: { queue_full: number; context_overflow: number; invalid: number; closed: number };
  };
  tokens: { prompt: number; generated: number; prefillComputed: number; promptCached: number };
  latency: {
    queueTimeSeconds: HistogramSnapshot;
    timeToFirstTokenSeconds: HistogramSnapshot;
    interTokenSeconds: HistogramSnapshot;
    e2eSeconds: HistogramSnapshot;
    promptTokens: HistogramSnapshot;
    generationTokens: HistogramSnapshot;
  };
  batches: {
    steps: number;
    size: HistogramSnapshot;
    tokens: HistogramSnapshot;
    stepDurationSeconds: { prefill: HistogramSnapshot; decode: HistogramSnapshot; mixed: HistogramSnapshot };
    flushes: { full: number; timeout: number; queue_threshold: number };
    preemptions: number;
  };
  kvCache: {
    blocksTotal: number;
    blocksUsed: number;
    blocksCached: number;
    blocksFree: number;
    blockSizeTokens: number;
    usageRatio: number;
    fragmentationRatio: number;
    prefixQueries: number;
    prefixHits: number;
  };
  opSeconds: Record<'matmul' | 'attention' | 'norm' | 'rope' | 'ffn_activation' | 'embedding' | 'output' | 'sampling', number>;
  tensorParallel: { rankBusySeconds: number[]; rankAllreduceSeconds: number[]; allreduces: number };
  memoryBytes: { weights: number; kv: number; scratch: number };
  weightBytesByDtype: Record<string, number>;
  busySeconds: number;
  uptimeSeconds: number;
  reloads: number;
  reconfigures: number;
  settings: SchedulerSettings & ModelLayoutSettings & { kvCacheBlocks: number; allreduceDelayUs: number; alltoallDelayUs?: number };
  /** Mixture-of-Experts models only (absent for dense ones). */
  moe?: MoeStats;
  /** Grammar-constrained decoding (docs/structured-output.md); absent from engines built before it. */
  grammar?: GrammarStats;
}

/** engine.stats().grammar: cumulative since load. */
export interface GrammarStats {
  /** Requests submitted with a grammar. */
  requests: number;
  /** Tokens sampled while a grammar was active. */
  tokens: number;
  /** Time spent constraining those tokens: the row copy, the allowed-check, full masks, a second draw, advancing the
   *  state (the one draw an unconstrained request makes too counts in opSeconds.sampling). */
  maskSeconds: number;
  /** Tokens the unconstrained sampler picked that the grammar allowed (no mask needed). */
  fastAccepts: number;
  /** Full masks computed by walking the vocabulary trie. */
  masksComputed: number;
  /** Full masks served from the per-grammar cache. */
  maskCacheHits: number;
  /** Requests ended with 'stop' because no token could continue the text. */
  deadEnds: number;
  /** Transitions refused by a matcher bound (live stacks, stack depth, expansion steps). */
  limitHits: number;
  /** Requests ended with 'stop' because the grammar was complete. */
  completed: number;
  /** Lazy grammars whose trigger appeared. */
  triggered: number;
}

/** The native side's name for ExpertRef (one routed expert of one MoE layer). */
export type RedundantExpert = ExpertRef;
