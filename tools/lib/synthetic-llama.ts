// Synthetic llama-architecture models: any shape, seeded random weights, a working tokenizer, streamed to GGUF.
//
// Weights are drawn lazily, tensor by tensor, from a PRNG seeded by (seed, tensor name), so a tensor's values do not
// depend on which other tensors exist or in what order they are written, and a 2 GB model is never held in memory.
//
// Scale: matrices get std = gain / sqrt(fan_in) (fan_in = ne[0]), so every projection of a unit-RMS vector is again
// about unit-RMS, whatever the width; attention scores and logits then have std ~1-2, which keeps softmax neither
// uniform nor one-hot and gives greedy decoding clear (but not trivial) argmaxes. Norm weights are 1 + 0.1 N(0,1).
import { GGML_TYPE, f32ToBf16, f32ToF16, ggmlBlockSize, gv, type GgufModel, type GgufTensorEntry, type GgufValue, type TensorChunk } from './gguf-writer.js';

export interface LlamaShape {
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  ffnDim: number;
  nVocab: number;
  contextLength: number;
  ropeTheta: number;
  rmsEps: number;
  /** No output.weight: the output head reuses token_embd. */
  tiedEmbeddings: boolean;
}

export const SHAPE_PRESETS: Readonly<Record<string, LlamaShape>> = {
  // TinyLlama-1.1B's exact shape (GQA 32/4); untied, 1.1e9 parameters, ~2.2 GB at F16.
  'tinyllama-1.1b': {
    dim: 2048,
    nLayers: 22,
    nHeads: 32,
    nKvHeads: 4,
    ffnDim: 5632,
    nVocab: 32000,
    contextLength: 2048,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    tiedEmbeddings: false,
  },
  // Test-sized. ffnDim 176 = 5.5 x 32: ffn_down's rows are not whole quantization groups (the ragged case).
  tiny: {
    dim: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    ffnDim: 176,
    nVocab: 300,
    contextLength: 256,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    tiedEmbeddings: false,
  },
  // A few MB: for quick end-to-end runs and benches. ffnDim 688 = 21.5 x 32 is ragged too.
  small: {
    dim: 256,
    nLayers: 4,
    nHeads: 8,
    nKvHeads: 4,
    ffnDim: 688,
    nVocab: 1024,
    contextLength: 512,
    ropeTheta: 10000,
    rmsEps: 1e-5,
    tiedEmbeddings: true,
  },
};

/** GGUF tensor types a synthetic model's matrices can be written in (ggml's names, lower case). */
export type SyntheticTensorType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q2_k' | 'q3_k' | 'q4_k' | 'q5_k' | 'q6_k' | 'iq4_nl' | 'iq4_xs';
export const SYNTHETIC_TENSOR_TYPES: readonly SyntheticTensorType[] = [
  'f32',
  'f16',
  'bf16',
  'q8_0',
  'q4_0',
  'q4_1',
  'q5_0',
  'q5_1',
  'q2_k',
  'q3_k',
  'q4_k',
  'q5_k',
  'q6_k',
  'iq4_nl',
  'iq4_xs',
];
/** A file type: every matrix in one tensor type, or 'q4_k_m', llama.cpp's Q4_K_M mix (q4_K for most matrices, q6_K
 *  for output.weight — token_embd when tied — and for attn_v and ffn_down in about half the layers). */
export type SyntheticFileType = SyntheticTensorType | 'q4_k_m';
export const SYNTHETIC_FILE_TYPES: readonly SyntheticFileType[] = [...SYNTHETIC_TENSOR_TYPES, 'q4_k_m'];

const TENSOR_TYPE_GGML: Record<SyntheticTensorType, number> = {
  f32: GGML_TYPE.F32,
  f16: GGML_TYPE.F16,
  bf16: GGML_TYPE.BF16,
  q8_0: GGML_TYPE.Q8_0,
  q4_0: GGML_TYPE.Q4_0,
  q4_1: GGML_TYPE.Q4_1,
  q5_0: GGML_TYPE.Q5_0,
  q5_1: GGML_TYPE.Q5_1,
  q2_k: GGML_TYPE.Q2_K,
  q3_k: GGML_TYPE.Q3_K,
  q4_k: GGML_TYPE.Q4_K,
  q5_k: GGML_TYPE.Q5_K,
  q6_k: GGML_TYPE.Q6_K,
  iq4_nl: GGML_TYPE.IQ4_NL,
  iq4_xs: GGML_TYPE.IQ4_XS,
};
// llama.cpp's LLAMA_FTYPE values, for general.file_type (the K-quants as their _S / _M variants).
const FILE_TYPE_LLAMA_FTYPE: Record<SyntheticFileType, number> = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q4_1: 3,
  q8_0: 7,
  q5_0: 8,
  q5_1: 9,
  q2_k: 10,
  q3_k: 12,
  q4_k: 14,
  q4_k_m: 15,
  q5_k: 16,
  q6_k: 18,
  iq4_nl: 25,
  iq4_xs: 30,
  bf16: 32,
};

/** llama.cpp's LLAMA_FTYPE of a file type (general.file_type). */
export function llamaFileType(t: SyntheticFileType): number {
  return FILE_TYPE_LLAMA_FTYPE[t];
}

/** The ggml type id of a tensor type name. */
export function ggmlTypeOf(t: SyntheticTensorType): number {
  return TENSOR_TYPE_GGML[t];
}

/** The type a matrix with rows of `ne0` elements can actually be written in when `type` is wanted: llama.cpp's
 *  quantizer falls back (q4_K → q5_0, q5_K → q5_1, q6_K → q8_0, q2_K / q3_K / iq4_xs → iq4_nl) when the rows are not
 *  whole 256-blocks, and to F16 when they are not whole 32-blocks either. */
export function fittedType(type: number, ne0: number): number {
  const block = ggmlBlockSize(type) ?? 1;
  if (ne0 % block === 0) return type;
  const next: Partial<Record<number, number>> = {
    [GGML_TYPE.Q4_K]: GGML_TYPE.Q5_0,
    [GGML_TYPE.Q5_K]: GGML_TYPE.Q5_1,
    [GGML_TYPE.Q6_K]: GGML_TYPE.Q8_0,
    [GGML_TYPE.Q2_K]: GGML_TYPE.IQ4_NL,
    [GGML_TYPE.Q3_K]: GGML_TYPE.IQ4_NL,
    [GGML_TYPE.IQ4_XS]: GGML_TYPE.IQ4_NL,
  };
  const t = next[type];
  if (t !== undefined && ne0 % (ggmlBlockSize(t) ?? 1) === 0) return t;
  return GGML_TYPE.F16;
}

/** llama.cpp's use_more_bits(i, n): the layers where Q4_K_M spends 6 bits on attn_v and ffn_down. */
export function useMoreBits(layer: number, nLayers: number): boolean {
  const e = Math.floor(nLayers / 8);
  return layer < e || layer >= Math.floor((7 * nLayers) / 8) || (layer - e) % 3 === 2;
}

export type SyntheticTokenizer = 'llama' | 'gpt2';

export interface SyntheticLlamaOptions {
  shape: LlamaShape;
  fileType: SyntheticFileType;
  seed: number;
  tokenizer?: SyntheticTokenizer;
  name?: string;
  /** Written as general.alignment when given (otherwise the GGUF default 32 applies). */
  alignment?: number | undefined;
  /** Per-tensor types that override the file type's choice (by tensor name); a type the rows do not fit falls back
   *  as fittedType() says. */
  tensorTypes?: Readonly<Record<string, SyntheticTensorType>> | undefined;
}

export function headDim(shape: LlamaShape): number {
  return shape.dim / shape.nHeads;
}

export function validateShape(s: LlamaShape): void {
  const ints: (keyof LlamaShape)[] = ['dim', 'nLayers', 'nHeads', 'nKvHeads', 'ffnDim', 'nVocab', 'contextLength'];
  for (const k of ints) {
    const v = s[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`shape.${k} must be a positive integer`);
  }
  if (s.dim % s.nHeads !== 0) throw new Error(`dim ${s.dim} is not a multiple of nHeads ${s.nHeads}`);
  if ((s.dim / s.nHeads) % 2 !== 0) throw new Error('head dim must be even (RoPE rotates pairs)');
  if (s.nHeads % s.nKvHeads !== 0) throw new Error(`nHeads ${s.nHeads} is not a multiple of nKvHeads ${s.nKvHeads}`);
  if (!(s.ropeTheta > 0) || !(s.rmsEps > 0)) throw new Error('ropeTheta and rmsEps must be positive');
}

// ---------------------------------------------------------------------------------------------------------------
// Randomness.

/** xoshiro128** (Blackman & Vigna): fast, 32-bit, good enough statistically for weights. */
export class Xoshiro128 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 expands one 32-bit seed into a state that is never all zero.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  nextU32(): number {
    const r = Math.imul(this.rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = this.rotl(this.d, 11);
    return r;
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  private rotl(x: number, k: number): number {
    return (x << k) | (x >>> (32 - k));
  }
}

/** FNV-1a of a string mixed with a seed: a per-tensor seed that depends only on (seed, name). */
export function hashSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const pl = 0.02425;
  const poly = (k: number[], x: number): number => k.reduce((acc, v) => acc * x + v, 0);
  if (p < pl) {
    const q = Math.sqrt(-2 * Math.log(p));
    return poly(c, q) / (poly(d, q) * q + 1);
  }
  if (p > 1 - pl) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return -poly(c, q) / (poly(d, q) * q + 1);
  }
  const q = p - 0.5;
  const r = q * q;
  return (poly(a, r) * q) / (poly(b, r) * r + 1);
}

// Weights are sampled by inverse CDF from a 65536-entry table of normal quantiles (one 16-bit half of a PRNG word
// per weight) instead of Box-Muller: a table lookup costs ~1 ns where log/sqrt/cos cost ~20, which is what lets a
// 1.1e9-parameter model be written in seconds. The table is pre-converted to the file's element type per tensor, so
// F16/BF16 output needs no per-element conversion either. The distribution is a 65536-level discretized normal,
// which is all random test weights need.
const TABLE_BITS = 16;
const TABLE_SIZE = 1 << TABLE_BITS;
let normalTable: Float64Array | undefined;
function standardNormalTable(): Float64Array {
  if (normalTable === undefined) {
    normalTable = new Float64Array(TABLE_SIZE);
    for (let i = 0; i < TABLE_SIZE; i++) normalTable[i] = normalQuantile((i + 0.5) / TABLE_SIZE);
  }
  return normalTable;
}

/** Distribution of one tensor's values: mean + std * N(0, 1). */
export interface ValueDist {
  mean: number;
  std: number;
}

/** Deterministic values of a tensor, as float32 (what the F32 / quantized encoders start from). Yields one reused
 *  buffer: a chunk is valid only until the next one is requested (the writer consumes each at once). Pairs of values
 *  come from one PRNG word, so the sequence depends on the chunk size only when chunks have odd lengths. */
export function* generateF32(seed: number, n: number, dist: ValueDist, chunk: number): Generator<Float32Array> {
  const z = standardNormalTable();
  const table = new Float32Array(TABLE_SIZE);
  for (let i = 0; i < TABLE_SIZE; i++) table[i] = dist.mean + dist.std * z[i]!;
  const rng = new Xoshiro128(seed);
  const buf = new Float32Array(Math.min(chunk, n));
  for (let done = 0; done < n;) {
    const m = Math.min(buf.length, n - done);
    const out = m === buf.length ? buf : buf.subarray(0, m);
    let i = 0;
    for (; i + 1 < m; i += 2) {
      const r = rng.nextU32();
      out[i] = table[r & 0xffff]!;
      out[i + 1] = table[r >>> 16]!;
    }
    if (i < m) out[i] = table[rng.nextU32() & 0xffff]!;
    done += m;
    yield out;
  }
}

/** The same values as generateF32 (same seed → same draws), encoded as f16 or bf16 bits via a converted table. */
function* generate16(seed: number, n: number, dist: ValueDist, chunk: number, bf16: boolean): Generator<Uint8Array> {
  const z = standardNormalTable();
  const table = new Uint16Array(TABLE_SIZE);
  for (let i = 0; i < TABLE_SIZE; i++) {
    const v = Math.fround(dist.mean + dist.std * z[i]!); // the float32 value generateF32 would give
    table[i] = bf16 ? f32ToBf16(v) : f32ToF16(v);
  }
  const rng = new Xoshiro128(seed);
  const buf = new Uint16Array(Math.min(chunk, n));
  for (let done = 0; done < n;) {
    const m = Math.min(buf.length, n - done);
    let i = 0;
    for (; i + 1 < m; i += 2) {
      const r = rng.nextU32();
      buf[i] = table[r & 0xffff]!;
      buf[i + 1] = table[r >>> 16]!;
    }
    if (i < m) buf[i] = table[rng.nextU32() & 0xffff]!;
    done += m;
    yield new Uint8Array(buf.buffer, 0, m * 2);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tokenizers.

export interface VocabDescription {
  tokens: string[];
  scores?: number[];
  tokenTypes: number[];
  merges?: string[];
  bos: number;
  eos: number;
  unk?: number;
  addBos: boolean;
}

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;
const SPACE = '\u2581'; // "▁", SentencePiece's space

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGITS = '0123456789';
const PUNCT = '.,!?\'"-:;()';
const WORDS = [
  'the',
  'once',
  'upon',
  'a',
  'time',
  'there',
  'was',
  'little',
  'girl',
  'who',
  'lived',
  'in',
  'village',
  'and',
  'her',
  'name',
  'is',
  'hello',
  'world',
  'of',
  'to',
  'it',
  'he',
  'she',
  'they',
  'said',
];

function* letterStrings(len: number): Generator<string> {
  if (len === 0) {
    yield '';
    return;
  }
  for (const prefix of letterStrings(len - 1)) for (const c of LOWER) yield prefix + c;
}

/** SentencePiece pieces in preference order. Every multi-character piece has a split into two earlier pieces, so
 *  score-greedy merging can reach it from characters. */
function* spmPieces(): Generator<string> {
  yield SPACE;
  for (const c of LOWER) yield SPACE + c;
  for (const c of LOWER + UPPER + DIGITS + PUNCT) yield c;
  for (const w of WORDS) for (let k = 2; k <= w.length; k++) yield SPACE + w.slice(0, k);
  for (const c of UPPER) yield SPACE + c;
  for (let len = 2; ; len++) {
    for (const s of letterStrings(len)) yield s;
    for (const s of letterStrings(len)) yield SPACE + s;
  }
}

export function llamaVocab(nVocab: number): VocabDescription {
  const fixed = 3 + 256;
  if (nVocab < fixed + 1) throw new Error(`a llama vocabulary needs at least ${fixed + 1} tokens, got ${nVocab}`);
  const tokens = ['<unk>', '<s>', '</s>'];
  const tokenTypes: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    tokenTypes.push(TOKEN_TYPE.byte);
    scores.push(0);
  }
  const seen = new Set(tokens);
  let k = 0;
  for (const piece of spmPieces()) {
    if (tokens.length >= nVocab) break;
    if (seen.has(piece)) continue;
    seen.add(piece);
    tokens.push(piece);
    tokenTypes.push(TOKEN_TYPE.normal);
    scores.push(-k++); // earlier pieces are merged first
  }
  return { tokens, scores, tokenTypes, bos: 1, eos: 2, unk: 0, addBos: true };
}

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. Returned in GPT-2's vocab
 *  order (the printable ones first), with the byte each symbol stands for. */
export function gpt2ByteSymbols(): { byte: number; symbol: string }[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((byte, i) => ({ byte, symbol: String.fromCodePoint(cs[i]!) }));
}

const G = '\u0120'; // GPT-2's symbol for the space byte ("Ġ")
// The first merges of GPT-2's real merge list (roughly): they make ordinary English text tokenize into words.
const GPT2_FIRST_MERGES = [
  `${G} t`,
  'h e',
  `${G} a`,
  'i n',
  'r e',
  'o n',
  `${G}t he`,
  'e r',
  `${G} s`,
  'a t',
  `${G} w`,
  `${G} o`,
  'e n',
  `${G} c`,
  'i t',
  'i s',
  'a n',
  'o r',
  'e s',
  `${G} b`,
  'e d',
  `${G} f`,
  'in g',
  `${G} p`,
  'o u',
  `${G}a n`,
  'a l',
  'a r',
  `${G}t o`,
  `${G} m`,
  `${G}o f`,
  `${G} in`,
  `${G} d`,
  `${G} h`,
  `${G}an d`,
];

function* gpt2MergeCandidates(): Generator<string> {
  yield* GPT2_FIRST_MERGES;
  for (const c of LOWER) yield `${G} ${c}`;
  for (const a of LOWER) for (const b of LOWER) yield `${a} ${b}`;
  for (const a of LOWER) for (const b of LOWER) yield `${G}${a} ${b}`;
  for (const a of LOWER) for (const b of LOWER) for (const c of LOWER) yield `${a}${b} ${c}`;
  for (const a of LOWER) for (const b of LOWER) for (const c of LOWER) yield `${G}${a}${b} ${c}`;
  for (let len = 3; ; len++) {
    for (const s of letterStrings(len)) for (const c of LOWER) yield `${G}${s} ${c}`;
  }
}

export function gpt2Vocab(nVocab: number): VocabDescription {
  if (nVocab < 257) throw new Error(`a gpt2 vocabulary needs at least 257 tokens, got ${nVocab}`);
  const tokens = gpt2ByteSymbols().map((s) => s.symbol);
  const seen = new Set(tokens);
  const merges: string[] = [];
  for (const m of gpt2MergeCandidates()) {
    if (tokens.length >= nVocab - 1) break;
    const [left, right] = m.split(' ') as [string, string];
    const merged = left + right;
    if (!seen.has(left) || !seen.has(right) || seen.has(merged)) continue;
    seen.add(merged);
    tokens.push(merged);
    merges.push(m);
  }
  const eot = tokens.length;
  tokens.push('<|endoftext|>');
  const tokenTypes = tokens.map((_, i) => (i === eot ? TOKEN_TYPE.control : TOKEN_TYPE.normal));
  return { tokens, tokenTypes, merges, bos: eot, eos: eot, addBos: false };
}

/** GGUF tokenizer metadata (tokenizer.ggml.*) of a synthetic vocabulary. */
export function tokenizerMetadata(kind: SyntheticTokenizer, nVocab: number): [string, GgufValue][] {
  const v = kind === 'llama' ? llamaVocab(nVocab) : gpt2Vocab(nVocab);
  const kv: [string, GgufValue][] = [
    ['tokenizer.ggml.model', gv.str(kind)],
    ['tokenizer.ggml.tokens', gv.arr('string', v.tokens)],
  ];
  if (v.scores) kv.push(['tokenizer.ggml.scores', gv.arr('float32', v.scores)]);
  kv.push(['tokenizer.ggml.token_type', gv.arr('int32', v.tokenTypes)]);
  if (v.merges) kv.push(['tokenizer.ggml.merges', gv.arr('string', v.merges)]);
  kv.push(['tokenizer.ggml.bos_token_id', gv.u32(v.bos)], ['tokenizer.ggml.eos_token_id', gv.u32(v.eos)]);
  if (v.unk !== undefined) kv.push(['tokenizer.ggml.unknown_token_id', gv.u32(v.unk)]);
  kv.push(['tokenizer.ggml.add_bos_token', gv.bool(v.addBos)], ['tokenizer.ggml.add_eos_token', gv.bool(false)]);
  return kv;
}

// ---------------------------------------------------------------------------------------------------------------
// The model.

export interface TensorPlan {
  name: string;
  ne: number[];
  /** ggml type the tensor is written as. */
  type: number;
  dist: ValueDist;
}

/** Tensors of a llama model with their shapes, types and value distributions, in file order. Norms are F32. A
 *  matrix whose rows are not whole blocks of its type falls back as llama.cpp's quantizer does (fittedType: so e.g.
 *  ffn_down of a ragged ffnDim is F16 in a q4_0 file, and q5_0 in a q4_k file when its rows are whole 32-blocks). */
export function tensorPlan(shape: LlamaShape, fileType: SyntheticFileType, tensorTypes: Readonly<Record<string, SyntheticTensorType>> = {}): TensorPlan[] {
  validateShape(shape);
  const hd = headDim(shape);
  // The type a matrix is wanted in, before fallbacks.
  const wanted = (name: string, layer: number): number => {
    const override = tensorTypes[name];
    if (override !== undefined) return TENSOR_TYPE_GGML[override];
    if (fileType !== 'q4_k_m') return TENSOR_TYPE_GGML[fileType];
    const head = name === 'output.weight' || (shape.tiedEmbeddings && name === 'token_embd.weight');
    const moreBits = (name.endsWith('attn_v.weight') || name.endsWith('ffn_down.weight')) && useMoreBits(layer, shape.nLayers);
    return head || moreBits ? GGML_TYPE.Q6_K : GGML_TYPE.Q4_K;
  };
  const matrix = (name: string, inF: number, outF: number, gain = 1, layer = -1): TensorPlan => ({
    name,
    ne: [inF, outF],
    type: fittedType(wanted(name, layer), inF),
    dist: { mean: 0, std: gain / Math.sqrt(inF) },
  });
  const norm = (name: string): TensorPlan => ({ name, ne: [shape.dim], type: GGML_TYPE.F32, dist: { mean: 1, std: 0.1 } });
  const plan: TensorPlan[] = [matrix('token_embd.weight', shape.dim, shape.nVocab, 2)];
  for (let i = 0; i < shape.nLayers; i++) {
    const p = `blk.${i}.`;
    plan.push(
      norm(`${p}attn_norm.weight`),
      matrix(`${p}attn_q.weight`, shape.dim, shape.nHeads * hd, 1, i),
      matrix(`${p}attn_k.weight`, shape.dim, shape.nKvHeads * hd, 1, i),
      matrix(`${p}attn_v.weight`, shape.dim, shape.nKvHeads * hd, 1, i),
      matrix(`${p}attn_output.weight`, shape.nHeads * hd, shape.dim, 1, i),
      norm(`${p}ffn_norm.weight`),
      matrix(`${p}ffn_gate.weight`, shape.dim, shape.ffnDim, 1, i),
      matrix(`${p}ffn_up.weight`, shape.dim, shape.ffnDim, 1, i),
      matrix(`${p}ffn_down.weight`, shape.ffnDim, shape.dim, 1, i),
    );
  }
  plan.push(norm('output_norm.weight'));
  if (!shape.tiedEmbeddings) plan.push(matrix('output.weight', shape.dim, shape.nVocab, 2));
  return plan;
}

/** Lazily generated data of one planned tensor, already in its file type. ~4M elements per chunk, whole rows (so
 *  whole quantization blocks); chunks reuse one buffer, as generateF32's. */
export function tensorData(seed: number, t: TensorPlan): () => Iterable<TensorChunk> {
  const n = t.ne.reduce((a, b) => a * b, 1);
  const row = t.ne[0]!;
  const chunk = Math.max(1, Math.floor((1 << 22) / row)) * row; // whole rows: whole quantization blocks
  const s = hashSeed(seed, t.name);
  if (t.type === GGML_TYPE.F16) return () => generate16(s, n, t.dist, chunk, false);
  if (t.type === GGML_TYPE.BF16) return () => generate16(s, n, t.dist, chunk, true);
  return () => generateF32(s, n, t.dist, chunk); // F32 as is; block types are encoded by the writer (whole rows)
}

export function llamaMetadata(opts: SyntheticLlamaOptions): [string, GgufValue][] {
  const s = opts.shape;
  const kv: [string, GgufValue][] = [
    ['general.architecture', gv.str('llama')],
    ['general.name', gv.str(opts.name ?? 'synthetic-llama')],
    ['general.file_type', gv.u32(FILE_TYPE_LLAMA_FTYPE[opts.fileType])],
  ];
  if (opts.alignment !== undefined) kv.push(['general.alignment', gv.u32(opts.alignment)]);
  kv.push(
    ['llama.context_length', gv.u32(s.contextLength)],
    ['llama.embedding_length', gv.u32(s.dim)],
    ['llama.block_count', gv.u32(s.nLayers)],
    ['llama.feed_forward_length', gv.u32(s.ffnDim)],
    ['llama.attention.head_count', gv.u32(s.nHeads)],
    ['llama.attention.head_count_kv', gv.u32(s.nKvHeads)],
    ['llama.rope.freq_base', gv.f32(s.ropeTheta)],
    ['llama.rope.dimension_count', gv.u32(headDim(s))],
    ['llama.attention.layer_norm_rms_epsilon', gv.f32(s.rmsEps)],
  );
  kv.push(...tokenizerMetadata(opts.tokenizer ?? 'llama', s.nVocab));
  return kv;
}

/** A GgufModel whose arrays may be edited. */
export interface EditableGgufModel extends GgufModel {
  metadata: [string, GgufValue][];
  tensors: GgufTensorEntry[];
}

/** The whole model as a GgufModel whose tensor data is generated on demand (pass it to writeGgufFile). Callers may
 *  edit the returned arrays (drop a tensor, change a key) to make malformed files. */
export function buildSyntheticLlama(opts: SyntheticLlamaOptions): EditableGgufModel {
  const metadata = llamaMetadata(opts);
  const tensors: GgufTensorEntry[] = tensorPlan(opts.shape, opts.fileType, opts.tensorTypes).map((t) => ({
    name: t.name,
    ne: t.ne,
    type: t.type,
    data: tensorData(opts.seed, t),
  }));
  return { metadata, tensors };
}

export function parameterCount(shape: LlamaShape): number {
  return tensorPlan(shape, 'f32').reduce((acc, t) => acc + t.ne.reduce((a, b) => a * b, 1), 0);
}
