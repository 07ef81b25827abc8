// What a shadow verification costs the primary: the same steady HTTP workload measured without a verification,
// during one (an A/A pair of shadows at the live settings, mirroring `--share` of live requests, then the replay),
// and without again (to see drift on a shared machine). Prints the primary's e2e p50/p99, TTFT p99 and goodput per
// phase, and the shadows' RSS and CPU.
//
//   npm run bench:shadow-cost
//   npm run bench:shadow-cost -- --clients 8 --seconds 12 --share 0.05 --threads 2
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Engine } from '../src/engine/index.js';
import { DEFAULT_SERVER_OPTIONS } from '../src/controlplane/app.js';
import { startServer } from '../src/controlplane/http-server.js';
import { defaultModelPath } from '../src/defaults.js';
import { runLoad, type LoadReport } from '../src/loadgen/index.js';
import { probeTokens } from '../src/tuner/bootstrap.js';
import { engineSettings } from '../src/tuner/apply.js';
import { ShadowVerifier } from '../src/tuner/shadow.js';
import { DEFAULT_VERIFY_CONFIG } from '../src/tuner/verify.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '12' },
    share: { type: 'string', default: '0.05' },
    threads: { type: 'string', default: '2' },
  },
});
const SLO = { ttftP99Seconds: 1, interTokenP99Seconds: 0.25, e2eP99Seconds: 10, errorRateBudget: 0.01 };
const model = defaultModelPath();
const engine = await Engine.load({ model, threads: Number(values.threads), scheduler: { maxBatchSize: 16 } });
let verifier: ShadowVerifier | undefined;
const server = await startServer({
  engine,
  options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: 'tuneloop-shakespeare' },
  logger: pino({ level: 'silent' }),
  onGeneration: (e) => {
    if (verifier && e.ok && e.result && verifier.shouldMirror()) {
      verifier.mirror({ tokens: e.promptTokens, maxTokens: e.request.maxTokens ?? 16, primaryTokens: e.result.tokens });
    }
  },
});

const load = (): Promise<LoadReport> =>
  runLoad({
    url: server.url,
    model: 'tuneloop-shakespeare',
    concurrency: Number(values.clients),
    durationS: Number(values.seconds),
    outputLen: '32',
    ignoreEos: true,
    temperature: 0.8,
    slo: SLO,
  });
const row = (name: string, r: LoadReport, extra = ''): string =>
  `| ${name} | ${r.requests.completed} | ${(r.latency.e2eSeconds.p50 * 1000).toFixed(0)} | ${(r.latency.e2eSeconds.p99 * 1000).toFixed(0)} | ` +
  `${(r.latency.ttftSeconds.p99 * 1000).toFixed(0)} | ${r.goodput.outputTokensPerS.toFixed(0)} | ${extra} |`;

await load(); // warm-up
const before = await load();
const live = engineSettings(engine);
const rss0 = process.memoryUsage().rss;
const cpu0 = process.cpuUsage();
verifier = await ShadowVerifier.start({
  modelPath: model,
  baseline: live,
  candidate: live,
  slo: SLO,
  probeTokens: probeTokens(engine),
  config: { ...DEFAULT_VERIFY_CONFIG, shadowShare: Number(values.share), minSamples: 4 },
});
const rssShadows = process.memoryUsage().rss - rss0;
const during = await load();
const t0 = performance.now();
const evidence = await verifier.finish({ deadlineMs: Date.now() + 60_000, observedConcurrency: Number(values.clients) });
const finishS = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
await verifier.close();
verifier = undefined;
const after = await load();

console.log(
  `model ${model}; ${values.clients} closed-loop clients, 32 tokens each, ${values.seconds} s per phase; primary ${values.threads} threads; shadows ${DEFAULT_VERIFY_CONFIG.shadowThreads} thread each; share ${values.share}`,
);
console.log('');
console.log('| phase | requests | e2e p50 ms | e2e p99 ms | TTFT p99 ms | goodput tok/s | |');
console.log('|---|---|---|---|---|---|---|');
console.log(row('no verification', before));
console.log(row('mirroring to an A/A shadow pair', during, `${evidence.mirroredRequests} mirrored`));
console.log(row('no verification (again)', after));
console.log('');
const base = (before.goodput.outputTokensPerS + after.goodput.outputTokensPerS) / 2;
console.log(
  `primary goodput while mirroring: ${((during.goodput.outputTokensPerS / base - 1) * 100).toFixed(1)}% vs the mean of before/after; ` +
    `e2e p99 ${((during.latency.e2eSeconds.p99 / ((before.latency.e2eSeconds.p99 + after.latency.e2eSeconds.p99) / 2) - 1) * 100).toFixed(1)}%`,
);
console.log(
  `shadows: +${(rssShadows / 2 ** 20).toFixed(0)} MiB RSS at start; replay/finish ${finishS.toFixed(1)} s (the primary idle meanwhile); ` +
    `process CPU during mirroring+finish ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s; verdict ${evidence.verdict} (A/A): ${evidence.reasons.join(' ')}`,
);
await server.close();
await engine.close();
