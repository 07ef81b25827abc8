// Reads the Prometheus rule files shipped in alerts/ (recording.rules.yml, alerting.rules.yml), so tests and tools
// can list the recording rules and alerts without duplicating them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { packageRoot } from '../defaults.js';

interface RuleFile {
  groups?: { name: string; rules?: { record?: string; alert?: string; expr: string; labels?: Record<string, string> }[] }[];
}

function rules(file: string): NonNullable<NonNullable<RuleFile['groups']>[number]['rules']> {
  const doc = parse(readFileSync(join(packageRoot(), 'alerts', file), 'utf8')) as RuleFile;
  return (doc.groups ?? []).flatMap((g) => g.rules ?? []);
}

/** Every recording rule of alerts/recording.rules.yml, in file order. */
export function listRecordingRules(): { name: string; expr: string }[] {
  return rules('recording.rules.yml')
    .filter((r) => typeof r.record === 'string')
    .map((r) => ({ name: r.record as string, expr: r.expr.trim() }));
}

/** Every alert of alerts/alerting.rules.yml, in file order, with its `severity` label. */
export function listAlerts(): { name: string; severity: string; expr: string }[] {
  return rules('alerting.rules.yml')
    .filter((r) => typeof r.alert === 'string')
    .map((r) => ({ name: r.alert as string, severity: r.labels?.['severity'] ?? '', expr: r.expr.trim() }));
}
