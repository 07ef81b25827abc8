// The alert inbox: what Alertmanager told us. `AlertInbox` records each alert of a webhook delivery and emits an
// 'alert' event for every firing one; the tuner subscribes to it to run an out-of-schedule analysis when an SLO alert
// fires. The inbox is in memory; the tuner persists what it sees to its store. The HTTP route that feeds it lives in
// controlplane/alerts-api.ts; this floor knows nothing of HTTP.
import { EventEmitter } from 'node:events';
import { Counter, type Registry } from 'prom-client';

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
      this.metric =
        (existing as Counter<'severity' | 'status'> | undefined) ??
        new Counter({
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
