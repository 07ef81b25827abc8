// GGUF weight formats as the tuner prices them: the bits per weight of every block type the engine runs, what each
// weights policy turns each tensor of a file into, which policies the engine would refuse, and the bytes a decode
// step reads. The rules mirror the engine's loader (native/src/model_loader.cpp: policy_type, fit_rows,
// choose_weight_type) so that the optimizer can price and vet a weights change from the file's header alone
// (Engine.inspect), before any shadow engine is loaded.
//
//   policy       each matrix is held as                          notes
//   native       the file's own type                             nothing converted
//   f32, bf16    f32 / bf16                                      dequantized (never refused)
//   q8_0 … q4_0  that block type; rows that are not whole blocks fall back as llama.cpp's quantizer does
//                (q4_K → q5_0, q5_K → q5_1, q6_K → q8_0; still not whole blocks: the file's 16/32-bit type, or bf16)
//   mixed        attention projections bf16, every other matrix q8_0
//   int8, int4   aliases of q8_0 and q4_0
//
// Refusal: re-quantizing a tensor that is already quantized into another quantized type with at least as many bits per
// weight only loses precision and saves nothing; the engine refuses the whole load (INVALID_ARGUMENT).
//
// Norm vectors are held in f32 whatever the policy. A decode step reads every matrix once (the weights are streamed
// from memory per step) except the embedding table, of which it reads one row per token — unless the model ties its
// output head to it (no output.weight), in which case the head reads all of it.
import type { WeightsPolicy } from '../engine/types.js';

/** A GGUF block format: `blockBytes` bytes hold `blockElems` weights in the file. */
export interface FormatTraits {
  blockElems: number;
  blockBytes: number;
  /** Bytes of a block as the engine holds it in memory, when not the file's: q8_0 and q4_0 are repacked into the
   *  engine's int8 / int4 layouts with an f32 scale per 32 weights (36 and 20 bytes instead of 34 and 18). */
  heldBlockBytes?: number;
  /** A block format with scales (not f32/f16/bf16): what the engine's refusal rule is about. */
  quantized: boolean;
}

/** Every weight type the engine executes, by ggml's type name (as ModelInspection and ModelInfo report them). */
export const GGUF_FORMATS: Readonly<Record<string, FormatTraits>> = {
  f32: { blockElems: 1, blockBytes: 4, quantized: false },
  f16: { blockElems: 1, blockBytes: 2, quantized: false },
  bf16: { blockElems: 1, blockBytes: 2, quantized: false },
  q8_0: { blockElems: 32, blockBytes: 34, heldBlockBytes: 36, quantized: true },
  q4_0: { blockElems: 32, blockBytes: 18, heldBlockBytes: 20, quantized: true },
  q4_1: { blockElems: 32, blockBytes: 20, quantized: true },
  q5_0: { blockElems: 32, blockBytes: 22, quantized: true },
  q5_1: { blockElems: 32, blockBytes: 24, quantized: true },
  iq4_nl: { blockElems: 32, blockBytes: 18, quantized: true },
  q2_K: { blockElems: 256, blockBytes: 84, quantized: true },
  q3_K: { blockElems: 256, blockBytes: 110, quantized: true },
  q4_K: { blockElems: 256, blockBytes: 144, quantized: true },
  q5_K: { blockElems: 256, blockBytes: 176, quantized: true },
  q6_K: { blockElems: 256, blockBytes: 210, quantized: true },
  iq4_xs: { blockElems: 256, blockBytes: 136, quantized: true },
};

/** Bits per weight of a GGUF type in the file (8 × block bytes / block elements); undefined for a type the engine
 *  does not run. The engine's refusal rule compares these. */
export function bitsPerWeight(type: string): number | undefined {
  const f = GGUF_FORMATS[type];
  return f ? (8 * f.blockBytes) / f.blockElems : undefined;
}

/** Bits per weight of a type as the engine holds it in memory (what a decode step reads): the file's, except q8_0
 *  (9) and q4_0 (5). */
export function heldBitsPerWeight(type: string): number | undefined {
  const f = GGUF_FORMATS[type];
  return f ? (8 * (f.heldBlockBytes ?? f.blockBytes)) / f.blockElems : undefined;
}

/** Fidelity order of the types, worst first: an order, not a measure. Mostly bits per weight, but the K-quants beat
 *  the legacy 32-blocks of about the same size (llama.cpp's perplexity tables: q4_K < q5_0, q5_K > q5_1) and f16
 *  keeps three more mantissa bits than bf16 for weights in range. */
const FIDELITY: readonly string[] = ['q2_K', 'q3_K', 'q4_0', 'iq4_nl', 'q4_1', 'iq4_xs', 'q4_K', 'q5_0', 'q5_1', 'q5_K', 'q6_K', 'q8_0', 'bf16', 'f16', 'f32'];

/** Rank of a type in the fidelity order (higher is more precise); -1 for an unknown type. */
export function fidelityRank(type: string): number {
  return FIDELITY.indexOf(type);
}

/** A weights policy with the aliases resolved (int8 → q8_0, int4 → q4_0). */
export type CanonicalWeightsPolicy = Exclude<WeightsPolicy, 'int8' | 'int4'>;

/** int8 and int4 are the names older configs use for q8_0 and q4_0. */
export function canonicalWeights(p: WeightsPolicy): CanonicalWeightsPolicy {
  return p === 'int8' ? 'q8_0' : p === 'int4' ? 'q4_0' : p;
}

/** Two policy names for the same storage (e.g. int8 and q8_0). */
export function sameWeights(a: WeightsPolicy, b: WeightsPolicy): boolean {
  return canonicalWeights(a) === canonicalWeights(b);
}

const POLICY_TYPE: Readonly<Record<Exclude<CanonicalWeightsPolicy, 'native' | 'mixed'>, string>> = {
  f32: 'f32',
  bf16: 'bf16',
  q8_0: 'q8_0',
  q6_k: 'q6_K',
  q5_k: 'q5_K',
  q4_k: 'q4_K',
  q4_0: 'q4_0',
};

/** llama.cpp's fallback for rows that are not whole blocks of the type asked for (llama_tensor_get_type). */
const ROW_FALLBACK: Readonly<Record<string, string>> = { q4_K: 'q5_0', q5_K: 'q5_1', q6_K: 'q8_0', q2_K: 'iq4_nl', q3_K: 'iq4_nl', iq4_xs: 'iq4_nl' };

/** One tensor of a file, as ModelInspection.tensors lists it (shape in ggml order: shape[0] is the row length). */
export interface TensorDesc {
  name: string;
  type: string;
  shape: readonly number[];
}

/** Attention projections: what the `mixed` policy keeps at 16 bits. */
export function isAttentionProjection(name: string): boolean {
  return /(^|\.)attn_(q|k|v|output)\.weight$/.test(name);
}

function isMatrix(t: TensorDesc): boolean {
  return t.shape.length >= 2 && (t.shape[1] ?? 1) > 1;
}

function wantedType(policy: CanonicalWeightsPolicy, t: TensorDesc): string {
  if (policy === 'native') return t.type;
  if (policy === 'mixed') return isAttentionProjection(t.name) ? 'bf16' : 'q8_0';
  return POLICY_TYPE[policy];
}

function fitRows(want: string, src: string, rowLength: number): string {
  const fits = (type: string) => rowLength % (GGUF_FORMATS[type]?.blockElems ?? 1) === 0;
  if (fits(want)) return want;
  const next = ROW_FALLBACK[want] ?? want;
  if (fits(next)) return next;
  return GGUF_FORMATS[src]?.quantized === false ? src : 'bf16';
}

function heldBytesOf(type: string, elements: number): number {
  const f = GGUF_FORMATS[type];
  return f ? (elements / f.blockElems) * (f.heldBlockBytes ?? f.blockBytes) : 0;
}

/** What a policy does to one tensor. */
export interface TensorChoice {
  name: string;
  /** The file's type. */
  source: string;
  /** The type the policy asks for, before any fallback. */
  requested: string;
  /** The type the tensor is held in. */
  held: string;
  elements: number;
  /** As held in memory. */
  bytes: number;
  /** Read in full by every decode step. */
  streamed: boolean;
  /** The engine would refuse the load for this tensor (re-quantizing into as many or more bits). */
  refused: boolean;
}

/** What a weights policy makes of a whole file. */
export interface WeightsPlan {
  policy: WeightsPolicy;
  tensors: TensorChoice[];
  /** Bytes held in memory by type (norm vectors as f32; q8_0 and q4_0 in the engine's layouts): what
   *  ModelInfo.weightBytes reports at tpDegree 1. */
  bytesByType: Record<string, number>;
  bytes: number;
  /** Bytes one decode step reads (every matrix but an untied embedding table, and the norms). */
  streamedBytes: number;
  elements: number;
  /** 8 × bytes / elements, as held in memory. */
  bitsPerWeight: number;
  /** Tensors the engine would refuse to convert; a plan with any is a policy the engine refuses. */
  refused: { tensor: string; from: string; to: string }[];
  /** Tensors held in another type than the policy asked for (rows that are not whole blocks of it). */
  fallbacks: { tensor: string; requested: string; used: string }[];
}

/** The plan of a policy over a file's tensors (ModelInspection.tensors), mirroring the engine's loader. */
export function planWeights(tensors: readonly TensorDesc[], policy: WeightsPolicy): WeightsPlan {
  const p = canonicalWeights(policy);
  const untied = tensors.some((t) => t.name === 'output.weight');
  const out: WeightsPlan = { policy, tensors: [], bytesByType: {}, bytes: 0, streamedBytes: 0, elements: 0, bitsPerWeight: 0, refused: [], fallbacks: [] };
  for (const t of tensors) {
    const elements = t.shape.reduce((a, b) => a * b, 1);
    let requested: string;
    let held: string;
    let refused = false;
    if (isMatrix(t)) {
      requested = wantedType(p, t);
      held = fitRows(requested, t.type, t.shape[0] ?? 1);
      const src = GGUF_FORMATS[t.type];
      const dst = GGUF_FORMATS[held];
      refused = !!src?.quantized && !!dst?.quantized && held !== t.type && bitsPerWeight(held)! >= bitsPerWeight(t.type)!;
    } else {
      requested = held = 'f32'; // norm vectors are decoded to f32 at load
    }
    if (!GGUF_FORMATS[t.type]) continue; // a type the engine does not know: it refuses the file anyway
    const bytes = heldBytesOf(held, elements);
    const streamed = !(untied && t.name === 'token_embd.weight');
    out.tensors.push({ name: t.name, source: t.type, requested, held, elements, bytes, streamed, refused });
    out.bytesByType[held] = (out.bytesByType[held] ?? 0) + bytes;
    out.bytes += bytes;
    out.elements += elements;
    if (streamed) out.streamedBytes += bytes;
    if (refused) out.refused.push({ tensor: t.name, from: t.type, to: held });
    if (held !== requested) out.fallbacks.push({ tensor: t.name, requested, used: held });
  }
  out.bitsPerWeight = out.elements > 0 ? (8 * out.bytes) / out.elements : 0;
  return out;
}

/** How a candidate plan's precision compares with the live one's, tensor by tensor. A tensor's precision is the
 *  lesser of its file type's and its held type's (dequantizing a 4-bit tensor to f32 recovers nothing). */
export function comparePrecision(live: WeightsPlan, candidate: WeightsPlan): { gains: number; losses: number } {
  const byName = new Map(live.tensors.map((t) => [t.name, t]));
  let gains = 0;
  let losses = 0;
  for (const c of candidate.tensors) {
    const l = byName.get(c.name);
    if (!l) continue;
    const eff = (t: TensorChoice) => Math.min(fidelityRank(t.source), fidelityRank(t.held));
    const d = eff(c) - eff(l);
    if (d > 0) gains += c.elements;
    else if (d < 0) losses += c.elements;
  }
  return { gains, losses };
}

/** The mix a plan holds, for rationales: "f16 16 bits/weight" or "q4_K 79% + q6_K 21%, 4.9 bits/weight". */
export function describePlan(plan: WeightsPlan): string {
  const total = plan.bytes || 1;
  const types = Object.entries(plan.bytesByType)
    .filter(([type]) => type !== 'f32' || plan.bytesByType.f32! / total > 0.05)
    .sort((a, b) => b[1] - a[1]);
  const mix = types.length === 1 ? types[0]![0] : types.map(([type, b]) => `${type} ${Math.round((100 * b) / total)}%`).join(' + ');
  return `${mix}, ${Number(plan.bitsPerWeight.toPrecision(3))} bits/weight`;
}
