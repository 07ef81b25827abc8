// An independent llama forward pass, written for clarity, not speed: Float64 activations and accumulation, one token
// at a time, no caching tricks. It reads its weights from a GGUF file through the test reader and decodes them to the
// exact values the file holds, so a mismatch against the engine is the engine's (or the file's), not rounding here.
//
// Conventions (those of llama.cpp for general.architecture = llama):
//   - a tensor with ne = [in, out] is a row-major [out][in] matrix: y[o] = sum_i W[o * in + i] * x[i];
//   - RMSNorm: x / sqrt(mean(x^2) + eps) * w;
//   - RoPE "normal" mode: within each head, ADJACENT pairs (x[2i], x[2i+1]) rotate by pos * theta^(-2i / headDim);
//   - grouped-query attention: query head h reads KV head floor(h / (nHeads / nKvHeads));
//   - SwiGLU FFN: down(silu(gate(x)) * up(x)); the output head is token_embd when output.weight is absent.
import { readGgufFile, tensorToF32, type GgufReadFile } from '../../../tools/lib/gguf-reader.js';
import { decodeQ4_0, decodeQ8_0, encodeQ4_0, encodeQ8_0 } from '../../../tools/lib/gguf-writer.js';

export interface ReferenceModel {
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  ffnDim: number;
  nVocab: number;
  ropeTheta: number;
  eps: number;
  weights: Map<string, Float32Array>;
  /** output.weight, or token_embd.weight when tied. */
  outputName: string;
}

function metaNumber(f: GgufReadFile, key: string): number {
  const v = f.metadata.get(key);
  if (typeof v !== 'number') throw new Error(`reference: metadata ${key} missing or not a number`);
  return v;
}

export function loadReferenceModel(path: string): ReferenceModel {
  const f = readGgufFile(path);
  const weights = new Map<string, Float32Array>();
  for (const [name, t] of f.tensors) weights.set(name, tensorToF32(t));
  const dim = metaNumber(f, 'llama.embedding_length');
  const nHeads = metaNumber(f, 'llama.attention.head_count');
  const tokens = f.metadata.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens)) throw new Error('reference: no tokenizer.ggml.tokens');
  return {
    dim,
    nLayers: metaNumber(f, 'llama.block_count'),
    nHeads,
    nKvHeads: metaNumber(f, 'llama.attention.head_count_kv'),
    headDim: dim / nHeads,
    ffnDim: metaNumber(f, 'llama.feed_forward_length'),
    nVocab: tokens.length,
    // float32 in the file: use the stored value, exactly as the engine sees it.
    ropeTheta: metaNumber(f, 'llama.rope.freq_base'),
    eps: metaNumber(f, 'llama.attention.layer_norm_rms_epsilon'),
    weights,
    outputName: weights.has('output.weight') ? 'output.weight' : 'token_embd.weight',
  };
}

function weight(m: ReferenceModel, name: string): Float32Array {
  const w = m.weights.get(name);
  if (w === undefined) throw new Error(`reference: tensor ${name} missing`);
  return w;
}

/** y = W x for W stored [out][in]. */
function matvec(w: Float32Array, x: Float64Array, inF: number, outF: number): Float64Array {
  if (w.length !== inF * outF || x.length !== inF) throw new Error('reference: matvec shape mismatch');
  const y = new Float64Array(outF);
  for (let o = 0; o < outF; o++) {
    let s = 0;
    const base = o * inF;
    for (let i = 0; i < inF; i++) s += w[base + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * w[i]!);
}

/** Rotate adjacent pairs of each head of `v` (nHeads x headDim) in place for position `pos`. */
function rope(v: Float64Array, nHeads: number, headDim: number, pos: number, theta: number): void {
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < headDim / 2; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / headDim);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      const a = h * headDim + 2 * i;
      const x0 = v[a]!;
      const x1 = v[a + 1]!;
      v[a] = x0 * c - x1 * s;
      v[a + 1] = x0 * s + x1 * c;
    }
  }
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Logits for every position of `tokens` (evaluated from position 0): result[t] has nVocab entries. */
export function referenceForward(m: ReferenceModel, tokens: readonly number[]): Float64Array[] {
  const { dim, headDim, nHeads, nKvHeads, ffnDim, nVocab } = m;
  const kvDim = nKvHeads * headDim;
  const group = nHeads / nKvHeads;
  const embd = weight(m, 'token_embd.weight');
  // Per layer, the K and V of every position so far (after RoPE for K).
  const keys: Float64Array[][] = Array.from({ length: m.nLayers }, () => []);
  const values: Float64Array[][] = Array.from({ length: m.nLayers }, () => []);
  const out: Float64Array[] = [];

  tokens.forEach((tok, pos) => {
    if (!Number.isInteger(tok) || tok < 0 || tok >= nVocab) throw new Error(`reference: token ${tok} out of range`);
    let x = Float64Array.from(embd.subarray(tok * dim, (tok + 1) * dim));

    for (let l = 0; l < m.nLayers; l++) {
      const p = `blk.${l}.`;
      // Attention block.
      const xn = rmsNorm(x, weight(m, `${p}attn_norm.weight`), m.eps);
      const q = matvec(weight(m, `${p}attn_q.weight`), xn, dim, nHeads * headDim);
      const k = matvec(weight(m, `${p}attn_k.weight`), xn, dim, kvDim);
      const v = matvec(weight(m, `${p}attn_v.weight`), xn, dim, kvDim);
      rope(q, nHeads, headDim, pos, m.ropeTheta);
      rope(k, nKvHeads, headDim, pos, m.ropeTheta);
      keys[l]!.push(k);
      values[l]!.push(v);

      const attn = new Float64Array(nHeads * headDim);
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / group);
        const scores = new Float64Array(pos + 1);
        for (let t = 0; t <= pos; t++) {
          let s = 0;
          const kt = keys[l]![t]!;
          for (let d = 0; d < headDim; d++) s += q[h * headDim + d]! * kt[kvh * headDim + d]!;
          scores[t] = s / Math.sqrt(headDim);
        }
        const mx = Math.max(...scores);
        let sum = 0;
        for (let t = 0; t <= pos; t++) {
          scores[t] = Math.exp(scores[t]! - mx);
          sum += scores[t]!;
        }
        for (let t = 0; t <= pos; t++) {
          const pt = scores[t]! / sum;
          const vt = values[l]![t]!;
          for (let d = 0; d < headDim; d++) attn[h * headDim + d]! += pt * vt[kvh * headDim + d]!;
        }
      }
      const o = matvec(weight(m, `${p}attn_output.weight`), attn, nHeads * headDim, dim);
      x = x.map((xi, i) => xi + o[i]!);

      // Feed-forward block.
      const xf = rmsNorm(x, weight(m, `${p}ffn_norm.weight`), m.eps);
      const gate = matvec(weight(m, `${p}ffn_gate.weight`), xf, dim, ffnDim);
      const up = matvec(weight(m, `${p}ffn_up.weight`), xf, dim, ffnDim);
      const hidden = gate.map((g, i) => silu(g) * up[i]!);
      const down = matvec(weight(m, `${p}ffn_down.weight`), hidden, ffnDim, dim);
      x = x.map((xi, i) => xi + down[i]!);
    }

    const xo = rmsNorm(x, weight(m, 'output_norm.weight'), m.eps);
    out.push(matvec(weight(m, m.outputName), xo, dim, nVocab));
  });
  return out;
}

/** The model with every matrix (not the norms) round-tripped through ggml's Q8_0 or Q4_0, group-wise along rows
 *  with a zero-padded last group for ragged rows: the error an ideal 8- or 4-bit group quantizer would add. Tests
 *  use it to tell a quantizer that is merely lossy from one that is wrong. */
export function withGroupQuantizedMatrices(m: ReferenceModel, kind: 'q8_0' | 'q4_0'): ReferenceModel {
  const [enc, dec] = kind === 'q8_0' ? [encodeQ8_0, decodeQ8_0] : [encodeQ4_0, decodeQ4_0];
  const weights = new Map<string, Float32Array>();
  for (const [name, w] of m.weights) {
    if (name.endsWith('norm.weight')) {
      weights.set(name, w);
      continue;
    }
    const inF = name.endsWith('ffn_down.weight') ? m.ffnDim : name.endsWith('attn_output.weight') ? m.nHeads * m.headDim : m.dim;
    const padded = Math.ceil(inF / 32) * 32;
    const out = new Float32Array(w.length);
    const row = new Float32Array(padded);
    for (let r = 0; r < w.length / inF; r++) {
      row.fill(0);
      row.set(w.subarray(r * inF, (r + 1) * inF));
      out.set(dec(enc(row), padded).subarray(0, inF), r * inF);
    }
    weights.set(name, out);
  }
  return { ...m, weights };
}

/** Index of the largest logit (first one on ties, as an argmax sampler would do). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Gap between the best and second-best logit: how decisive an argmax is. */
export function topMargin(row: ArrayLike<number>): number {
  const b = argmax(row);
  let second = -Infinity;
  for (let i = 0; i < row.length; i++) if (i !== b && row[i]! > second) second = row[i]!;
  return row[b]! - second;
}
