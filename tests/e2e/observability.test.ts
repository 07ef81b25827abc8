// Proof against live systems: a real tuneloop (the shipped model, one thread), a real Prometheus scraping it and
// evaluating the committed rules, and a real Alertmanager delivering to tuneloop's webhook receiver.
//
//   1. Every query of every dashboard panel (listDashboardQueries, Grafana variables substituted) and every recording
//      rule (listRecordingRules) returns data from the live Prometheus.
//   2. A deliberately impossible SLO (slo.ttftP99Seconds 0.0001) makes the critical latency alert fire in Prometheus,
//      pass through Alertmanager and arrive at POST /api/alerts (the server's AlertInbox).
//
// Shortened timings, so the test stays under ~2.5 minutes: Prometheus scrapes and evaluates every second, and it loads
// *temporary copies* of alerts/*.rules.yml in which every group `interval` is 1s and every alert's `for:` is 5s; the
// temporary copy of alerts/alertmanager.yml has group_wait/group_interval 1s and its webhook URL and credentials file
// rewritten to this test's tuneloop. The expressions are the committed ones; the real `for:` durations and routing
// are covered by the promtool / amtool unit tests of alerts/.
//
// Skipped (with the reason in the test name) only when the prometheus / prometheus-alertmanager binaries are missing;
// CI installs them (Debian packages prometheus and prometheus-alertmanager).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { pino } from 'pino';
import { Engine } from '../../src/engine/index.js';
import { loadConfig } from '../../src/config/load.js';
import { serverOptionsFromConfig } from '../../src/serve.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { AlertInbox } from '../../src/alerts/inbox.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { runLoad } from '../../src/loadgen/index.js';
import { MOE_ROW, listDashboardQueries } from '../../src/observability/dashboards.js';
import { listAlerts, listRecordingRules } from '../../src/observability/alert-rules.js';
import { MODEL, MODEL_NAME, sleep } from '../controlplane/harness.js';
import { REPO_ROOT } from '../helpers/shared.js';

const which = (bin: string): string | undefined => {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
};
const PROMETHEUS = which('prometheus');
const ALERTMANAGER = which('prometheus-alertmanager') ?? which('alertmanager');
const MISSING = [PROMETHEUS ? '' : 'prometheus', ALERTMANAGER ? '' : 'prometheus-alertmanager'].filter(Boolean);
const SKIP_NOTE = MISSING.length ? ` [SKIPPED: ${MISSING.join(', ')} not on PATH — apt-get install prometheus prometheus-alertmanager]` : '';

const TOKEN = 'e2e-alert-webhook-token';
const ALERTS_DIR = join(REPO_ROOT, 'alerts');
/** Seconds of closed-loop traffic before the assertions (a slow background trickle keeps the rates alive after). */
const LOAD_S = 15;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Child {
  name: string;
  proc: ChildProcess;
  log: string;
}

function startChild(name: string, bin: string, args: string[], dir: string): Child {
  const log = join(dir, `${name}.log`);
  const fd = openSync(log, 'w');
  const proc = spawn(bin, args, { stdio: ['ignore', fd, fd], cwd: dir });
  closeSync(fd);
  return { name, proc, log };
}

async function stopChild(c: Child): Promise<void> {
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  const exited = new Promise<void>((res) => c.proc.once('exit', () => res()));
  c.proc.kill('SIGTERM');
  const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

function tail(file: string, n = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitUntil<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > until)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${lastErr instanceof Error ? lastErr.message : JSON.stringify(lastErr)}` : ''}`);
    await sleep(everyMs);
  }
}

/** Grafana's variables → values Prometheus accepts ($model, $instance, … match everything). */
function substituteGrafanaVars(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('${__rate_interval}', '1m')
    .replaceAll('$__interval_ms', '15000')
    .replaceAll('$__interval', '15s')
    .replaceAll('${__interval}', '15s')
    .replaceAll('$__range_ms', '300000')
    .replaceAll('$__range_s', '300')
    .replaceAll('$__range', '5m')
    .replaceAll('${__range}', '5m')
    .replace(/\$\{[A-Za-z_]\w*(?::\w+)?\}/g, '.*')
    .replace(/\$[A-Za-z_]\w*/g, '.*');
}

interface PromVector {
  resultType: string;
  result: { metric: Record<string, string>; value?: [number, string] }[];
}

/** Rewrite alert rule files for speed: group interval 1s, every alert's `for:` 5s (expressions untouched). */
function fastRules(file: string, forDuration: string | undefined): string {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { groups: { interval?: string; rules: { alert?: string; for?: string }[] }[] };
  for (const g of doc.groups) {
    g.interval = '1s';
    if (forDuration) for (const r of g.rules) if (r.alert && r.for !== undefined) r.for = forDuration;
  }
  return toYaml(doc);
}

interface AmRoute {
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: AmRoute[];
}

/** The committed Alertmanager config with its timers shortened and the webhook to tuneloop (the one whose URL ends in
 *  /api/alerts) pointed at this test's server and token file. The other receivers (pager, ticket, digest) keep their
 *  placeholder URLs: their deliveries fail, which Alertmanager only logs. */
function fastAlertmanagerConfig(file: string, webhookUrl: string, credentialsFile: string): string {
  const doc = parseYaml(readFileSync(file, 'utf8')) as {
    route: AmRoute;
    receivers: { name: string; webhook_configs?: { url?: string; http_config?: Record<string, unknown> }[] }[];
  };
  const shorten = (r: AmRoute): void => {
    r.group_wait = '1s';
    r.group_interval = '1s';
    for (const c of r.routes ?? []) shorten(c);
  };
  shorten(doc.route);
  let webhooks = 0;
  for (const rc of doc.receivers ?? []) {
    for (const w of rc.webhook_configs ?? []) {
      if (!w.url || !/\/api\/alerts\/?$/.test(w.url)) continue;
      w.url = webhookUrl;
      const { bearer_token: _bt, bearer_token_file: _btf, ...http } = w.http_config ?? {};
      w.http_config = { ...http, authorization: { type: 'Bearer', credentials_file: credentialsFile } };
      webhooks++;
    }
  }
  if (webhooks === 0) throw new Error(`${file} has no webhook to tuneloop's POST /api/alerts`);
  return toYaml(doc);
}

describe.skipIf(MISSING.length > 0)(`observability against live Prometheus + Alertmanager${SKIP_NOTE}`, () => {
  let dir = '';
  const children: Child[] = [];
  let engine: Engine | undefined;
  let server: RunningServer | undefined;
  let inbox: AlertInbox;
  let promUrl = '';
  const background = new AbortController();
  let backgroundLoad: Promise<unknown> | undefined;
  const timings: Record<string, number> = {};
  const t0 = Date.now();
  const mark = (k: string): void => {
    timings[k] = (Date.now() - t0) / 1000;
  };

  async function promQuery(expr: string): Promise<PromVector> {
    const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await r.json()) as { status: string; data?: PromVector; error?: string };
    if (body.status !== 'success' || !body.data) throw new Error(`query ${expr}: ${body.error ?? r.status}`);
    return body.data;
  }

  function logsOnFailure(): string {
    return children.map((c) => `--- ${c.name} (${c.log})\n${tail(c.log)}`).join('\n');
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-e2e-obs-'));
    // tuneloop, wired as `tuneloop serve` wires it: config → server options, metrics registry, alert inbox.
    const config = loadConfig({
      overrides: { 'slo.ttftP99Seconds': '0.0001', 'alerts.webhookToken': TOKEN, 'model.path': MODEL, 'model.threads': '1' },
    });
    engine = await Engine.load({ threads: 1, model: MODEL });
    const metrics = createMetrics({ engine, config, modelName: MODEL_NAME });
    inbox = new AlertInbox({ registry: metrics.registry });
    server = await startServer({
      engine,
      options: { ...serverOptionsFromConfig(config), port: 0, modelName: MODEL_NAME },
      logger: pino({ level: 'silent' }),
      metricsHook: metrics,
      alerts: inbox,
    });
    mark('tuneloop up');

    const [promPort, amPort] = [await freePort(), await freePort()];
    promUrl = `http://127.0.0.1:${promPort}`;
    const credentials = join(dir, 'webhook-token');
    writeFileSync(credentials, TOKEN, { mode: 0o600 });
    const amConfig = join(dir, 'alertmanager.yml');
    writeFileSync(amConfig, fastAlertmanagerConfig(join(ALERTS_DIR, 'alertmanager.yml'), `${server.url}/api/alerts`, credentials));
    writeFileSync(join(dir, 'recording.rules.yml'), fastRules(join(ALERTS_DIR, 'recording.rules.yml'), undefined));
    writeFileSync(join(dir, 'alerting.rules.yml'), fastRules(join(ALERTS_DIR, 'alerting.rules.yml'), '5s'));
    const promConfig = join(dir, 'prometheus.yml');
    writeFileSync(
      promConfig,
      toYaml({
        global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
        rule_files: [join(dir, 'recording.rules.yml'), join(dir, 'alerting.rules.yml')],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${amPort}`] }] }] },
        scrape_configs: [{ job_name: 'tuneloop', static_configs: [{ targets: [`127.0.0.1:${server.port}`] }] }],
      }),
    );

    children.push(
      startChild(
        'alertmanager',
        ALERTMANAGER!,
        [`--config.file=${amConfig}`, `--storage.path=${join(dir, 'am-data')}`, `--web.listen-address=127.0.0.1:${amPort}`, '--cluster.listen-address='],
        dir,
      ),
    );
    children.push(
      startChild(
        'prometheus',
        PROMETHEUS!,
        [`--config.file=${promConfig}`, `--storage.tsdb.path=${join(dir, 'prom-data')}`, `--web.listen-address=127.0.0.1:${promPort}`],
        dir,
      ),
    );
    try {
      await waitUntil('Alertmanager ready', async () => ((await fetch(`http://127.0.0.1:${amPort}/-/ready`)).ok ? true : undefined), 30_000);
      await waitUntil('Prometheus ready', async () => ((await fetch(`${promUrl}/-/ready`)).ok ? true : undefined), 30_000);
      await waitUntil(
        'the tuneloop target up',
        async () => {
          const v = await promQuery('up{job="tuneloop"}');
          return v.result[0]?.value?.[1] === '1' ? true : undefined;
        },
        20_000,
      );
    } catch (e) {
      throw new Error(`${String(e)}\n${logsOnFailure()}`, { cause: e });
    }
    mark('prometheus + alertmanager up');

    // A few client errors so the error families have series (an unknown model → 404).
    for (let i = 0; i < 3; i++) {
      await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'nope', prompt: 'x' }),
      });
    }
    // Closed loop, a few streams: every TTFT is far above the 0.1 ms objective.
    await runLoad({ url: server.url, concurrency: 3, durationS: LOAD_S, outputLen: '16', seed: 1, drainTimeoutS: 10 });
    mark('load done');
    // Keep a trickle going so the 1m rates stay non-empty while the assertions run.
    backgroundLoad = runLoad({ url: server.url, concurrency: 1, durationS: 600, outputLen: '8', seed: 2, signal: background.signal, drainTimeoutS: 1 }).catch(
      () => undefined,
    );
  }, 120_000);

  afterAll(async () => {
    background.abort();
    await Promise.race([backgroundLoad, sleep(5000)]);
    await Promise.all(children.map((c) => stopChild(c).catch(() => undefined)));
    await server?.close().catch(() => undefined);
    await engine?.close().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
    mark('torn down');
    process.stderr.write(`observability e2e timings (s since start): ${JSON.stringify(timings)}\n`);
  }, 60_000);

  it('every recording rule returns data', async () => {
    const rules = listRecordingRules();
    expect(rules.length).toBeGreaterThan(0);
    const names = rules.map((r) => r.name);
    // Rules evaluate every second in the fast copy; give each group a few rounds after the load.
    const empty = await waitUntil(
      'every recording rule to have data',
      async () => {
        const missing: string[] = [];
        for (const n of names) if ((await promQuery(n)).result.length === 0) missing.push(n);
        return missing.length === 0 ? [] : undefined;
      },
      20_000,
      1000,
    ).catch(async () => {
      const missing: string[] = [];
      for (const n of names) if ((await promQuery(n)).result.length === 0) missing.push(n);
      return missing;
    });
    expect(empty, `recording rules with no data:\n${empty.join('\n')}`).toEqual([]);
    mark(`${names.length} recording rules checked`);
  });

  it('every dashboard panel query returns data', async () => {
    // The shipped model is dense: the MoE row's families have no series for it (tests/observability/dashboards.test.ts
    // checks those queries against the families' names and labels). After the engine's MoE lands, a run serving the
    // tiny DeepSeek-style model covers them here too.
    const queries = listDashboardQueries().filter((q) => q.row !== MOE_ROW);
    expect(queries.length).toBeGreaterThan(0);
    const failures: string[] = [];
    for (const q of queries) {
      const expr = substituteGrafanaVars(q.expr);
      try {
        const v = await promQuery(expr);
        if (v.result.length === 0) failures.push(`${q.dashboard} / ${q.panel}: no data: ${expr}`);
      } catch (e) {
        failures.push(`${q.dashboard} / ${q.panel}: ${String(e)}`);
      }
    }
    expect(failures, `${failures.length} of ${queries.length} panel queries failed:\n${failures.join('\n')}`).toEqual([]);
    mark(`${queries.length} dashboard queries checked`);
  });

  it('an induced TTFT SLO breach fires the critical latency alert, through Alertmanager, into POST /api/alerts', async () => {
    // The critical alerts about latency (TTFT) in the committed rules.
    const critical = listAlerts().filter((a) => a.severity === 'critical' && /ttft|time_to_first_token/i.test(`${a.name} ${a.expr}`));
    expect(critical.length, 'alerts/alerting.rules.yml has a critical TTFT latency alert').toBeGreaterThan(0);
    const names = new Set(critical.map((a) => a.name));

    const firingInProm = await waitUntil(
      'the critical latency alert to fire in Prometheus',
      async () => {
        const r = await fetch(`${promUrl}/api/v1/alerts`);
        const body = (await r.json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
        const hit = body.data.alerts.find((a) => names.has(a.labels['alertname'] ?? '') && a.state === 'firing');
        return hit;
      },
      60_000,
      1000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${logsOnFailure()}`);
    });
    mark('alert firing in prometheus');

    const delivered = await waitUntil(
      'Alertmanager to deliver it to POST /api/alerts',
      async () => inbox.list({ status: 'firing' }).find((a) => a.labels['alertname'] === firingInProm.labels['alertname']),
      30_000,
      250,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${logsOnFailure()}`);
    });
    mark('alert delivered to tuneloop');
    expect(delivered.labels['severity']).toBe('critical');
    expect(delivered.receiver).toBe('tuneloop');
    expect(delivered.fingerprint).not.toBe('');
    expect(inbox.counters.rejected).toBe(0);
    // The delivery is counted on /metrics too.
    const text = await (await fetch(`${server!.url}/metrics`)).text();
    expect(text).toMatch(/tuneloop_alerts_received_total\{severity="critical",status="firing"\} [1-9]/);
  });
});
