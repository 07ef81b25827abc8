// HTTP serving cost: the same closed-loop streaming workload (a) in process through Engine and (b) over HTTP against
// the OpenAI-compatible server (startServer) running in this same process on the same engine. Target: the HTTP layer
// costs under 5% of tokens/s at 16 concurrent streams.
//
//   npm run bench:serve
//   npm run bench:serve -- --streams 16 --tokens 64 --seconds 20 --rounds 2 --threads 2
//   npm run bench:serve -- --model path/to/model.gguf --weights int8 --json bench-serve.json
//   npm run bench:serve -- --client-process      (the load client in a child process: the server's cost alone)
//
// Workload (src/loadgen): C streams back to back, built-in Shakespeare prompts, exactly N tokens each (ignore EOS),
// temperature 0.8, per-request seeds: both sides generate the same tokens. Request count: enough for about
// --seconds at the warm-up's rate (a multiple of C, so every run ends on full batches). Rounds alternate
// in-process / HTTP so that drift in a shared machine's speed falls on both; the figures are the rounds' medians.
// The HTTP side includes the client too (fetch, SSE parsing, JSON): it shares the process and its cores with the
// server and the engine, so the cost measured is the whole HTTP round trip's, an upper bound of the server's;
// --client-process moves the client out (on a machine with spare cores, that isolates the server's cost).
// CPU µs/tok is this process's CPU time (all threads) per generated token: steadier than tokens/s on a shared machine.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { pino } from 'pino';
import { DEFAULT_SERVER_OPTIONS } from '../src/controlplane/app.js';
import { startServer } from '../src/controlplane/http-server.js';
import { defaultModelPath } from '../src/defaults.js';
import { Engine, type WeightsPolicy } from '../src/engine/index.js';
import { runLoad, runLoadInProcess, type LoadReport, type WorkloadOptions } from '../src/loadgen/index.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    weights: { type: 'string', default: 'f32' },
    threads: { type: 'string', default: '2' },
    streams: { type: 'string', default: '16' },
    tokens: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '20' },
    requests: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
    json: { type: 'string' },
    'client-process': { type: 'boolean', default: false },
    // Internal: this file re-run as the separate client process (--client-process).
    'client-of': { type: 'string' },
  },
  strict: true,
});

const int = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} expects a positive integer, got '${v}'`);
  return n;
};
const streams = int('streams', values.streams);
const tokens = int('tokens', values.tokens);
const rounds = int('rounds', values.rounds);
const seed = Number(values.seed);
const modelPath = values.model ?? defaultModelPath();

/** Runs f and reports the process's CPU time (all threads: the engine's too) per generated token. */
async function withCpu(f: () => Promise<LoadReport>): Promise<{ report: LoadReport; cpuMsPerToken: number }> {
  const c0 = process.cpuUsage();
  const report = await f();
  const c = process.cpuUsage(c0);
  const tokens = report.throughput.outputTokensPerS * report.wallSeconds;
  return { report, cpuMsPerToken: (c.user + c.system) / 1000 / tokens };
}

if (values['client-of']) {
  // Client process: one HTTP run, its report as JSON on stdout.
  const max = int('requests', values.requests ?? '16');
  const report = await runLoad({ concurrency: streams, outputLen: String(tokens), temperature: 0.8, seed, ignoreEos: true, url: values['client-of'], maxRequests: max });
  process.stdout.write(JSON.stringify(report));
  process.exit(0);
}

/** The HTTP run from a child process: the server's costs and the client's stop sharing one event loop. */
async function runClientProcess(url: string, requests: number): Promise<LoadReport> {
  const args = [
    '--import',
    'tsx',
    fileURLToPath(import.meta.url),
    '--client-of',
    url,
    '--requests',
    String(requests),
    '--streams',
    String(streams),
    '--tokens',
    String(tokens),
    '--seed',
    String(seed),
  ];
  const { stdout } = await promisify(execFile)(process.execPath, args, { maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as LoadReport;
}

const engine = await Engine.load({ model: modelPath, weights: values.weights as WeightsPolicy, threads: int('threads', values.threads) });
const modelName = engine.info.name || 'model';
const server = await startServer({
  engine,
  options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName },
  logger: pino({ level: 'silent' }),
});
console.log(`model ${modelPath} (${engine.info.weights}, ${engine.info.threads} threads, ${engine.info.kernels}); server ${server.url}`);

const base: WorkloadOptions = { concurrency: streams, outputLen: String(tokens), temperature: 0.8, seed, ignoreEos: true };
try {
  // Warm-up: first-touch costs (page faults, JIT of the HTTP path) stay out of the figures; its rate sizes the runs.
  await runLoad({ ...base, url: server.url, model: modelName, maxRequests: streams });
  const warm = await runLoadInProcess(engine, { ...base, maxRequests: streams * 2 });
  const requests =
    values.requests !== undefined
      ? int('requests', values.requests)
      : Math.max(1, Math.round((warm.throughput.requestsPerS * Number(values.seconds)) / streams)) * streams;
  console.log(`${streams} streams x ${tokens} tokens, ${requests} requests per run (~${values.seconds} s), ${rounds} round(s)\n`);

  const inproc: LoadReport[] = [],
    http: LoadReport[] = [];
  const cpuIn: number[] = [],
    cpuHttp: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const a = await withCpu(() => runLoadInProcess(engine, { ...base, maxRequests: requests }));
    inproc.push(a.report);
    cpuIn.push(a.cpuMsPerToken);
    const b = await withCpu(() =>
      values['client-process'] ? runClientProcess(server.url, requests) : runLoad({ ...base, url: server.url, model: modelName, maxRequests: requests }),
    );
    http.push(b.report);
    cpuHttp.push(b.cpuMsPerToken);
  }
  const failed = [...inproc, ...http].filter((x) => x.requests.failed > 0);
  for (const f of failed) console.log(`WARNING: ${f.target} run had ${f.requests.failed} failed requests: ${JSON.stringify(f.errors)}`);

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const fig = (rs: LoadReport[]) => ({
    tokPerS: median(rs.map((x) => x.throughput.outputTokensPerS)),
    reqPerS: median(rs.map((x) => x.throughput.requestsPerS)),
    ttftP50: median(rs.map((x) => x.latency.ttftSeconds.p50)),
    ttftP99: median(rs.map((x) => x.latency.ttftSeconds.p99)),
    itlP50: median(rs.map((x) => x.latency.interTokenSeconds.p50)),
    itlP99: median(rs.map((x) => x.latency.interTokenSeconds.p99)),
    e2eP50: median(rs.map((x) => x.latency.e2eSeconds.p50)),
  });
  const a = { ...fig(inproc), cpu: median(cpuIn) },
    b = { ...fig(http), cpu: median(cpuHttp) };
  const ms = (s: number) => (s * 1000).toFixed(1);
  const row = (name: string, f: typeof a) =>
    `| ${name.padEnd(10)} | ${f.tokPerS.toFixed(1).padStart(8)} | ${f.reqPerS.toFixed(2).padStart(6)} | ${ms(f.ttftP50).padStart(8)} | ${ms(f.ttftP99).padStart(8)} | ${ms(f.itlP50).padStart(7)} | ${ms(f.itlP99).padStart(7)} | ${ms(f.e2eP50).padStart(8)} | ${(f.cpu * 1000).toFixed(0).padStart(10)} |`;
  console.log('| path       |    tok/s |  req/s | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 |  e2e p50 | CPU µs/tok |');
  console.log('|------------|---------:|-------:|---------:|---------:|--------:|--------:|---------:|-----------:|');
  console.log(row('in-process', a));
  console.log(row('HTTP', b));
  console.log(`(latencies in ms; medians over rounds; CPU: this process, engine threads included${values['client-process'] ? ', client process excluded' : ''})`);
  const cost = (1 - b.tokPerS / a.tokPerS) * 100;
  const per =
    rounds > 1 ? ` (per round: ${inproc.map((x, i) => ((1 - http[i]!.throughput.outputTokensPerS / x.throughput.outputTokensPerS) * 100).toFixed(1)).join('%, ')}%)` : '';
  console.log(`\nHTTP layer cost: ${cost.toFixed(1)}% of tokens/s (target < 5%: ${cost < 5 ? 'met' : 'NOT met'})${per}`);
  // HTTP cannot be faster than the engine it wraps: a negative cost means the machine's speed moved under the runs.
  if (cost < -2) console.log('WARNING: HTTP beat in-process: the machine is too noisy for this figure (shared cores?); rerun with --rounds 3 on a quiet machine');
  if (values.json) {
    writeFileSync(
      values.json,
      `${JSON.stringify({ streams, tokens, requests, rounds, httpCostPercent: cost, cpuMsPerToken: { inProcess: cpuIn, http: cpuHttp }, inProcess: inproc, http }, null, 2)}\n`,
    );
    console.log(`wrote ${values.json}`);
  }
} finally {
  await server.close();
  await engine.close();
}
