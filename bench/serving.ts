// Serving benchmark: what continuous batching and tensor parallelism buy on this machine.
//
//   npm run bench:serving                         (synthetic TinyLlama-1.1B shape in int8, 2 threads; both tables)
//   npm run bench:serving -- --shape small        (a few-MB synthetic model: a quick end-to-end check)
//   npm run bench:serving -- --streams 1,16 --tokens 64 --delays 0,1000 --table concurrency|tp
//   npm run bench:serving -- --model path/to/model.gguf --weights int4 --threads 2
//   npm run bench:engine                          (bench/engine.ts, its arguments after --, then this with defaults)
//
// Table 1 (concurrency): C streams (1, 4, 16, 64) start together, each with its own ~16-token prompt (no shared
// prefix), and each generates N tokens greedily. Every streamed chunk is stamped on arrival. "Decode" aggregate
// tokens/s counts the tokens that arrive after every stream has its first token, over the time from then to the
// last token (prefill excluded); "end-to-end" counts all tokens from submission. Inter-token latencies (ITL) are the
// gaps between a stream's consecutive tokens in that decode phase; "worst gap" is the longest over the whole run (a
// stream admitted early waits while later arrivals are prefilled). Mean batch is the engine's batch-size histogram
// over the run (prefill steps included). Ceilings: one decode step reads every weight once whatever the batch, so the memory-bandwidth
// ceiling of C streams is C x (bandwidth / bytes per token), until compute binds; the prefill rate (tokens/s of one
// long prompt, a matmul-bound pass) stands for the compute ceiling.
//
// Table 2 (tensor parallel): tpDegree 1 (threadsPerRank = threads) vs tpDegree 2 (threadsPerRank = threads / 2),
// with injected all-reduce delays (allreduceDelayUs, microseconds per all-reduce; 2 all-reduces per layer per
// forward pass): single-stream decode tokens/s, 16-stream aggregate decode tokens/s, and each rank's share of its
// forward-pass time spent in all-reduce (stats().tensorParallel). TP1 has no all-reduce, so the delay does not
// apply to it; its row is the concurrency table's engine.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, native, type EngineOptions, type EngineStats, type WeightsPolicy } from '../src/engine/index.js';
import { REPO_ROOT } from '../tests/helpers/shared.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    shape: { type: 'string', default: 'tinyllama-1.1b' },
    weights: { type: 'string', default: 'int8' },
    threads: { type: 'string', default: '2' },
    streams: { type: 'string', default: '1,4,16,64' },
    tokens: { type: 'string', default: '32' },
    'prompt-tokens': { type: 'string', default: '16' },
    'prefill-tokens': { type: 'string', default: '128' },
    delays: { type: 'string', default: '0,200,1000' },
    'tp-streams': { type: 'string', default: '16' },
    table: { type: 'string', default: 'concurrency,tp' },
  },
  strict: true,
});

const SHAPE_FILES: Record<string, string> = {
  'tinyllama-1.1b': 'tinyllama-1.1b-f16.gguf',
  small: 'small-f16.gguf',
};

function ints(s: string, flag: string): number[] {
  const out = s.split(',').map((x) => Number(x.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < 0)) throw new Error(`--${flag} expects comma-separated integers, got '${s}'`);
  return out;
}

function ensureModel(): string {
  if (values.model) return values.model;
  const name = SHAPE_FILES[values.shape];
  if (!name) throw new Error(`--shape expects one of ${Object.keys(SHAPE_FILES).join(', ')}, got '${values.shape}'`);
  const dir = join(REPO_ROOT, 'bench', '.cache');
  const file = join(dir, name);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    console.log(`writing ${file} (synthetic ${values.shape} shape, random weights)…`);
    execFileSync(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'tools', 'make-synthetic-model.ts'), '--shape', values.shape, '--type', 'f16', '--seed', '1', '--out', file],
      { stdio: 'inherit' },
    );
  }
  return file;
}

// Same accounting as bench/engine.ts: decode streams every weight except the embedding table (gathered one row per
// token) — unless the output head is tied to it, in which case the output matmul streams it anyway.
function totalParams(e: Engine): number {
  const i = e.info,
    hd = i.dim / i.nHeads;
  const layer = 2 * i.dim * i.nHeads * hd + 2 * i.dim * i.nKvHeads * hd + 3 * i.dim * i.ffnDim;
  return i.nLayers * layer + 2 * i.nVocab * i.dim;
}

function bytesPerDecodeToken(e: Engine, tied: boolean): number {
  const total = Object.values(e.info.weightBytes).reduce((a, b) => a + b, 0);
  if (tied) return total;
  return total - (total * (e.info.nVocab * e.info.dim)) / totalParams(e);
}

/** Tied output head: the file has no output.weight tensor (tensor names sit in the header, before the data). */
function isTied(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(16 << 20, fstatSync(fd).size));
    readSync(fd, buf, 0, buf.length, 0);
    // GGUF strings are a u64 length then the bytes: this does not match blk.N.attn_output.weight.
    const name = Buffer.from('output.weight');
    const key = Buffer.alloc(8 + name.length);
    key.writeBigUInt64LE(BigInt(name.length));
    name.copy(key, 8);
    return !buf.includes(key);
  } finally {
    closeSync(fd);
  }
}

/** Distinct prompts across the whole run, so the prefix cache never hits. */
let promptSeed = 12345;
function nextPrompt(len: number, nVocab: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < len; i++) {
    promptSeed = (Math.imul(promptSeed, 1103515245) + 12345) >>> 0;
    out.push(3 + (promptSeed % (nVocab - 3)));
  }
  return out;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

interface RunResult {
  streams: number;
  tokens: number;
  e2eTps: number;
  decodeTps: number;
  decodeTokens: number;
  decodeSeconds: number;
  itlP50Ms: number;
  itlP99Ms: number;
  /** Longest gap between a stream's tokens, the decode phase or not (a newcomer's prefill stalls running streams). */
  worstGapMs: number;
  ttftMaxMs: number;
  meanBatch: number;
  preemptions: number;
  /** Per rank: all-reduce seconds / (busy + all-reduce seconds) over the run. */
  allreduceShare: number[];
  /** All ranks' all-reduces (the engine counts each rank's) per engine step. */
  allreducesPerStep: number;
}

async function runStreams(engine: Engine, streams: number, tokens: number, promptTokens: number): Promise<RunResult> {
  const nVocab = engine.info.nVocab;
  const prompts = Array.from({ length: streams }, () => nextPrompt(promptTokens, nVocab));
  const before = engine.stats();
  const t0 = performance.now();
  const stampsPerStream: number[][] = [];
  const runs = prompts.map(async (tokensIn, s) => {
    const gen = engine.generate({ tokens: tokensIn, maxTokens: tokens, temperature: 0, stopAtEos: false });
    const stamps: number[] = [];
    stampsPerStream[s] = stamps;
    for await (const chunk of gen) {
      const t = performance.now();
      const k = chunk.tokens.length;
      if (k === 0) continue;
      // Several tokens in one chunk: steps whose events were delivered together (or text held back); spread them
      // evenly since the previous arrival rather than counting zero-length gaps.
      const prev = stamps.length ? stamps[stamps.length - 1]! : t;
      for (let i = 1; i <= k; i++) stamps.push(prev + ((t - prev) * i) / k);
    }
    const res = await gen.result;
    if (res.usage.completionTokens !== tokens) throw new Error(`stream ${s}: ${res.usage.completionTokens} tokens, expected ${tokens}`);
  });
  await Promise.all(runs);
  const t1 = performance.now();
  // The last step's counters are published after its tokens are delivered: let them land.
  await new Promise((r) => setTimeout(r, 20));
  const after = engine.stats();

  const firsts = stampsPerStream.map((s) => s[0]!);
  const tAllFirst = Math.max(...firsts);
  const tEnd = Math.max(...stampsPerStream.map((s) => s[s.length - 1]!));
  let decodeTokens = 0,
    total = 0;
  const gaps: number[] = [];
  let worstGap = 0;
  for (const s of stampsPerStream) {
    total += s.length;
    for (let i = 0; i < s.length; i++) {
      if (s[i]! > tAllFirst) decodeTokens++;
      if (i === 0) continue;
      const gap = s[i]! - s[i - 1]!;
      worstGap = Math.max(worstGap, gap);
      if (s[i - 1]! >= tAllFirst) gaps.push(gap);
    }
  }
  gaps.sort((a, b) => a - b);
  const decodeSeconds = (tEnd - tAllFirst) / 1000;
  const dSize = { sum: after.batches.size.sum - before.batches.size.sum, count: after.batches.size.count - before.batches.size.count };
  return {
    streams,
    tokens: total,
    e2eTps: total / ((t1 - t0) / 1000),
    decodeTps: decodeSeconds > 0 ? decodeTokens / decodeSeconds : NaN,
    decodeTokens,
    decodeSeconds,
    itlP50Ms: quantile(gaps, 0.5),
    itlP99Ms: quantile(gaps, 0.99),
    worstGapMs: worstGap,
    ttftMaxMs: tAllFirst - t0,
    meanBatch: dSize.count > 0 ? dSize.sum / dSize.count : NaN,
    preemptions: after.batches.preemptions - before.batches.preemptions,
    allreduceShare: allreduceShares(before, after),
    allreducesPerStep: (after.tensorParallel.allreduces - before.tensorParallel.allreduces) / Math.max(1, after.batches.steps - before.batches.steps),
  };
}

function allreduceShares(before: EngineStats, after: EngineStats): number[] {
  const b = after.tensorParallel.rankBusySeconds,
    a = after.tensorParallel.rankAllreduceSeconds;
  return b.map((busy, r) => {
    const busyD = busy - (before.tensorParallel.rankBusySeconds[r] ?? 0);
    const arD = (a[r] ?? 0) - (before.tensorParallel.rankAllreduceSeconds[r] ?? 0);
    return busyD + arD > 0 ? arD / (busyD + arD) : 0;
  });
}

/** CPU time stolen by the hypervisor (other guests on these cores), from /proc/stat; undefined where unavailable. */
function cpuTimes(): { steal: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { steal: f[7] ?? 0, total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

async function warmUp(engine: Engine, promptTokens: number): Promise<void> {
  // First touches of scratch buffers and the KV pool; larger batches grow scratch in their (excluded) prefill.
  await runStreams(engine, 2, 2, promptTokens);
}

async function main(): Promise<void> {
  const model = ensureModel();
  const weights = values.weights as WeightsPolicy;
  const threads = Number(values.threads);
  const streamList = ints(values.streams, 'streams');
  const tokens = Number(values.tokens);
  const promptTokens = Number(values['prompt-tokens']);
  const prefillTokens = Number(values['prefill-tokens']);
  const delays = ints(values.delays, 'delays');
  const tpStreams = Number(values['tp-streams']);
  const tables = new Set(values.table.split(',').map((s) => s.trim()));
  const maxStreams = Math.max(...streamList, tables.has('tp') ? tpStreams : 1);
  if (!tables.has('concurrency') && !tables.has('tp')) throw new Error(`--table expects concurrency and/or tp, got '${values.table}'`);

  const blockTokens = 16;
  const perSeqBlocks = Math.ceil((promptTokens + tokens + 2) / blockTokens) + 1;
  const base: EngineOptions = {
    model,
    weights,
    threads,
    // Room for every stream at once (no preemption), and for the prefill-rate prompt.
    kvCacheBlocks: Math.max(maxStreams * perSeqBlocks, Math.ceil((prefillTokens + 8) / blockTokens)) + 8,
    scheduler: {
      maxBatchSize: Math.max(64, maxStreams),
      maxBatchTokens: Math.max(4096, maxStreams * promptTokens, prefillTokens),
      maxQueueDelayMs: 2,
      queueGrowThreshold: 32,
      maxQueueLength: 4096,
    },
  };

  const cpu0 = cpuTimes(),
    load0 = loadavg()[0]!;
  const bw = native().measureBandwidth(threads, 1024, 3);
  const started = performance.now();
  console.log(`kernels: ${Engine.kernels()}; memory read bandwidth (${threads} threads): ${bw.toFixed(1)} GB/s`);
  console.log(`model: ${model} as ${weights}; ${threads} threads; ${promptTokens}-token prompts; ${tokens} tokens per stream; greedy`);

  const tp1 = await Engine.load({ ...base, tpDegree: 1, threadsPerRank: threads });
  let tp1Single: RunResult | undefined, tp1Multi: RunResult | undefined;
  try {
    const info = tp1.info;
    const tied = isTied(model);
    const bytes = bytesPerDecodeToken(tp1, tied);
    const roofline = (bw * 1e9) / bytes;
    console.log(
      `${info.name}: dim ${info.dim}, ${info.nLayers} layers, ${info.nHeads}/${info.nKvHeads} heads, FFN ${info.ffnDim}, vocab ${info.nVocab}; ` +
        `${(bytes / 1e9).toFixed(3)} GB read per decode step; load ${(info.loadMs / 1000).toFixed(1)} s`,
    );
    await warmUp(tp1, promptTokens);

    if (tables.has('concurrency')) {
      // Compute ceiling stand-in: one long prompt, prefill tokens/s.
      const pre = await tp1.generate({ tokens: nextPrompt(prefillTokens, info.nVocab), maxTokens: 1, temperature: 0, stopAtEos: false }).result;
      const prefillTps = pre.timings.prefillTokensPerS;
      const results: RunResult[] = [];
      for (const c of streamList) {
        const r = await runStreams(tp1, c, tokens, promptTokens);
        results.push(r);
        if (c === 1) tp1Single = r;
        if (c === tpStreams) tp1Multi = r;
      }
      const single = results.find((r) => r.streams === 1)?.decodeTps ?? NaN;
      const rows = results.map((r) => [
        String(r.streams),
        f1(r.meanBatch),
        f1(r.e2eTps),
        f1(r.decodeTps),
        Number.isFinite(single) ? `${(r.decodeTps / single).toFixed(2)}x` : '-',
        f1(r.itlP50Ms),
        f1(r.itlP99Ms),
        f1(r.worstGapMs),
        f1(r.ttftMaxMs),
        `${f1(r.streams * roofline)} (${pct(r.decodeTps / (r.streams * roofline))})`,
        `${f1(prefillTps)} (${pct(r.decodeTps / prefillTps)})`,
        String(r.preemptions),
      ]);
      console.log(`\n### Concurrent streams (tp 1, ${threads} threads, ${weights})\n`);
      printTable(
        [
          'streams',
          'mean batch',
          'e2e agg tok/s',
          'decode agg tok/s',
          'x single-stream',
          'p50 ITL ms',
          'p99 ITL ms',
          'worst gap ms',
          'TTFT last stream ms',
          'bandwidth ceiling C x roofline (share)',
          'compute ceiling = prefill tok/s (share)',
          'preempt',
        ],
        rows,
      );
      const conc = results.filter((r) => r.streams > 1).map((r) => `${r.streams} streams: ${(r.decodeTps / single).toFixed(1)}x`);
      console.log(
        `\nConclusion: aggregate decode vs single-stream (${f1(single)} tok/s, ${pct(single / roofline)} of the ${f1(roofline)} tok/s ` +
          `bandwidth roofline): ${conc.join('; ')}.`,
      );
    }

    if (tables.has('tp')) {
      tp1Single ??= await runStreams(tp1, 1, tokens, promptTokens);
      tp1Multi ??= await runStreams(tp1, tpStreams, tokens, promptTokens);
    }
  } finally {
    await tp1.close();
  }

  if (tables.has('tp')) {
    const half = Math.max(1, Math.floor(threads / 2));
    const rows: string[][] = [];
    const fmtShares = (s: number[]) => (s.length > 1 ? s.map(pct).join(' / ') : '-');
    rows.push([
      '1',
      String(threads),
      '-',
      f1(tp1Single!.decodeTps),
      '1.00x',
      f1(tp1Multi!.decodeTps),
      '1.00x',
      f1(tp1Multi!.decodeTps / tp1Single!.decodeTps) + 'x',
      '-',
      '-',
      '-',
      '-',
    ]);
    const tp2: { delay: number; single: RunResult; multi: RunResult }[] = [];
    for (const delay of delays) {
      let e: Engine;
      try {
        e = await Engine.load({ ...base, tpDegree: 2, threadsPerRank: half, allreduceDelayUs: delay });
      } catch (err) {
        console.log(`\ntp 2 not possible on this model: ${(err as Error).message}`);
        break;
      }
      try {
        await warmUp(e, promptTokens);
        const single = await runStreams(e, 1, tokens, promptTokens);
        const multi = await runStreams(e, tpStreams, tokens, promptTokens);
        tp2.push({ delay, single, multi });
        rows.push([
          '2',
          String(half),
          String(delay),
          f1(single.decodeTps),
          `${(single.decodeTps / tp1Single!.decodeTps).toFixed(2)}x`,
          f1(multi.decodeTps),
          `${(multi.decodeTps / tp1Multi!.decodeTps).toFixed(2)}x`,
          `${(multi.decodeTps / single.decodeTps).toFixed(1)}x`,
          (single.allreducesPerStep / 2).toFixed(0),
          fmtShares(single.allreduceShare),
          fmtShares(multi.allreduceShare),
          `${(((single.allreducesPerStep / 2) * delay) / 1000).toFixed(1)} ms`,
        ]);
      } finally {
        await e.close();
      }
    }
    console.log(`\n### Tensor parallel (${threads} threads in all, ${weights}; decode tok/s)\n`);
    printTable(
      [
        'tp',
        'threads/rank',
        'all-reduce delay us',
        '1-stream tok/s',
        'vs TP1',
        `${tpStreams}-stream agg tok/s`,
        'vs TP1',
        `${tpStreams}-stream / 1-stream`,
        'all-reduces/step/rank',
        'all-reduce share 1-stream (rank0 / rank1)',
        `all-reduce share ${tpStreams}-stream`,
        'injected delay/step',
      ],
      rows,
    );
    const parts = tp2.map(
      (t) =>
        `delay ${t.delay}us: TP2 decode ${(t.single.decodeTps / tp1Single!.decodeTps).toFixed(2)}x of TP1 single-stream, ` +
        `${(t.multi.decodeTps / tp1Multi!.decodeTps).toFixed(2)}x at ${tpStreams} streams`,
    );
    if (parts.length) console.log(`\nConclusion: ${parts.join('; ')}.`);
  }
  const cpu1 = cpuTimes();
  const steal = cpu0 && cpu1 && cpu1.total > cpu0.total ? `; CPU steal ${pct((cpu1.steal - cpu0.steal) / (cpu1.total - cpu0.total))}` : '';
  console.log(
    `\n(bench:serving took ${((performance.now() - started) / 1000).toFixed(0)} s; load average at start ${load0.toFixed(2)}` +
      `${steal}: spin-waiting TP ranks and the bandwidth figure suffer most from a busy machine)`,
  );
}

await main();
