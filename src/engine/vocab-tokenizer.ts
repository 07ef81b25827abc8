// A GGUF's vocabulary on its own: loads only the tokenizer metadata (no tensors are read or needed), so that
// vocabulary-only files, such as llama.cpp's ggml-vocab-*.gguf, can be tokenized (`tuneloop tokenize --model FILE`).
import { EngineError } from './errors.js';
import { native, type NativeTokenizerHandle } from './native.js';
import { normalizeTokenizeArgs } from './tokenize-args.js';
import type { TokenizeOptions, TokenizerInfo } from './types.js';

export interface VocabTokenizerInfo extends TokenizerInfo {
  path: string;
  /** general.architecture and general.name ('' when absent). */
  architecture: string;
  name: string;
}

export class VocabTokenizer {
  readonly info: VocabTokenizerInfo;

  private constructor(private readonly handle: NativeTokenizerHandle) {
    this.info = handle.info() as unknown as VocabTokenizerInfo;
  }

  /** Reads the tokenizer metadata of a GGUF file (synchronous). Throws EngineError: MODEL_NOT_FOUND, MODEL_CORRUPT
   *  (missing or inconsistent vocabulary, merges naming absent tokens, ...), UNSUPPORTED_ARCHITECTURE (an unknown
   *  tokenizer.ggml.model or tokenizer.ggml.pre, the message lists the known values). */
  static load(path: string): VocabTokenizer {
    if (typeof path !== 'string' || path.length === 0) throw new EngineError('INVALID_ARGUMENT', 'Expected a non-empty path string for path');
    return new VocabTokenizer(native().loadTokenizer(path));
  }

  /** Text to token ids; the same arguments as Engine.tokenize. */
  tokenize(text: string, addBosOrOptions?: boolean | ({ addBos?: boolean } & TokenizeOptions), options?: TokenizeOptions): number[] {
    const a = normalizeTokenizeArgs(text, addBosOrOptions, options);
    return Array.from(this.handle.tokenize(text, a.addBos, a.options));
  }

  detokenize(ids: readonly number[]): string {
    if (!Array.isArray(ids) || ids.some((t) => !Number.isInteger(t))) throw new EngineError('INVALID_ARGUMENT', 'Expected an array of integer token ids for ids');
    return this.handle.detokenize(Int32Array.from(ids));
  }

  /** The raw vocabulary entry of a token (byte-level BPE: its byte-mapped text, e.g. 'Ġworld'). */
  tokenText(id: number): string {
    return this.handle.tokenText(id);
  }
}
