// The Alertmanager webhook receiver: POST /api/alerts takes Alertmanager's webhook payload (version 4), records each
// alert in an `AlertInbox` and emits an 'alert' event for every firing one; GET /api/alerts lists what was recorded.
// Both routes need `Authorization: Bearer <alerts.webhookToken>`; with no token configured the routes do not exist
// (404), so an unconfigured server never accepts alerts from anyone.
//
// The 'alert' event is a hook: the tuner subscribes to it to run an out-of-schedule analysis when an SLO alert fires.
// Until the tuner lands nothing subscribes in production; the inbox is in memory (the tuner will persist it to SQLite).
import { EventEmitter } from 'node:events';
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { Counter, type Registry } from 'prom-client';
import { ControlPlaneError } from './errors.js';

export type AlertStatus = 'firing' | 'resolved';

/** One alert as recorded by the inbox (Alertmanager's alert plus where and when it arrived). */
export interface ReceivedAlert {
  /** Monotonic id within this inbox. */
  id: number;
  /** ISO time the webhook arrived. */
  receivedAt: string;
  /** The Alertmanager receiver that sent it. */
  receiver: string;
  status: AlertStatus;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  fingerprint: string;
  generatorURL?: string;
}

/** Alertmanager's webhook body (version 4), as far as we use it. */
export interface AlertmanagerWebhook {
  version: string;
  receiver: string;
  status: AlertStatus;
  alerts: {
    status: AlertStatus;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    startsAt: string;
    endsAt: string;
    fingerprint: string;
    generatorURL?: string;
  }[];
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  externalURL?: string;
  groupKey?: string;
  truncatedAlerts?: number;
}

export interface AlertInboxCounters {
  /** Webhook deliveries accepted. */
  webhooks: number;
  firing: number;
  resolved: number;
  /** Deliveries refused (bad token or malformed payload). */
  rejected: number;
}

export interface AlertInboxOptions {
  /** Most alerts kept; older ones are dropped first. Default 1000. */
  maxAlerts?: number;
  /** Registry to count tuneloop_alerts_received_total{severity,status} in (the server's metrics registry). */
  registry?: Registry;
  /** Called for every firing alert (same as listening to 'alert'). */
  onAlert?: (alert: ReceivedAlert) => void;
}

export interface AlertInboxEvents {
  alert: [ReceivedAlert];
}

const ALERTS_METRIC = 'tuneloop_alerts_received_total';
const SEVERITIES = new Set(['critical', 'warning', 'info', 'page', 'ticket', 'none']);

/** In-memory record of received alerts. Emits 'alert' for each firing alert (the tuner's trigger hook). */
export class AlertInbox extends EventEmitter<AlertInboxEvents> {
  private readonly alerts: ReceivedAlert[] = [];
  private readonly maxAlerts: number;
  private nextId = 1;
  private readonly metric: Counter<'severity' | 'status'> | undefined;
  readonly counters: AlertInboxCounters = { webhooks: 0, firing: 0, resolved: 0, rejected: 0 };

  constructor(opts: AlertInboxOptions = {}) {
    super();
    this.maxAlerts = opts.maxAlerts ?? 1000;
    if (opts.onAlert) this.on('alert', opts.onAlert);
    if (opts.registry) {
      const existing = opts.registry.getSingleMetric(ALERTS_METRIC);
      this.metric = (existing as Counter<'severity' | 'status'> | undefined) ?? new Counter({
        name: ALERTS_METRIC,
        help: 'Alerts received from Alertmanager on POST /api/alerts, by severity label and status (firing, resolved).',
        labelNames: ['severity', 'status'] as const,
        registers: [opts.registry],
      });
    }
  }

  /** Record one validated webhook delivery; returns the alerts recorded from it. */
  record(payload: AlertmanagerWebhook, now: Date = new Date()): ReceivedAlert[] {
    this.counters.webhooks++;
    const out: ReceivedAlert[] = [];
    for (const a of payload.alerts) {
      const rec: ReceivedAlert = {
        id: this.nextId++,
        receivedAt: now.toISOString(),
        receiver: payload.receiver,
        status: a.status,
        labels: { ...a.labels },
        annotations: { ...a.annotations },
        startsAt: a.startsAt,
        endsAt: a.endsAt,
        fingerprint: a.fingerprint,
        ...(a.generatorURL !== undefined ? { generatorURL: a.generatorURL } : {}),
      };
      this.alerts.push(rec);
      if (this.alerts.length > this.maxAlerts) this.alerts.shift();
      this.counters[a.status]++;
      // Label values come from alert rules, but guard anyway: an unknown severity is counted as 'other'.
      const sev = a.labels['severity'] ?? 'none';
      this.metric?.inc({ severity: SEVERITIES.has(sev) ? sev : 'other', status: a.status });
      out.push(rec);
    }
    // Emit after recording all, so a listener that reads list() sees the whole delivery.
    for (const rec of out) if (rec.status === 'firing') this.emit('alert', rec);
    return out;
  }

  /** Recorded alerts, oldest first (copies). */
  list(filter: { status?: AlertStatus } = {}): ReceivedAlert[] {
    return this.alerts.filter((a) => filter.status === undefined || a.status === filter.status).map((a) => structuredClone(a));
  }

  /** Counted a refused delivery (bad token, malformed body). */
  reject(): void {
    this.counters.rejected++;
  }
}

// ---- validation ----------------------------------------------------------------------------------------------

function invalid(field: string, what: string): ControlPlaneError {
  return new ControlPlaneError('CP_ERR_INVALID_REQUEST', `Invalid Alertmanager webhook payload: '${field}' ${what}`, { param: field });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: unknown, field: string, optional = false): Record<string, string> {
  if (v === undefined && optional) return {};
  if (!isObject(v)) throw invalid(field, 'must be an object of strings');
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') throw invalid(`${field}.${k}`, 'must be a string');
  return v as Record<string, string>;
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string') throw invalid(field, 'must be a string');
  return v;
}

function status(v: unknown, field: string): AlertStatus {
  if (v !== 'firing' && v !== 'resolved') throw invalid(field, "must be 'firing' or 'resolved'");
  return v;
}

/** Check a webhook body; throws CP_ERR_INVALID_REQUEST (400) naming the first bad field. */
export function parseAlertmanagerWebhook(body: unknown): AlertmanagerWebhook {
  if (!isObject(body)) throw invalid('body', 'must be a JSON object');
  if (body['version'] !== undefined && body['version'] !== '4') throw invalid('version', "must be '4' (Alertmanager webhook payload version)");
  const receiver = str(body['receiver'], 'receiver');
  const st = status(body['status'], 'status');
  if (!Array.isArray(body['alerts'])) throw invalid('alerts', 'must be an array');
  const alerts = body['alerts'].map((a: unknown, i: number) => {
    const f = `alerts[${i}]`;
    if (!isObject(a)) throw invalid(f, 'must be an object');
    const labels = stringMap(a['labels'], `${f}.labels`);
    if (typeof labels['alertname'] !== 'string' || labels['alertname'] === '') throw invalid(`${f}.labels.alertname`, 'must be a non-empty string');
    return {
      status: status(a['status'], `${f}.status`),
      labels,
      annotations: stringMap(a['annotations'], `${f}.annotations`, true),
      startsAt: str(a['startsAt'], `${f}.startsAt`),
      endsAt: a['endsAt'] === undefined ? '' : str(a['endsAt'], `${f}.endsAt`),
      fingerprint: a['fingerprint'] === undefined ? '' : str(a['fingerprint'], `${f}.fingerprint`),
      ...(typeof a['generatorURL'] === 'string' ? { generatorURL: a['generatorURL'] } : {}),
    };
  });
  const out: AlertmanagerWebhook = {
    version: '4',
    receiver,
    status: st,
    alerts,
    groupLabels: stringMap(body['groupLabels'], 'groupLabels', true),
    commonLabels: stringMap(body['commonLabels'], 'commonLabels', true),
    commonAnnotations: stringMap(body['commonAnnotations'], 'commonAnnotations', true),
  };
  if (typeof body['externalURL'] === 'string') out.externalURL = body['externalURL'];
  if (typeof body['groupKey'] === 'string') out.groupKey = body['groupKey'];
  if (typeof body['truncatedAlerts'] === 'number') out.truncatedAlerts = body['truncatedAlerts'];
  return out;
}

// ---- routes --------------------------------------------------------------------------------------------------

const sha = (s: string): Buffer => createHash('sha256').update(s).digest();

export interface AlertsRouterOptions {
  inbox: AlertInbox;
  /** alerts.webhookToken; '' disables the routes (404). */
  token: string;
  bodyLimit: number | string;
}

/** Router for /api/alerts (mount at /api). Errors go to the app's error handler (OpenAI-shaped bodies). */
export function alertsRouter(o: AlertsRouterOptions): Router {
  const router = express.Router();
  const digest = o.token === '' ? undefined : sha(o.token);
  const auth = (req: Request, _res: Response, next: NextFunction): void => {
    if (!digest) {
      return next(new ControlPlaneError('CP_ERR_ROUTE_NOT_FOUND', `Unknown request URL: ${req.method} ${req.baseUrl}${req.path} (the alerts webhook is disabled: set alerts.webhookToken)`));
    }
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    if (!m || !timingSafeEqual(sha(m[1]!), digest)) {
      o.inbox.reject();
      return next(new ControlPlaneError('CP_ERR_UNAUTHORIZED', m ? 'Incorrect alerts webhook token provided' : "You didn't provide the alerts webhook token: use the header 'Authorization: Bearer TOKEN'"));
    }
    next();
  };
  router.use('/alerts', auth);
  router.post('/alerts', express.json({ limit: o.bodyLimit }), (req, res) => {
    let payload: AlertmanagerWebhook;
    try {
      payload = parseAlertmanagerWebhook(req.body);
    } catch (e) {
      o.inbox.reject();
      throw e;
    }
    const recorded = o.inbox.record(payload);
    req.log?.info({ receiver: payload.receiver, status: payload.status, alerts: recorded.map((a) => `${a.labels['alertname']}:${a.status}`) }, 'alerts received');
    res.json({ status: 'ok', recorded: recorded.length });
  });
  router.get('/alerts', (req, res) => {
    const s = req.query['status'];
    const filter: { status?: AlertStatus } = s === 'firing' || s === 'resolved' ? { status: s } : {};
    res.json({ object: 'list', data: o.inbox.list(filter), counters: { ...o.inbox.counters } });
  });
  return router;
}
