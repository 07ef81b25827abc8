// Soak (issue 9): a tuned server in this process (the shipped model unless --model), mixed traffic for --minutes
// (completions and chat, streamed and not, a share of streams abandoned after the first token), a live reconfigure
// every --every seconds and a reload half-way (runSoak, standardSoakEvents: src/loadgen/soak.ts). Prints RSS (read
// after a full GC, so the V8 heap's garbage does not swing it) and KV blocks over the run, and whether the server's
// counters add up to the traffic the clients saw.
// tests/e2e/soak.test.ts is the 2-minute CI version with assertions.
//
//   npm run bench:soak                       (20 minutes)
//   npm run bench:soak -- --minutes 5 --clients 8 --tokens 48 --every 15
//   npm run bench:soak -- --json bench-soak.json
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { scrapeMetrics } from '../src/loadgen/probe.js';
import { checkSoakCounters, formatSoak, runSoak, standardSoakEvents } from '../src/loadgen/soak.js';
import { startTunedServer } from '../tests/tuner/harness.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    minutes: { type: 'string', default: '20' },
    clients: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '48' },
    every: { type: 'string', default: '15' },
    seed: { type: 'string', default: '9' },
    json: { type: 'string' },
  },
  strict: true,
});

for (const k of ['minutes', 'clients', 'tokens', 'every'] as const) {
  if (!(Number(values[k]) > 0)) throw new Error(`--${k} expects a positive number, got '${values[k]}'`);
}
const durationS = Math.round(Number(values.minutes) * 60);

const h = await startTunedServer(values.model ? { model: values.model } : {});
try {
  console.log(`server ${h.url} (${h.config.model.name}, 1 thread); ${durationS} s of mixed traffic from ${values.clients} clients\n`);
  const before = await scrapeMetrics(h.url);
  const r = await runSoak({
    url: h.url,
    model: h.config.model.name,
    concurrency: Number(values.clients),
    durationS,
    maxTokens: Number(values.tokens),
    seed: Number(values.seed),
    events: standardSoakEvents(h.engine, durationS, Number(values.every)),
    sample: () => {
      const m = process.memoryUsage();
      return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, kvBlocksUsed: h.engine.stats().kvCache.blocksUsed };
    },
    sampleEveryS: Math.max(5, durationS / 120),
    gcBeforeSample: true,
  });
  // Abandoned generations end at the engine's next step.
  await new Promise((res) => setTimeout(res, 1000));
  const problems = checkSoakCounters(r.traffic, before, await scrapeMetrics(h.url));
  console.log(
    formatSoak(r, [
      ['KV blocks now', `${h.engine.stats().kvCache.blocksUsed} used, ${h.engine.stats().kvCache.blocksCached} cached (prefix cache)`],
      ['counters', problems.length ? problems.join('; ') : 'consistent with the traffic sent'],
    ]),
  );
  console.log('\n  t (s)  RSS (MiB)  JS heap used (MiB)  KV used   (read after a full GC)');
  const mib = (b = NaN) => (b / 2 ** 20).toFixed(1);
  for (const s of r.samples) {
    console.log(`${s.tS.toFixed(0).padStart(7)} ${mib(s.rssBytes).padStart(10)} ${mib(s.heapUsedBytes).padStart(19)} ${String(s.kvBlocksUsed).padStart(8)}`);
  }
  if (values.json) {
    writeFileSync(values.json, `${JSON.stringify({ ...r, counterProblems: problems }, null, 2)}\n`);
    console.log(`wrote ${values.json}`);
  }
} finally {
  await h.stop();
}
