// Alertmanager's webhook payload (version 4): its shape and a parser that checks an untrusted body field by field.
import type { AlertStatus, AlertmanagerWebhook } from './inbox.js';

/** A malformed webhook body; `field` names the first bad field (the HTTP layer maps it to a 400 with that param). */
export class AlertWebhookError extends Error {
  override readonly name = 'AlertWebhookError';
  constructor(
    readonly field: string,
    readonly what: string,
  ) {
    super(`Invalid Alertmanager webhook payload: '${field}' ${what}`);
  }
}

function invalid(field: string, what: string): AlertWebhookError {
  return new AlertWebhookError(field, what);
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

/** Check a webhook body; throws AlertWebhookError naming the first bad field. */
export function parseWebhook(body: unknown): AlertmanagerWebhook {
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
