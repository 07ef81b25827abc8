// GGUF v3 writer (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) plus the element codecs it needs.
//
// The header (metadata + tensor infos) is small and built in memory; tensor data is streamed tensor by tensor, so a
// multi-gigabyte synthetic model never has to be held whole. Offsets are computed up front from the shapes, which is
// why every tensor's byte size must be known before its data is produced.
//
// The codecs (f16, bf16, Q8_0, Q4_0) follow ggml's reference implementations, and each has a decoder: tests run their
// reference forward pass on the decoded values, i.e. on exactly what the file holds. The other block types (Q4_1,
// Q5_x, K-quants, IQ4) go through the native addon (native/src/quant: quantizeRows / dequantizeRows).
import * as fs from 'node:fs';

import { native } from '../../src/engine/native.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value type ids (gguf_type). */
export const GGUF_VALUE_TYPE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;
export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPE;
export type GgufScalarTypeName = Exclude<GgufValueTypeName, 'array'>;

/** ggml tensor type ids (ggml.h; part of the file format). F32, F16, BF16, Q8_0 and Q4_0 are encoded by the codecs
 *  below (ggml's reference quantizers, in TypeScript); every other type the engine runs (Q4_1, Q5_0, Q5_1, Q2_K..Q6_K,
 *  IQ4_NL, IQ4_XS) through the native addon's quantizeRows / dequantizeRows. The rest exist so that tests can write
 *  files holding types an engine may not support (their data is supplied raw). */
export const GGML_TYPE = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** ggml's own name of a type id ('q4_K', 'bf16', ...), as the engine reports it; undefined for an unknown id. */
export function ggmlTypeName(type: number): string | undefined {
  const entry = Object.entries(GGML_TYPE).find(([, id]) => id === type);
  return entry === undefined ? undefined : entry[0].toLowerCase().replace(/_k$/, '_K');
}

/** Elements per block and bytes per block of every ggml type (ggml-common.h). */
const GGML_TYPE_LAYOUT: ReadonlyMap<number, { blockSize: number; blockBytes: number }> = new Map([
  [GGML_TYPE.F32, { blockSize: 1, blockBytes: 4 }],
  [GGML_TYPE.F16, { blockSize: 1, blockBytes: 2 }],
  [GGML_TYPE.BF16, { blockSize: 1, blockBytes: 2 }],
  [GGML_TYPE.Q8_0, { blockSize: 32, blockBytes: 34 }], // f16 d + 32 x int8
  [GGML_TYPE.Q4_0, { blockSize: 32, blockBytes: 18 }], // f16 d + 16 bytes of nibbles
  [GGML_TYPE.Q4_1, { blockSize: 32, blockBytes: 20 }], // f16 d, f16 m + 16 bytes
  [GGML_TYPE.Q5_0, { blockSize: 32, blockBytes: 22 }], // f16 d + u32 high bits + 16 bytes
  [GGML_TYPE.Q5_1, { blockSize: 32, blockBytes: 24 }], // f16 d, f16 m + u32 high bits + 16 bytes
  [GGML_TYPE.Q8_1, { blockSize: 32, blockBytes: 36 }],
  [GGML_TYPE.Q2_K, { blockSize: 256, blockBytes: 84 }],
  [GGML_TYPE.Q3_K, { blockSize: 256, blockBytes: 110 }],
  [GGML_TYPE.Q4_K, { blockSize: 256, blockBytes: 144 }],
  [GGML_TYPE.Q5_K, { blockSize: 256, blockBytes: 176 }],
  [GGML_TYPE.Q6_K, { blockSize: 256, blockBytes: 210 }],
  [GGML_TYPE.Q8_K, { blockSize: 256, blockBytes: 292 }],
  [GGML_TYPE.IQ2_XXS, { blockSize: 256, blockBytes: 66 }],
  [GGML_TYPE.IQ2_XS, { blockSize: 256, blockBytes: 74 }],
  [GGML_TYPE.IQ3_XXS, { blockSize: 256, blockBytes: 98 }],
  [GGML_TYPE.IQ1_S, { blockSize: 256, blockBytes: 50 }],
  [GGML_TYPE.IQ4_NL, { blockSize: 32, blockBytes: 18 }],
  [GGML_TYPE.IQ3_S, { blockSize: 256, blockBytes: 110 }],
  [GGML_TYPE.IQ2_S, { blockSize: 256, blockBytes: 82 }],
  [GGML_TYPE.IQ4_XS, { blockSize: 256, blockBytes: 136 }],
  [GGML_TYPE.I8, { blockSize: 1, blockBytes: 1 }],
  [GGML_TYPE.I16, { blockSize: 1, blockBytes: 2 }],
  [GGML_TYPE.I32, { blockSize: 1, blockBytes: 4 }],
  [GGML_TYPE.I64, { blockSize: 1, blockBytes: 8 }],
  [GGML_TYPE.F64, { blockSize: 1, blockBytes: 8 }],
  [GGML_TYPE.IQ1_M, { blockSize: 256, blockBytes: 56 }],
]);

/** The block types the native addon encodes and decodes (quantizeRows / dequantizeRows). */
const NATIVE_CODEC_TYPES: ReadonlySet<number> = new Set([
  GGML_TYPE.Q4_1,
  GGML_TYPE.Q5_0,
  GGML_TYPE.Q5_1,
  GGML_TYPE.Q2_K,
  GGML_TYPE.Q3_K,
  GGML_TYPE.Q4_K,
  GGML_TYPE.Q5_K,
  GGML_TYPE.Q6_K,
  GGML_TYPE.IQ4_NL,
  GGML_TYPE.IQ4_XS,
]);

export const QK = 32; // block size of Q8_0 / Q4_0 (and the other 32-element formats)
export const QK_K = 256; // super-block size of the K-quants and IQ4_XS

export function ggmlBlockSize(type: number): number | undefined {
  return GGML_TYPE_LAYOUT.get(type)?.blockSize;
}

/** Bytes of a tensor of `type` with shape `ne`, or undefined for a type whose layout we do not know. Throws when the
 *  row length is not a multiple of the block size (ggml cannot store such a tensor). */
export function ggmlTensorBytes(type: number, ne: readonly number[]): number | undefined {
  const layout = GGML_TYPE_LAYOUT.get(type);
  if (layout === undefined) return undefined;
  const n = ne.reduce((a, b) => a * b, 1);
  const row = ne[0] ?? 1;
  if (row % layout.blockSize !== 0) {
    throw new Error(`row length ${row} is not a multiple of the block size ${layout.blockSize} of ggml type ${type}`);
  }
  return (n / layout.blockSize) * layout.blockBytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Scalar codecs. One shared scratch word gives us the IEEE bits of a float32 without allocating.
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float → IEEE half bits, round to nearest even, with subnormals, overflow to inf and NaN kept (as ggml's
 *  GGML_FP32_TO_FP16 on a machine with F16C does). */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): value = M * 2^-24 with M = (1.mant) * 2^(e + 23 - 14 ... ), i.e. shift right.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    const r = rem > mid || (rem === mid && (half & 1) === 1) ? half + 1 : half;
    return sign | r;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches inf at the top).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** Half bits → number (exact). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float → bfloat16 bits, round to nearest even (NaN stays a quiet NaN), as ggml's GGML_FP32_TO_BF16. */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

/** Round half away from zero, as C's roundf (Math.round rounds -2.5 to -2). */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

// ---------------------------------------------------------------------------------------------------------------
// Array codecs. Encoders take float32 values (a Float32Array, or numbers that are rounded to float32 first).

export function encodeF32(src: Float32Array): Uint8Array {
  // A view, not a copy: the host is little-endian (x86/arm64), as GGUF is.
  return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
}

export function encodeF16(src: Float32Array): Uint8Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]!);
  return new Uint8Array(out.buffer);
}

export function encodeBf16(src: Float32Array): Uint8Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16(src[i]!);
  return new Uint8Array(out.buffer);
}

/** ggml quantize_row_q8_0_ref: per block of 32, d = absmax / 127 (f32, stored as f16), q = round(x / d). */
export function encodeQ8_0(src: Float32Array): Uint8Array {
  if (src.length % QK !== 0) throw new Error(`Q8_0 needs a multiple of ${QK} values, got ${src.length}`);
  const nb = src.length / QK;
  const out = new Uint8Array(nb * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(src[base + j]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const o = b * 34;
    view.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < QK; j++) view.setInt8(o + 2 + j, roundAway(Math.fround(src[base + j]! * id)));
  }
  return out;
}

/** ggml quantize_row_q4_0_ref: d = (the signed value of largest magnitude) / -8, nibble = min(15, trunc(x/d + 8.5));
 *  byte j holds element j (low nibble) and element j+16 (high nibble). */
export function encodeQ4_0(src: Float32Array): Uint8Array {
  if (src.length % QK !== 0) throw new Error(`Q4_0 needs a multiple of ${QK} values, got ${src.length}`);
  const nb = src.length / QK;
  const out = new Uint8Array(nb * 18);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * QK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = src[base + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const o = b * 18;
    view.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < QK / 2; j++) {
      const x0 = Math.fround(src[base + j]! * id);
      const x1 = Math.fround(src[base + j + QK / 2]! * id);
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)));
      out[o + 2 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
    }
  }
  return out;
}

export function decodeF32(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
  return out;
}

export function decodeF16(bytes: Uint8Array, n: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  return out;
}

export function decodeBf16(bytes: Uint8Array, n: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = bf16ToF32(view.getUint16(i * 2, true));
  return out;
}

export function decodeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK; b++) {
    const o = b * 34;
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < QK; j++) out[b * QK + j] = d * view.getInt8(o + 2 + j);
  }
  return out;
}

export function decodeQ4_0(bytes: Uint8Array, n: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK; b++) {
    const o = b * 18;
    const d = f16ToF32(view.getUint16(o, true));
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[o + 2 + j]!;
      out[b * QK + j] = ((byte & 0xf) - 8) * d;
      out[b * QK + j + QK / 2] = ((byte >>> 4) - 8) * d;
    }
  }
  return out;
}

/** Encode float32 values as ggml `type`: whole rows of `cols` values (default: all of them as one row; block types
 *  only need whole blocks). */
export function encodeTensorValues(type: number, values: Float32Array, cols = values.length): Uint8Array {
  switch (type) {
    case GGML_TYPE.F32:
      return encodeF32(values);
    case GGML_TYPE.F16:
      return encodeF16(values);
    case GGML_TYPE.BF16:
      return encodeBf16(values);
    case GGML_TYPE.Q8_0:
      return encodeQ8_0(values);
    case GGML_TYPE.Q4_0:
      return encodeQ4_0(values);
    default:
      if (NATIVE_CODEC_TYPES.has(type)) return native().quantizeRows(ggmlTypeName(type)!, values, cols);
      throw new Error(`cannot encode ggml type ${type}`);
  }
}

/** Decode `n` elements of ggml `type` (the inverse of encodeTensorValues, exact: the values the blocks encode). */
export function decodeTensorValues(type: number, bytes: Uint8Array, n: number): Float32Array {
  switch (type) {
    case GGML_TYPE.F32:
      return decodeF32(bytes, n);
    case GGML_TYPE.F16:
      return decodeF16(bytes, n);
    case GGML_TYPE.BF16:
      return decodeBf16(bytes, n);
    case GGML_TYPE.Q8_0:
      return decodeQ8_0(bytes, n);
    case GGML_TYPE.Q4_0:
      return decodeQ4_0(bytes, n);
    default: {
      const layout = GGML_TYPE_LAYOUT.get(type);
      if (NATIVE_CODEC_TYPES.has(type) && layout !== undefined) {
        // Blocks are independent: the whole tensor decodes as one row of n elements.
        return native().dequantizeRows(ggmlTypeName(type)!, bytes.subarray(0, (n / layout.blockSize) * layout.blockBytes), n);
      }
      throw new Error(`cannot decode ggml type ${type}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata values.

export type GgufNumberTypeName = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
export type GgufScalarItem = number | bigint | boolean | string;

export type GgufArray =
  | { readonly type: 'array'; readonly itemType: GgufScalarTypeName; readonly items: readonly GgufScalarItem[] }
  | { readonly type: 'array'; readonly itemType: 'array'; readonly items: readonly GgufArray[] };

export type GgufValue =
  | { readonly type: GgufNumberTypeName; readonly value: number }
  | { readonly type: 'uint64' | 'int64'; readonly value: number | bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | GgufArray;

/** Constructors for metadata values, so call sites read `gv.u32(2048)`. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: 'uint8', value }),
  i8: (value: number): GgufValue => ({ type: 'int8', value }),
  u16: (value: number): GgufValue => ({ type: 'uint16', value }),
  i16: (value: number): GgufValue => ({ type: 'int16', value }),
  u32: (value: number): GgufValue => ({ type: 'uint32', value }),
  i32: (value: number): GgufValue => ({ type: 'int32', value }),
  u64: (value: number | bigint): GgufValue => ({ type: 'uint64', value }),
  i64: (value: number | bigint): GgufValue => ({ type: 'int64', value }),
  f32: (value: number): GgufValue => ({ type: 'float32', value }),
  f64: (value: number): GgufValue => ({ type: 'float64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  arr: (itemType: GgufScalarTypeName, items: readonly GgufScalarItem[]): GgufArray => ({ type: 'array', itemType, items }),
  arrOfArrays: (items: readonly GgufArray[]): GgufArray => ({ type: 'array', itemType: 'array', items }),
};

/** Growable little-endian byte buffer for the header. Records where it wrote u64 fields so that fuzzers can aim
 *  at length/count fields. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  readonly u64Positions: number[] = [];

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.buf.writeInt8(v, this.length);
    this.length += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.buf.writeUInt16LE(v, this.length);
    this.length += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.buf.writeInt16LE(v, this.length);
    this.length += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.buf.writeInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.u64Positions.push(this.length);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  i64(v: number | bigint): void {
    this.reserve(8);
    this.buf.writeBigInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  f32(v: number): void {
    this.reserve(4);
    this.buf.writeFloatLE(v, this.length);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.buf.writeDoubleLE(v, this.length);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  zeros(n: number): void {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  result(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(sink: ByteSink, type: GgufScalarTypeName, v: GgufScalarItem): void {
  const num = (): number => {
    if (typeof v !== 'number') throw new Error(`GGUF ${type} value must be a number, got ${typeof v}`);
    return v;
  };
  switch (type) {
    case 'uint8':
      return sink.u8(num());
    case 'int8':
      return sink.i8(num());
    case 'uint16':
      return sink.u16(num());
    case 'int16':
      return sink.i16(num());
    case 'uint32':
      return sink.u32(num());
    case 'int32':
      return sink.i32(num());
    case 'float32':
      return sink.f32(num());
    case 'float64':
      return sink.f64(num());
    case 'uint64':
    case 'int64':
      if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`GGUF ${type} value must be a number or bigint`);
      return type === 'uint64' ? sink.u64(v) : sink.i64(v);
    case 'bool':
      if (typeof v !== 'boolean') throw new Error('GGUF bool value must be a boolean');
      return sink.u8(v ? 1 : 0);
    case 'string':
      if (typeof v !== 'string') throw new Error('GGUF string value must be a string');
      return sink.str(v);
  }
}

function writeArrayBody(sink: ByteSink, a: GgufArray): void {
  sink.u32(GGUF_VALUE_TYPE[a.itemType]);
  sink.u64(a.items.length);
  if (a.itemType === 'array') {
    for (const item of a.items) writeArrayBody(sink, item);
  } else {
    for (const item of a.items) writeScalar(sink, a.itemType, item);
  }
}

function writeValue(sink: ByteSink, v: GgufValue): void {
  sink.u32(GGUF_VALUE_TYPE[v.type]);
  if (v.type === 'array') writeArrayBody(sink, v);
  else writeScalar(sink, v.type, v.value);
}

// ---------------------------------------------------------------------------------------------------------------
// Files.

/** Data of one tensor, in element order (ne[0] fastest). Float32Array chunks are encoded to the tensor's type
 *  (their lengths must be multiples of the block size); Uint8Array chunks are written as they are (already encoded,
 *  or raw bytes for types we cannot encode). The total must equal the tensor's byte size. */
export type TensorChunk = Float32Array | Uint8Array;

export interface GgufTensorEntry {
  name: string;
  /** ne[0] is the row length (innermost); a [in, out] matrix has ne = [in, out]. */
  ne: readonly number[];
  /** ggml type id (GGML_TYPE), written as is. */
  type: number;
  /** Byte size of the data; required only for types whose layout we do not know (e.g. a made-up id 99). When given
   *  it is used as is, even where it disagrees with the shape (for malformed test files). */
  nBytes?: number;
  /** Produces the data lazily, only when the writer reaches this tensor. */
  data: () => Iterable<TensorChunk>;
}

export interface GgufModel {
  /** In file order. general.alignment, when present, sets the alignment (default 32). */
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensorEntry[];
}

export interface GgufLayout {
  alignment: number;
  /** End of magic, version and the two counts (24). */
  headerEnd: number;
  /** Each metadata entry: [start, start of its value type id, end). */
  kv: { key: string; start: number; valueStart: number; end: number }[];
  metadataEnd: number;
  tensorInfos: { name: string; start: number; end: number }[];
  tensorInfoEnd: number;
  /** Start of the tensor data section (tensorInfoEnd rounded up to the alignment). */
  dataStart: number;
  tensors: { name: string; type: number; offset: number; absOffset: number; nBytes: number }[];
  /** Positions of every u64 written in the header (counts, string lengths, array lengths, shapes, offsets). */
  u64Positions: number[];
  fileSize: number;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function alignmentOf(model: GgufModel): number {
  const kv = model.metadata.find(([k]) => k === 'general.alignment');
  if (kv === undefined) return GGUF_DEFAULT_ALIGNMENT;
  const v = kv[1];
  if (v.type === 'array' || typeof v.value !== 'number' || v.value <= 0 || (v.value & (v.value - 1)) !== 0) {
    throw new Error('general.alignment must be a positive power of two number');
  }
  return v.value;
}

function tensorBytes(t: GgufTensorEntry): number {
  if (t.nBytes !== undefined) return t.nBytes; // as given: also how tests write malformed tensors (ragged rows)
  const known = ggmlTensorBytes(t.type, t.ne);
  if (known === undefined) throw new Error(`tensor '${t.name}': ggml type ${t.type} needs an explicit nBytes`);
  return known;
}

/** Serialize the header (everything before the tensor data) and compute the layout. */
function buildHeader(model: GgufModel): { header: Buffer; layout: GgufLayout } {
  const alignment = alignmentOf(model);
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(model.tensors.length);
  sink.u64(model.metadata.length);
  const headerEnd = sink.length;
  const kv: GgufLayout['kv'] = [];
  for (const [key, value] of model.metadata) {
    const start = sink.length;
    sink.str(key);
    const valueStart = sink.length;
    writeValue(sink, value);
    kv.push({ key, start, valueStart, end: sink.length });
  }
  const metadataEnd = sink.length;
  const tensorInfos: GgufLayout['tensorInfos'] = [];
  const tensors: GgufLayout['tensors'] = [];
  let offset = 0;
  for (const t of model.tensors) {
    const nBytes = tensorBytes(t);
    const start = sink.length;
    sink.str(t.name);
    sink.u32(t.ne.length);
    for (const n of t.ne) sink.u64(n);
    sink.u32(t.type);
    sink.u64(offset);
    tensorInfos.push({ name: t.name, start, end: sink.length });
    tensors.push({ name: t.name, type: t.type, offset, absOffset: 0, nBytes });
    offset = alignUp(offset + nBytes, alignment);
  }
  const tensorInfoEnd = sink.length;
  const dataStart = alignUp(tensorInfoEnd, alignment);
  sink.zeros(dataStart - tensorInfoEnd);
  for (const t of tensors) t.absOffset = dataStart + t.offset;
  const layout: GgufLayout = {
    alignment,
    headerEnd,
    kv,
    metadataEnd,
    tensorInfos,
    tensorInfoEnd,
    dataStart,
    tensors,
    u64Positions: sink.u64Positions,
    fileSize: dataStart + offset,
  };
  return { header: sink.result(), layout };
}

/** Stream a tensor's encoded bytes to `write`, checking that the producer delivers exactly nBytes. */
function streamTensor(t: GgufTensorEntry, nBytes: number, write: (b: Uint8Array) => void): void {
  let written = 0;
  const block = ggmlBlockSize(t.type) ?? 1;
  for (const chunk of t.data()) {
    let bytes: Uint8Array;
    if (chunk instanceof Float32Array) {
      if (chunk.length % block !== 0) throw new Error(`tensor '${t.name}': chunk of ${chunk.length} values is not whole blocks`);
      const row = t.ne[0] ?? chunk.length;
      bytes = encodeTensorValues(t.type, chunk, chunk.length % row === 0 ? row : chunk.length);
    } else {
      bytes = chunk;
    }
    written += bytes.length;
    if (written > nBytes) throw new Error(`tensor '${t.name}': producer gave more than ${nBytes} bytes`);
    write(bytes);
  }
  if (written !== nBytes) throw new Error(`tensor '${t.name}': producer gave ${written} bytes, expected ${nBytes}`);
}

/** Write `model` to `path`, streaming tensor data through a fixed-size buffer. Returns the layout. */
export function writeGgufFile(path: string, model: GgufModel): GgufLayout {
  const { header, layout } = buildHeader(model);
  const fd = fs.openSync(path, 'w');
  // Batch small chunks into large writes: one syscall per few MiB keeps a 2 GB write I/O-bound, not syscall-bound.
  const bufSize = 8 << 20;
  const buf = Buffer.alloc(bufSize);
  let used = 0;
  let pos = 0;
  const flush = (): void => {
    let off = 0;
    while (off < used) off += fs.writeSync(fd, buf, off, used - off);
    pos += used;
    used = 0;
  };
  const write = (b: Uint8Array): void => {
    let off = 0;
    while (off < b.length) {
      if (used === 0 && b.length - off >= bufSize) {
        // Large chunk: write straight through.
        let w = 0;
        while (w < b.length - off) w += fs.writeSync(fd, b, off + w, b.length - off - w);
        pos += b.length - off;
        return;
      }
      const n = Math.min(bufSize - used, b.length - off);
      buf.set(b.subarray(off, off + n), used);
      used += n;
      off += n;
      if (used === bufSize) flush();
    }
  };
  try {
    write(header);
    model.tensors.forEach((t, i) => {
      const info = layout.tensors[i]!;
      streamTensor(t, info.nBytes, write);
      // Zero padding up to the next aligned offset (also after the last tensor, as gguf-py does).
      const end = alignUp(info.nBytes, layout.alignment);
      if (end > info.nBytes) write(new Uint8Array(end - info.nBytes));
    });
    flush();
  } finally {
    fs.closeSync(fd);
  }
  if (pos !== layout.fileSize) throw new Error(`wrote ${pos} bytes, layout says ${layout.fileSize}`);
  return layout;
}

/** Serialize `model` into memory (small models only: tests that corrupt files work on the bytes). */
export function encodeGguf(model: GgufModel): { bytes: Buffer; layout: GgufLayout } {
  const { header, layout } = buildHeader(model);
  const bytes = Buffer.alloc(layout.fileSize);
  header.copy(bytes, 0);
  model.tensors.forEach((t, i) => {
    const info = layout.tensors[i]!;
    let at = info.absOffset;
    streamTensor(t, info.nBytes, (b) => {
      bytes.set(b, at);
      at += b.length;
    });
  });
  return { bytes, layout };
}
