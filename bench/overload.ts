// Overload (issue 9): `tuneloop serve` in a child process, its capacity measured with closed-loop clients, then
// --factor times that rate offered as open-loop Poisson arrivals for --seconds, while /healthz is polled from a worker
// thread and the server's RSS is read from its /metrics (runOverload, src/loadgen/overload.ts). tests/e2e/overload.test.ts
// asserts the same run with margins for a shared CI box; this prints the figures and the targets.
//
//   npm run bench:overload
//   npm run bench:overload -- --factor 5 --seconds 60 --tokens 64 --queue 8 --threads 1
//   npm run bench:overload -- --model path/to/model.gguf --json bench-overload.json
//
// The per-key rate limit and stream cap are off (every request comes from this one client): shedding is the
// scheduler's waiting queue (--queue = scheduler.maxQueueLength) refusing with 429 queue_full + Retry-After.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultModelPath } from '../src/defaults.js';
import { formatOverload, nativeGrowth, runOverload } from '../src/loadgen/overload.js';
import { startServeChild } from '../tests/helpers/serve-child.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '1' },
    factor: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '60' },
    'capacity-seconds': { type: 'string', default: '8' },
    clients: { type: 'string', default: '16' },
    tokens: { type: 'string', default: '64' },
    queue: { type: 'string', default: '8' },
    batch: { type: 'string', default: '16' },
    json: { type: 'string' },
  },
  strict: true,
});

const num = (name: string, v: string): number => {
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${name} expects a positive number, got '${v}'`);
  return n;
};

const dir = mkdtempSync(join(tmpdir(), 'tuneloop-bench-overload-'));
const child = startServeChild([
  '--model',
  values.model ?? defaultModelPath(),
  '--port',
  '0',
  '--threads',
  values.threads,
  '--set',
  `tuner.storePath=${join(dir, 'tuner.db')}`,
  '--set',
  'tuner.enabled=false',
  '--set',
  'server.rateLimitPerMinute=0',
  '--set',
  'server.maxConcurrentStreamsPerKey=0',
  '--set',
  `scheduler.maxQueueLength=${values.queue}`,
  '--set',
  `scheduler.maxBatchSize=${values.batch}`,
]);
try {
  const url = await child.url;
  const factor = num('factor', values.factor),
    seconds = num('seconds', values.seconds);
  console.log(
    `server ${url} (${values.threads} thread(s), maxQueueLength ${values.queue}, maxBatchSize ${values.batch}); ` +
      `capacity for ${values['capacity-seconds']} s, then ${factor}x for ${seconds} s\n`,
  );
  const r = await runOverload({
    url,
    factor,
    durationS: seconds,
    capacityS: num('capacity-seconds', values['capacity-seconds']),
    capacityClients: num('clients', values.clients),
    tokens: num('tokens', values.tokens),
    progress: true,
  });
  console.log(formatOverload(r));
  const fiveXx = Object.keys(r.serverStatuses).filter((s) => s.startsWith('5'));
  const growth = (r.rss.afterBytes - r.rss.beforeBytes) / 2 ** 20,
    native = nativeGrowth(r) / 2 ** 20;
  const check = (ok: boolean, what: string) => console.log(`${ok ? 'met    ' : 'NOT met'}  ${what}`);
  console.log('');
  check(r.requests.shed > 0 && r.shedWithoutRetryAfter === 0 && r.requests.failed === 0, 'sheds with 429 + Retry-After, nothing else fails');
  check(fiveXx.length === 0, 'no 5xx');
  check(r.healthz.failures === 0 && r.healthz.maxS < 0.1, '/healthz within 100 ms throughout');
  check(native < 16, `memory outside the V8 heap back within 16 MiB of the baseline (${native.toFixed(1)} MiB)`);
  check(growth < 48, `RSS within 48 MiB of the baseline, the V8 heap's growth included (${growth.toFixed(1)} MiB)`);
  if (values.json) {
    writeFileSync(values.json, `${JSON.stringify(r, null, 2)}\n`);
    console.log(`wrote ${values.json}`);
  }
} finally {
  child.child.kill('SIGTERM');
  await child.exit;
  rmSync(dir, { recursive: true, force: true });
}
