// tuneloop vs llama.cpp on llama.cpp's own quantized files: prefill and decode speed, side by side, in one run.
//
//   npm run bench:quant                                   TinyLlama-1.1B shape, F16 -> Q4_K_M Q5_K_M Q6_K Q8_0 Q4_0, + F16, BF16
//   npm run bench:quant -- --presets Q8_0,Q4_K_M --rounds 5
//   npm run bench:quant -- --shape small --ffn 512 --rounds 2 --prompt-tokens 128 --decode-tokens 32   (a quick check)
//
// Files: a synthetic model of the shape (tools/make-synthetic-model.ts, seed 1) in F16 and BF16, and llama.cpp's presets
// made from the F16 file by llama.cpp's own quantizer (tools/llama-quantize), all cached in bench/.cache/quant/.
// tuneloop loads each with weights 'native' (the file's own types; when the engine has no such policy, F16/BF16/Q8_0/Q4_0
// fall back to bf16/bf16/int8/int4 and K-quants are skipped, flagged in the table). llama.cpp runs through node-llama-cpp
// (prebuilt CPU binaries, same thread count, F16 KV cache as llama.cpp defaults; tuneloop gets an f16 KV cache too).
//
// Each round, per file, both engines run the same fresh token sequences (no prefix-cache hits), in alternating order:
//   prefill   a --prompt-tokens prompt (default 512), tokens/s to the first sampled token;
//   decode    --decode-tokens greedy tokens (default 128, EOS ignored) after that prompt ("long") and after an
//             8-token prompt ("short"): (n - 1) / time from the first token to the last, the same definition on both.
// Medians over rounds are reported, with the ratio tuneloop / llama.cpp.
//
// Roofline. Decode reads every weight once per token (the embedding table only one row when the output head is
// untied) plus the KV cache so far. A memory-read probe (AVX-512/AVX2 loads by --threads persistent threads over
// 1 GiB, best of its repeats) runs before every round, and the best reading of the whole run is the bandwidth: this VM
// is shared and its bandwidth drifts by tens of percent. The probe must never read below what an engine achieves; if
// an engine's decode moves more bytes per second than the probe measured, the table says so (PROBE LOW) and that
// figure is used as the bandwidth instead. tuneloop's own probe (native().measureBandwidth) runs beside it and the
// roofline takes the higher of the two.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, WEIGHTS_POLICIES, native, type WeightsPolicy } from '../src/engine/index.js';
import { LlamaCppOracle } from '../tests/helpers/llama-cpp.js';
import { REPO_ROOT } from '../tests/helpers/shared.js';
import { SHAPE_PRESETS, Xoshiro128, type LlamaShape } from '../tools/lib/synthetic-llama.js';
import { inspectGguf, llamaQuantize } from '../tools/llama-quantize/llama-quantize.js';
import { readBandwidth } from './lib/read-probe.js';

const CACHE = join(REPO_ROOT, 'bench', '.cache', 'quant');

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'tinyllama-1.1b' },
    dim: { type: 'string' },
    layers: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    ffn: { type: 'string' },
    vocab: { type: 'string' },
    presets: { type: 'string', default: 'Q4_K_M,Q5_K_M,Q6_K,Q8_0,Q4_0,F16,BF16' },
    rounds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    'prompt-tokens': { type: 'string', default: '512' },
    'decode-tokens': { type: 'string', default: '128' },
    'short-prompt-tokens': { type: 'string', default: '8' },
    engines: { type: 'string', default: 'tuneloop,llama.cpp' },
    'flash-attn': { type: 'string', default: 'auto' },
    json: { type: 'string' },
  },
  strict: true,
});

const int = (name: keyof typeof values): number => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got '${String(values[name])}'`);
  return n;
};
const optInt = (name: keyof typeof values): number | undefined => (values[name] === undefined ? undefined : int(name));

const ROUNDS = int('rounds');
const THREADS = int('threads');
const PROMPT = int('prompt-tokens');
const DECODE = int('decode-tokens');
const SHORT = int('short-prompt-tokens');
const ENGINES = new Set(values.engines.split(','));
const FLASH = values['flash-attn'] === 'auto' ? 'auto' : values['flash-attn'] === 'on';
const ENGINE_HAS_NATIVE = (WEIGHTS_POLICIES as readonly string[]).includes('native');
const NATIVE = 'native' as WeightsPolicy; // a type assertion until the engine's policy list names it
const FALLBACK_POLICY: Record<string, WeightsPolicy> = { F16: 'bf16', BF16: 'bf16', Q8_0: 'int8', Q4_0: 'int4' };

function shape(): { name: string; shape: LlamaShape } {
  const base = SHAPE_PRESETS[values.shape];
  if (base === undefined) throw new Error(`unknown --shape '${values.shape}' (${Object.keys(SHAPE_PRESETS).join(', ')})`);
  const s: LlamaShape = {
    ...base,
    dim: optInt('dim') ?? base.dim,
    nLayers: optInt('layers') ?? base.nLayers,
    nHeads: optInt('heads') ?? base.nHeads,
    nKvHeads: optInt('kv-heads') ?? base.nKvHeads,
    ffnDim: optInt('ffn') ?? base.ffnDim,
    nVocab: optInt('vocab') ?? base.nVocab,
  };
  s.contextLength = Math.max(s.contextLength, PROMPT + DECODE + 16);
  const overridden = JSON.stringify(s) !== JSON.stringify(base);
  const name = overridden ? `${values.shape}-${createHash('sha256').update(JSON.stringify(s)).digest('hex').slice(0, 8)}` : values.shape;
  return { name, shape: s };
}

/** The source files (F16, BF16) and llama.cpp's presets, made once into the cache. */
function ensureFiles(name: string, s: LlamaShape, presets: string[]): Map<string, string> {
  mkdirSync(CACHE, { recursive: true });
  const make = (type: 'f16' | 'bf16'): string => {
    const file = join(CACHE, `${name}-${type}.gguf`);
    if (!existsSync(file)) {
      const args = ['--import', 'tsx', join(REPO_ROOT, 'tools', 'make-synthetic-model.ts'), '--shape', values.shape, '--type', type, '--seed', '1'];
      args.push('--dim', String(s.dim), '--layers', String(s.nLayers), '--heads', String(s.nHeads), '--kv-heads', String(s.nKvHeads));
      args.push('--ffn', String(s.ffnDim), '--vocab', String(s.nVocab), '--ctx', String(s.contextLength), '--out', `${file}.tmp`);
      console.log(`writing ${file}…`);
      execFileSync(process.execPath, args, { stdio: 'inherit' });
      renameSync(`${file}.tmp`, file);
    }
    return file;
  };
  const files = new Map<string, string>();
  for (const p of presets) {
    if (p === 'F16') files.set(p, make('f16'));
    else if (p === 'BF16') files.set(p, make('bf16'));
    else {
      const file = join(CACHE, `${name}-${p}.gguf`);
      if (!existsSync(file)) {
        console.log(`quantizing ${p} with llama.cpp…`);
        llamaQuantize(make('f16'), `${file}.tmp`, p, { threads: THREADS });
        renameSync(`${file}.tmp`, file);
      }
      files.set(p, file);
    }
  }
  return files;
}

// ---------------------------------------------------------------------------------------------------------------
// The memory-read probe (bench/lib/read-probe.ts, shared with bench/moe.ts).

interface Bandwidth {
  probe: number;
  tuneloopProbe: number;
}
function measureBandwidth(into: Bandwidth): void {
  into.probe = Math.max(into.probe, readBandwidth(CACHE, THREADS, 1024, 5));
  into.tuneloopProbe = Math.max(into.tuneloopProbe, native().measureBandwidth(THREADS, 1024, 5));
}

// ---------------------------------------------------------------------------------------------------------------
// One engine's three measurements.

interface Sample {
  prefill: number;
  decodeLong: number;
  decodeShort: number;
}

interface Runner {
  name: string;
  /** Weights policy or note shown in the table. */
  note: string;
  /** Bytes of weights read per decoded token (embedding table excluded when the output head is untied). */
  weightBytesPerToken: number;
  run(long: number[], short: number[]): Promise<Sample>;
  close(): Promise<void>;
}

async function tuneloopRunner(preset: string, file: string, weightBytesPerToken: number): Promise<Runner | string> {
  let weights: WeightsPolicy;
  let note: string;
  if (ENGINE_HAS_NATIVE) {
    weights = NATIVE;
    note = 'native';
  } else if (FALLBACK_POLICY[preset] !== undefined) {
    weights = FALLBACK_POLICY[preset];
    note = `${weights} (no 'native' policy yet)`;
  } else {
    return "skipped: the engine has no 'native' weights policy yet";
  }
  const engine = await Engine.load({ model: file, weights, threads: THREADS, kvDtype: 'f16', contextLength: PROMPT + DECODE + 16 });
  // With a fallback policy the engine's own bytes count, less the embedding table's share.
  let bytes = weightBytesPerToken;
  if (!ENGINE_HAS_NATIVE) {
    const i = engine.info;
    const total = Object.values(i.weightBytes).reduce((a, b) => a + b, 0);
    const hd = i.dim / i.nHeads;
    const params = i.nLayers * (2 * i.dim * i.nHeads * hd + 2 * i.dim * i.nKvHeads * hd + 3 * i.dim * i.ffnDim) + 2 * i.nVocab * i.dim;
    bytes = total - (total * i.nVocab * i.dim) / params;
  }
  await engine.generate({ tokens: [1, 2, 3, 4, 5, 6, 7, 8], maxTokens: 4, temperature: 0, stopAtEos: false }).result; // warm-up
  return {
    name: 'tuneloop',
    note,
    weightBytesPerToken: bytes,
    async run(long, short) {
      const a = await engine.generate({ tokens: long, maxTokens: DECODE, temperature: 0, stopAtEos: false }).result;
      const b = await engine.generate({ tokens: short, maxTokens: DECODE, temperature: 0, stopAtEos: false }).result;
      if (a.usage.cachedPromptTokens > 0 || b.usage.cachedPromptTokens > 0) throw new Error('prefix cache hit: prompts must be fresh');
      if (a.usage.completionTokens !== DECODE || b.usage.completionTokens !== DECODE) throw new Error('tuneloop stopped early');
      return { prefill: a.timings.prefillTokensPerS, decodeLong: a.timings.decodeTokensPerS, decodeShort: b.timings.decodeTokensPerS };
    },
    close: () => engine.close(),
  };
}

async function llamaCppRunner(file: string, weightBytesPerToken: number): Promise<Runner> {
  const oracle = await LlamaCppOracle.load(file, {
    threads: THREADS,
    contextSize: PROMPT + DECODE + 16,
    batchSize: Math.min(512, PROMPT),
    kvCacheType: 'F16',
    flashAttention: FLASH,
  });
  await oracle.decode([1, 2, 3, 4, 5, 6, 7, 8], 4); // warm-up
  return {
    name: 'llama.cpp',
    note: `node-llama-cpp, flash-attn ${String(FLASH)}`,
    weightBytesPerToken,
    async run(long, short) {
      const a = await oracle.decode(long, DECODE);
      const b = await oracle.decode(short, DECODE);
      return { prefill: a.prefillTokensPerS, decodeLong: a.decodeTokensPerS, decodeShort: b.decodeTokensPerS };
    },
    close: () => oracle.close(),
  };
}

// ---------------------------------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const { name, shape: s } = shape();
  const presets = values.presets.split(',').filter((p) => p !== '');
  const files = ensureFiles(name, s, presets);
  const hd = s.dim / s.nHeads;
  // KV bytes read per decoded token at a mean position (f16 K and V, every layer).
  const kvBytesAt = (pos: number): number => s.nLayers * 2 * s.nKvHeads * hd * 2 * pos;
  const kvLong = kvBytesAt(PROMPT + DECODE / 2),
    kvShort = kvBytesAt(SHORT + DECODE / 2);

  const load = loadavg()[0]!;
  if (load > 0.5)
    console.log(
      `WARNING: load average ${load.toFixed(2)}: other work is running. llama.cpp's threads spin at every barrier, so on a shared core its speed collapses (10-100x); benchmark an idle machine.`,
    );
  const bw: Bandwidth = { probe: 0, tuneloopProbe: 0 };
  measureBandwidth(bw);
  console.log(`shape ${name} ${JSON.stringify(s)}; ${THREADS} threads, ${ROUNDS} rounds, prompt ${PROMPT}, decode ${DECODE}, short prompt ${SHORT}`);
  console.log(`kernels: ${Engine.kernels()}; memory read bandwidth, first probe: ${bw.probe.toFixed(1)} GB/s (tuneloop's probe ${bw.tuneloopProbe.toFixed(1)})`);

  const rng = new Xoshiro128(12345);
  const freshTokens = (n: number): number[] => Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 3 + rng.nextInt(s.nVocab - 3)));

  interface Row {
    preset: string;
    engine: string;
    note: string;
    bytesLong: number;
    bytesShort: number;
    samples: Sample[];
  }
  const rows: Row[] = [];
  const skipped: string[] = [];
  for (const preset of presets) {
    const file = files.get(preset)!;
    const tensors = inspectGguf(file).tensors;
    const untied = tensors.some((t) => t.name === 'output.weight');
    const weightBytes = tensors.filter((t) => !(untied && t.name === 'token_embd.weight')).reduce((a, t) => a + t.bytes, 0);
    const runners: Runner[] = [];
    try {
      if (ENGINES.has('tuneloop')) {
        const r = await tuneloopRunner(preset, file, weightBytes);
        if (typeof r === 'string') skipped.push(`${preset} tuneloop: ${r}`);
        else runners.push(r);
      }
      if (ENGINES.has('llama.cpp')) runners.push(await llamaCppRunner(file, weightBytes));
      const byRunner = runners.map((r) => ({ runner: r, samples: [] as Sample[] }));
      for (let round = 0; round < ROUNDS; round++) {
        measureBandwidth(bw);
        const long = freshTokens(PROMPT),
          short = freshTokens(SHORT);
        // Alternate which engine goes first, so a drift in the machine's speed does not favour one.
        const order = round % 2 === 0 ? byRunner : [...byRunner].reverse();
        for (const x of order) {
          const t = await x.runner.run(long, short);
          x.samples.push(t);
          // Progress on stderr: a full run takes many minutes and the table comes only at the end.
          process.stderr.write(
            `${preset} round ${round + 1}/${ROUNDS} ${x.runner.name}: prefill ${t.prefill.toFixed(1)}, decode long ${t.decodeLong.toFixed(1)}, short ${t.decodeShort.toFixed(1)} tok/s\n`,
          );
        }
      }
      for (const x of byRunner) {
        rows.push({
          preset,
          engine: x.runner.name,
          note: x.runner.note,
          bytesLong: x.runner.weightBytesPerToken + kvLong,
          bytesShort: x.runner.weightBytesPerToken + kvShort,
          samples: x.samples,
        });
      }
    } finally {
      for (const r of runners) await r.close();
    }
  }
  measureBandwidth(bw);

  // The roofline takes the best reading of either probe; neither may read below what an engine achieves.
  let achieved = 0;
  for (const r of rows) {
    for (const x of r.samples) achieved = Math.max(achieved, (x.decodeLong * r.bytesLong) / 1e9, (x.decodeShort * r.bytesShort) / 1e9);
  }
  const probed = Math.max(bw.probe, bw.tuneloopProbe);
  const probeLow = achieved > probed;
  const bandwidth = Math.max(probed, achieved);
  console.log(
    `\nmemory read bandwidth, best of ${ROUNDS + 2} probes: ${bw.probe.toFixed(1)} GB/s (tuneloop's probe ${bw.tuneloopProbe.toFixed(1)}); ` +
      `best decode achieved ${achieved.toFixed(1)} GB/s` +
      (probeLow ? ` — PROBE LOW: the probes read below an engine's decode; the roofline uses ${bandwidth.toFixed(1)} GB/s` : ''),
  );

  const table: string[][] = [];
  const json: unknown[] = [];
  for (const r of rows) {
    const pre = median(r.samples.map((x) => x.prefill)),
      dl = median(r.samples.map((x) => x.decodeLong)),
      ds = median(r.samples.map((x) => x.decodeShort));
    const peer = rows.find((o) => o.preset === r.preset && o.engine !== r.engine);
    const ratio = (mine: number, f: (x: Sample) => number) => (peer && r.engine === 'tuneloop' ? `${(mine / median(peer.samples.map(f))).toFixed(2)}x` : '');
    const shareLong = (dl * r.bytesLong) / 1e9 / bandwidth,
      shareShort = (ds * r.bytesShort) / 1e9 / bandwidth;
    table.push([
      r.preset,
      r.engine,
      (r.bytesShort / 1e6).toFixed(r.bytesShort < 1e8 ? 2 : 0),
      pre.toFixed(1),
      ratio(pre, (x) => x.prefill),
      dl.toFixed(1),
      ratio(dl, (x) => x.decodeLong),
      `${(100 * shareLong).toFixed(0)}%`,
      ds.toFixed(1),
      ratio(ds, (x) => x.decodeShort),
      `${(100 * shareShort).toFixed(0)}%`,
      r.note,
    ]);
    json.push({ ...r, median: { prefill: pre, decodeLong: dl, decodeShort: ds }, roofline: { shareLong, shareShort } });
  }
  const head = ['preset', 'engine', 'MB/token', 'prefill tok/s', 'vs peer', 'decode long', 'vs peer', 'roofline', 'decode short', 'vs peer', 'roofline', 'weights'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of table) console.log(line(r));
  for (const s of skipped) console.log(`(${s})`);
  console.log(
    `medians of ${ROUNDS} rounds; "vs peer" = tuneloop / llama.cpp; roofline = decode tok/s x bytes per token (MB/token: weights + f16 KV at the short run's mean position; the long run's KV is counted in its own share) / ${bandwidth.toFixed(1)} GB/s`,
  );
  if (values.json)
    writeFileSync(values.json, JSON.stringify({ shape: s, threads: THREADS, rounds: ROUNDS, bandwidth: { ...bw, achieved, used: bandwidth }, rows: json }, null, 2));
}

await main();
