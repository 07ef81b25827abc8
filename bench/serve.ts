// HTTP serving cost: the same closed-loop streaming workload (a) in process through Engine and (b) over HTTP against
// the OpenAI-compatible server (startServer) running in this process on the same engine, with the load client in a
// process of its own (bench/lib/load-client-process.ts). Target: the HTTP layer costs under 5% of tokens/s at 16
// concurrent streams.
//
//   npm run bench:serve
//   npm run bench:serve -- --streams 16 --tokens 64 --seconds 20 --rounds 3 --threads 2
//   npm run bench:serve -- --model path/to/model.gguf --weights int8 --json bench-serve.json
//   npm run bench:serve -- --shared-client       (the old method: the HTTP client inside the server's process)
//   npm run bench:serve -- --stream-interval 4   (server.streamInterval: events of 4 tokens after the first)
//
// Workload (src/loadgen): C streams back to back, built-in Shakespeare prompts, exactly N tokens each (ignore EOS),
// temperature 0.8, per-request seeds: both sides generate the same tokens. Request count: enough for about
// --seconds at the warm-up's rate (a multiple of C, so every run ends on full batches). Each round runs both paths,
// in alternating order (in-process first in even rounds, HTTP first in odd ones), so drift in a shared machine's
// speed falls on both; the figures are the rounds' medians, and the per-round HTTP/in-process ratios are printed.
//
// CPU per 1000 tokens, per process (process.cpuUsage over the run: every thread, the engine's included):
//   server  this process: the engine and its driver (in-process path) or the engine and the HTTP server (HTTP path);
//   main    of which this process's main thread (the event loop: JS, N-API deliveries, socket writes), from
//           /proc/self/task/<pid>/stat (Linux; 10 ms ticks, so read it over runs of seconds);
//   client  the load client's process (HTTP path only; the in-process driver runs inside the server's process).
// On a machine whose cores the engine's threads fill, the client's CPU competes with the engine: the tokens/s ratio
// then charges the client to the HTTP layer, while the server's CPU per token does not.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { DEFAULT_SERVER_OPTIONS } from '../src/controlplane/app.js';
import { startServer } from '../src/controlplane/http-server.js';
import { defaultModelPath } from '../src/defaults.js';
import { Engine, type WeightsPolicy } from '../src/engine/index.js';
import { runLoad, runLoadInProcess, type LoadOptions, type LoadReport, type WorkloadOptions } from '../src/loadgen/index.js';
import { LoadClientProcess } from './lib/load-client-process.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    weights: { type: 'string', default: 'f32' },
    threads: { type: 'string', default: '2' },
    streams: { type: 'string', default: '16' },
    tokens: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '20' },
    requests: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    json: { type: 'string' },
    // The default now; kept so that older command lines still run.
    'client-process': { type: 'boolean', default: true },
    'shared-client': { type: 'boolean', default: false },
    // server.streamInterval: tokens per event after the first (1 = every delivered batch as it comes).
    'stream-interval': { type: 'string', default: '1' },
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
const sharedClient = values['shared-client'];
const streamInterval = int('stream-interval', values['stream-interval']);

/** CPU seconds of this process's main thread (utime + stime of /proc/self/task/<pid>/stat); undefined off Linux. */
function mainThreadCpuS(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

interface Measured {
  report: LoadReport;
  tokens: number;
  /** CPU milliseconds per generated token = CPU seconds per 1000 tokens. */
  serverCpu: number;
  mainCpu: number | undefined;
  clientCpu: number | undefined;
}

/** Runs f and measures this process's CPU (all threads, and the main thread alone) per generated token. */
async function measured(f: () => Promise<{ report: LoadReport; clientCpuUs?: number }>): Promise<Measured> {
  const c0 = process.cpuUsage(),
    m0 = mainThreadCpuS();
  const { report, clientCpuUs } = await f();
  const c = process.cpuUsage(c0),
    m1 = mainThreadCpuS();
  const n = report.throughput.outputTokensPerS * report.wallSeconds;
  return {
    report,
    tokens: n,
    serverCpu: (c.user + c.system) / 1000 / n,
    mainCpu: m0 !== undefined && m1 !== undefined ? ((m1 - m0) * 1000) / n : undefined,
    clientCpu: clientCpuUs !== undefined ? clientCpuUs / 1000 / n : undefined,
  };
}

const engine = await Engine.load({ model: modelPath, weights: values.weights as WeightsPolicy, threads: int('threads', values.threads) });
const modelName = engine.info.name || 'model';
const server = await startServer({
  engine,
  options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName, streamInterval },
  logger: pino({ level: 'silent' }),
});
const client = sharedClient ? undefined : new LoadClientProcess();
console.log(
  `model ${modelPath} (${engine.info.weights}, ${engine.info.threads} threads, ${engine.info.kernels}); server ${server.url} (pid ${process.pid}); ` +
    `load client ${client ? `in its own process (pid ${client.pid})` : 'in the server process (--shared-client)'}`,
);

const base: WorkloadOptions = { concurrency: streams, outputLen: String(tokens), temperature: 0.8, seed, ignoreEos: true };
const overHttp = async (maxRequests: number): Promise<{ report: LoadReport; clientCpuUs?: number }> => {
  const o: LoadOptions = { ...base, url: server.url, model: modelName, maxRequests };
  if (!client) return { report: await runLoad(o) };
  const r = await client.run(o);
  return { report: r.report, clientCpuUs: r.cpuUs };
};
try {
  // Warm-up: first-touch costs (page faults, JIT of the HTTP path on both sides) stay out of the figures; the
  // in-process rate sizes the runs.
  await overHttp(streams * 2);
  const warm = await runLoadInProcess(engine, { ...base, maxRequests: streams * 2 });
  const requests =
    values.requests !== undefined
      ? int('requests', values.requests)
      : Math.max(1, Math.round((warm.throughput.requestsPerS * Number(values.seconds)) / streams)) * streams;
  console.log(`${streams} streams x ${tokens} tokens, ${requests} requests per run (~${values.seconds} s), ${rounds} round(s), stream interval ${streamInterval}\n`);

  const inproc: Measured[] = [],
    http: Measured[] = [];
  for (let r = 0; r < rounds; r++) {
    const runIn = async () => inproc.push(await measured(async () => ({ report: await runLoadInProcess(engine, { ...base, maxRequests: requests }) })));
    const runHttp = async () => http.push(await measured(() => overHttp(requests)));
    if (r % 2 === 0) {
      await runIn();
      await runHttp();
    } else {
      await runHttp();
      await runIn();
    }
  }
  const failed = [...inproc, ...http].filter((x) => x.report.requests.failed > 0);
  for (const f of failed) console.log(`WARNING: ${f.report.target} run had ${f.report.requests.failed} failed requests: ${JSON.stringify(f.report.errors)}`);

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const medianOpt = (xs: (number | undefined)[]) => (xs.every((x) => x !== undefined) ? median(xs) : undefined);
  const fig = (ms: Measured[]) => {
    const rs = ms.map((m) => m.report);
    return {
      tokPerS: median(rs.map((x) => x.throughput.outputTokensPerS)),
      reqPerS: median(rs.map((x) => x.throughput.requestsPerS)),
      ttftP50: median(rs.map((x) => x.latency.ttftSeconds.p50)),
      ttftP99: median(rs.map((x) => x.latency.ttftSeconds.p99)),
      itlP50: median(rs.map((x) => x.latency.interTokenSeconds.p50)),
      itlP99: median(rs.map((x) => x.latency.interTokenSeconds.p99)),
      e2eP50: median(rs.map((x) => x.latency.e2eSeconds.p50)),
      // Chunks per token as the client saw them (the ITL count is chunks - 1 per request): coalescing shows here.
      tokPerChunk: median(rs.map((x) => (x.requests.completed * tokens) / (x.latency.interTokenSeconds.count + x.requests.completed))),
      server: median(ms.map((m) => m.serverCpu)),
      main: medianOpt(ms.map((m) => m.mainCpu)),
      client: medianOpt(ms.map((m) => m.clientCpu)),
    };
  };
  const a = fig(inproc),
    b = fig(http);
  const msf = (s: number) => (s * 1000).toFixed(1);
  const cpu = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(3));
  const row = (name: string, f: typeof a) =>
    `| ${name.padEnd(10)} | ${f.tokPerS.toFixed(1).padStart(8)} | ${f.reqPerS.toFixed(2).padStart(6)} | ${msf(f.ttftP50).padStart(8)} | ${msf(f.ttftP99).padStart(8)} | ${msf(f.itlP50).padStart(7)} | ${msf(f.itlP99).padStart(7)} | ${msf(f.e2eP50).padStart(8)} | ${f.tokPerChunk.toFixed(2).padStart(9)} | ${cpu(f.server).padStart(10)} | ${cpu(f.main).padStart(8)} | ${cpu(f.client).padStart(10)} |`;
  console.log('| path       |    tok/s |  req/s | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 |  e2e p50 | tok/chunk | server CPU | of which |  client CPU |');
  console.log('|            |          |        |          |          |         |         |          |           |  s/1k tok  |   main   |   s/1k tok  |');
  console.log('|------------|---------:|-------:|---------:|---------:|--------:|--------:|---------:|----------:|-----------:|---------:|-----------:|');
  console.log(row('in-process', a));
  console.log(row('HTTP', b));
  console.log(
    `(latencies in ms between text chunks as the client sees them; medians over rounds; CPU per process, engine threads in the server's${sharedClient ? '; --shared-client: the client is inside the server process' : ''})`,
  );
  const ratio = b.tokPerS / a.tokPerS;
  const cost = (1 - ratio) * 100;
  const per = inproc.map((x, i) => http[i]!.report.throughput.outputTokensPerS / x.report.throughput.outputTokensPerS);
  console.log(
    `\nHTTP/in-process tokens/s: ${ratio.toFixed(3)}; HTTP layer cost: ${cost.toFixed(1)}% of tokens/s (target < 5%: ${cost < 5 ? 'met' : 'NOT met'}) ` +
      `(per round: ${per.map((x) => x.toFixed(3)).join(', ')})`,
  );
  const extra = (b.server - a.server) * 1000;
  console.log(
    `server CPU per token: +${extra.toFixed(0)} µs over HTTP (${((extra / (a.server * 1000)) * 100).toFixed(1)}% of the in-process path's)` +
      (b.client !== undefined ? `; client: ${(b.client * 1000).toFixed(0)} µs per token` : ''),
  );
  // HTTP cannot be faster than the engine it wraps: a negative cost means the machine's speed moved under the runs.
  if (cost < -2) console.log('WARNING: HTTP beat in-process: the machine is too noisy for this figure (shared cores?); rerun with --rounds 5 on a quiet machine');
  if (values.json) {
    writeFileSync(
      values.json,
      `${JSON.stringify(
        {
          streams,
          tokens,
          requests,
          rounds,
          streamInterval,
          clientProcess: !sharedClient,
          httpCostPercent: cost,
          httpRatio: ratio,
          cpuMsPerToken: {
            inProcess: { server: inproc.map((m) => m.serverCpu), main: inproc.map((m) => m.mainCpu) },
            http: { server: http.map((m) => m.serverCpu), main: http.map((m) => m.mainCpu), client: http.map((m) => m.clientCpu) },
          },
          inProcess: inproc.map((m) => m.report),
          http: http.map((m) => m.report),
        },
        null,
        2,
      )}\n`,
    );
    console.log(`wrote ${values.json}`);
  }
} finally {
  await client?.close();
  await server.close();
  await engine.close();
}
