// Tuner effectiveness: how close does the closed loop get to the best hot-knob setting, and with how many trials?
//
//   npm run bench:tuner
//   npm run bench:tuner -- --cycles 3 --trial-seconds 4 --threads 2 --json bench-tuner.json
//   npm run bench:tuner -- --quick          (a small grid, for a smoke run)
//
// For each workload (steady: 16 closed-loop clients; bursty: phases alternating 2 and 32 clients) we measure the
// goodput (output tokens/s of requests meeting every SLO, measured by the load client over HTTP) of:
//   defaults  — the config defaults, as shipped;
//   tuner     — the live settings after K tuner cycles started from the defaults, and again from a mis-set start
//               (maxBatchSize 1), each cycle = monitor windows under the workload, analyze, optimize, shadow-verify,
//               auto-apply (hot knobs), watch;
//   grid      — every combination of the hot knobs below, one trial each (vLLM's auto-tune script and Triton Model
//               Analyzer's brute-force mode search this way), and the best of them.
// Reported goodputs are the median of --repeats trials (the grid's winner re-measured the same way).
// "Measurements" counts trials: one per grid point; for the tuner, one per shadow verification it ran.
// An apply is SLO-violating when the applied setting's measured SLO attainment is below the one before it and
// below 99%. The goal from the issue: ≥ 95% of the grid's best goodput with ≤ 25% of its measurements, and zero
// SLO-violating applies. The SLO here is tighter than the shipped defaults so that settings differ in goodput.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runLoad } from '../src/loadgen/index.js';
import type { SchedulerSettings } from '../src/engine/types.js';
import { DEFAULT_CONFIG } from '../src/controlplane/config-schema.js';
import { startTunedServer, type TunedServer } from '../tests/tuner/harness.js';

const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '3' },
    'trial-seconds': { type: 'string', default: '5' },
    repeats: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    tokens: { type: 'string', default: '32' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const CYCLES = Number(values.cycles);
const TRIAL_S = Number(values['trial-seconds']);
const TOKENS = Number(values.tokens);
const REPEATS = Number(values.repeats);
const SLO = { ttftP99Seconds: 0.5, interTokenP99Seconds: 0.1, e2eP99Seconds: 1.0, errorRateBudget: 0.01 };

interface Workload {
  name: string;
  /** Closed-loop phases (clients, seconds share of a trial), repeated to fill the trial. */
  phases: { clients: number; share: number }[];
}
const WORKLOADS: Workload[] = [
  { name: 'steady', phases: [{ clients: 16, share: 1 }] },
  { name: 'bursty', phases: [{ clients: 2, share: 0.25 }, { clients: 32, share: 0.25 }, { clients: 2, share: 0.25 }, { clients: 32, share: 0.25 }] },
];

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

/** Run the workload for `seconds` against the server and return the client-side goodput. */
async function trial(h: TunedServer, w: Workload, seconds: number, opts: { tick?: boolean; signal?: AbortSignal } = {}): Promise<Trial> {
  let good = 0, all = 0, tokensGood = 0, tokens = 0, wall = 0;
  for (const p of w.phases) {
    if (opts.signal?.aborted) break;
    const durationS = Math.max(0.5, seconds * p.share);
    const r = opts.tick
      ? await h.load({ clients: p.clients, seconds: durationS, outputLen: TOKENS, ...(opts.signal ? { signal: opts.signal } : {}) })
      // A request still running a second past the e2e objective cannot count as goodput: cut it there instead of
      // waiting out the default 30 s drain (a mis-set grid point would otherwise take minutes per trial).
      : await runLoad({ url: h.url, model: h.config.model.name, concurrency: p.clients, durationS, outputLen: String(TOKENS), ignoreEos: true, temperature: 0, slo: SLO,
        drainTimeoutS: SLO.e2eP99Seconds + 1, ...(opts.signal ? { signal: opts.signal } : {}) });
    good += r.requests.good;
    all += r.requests.completed + r.requests.failed;
    tokensGood += r.goodput.outputTokensPerS * r.wallSeconds;
    tokens += r.throughput.outputTokensPerS * r.wallSeconds;
    wall += r.wallSeconds;
  }
  return { goodput: tokensGood / wall, throughput: tokens / wall, attainment: all ? good / all : NaN, requests: all };
}

/** The median trial of REPEATS (by goodput): single trials on a shared 2-core machine scatter by tens of percent, and
 *  the grid's single-trial winner is biased upward (winner's curse), so every reported figure is re-measured. */
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
  goodput: Trial;
  verifications: number;
  applies: { version: number; settings: SchedulerSettings; attainment: number; violating: boolean }[];
  final: SchedulerSettings;
}

async function runTuner(w: Workload, startName: string, start: Partial<SchedulerSettings>): Promise<TunerResult> {
  const h = await server(start);
  try {
    await trial(h, w, 1); // warm-up
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
        // Keep the workload running while the shadows verify (they need mirrored traffic).
        const ac = new AbortController();
        const bg = (async () => {
          while (!ac.signal.aborted) await trial(h, w, 3, { tick: true, signal: ac.signal }).catch(() => undefined);
        })();
        await h.tuned.tuner.idle();
        await new Promise((r) => setTimeout(r, 2500)); // the watch window (2 checks, 1 s apart)
        ac.abort();
        await bg;
      }
      const live = h.store.currentSettings()!;
      if (live.source === 'tuner' && !applies.some((a) => a.version === live.version)) {
        const after = await trial(h, w, TRIAL_S);
        applies.push({ version: live.version, settings: live.settings.scheduler, attainment: after.attainment,
          violating: after.attainment < before.attainment && after.attainment < 0.99 });
        before = after;
      }
      process.stderr.write(`  ${w.name}/${startName}: cycle ${c + 1}: live v${live.version} ${JSON.stringify(live.settings.scheduler)}\n`);
    }
    const verifications = h.store.listProposals({ limit: 1000 }).filter((p) => p.evidence !== null).length;
    return { start: startName, goodput: await measured(h, w), verifications, applies, final: h.store.currentSettings()!.settings.scheduler };
  } finally {
    await h.stop();
  }
}

async function runGrid(w: Workload): Promise<{ best: Partial<SchedulerSettings>; bestTrial: Trial; trials: number; defaults: Trial }> {
  const h = await server({});
  try {
    await trial(h, w, 1); // warm-up
    const defaults = await measured(h, w);
    let best: { s: Partial<SchedulerSettings>; t: Trial } | undefined;
    const points = gridPoints();
    for (const [i, s] of points.entries()) {
      h.engine.reconfigure(s);
      const t = await trial(h, w, TRIAL_S);
      if (!best || t.goodput > best.t.goodput) best = { s, t };
      process.stderr.write(`  ${w.name}/grid ${i + 1}/${points.length}: ${JSON.stringify(s)} goodput ${t.goodput.toFixed(0)} tok/s\n`);
    }
    h.engine.reconfigure(best!.s);
    return { best: best!.s, bestTrial: await measured(h, w), trials: points.length, defaults };
  } finally {
    await h.stop();
  }
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const rows: string[] = [];
const json: unknown[] = [];
for (const w of WORKLOADS) {
  process.stderr.write(`workload ${w.name}\n`);
  const grid = await runGrid(w);
  const fromDefaults = await runTuner(w, 'defaults', {});
  const fromMisset = await runTuner(w, 'maxBatchSize=1', { maxBatchSize: 1 });
  const best = grid.bestTrial.goodput;
  rows.push(`| ${w.name} | defaults | ${fmt(grid.defaults.goodput)} | ${(100 * grid.defaults.goodput / best).toFixed(0)}% | 0 | – | – |`);
  for (const t of [fromDefaults, fromMisset]) {
    rows.push(`| ${w.name} | tuner from ${t.start}, ${CYCLES} cycles | ${fmt(t.goodput.goodput)} | ${(100 * t.goodput.goodput / best).toFixed(0)}% | ${t.verifications} (${(100 * t.verifications / grid.trials).toFixed(0)}%) | ${t.applies.length} / ${t.applies.filter((a) => a.violating).length} | ${JSON.stringify(t.final)} |`);
  }
  rows.push(`| ${w.name} | grid best | ${fmt(best)} | 100% | ${grid.trials} | – | ${JSON.stringify(grid.best)} |`);
  json.push({ workload: w, grid, tuner: [fromDefaults, fromMisset] });
}
const table = [
  `SLO: ttft ≤ ${SLO.ttftP99Seconds} s, inter-token ≤ ${SLO.interTokenP99Seconds} s, e2e ≤ ${SLO.e2eP99Seconds} s; ${TOKENS} tokens per request; trial ${TRIAL_S} s, figures the median of ${REPEATS}; threads ${values.threads}`,
  '',
  '| workload | setting | goodput tok/s | of grid best | measurements | applies / SLO-violating | final hot knobs |',
  '|---|---|---|---|---|---|---|',
  ...rows,
].join('\n');
console.log(table);
if (values.json) writeFileSync(values.json, JSON.stringify({ slo: SLO, cycles: CYCLES, trialSeconds: TRIAL_S, results: json }, null, 2));
