// Synthetic files of the model families (tools/lib/synthetic-arch.ts) with their vocabularies, written to a temp dir,
// and the text the architecture tests teacher-force through them.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { parseGguf } from '../../tools/lib/gguf-reader.js';
import { writeGgufFile, type GgufValue } from '../../tools/lib/gguf-writer.js';
import { lenmlVocab } from '../../tools/lib/hf-vocab.js';
import {
  ARCH_PRESETS,
  buildSyntheticArch,
  syntheticArchName,
  vocabFromGguf,
  vocabSize,
  type ArchPreset,
  type ArchSpec,
  type ArchVocab,
} from '../../tools/lib/synthetic-arch.js';
import type { SyntheticFileType, SyntheticTensorType } from '../../tools/lib/synthetic-llama.js';
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
    const metadata = r === 'phi3' ? phi3Vocab() : lenmlVocab(r);
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
}

export class ArchModels {
  readonly dir = mkdtempSync(join(tmpdir(), 'tuneloop-arch-'));
  private n = 0;

  write(
    preset: string,
    options: { fileType?: SyntheticFileType; real?: boolean; seed?: number; spec?: Partial<ArchSpec>; tensorTypes?: Record<string, SyntheticTensorType> } = {},
  ): ArchModelFile {
    const p = ARCH_PRESETS[preset];
    if (p === undefined) throw new Error(`unknown preset '${preset}'`);
    const spec = { ...p.spec, ...options.spec };
    const real = options.real ?? true;
    const { vocab, label } = presetVocab(p, real);
    const fileType = options.fileType ?? 'f16';
    const file = join(this.dir, `${preset}-${fileType}-${this.n++}.gguf`);
    writeGgufFile(
      file,
      buildSyntheticArch({
        spec,
        fileType,
        seed: options.seed ?? 7,
        vocab,
        name: syntheticArchName(preset, fileType, real && p.vocab.real !== undefined),
        tensorTypes: options.tensorTypes,
      }),
    );
    return { file, preset, spec, vocabLabel: label };
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
