// Minimal GGUF reader for small files (read whole into memory). Tests use it to feed their reference forward pass
// with exactly the values a file holds, and to check the writer by round trip. It is deliberately strict: anything
// unexpected throws a plain Error (this is test tooling, not the engine's parser).
import * as fs from 'node:fs';

import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPE, decodeTensorValues, ggmlTensorBytes } from './gguf-writer.js';

/** Metadata as plain JS: numbers (u64/i64 as bigint), booleans, strings, and arrays of those (nested allowed). */
export type GgufReadValue = number | bigint | boolean | string | GgufReadValue[];

export interface GgufReadTensor {
  name: string;
  ne: number[];
  type: number;
  offset: number;
  nBytes: number;
  /** The tensor's bytes (a view into the file buffer). */
  bytes: Uint8Array;
}

export interface GgufReadFile {
  version: number;
  alignment: number;
  metadata: Map<string, GgufReadValue>;
  /** Metadata value type ids as stored, for checks on the writer. */
  metadataTypes: Map<string, number>;
  tensors: Map<string, GgufReadTensor>;
  tensorOrder: string[];
  dataStart: number;
}

const T = GGUF_VALUE_TYPE;

export function parseGguf(buf: Uint8Array): GgufReadFile {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const need = (n: number): void => {
    if (p + n > buf.length) throw new Error(`truncated at ${p} (+${n})`);
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(p, true);
    p += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`u64 ${v} too large at ${p - 8}`);
    return Number(v);
  };
  const str = (): string => {
    const n = u64();
    need(n);
    const s = Buffer.from(buf.buffer, buf.byteOffset + p, n).toString('utf8');
    p += n;
    return s;
  };
  const value = (type: number): GgufReadValue => {
    let v: GgufReadValue;
    switch (type) {
      case T.uint8:
        need(1);
        v = view.getUint8(p);
        p += 1;
        break;
      case T.int8:
        need(1);
        v = view.getInt8(p);
        p += 1;
        break;
      case T.uint16:
        need(2);
        v = view.getUint16(p, true);
        p += 2;
        break;
      case T.int16:
        need(2);
        v = view.getInt16(p, true);
        p += 2;
        break;
      case T.uint32:
        need(4);
        v = view.getUint32(p, true);
        p += 4;
        break;
      case T.int32:
        need(4);
        v = view.getInt32(p, true);
        p += 4;
        break;
      case T.float32:
        need(4);
        v = view.getFloat32(p, true);
        p += 4;
        break;
      case T.float64:
        need(8);
        v = view.getFloat64(p, true);
        p += 8;
        break;
      case T.uint64:
        need(8);
        v = view.getBigUint64(p, true);
        p += 8;
        break;
      case T.int64:
        need(8);
        v = view.getBigInt64(p, true);
        p += 8;
        break;
      case T.bool: {
        need(1);
        const b = view.getUint8(p);
        p += 1;
        if (b > 1) throw new Error(`bool ${b}`);
        v = b === 1;
        break;
      }
      case T.string:
        v = str();
        break;
      case T.array: {
        const et = u32();
        const n = u64();
        const items: GgufReadValue[] = [];
        for (let i = 0; i < n; i++) items.push(value(et));
        v = items;
        break;
      }
      default:
        throw new Error(`unknown value type ${type}`);
    }
    return v;
  };

  if (u32() !== GGUF_MAGIC) throw new Error('bad magic');
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, GgufReadValue>();
  const metadataTypes = new Map<string, number>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    metadata.set(key, value(type));
    metadataTypes.set(key, type);
  }
  const infos: Omit<GgufReadTensor, 'bytes' | 'nBytes'>[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nDims = u32();
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(u64());
    const type = u32();
    const offset = u64();
    infos.push({ name, ne, type, offset });
  }
  const al = metadata.get('general.alignment');
  const alignment = typeof al === 'number' ? al : GGUF_DEFAULT_ALIGNMENT;
  const dataStart = Math.ceil(p / alignment) * alignment;
  const tensors = new Map<string, GgufReadTensor>();
  for (const info of infos) {
    const nBytes = ggmlTensorBytes(info.type, info.ne);
    if (nBytes === undefined) throw new Error(`tensor ${info.name}: unknown type ${info.type}`);
    const start = dataStart + info.offset;
    if (start + nBytes > buf.length) throw new Error(`tensor ${info.name} beyond the end`);
    tensors.set(info.name, { ...info, nBytes, bytes: buf.subarray(start, start + nBytes) });
  }
  return { version, alignment, metadata, metadataTypes, tensors, tensorOrder: infos.map((t) => t.name), dataStart };
}

export function readGgufFile(path: string): GgufReadFile {
  return parseGguf(fs.readFileSync(path));
}

/** A tensor's values decoded to float32 (exactly the values the file holds). */
export function tensorToF32(t: GgufReadTensor): Float32Array {
  const n = t.ne.reduce((a, b) => a * b, 1);
  return decodeTensorValues(t.type, t.bytes, n);
}
