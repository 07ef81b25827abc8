// Synthetic GGUF files of the dense model families beyond plain Llama: the Llama RoPE variants (Llama-3.1 rope_freqs,
// linear and YaRN scaling, attention.key_length != dim / heads, Mistral-style files), Qwen2, Qwen3, Gemma-2, Gemma-3
// and Phi-3, each at a scaled-down version of a real model's shape, with seeded random weights; and (MOE_PRESETS) the
// Mixture-of-Experts families Qwen3-MoE and DeepSeek-V2 / V3 (deepseek2: MLA, shared experts, leading dense layers),
// with routers skewed the way trained ones are (docs/architecture-tests.md).
//
// Every file holds exactly the tensor names, shapes and metadata keys that llama.cpp's loaders read for that
// architecture and that its Hugging Face converter (convert_hf_to_gguf.py) writes; where the converter leaves a key
// out (Gemma-2 has no rope.freq_base, Phi-3 no rope.scaling.type, Gemma-3 no sliding_window_pattern), so do we, so a
// loader is tested on the defaults real files rely on. Notes on what llama.cpp does with each family sit beside its
// preset below.
//
// Weights come from the same generator as synthetic-llama.ts (a PRNG seeded by (seed, tensor name), std =
// gain / sqrt(fan_in)), so activations stay near unit RMS whatever the width. Norm weights are 1 + 0.1 N(0, 1), which
// for Gemma is what the converter stores (it adds Gemma's "+1" to the checkpoint's norm weights), so every family's
// GGUF norm weights are used as they are.
import type { GgufReadFile } from './gguf-reader.js';
import { GGML_TYPE, GGUF_VALUE_TYPE, gv, type GgufScalarTypeName, type GgufTensorEntry, type GgufValue, type TensorChunk } from './gguf-writer.js';
import {
  fittedType,
  ggmlTypeOf,
  llamaFileType,
  tensorData,
  tokenizerMetadata,
  useMoreBits,
  type EditableGgufModel,
  type SyntheticFileType,
  type SyntheticTensorType,
  type SyntheticTokenizer,
  type TensorPlan,
} from './synthetic-llama.js';

export type ArchName = 'llama' | 'qwen2' | 'qwen3' | 'gemma2' | 'gemma3' | 'phi3' | 'qwen3moe' | 'deepseek2';
export const ARCH_NAMES: readonly ArchName[] = ['llama', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'phi3', 'qwen3moe', 'deepseek2'];
/** The Mixture-of-Experts families (MOE_PRESETS): not in ARCH_PRESETS, whose every entry the dense agreement test
 *  runs through tuneloop. */
export const MOE_ARCH_NAMES: readonly ArchName[] = ['qwen3moe', 'deepseek2'];

/** RoPE scaling as a file declares it. */
export type RopeScaling =
  /** rope.scaling.type linear + rope.scaling.factor: every position divided by the factor. */
  | { type: 'linear'; factor: number }
  /** rope.scaling.type yarn + factor + rope.scaling.original_context_length (YaRN's ramp between them). */
  | { type: 'yarn'; factor: number; originalContext: number; betaFast?: number | undefined; betaSlow?: number | undefined }
  /** Llama-3.1: no scaling keys, a rope_freqs.weight tensor of per-frequency divisors computed from HF's
   *  rope_scaling {factor, low_freq_factor, high_freq_factor, original_max_position_embeddings}. */
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number }
  /** Phi-3 LongRoPE: rope_factors_short/long.weight, rope.scaling.original_context_length and
   *  rope.scaling.attn_factor; llama.cpp uses the long factors when the context it is given exceeds the original. */
  | { type: 'longrope'; originalContext: number; maxShortFactor: number; maxLongFactor: number };

export interface ArchSpec {
  arch: ArchName;
  /** The real model this shape scales down, and what the file exercises. */
  mimics: string;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Per-head width of Q/K/V (attention.key_length): need not be dim / nHeads. */
  headDim: number;
  ffnDim: number;
  contextLength: number;
  /** rope.freq_base; undefined: the key is left out (llama.cpp's default 10000 applies). */
  ropeTheta: number | undefined;
  rmsEps: number;
  /** No output.weight: the head reuses token_embd (always so for Gemma, whose loader never reads output.weight). */
  tiedEmbeddings: boolean;
  /** Write attention.key_length / value_length (converters do when the HF config has head_dim). */
  writeHeadDim: boolean;
  /** Write rope.dimension_count (Llama and Phi-3 converters do). */
  writeRopeDims: boolean;
  /** Rotated dimensions per head when fewer than headDim (partial rotary, Phi-4-mini); default headDim. */
  ropeDims?: number | undefined;
  /** Write <arch>.vocab_size (the Llama converter does). */
  writeVocabSize: boolean;
  ropeScaling?: RopeScaling | undefined;
  /** rope.freq_base_swa: the base of sliding-window layers (Gemma-3's default when absent is 10000). */
  ropeThetaSwa?: number | undefined;
  /** attn_q/k/v.bias (Qwen2). */
  qkvBias?: boolean | undefined;
  /** attention.sliding_window in tokens. */
  slidingWindow?: number | undefined;
  /** attention.sliding_window_pattern; undefined: left out (Gemma-2's default period is 2, Gemma-3's 6). */
  slidingWindowPattern?: number | undefined;
  /** attn_logit_softcapping / final_logit_softcapping. */
  attnSoftcap?: number | undefined;
  finalSoftcap?: number | undefined;
  /** Mixture-of-Experts FFN (qwen3moe, deepseek2). */
  moe?: MoeSpec | undefined;
  /** Multi-head Latent Attention (deepseek2): replaces attn_q/k/v. */
  mla?: MlaSpec | undefined;
}

/** Routed experts as llama.cpp's build_moe_ffn runs them: scores = gating(router logits), the top `nExpertsUsed` by
 *  score (+ selection bias, within the best `groups.used` groups), weights = the selected scores (renormalized when
 *  `normTopK`, times `weightsScale`), each expert a SwiGLU of width `expertFfnDim`. */
export interface MoeSpec {
  /** expert_count. */
  nExperts: number;
  /** expert_used_count (top-k). */
  nExpertsUsed: number;
  /** expert_feed_forward_length: each routed (and shared) expert's hidden width. */
  expertFfnDim: number;
  /** Router row gains spread from 1 to e^routerSkew (routerGains: hot experts have larger-variance logits and win
   *  top-k more often): trained routers are skewed, uniform random ones are not. */
  routerSkew: number;
  /** deepseek2: expert_shared_count; ffn_{gate,up,down}_shexp of width expertFfnDim * nShared. */
  nShared?: number | undefined;
  /** deepseek2: leading_dense_block_count (those layers have a plain ffn_gate/up/down of ffnDim); nLayers: no MoE
   *  layer at all (the expert keys are still written; llama.cpp reads them and runs every layer dense). */
  leadingDense?: number | undefined;
  /** deepseek2: expert_gating_func (softmax 1, sigmoid 2). qwen3moe: not written (llama.cpp always uses softmax). */
  gating?: 'softmax' | 'sigmoid' | undefined;
  /** deepseek2: expert_weights_norm (the converter writes it only when true). qwen3moe: not written (llama.cpp
   *  always renormalizes, Qwen3-MoE's norm_topk_prob). */
  normTopK?: boolean | undefined;
  /** deepseek2: expert_weights_scale (routed_scaling_factor). */
  weightsScale?: number | undefined;
  /** deepseek2 (V3): blk.N.exp_probs_b.bias, a per-expert bias added to the scores for selection only. */
  selectionBias?: boolean | undefined;
  /** deepseek2 (V3): expert_group_count / expert_group_used_count (group-limited routing; n_group / topk_group). */
  groups?: { count: number; used: number } | undefined;
}

/** DeepSeek's MLA as llama.cpp's deepseek2 loader reads it (the converter's split of kv_b_proj into attn_k_b, stored
 *  transposed, and attn_v_b, for the absorbed form). */
export interface MlaSpec {
  /** attention.q_lora_rank; 0: no query compression (DeepSeek-V2-Lite: attn_q directly). */
  qLoraRank: number;
  /** attention.kv_lora_rank: width of the compressed latent (attn_kv_a_norm). */
  kvLoraRank: number;
  /** qk_nope_head_dim / qk_rope_head_dim (rope.dimension_count) / v_head_dim. */
  qkNopeDim: number;
  qkRopeDim: number;
  vHeadDim: number;
  /** rope_scaling.mscale_all_dim: written as rope.scaling.yarn_log_multiplier = 0.1 * mscale_all_dim (the converter's
   *  legacy factor, which llama.cpp divides out again); undefined: left out. */
  mscaleAllDim?: number | undefined;
}

/** Where a preset's vocabulary comes from: a real one (by the name tools/lib/hf-vocab.ts or the Phi-3 fixture knows
 *  it) and the synthetic one of the same tokenizer model to use without it. */
export interface VocabChoice {
  real: 'llama3_1' | 'qwen3' | 'gemma3' | 'phi3' | undefined;
  synthetic: SyntheticTokenizer;
  /** The real model's embedding rows when they exceed the tokenizer's tokens (config.json vocab_size: Qwen pads
   *  151669 tokens to 151936); converters fill the gap with UNUSED [PADi] tokens. */
  realSize?: number | undefined;
  /** Tokens of the synthetic vocabulary when the shape calls for a particular size (default: the caller's). */
  syntheticSize?: number | undefined;
}

export interface ArchPreset {
  spec: ArchSpec;
  vocab: VocabChoice;
}

// Sequences in the tests are ~64-160 tokens: sliding windows of 16 and original contexts of 64 are passed well inside
// them, so the behaviour beyond each is compared, not just declared.
const WINDOW = 16;
const ORIGINAL_CONTEXT = 64;

export const ARCH_PRESETS: Readonly<Record<string, ArchPreset>> = {
  // Llama-3.2-1B (tied head, GQA, theta 500000) with Llama-3.1's rope_freqs (factor 8, low 1, high 4); the original
  // context is 64 instead of 8192 so that rope_freqs holds all three kinds of entries (1, 8 and the smooth ramp).
  'llama3.1': {
    spec: {
      arch: 'llama',
      mimics: 'Llama-3.2-1B / 3.1-8B: GQA, theta 500000, rope_freqs from rope_scaling llama3 (factor 8)',
      dim: 128,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 512,
      contextLength: 4096,
      ropeTheta: 500000,
      rmsEps: 1e-5,
      tiedEmbeddings: true,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: true,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: ORIGINAL_CONTEXT },
    },
    vocab: { real: 'llama3_1', synthetic: 'gpt2' },
  },
  // A Llama-2-style file (MHA, SentencePiece) fine-tuned with linear position interpolation (factor 4).
  'llama-linear': {
    spec: {
      arch: 'llama',
      mimics: 'Llama-2 with linear RoPE scaling (rope.scaling.type linear, factor 4)',
      dim: 128,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 4,
      headDim: 32,
      ffnDim: 344,
      contextLength: 1024,
      ropeTheta: 10000,
      rmsEps: 1e-5,
      tiedEmbeddings: false,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: true,
      ropeScaling: { type: 'linear', factor: 4 },
    },
    vocab: { real: undefined, synthetic: 'llama' },
  },
  // YaRN (as Yarn-Llama-2 / Qwen2.5 long-context configs declare it): factor 4 over an original context of 64.
  'llama-yarn': {
    spec: {
      arch: 'llama',
      mimics: 'Llama with YaRN scaling (rope.scaling.type yarn, factor 4, original context 64)',
      dim: 128,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 344,
      contextLength: 4 * ORIGINAL_CONTEXT * 4,
      ropeTheta: 10000,
      rmsEps: 1e-5,
      tiedEmbeddings: false,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: true,
      ropeScaling: { type: 'yarn', factor: 4, originalContext: ORIGINAL_CONTEXT },
    },
    vocab: { real: undefined, synthetic: 'llama' },
  },
  // Mistral-7B-v0.3 as llama.cpp files hold it: arch llama, GQA 4:1, theta 1e6, a SentencePiece vocabulary (32768
  // tokens in the real model; a small synthetic one here, the vocabulary size changes nothing in the layers). Converted Mistral files declare no sliding window (v0.2+ have none; the converter never wrote v0.1's).
  mistral: {
    spec: {
      arch: 'llama',
      mimics: 'Mistral-7B-v0.3: llama layout, GQA 4:1, theta 1e6, SentencePiece vocabulary',
      dim: 128,
      nLayers: 2,
      nHeads: 8,
      nKvHeads: 2,
      headDim: 16,
      ffnDim: 448,
      contextLength: 32768,
      ropeTheta: 1e6,
      rmsEps: 1e-5,
      tiedEmbeddings: false,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: true,
    },
    vocab: { real: undefined, synthetic: 'llama' },
  },
  // Mistral-Nemo: head_dim 128 with dim 5120 / 32 heads = 160, so attention.key_length != dim / heads and the Q and
  // output projections are not square.
  'mistral-nemo': {
    spec: {
      arch: 'llama',
      mimics: 'Mistral-Nemo-12B: llama layout, attention.key_length 32 != dim / heads 16, theta 1e6',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 224,
      contextLength: 4096,
      ropeTheta: 1e6,
      rmsEps: 1e-5,
      tiedEmbeddings: false,
      writeHeadDim: true,
      writeRopeDims: true,
      writeVocabSize: true,
    },
    vocab: { real: undefined, synthetic: 'gpt2' },
  },
  // Qwen2.5-0.5B: tied head, Q/K/V biases (llama.cpp's loader takes them as optional; real Qwen2 files always have
  // them), theta 1e6. Q and the output projection are dim x dim in this loader (head_dim = dim / heads).
  qwen2: {
    spec: {
      arch: 'qwen2',
      mimics: 'Qwen2.5-0.5B: attn_q/k/v biases, GQA, tied head, theta 1e6',
      dim: 128,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 688,
      contextLength: 32768,
      ropeTheta: 1e6,
      rmsEps: 1e-6,
      tiedEmbeddings: true,
      writeHeadDim: false,
      writeRopeDims: false,
      writeVocabSize: false,
      qkvBias: true,
    },
    vocab: { real: 'qwen3', realSize: 151936, synthetic: 'gpt2' },
  },
  // Qwen3-0.6B: per-head RMS norms of Q and K (attn_q_norm / attn_k_norm, head_dim wide) before RoPE, no biases,
  // head_dim 128 with dim 1024 / 16 heads (Q is 2x wider than the model).
  qwen3: {
    spec: {
      arch: 'qwen3',
      mimics: 'Qwen3-0.6B: attn_q_norm/attn_k_norm, key_length 32 != dim / heads 16, tied head, theta 1e6',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 192,
      contextLength: 40960,
      ropeTheta: 1e6,
      rmsEps: 1e-6,
      tiedEmbeddings: true,
      writeHeadDim: true,
      writeRopeDims: false,
      writeVocabSize: false,
    },
    vocab: { real: 'qwen3', realSize: 151936, synthetic: 'gpt2' },
  },
  // Gemma-2-2B: embeddings scaled by sqrt(dim), post-attention and post-FFN norms, GELU(tanh) gating, local (sliding
  // window) and global layers alternating (llama.cpp's default period 2: layer 0 local, layer 1 global), attention
  // and final logit soft-capping. The converter writes no rope.freq_base (10000 applies). llama.cpp scales queries by
  // 1/sqrt(head_dim) except for the 46-layer 27B (1/sqrt(dim / heads)): query_pre_attn_scalar is not in the file.
  // The soft-caps are lower than the real 50 / 30 so that they bite on these small random activations (real caps are
  // reached by trained models' logits, not by unit-scale random ones).
  gemma2: {
    spec: {
      arch: 'gemma2',
      mimics: 'Gemma-2-2B: post-norms, GELU, sqrt(dim) embedding scale, sliding window 16 on even layers, soft-caps',
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 256,
      contextLength: 8192,
      ropeTheta: undefined,
      rmsEps: 1e-6,
      tiedEmbeddings: true,
      writeHeadDim: true,
      writeRopeDims: false,
      writeVocabSize: false,
      slidingWindow: WINDOW,
      attnSoftcap: 5,
      finalSoftcap: 10,
    },
    vocab: { real: 'gemma3', synthetic: 'llama' },
  },
  // Gemma-3-4B: QK-norm, post-norms, 5 local layers (window, theta 10000 by default) then 1 global one (theta 1e6,
  // linear RoPE scaling 8 applied to global layers only), no soft-caps. Six layers: llama.cpp's default pattern
  // period is 6 (the converter writes no sliding_window_pattern), so the sixth layer is the first global one.
  gemma3: {
    spec: {
      arch: 'gemma3',
      mimics: 'Gemma-3-4B: QK-norm, post-norms, 5 local (window 16) : 1 global layers, global theta 1e6 + linear 8',
      dim: 64,
      nLayers: 6,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 256,
      contextLength: 131072,
      ropeTheta: 1e6,
      rmsEps: 1e-6,
      tiedEmbeddings: true,
      writeHeadDim: true,
      writeRopeDims: false,
      writeVocabSize: false,
      ropeScaling: { type: 'linear', factor: 8 },
      slidingWindow: WINDOW,
    },
    vocab: { real: 'gemma3', synthetic: 'llama' },
  },
  // Phi-3.5-mini: fused attn_qkv ([dim, dim + 2 kv]) and ffn_up holding gate and up ([dim, 2 ffn]), MHA, LongRoPE
  // (short/long factor tensors, rope.scaling.attn_factor = sqrt(1 + ln(ctx / original) / ln(original))). The
  // converter writes the config's sliding_window (262144 here), which llama.cpp ignores for Phi-3 (with a warning).
  phi3: {
    spec: {
      arch: 'phi3',
      mimics: 'Phi-3.5-mini: fused attn_qkv and gate+up, MHA, LongRoPE (original context 64, context 2048)',
      dim: 128,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 4,
      headDim: 32,
      ffnDim: 320,
      contextLength: 32 * ORIGINAL_CONTEXT,
      ropeTheta: 10000,
      rmsEps: 1e-5,
      tiedEmbeddings: false,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: false,
      ropeScaling: { type: 'longrope', originalContext: ORIGINAL_CONTEXT, maxShortFactor: 1.5, maxLongFactor: 40 },
      slidingWindow: 262144,
    },
    vocab: { real: 'phi3', synthetic: 'llama' },
  },
  // Phi-4-mini: the phi3 architecture with GQA (24 : 8), partial rotary (partial_rotary_factor 0.75: 96 of 128 head
  // dimensions rotated, the LongRoPE factors that wide), a tied head, and sliding_window 0 (the converter writes 0
  // for Phi-4). Its real vocabulary (o200k, 200k tokens) is not among the test packages: synthetic byte-level BPE.
  'phi4-mini': {
    spec: {
      arch: 'phi3',
      mimics: 'Phi-4-mini: phi3 layout with GQA 3:1, partial rotary 0.75 (24 of 32), tied head, LongRoPE',
      dim: 192,
      nLayers: 2,
      nHeads: 6,
      nKvHeads: 2,
      headDim: 32,
      ropeDims: 24,
      ffnDim: 512,
      contextLength: 32 * ORIGINAL_CONTEXT,
      ropeTheta: 10000,
      rmsEps: 1e-5,
      tiedEmbeddings: true,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: false,
      ropeScaling: { type: 'longrope', originalContext: ORIGINAL_CONTEXT, maxShortFactor: 1.5, maxLongFactor: 40 },
      slidingWindow: 0,
    },
    vocab: { real: undefined, synthetic: 'gpt2' },
  },
};

/** Mixture-of-Experts presets (issue 17), kept apart from ARCH_PRESETS until tuneloop's engine runs them. */
export const MOE_PRESETS: Readonly<Record<string, ArchPreset>> = {
  // Qwen3-30B-A3B (48 layers, dim 2048, 32 : 4 heads of 128, 128 experts of 768, top-8): Qwen3's QK-norm attention
  // with a routed-expert FFN in every layer (no shared expert, no dense layer). llama.cpp's qwen3moe graph always
  // uses softmax gating and renormalizes the top-k weights (norm_topk_prob), so neither key is in the file; the
  // converter writes feed_forward_length (the unused dense width) and expert_feed_forward_length.
  qwen3moe: {
    spec: {
      arch: 'qwen3moe',
      mimics: 'Qwen3-30B-A3B: QK-norm, GQA 4:1, key_length 32 (Q 2x dim), 16 experts of 64, top-4, softmax + renorm',
      dim: 128,
      nLayers: 2,
      nHeads: 8,
      nKvHeads: 2,
      headDim: 32,
      ffnDim: 384,
      contextLength: 40960,
      ropeTheta: 1e6,
      rmsEps: 1e-6,
      tiedEmbeddings: false,
      writeHeadDim: true,
      writeRopeDims: false,
      writeVocabSize: false,
      moe: { nExperts: 16, nExpertsUsed: 4, expertFfnDim: 64, routerSkew: 2 },
    },
    vocab: { real: 'qwen3', realSize: 151936, synthetic: 'gpt2' },
  },
  // DeepSeek-V2-Lite (27 layers, dim 2048, 16 heads, no q_lora, kv_lora 512, nope 128 + rope 64, v 128, 64 experts of
  // 1408, top-6, 2 shared, first layer dense, softmax without renormalization, YaRN factor 40 over 4096 with
  // mscale_all_dim 0.707). Real V2-Lite files have no q_lora_rank key: llama.cpp recognizes them by their 27 (or 26)
  // layers and requires the key for any other layer count, so this scaled-down file writes q_lora_rank = 0.
  'deepseek2-lite': {
    spec: {
      arch: 'deepseek2',
      mimics: 'DeepSeek-V2-Lite: MLA (direct attn_q, kv_lora 64, nope 32 + rope 16), 1 dense + 2 MoE layers, 16 experts, top-4, 2 shared, softmax, YaRN 4',
      dim: 128,
      nLayers: 3,
      nHeads: 4,
      nKvHeads: 1,
      headDim: 48,
      ropeDims: 16,
      ffnDim: 384,
      contextLength: 4 * ORIGINAL_CONTEXT * 4,
      ropeTheta: 10000,
      rmsEps: 1e-6,
      tiedEmbeddings: false,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: true,
      ropeScaling: { type: 'yarn', factor: 4, originalContext: ORIGINAL_CONTEXT, betaFast: 32, betaSlow: 1 },
      mla: { qLoraRank: 0, kvLoraRank: 64, qkNopeDim: 32, qkRopeDim: 16, vHeadDim: 32, mscaleAllDim: 0.707 },
      moe: {
        nExperts: 16,
        nExpertsUsed: 4,
        expertFfnDim: 32,
        routerSkew: 2,
        nShared: 2,
        leadingDense: 1,
        gating: 'softmax',
        normTopK: false,
        weightsScale: 1,
        groups: { count: 1, used: 1 },
      },
    },
    vocab: { real: undefined, synthetic: 'gpt2' },
  },
  // DeepSeek-V3 (61 layers, 3 dense, dim 7168, 128 heads, q_lora 1536, kv_lora 512, 256 experts of 2048 in 8 groups,
  // top-8 from the best 4 groups, 1 shared, sigmoid scores + exp_probs_b selection bias, renormalized, scaled by 2.5,
  // YaRN factor 40 over 4096 with mscale_all_dim 1). Same deepseek2 architecture in GGUF.
  deepseek3: {
    spec: {
      arch: 'deepseek2',
      mimics:
        'DeepSeek-V3: MLA (q_lora 96, kv_lora 64), 1 dense + 3 MoE layers, 16 experts in 4 groups (best 2), top-4, 1 shared, sigmoid + selection bias, scale 2.5, YaRN 4',
      dim: 128,
      nLayers: 4,
      nHeads: 4,
      nKvHeads: 1,
      headDim: 48,
      ropeDims: 16,
      ffnDim: 384,
      contextLength: 4 * ORIGINAL_CONTEXT * 4,
      ropeTheta: 10000,
      rmsEps: 1e-6,
      tiedEmbeddings: false,
      writeHeadDim: false,
      writeRopeDims: true,
      writeVocabSize: true,
      ropeScaling: { type: 'yarn', factor: 4, originalContext: ORIGINAL_CONTEXT, betaFast: 32, betaSlow: 1 },
      mla: { qLoraRank: 96, kvLoraRank: 64, qkNopeDim: 32, qkRopeDim: 16, vHeadDim: 32, mscaleAllDim: 1 },
      moe: {
        nExperts: 16,
        nExpertsUsed: 4,
        expertFfnDim: 32,
        routerSkew: 2,
        nShared: 1,
        leadingDense: 1,
        gating: 'sigmoid',
        normTopK: true,
        weightsScale: 2.5,
        selectionBias: true,
        groups: { count: 4, used: 2 },
      },
    },
    vocab: { real: undefined, synthetic: 'gpt2' },
  },
};

/** A preset by name, dense or MoE. */
export function archPreset(name: string): ArchPreset | undefined {
  return ARCH_PRESETS[name] ?? MOE_PRESETS[name];
}

export function validateArchSpec(s: ArchSpec): void {
  const ints: (keyof ArchSpec)[] = ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'ffnDim', 'contextLength'];
  for (const k of ints) {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`spec.${k} must be a positive integer`);
  }
  if (!ARCH_NAMES.includes(s.arch)) throw new Error(`unknown architecture '${s.arch}' (known: ${ARCH_NAMES.join(', ')})`);
  if (s.headDim % 2 !== 0) throw new Error('headDim must be even (RoPE rotates pairs)');
  const rot = s.ropeDims ?? s.headDim;
  if (!Number.isInteger(rot) || rot <= 0 || rot % 2 !== 0 || rot > s.headDim) throw new Error(`ropeDims ${rot} must be even and at most headDim`);
  if (rot !== s.headDim && (s.arch === 'llama' || !s.writeRopeDims)) throw new Error('partial rotary needs a non-llama architecture and writeRopeDims');
  if (s.nHeads % s.nKvHeads !== 0) throw new Error(`nHeads ${s.nHeads} is not a multiple of nKvHeads ${s.nKvHeads}`);
  // These loaders size Q and the output projection as dim x dim: head_dim must be dim / heads.
  if ((s.arch === 'qwen2' || s.arch === 'phi3') && s.headDim * s.nHeads !== s.dim) {
    throw new Error(`${s.arch} needs headDim * nHeads = dim (${s.headDim} * ${s.nHeads} != ${s.dim})`);
  }
  if (s.headDim * s.nHeads !== s.dim && !s.writeHeadDim && s.arch !== 'deepseek2') throw new Error('headDim != dim / nHeads must be written (writeHeadDim)');
  validateMoe(s);
  if (s.arch === 'gemma2' || s.arch === 'gemma3') {
    if (!s.tiedEmbeddings) throw new Error(`${s.arch} files have no output.weight (tiedEmbeddings must be true)`);
  }
  if (s.ropeScaling?.type === 'longrope' && s.arch !== 'phi3') throw new Error('LongRoPE factors are a phi3 feature here');
  if (!(s.rmsEps > 0) || (s.ropeTheta !== undefined && !(s.ropeTheta > 0))) throw new Error('rmsEps and ropeTheta must be positive');
}

function validateMoe(s: ArchSpec): void {
  const moeArch = MOE_ARCH_NAMES.includes(s.arch);
  if (moeArch !== (s.moe !== undefined)) throw new Error(`${s.arch}: spec.moe is ${moeArch ? 'required' : 'only for MoE architectures'}`);
  if ((s.arch === 'deepseek2') !== (s.mla !== undefined)) throw new Error(`${s.arch}: spec.mla is ${s.arch === 'deepseek2' ? 'required' : 'only for deepseek2'}`);
  const m = s.moe;
  if (m !== undefined) {
    const posInt = (v: number | undefined, what: string, zero = false): void => {
      if (v !== undefined && (!Number.isInteger(v) || v < (zero ? 0 : 1))) throw new Error(`moe.${what} must be a ${zero ? 'non-negative' : 'positive'} integer`);
    };
    posInt(m.nExperts, 'nExperts');
    posInt(m.nExpertsUsed, 'nExpertsUsed');
    posInt(m.expertFfnDim, 'expertFfnDim');
    posInt(m.nShared, 'nShared', true);
    posInt(m.leadingDense, 'leadingDense', true);
    if (m.nExpertsUsed > m.nExperts) throw new Error(`moe.nExpertsUsed ${m.nExpertsUsed} exceeds nExperts ${m.nExperts}`);
    if (!(m.routerSkew >= 0)) throw new Error('moe.routerSkew must be >= 0');
    // leadingDense = nLayers: every layer dense (a deepseek2 file that exercises MLA alone; llama.cpp loads it).
    if ((m.leadingDense ?? 0) > s.nLayers) throw new Error(`moe.leadingDense ${m.leadingDense} exceeds nLayers ${s.nLayers}`);
    if (s.arch === 'qwen3moe') {
      const dsOnly = ['nShared', 'leadingDense', 'gating', 'normTopK', 'weightsScale', 'selectionBias', 'groups'] as const;
      const bad = dsOnly.find((k) => m[k] !== undefined);
      if (bad !== undefined) throw new Error(`qwen3moe: moe.${bad} is not read by llama.cpp's qwen3moe graph`);
    } else if ((m.nShared ?? 0) < 1) {
      throw new Error('deepseek2: llama.cpp requires the shared expert tensors (moe.nShared >= 1)');
    }
    const g = m.groups;
    if (g !== undefined && g.count > 1) {
      // llama.cpp's asserts (llama-model.cpp): groups divide the experts, fewer used than there are, 2 ranked per group.
      if (m.nExperts % g.count !== 0 || g.used < 1 || g.used >= g.count) throw new Error(`moe.groups ${g.count}/${g.used} do not fit ${m.nExperts} experts`);
      if ((m.nExperts / g.count) * g.used < m.nExpertsUsed) throw new Error('moe.groups.used groups hold fewer experts than nExpertsUsed');
    }
  }
  const a = s.mla;
  if (a !== undefined) {
    for (const k of ['kvLoraRank', 'qkNopeDim', 'qkRopeDim', 'vHeadDim'] as const) {
      if (!Number.isInteger(a[k]) || a[k] <= 0) throw new Error(`mla.${k} must be a positive integer`);
    }
    if (!Number.isInteger(a.qLoraRank) || a.qLoraRank < 0) throw new Error('mla.qLoraRank must be a non-negative integer');
    if (s.headDim !== a.qkNopeDim + a.qkRopeDim || (s.ropeDims ?? s.headDim) !== a.qkRopeDim)
      throw new Error('deepseek2: headDim must be qkNopeDim + qkRopeDim and ropeDims qkRopeDim');
    if (s.nKvHeads !== 1) throw new Error('deepseek2: nKvHeads must be 1 (the converter writes head_count_kv 1: MLA as MQA)');
  }
}

/** Gains of the router rows: exp(skew * rank / (E - 1)), from 1 to e^skew, the ranks scattered over the experts
 *  (expert e has rank (e * 7) mod E) so the hot experts are not simply the first ones. Larger-gain rows give larger
 *  logits and win top-k more often: with skew 2 on isotropic inputs the hottest expert takes ~1.6x its share and the
 *  coldest ~0.3x (a flat router: ~1.2x / ~0.8x). */
export function routerGains(nExperts: number, skew: number): Float32Array {
  const g = new Float32Array(nExperts);
  const step = nExperts % 7 === 0 ? 1 : 7;
  for (let e = 0; e < nExperts; e++) g[e] = nExperts === 1 ? 1 : Math.exp((skew * ((e * step) % nExperts)) / (nExperts - 1));
  return g;
}

// ---------------------------------------------------------------------------------------------------------------
// RoPE factor tensors.

/** Llama-3.1's rope_freqs: per frequency i (of headDim / 2), the divisor of the rotation frequency, as the HF
 *  converter computes it from rope_scaling (high frequencies kept, low ones divided by `factor`, a smooth ramp in
 *  between by wavelength against the original context). */
export function llama3RopeFreqs(headDim: number, theta: number, s: Extract<RopeScaling, { type: 'llama3' }>): Float32Array {
  const out = new Float32Array(headDim / 2);
  const lowWavelen = s.originalContext / s.lowFreqFactor;
  const highWavelen = s.originalContext / s.highFreqFactor;
  for (let i = 0; i < out.length; i++) {
    const freq = Math.fround(1 / Math.fround(theta ** ((2 * i) / headDim)));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** LongRoPE factors shaped like Phi-3.5's: near 1 for the high frequencies, rising towards the low ones (short up to
 *  maxShortFactor, long up to maxLongFactor). Deterministic, not random: they are hyper-parameters, not weights. */
export function longRopeFactors(headDim: number, s: Extract<RopeScaling, { type: 'longrope' }>): { short: Float32Array; long: Float32Array } {
  const n = headDim / 2;
  const short = new Float32Array(n);
  const long = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = n === 1 ? 1 : i / (n - 1);
    short[i] = 1 + (s.maxShortFactor - 1) * t * t;
    long[i] = 1 + (s.maxLongFactor - 1) * t * t * t;
  }
  return { short, long };
}

/** Phi-3's attention factor for LongRoPE (the converter's formula): sqrt(1 + ln(scale) / ln(original)). */
export function longRopeAttnFactor(contextLength: number, originalContext: number): number {
  const scale = contextLength / originalContext;
  return scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(originalContext)) : 1;
}

// ---------------------------------------------------------------------------------------------------------------
// Tensors.

/** Gain of the output head (and token_embd): logits of std g over V tokens give a softmax of entropy ~ln V - g^2 / 2,
 *  so g = sqrt(2 (ln V - 4)) keeps next-token distributions at ~4 nats whatever the vocabulary (2 for a few hundred
 *  tokens, ~4 for 128k-262k). Near-uniform distributions would make any two engines agree in cosine. */
export function headGain(nVocab: number): number {
  return Math.max(2, Math.sqrt(2 * (Math.log(nVocab) - 4)));
}

/** One tensor of a synthetic file: random (plan.dist) or fixed values. */
export interface ArchTensor {
  plan: TensorPlan;
  /** Fixed F32 values (RoPE factors) instead of random ones. */
  values?: Float32Array;
  /** Per-row multipliers of the random values (the router's skew), one per row (ne[1] * ne[2] ...). */
  rowGains?: Float32Array;
}

/** Tensors in file order, with shapes (ne[0] = row length), types and value distributions. Norms, biases and RoPE
 *  factors are F32 (as converters write them); matrices take the file type, falling back as fittedType() says. */
export function archTensorPlan(
  spec: ArchSpec,
  nVocab: number,
  fileType: SyntheticFileType,
  tensorTypes: Readonly<Record<string, SyntheticTensorType>> = {},
): ArchTensor[] {
  validateArchSpec(spec);
  const s = spec;
  const q = s.nHeads * s.headDim;
  const kv = s.nKvHeads * s.headDim;
  const wanted = (name: string, layer: number): number => {
    const override = tensorTypes[name];
    if (override !== undefined) return ggmlTypeOf(override);
    if (fileType !== 'q4_k_m') return ggmlTypeOf(fileType);
    // llama.cpp's Q4_K_M: q6_K for the head (token_embd when tied), attn_v / ffn_down in the use_more_bits layers;
    // q5_K for a fused attn_qkv.
    const head = name === 'output.weight' || (s.tiedEmbeddings && name === 'token_embd.weight');
    const more = (name.endsWith('attn_v.weight') || /ffn_down(_exps|_shexp)?\.weight$/.test(name)) && useMoreBits(layer, s.nLayers);
    if (head || more) return GGML_TYPE.Q6_K;
    return name.endsWith('attn_qkv.weight') ? GGML_TYPE.Q5_K : GGML_TYPE.Q4_K;
  };
  const matrix = (name: string, inF: number, outF: number, gain = 1, layer = -1): ArchTensor => ({
    plan: { name, ne: [inF, outF], type: fittedType(wanted(name, layer), inF), dist: { mean: 0, std: gain / Math.sqrt(inF) } },
  });
  // 3-D: `count` matrices of [inF, outF] (one per expert or head), ggml ne [inF, outF, count]; each one's rows are
  // whole blocks of the type or the whole tensor falls back, as for a matrix.
  const stack = (name: string, inF: number, outF: number, count: number, layer: number): ArchTensor => ({
    plan: { name, ne: [inF, outF, count], type: fittedType(wanted(name, layer), inF), dist: { mean: 0, std: 1 / Math.sqrt(inF) } },
  });
  const vector = (name: string, n: number, mean: number, std: number): ArchTensor => ({
    plan: { name, ne: [n], type: GGML_TYPE.F32, dist: { mean, std } },
  });
  const norm = (name: string, n = s.dim): ArchTensor => vector(name, n, 1, 0.1);
  // Gemma's residual stream starts at sqrt(dim)-scaled embeddings (RMS ~2 here) and every layer adds a normalized
  // output: post-norm weights of ~2 keep the layers' share of it near a trained model's, instead of letting the
  // input embedding dominate the (tied) head.
  const postNorm = (name: string): ArchTensor => vector(name, s.dim, 2, 0.2);
  const fixed = (name: string, values: Float32Array): ArchTensor => ({
    plan: { name, ne: [values.length], type: GGML_TYPE.F32, dist: { mean: 0, std: 0 } },
    values,
  });

  const head = headGain(nVocab);
  const out: ArchTensor[] = [matrix('token_embd.weight', s.dim, nVocab, head)];
  // Global RoPE factor tensors come first, as the converters emit them (generate_extra_tensors).
  const rs = s.ropeScaling;
  const rot = s.ropeDims ?? s.headDim;
  if (rs?.type === 'llama3') out.push(fixed('rope_freqs.weight', llama3RopeFreqs(rot, s.ropeTheta ?? 10000, rs)));
  if (rs?.type === 'longrope') {
    const f = longRopeFactors(rot, rs);
    out.push(fixed('rope_factors_long.weight', f.long), fixed('rope_factors_short.weight', f.short));
  }
  for (let i = 0; i < s.nLayers; i++) {
    const p = `blk.${i}.`;
    out.push(norm(`${p}attn_norm.weight`));
    if (s.mla !== undefined) {
      out.push(...mlaTensors(s, s.mla, p, i, { matrix, stack, norm }));
    } else if (s.arch === 'phi3') {
      out.push(matrix(`${p}attn_qkv.weight`, s.dim, q + 2 * kv, 1, i));
    } else {
      out.push(matrix(`${p}attn_q.weight`, s.dim, q, 1, i), matrix(`${p}attn_k.weight`, s.dim, kv, 1, i), matrix(`${p}attn_v.weight`, s.dim, kv, 1, i));
      // Biases of std 0.5: large enough to move attention (a loader that dropped them would be caught).
      if (s.qkvBias) out.push(vector(`${p}attn_q.bias`, q, 0, 0.5), vector(`${p}attn_k.bias`, kv, 0, 0.5), vector(`${p}attn_v.bias`, kv, 0, 0.5));
    }
    if (s.arch === 'qwen3' || s.arch === 'qwen3moe' || s.arch === 'gemma3')
      out.push(norm(`${p}attn_q_norm.weight`, s.headDim), norm(`${p}attn_k_norm.weight`, s.headDim));
    const oIn = s.mla !== undefined ? s.nHeads * s.mla.vHeadDim : q;
    out.push(matrix(`${p}attn_output.weight`, oIn, s.dim, 1, i));
    if (s.arch === 'gemma2' || s.arch === 'gemma3') out.push(postNorm(`${p}post_attention_norm.weight`));
    out.push(norm(`${p}ffn_norm.weight`));
    const m = s.moe;
    if (m !== undefined && i >= (m.leadingDense ?? 0)) {
      // The router stays F32 whatever the file type (converters and llama.cpp's quantizer never quantize it).
      const router = matrix(`${p}ffn_gate_inp.weight`, s.dim, m.nExperts, 1, i);
      router.plan.type = GGML_TYPE.F32;
      router.rowGains = routerGains(m.nExperts, m.routerSkew);
      out.push(router);
      // Selection bias: DeepSeek-V3's e_score_correction_bias (sigmoid scores are in (0, 1); a bias of std 0.1
      // reorders the top-k of about half the tokens).
      if (m.selectionBias) out.push(vector(`${p}exp_probs_b.bias`, m.nExperts, 0, 0.1));
      out.push(
        stack(`${p}ffn_gate_exps.weight`, s.dim, m.expertFfnDim, m.nExperts, i),
        stack(`${p}ffn_up_exps.weight`, s.dim, m.expertFfnDim, m.nExperts, i),
        stack(`${p}ffn_down_exps.weight`, m.expertFfnDim, s.dim, m.nExperts, i),
      );
      const sh = (m.nShared ?? 0) * m.expertFfnDim;
      if (sh > 0) {
        out.push(
          matrix(`${p}ffn_gate_shexp.weight`, s.dim, sh, 1, i),
          matrix(`${p}ffn_up_shexp.weight`, s.dim, sh, 1, i),
          matrix(`${p}ffn_down_shexp.weight`, sh, s.dim, 1, i),
        );
      }
    } else if (s.arch === 'phi3') {
      out.push(matrix(`${p}ffn_up.weight`, s.dim, 2 * s.ffnDim, 1, i), matrix(`${p}ffn_down.weight`, s.ffnDim, s.dim, 1, i));
    } else {
      out.push(matrix(`${p}ffn_gate.weight`, s.dim, s.ffnDim, 1, i), matrix(`${p}ffn_up.weight`, s.dim, s.ffnDim, 1, i));
      out.push(matrix(`${p}ffn_down.weight`, s.ffnDim, s.dim, 1, i));
    }
    if (s.arch === 'gemma2' || s.arch === 'gemma3') out.push(postNorm(`${p}post_ffw_norm.weight`));
  }
  out.push(norm('output_norm.weight'));
  if (!s.tiedEmbeddings) out.push(matrix('output.weight', s.dim, nVocab, head));
  return out;
}

interface TensorMakers {
  matrix: (name: string, inF: number, outF: number, gain?: number, layer?: number) => ArchTensor;
  stack: (name: string, inF: number, outF: number, count: number, layer: number) => ArchTensor;
  norm: (name: string, n?: number) => ArchTensor;
}

/** One layer's MLA tensors (llama.cpp's deepseek2 loader, MLA form): Q through a low-rank bottleneck (attn_q_a,
 *  attn_q_a_norm, attn_q_b) or directly (attn_q); attn_kv_a_mqa produces the latent (kv_lora_rank, normed by
 *  attn_kv_a_norm) followed by the shared RoPE key part (qk_rope); attn_k_b ne [qk_nope, kv_lora, heads] (per head
 *  the transpose of kv_b_proj's K rows) and attn_v_b ne [kv_lora, v_head, heads]. Q rows per head: nope, then rope. */
function mlaTensors(s: ArchSpec, a: MlaSpec, p: string, i: number, t: TensorMakers): ArchTensor[] {
  const qOut = s.nHeads * (a.qkNopeDim + a.qkRopeDim);
  const out: ArchTensor[] = [];
  if (a.qLoraRank > 0) {
    out.push(
      t.matrix(`${p}attn_q_a.weight`, s.dim, a.qLoraRank, 1, i),
      t.norm(`${p}attn_q_a_norm.weight`, a.qLoraRank),
      t.matrix(`${p}attn_q_b.weight`, a.qLoraRank, qOut, 1, i),
    );
  } else {
    out.push(t.matrix(`${p}attn_q.weight`, s.dim, qOut, 1, i));
  }
  out.push(
    t.matrix(`${p}attn_kv_a_mqa.weight`, s.dim, a.kvLoraRank + a.qkRopeDim, 1, i),
    t.norm(`${p}attn_kv_a_norm.weight`, a.kvLoraRank),
    // k_b is applied as kv_lora -> nope per head (K = k_b^T latent): its fan-in is kv_lora, its rows nope long.
    { plan: { ...t.stack(`${p}attn_k_b.weight`, a.qkNopeDim, a.kvLoraRank, s.nHeads, i).plan, dist: { mean: 0, std: 1 / Math.sqrt(a.kvLoraRank) } } },
    t.stack(`${p}attn_v_b.weight`, a.kvLoraRank, a.vHeadDim, s.nHeads, i),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata.

/** A vocabulary: real tokenizer metadata (tokenizer.* keys, e.g. from hf-vocab.ts or a vocabulary-only GGUF), or a
 *  synthetic one of `nVocab` tokens. */
export type ArchVocab = { metadata: readonly (readonly [string, GgufValue])[] } | { tokenizer: SyntheticTokenizer; nVocab: number };

/** Token count of a vocabulary's metadata (tokenizer.ggml.tokens). */
export function vocabSize(metadata: readonly (readonly [string, GgufValue])[]): number {
  const tokens = metadata.find(([k]) => k === 'tokenizer.ggml.tokens')?.[1];
  if (tokens === undefined || tokens.type !== 'array') throw new Error('vocabulary metadata has no tokenizer.ggml.tokens array');
  return tokens.items.length;
}

// Element types of the tokenizer arrays a vocabulary-only GGUF holds (the reader keeps values, not array item types).
const VOCAB_ARRAY_TYPES: Readonly<Record<string, GgufScalarTypeName>> = {
  'tokenizer.ggml.tokens': 'string',
  'tokenizer.ggml.merges': 'string',
  'tokenizer.ggml.scores': 'float32',
  'tokenizer.ggml.token_type': 'int32',
};

/** The tokenizer.* metadata of a parsed GGUF (e.g. one of llama.cpp's vocabulary-only files), as writer values with
 *  the types it was stored in. An array key whose element type is not known is refused, not guessed. */
export function vocabFromGguf(file: GgufReadFile): [string, GgufValue][] {
  const typeName = new Map<number, string>(Object.entries(GGUF_VALUE_TYPE).map(([k, v]) => [v, k]));
  const out: [string, GgufValue][] = [];
  for (const [key, value] of file.metadata) {
    if (!key.startsWith('tokenizer.')) continue;
    const t = typeName.get(file.metadataTypes.get(key) ?? -1);
    if (t === 'array') {
      const item = VOCAB_ARRAY_TYPES[key];
      if (item === undefined || !Array.isArray(value)) throw new Error(`vocabulary array '${key}' has no known element type`);
      out.push([key, gv.arr(item, value as (string | number)[])]);
    } else if (t !== undefined) {
      out.push([key, { type: t, value } as GgufValue]);
    } else {
      throw new Error(`vocabulary key '${key}' has an unknown value type`);
    }
  }
  return out;
}

function vocabMetadata(v: ArchVocab): (readonly [string, GgufValue])[] {
  if ('metadata' in v) {
    const bad = v.metadata.find(([k]) => !k.startsWith('tokenizer.'));
    if (bad !== undefined) throw new Error(`vocabulary metadata may only hold tokenizer.* keys, got '${bad[0]}'`);
    return [...v.metadata];
  }
  return tokenizerMetadata(v.tokenizer, v.nVocab);
}

export function archMetadata(spec: ArchSpec, nVocab: number, fileType: SyntheticFileType, name: string): [string, GgufValue][] {
  const s = spec;
  const a = s.arch;
  const kv: [string, GgufValue][] = [
    ['general.architecture', gv.str(a)],
    ['general.name', gv.str(name)],
    ['general.file_type', gv.u32(llamaFileType(fileType))],
    [`${a}.context_length`, gv.u32(s.contextLength)],
    [`${a}.embedding_length`, gv.u32(s.dim)],
    [`${a}.block_count`, gv.u32(s.nLayers)],
    [`${a}.feed_forward_length`, gv.u32(s.ffnDim)],
    [`${a}.attention.head_count`, gv.u32(s.nHeads)],
    [`${a}.attention.head_count_kv`, gv.u32(s.nKvHeads)],
    [`${a}.attention.layer_norm_rms_epsilon`, gv.f32(s.rmsEps)],
  ];
  if (s.ropeTheta !== undefined) kv.push([`${a}.rope.freq_base`, gv.f32(s.ropeTheta)]);
  if (s.ropeThetaSwa !== undefined) kv.push([`${a}.rope.freq_base_swa`, gv.f32(s.ropeThetaSwa)]);
  if (s.writeRopeDims) kv.push([`${a}.rope.dimension_count`, gv.u32(s.ropeDims ?? s.headDim)]);
  if (s.writeHeadDim) kv.push([`${a}.attention.key_length`, gv.u32(s.headDim)], [`${a}.attention.value_length`, gv.u32(s.headDim)]);
  kv.push(...moeMetadata(s));
  if (s.writeVocabSize) kv.push([`${a}.vocab_size`, gv.u32(nVocab)]);
  const rs = s.ropeScaling;
  if (rs?.type === 'linear') kv.push([`${a}.rope.scaling.type`, gv.str('linear')], [`${a}.rope.scaling.factor`, gv.f32(rs.factor)]);
  if (rs?.type === 'yarn') {
    kv.push(
      [`${a}.rope.scaling.type`, gv.str('yarn')],
      [`${a}.rope.scaling.factor`, gv.f32(rs.factor)],
      [`${a}.rope.scaling.original_context_length`, gv.u32(rs.originalContext)],
    );
    if (rs.betaFast !== undefined) kv.push([`${a}.rope.scaling.yarn_beta_fast`, gv.f32(rs.betaFast)]);
    if (rs.betaSlow !== undefined) kv.push([`${a}.rope.scaling.yarn_beta_slow`, gv.f32(rs.betaSlow)]);
    if (s.mla?.mscaleAllDim !== undefined) kv.push([`${a}.rope.scaling.yarn_log_multiplier`, gv.f32(0.1 * s.mla.mscaleAllDim)]);
  }
  if (rs?.type === 'longrope') {
    kv.push(
      [`${a}.rope.scaling.original_context_length`, gv.u32(rs.originalContext)],
      [`${a}.rope.scaling.attn_factor`, gv.f32(longRopeAttnFactor(s.contextLength, rs.originalContext))],
    );
  }
  if (s.slidingWindow !== undefined) kv.push([`${a}.attention.sliding_window`, gv.u32(s.slidingWindow)]);
  if (s.slidingWindowPattern !== undefined) kv.push([`${a}.attention.sliding_window_pattern`, gv.u32(s.slidingWindowPattern)]);
  if (s.attnSoftcap !== undefined) kv.push([`${a}.attn_logit_softcapping`, gv.f32(s.attnSoftcap)]);
  if (s.finalSoftcap !== undefined) kv.push([`${a}.final_logit_softcapping`, gv.f32(s.finalSoftcap)]);
  return kv;
}

/** The MoE and MLA keys, as the converters write them (Qwen2MoeModel / DeepseekV2Model set_gguf_parameters). */
function moeMetadata(s: ArchSpec): [string, GgufValue][] {
  const a = s.arch;
  const kv: [string, GgufValue][] = [];
  const m = s.moe;
  if (m !== undefined) {
    kv.push([`${a}.expert_count`, gv.u32(m.nExperts)], [`${a}.expert_used_count`, gv.u32(m.nExpertsUsed)]);
    if (m.groups !== undefined) kv.push([`${a}.expert_group_count`, gv.u32(m.groups.count)], [`${a}.expert_group_used_count`, gv.u32(m.groups.used)]);
    if (m.gating !== undefined) kv.push([`${a}.expert_gating_func`, gv.u32(m.gating === 'softmax' ? 1 : 2)]);
    if (m.leadingDense !== undefined) kv.push([`${a}.leading_dense_block_count`, gv.u32(m.leadingDense)]);
    kv.push([`${a}.expert_feed_forward_length`, gv.u32(m.expertFfnDim)]);
    if (a === 'deepseek2') kv.push([`${a}.expert_shared_count`, gv.u32(m.nShared ?? 0)]);
    if (m.weightsScale !== undefined) kv.push([`${a}.expert_weights_scale`, gv.f32(m.weightsScale)]);
    if (m.normTopK === true) kv.push([`${a}.expert_weights_norm`, gv.bool(true)]);
  }
  const l = s.mla;
  if (l !== undefined) {
    // MLA is stored as MQA over the latent: key_length = latent + rope part, value_length = latent; the per-head
    // sizes after decompression are key_length_mla / value_length_mla.
    if (l.qLoraRank > 0 || !isLiteLayerCount(s.nLayers)) kv.push([`${a}.attention.q_lora_rank`, gv.u32(l.qLoraRank)]);
    kv.push(
      [`${a}.attention.kv_lora_rank`, gv.u32(l.kvLoraRank)],
      [`${a}.attention.key_length`, gv.u32(l.kvLoraRank + l.qkRopeDim)],
      [`${a}.attention.value_length`, gv.u32(l.kvLoraRank)],
      [`${a}.attention.key_length_mla`, gv.u32(l.qkNopeDim + l.qkRopeDim)],
      [`${a}.attention.value_length_mla`, gv.u32(l.vHeadDim)],
    );
  }
  return kv;
}

/** llama.cpp's deepseek2 loader takes a file of 26 or 27 layers for a V2-Lite-like one (no q_lora_rank needed). */
function isLiteLayerCount(n: number): boolean {
  return n === 26 || n === 27;
}

/** A general.name for a synthetic file. llama.cpp sets token attributes by model name (a name containing "phi3" or
 *  "phi-3" makes it look up Phi-3's special tokens, and a vocabulary without them fails to load), so a file with a
 *  synthetic vocabulary gets a name that names no family. */
export function syntheticArchName(preset: string, fileType: SyntheticFileType, realVocab: boolean): string {
  return realVocab ? `synthetic ${preset} ${fileType}` : `synthetic ${fileType}`;
}

export interface SyntheticArchOptions {
  spec: ArchSpec;
  fileType: SyntheticFileType;
  seed: number;
  vocab: ArchVocab;
  name?: string | undefined;
  /** Per-tensor types overriding the file type's choice (by tensor name). */
  tensorTypes?: Readonly<Record<string, SyntheticTensorType>> | undefined;
}

/** The whole file as a GgufModel whose tensor data is generated on demand (pass it to writeGgufFile). */
export function buildSyntheticArch(opts: SyntheticArchOptions): EditableGgufModel {
  const vocab = vocabMetadata(opts.vocab);
  const nVocab = vocabSize(vocab);
  const metadata: [string, GgufValue][] = [
    ...archMetadata(opts.spec, nVocab, opts.fileType, opts.name ?? `synthetic-${opts.spec.arch}`),
    ...(vocab as [string, GgufValue][]),
  ];
  const tensors: GgufTensorEntry[] = archTensorPlan(opts.spec, nVocab, opts.fileType, opts.tensorTypes).map((t) => ({
    name: t.plan.name,
    ne: t.plan.ne,
    type: t.plan.type,
    data:
      t.values !== undefined
        ? fixedData(t.values)
        : t.rowGains !== undefined
          ? scaledRows(tensorData(opts.seed, t.plan), t.plan.ne[0]!, t.rowGains)
          : tensorData(opts.seed, t.plan),
  }));
  return { metadata, tensors };
}

/** F32 chunks (whole rows) of `inner` with row r multiplied by gains[r]. */
function scaledRows(inner: () => Iterable<TensorChunk>, rowLen: number, gains: Float32Array): () => Iterable<TensorChunk> {
  return function* () {
    let row = 0;
    for (const chunk of inner()) {
      if (!(chunk instanceof Float32Array)) throw new Error('row gains need F32 data');
      for (let i = 0; i < chunk.length; i++) chunk[i] = chunk[i]! * gains[row + Math.floor(i / rowLen)]!;
      row += chunk.length / rowLen;
      yield chunk;
    }
  };
}

function fixedData(values: Float32Array): () => Iterable<TensorChunk> {
  return () => [values];
}

export function archParameterCount(spec: ArchSpec, nVocab: number): number {
  return archTensorPlan(spec, nVocab, 'f32').reduce((acc, t) => acc + t.plan.ne.reduce((a, b) => a * b, 1), 0);
}
