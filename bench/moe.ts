// Mixture-of-Experts benchmark (issue 17): tuneloop vs llama.cpp on a Qwen3-30B-A3B-shaped and a DeepSeek-V2-Lite-
// shaped Q4_K_M file, cut to a few layers so they fit this machine, alternated in one run.
//
//   npm run bench:moe                                  4 layers, 5 rounds, prompt 256, decode 64, EP/TP delays 0,50,200
//   npm run bench:moe -- --quick                       2 layers, 2 rounds, prompt 64, decode 16, delays 0,200 (smoke run)
//   npm run bench:moe -- --only qwen3moe --layers 6 --rounds 3
//   npm run bench:moe -- --files-only                  write the cached files and stop
//   other flags: --threads 2 --prompt-tokens --decode-tokens --streams 16 --delays --vocab --skip-parallel
//   --skip-streams --json PATH (default bench/.cache/moe/last-run.json)
//
// Files (generated once into bench/.cache/moe/, seed 1, by tools/lib/synthetic-arch.ts, Q4_K_M as llama.cpp mixes it:
// Q6_K head and use_more_bits attn_v / ffn_down, Q4_K elsewhere, Q5_0 / Q8_0 where a row is not whole 256-blocks):
//   qwen3moe   Qwen3-30B-A3B's per-layer shape: dim 2048, 32 heads / 4 KV heads of 128, QK-norm, 128 experts of 768,
//              top-8, softmax + renorm, rope theta 1e6, rms eps 1e-6 (dense ffn 6144 is written, unused, as the
//              converter does). The real model has 48 layers.
//   deepseek2  DeepSeek-V2-Lite's: dim 2048, 16 heads, no q_lora, kv_lora 512, nope 128 + rope 64, v 128, 64 routed
//              experts of 1408, top-6, 2 shared, softmax without renorm, layer 0 a dense FFN of 10944, YaRN factor 40
//              over 4096 with mscale_all_dim 0.707. The real model has 27 layers (1 dense + 26 MoE).
// Layers: --layers (default 4: ~0.35 GB of Q4_K experts per Qwen layer; both engines hold a file at once, the EP/TP
// section loads it again, and 24 GiB and two cores shared with builds leave room for about this much; files take
// ~1 minute a layer to generate in TypeScript). Vocabulary: synthetic (GPT-2 BPE), scaled with the cut, real vocab x
// layers / real layers (151,936 x 4/48 -> 12,800 for Qwen3): the real 151,936-row Q6_K head would be 255 MB read per
// token, twice the four MoE layers' active bytes, and the benchmark would measure the head, not the MoE layers.
// Scaled, the head's share of a token's bytes is the real model's (~10-15%).
//
// Measurements, each round with fresh prompts and the engines in alternating order (medians over --rounds):
//   prefill   a --prompt-tokens prompt (default 256), tokens/s up to the first sampled token;
//   decode    --decode-tokens greedy tokens (default 64, EOS ignored) after an 8-token prompt: (n - 1) / time from the
//             first token to the last, the same definition for both engines.
// Both engines run --threads threads (default 2) and an f16 KV cache (llama.cpp's default; flash attention 'auto').
//
// Roofline of decode: the weight bytes one token reads, *active* parameters only — every dense tensor (attention,
// router, shared experts, a dense layer's FFN, the output head), one embedding row, and expert_used / expert_count of
// each layer's routed-expert tensors (a single stream's token reads exactly top-k experts). tuneloop reports it
// (info.moe.activeWeightBytesPerToken, as the weights are held); for llama.cpp it is computed the same way from the
// file's tensor types. ceiling tok/s = bandwidth / bytes; the table gives measured / ceiling. The KV cache read at
// these short positions (<100 tokens) is under 1% of a token's bytes and is left out. Bandwidth: a read probe
// (bench/lib/read-probe.ts) and tuneloop's own (native().measureBandwidth), before every round, best reading of the
// run; if an engine's decode moves more bytes per second than that, the table says PROBE LOW and uses that figure.
//
// Expert parallel (EP) vs tensor parallel (TP), tuneloop only: EP 1 (one rank, --threads threads) against EP 2 (two
// ranks of --threads/2, each owning half of every layer's routed experts; one all-to-all per MoE layer and step)
// with injected all-to-all delays (alltoallDelayUs, --delays), and TP 2 with the same all-reduce delays
// (allreduceDelayUs; 2 per layer and step): does seed 001's TP collapse (the single stream pays the delay per layer
// per token) appear for EP? Single-stream decode tok/s and 16-stream aggregate decode tok/s, and rank 0's share of
// its busy time in the collective. A layout the engine refuses prints "refused [n]" and the message under the table.
// TP 2 halves every expert's 768 / 1408 columns, which are not whole 256-blocks of Q4_K: the engine refuses that, and
// the TP reference then runs on the same file dequantized to bf16 (weights 'bf16'), against its own one-rank row.
//
// Concurrency: --streams (16) greedy generations of --decode-tokens each, 8-token prompts, started together, vs 1:
// aggregate decode tok/s = every stream's tokens after its first, over the time from the earliest first token to the
// latest last one (for 1 stream: its decode rate). tuneloop: concurrent engine.generate() (first and last token times
// from its timings); llama.cpp: one context of
// 16 sequences, evaluated concurrently (node-llama-cpp batches them). With MoE a 16-token step reads the union of
// the 16 tokens' experts (~64% of Qwen's 128 for random routing), so the aggregate gain is far below 16x.
//
// KV bytes per token (f16 cache, all layers): the engine's info.kvBytesPerToken / kvBytesPerTokenMha when it reports
// them, else computed (marked "computed"): GQA 2 x kv_heads x head_dim; MLA kv_lora + rope (the latent and the shared
// RoPE key), against MHA's heads x (nope + rope + v). Bar: MLA below a quarter of MHA for the DeepSeek shape.
//
// Output: Markdown tables on stdout, progress on stderr, and JSON (--json, default bench/.cache/moe/last-run.json).
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LlamaContext, Token } from 'node-llama-cpp';
import { Engine, native, type EngineOptions } from '../src/engine/index.js';
import { LlamaCppOracle } from '../tests/helpers/llama-cpp.js';
import { REPO_ROOT } from '../tests/helpers/shared.js';
import { ggmlTensorBytes, writeGgufFile } from '../tools/lib/gguf-writer.js';
import { buildSyntheticArch, MOE_PRESETS, type ArchSpec } from '../tools/lib/synthetic-arch.js';
import { Xoshiro128 } from '../tools/lib/synthetic-llama.js';
import { readBandwidth } from './lib/read-probe.js';

const CACHE = join(REPO_ROOT, 'bench', '.cache', 'moe');

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    layers: { type: 'string' },
    rounds: { type: 'string' },
    only: { type: 'string' },
    threads: { type: 'string', default: '2' },
    'prompt-tokens': { type: 'string' },
    'decode-tokens': { type: 'string' },
    streams: { type: 'string', default: '16' },
    delays: { type: 'string' },
    vocab: { type: 'string' },
    'skip-parallel': { type: 'boolean', default: false },
    'skip-streams': { type: 'boolean', default: false },
    'files-only': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
  strict: true,
});

const QUICK = values.quick;
const int = (name: string, raw: string | undefined, dflt: number): number => {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got '${raw}'`);
  return n;
};
const LAYERS = int('layers', values.layers, QUICK ? 2 : 4);
const ROUNDS = int('rounds', values.rounds, QUICK ? 2 : 5);
const THREADS = int('threads', values.threads, 2);
const PROMPT = int('prompt-tokens', values['prompt-tokens'], QUICK ? 64 : 256);
const DECODE = int('decode-tokens', values['decode-tokens'], QUICK ? 16 : 64);
const STREAMS = int('streams', values.streams, 16);
const SHORT = 8;
const DELAYS = (values.delays ?? (QUICK ? '0,200' : '0,50,200')).split(',').map((d) => {
  const n = Number(d);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--delays: '${d}' is not a whole number of microseconds`);
  return n;
});
const CONTEXT = Math.max(PROMPT, SHORT) + DECODE + 16;

// ---------------------------------------------------------------------------------------------------------------
// The two shapes.

interface Family {
  key: 'qwen3moe' | 'deepseek2';
  mimics: string;
  realLayers: number;
  realVocab: number;
  spec: (layers: number) => ArchSpec;
}

const FAMILIES: Family[] = [
  {
    key: 'qwen3moe',
    mimics: 'Qwen3-30B-A3B',
    realLayers: 48,
    realVocab: 151936,
    spec: (layers) => ({
      ...MOE_PRESETS['qwen3moe']!.spec,
      mimics: `Qwen3-30B-A3B per-layer shape, ${layers} of 48 layers`,
      dim: 2048,
      nLayers: layers,
      nHeads: 32,
      nKvHeads: 4,
      headDim: 128,
      ffnDim: 6144,
      contextLength: 40960,
      ropeTheta: 1e6,
      rmsEps: 1e-6,
      moe: { nExperts: 128, nExpertsUsed: 8, expertFfnDim: 768, routerSkew: 2 },
    }),
  },
  {
    key: 'deepseek2',
    mimics: 'DeepSeek-V2-Lite',
    realLayers: 27,
    realVocab: 102400,
    spec: (layers) => ({
      ...MOE_PRESETS['deepseek2-lite']!.spec,
      mimics: `DeepSeek-V2-Lite per-layer shape, 1 dense + ${layers - 1} MoE of 27 layers`,
      dim: 2048,
      nLayers: layers,
      nHeads: 16,
      nKvHeads: 1, // MLA is stored as MQA over the latent (the converter's head_count_kv = 1)
      headDim: 192,
      ropeDims: 64,
      ffnDim: 10944,
      contextLength: 163840,
      ropeTheta: 10000,
      rmsEps: 1e-6,
      ropeScaling: { type: 'yarn', factor: 40, originalContext: 4096, betaFast: 32, betaSlow: 1 },
      mla: { qLoraRank: 0, kvLoraRank: 512, qkNopeDim: 128, qkRopeDim: 64, vHeadDim: 128, mscaleAllDim: 0.707 },
      moe: {
        nExperts: 64,
        nExpertsUsed: 6,
        expertFfnDim: 1408,
        routerSkew: 2,
        nShared: 2,
        leadingDense: 1,
        gating: 'softmax',
        normTopK: false,
        weightsScale: 1,
        groups: { count: 1, used: 1 },
      },
    }),
  },
];

/** The synthetic vocabulary: the real one scaled by the layer cut, whole 256s (see the header). */
function vocabFor(f: Family): number {
  if (values.vocab !== undefined) return int('vocab', values.vocab, 0);
  return Math.max(1024, Math.ceil((f.realVocab * LAYERS) / f.realLayers / 256) * 256);
}

interface CachedFile {
  file: string;
  bytes: number;
  generateSeconds: number;
  /** Tensor name, shape and GGML type as written: what llama.cpp reads. */
  tensors: { name: string; ne: number[]; type: number; bytes: number }[];
}

function ensureFile(f: Family, spec: ArchSpec, nVocab: number): CachedFile {
  mkdirSync(CACHE, { recursive: true });
  const name = `${f.key}-${spec.nLayers}L-v${nVocab}-q4_k_m`;
  const file = join(CACHE, `${name}.gguf`);
  const meta = join(CACHE, `${name}.json`);
  const build = () => buildSyntheticArch({ spec, fileType: 'q4_k_m', seed: 1, vocab: { tokenizer: 'gpt2', nVocab }, name: `synthetic ${f.key} q4_k_m` });
  const model = build();
  const tensors = model.tensors.map((t) => ({ name: t.name, ne: [...t.ne], type: t.type, bytes: ggmlTensorBytes(t.type, t.ne) ?? NaN }));
  // The spec is part of the sidecar: a file written from another spec (the code changed) is written again.
  const specKey = JSON.stringify(spec);
  if (existsSync(file) && existsSync(meta)) {
    const m = JSON.parse(readFileSync(meta, 'utf8')) as { spec: string; generateSeconds: number };
    if (m.spec === specKey) return { file, bytes: statSync(file).size, generateSeconds: m.generateSeconds, tensors };
  }
  console.error(`writing ${file} (${spec.mimics}, vocab ${nVocab})…`);
  const t0 = performance.now();
  writeGgufFile(`${file}.tmp`, model);
  renameSync(`${file}.tmp`, file);
  const generateSeconds = (performance.now() - t0) / 1000;
  writeFileSync(meta, JSON.stringify({ spec: specKey, generateSeconds }));
  console.error(`  ${(statSync(file).size / 1e9).toFixed(2)} GB in ${generateSeconds.toFixed(0)} s`);
  return { file, bytes: statSync(file).size, generateSeconds, tensors };
}

/** Active weight bytes per token from the file's tensors (see the header): what llama.cpp reads for one token. */
function fileActiveBytes(spec: ArchSpec, tensors: CachedFile['tensors']): number {
  const m = spec.moe!;
  const untied = tensors.some((t) => t.name === 'output.weight');
  let bytes = 0;
  for (const t of tensors) {
    if (t.name === 'token_embd.weight') bytes += untied ? t.bytes / t.ne[1]! : t.bytes;
    else if (/_exps\.weight$/.test(t.name)) bytes += (t.bytes * m.nExpertsUsed) / m.nExperts;
    else bytes += t.bytes;
  }
  return bytes;
}

/** KV-cache bytes per token in all layers with an f16 cache, as computed from the shape (the engine's figure when it
 *  has one replaces it). */
function computedKv(spec: ArchSpec): { kv: number; mha: number } {
  const l = spec.mla;
  if (l === undefined) {
    const gqa = spec.nLayers * 2 * spec.nKvHeads * spec.headDim * 2;
    return { kv: gqa, mha: spec.nLayers * 2 * spec.nHeads * spec.headDim * 2 };
  }
  return { kv: spec.nLayers * (l.kvLoraRank + l.qkRopeDim) * 2, mha: spec.nLayers * spec.nHeads * (l.qkNopeDim + l.qkRopeDim + l.vHeadDim) * 2 };
}

// ---------------------------------------------------------------------------------------------------------------
// Bandwidth.

const bw = { probe: 0, tuneloopProbe: 0 };
function measureBandwidth(): void {
  bw.probe = Math.max(bw.probe, readBandwidth(CACHE, THREADS, 1024, 5));
  bw.tuneloopProbe = Math.max(bw.tuneloopProbe, native().measureBandwidth(THREADS, 1024, 5));
}

// ---------------------------------------------------------------------------------------------------------------
// The engines.

interface Sample {
  prefill: number;
  decode: number;
}
interface StreamRun {
  streams: number;
  /** Aggregate decode tok/s (tokens after every stream's first, over the time from then to the last token). */
  decode: number;
}

interface Runner {
  name: string;
  activeBytes: number;
  run(long: number[], short: number[]): Promise<Sample>;
  streams(prompts: number[][]): Promise<StreamRun | string>;
  close(): Promise<void>;
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ');

/** Aggregate decode rate of concurrent streams, each given by its first and last token times (ms, one clock) and
 *  its token count: the tokens after each stream's first, over the time from the earliest first token to the latest
 *  last one. With 8-token prompts every stream's prefill shares the first step, so the window is the decode phase;
 *  for one stream it is exactly the single-stream decode rate. */
function aggregateDecode(streams: { first: number; last: number; tokens: number }[]): number {
  const t0 = Math.min(...streams.map((s) => s.first)),
    t1 = Math.max(...streams.map((s) => s.last));
  const n = streams.reduce((a, s) => a + s.tokens - 1, 0);
  return t1 > t0 ? (n / (t1 - t0)) * 1000 : NaN;
}

/** Concurrent greedy generations on a tuneloop engine. The engine's own timings place each stream's first and last
 *  token (streamed chunks can hold several tokens: text held back for a whole UTF-8 character), all generate()
 *  calls being made in the same tick. */
async function tuneloopStreams(engine: Engine, prompts: number[][]): Promise<StreamRun> {
  const t0 = performance.now();
  const results = await Promise.all(prompts.map((tokens) => engine.generate({ tokens, maxTokens: DECODE, temperature: 0, stopAtEos: false }).result));
  const spans = results.map((r) => {
    if (r.usage.completionTokens !== DECODE) throw new Error(`tuneloop stopped after ${r.usage.completionTokens} tokens`);
    const first = t0 + r.timings.timeToFirstTokenMs;
    return { first, last: first + r.timings.decodeMs, tokens: r.usage.completionTokens };
  });
  return { streams: prompts.length, decode: aggregateDecode(spans) };
}

function tuneloopOptions(file: string, extra: Partial<EngineOptions> = {}): EngineOptions {
  return { model: file, weights: 'native', threads: THREADS, kvDtype: 'f16', contextLength: CONTEXT, ...extra };
}

async function warm(engine: Engine): Promise<void> {
  await engine.generate({ tokens: [1, 2, 3, 4, 5, 6, 7, 8], maxTokens: 4, temperature: 0, stopAtEos: false }).result;
}

async function tuneloopRunner(file: string): Promise<{ runner: Runner; engine: Engine }> {
  const engine = await Engine.load(tuneloopOptions(file));
  await warm(engine);
  const moe = engine.info.moe;
  if (moe === undefined) throw new Error('tuneloop loaded the file as a dense model (info.moe absent)');
  const runner: Runner = {
    name: 'tuneloop',
    activeBytes: moe.activeWeightBytesPerToken,
    async run(long, short) {
      const a = await engine.generate({ tokens: long, maxTokens: 1, temperature: 0, stopAtEos: false }).result;
      const b = await engine.generate({ tokens: short, maxTokens: DECODE, temperature: 0, stopAtEos: false }).result;
      if (a.usage.cachedPromptTokens > 0 || b.usage.cachedPromptTokens > 0) throw new Error('prefix cache hit: prompts must be fresh');
      if (b.usage.completionTokens !== DECODE) throw new Error('tuneloop stopped early');
      return { prefill: a.timings.prefillTokensPerS, decode: b.timings.decodeTokensPerS };
    },
    streams: (prompts) => tuneloopStreams(engine, prompts),
    close: () => engine.close(),
  };
  return { runner, engine };
}

async function llamaCppRunner(file: string, activeBytes: number): Promise<Runner> {
  const oracle = await LlamaCppOracle.load(file, {
    threads: THREADS,
    contextSize: CONTEXT,
    batchSize: Math.min(512, PROMPT),
    kvCacheType: 'F16',
    flashAttention: 'auto',
  });
  await oracle.decode([1, 2, 3, 4, 5, 6, 7, 8], 4); // warm-up
  let multi: LlamaContext | undefined;
  return {
    name: 'llama.cpp',
    activeBytes,
    async run(long, short) {
      const a = await oracle.decode(long, 1);
      const b = await oracle.decode(short, DECODE);
      return { prefill: a.prefillTokensPerS, decode: b.decodeTokensPerS };
    },
    async streams(prompts) {
      // A second context of `streams` sequences on the same model; node-llama-cpp batches concurrent evaluations.
      try {
        multi ??= await oracle.model.createContext({
          contextSize: SHORT + DECODE + 16,
          sequences: STREAMS,
          batchSize: 512,
          threads: THREADS,
          flashAttention: 'auto',
          experimentalKvCacheKeyType: 'F16',
          experimentalKvCacheValueType: 'F16',
        });
      } catch (e) {
        return `refused: ${errorText(e)}`;
      }
      const ctx = multi;
      const seqs = prompts.map(() => ctx.getSequence());
      try {
        const spans = await Promise.all(
          prompts.map(async (p, i) => {
            let first = NaN,
              last = NaN,
              tokens = 0;
            for await (const _ of seqs[i]!.evaluate(p as Token[], { temperature: 0, yieldEogToken: true })) {
              last = performance.now();
              if (tokens++ === 0) first = last;
              if (tokens >= DECODE) break;
            }
            return { first, last, tokens };
          }),
        );
        return { streams: prompts.length, decode: aggregateDecode(spans) };
      } finally {
        for (const s of seqs) await s.dispose();
      }
    },
    async close() {
      await multi?.dispose();
      await oracle.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function printTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  const text = [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n');
  console.log(text);
  return text;
}

interface EngineRow {
  family: string;
  engine: string;
  /** Active weight bytes per token, or the refusal. */
  activeBytes: number;
  samples: Sample[];
  streams: { one: StreamRun[]; many: StreamRun[]; refused?: string };
  refused?: string;
}

interface ParallelRow {
  family: string;
  layout: string;
  delayUs: number;
  /** Weights policy: 'native' (the file's types) or 'bf16' for the TP reference (see the TP rows). */
  weights: 'native' | 'bf16';
  single?: number;
  multi?: number;
  collectiveShare?: number | undefined;
  refused?: string;
}

async function main(): Promise<void> {
  const families = FAMILIES.filter((f) => values.only === undefined || values.only === f.key);
  if (families.length === 0) throw new Error(`--only must be qwen3moe or deepseek2, got '${values.only}'`);
  const load = loadavg()[0]!;
  if (load > 0.5) console.log(`WARNING: load average ${load.toFixed(2)}: other work is running; llama.cpp's spinning threads suffer most on a shared core.`);

  const files = new Map<string, { spec: ArchSpec; nVocab: number; cached: CachedFile }>();
  for (const f of families) {
    const spec = f.spec(LAYERS);
    const nVocab = vocabFor(f);
    files.set(f.key, { spec, nVocab, cached: ensureFile(f, spec, nVocab) });
  }

  if (values['files-only']) return;
  measureBandwidth();
  console.log(
    `${LAYERS} layers, ${THREADS} threads, ${ROUNDS} rounds, prompt ${PROMPT}, decode ${DECODE} after ${SHORT} tokens, ${STREAMS} streams; kernels ${Engine.kernels()}; ` +
      `read bandwidth, first probe ${bw.probe.toFixed(1)} GB/s (tuneloop's ${bw.tuneloopProbe.toFixed(1)})`,
  );
  for (const f of families) {
    const { spec, nVocab, cached } = files.get(f.key)!;
    console.log(
      `${f.key}: ${spec.mimics}; synthetic vocabulary ${nVocab} (real ${f.realVocab}); ${cached.file}: ${(cached.bytes / 1e9).toFixed(2)} GB, generated in ${cached.generateSeconds.toFixed(0)} s`,
    );
  }

  const rng = new Xoshiro128(12345);
  const rows: EngineRow[] = [];
  const parallel: ParallelRow[] = [];
  const kv: { family: string; kv: number; mha: number; source: string }[] = [];

  for (const f of families) {
    const { spec, nVocab, cached } = files.get(f.key)!;
    const fresh = (n: number): number[] => Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 3 + rng.nextInt(nVocab - 3)));
    const fileBytes = fileActiveBytes(spec, cached.tensors);
    const runners: Runner[] = [];
    const computed = computedKv(spec);
    let kvRow = { family: f.key, kv: computed.kv, mha: computed.mha, source: 'computed' };
    let tuneloopServes = false;
    try {
      try {
        const { runner, engine } = await tuneloopRunner(cached.file);
        runners.push(runner);
        tuneloopServes = true;
        const i = engine.info;
        if (i.kvBytesPerToken !== undefined && i.kvBytesPerTokenMha !== undefined)
          kvRow = { family: f.key, kv: i.kvBytesPerToken, mha: i.kvBytesPerTokenMha, source: 'engine' };
      } catch (e) {
        rows.push({ family: f.key, engine: 'tuneloop', activeBytes: fileBytes, samples: [], streams: { one: [], many: [] }, refused: errorText(e) });
        console.error(`${f.key} tuneloop refused: ${errorText(e)}`);
      }
      runners.push(await llamaCppRunner(cached.file, fileBytes));
      kv.push(kvRow);
      const by = runners.map((runner) => {
        const row: EngineRow = { family: f.key, engine: runner.name, activeBytes: runner.activeBytes, samples: [], streams: { one: [], many: [] } };
        return { runner, row };
      });
      for (let round = 0; round < ROUNDS; round++) {
        measureBandwidth();
        const long = fresh(PROMPT),
          short = fresh(SHORT);
        // Alternate which engine goes first, so a drift in the machine's speed does not favour one.
        const order = round % 2 === 0 ? by : [...by].reverse();
        for (const x of order) {
          const t = await x.runner.run(long, short);
          x.row.samples.push(t);
          process.stderr.write(`${f.key} round ${round + 1}/${ROUNDS} ${x.runner.name}: prefill ${t.prefill.toFixed(1)}, decode ${t.decode.toFixed(1)} tok/s\n`);
        }
      }
      if (!values['skip-streams']) {
        // 1 vs STREAMS concurrent streams, alternated, min(ROUNDS, 3) rounds.
        for (let round = 0; round < Math.min(ROUNDS, 3); round++) {
          const order = round % 2 === 0 ? by : [...by].reverse();
          for (const x of order) {
            if (x.row.streams.refused !== undefined) continue;
            for (const n of [1, STREAMS]) {
              const r = await x.runner.streams(Array.from({ length: n }, () => fresh(SHORT)));
              if (typeof r === 'string') {
                x.row.streams.refused = r;
                break;
              }
              (n === 1 ? x.row.streams.one : x.row.streams.many).push(r);
              process.stderr.write(`${f.key} streams round ${round + 1} ${x.runner.name}: ${n} stream(s) ${r.decode.toFixed(1)} tok/s aggregate\n`);
            }
          }
        }
      }
      rows.push(...by.map((x) => x.row));
    } finally {
      for (const r of runners) await r.close();
    }

    if (values['skip-parallel']) continue;
    // Expert parallel vs tensor parallel, tuneloop alone (both engines above are closed: one copy in memory).
    const half = Math.max(1, Math.floor(THREADS / 2));
    const measureLayout = async (layout: string, delayUs: number, weights: 'native' | 'bf16', opts: Partial<EngineOptions>): Promise<ParallelRow> => {
      const row: ParallelRow = { family: f.key, layout, delayUs, weights };
      parallel.push(row);
      if (!tuneloopServes) {
        row.refused = 'tuneloop does not serve this file (above)';
        return row;
      }
      let engine: Engine;
      try {
        engine = await Engine.load(tuneloopOptions(cached.file, { ...opts, weights }));
      } catch (e) {
        row.refused = errorText(e);
        console.error(`${f.key} ${layout} delay ${delayUs}: refused: ${row.refused}`);
        return row;
      }
      try {
        await warm(engine);
        const singles: number[] = [];
        const before = engine.stats();
        for (let r = 0; r < ROUNDS; r++) {
          const res = await engine.generate({ tokens: fresh(SHORT), maxTokens: DECODE, temperature: 0, stopAtEos: false }).result;
          singles.push(res.timings.decodeTokensPerS);
        }
        await new Promise((r) => setTimeout(r, 20)); // the last step's counters land after its tokens
        const after = engine.stats();
        row.single = median(singles);
        const busy = (after.tensorParallel.rankBusySeconds[0] ?? 0) - (before.tensorParallel.rankBusySeconds[0] ?? 0);
        const coll =
          (opts.epDegree ?? 1) > 1
            ? (after.moe?.allToAllSeconds[0] ?? 0) - (before.moe?.allToAllSeconds[0] ?? 0)
            : (opts.tpDegree ?? 1) > 1
              ? (after.tensorParallel.rankAllreduceSeconds[0] ?? 0) - (before.tensorParallel.rankAllreduceSeconds[0] ?? 0)
              : 0;
        // Busy seconds exclude the collective's (bench/serving.ts's share, the same way).
        row.collectiveShare = busy + coll > 0 ? coll / (busy + coll) : undefined;
        if (!values['skip-streams'])
          row.multi = (
            await tuneloopStreams(
              engine,
              Array.from({ length: STREAMS }, () => fresh(SHORT)),
            )
          ).decode;
        process.stderr.write(`${f.key} ${layout} delay ${delayUs} us: 1 stream ${row.single.toFixed(1)}, ${STREAMS} streams ${row.multi?.toFixed(1) ?? '-'} tok/s\n`);
      } catch (e) {
        row.refused = errorText(e);
      } finally {
        await engine.close();
      }
      return row;
    };
    await measureLayout('EP 1', 0, 'native', {});
    for (const d of DELAYS) await measureLayout('EP 2', d, 'native', { epDegree: 2, threadsPerRank: half, alltoallDelayUs: d });
    // TP 2 cuts every expert's 768 (Qwen) or 1408 (DeepSeek) columns in half: not whole 256-blocks of Q4_K, which the
    // engine refuses. Then the TP reference runs on the same file dequantized to bf16 (any column splits), against its own TP 1.
    const tp0 = await measureLayout('TP 2', DELAYS[0]!, 'native', { tpDegree: 2, threadsPerRank: half, allreduceDelayUs: DELAYS[0]! });
    if (tp0.refused === undefined) {
      for (const d of DELAYS.slice(1)) await measureLayout('TP 2', d, 'native', { tpDegree: 2, threadsPerRank: half, allreduceDelayUs: d });
    } else if (tuneloopServes && /block/.test(tp0.refused)) {
      await measureLayout('TP 1', 0, 'bf16', {});
      for (const d of DELAYS) await measureLayout('TP 2', d, 'bf16', { tpDegree: 2, threadsPerRank: half, allreduceDelayUs: d });
    }
  }
  measureBandwidth();

  // ---- The tables.
  let achieved = 0;
  for (const r of rows) for (const s of r.samples) achieved = Math.max(achieved, (s.decode * r.activeBytes) / 1e9);
  const probed = Math.max(bw.probe, bw.tuneloopProbe);
  const bandwidth = Math.max(probed, achieved);
  const notes: string[] = [];
  notes.push(
    `read bandwidth, best of ${ROUNDS * families.length + 2} probes: ${bw.probe.toFixed(1)} GB/s (tuneloop's probe ${bw.tuneloopProbe.toFixed(1)}); best decode moved ${achieved.toFixed(1)} GB/s of active weights` +
      (achieved > probed ? ` — PROBE LOW: the roofline uses ${bandwidth.toFixed(1)} GB/s` : ''),
  );
  console.log(`\n${notes[0]}\n\n### Decode and prefill (${LAYERS} layers, ${THREADS} threads, medians of ${ROUNDS} alternated rounds)\n`);
  // Refusals go under their table as numbered notes (an engine's message is long); the cell names the note.
  const refusals: string[] = [];
  const refusedCell = (why: string): string => {
    let i = refusals.indexOf(why);
    if (i < 0) i = refusals.push(why) - 1;
    return `refused [${i + 1}]`;
  };
  /** The notes added since `from`, printed and returned. */
  const printRefusals = (from: number): string => {
    const text = refusals
      .slice(from)
      .map((r, i) => `[${from + i + 1}] refused: ${r}`)
      .join('\n');
    if (text !== '') console.log(text);
    return text;
  };
  const f1 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(1));
  const out: string[] = [];
  const mainRows: string[][] = [];
  const json: unknown[] = [];
  for (const r of rows) {
    const ceiling = (bandwidth * 1e9) / r.activeBytes;
    if (r.refused !== undefined) {
      mainRows.push([r.family, r.engine, (r.activeBytes / 1e6).toFixed(0), refusedCell(r.refused), '', '', '', ceiling.toFixed(1), '', '', '', '']);
      json.push({ ...r, ceiling });
      continue;
    }
    const pre = median(r.samples.map((s) => s.prefill)),
      dec = median(r.samples.map((s) => s.decode));
    const peer = rows.find((o) => o.family === r.family && o.engine !== r.engine && o.refused === undefined);
    // Ratio of the medians, and in brackets the median of the per-round ratios: the two engines of one round run back
    // to back, so the paired figure is the steadier one when the machine's load changes between rounds.
    const ratio = (mine: number, g: (s: Sample) => number): string => {
      if (!peer || r.engine !== 'tuneloop') return '';
      const paired = median(r.samples.map((s, i) => g(s) / g(peer.samples[i]!)));
      return `${(mine / median(peer.samples.map(g))).toFixed(2)}x (${paired.toFixed(2)}x)`;
    };
    const one = median(r.streams.one.map((s) => s.decode)),
      many = median(r.streams.many.map((s) => s.decode));
    mainRows.push([
      r.family,
      r.engine,
      (r.activeBytes / 1e6).toFixed(0),
      f1(pre),
      ratio(pre, (s) => s.prefill),
      f1(dec),
      ratio(dec, (s) => s.decode),
      ceiling.toFixed(1),
      `${((100 * dec) / ceiling).toFixed(0)}%`,
      r.streams.refused !== undefined ? refusedCell(r.streams.refused.replace(/^refused: /, '')) : f1(one),
      f1(many),
      Number.isFinite(one) && Number.isFinite(many) ? `${(many / one).toFixed(1)}x` : '',
    ]);
    json.push({ ...r, median: { prefill: pre, decode: dec, streamsOne: one, streamsMany: many }, ceiling, roofline: dec / ceiling });
  }
  out.push(
    printTable(
      [
        'model',
        'engine',
        'active MB/token',
        'prefill tok/s',
        'vs peer (paired)',
        'decode tok/s',
        'vs peer (paired)',
        'ceiling tok/s',
        'of ceiling',
        '1-stream agg',
        `${STREAMS}-stream agg`,
        'gain',
      ],
      mainRows,
    ),
  );
  out.push(printRefusals(0));
  // What 16 streams can gain at most: a step of N tokens reads the union of their experts. With E experts, top-k
  // and routing spread as random, N tokens touch E (1 - (1 - k/E)^N) experts of each layer.
  for (const f of families) {
    const { spec, cached } = files.get(f.key)!;
    const m = spec.moe!;
    const one = fileActiveBytes(spec, cached.tensors);
    const experts = cached.tensors.filter((t) => /_exps\.weight$/.test(t.name)).reduce((a, t) => a + t.bytes, 0);
    const touched = 1 - (1 - m.nExpertsUsed / m.nExperts) ** STREAMS;
    const step = one + experts * (touched - m.nExpertsUsed / m.nExperts);
    const line = `${f.key}: a step of ${STREAMS} tokens touches ~${(touched * m.nExperts).toFixed(0)} of ${m.nExperts} experts per layer (uniform routing; the router here is skewed, so somewhat fewer) and reads ~${(step / 1e6).toFixed(0)} MB vs ${(one / 1e6).toFixed(0)} MB for one token: the weight-read bound on the ${STREAMS}-stream gain is ~${((STREAMS * one) / step).toFixed(1)}x.`;
    console.log(line);
    out.push(line);
  }

  if (parallel.length > 0) {
    console.log(`\n### Expert parallel vs tensor parallel (tuneloop, ${THREADS} threads in all; decode tok/s, ${ROUNDS} single-stream runs' median)\n`);
    const from = refusals.length;
    // Each row against the one-rank row of the same weights (EP 1 native, or TP 1 bf16).
    const isBase = (p: ParallelRow) => p.layout === 'EP 1' || p.layout === 'TP 1';
    const base = new Map(parallel.filter(isBase).map((p) => [`${p.family} ${p.weights}`, p]));
    const prow = parallel.map((p) => {
      const b = base.get(`${p.family} ${p.weights}`);
      const delay = isBase(p) ? '-' : String(p.delayUs);
      if (p.refused !== undefined) return [p.family, p.layout, p.weights, delay, refusedCell(p.refused), '', '', '', ''];
      const vs = (x: number | undefined, y: number | undefined) => (x !== undefined && y !== undefined && y > 0 ? `${(x / y).toFixed(2)}x` : '');
      return [
        p.family,
        p.layout,
        p.weights,
        delay,
        f1(p.single),
        vs(p.single, b?.single),
        f1(p.multi),
        vs(p.multi, b?.multi),
        p.collectiveShare === undefined ? '-' : `${(100 * p.collectiveShare).toFixed(0)}%`,
      ];
    });
    out.push(
      printTable(['model', 'layout', 'weights', 'delay us', '1-stream tok/s', 'vs 1 rank', `${STREAMS}-stream agg`, 'vs 1 rank', 'collective share (rank 0)'], prow),
    );
    out.push(printRefusals(from));
  }

  console.log('\n### KV cache bytes per token (f16, all layers)\n');
  out.push(
    printTable(
      ['model', 'KV bytes/token', 'MHA bytes/token', 'ratio', 'source'],
      kv.map((k) => [
        k.family,
        String(k.kv),
        String(k.mha),
        (k.kv / k.mha).toFixed(3),
        (k.source === 'engine' ? "engine's info" : 'computed (engine does not report it)') +
          (k.family === 'deepseek2' ? (k.kv < k.mha / 4 ? '; bar < 0.25 met' : '; bar < 0.25 MISSED') : ''),
      ]),
    ),
  );
  console.log(
    `\n"vs peer" = tuneloop / llama.cpp, medians' ratio (median of the per-round ratios); ceiling = ${bandwidth.toFixed(1)} GB/s / active weight bytes per token; "of ceiling" = decode / ceiling; ` +
      `"N-stream agg" = aggregate decode tok/s of N concurrent greedy streams (tokens after each stream's first, over the time from the first first token to the last token); gain = ${STREAMS}-stream / 1-stream.`,
  );
  const jsonPath = values.json ?? join(CACHE, 'last-run.json');
  writeFileSync(
    jsonPath,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        options: { layers: LAYERS, rounds: ROUNDS, threads: THREADS, prompt: PROMPT, decode: DECODE, streams: STREAMS, delays: DELAYS },
        files: Object.fromEntries(
          [...files].map(([k, v]) => [k, { file: v.cached.file, bytes: v.cached.bytes, generateSeconds: v.cached.generateSeconds, nVocab: v.nVocab, spec: v.spec }]),
        ),
        bandwidth: { ...bw, achieved, used: bandwidth },
        rows: json,
        parallel,
        kv,
        tables: out,
      },
      null,
      2,
    ),
  );
  console.log(`JSON: ${jsonPath}`);
}

await main();
