// POST/GET /api/alerts: the Alertmanager webhook receiver (auth, payload validation, recording, the 'alert' hook,
// the tuneloop_alerts_received_total counter). The routes never touch the engine, so a stub stands in for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Engine } from '../../src/engine/engine.js';
import { DEFAULT_SERVER_OPTIONS } from '../../src/controlplane/app.js';
import { AlertInbox, type ReceivedAlert } from '../../src/alerts/inbox.js';
import { parseAlertmanagerWebhook } from '../../src/controlplane/alerts-api.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { loadConfig } from '../../src/config/load.js';
import { serverOptionsFromConfig } from '../../src/serve.js';
import { ControlPlaneError } from '../../src/controlplane/errors.js';

const TOKEN = 'am-secret-token';
const stubEngine = { isClosed: false } as unknown as Engine;

function payload(over: Record<string, unknown> = {}, alertOver: Record<string, unknown> = {}) {
  return {
    version: '4',
    groupKey: '{}:{alertname="TuneloopTTFTSLOBreach"}',
    truncatedAlerts: 0,
    status: 'firing',
    receiver: 'tuneloop',
    groupLabels: { alertname: 'TuneloopTTFTSLOBreach' },
    commonLabels: { alertname: 'TuneloopTTFTSLOBreach', severity: 'critical' },
    commonAnnotations: { summary: 'TTFT p99 above objective' },
    externalURL: 'http://am:9093',
    alerts: [
      {
        status: 'firing',
        labels: { alertname: 'TuneloopTTFTSLOBreach', severity: 'critical', model: 'tuneloop-shakespeare' },
        annotations: { summary: 'TTFT p99 above objective' },
        startsAt: '2026-01-01T00:00:00Z',
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://prom:9090/graph',
        fingerprint: 'abc123',
        ...alertOver,
      },
    ],
    ...over,
  };
}

async function post(url: string, body: unknown, token?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  return fetch(`${url}/api/alerts`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

describe('AlertInbox', () => {
  it('records every alert, emits alert for firing ones only, counts in the registry', () => {
    const registry = new Registry();
    const seen: ReceivedAlert[] = [];
    const viaOption: string[] = [];
    const inbox = new AlertInbox({ registry, onAlert: (a) => viaOption.push(a.fingerprint) });
    inbox.on('alert', (a) => seen.push(a));
    const p = parseAlertmanagerWebhook(payload({}, {}));
    p.alerts.push({ ...p.alerts[0]!, status: 'resolved', fingerprint: 'def', labels: { alertname: 'X', severity: 'warning' } });
    const rec = inbox.record(p);
    expect(rec.map((a) => a.id)).toEqual([1, 2]);
    expect(seen.map((a) => a.fingerprint)).toEqual(['abc123']);
    expect(viaOption).toEqual(['abc123']);
    expect(inbox.list().map((a) => a.status)).toEqual(['firing', 'resolved']);
    expect(inbox.list({ status: 'resolved' })).toHaveLength(1);
    expect(inbox.counters).toEqual({ webhooks: 1, firing: 1, resolved: 1, rejected: 0 });
    // A second inbox on the same registry reuses the family instead of throwing on a duplicate name.
    expect(() => new AlertInbox({ registry })).not.toThrow();
  });

  it('reports the counter by severity and status', async () => {
    const registry = new Registry();
    const inbox = new AlertInbox({ registry });
    inbox.record(parseAlertmanagerWebhook(payload()));
    inbox.record(parseAlertmanagerWebhook(payload({}, { labels: { alertname: 'Y', severity: 'made<up>' } })));
    const text = await registry.metrics();
    expect(text).toContain('tuneloop_alerts_received_total{severity="critical",status="firing"} 1');
    expect(text).toContain('tuneloop_alerts_received_total{severity="other",status="firing"} 1');
  });

  it('keeps at most maxAlerts, dropping the oldest', () => {
    const inbox = new AlertInbox({ maxAlerts: 2 });
    for (let i = 0; i < 3; i++) inbox.record(parseAlertmanagerWebhook(payload({}, { fingerprint: `f${i}` })));
    expect(inbox.list().map((a) => a.fingerprint)).toEqual(['f1', 'f2']);
  });

  it.each([
    [[], 'body'],
    [{ ...payload(), version: '3' }, 'version'],
    [{ ...payload(), receiver: 5 }, 'receiver'],
    [{ ...payload(), status: 'bogus' }, 'status'],
    [{ ...payload(), alerts: {} }, 'alerts'],
    [{ ...payload(), alerts: [null] }, 'alerts[0]'],
    [payload({}, { status: 'pending' }), 'alerts[0].status'],
    [payload({}, { labels: 'x' }), 'alerts[0].labels'],
    [payload({}, { labels: { severity: 'critical' } }), 'alerts[0].labels.alertname'],
    [payload({}, { labels: { alertname: 'A', n: 1 } }), 'alerts[0].labels.n'],
    [payload({}, { startsAt: 1 }), 'alerts[0].startsAt'],
    [payload({ commonLabels: [] }), 'commonLabels'],
  ])('refuses a malformed payload, naming the field (%#: %s)', (body, field) => {
    let err: unknown;
    try {
      parseAlertmanagerWebhook(body);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ControlPlaneError);
    expect((err as ControlPlaneError).status).toBe(400);
    expect((err as ControlPlaneError).param).toBe(field);
  });
});

describe('/api/alerts over HTTP', () => {
  let server: RunningServer;
  let disabled: RunningServer;
  const fired: ReceivedAlert[] = [];
  const registry = new Registry();

  beforeAll(async () => {
    const logger = pino({ level: 'silent' });
    const inbox = new AlertInbox({ registry, onAlert: (a) => fired.push(a) });
    server = await startServer({
      engine: stubEngine,
      options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: 'm', alertsWebhookToken: TOKEN, apiKeys: ['api-key'] },
      logger,
      alerts: inbox,
    });
    disabled = await startServer({ engine: stubEngine, options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: 'm' }, logger });
  });
  afterAll(async () => {
    await server?.close();
    await disabled?.close();
  });

  it('401 without a token or with a wrong one (the API key is not the webhook token), OpenAI error shape', async () => {
    for (const tok of [undefined, 'wrong', 'api-key']) {
      const r = await post(server.url, payload(), tok);
      expect(r.status).toBe(401);
      const body = (await r.json()) as { error: { code: string; type: string; message: string } };
      expect(body.error.code).toBe('invalid_api_key');
      expect(body.error.type).toBe('invalid_request_error');
    }
    expect((await fetch(`${server.url}/api/alerts`)).status).toBe(401);
    expect(server.alerts.list()).toHaveLength(0);
    expect(server.alerts.counters.rejected).toBe(4);
  });

  it('400 naming the field for a malformed payload, and for bad JSON', async () => {
    const r = await post(server.url, payload({}, { labels: { severity: 'critical' } }), TOKEN);
    expect(r.status).toBe(400);
    const body = (await r.json()) as { error: { param: string; message: string } };
    expect(body.error.param).toBe('alerts[0].labels.alertname');
    expect(body.error.message).toContain('alerts[0].labels.alertname');
    const j = await post(server.url, '{not json', TOKEN);
    expect(j.status).toBe(400);
    expect(((await j.json()) as { error: { code: string } }).error.code).toBe('malformed_json');
  });

  it('records a valid delivery, fires the hook, lists it on GET, counts it on the registry', async () => {
    const r = await post(server.url, payload(), TOKEN);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ok', recorded: 1 });
    expect(fired.map((a) => a.labels['alertname'])).toEqual(['TuneloopTTFTSLOBreach']);
    const g = await fetch(`${server.url}/api/alerts`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(g.status).toBe(200);
    const list = (await g.json()) as { data: ReceivedAlert[]; counters: { webhooks: number } };
    expect(list.data).toHaveLength(1);
    expect(list.data[0]).toMatchObject({ receiver: 'tuneloop', status: 'firing', fingerprint: 'abc123', labels: { severity: 'critical' } });
    expect(list.counters.webhooks).toBe(1);
    expect(await registry.metrics()).toContain('tuneloop_alerts_received_total{severity="critical",status="firing"} 1');
    // A resolved notification is recorded but does not trigger the hook.
    await post(server.url, payload({ status: 'resolved' }, { status: 'resolved', endsAt: '2026-01-01T00:05:00Z' }), TOKEN);
    expect(fired).toHaveLength(1);
    expect(server.alerts.list({ status: 'resolved' })).toHaveLength(1);
  });

  it('404 when no webhook token is configured (the routes are disabled)', async () => {
    const r = await post(disabled.url, payload(), 'anything');
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: { code: string; message: string } }).error.message).toContain('alerts.webhookToken');
  });

  it('config: alerts.webhookToken defaults to empty and comes from TUNELOOP_ALERTS_WEBHOOK_TOKEN', () => {
    expect(loadConfig().alerts.webhookToken).toBe('');
    const cfg = loadConfig({ env: { TUNELOOP_ALERTS_WEBHOOK_TOKEN: 's3cret' } });
    expect(cfg.alerts.webhookToken).toBe('s3cret');
    expect(serverOptionsFromConfig(cfg).alertsWebhookToken).toBe('s3cret');
    expect(loadConfig({ overrides: { 'alerts.webhookToken': '' } }).alerts.webhookToken).toBe('');
  });
});
