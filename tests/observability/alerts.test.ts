// alerts/: promtool/amtool validation, promtool unit tests, and structural checks of the rule files.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { packageRoot } from '../../src/defaults.js';
import { listAlerts, listRecordingRules } from '../../src/observability/alert-rules.js';

const root = packageRoot();
const alertsDir = join(root, 'alerts');
const has = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const run = (bin: string, args: string[]): { status: number | null; out: string } => {
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
};

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const alertRules: Rule[] = (parse(readFileSync(join(alertsDir, 'alerting.rules.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const runbook = readFileSync(join(alertsDir, 'RUNBOOK.md'), 'utf8');
const anchors = new Set(
  [...runbook.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
    m[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\w\- ]/g, '')
      .replace(/ /g, '-'),
  ),
);

describe.skipIf(!has('promtool'))('promtool', () => {
  it('check rules is clean', () => {
    const r = run('promtool', ['check', 'rules', join(alertsDir, 'recording.rules.yml'), join(alertsDir, 'alerting.rules.yml')]);
    expect(r.out).not.toMatch(/FAILED|WARNING/);
    expect(r.status, r.out).toBe(0);
  });
  it('unit tests pass', () => {
    const files = readdirSync(join(alertsDir, 'tests'))
      .filter((f) => f.endsWith('.test.yml'))
      .map((f) => join('alerts', 'tests', f));
    expect(files.length).toBeGreaterThan(0);
    const r = run('promtool', ['test', 'rules', ...files]);
    expect(r.status, r.out).toBe(0);
  }, 180_000);
  it('every alert has at least one firing unit test', () => {
    const tests = readdirSync(join(alertsDir, 'tests'))
      .filter((f) => f.endsWith('.test.yml'))
      .map((f) => readFileSync(join(alertsDir, 'tests', f), 'utf8'))
      .join('\n');
    for (const a of listAlerts()) {
      expect(tests, a.name).toMatch(new RegExp(`alertname: ${a.name}\\n\\s+eval_time: \\S+\\n\\s+exp_alerts:\\n\\s+- exp_labels:`));
      expect(tests, a.name).toMatch(new RegExp(`alertname: ${a.name}[\\s\\S]{0,40}exp_alerts: \\[\\]`));
    }
  });
});

describe.skipIf(!has('amtool'))('amtool', () => {
  it('check-config is clean', () => {
    const r = run('amtool', ['check-config', join(alertsDir, 'alertmanager.yml')]);
    expect(r.status, r.out).toBe(0);
  });
  it('routes by severity, critical and warning also to tuneloop', () => {
    const route = (labels: string[]): string =>
      execFileSync('amtool', ['config', 'routes', 'test', `--config.file=${join(alertsDir, 'alertmanager.yml')}`, ...labels], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    expect(route(['severity=critical', 'service=tuneloop'])).toBe('tuneloop,pager');
    expect(route(['severity=warning', 'service=tuneloop'])).toBe('tuneloop,ticket');
    expect(route(['severity=info', 'service=tuneloop'])).toBe('digest');
  });
});

describe('alertmanager.yml structure', () => {
  const am = parse(readFileSync(join(alertsDir, 'alertmanager.yml'), 'utf8')) as {
    receivers: { name: string; webhook_configs?: { url: string; http_config?: { authorization?: { type: string; credentials_file?: string } } }[] }[];
    inhibit_rules: { source_matchers: string[]; target_matchers: string[]; equal: string[] }[];
  };
  it('posts to tuneloop /api/alerts with a bearer credentials file that exists', () => {
    const wh = am.receivers.find((r) => r.name === 'tuneloop')!.webhook_configs![0]!;
    expect(wh.url).toMatch(/\/api\/alerts$/);
    expect(wh.http_config?.authorization?.type).toBe('Bearer');
    expect(existsSync(join(alertsDir, wh.http_config!.authorization!.credentials_file!))).toBe(true);
  });
  it('inhibits warning/info while a critical of the same service fires', () => {
    expect(am.inhibit_rules).toContainEqual(expect.objectContaining({ equal: ['service'] }));
  });
});

describe('alerting rules structure', () => {
  it('lists recording rules and alerts', () => {
    const rec = listRecordingRules();
    for (const m of ['time_to_first_token_seconds', 'inter_token_latency_seconds', 'e2e_request_latency_seconds'])
      for (const q of ['p50', 'p90', 'p99']) for (const w of ['1m', '5m']) expect(rec.map((r) => r.name)).toContain(`tuneloop:${m}:${q}_${w}`);
    for (const r of rec) expect(r.name).toMatch(/^tuneloop:[a-z0-9_]+:[a-z0-9_]+$/);
    expect(listAlerts().length).toBe(alertRules.length);
  });
  it.each(alertRules.map((r) => [r.alert!, r] as const))('%s is well-formed', (_name, r) => {
    expect(['critical', 'warning', 'info']).toContain(r.labels?.['severity']);
    expect(r.labels?.['service']).toBe('tuneloop');
    for (const k of ['summary', 'description', 'runbook']) expect(r.annotations?.[k], k).toBeTruthy();
    const m = /^alerts\/RUNBOOK\.md#(.+)$/.exec(r.annotations!['runbook']!);
    expect(m, r.annotations!['runbook']).not.toBeNull();
    expect(anchors.has(m![1]!), `anchor ${m![1]} in RUNBOOK.md`).toBe(true);
  });
  it('latency alerts take their thresholds from tuneloop_slo_target_seconds', () => {
    const latency = alertRules.filter((r) => /latency|time_to_first_token/.test(r.expr));
    expect(latency.length).toBe(3);
    for (const r of latency) expect(r.expr).toMatch(/tuneloop_slo_target_seconds\{objective="(ttft|inter_token|e2e)_p99"\}/);
  });
  it('error-budget alerts take their thresholds from tuneloop_slo_error_rate_budget_ratio', () => {
    const burn = alertRules.filter((r) => /request_errors/.test(r.expr));
    expect(burn.map((r) => r.labels!['severity']).sort()).toEqual(['critical', 'warning']);
    for (const r of burn) expect(r.expr).toMatch(/tuneloop_slo_error_rate_budget_ratio/);
  });
});
