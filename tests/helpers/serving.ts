// Helpers for the serving tests (tests/engine/serving-*.test.ts): small synthetic models, prompts, polling,
// and checks on engine.stats() snapshots.
import { expect } from 'vitest';
import {
  Engine,
  EngineError,
  type EngineOptions,
  type EngineStats,
  type GenerateRequest,
  type GenerationResult,
  type HistogramSnapshot,
} from '../../src/engine/index.js';
import type { LlamaShape } from '../../tools/lib/synthetic-llama.js';

/** 128-dim, 2 layers, GQA 4/2, FFN 256: TP-2 divisible, a decode step is a fraction of a millisecond. */
export const SERVE_SHAPE: LlamaShape = {
  dim: 128,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  ffnDim: 256,
  nVocab: 320,
  contextLength: 512,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  tiedEmbeddings: false,
};

/** The same with a tied output head (no output.weight). */
export const SERVE_SHAPE_TIED: LlamaShape = { ...SERVE_SHAPE, tiedEmbeddings: true };

/** A deterministic prompt of `len` token ids, distinct per `variant` from the second token on. */
export function promptOf(variant: number, len: number, nVocab = SERVE_SHAPE.nVocab): number[] {
  const out = [1];
  let x = (variant * 2654435761 + 12345) >>> 0;
  for (let i = 1; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out.push(3 + ((x >>> 8) % (nVocab - 3)));
  }
  return out;
}

/** A greedy request of exactly `maxTokens` tokens (end-of-generation ignored). */
export function greedy(tokens: number[], maxTokens: number, extra: Partial<GenerateRequest> = {}): GenerateRequest {
  return { tokens, maxTokens, temperature: 0, stopAtEos: false, ...extra };
}

/** Load with one compute thread unless told otherwise (the test machine has two cores, shared). */
export function load(model: string, options: Omit<EngineOptions, 'model'> = {}): Promise<Engine> {
  return Engine.load({ threads: 1, ...options, model });
}

export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** Poll `pred` until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(pred: () => boolean, timeoutMs = 1000, everyMs = 2): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (pred()) return true;
    if (performance.now() > until) return false;
    await sleep(everyMs);
  }
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejectionOf(p: Promise<unknown>): Promise<EngineError> {
  try {
    const v = await p;
    throw new Error(`expected a rejection but it resolved with ${JSON.stringify(v).slice(0, 200)}`);
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    return e;
  }
}

/** The error a synchronous call throws (fails the test if it returns). */
export function thrownBy(f: () => unknown): EngineError {
  try {
    f();
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError to be thrown');
}

export function histMean(h: HistogramSnapshot): number {
  return h.count > 0 ? h.sum / h.count : 0;
}

/** Structural invariants of a histogram snapshot. */
export function expectHistogramConsistent(name: string, h: HistogramSnapshot): void {
  expect(h.counts.length, `${name}: one count per bound plus +Inf`).toBe(h.bounds.length + 1);
  expect(
    h.counts.reduce((a, b) => a + b, 0),
    `${name}: counts sum to count`,
  ).toBe(h.count);
  for (let i = 1; i < h.bounds.length; i++) expect(h.bounds[i]!, `${name}: bounds increase`).toBeGreaterThan(h.bounds[i - 1]!);
  expect(h.sum, `${name}: sum`).toBeGreaterThanOrEqual(0);
}

/** Blocks add up, whatever the moment. */
export function expectBlocksAddUp(s: EngineStats): void {
  const kv = s.kvCache;
  expect(kv.blocksUsed + kv.blocksCached + kv.blocksFree, `used ${kv.blocksUsed} + cached ${kv.blocksCached} + free ${kv.blocksFree}`).toBe(kv.blocksTotal);
  expect(kv.blocksUsed).toBeGreaterThanOrEqual(0);
}

/** After every request ended: no block is referenced, and the counts add up. Polls briefly (stats are published
 *  after each step of the engine loop, which may come just after the last result). */
export async function expectNoLeakedBlocks(engine: Engine, timeoutMs = 1000): Promise<void> {
  await waitFor(() => engine.stats().kvCache.blocksUsed === 0 && engine.stats().requests.running === 0, timeoutMs);
  const s = engine.stats();
  expect(s.kvCache.blocksUsed, 'blocks still referenced after every request ended').toBe(0);
  expect(s.requests.running).toBe(0);
  expect(s.requests.waiting).toBe(0);
  expectBlocksAddUp(s);
}

/** Run each request alone, one after the other: the reference output for batch-invariance checks. */
export async function runAlone(engine: Engine, requests: GenerateRequest[]): Promise<GenerationResult[]> {
  const out: GenerationResult[] = [];
  for (const r of requests) out.push(await engine.generate(r).result);
  return out;
}

export function cosine(a: Float32Array, b: Float32Array, from = 0, to = a.length): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = from; i < to; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

/** max |a - b| / max |a|. */
export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  expect(b.length).toBe(a.length);
  let scale = 0,
    diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / scale;
}

export function argmaxRows(logits: Float32Array, nVocab: number): number[] {
  const out: number[] = [];
  for (let r = 0; r * nVocab < logits.length; r++) {
    let best = 0;
    for (let i = 1; i < nVocab; i++) if (logits[r * nVocab + i]! > logits[r * nVocab + best]!) best = i;
    out.push(best);
  }
  return out;
}
