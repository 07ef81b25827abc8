// Synthetic files of the model families (tools/lib/synthetic-arch.ts) with their vocabularies, written to a temp dir,
// and the text the architecture tests teacher-force through them.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { native } from '../../src/engine/index.js';
import { parseGguf } from '../../tools/lib/gguf-reader.js';
import { GGML_TYPE, f32ToF16, ggmlTypeName, writeGgufFile, type GgufValue, type TensorChunk } from '../../tools/lib/gguf-writer.js';
import { lenmlVocab } from '../../tools/lib/hf-vocab.js';
import {
  archPreset,
  buildSyntheticArch,
  syntheticArchName,
  vocabFromGguf,
  vocabSize,
  type ArchPreset,
  type ArchSpec,
  type ArchVocab,
} from '../../tools/lib/synthetic-arch.js';
import type { EditableGgufModel, SyntheticFileType, SyntheticTensorType } from '../../tools/lib/synthetic-llama.js';
import { REPO_ROOT } from './shared.js';

/** Phi-3's 32064-token SentencePiece vocabulary: llama.cpp's own vocabulary-only GGUF (tests/fixtures/vocab). */
export function phi3Vocab(): [string, GgufValue][] {
  const gz = readFileSync(join(REPO_ROOT, 'tests', 'fixtures', 'vocab', 'ggml-vocab-phi-3.gguf.gz'));
  return vocabFromGguf(parseGguf(gunzipSync(gz)));
}

/** Size of the synthetic vocabularies used where a preset has no real one (or a test asks for a small one). */
export const SYNTHETIC_VOCAB = 512;

/** The vocabulary of a preset: its real one when this checkout can provide it and `real` is asked for, else the
 *  synthetic one of the same tokenizer model. Says which it gave. */
export function presetVocab(p: ArchPreset, real: boolean): { vocab: ArchVocab; label: string } {
  const r = p.vocab.real;
  if (real && r !== undefined) {
    const size = p.vocab.realSize;
    const metadata = r === 'phi3' ? phi3Vocab() : lenmlVocab(r, size === undefined ? {} : { vocabSize: size });
    return { vocab: { metadata }, label: `${r} (${vocabSize(metadata)})` };
  }
  const n = p.vocab.syntheticSize ?? SYNTHETIC_VOCAB;
  return { vocab: { tokenizer: p.vocab.synthetic, nVocab: n }, label: `synthetic ${p.vocab.synthetic} (${n})` };
}

export interface ArchModelFile {
  file: string;
  preset: string;
  spec: ArchSpec;
  vocabLabel: string;
  /** With options.f32Twin: the same weights, every tensor decoded to F32 (f32Twin below). */
  twin?: string | undefined;
}

/**
 * Writes to `out` the model of `file` (written from `model`) with every tensor that is not F32 decoded to F32 by the
 * engine's own decoder: the same weights, value for value. llama.cpp rounds the activations of a block-type (or
 * f16) product to 8 (or 16) bits, so on such a twin it computes in f32 throughout: tuneloop running the original file
 * with weights 'f32' (or the twin) must then agree with it to float rounding, which separates what the engine
 * computes from llama.cpp's rounding of activations.
 */
export function writeF32Twin(model: EditableGgufModel, file: string, out: string): void {
  const parsed = parseGguf(readFileSync(file));
  const tensors = model.tensors.map((t) => {
    if (t.type === GGML_TYPE.F32) return t;
    const stored = parsed.tensors.get(t.name);
    const type = ggmlTypeName(t.type);
    if (stored === undefined || type === undefined) throw new Error(`f32 twin: tensor ${t.name} (type ${t.type}) not readable`);
    return { ...t, type: GGML_TYPE.F32, data: () => [native().dequantizeRows(type, stored.bytes, t.ne[0]!)] };
  });
  writeGgufFile(out, { metadata: model.metadata, tensors });
}

export class ArchModels {
  readonly dir = mkdtempSync(join(tmpdir(), 'tuneloop-arch-'));
  private n = 0;

  write(
    preset: string,
    options: {
      fileType?: SyntheticFileType | undefined;
      real?: boolean | undefined;
      seed?: number | undefined;
      spec?: Partial<ArchSpec> | undefined;
      tensorTypes?: Record<string, SyntheticTensorType> | undefined;
      /** Changes to the model before it is written (tensor data, metadata). */
      edit?: ((model: EditableGgufModel) => void) | undefined;
      /** Also write the F32 twin (writeF32Twin). */
      f32Twin?: boolean | undefined;
    } = {},
  ): ArchModelFile {
    const p = archPreset(preset);
    if (p === undefined) throw new Error(`unknown preset '${preset}'`);
    const spec = { ...p.spec, ...options.spec };
    const real = options.real ?? true;
    const { vocab, label } = presetVocab(p, real);
    const fileType = options.fileType ?? 'f16';
    const file = join(this.dir, `${preset}-${fileType}-${this.n++}.gguf`);
    const model = buildSyntheticArch({
      spec,
      fileType,
      seed: options.seed ?? 7,
      vocab,
      name: syntheticArchName(preset, fileType, real && p.vocab.real !== undefined),
      tensorTypes: options.tensorTypes,
    });
    options.edit?.(model);
    writeGgufFile(file, model);
    const twin = options.f32Twin ? file.replace(/\.gguf$/, '-f32twin.gguf') : undefined;
    if (twin !== undefined) writeF32Twin(model, file, twin);
    return { file, preset, spec, vocabLabel: label, twin };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Teacher-forced text: Shakespeare (the repository's validation slice) and some code, so that both prose and
// code-like token patterns are in the sequences.
const CODE = `
function fib(n: number): number {
  if (n < 2) return n;
  return fib(n - 1) + fib(n - 2);
}
for (let i = 0; i < 10; i++) console.log(i, fib(i));
`;
export const ARCH_TEXT = readFileSync(join(REPO_ROOT, 'models', 'validation-slice.txt'), 'utf8').slice(0, 1200) + CODE;

/** Calls `edit` on every chunk of one tensor's data as it is written, with a setter for its elements (chunk-local
 *  indices; chunks hold whole rows). F32 and F16 tensors only. */
export function editTensor(model: EditableGgufModel, name: string, edit: (row0: number, nRows: number, set: (index: number, value: number) => void) => void): void {
  const t = model.tensors.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no tensor ${name}`);
  if (t.type !== GGML_TYPE.F16 && t.type !== GGML_TYPE.F32) throw new Error(`${name}: editTensor needs f16 or f32 data`);
  const rowLen = t.ne[0]!;
  const f16 = t.type === GGML_TYPE.F16;
  const inner = t.data;
  t.data = function* (): Generator<TensorChunk> {
    let row0 = 0;
    for (const chunk of inner()) {
      const bits = f16 ? new Uint16Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 2) : undefined;
      const values = f16 ? undefined : (chunk as Float32Array);
      const n = (bits?.length ?? values!.length) / rowLen;
      edit(row0, n, (i, v) => {
        if (bits) bits[i] = f32ToF16(v);
        else values![i] = v;
      });
      row0 += n;
      yield chunk;
    }
  };
}

/**
 * Makes `token` the greedy choice at every position, whatever the weights and the prompt, without touching what the
 * layers compute: residual dimension 0 is held at a constant `c` (every token embedding's element 0 is c, and no
 * layer writes to it: row 0 of every attn_output and ffn_down is zeroed), so after the final RMS norm h[0] > 0
 * always; the head row of `token` gets `a` added at element 0, its logit rises by a * h[0] over every other token's
 * (with a tied head, every row's element 0 is c: the same shift for all, which softmax ignores).
 */
export function forceToken(model: EditableGgufModel, token: number, c = 10, a = 10): void {
  const dim = model.tensors.find((t) => t.name === 'token_embd.weight')!.ne[0]!;
  const tied = model.tensors.every((t) => t.name !== 'output.weight');
  editTensor(model, 'token_embd.weight', (row0, n, set) => {
    for (let r = 0; r < n; r++) set(r * dim, tied && row0 + r === token ? c + a : c);
  });
  if (!tied) {
    editTensor(model, 'output.weight', (row0, n, set) => {
      if (token >= row0 && token < row0 + n) set((token - row0) * dim, a);
    });
  }
  for (const t of model.tensors) {
    if (!t.name.endsWith('.attn_output.weight') && !t.name.endsWith('.ffn_down.weight')) continue;
    const rowLen = t.ne[0]!;
    editTensor(model, t.name, (row0, _n, set) => {
      if (row0 === 0) for (let i = 0; i < rowLen; i++) set(i, 0);
    });
  }
}
