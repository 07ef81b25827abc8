// Tuner effectiveness: how close does the closed loop get to the best hot-knob setting, and with how many trials?
//
//   npm run bench:tuner
//   npm run bench:tuner -- --cycles 3 --trial-seconds 4 --threads 1 --workload steady --json bench-tuner.json
//   npm run bench:tuner -- --quick          (a small grid, for a smoke run)
//
// For each workload (steady: 16 closed-loop clients; bursty: phases alternating 2 and 32 clients) we measure the
// goodput (output tokens/s of requests meeting every SLO, measured over HTTP by a load client in its own process) of:
//   defaults  — the config defaults, as shipped;
//   tuner     — the live settings after K tuner cycles started from the defaults, and again from a mis-set start
//               (maxBatchSize 1), each cycle = monitor windows under the workload, analyze, optimize, shadow-verify,
//               auto-apply (hot knobs), watch;
//   grid      — every combination of the hot knobs below, one trial each (vLLM's auto-tune script and Triton Model
//               Analyzer's brute-force mode search this way); the top three are re-measured and the best median kept.
// The figures come from a final shoot-out: the defaults, each tuner run's final settings and the grid's best, measured
// on one server in --rounds interleaved rounds (order rotating), so drift of a shared machine falls on all alike.
// "Measurements" counts trials: one per grid point; for the tuner, one per shadow verification it ran.
// An apply is SLO-violating when the applied setting's measured SLO attainment is below the one before it and
// below 99%. The goal from the issue: ≥ 95% of the grid's best goodput with ≤ 25% of its measurements, and zero
// SLO-violating applies. The SLO here is tighter than the shipped defaults so that settings differ in goodput.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { runLoad } from '../src/loadgen/index.js';
import type { SchedulerSettings } from '../src/engine/types.js';
import { DEFAULT_CONFIG } from '../src/config/schema.js';
import { startTunedServer, type TunedServer } from '../tests/tuner/harness.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '3' },
    'trial-seconds': { type: 'string', default: '5' },
    repeats: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '5' },
    threads: { type: 'string', default: '1' },
    tokens: { type: 'string', default: '32' },
    quick: { type: 'boolean', default: false },
    workload: { type: 'string' },
    json: { type: 'string' },
    // Internal: this file re-run as the load client's own process.
    'client-of': { type: 'string' },
    phases: { type: 'string' },
    seconds: { type: 'string' },
    model: { type: 'string' },
  },
});
const CYCLES = Number(values.cycles);
const TRIAL_S = Number(values['trial-seconds']);
const TOKENS = Number(values.tokens);
const REPEATS = Number(values.repeats);
const ROUNDS = Number(values.rounds);
const SLO = { ttftP99Seconds: 0.5, interTokenP99Seconds: 0.1, e2eP99Seconds: 1.0, errorRateBudget: 0.01 };

interface Phase {
  clients: number;
  share: number;
}
interface Workload {
  name: string;
  /** Closed-loop phases (clients, share of a trial), run in order. */
  phases: Phase[];
}
const WORKLOADS: Workload[] = [
  { name: 'steady', phases: [{ clients: 16, share: 1 }] },
  {
    name: 'bursty',
    phases: [
      { clients: 2, share: 0.25 },
      { clients: 32, share: 0.25 },
      { clients: 2, share: 0.25 },
      { clients: 32, share: 0.25 },
    ],
  },
].filter((w) => !values.workload || w.name === values.workload);

const GRID: Record<'maxBatchSize' | 'maxBatchTokens' | 'maxQueueDelayMs' | 'queueGrowThreshold', number[]> = values.quick
  ? { maxBatchSize: [1, 8, 32], maxBatchTokens: [256], maxQueueDelayMs: [2], queueGrowThreshold: [32] }
  : { maxBatchSize: [1, 2, 4, 8, 16, 32], maxBatchTokens: [64, 512], maxQueueDelayMs: [0, 4], queueGrowThreshold: [4, 32] };

function gridPoints(): Partial<SchedulerSettings>[] {
  const out: Partial<SchedulerSettings>[] = [];
  for (const maxBatchSize of GRID.maxBatchSize)
    for (const maxBatchTokens of GRID.maxBatchTokens)
      for (const maxQueueDelayMs of GRID.maxQueueDelayMs)
        for (const queueGrowThreshold of GRID.queueGrowThreshold) out.push({ maxBatchSize, maxBatchTokens, maxQueueDelayMs, queueGrowThreshold });
  return out;
}

interface Trial {
  goodput: number;
  throughput: number;
  attainment: number;
  requests: number;
}

// ---- the load client's process ----
// The client runs apart from the server so that its fetch/SSE work neither steals the server's event loop nor shows up
// as the server's latency: on a 2-core machine the in-process client made the same setting measure 209 and 1005 tok/s.
// One client process serves a whole server's trials (JSON lines on stdin/stdout): a fresh process per trial spent
// each trial's first second with a cold JIT, and its startup stretched the gaps between interleaved trials.
if (values['client-of']) {
  let current: AbortController | undefined;
  const runTrial = async (phases: Phase[], seconds: number): Promise<Trial> => {
    const ac = (current = new AbortController());
    let good = 0,
      all = 0,
      tokensGood = 0,
      tokens = 0,
      wall = 0;
    do {
      for (const p of phases) {
        if (ac.signal.aborted) break;
        // A request still running a second past the e2e objective cannot count as goodput: cut it there instead of
        // waiting out the default 30 s drain (a mis-set grid point would otherwise take minutes per trial).
        const r = await runLoad({
          url: values['client-of']!,
          model: values.model!,
          concurrency: p.clients,
          durationS: Math.max(0.5, (seconds || 6) * p.share),
          outputLen: String(TOKENS),
          ignoreEos: true,
          temperature: 0,
          seed: 1,
          slo: SLO,
          drainTimeoutS: SLO.e2eP99Seconds + 1,
          signal: ac.signal,
        });
        good += r.requests.good;
        all += r.requests.completed + r.requests.failed;
        tokensGood += r.goodput.outputTokensPerS * r.wallSeconds;
        tokens += r.throughput.outputTokensPerS * r.wallSeconds;
        wall += r.wallSeconds;
      }
    } while (seconds === 0 && !ac.signal.aborted); // 0: until told to stop (background traffic while shadows verify)
    return { goodput: tokensGood / wall, throughput: tokens / wall, attainment: all ? good / all : NaN, requests: all };
  };
  let queue = Promise.resolve();
  createInterface({ input: process.stdin })
    .on('line', (line) => {
      const msg = JSON.parse(line) as { stop?: true; phases?: Phase[]; seconds?: number };
      if (msg.stop) return current?.abort();
      queue = queue.then(async () => {
        process.stdout.write(`${JSON.stringify(await runTrial(msg.phases!, msg.seconds!))}\n`);
      });
    })
    .on('close', () => process.exit(0));
}

class LoadClient {
  private readonly child: ChildProcess;
  private readonly waiting: ((t: Trial) => void)[] = [];
  constructor(h: TunedServer) {
    const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--client-of', h.url, '--model', h.config.model.name, '--tokens', String(TOKENS)];
    this.child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.waiting.shift()?.(JSON.parse(line) as Trial));
  }
  /** Run the workload for `seconds` (0: until `stop()`). */
  run(w: Workload, seconds: number): Promise<Trial> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin!.write(`${JSON.stringify({ phases: w.phases, seconds })}\n`);
    });
  }
  stop(): void {
    this.child.stdin!.write('{"stop":true}\n');
  }
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.child.on('exit', () => resolve());
      this.child.stdin!.end();
    });
  }
}
const clients = new Map<TunedServer, LoadClient>();
const clientOf = (h: TunedServer): LoadClient => clients.get(h) ?? clients.set(h, new LoadClient(h)).get(h)!;
async function stopServer(h: TunedServer): Promise<void> {
  await clients.get(h)?.close();
  clients.delete(h);
  await h.stop();
}

/** Run the workload for `seconds` and return the client-side goodput; with `tick`, feed the tuner's monitor. */
async function trial(h: TunedServer, w: Workload, seconds: number, opts: { tick?: boolean } = {}): Promise<Trial> {
  const timer = opts.tick ? setInterval(() => void h.tuned.tuner.monitorTick('bench'), 1500) : undefined;
  try {
    return await clientOf(h).run(w, seconds);
  } finally {
    if (timer) {
      clearInterval(timer);
      await h.tuned.tuner.monitorTick('bench');
    }
  }
}

/** Warm the client process's JIT and the server's both: throughput climbs ~40% over the first 15 s. */
const warmUp = (h: TunedServer, w: Workload): Promise<Trial> => trial(h, w, 10);

/** The median trial of REPEATS (by goodput), for re-measuring the grid's front-runners: single trials on a shared
 *  2-core machine scatter by tens of percent, and the single-trial winner is biased upward (winner's curse). */
async function measured(h: TunedServer, w: Workload): Promise<Trial> {
  const ts: Trial[] = [];
  for (let i = 0; i < REPEATS; i++) ts.push(await trial(h, w, TRIAL_S));
  ts.sort((a, b) => a.goodput - b.goodput);
  return ts[Math.floor(ts.length / 2)]!;
}

async function server(start: Partial<SchedulerSettings>): Promise<TunedServer> {
  return startTunedServer({
    config: {
      // One load client from one address: per-key rate limits would measure the limiter, not the settings.
      server: { rateLimitPerMinute: 0, maxConcurrentStreamsPerKey: 0 },
      model: { ...DEFAULT_CONFIG.model, threads: Number(values.threads) },
      scheduler: { ...DEFAULT_CONFIG.scheduler, ...start },
      slo: SLO,
      tuner: { ...DEFAULT_CONFIG.tuner, watchIntervalSeconds: 1, watchChecks: 2, analysisWindowMinutes: 1 },
      verify: { ...DEFAULT_CONFIG.verify, shadowShare: 0.2, minSamples: 16 },
    },
  });
}

interface TunerResult {
  start: string;
  verifications: number;
  applies: { version: number; settings: SchedulerSettings; attainment: number; violating: boolean }[];
  final: SchedulerSettings;
}

async function runTuner(w: Workload, startName: string, start: Partial<SchedulerSettings>): Promise<TunerResult> {
  const h = await server(start);
  try {
    await warmUp(h, w);
    let before = await trial(h, w, TRIAL_S);
    const applies: TunerResult['applies'] = [];
    for (let c = 0; c < CYCLES; c++) {
      // Fresh windows for this cycle: the analysis looks at the last minute only.
      await trial(h, w, 6, { tick: true });
      let started = false;
      try {
        const out = await h.tuned.tuner.runNow('api', { name: 'bench', role: 'admin' });
        started = out.proposals.length > 0;
      } catch (e) {
        process.stderr.write(`cycle ${c + 1}: ${(e as Error).message}\n`);
      }
      if (started) {
        // Keep the workload running while the shadows verify (they need mirrored traffic) and through the watch.
        const bg = clientOf(h).run(w, 0);
        const timer = setInterval(() => void h.tuned.tuner.monitorTick('bench'), 1500);
        await h.tuned.tuner.idle();
        await new Promise((r) => setTimeout(r, 2500)); // the watch window (2 checks, 1 s apart)
        clearInterval(timer);
        clientOf(h).stop();
        await bg;
      }
      const live = h.store.currentSettings()!;
      if (live.source === 'tuner' && !applies.some((a) => a.version === live.version)) {
        const after = await trial(h, w, TRIAL_S);
        applies.push({
          version: live.version,
          settings: live.settings.scheduler,
          attainment: after.attainment,
          violating: after.attainment < before.attainment && after.attainment < 0.99,
        });
        before = after;
      }
      process.stderr.write(`  ${w.name}/${startName}: cycle ${c + 1}: live v${live.version} ${JSON.stringify(live.settings.scheduler)}\n`);
    }
    const verifications = h.store.listProposals({ limit: 1000 }).filter((p) => p.evidence !== null).length;
    return { start: startName, verifications, applies, final: h.store.currentSettings()!.settings.scheduler };
  } finally {
    await stopServer(h);
  }
}

async function runGrid(w: Workload): Promise<{ best: Partial<SchedulerSettings>; bestTrial: Trial; trials: number }> {
  const h = await server({});
  try {
    await warmUp(h, w);
    const points = gridPoints();
    const singles: { s: Partial<SchedulerSettings>; t: Trial }[] = [];
    for (const [i, s] of points.entries()) {
      h.engine.reconfigure(s);
      const t = await trial(h, w, TRIAL_S);
      singles.push({ s, t });
      process.stderr.write(`  ${w.name}/grid ${i + 1}/${points.length}: ${JSON.stringify(s)} goodput ${t.goodput.toFixed(0)} tok/s\n`);
    }
    // The single-trial winner is biased upward (winner's curse): re-measure the top three the same way as every other
    // reported figure and keep the best median, so the grid's best is a fair, not an inflated, target.
    singles.sort((a, b) => b.t.goodput - a.t.goodput);
    let best: { s: Partial<SchedulerSettings>; t: Trial } | undefined;
    for (const c of singles.slice(0, 3)) {
      h.engine.reconfigure(c.s);
      const t = await measured(h, w);
      process.stderr.write(`  ${w.name}/grid re-measure ${JSON.stringify(c.s)}: ${t.goodput.toFixed(0)} tok/s\n`);
      if (!best || t.goodput > best.t.goodput) best = { s: c.s, t };
    }
    return { best: best!.s, bestTrial: best!.t, trials: points.length };
  } finally {
    await stopServer(h);
  }
}

/** The final comparison: every contender's settings measured on one server in ROUNDS interleaved rounds (the order
 *  rotating each round), so the machine's drift over the bench's half hour falls on all of them alike. Figures
 *  measured in separate phases minutes apart differed by a third for the same settings; interleaved, they do not.
 *  Returns each contender's trials and, per contender, the median over rounds of its goodput / the grid best's
 *  goodput in the same round. */
async function shootout(w: Workload, contenders: Partial<SchedulerSettings>[], gridIndex: number): Promise<{ trials: Trial[][]; ofBest: number[] }> {
  const h = await server({});
  try {
    await warmUp(h, w);
    const trials: Trial[][] = contenders.map(() => []);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < contenders.length; k++) {
        const i = (k + r) % contenders.length;
        h.engine.reconfigure(contenders[i]!);
        trials[i]!.push(await trial(h, w, TRIAL_S));
      }
      process.stderr.write(`  ${w.name}/shoot-out round ${r + 1}/${ROUNDS}: ${trials.map((t) => t[r]!.goodput.toFixed(0)).join(' ')} tok/s\n`);
    }
    const ofBest = trials.map((ts) => median(ts.map((t, r) => t.goodput / trials[gridIndex]![r]!.goodput)));
    return { trials, ofBest };
  } finally {
    await stopServer(h);
  }
}

const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};
const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
async function main(): Promise<void> {
  const rows: string[] = [];
  const json: unknown[] = [];
  for (const w of WORKLOADS) {
    process.stderr.write(`workload ${w.name}\n`);
    const grid = await runGrid(w);
    const tuners = [await runTuner(w, 'defaults', {}), await runTuner(w, 'maxBatchSize=1', { maxBatchSize: 1 })];
    const contenders = [{ ...DEFAULT_CONFIG.scheduler }, ...tuners.map((t) => t.final), grid.best];
    const gridIndex = contenders.length - 1;
    const final = await shootout(w, contenders, gridIndex);
    const cell = (i: number) =>
      `${fmt(median(final.trials[i]!.map((t) => t.goodput)))} | ${pct(final.ofBest[i]!)} | ${pct(median(final.trials[i]!.map((t) => t.attainment)))}`;
    const knobs = (s: Partial<SchedulerSettings>) => `${s.maxBatchSize}/${s.maxBatchTokens}/${s.maxQueueDelayMs}/${s.queueGrowThreshold}`;
    rows.push(`| ${w.name} | defaults | ${cell(0)} | 0 | – | ${knobs(contenders[0]!)} |`);
    for (const [k, t] of tuners.entries()) {
      rows.push(
        `| ${w.name} | tuner from ${t.start}, ${CYCLES} cycles | ${cell(k + 1)} | ${t.verifications} (${pct(t.verifications / grid.trials)}) | ${t.applies.length} / ${t.applies.filter((a) => a.violating).length} | ${knobs(t.final)} |`,
      );
    }
    rows.push(`| ${w.name} | grid best | ${cell(gridIndex)} | ${grid.trials} (+${3 * REPEATS} re-measures) | – | ${knobs(grid.best)} |`);
    json.push({ workload: w, grid, tuner: tuners, shootout: { contenders, ...final } });
  }
  const table = [
    `SLO: ttft ≤ ${SLO.ttftP99Seconds} s, inter-token ≤ ${SLO.interTokenP99Seconds} s, e2e ≤ ${SLO.e2eP99Seconds} s; ${TOKENS} tokens per request; ` +
      `trials ${TRIAL_S} s; figures: medians over ${ROUNDS} interleaved rounds on one server; engine threads ${values.threads}`,
    'knobs: maxBatchSize/maxBatchTokens/maxQueueDelayMs/queueGrowThreshold; "of grid best": median over rounds of goodput / grid best\'s goodput in the same round',
    '',
    '| workload | setting | goodput tok/s | of grid best | SLO attainment | measurements | applies / SLO-violating | hot knobs |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  console.log(table);
  if (values.json) writeFileSync(values.json, JSON.stringify({ slo: SLO, cycles: CYCLES, trialSeconds: TRIAL_S, rounds: ROUNDS, results: json }, null, 2));
}

// Last: main() uses the classes and constants above (a class is not hoisted).
if (!values['client-of']) await main();
