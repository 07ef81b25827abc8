// Real vocabularies for tests: the @lenml/tokenizer-* packages' tokenizer.json converted to vocabulary-only GGUFs
// (tools/lib/hf-vocab.ts), and the same files loaded in @lenml/tokenizers (a port of transformers.js's tokenizers) as
// the Hugging Face reference. Conversions are written once per directory (each test file passes its own temp dir).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { TokenizerLoader } from '@lenml/tokenizers';

import { lenmlModelDir, lenmlVocab, writeVocabOnlyGguf, type LenmlVocabName } from '../../tools/lib/hf-vocab.js';

/** The vocabulary-only GGUF of one package in `dir` (written on first use). */
export function lenmlVocabGguf(name: LenmlVocabName, dir: string): string {
  const file = join(dir, `${name}.gguf`);
  if (!existsSync(file)) writeVocabOnlyGguf(file, lenmlVocab(name), { name: `@lenml/tokenizer-${name}` });
  return file;
}

export interface ReferenceTokenizer {
  /** Token ids of `text` without special tokens added (no BOS), special-token text parsed as Hugging Face does. */
  encode(text: string): number[];
}

const references = new Map<LenmlVocabName, ReferenceTokenizer>();

/** @lenml/tokenizers over the package's own tokenizer.json + tokenizer_config.json (cached per process). */
export function lenmlReference(name: LenmlVocabName): ReferenceTokenizer {
  let ref = references.get(name);
  if (ref === undefined) {
    const dir = lenmlModelDir(name);
    const tokenizer = TokenizerLoader.fromPreTrained({
      tokenizerJSON: JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as object,
      tokenizerConfig: JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as object,
    });
    ref = { encode: (text) => tokenizer.encode(text, { add_special_tokens: false }) };
    references.set(name, ref);
  }
  return ref;
}

/** llama.cpp's tokenizer test vectors: `.inp` holds the strings separated by `\n__ggml_vocab_test__\n` (the last one
 *  followed by it too), `.out` one line of space-separated ids per string. */
export function readVocabVectors(inpFile: string): { text: string; ids: number[] }[] {
  const texts = readFileSync(inpFile, 'utf8').split('\n__ggml_vocab_test__\n');
  if (texts.at(-1) === '') texts.pop();
  const lines = readFileSync(inpFile.replace(/\.inp$/, '.out'), 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length !== texts.length) throw new Error(`${inpFile}: ${texts.length} strings but ${lines.length} id lines`);
  return texts.map((text, i) => ({
    text,
    ids: lines[i]!.trim() === '' ? [] : lines[i]!.trim().split(/\s+/).map(Number),
  }));
}
