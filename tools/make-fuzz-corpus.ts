// Writes the seed corpus of the native fuzz targets (native/fuzz/corpus/{gguf,tokenizer}), deterministically:
// tiny valid models of every tensor type and both tokenizers, vocabulary-only files, a file with every metadata value
// type, and truncated or length-mangled variants of them; tokenizer inputs in each mode of tokenizer_fuzz.cpp.
// The files are committed; rerun this only to change the seeds (crash reproducers found by fuzzing are added by hand
// as crash-*, and this script leaves them alone).
//
//   node --import tsx tools/make-fuzz-corpus.ts [OUT_DIR]      # default native/fuzz/corpus
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GGML_TYPE, encodeGguf, gv, type GgufModel, type GgufTensorEntry, type GgufValue } from './lib/gguf-writer.js';
import { buildSyntheticLlama, type LlamaShape, type SyntheticFileType, type SyntheticTokenizer } from './lib/synthetic-llama.js';

const out = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', 'native', 'fuzz', 'corpus'));
const TINY: LlamaShape = {
  dim: 16,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  ffnDim: 32,
  nVocab: 300,
  contextLength: 32,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  tiedEmbeddings: true,
};

/** Empty `dir` of the generated seeds, keeping the crash reproducers (crash-*). */
function clean(dir: string): void {
  const d = path.join(out, dir);
  if (!fs.existsSync(d)) return;
  for (const f of fs.readdirSync(d)) if (!f.startsWith('crash-')) fs.rmSync(path.join(d, f));
}

function write(dir: string, name: string, bytes: Uint8Array): void {
  fs.mkdirSync(path.join(out, dir), { recursive: true });
  fs.writeFileSync(path.join(out, dir, name), bytes);
}

// ---- GGUF -------------------------------------------------------------------------------------------------------

function model(fileType: SyntheticFileType, tokenizer: SyntheticTokenizer, tied = true): GgufModel {
  return buildSyntheticLlama({ shape: { ...TINY, tiedEmbeddings: tied }, fileType, seed: 7, tokenizer });
}

/** The metadata only (no tensors): small, so the fuzzer spends its time in the header and the tokenizer. */
function vocabOnly(tokenizer: SyntheticTokenizer): GgufModel {
  return { metadata: model('f32', tokenizer).metadata, tensors: [] };
}

/** Every value type, nested arrays, a non-default alignment, and one tensor of each type (one we cannot load). */
function allTypes(): GgufModel {
  const metadata: [string, GgufValue][] = [
    ['general.alignment', gv.u32(64)],
    ['t.u8', gv.u8(255)],
    ['t.i8', gv.i8(-128)],
    ['t.u16', gv.u16(65535)],
    ['t.i16', gv.i16(-32768)],
    ['t.u32', gv.u32(0xffffffff)],
    ['t.i32', gv.i32(-1)],
    ['t.f32', gv.f32(1.5)],
    ['t.bool', gv.bool(true)],
    ['t.str', gv.str('h\u00e9llo \u2581 \u{1F600}')],
    ['t.u64', gv.u64(0xffffffffffffffffn)],
    ['t.i64', gv.i64(-(1n << 63n))],
    ['t.f64', gv.f64(-0.25)],
    ['t.arr.f32', gv.arr('float32', [1, 2, 3])],
    ['t.arr.str', gv.arr('string', ['a', '', 'bc'])],
    ['t.arr.nested', gv.arrOfArrays([gv.arr('int32', [1, -2]), gv.arr('bool', [true, false])])],
    ['t.arr.empty', gv.arr('uint8', [])],
  ];
  const row = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 2);
  const tensors: GgufTensorEntry[] = [
    { name: 'f32', ne: [8, 2], type: GGML_TYPE.F32, data: () => [row(16)] },
    { name: 'f16', ne: [8], type: GGML_TYPE.F16, data: () => [row(8)] },
    { name: 'bf16', ne: [4, 1, 2], type: GGML_TYPE.BF16, data: () => [row(8)] },
    { name: 'q8_0', ne: [32, 2], type: GGML_TYPE.Q8_0, data: () => [row(64)] },
    { name: 'q4_0', ne: [64, 1, 1, 1], type: GGML_TYPE.Q4_0, data: () => [row(64)] },
    { name: 'q4_k', ne: [256], type: 12, nBytes: 144, data: () => [new Uint8Array(144)] },
  ];
  return { metadata, tensors };
}

function u64At(bytes: Buffer, at: number, v: bigint): Buffer {
  const b = Buffer.from(bytes);
  b.writeBigUInt64LE(v, at);
  return b;
}

const ggufSeeds: [string, Buffer][] = [];
for (const [ft, tok, tied] of [
  ['q8_0', 'llama', true],
  ['f16', 'gpt2', true],
  ['q4_0', 'llama', false],
  ['bf16', 'gpt2', true],
  ['f32', 'llama', true],
] as const) {
  ggufSeeds.push([`model-${ft}-${tok}${tied ? '' : '-untied'}.gguf`, encodeGguf(model(ft, tok, tied)).bytes]);
}
const vocabLlama = encodeGguf(vocabOnly('llama'));
const vocabGpt2 = encodeGguf(vocabOnly('gpt2'));
const types = encodeGguf(allTypes());
ggufSeeds.push(['vocab-llama.gguf', vocabLlama.bytes], ['vocab-gpt2.gguf', vocabGpt2.bytes], ['all-types.gguf', types.bytes]);

// Truncations: inside the header, a key, the vocabulary array, the tensor infos and the tensor data.
const q8 = encodeGguf(model('q8_0', 'llama'));
const tokensKv = vocabLlama.layout.kv.find((k) => k.key === 'tokenizer.ggml.tokens')!;
ggufSeeds.push(
  ['trunc-header.gguf', vocabLlama.bytes.subarray(0, 20)],
  ['trunc-counts.gguf', vocabLlama.bytes.subarray(0, 24)],
  ['trunc-key.gguf', vocabLlama.bytes.subarray(0, 30)],
  ['trunc-vocab.gguf', vocabLlama.bytes.subarray(0, Math.floor((tokensKv.valueStart + tokensKv.end) / 2))],
  ['trunc-tensor-info.gguf', q8.bytes.subarray(0, q8.layout.tensorInfos[1]!.start + 5)],
  ['trunc-tensor-data.gguf', q8.bytes.subarray(0, q8.layout.fileSize - 40)],
  ['trunc-all-types.gguf', types.bytes.subarray(0, types.layout.dataStart + 10)],
);

// Huge values in length and count fields (u64Positions lists them), a wrong magic and version, a bad alignment.
const HUGE = [0xffffffffffffffffn, 0x8000000000000000n, 1n << 32n, 1n << 24n];
vocabGpt2.layout.u64Positions.slice(0, 6).forEach((at, i) => {
  ggufSeeds.push([`huge-u64-${i}.gguf`, u64At(vocabGpt2.bytes, at, HUGE[i % HUGE.length]!)]);
});
types.layout.u64Positions.slice(-6).forEach((at, i) => {
  ggufSeeds.push([`huge-tensor-field-${i}.gguf`, u64At(types.bytes, at, HUGE[i % HUGE.length]!)]);
});
const badMagic = Buffer.from(vocabGpt2.bytes);
badMagic.write('GGML', 0, 'latin1');
const v1 = Buffer.from(vocabGpt2.bytes);
v1.writeUInt32LE(1, 4);
const align = Buffer.from(types.bytes);
align.writeUInt32LE(48, types.layout.kv[0]!.valueStart + 4); // general.alignment 64 -> 48, not a power of two
ggufSeeds.push(['bad-magic.gguf', badMagic], ['bad-version.gguf', v1], ['bad-alignment.gguf', align]);

clean('gguf');
for (const [name, bytes] of ggufSeeds) write('gguf', name, bytes);

// ---- Tokenizer --------------------------------------------------------------------------------------------------
// First byte: mode (byte % 5; 0 the shipped gpt2 vocabulary, 1 SentencePiece with byte fallback, 2 without byte
// tokens, 3 without <unk> either, 4 a vocabulary from the input); bit 7 asks for BOS in modes 0-3.

const slice = fs.readFileSync(path.join(import.meta.dirname, '..', 'models', 'validation-slice.txt'), 'utf8');
const TEXTS: [string, string | Buffer][] = [
  ['empty', ''],
  ['hello', 'Hello world'],
  ['shakespeare', slice.slice(0, 400)],
  ['spaces', '  two  spaces\n\n\ttab   \r\n end  '],
  ['contractions', "it's we're they've I'm he'll she'd 'tis O'er"],
  ['digits', '3.14159 2025-01-01 1,000,000 ¹²³ ½'],
  ['unicode', 'café naïve Ünïcödé 日本語 русский 한국어 \u{1F600}\u{1F44D}\u{1F3FD} e\u0301 \u200d\ufeff'],
  ['spm-space', 'a\u2581b \u2581\u2581 \u2581'],
  ['specials', '<|endoftext|></s><s><unk><0x41><|eot_id|>'],
  ['invalid-utf8', Buffer.from([0x61, 0xff, 0xfe, 0x20, 0xc3, 0x28, 0xe2, 0x82, 0x20, 0xf0, 0x9f, 0x98, 0xed, 0xa0, 0x80, 0xc0, 0xaf, 0x00, 0x62])],
  ['controls', Buffer.from(Array.from({ length: 40 }, (_, i) => i))],
  ['high-bytes', Buffer.from(Array.from({ length: 128 }, (_, i) => 128 + i))],
];
clean('tokenizer');
for (let mode = 0; mode < 4; mode++) {
  for (const [name, text] of TEXTS) {
    // The first byte ≡ mode (mod 5), with bit 7 (BOS) set for two of the texts.
    let sel = name === 'hello' || name === 'empty' ? 0x80 : 0;
    while (sel % 5 !== mode) sel++;
    write('tokenizer', `m${mode}-${name}`, Buffer.concat([Buffer.from([sel]), Buffer.from(text)]));
  }
}
// Vocabulary mode: [4, flags, tokens \0 merges \0 text]. Flags: 1 add_bos, 2 space prefix, 4 gpt2, 8 unk,
// 0x10 types, 0x20 scores, 0x40 BOS id, 0x80 EOS id.
const VOCABS: [string, number, string][] = [
  ['spm', 0x02 | 0x08 | 0x20, '<unk>\n\u2581\nh\ne\nl\no\nhe\nll\nhell\n\u2581hello\0\0hello hello'],
  ['spm-typed', 0xff & ~0x04, '<unk>\n<s>\n</s>\n<0x41>\n<0xFF>\n\u2581\na\naa\n\0\0aa a \u00ff'],
  ['gpt2', 0x04 | 0x80, 'h\ne\nl\no\n\u0120\nhe\nll\n\u0120h\n<|endoftext|>\0h e\nl l\n\u0120 h\nhe ll\0hello hello'],
  ['gpt2-bad-merge', 0x04, 'a\nb\0a b c\0ab'],
  ['gpt2-typed', 0x04 | 0x10 | 0x08 | 0x40, 'x\ny\nxy\n\0x y\nxy xy\0xyxy y'],
  ['empty-vocab', 0, '\0\0text'],
  ['dupes', 0x20 | 0x02, 'a\na\n\u2581\n\u2581a\n\u2581a\0\0a a a'],
];
for (const [name, flags, body] of VOCABS) write('tokenizer', `m4-${name}`, Buffer.concat([Buffer.from([4, flags]), Buffer.from(body)]));
// Pre-tokenizer mode: [0x40, pick, text]; pick selects a tokenizer.ggml.pre value (modulo the number known).
const PRE_TEXTS = ['spaces', 'contractions', 'digits', 'unicode', 'invalid-utf8'];
for (let pick = 0; pick < 32; pick += 3) {
  const [name, text] = TEXTS.find(([n]) => n === PRE_TEXTS[pick % PRE_TEXTS.length])!;
  write('tokenizer', `m5-${pick}-${name}`, Buffer.concat([Buffer.from([0x40, pick]), Buffer.from(text)]));
}
// Special-token mode: [0x41, flags, u16 range pairs, text]; flags: bit 0 parse_special, bits 1-3 the pair count.
const SPECIALS: [string, number, number[], string][] = [
  ['plain', 0, [], 'hi<|im_end|>there<tool>x</tool>\n\n'],
  ['parse', 1, [], 'hi<|im_end|>there<|im_end|>x<tool>x</tool><<|im_start|>'],
  ['ranges', 1 | (2 << 1), [2, 14, 20, 30], '<|im_start|>hi<|im_end|>there<|im_end|>x<tool>'],
  ['bad-range', 1 | (1 << 1), [9, 2], '<|im_end|>hi'],
];
for (const [name, flags, ranges, text] of SPECIALS) {
  const r = Buffer.alloc(ranges.length * 2);
  ranges.forEach((v, i) => r.writeUInt16LE(v, 2 * i));
  write('tokenizer', `m6-${name}`, Buffer.concat([Buffer.from([0x41, flags]), r, Buffer.from(text)]));
}

let total = 0;
for (const dir of ['gguf', 'tokenizer']) for (const f of fs.readdirSync(path.join(out, dir))) total += fs.statSync(path.join(out, dir, f)).size;
console.log(`wrote ${ggufSeeds.length} gguf and ${fs.readdirSync(path.join(out, 'tokenizer')).length} tokenizer seeds (${(total / 1024).toFixed(0)} KiB) to ${out}`);
