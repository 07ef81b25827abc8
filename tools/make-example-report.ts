// Produces the committed example weekly report (reports/examples/) from a real load run of the shipped model.
//
//   node --import tsx tools/make-example-report.ts --out reports/examples [--phase-seconds 90] [--tick-seconds 10]
//   node --import tsx tools/make-example-report.ts --out reports/examples --keep-store    # keep the run's store …
//   node --import tsx tools/make-example-report.ts --out reports/examples --rerender DIR  # … to write it again
//
// A week cannot be waited for, so the run compresses one: the real server (engine, HTTP, tuner, SQLite store) starts
// with batching mis-set (scheduler.maxBatchSize 1) and takes mixed closed-loop traffic (8 clients, 8–48 output
// tokens, sampled) through HTTP, with a monitor rollup every --tick-seconds instead of every minute. Alertmanager's
// webhook delivers two alerts through the real POST /api/alerts. Two tuner cycles run over REST, each verifying its
// candidates on shadow traffic while the load goes on; the first fixes the batching, the second judges the fixed
// settings. Then the report of the current ISO week is written from the store, saying in its data line what the
// data is. Takes about 6 minutes on two cores.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Engine } from '../src/engine/index.js';
import { hashToken } from '../src/controlplane/auth.js';
import { AlertInbox } from '../src/alerts/inbox.js';
import { engineOptionsFromConfig, loadConfig } from '../src/config/load.js';
import { createMetrics } from '../src/metrics/registry.js';
import { serverOptionsFromConfig } from '../src/serve.js';
import { startServer } from '../src/controlplane/http-server.js';
import { runLoad } from '../src/loadgen/index.js';
import type { LoadReport } from '../src/loadgen/report.js';
import { engineOptionsWithSettings, openTunerStore, startTuner } from '../src/tuner/bootstrap.js';
import { formatIsoWeek, isoWeekOf } from '../src/tuner/report/iso-week.js';
import { reportOptionsFromConfig, writeWeeklyReport } from '../src/tuner/report/writer.js';
import { TunerStore } from '../src/tuner/store.js';
import type { TuneloopConfig } from '../src/config/schema.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'reports/examples' },
    'phase-seconds': { type: 'string', default: '90' },
    'tick-seconds': { type: 'string', default: '10' },
    'keep-store': { type: 'boolean', default: false },
    rerender: { type: 'string' },
  },
  strict: true,
});
const out = resolve(values.out);
const phaseS = Number(values['phase-seconds']);
const tickS = Number(values['tick-seconds']);
if (!(phaseS >= 10) || !(tickS >= 1)) throw new Error('--phase-seconds must be at least 10 and --tick-seconds at least 1');

const log = (msg: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

const dir = values.rerender ?? mkdtempSync(join(tmpdir(), 'tuneloop-example-'));
const approverToken = randomBytes(16).toString('hex');
const webhookToken = randomBytes(16).toString('hex');

const config = loadConfig();
config.server.port = 0;
config.logging.level = 'silent';
config.model.threads = 1;
config.scheduler.maxBatchSize = 1; // the mis-set start the tuner has to find
// An interactive service's TTFT objective; the default 1 s is loose for a model this small.
config.slo.ttftP99Seconds = 0.5;
config.alerts.webhookToken = webhookToken;
config.auth.tokens = [{ name: 'ops-oncall', role: 'approver', sha256: hashToken(approverToken) }];
config.tuner.storePath = join(dir, 'tuner.db');
config.tuner.reportsDir = out;
config.tuner.serviceName = 'tuneloop-demo';
// Windows are --tick-seconds long here: analyse the last two minutes, watch an applied change for 3 × 10 s.
config.tuner.analysisWindowMinutes = 2;
config.tuner.watchIntervalSeconds = 10;
config.tuner.watchChecks = 3;
// Enough mirrored requests in a short run (production mirrors 5% of far more traffic).
config.verify.shadowShare = 0.5;
config.verify.minSamples = 12;

interface RunNote {
  week: string;
  dataNote: string;
}

/** The report of the run's week, with the example's data note and lowered thresholds. */
async function writeExample(store: TunerStore, cfg: TuneloopConfig, note: RunNote): Promise<void> {
  const written = await writeWeeklyReport(store, {
    ...reportOptionsFromConfig(cfg),
    week: note.week,
    dir: out,
    dataNote: note.dataNote,
    thresholds: { minRollupMinutes: 1, minRequests: 100 },
  });
  const r = written.report;
  log(
    `report ${note.week}: ${r.coverage.windows} windows, ${r.traffic.requests} requests, attainment ` +
      `${((r.slo.allObjectives.attainment ?? NaN) * 100).toFixed(1)}%, bottlenecks ${r.bottlenecks.ranked.map((b) => `${b.kind} (${b.sloViolatingRequests})`).join(', ')}`,
  );
  for (const p of Object.values(written.paths)) process.stdout.write(`${p}\n`);
}

if (values.rerender !== undefined) {
  const note = JSON.parse(readFileSync(join(dir, 'note.json'), 'utf8')) as RunNote;
  const kept = TunerStore.open(config.tuner.storePath);
  try {
    await writeExample(kept, config, note);
  } finally {
    kept.close();
  }
  process.exit(0);
}

const { store, live } = openTunerStore(config);
const engine = await Engine.load(engineOptionsWithSettings(engineOptionsFromConfig(config), live.settings));
const logger = pino({ level: 'silent' });
const metrics = createMetrics({ engine, config, modelName: config.model.name });
const alerts = new AlertInbox({ registry: metrics.registry });
const tuned = await startTuner({ config, engine, store, logger, metrics, alerts, cron: false });
const server = await startServer({
  engine,
  options: serverOptionsFromConfig(config),
  logger,
  metricsHook: metrics,
  alerts,
  tuner: tuned.tuner,
  authTokens: config.auth.tokens,
  onGeneration: (e) => tuned.tuner.onGeneration(e),
  reports: { dir: out, timezone: config.tuner.timezone, index: () => store.reports() },
});
const startedMs = Date.now();
log(`server ${server.url}, store ${config.tuner.storePath}, maxBatchSize ${live.settings.scheduler.maxBatchSize}`);

const ticker = setInterval(() => void tuned.tuner.monitorTick('example'), tickS * 1000);

async function load(clients: number, seconds: number, seed: number, signal?: AbortSignal): Promise<LoadReport> {
  const r = await runLoad({
    url: server.url,
    model: config.model.name,
    concurrency: clients,
    durationS: seconds,
    outputLen: 'uniform:8-48',
    temperature: 0.8,
    seed,
    slo: config.slo,
    ...(signal ? { signal } : {}),
  });
  log(
    `load ${clients} clients ${seconds} s: ${r.requests.completed} done, ${r.requests.failed} failed, goodput ` +
      `${r.goodput.outputTokensPerS.toFixed(1)} tok/s (${(r.goodput.fraction * 100).toFixed(0)}% within SLO), TTFT p99 ` +
      `${r.latency.ttftSeconds.p99.toFixed(2)} s`,
  );
  return r;
}

async function api(method: 'GET' | 'POST', path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** What Alertmanager would send for the rules in alerts/alerting.rules.yml while TTFT is over its SLO. */
async function fireAlerts(): Promise<void> {
  const now = new Date();
  const labels = { service: 'tuneloop', model: config.model.name, role: 'primary', job: 'tuneloop', instance: server.url.replace('http://', '') };
  const alert = (alertname: string, severity: string, summary: string, startedSecondsAgo: number) => ({
    status: 'firing',
    labels: { alertname, severity, ...labels },
    annotations: { summary, runbook: `alerts/RUNBOOK.md#${alertname.toLowerCase()}` },
    startsAt: new Date(now.getTime() - startedSecondsAgo * 1000).toISOString(),
    endsAt: '0001-01-01T00:00:00Z',
    fingerprint: createFingerprint(alertname),
  });
  for (const [a, severity] of [
    [alert('TuneloopTTFTP99OverSLO', 'critical', `TTFT p99 over its SLO on ${config.model.name} (primary)`, 60), 'critical'],
    [alert('TuneloopQueueGrowing', 'warning', `Request queue growing on ${config.model.name} (primary)`, 30), 'warning'],
  ] as const) {
    const r = await api('POST', '/api/alerts', webhookToken, {
      version: '4',
      receiver: 'tuneloop',
      status: 'firing',
      alerts: [a],
      groupLabels: { alertname: a.labels.alertname },
      commonLabels: a.labels,
      commonAnnotations: a.annotations,
      externalURL: 'http://alertmanager:9093',
    });
    log(`alert ${a.labels.alertname} (${severity}) → ${r.status}`);
  }
}

function createFingerprint(name: string): string {
  return hashToken(`${name}|${config.model.name}`).slice(0, 16);
}

/** POST /api/tuner/run, keep the traffic going while verification (and any apply and watch window) runs. */
async function cycle(n: number, seed: number): Promise<void> {
  const run = await api('POST', '/api/tuner/run', approverToken);
  const r = run.body?.run as { findings: { kind: string; summary: string }[]; proposals: { id: number; candidate: { change: unknown } }[] } | undefined;
  log(
    `cycle ${n}: ${run.status}, findings ${r?.findings.map((f) => f.kind).join(', ') || 'none'}; proposals ` +
      `${r?.proposals.map((p) => `#${p.id} ${JSON.stringify(p.candidate.change)}`).join(', ') || 'none'}`,
  );
  const ac = new AbortController();
  const traffic = load(8, 600, seed, ac.signal);
  await tuned.tuner.idle();
  // An applied change is watched: let the watch window finish under the same traffic.
  const watching = (): boolean => store.listProposals({ state: 'watching' }).length > 0;
  while (watching()) await new Promise((res) => setTimeout(res, 1000));
  ac.abort();
  await traffic;
  for (const p of r?.proposals ?? []) {
    const d = store.getProposal(p.id);
    log(`  #${p.id}: ${d?.state}, verdict ${d?.evidence?.verdict ?? '-'}${d?.evidence ? ` (${d.evidence.reasons.join('; ')})` : ''}`);
  }
}

try {
  await load(8, phaseS / 3, 1);
  await fireAlerts();
  await load(8, (2 * phaseS) / 3, 2);
  await cycle(1, 3);
  await load(8, phaseS, 4);
  await cycle(2, 5);
  await load(12, phaseS / 2, 6);
  clearInterval(ticker);
  await tuned.tuner.monitorTick('example');

  const week = formatIsoWeek(isoWeekOf(startedMs, config.tuner.timezone));
  if (formatIsoWeek(isoWeekOf(Date.now(), config.tuner.timezone)) !== week) log(`warning: the run crossed into the next ISO week; reporting ${week}`);
  const minutes = (Date.now() - startedMs) / 60_000;
  const dataNote =
    `This is an example, not a production week: the windows are ${tickS} s long (not one minute), from a ` +
    `${minutes.toFixed(0)}-minute load run of the shipped model on ${availableParallelism()} CPU cores that started with ` +
    `scheduler.maxBatchSize 1, with a TTFT objective of ${config.slo.ttftP99Seconds} s; the thresholds for ranking ` +
    'bottlenecks were lowered to 1 min and 100 requests for it (tools/make-example-report.ts).';
  writeFileSync(join(dir, 'note.json'), JSON.stringify({ week, dataNote }));
  await writeExample(store, config, { week, dataNote });
} finally {
  clearInterval(ticker);
  await server.close();
  await tuned.close();
  await engine.close();
  store.close();
  if (values['keep-store']) log(`store kept at ${config.tuner.storePath}`);
  else rmSync(dir, { recursive: true, force: true });
}
