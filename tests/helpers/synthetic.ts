// Writes small synthetic llama GGUF files (seeded random weights, working tokenizer) to a temp dir for tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeGgufFile } from '../../tools/lib/gguf-writer.js';
import { buildSyntheticLlama, type LlamaShape, type SyntheticFileType, type SyntheticTokenizer } from '../../tools/lib/synthetic-llama.js';

export const SMALL_SHAPE: LlamaShape = {
  dim: 64,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnDim: 160,
  nVocab: 320,
  contextLength: 256,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  tiedEmbeddings: false,
};

export class TempModels {
  readonly dir = mkdtempSync(join(tmpdir(), 'tuneloop-test-'));
  private n = 0;

  write(shape: LlamaShape = SMALL_SHAPE, fileType: SyntheticFileType = 'f32', tokenizer: SyntheticTokenizer = 'llama', seed = 1): string {
    const file = join(this.dir, `model-${this.n++}.gguf`);
    writeGgufFile(file, buildSyntheticLlama({ shape, fileType, seed, tokenizer }));
    return file;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
