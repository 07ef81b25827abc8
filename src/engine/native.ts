// Loads the compiled addon (build/Release/tuneloop_native.node, built by node-gyp at `npm install`) and hands it the
// EngineError class so that C++ throws instances of it.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineError } from './errors.js';
import type { ModelInspection, TokenizeOptions } from './types.js';

export interface NativeEvent {
  text: string;
  tokens: number[];
  logprobs?: { token: number; logprob: number; text: string; top: { token: number; logprob: number; text: string }[] }[];
  final?: boolean;
  error?: EngineError;
  finishReason?: 'stop' | 'length' | 'cancelled';
  promptTokens?: number;
  cachedPromptTokens?: number;
  completionTokens?: number;
  timings?: { queueMs: number; prefillMs: number; decodeMs: number; timeToFirstTokenMs: number };
}

export interface NativeEngineHandle {
  info(): Record<string, unknown>;
  tokenize(text: string, addBos?: boolean, options?: TokenizeOptions): Int32Array;
  detokenize(ids: Int32Array | number[]): string;
  generate(params: Record<string, unknown>, onEvents: (events: NativeEvent[], choice: number) => void): { id: number; ids: number[]; promptTokens: number };
  cancel(id: number): boolean;
  resume(id: number): boolean;
  /** Logits ([n or 1][nVocab]), or with hiddenStates the final hidden state of every token ([n][dim]). */
  evaluate(tokens: Int32Array, allLogits: boolean, hiddenStates?: boolean): Promise<Float32Array>;
  close(): Promise<void>;
  reconfigure(settings: Record<string, unknown>): Record<string, unknown>;
  reload(settings: Record<string, unknown>): Promise<void>;
  stats(): Record<string, unknown>;
}

/** A vocabulary loaded alone from a GGUF's metadata (loadTokenizer): works on vocabulary-only files. */
export interface NativeTokenizerHandle {
  /** TokenizerInfo plus the file's path, general.architecture and general.name. */
  info(): Record<string, unknown>;
  tokenize(text: string, addBos?: boolean, options?: TokenizeOptions): Int32Array;
  detokenize(ids: Int32Array | number[]): string;
  /** The raw vocabulary entry of a token (byte-level BPE: its byte-mapped text). */
  tokenText(id: number): string;
}

export interface NativeAddon {
  setErrorClass(cls: typeof EngineError): void;
  measureBandwidth(threads: number, megabytes: number, repeats?: number): number;
  kernels: string;
  /** Every error code the native side can raise (equal to the keys of ENGINE_ERROR_CODES). */
  errorCodes: readonly string[];
  loadEngine(options: Record<string, unknown>): Promise<NativeEngineHandle>;
  /** Reads only the tokenizer metadata of a GGUF (synchronous). MODEL_NOT_FOUND / MODEL_CORRUPT /
   *  UNSUPPORTED_ARCHITECTURE. */
  loadTokenizer(path: string): NativeTokenizerHandle;
  /** Kernel set of the GGUF block types (native/src/quant): scalar, avx2 or avx512 (TL_QUANT_KERNELS forces one). */
  quantKernels: string;
  /** f32 rows (`data.length / cols` of them) to GGUF blocks of `type` (ggml's name in any case: 'q4_K', 'Q6_K',
   *  'q8_0', 'f16', ...; every type the engine runs). `cols` must be whole blocks of the type. EngineError
   *  INVALID_ARGUMENT otherwise. */
  quantizeRows(type: string, data: Float32Array, cols: number): Uint8Array;
  /** GGUF blocks of `type` (rows of `cols` elements, back to back) to f32: exactly the values the blocks encode. */
  dequantizeRows(type: string, bytes: Uint8Array, cols: number): Float32Array;
  /** The GGUF header and tensor infos of `path` (the weights are never read). MODEL_NOT_FOUND / MODEL_CORRUPT. */
  inspectModel(path: string): ModelInspection;
}

function findAddon(): string {
  // From src/engine (tsx) or dist/src/engine (compiled), walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', 'tuneloop_native.node');
    if (existsSync(candidate)) return candidate;
    dir = resolve(dir, '..');
  }
  throw new Error('tuneloop native addon not found: run `npm install` (it builds build/Release/tuneloop_native.node)');
}

let addon: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!addon) {
    const require = createRequire(import.meta.url);
    addon = require(findAddon()) as NativeAddon;
    addon.setErrorClass(EngineError);
  }
  return addon;
}
