// The Grafana dashboards: committed JSON matches the TypeScript builders, and every panel query
// names metrics and labels a real engine's /metrics actually exposes.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { buildDashboards, renderDashboardJson } from '../../grafana/src/index.js';
import { engineOptionsFromConfig, loadConfig } from '../../src/config/load.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { Engine } from '../../src/engine/index.js';
import { dashboardsCommand, dashboardsDir, listDashboardQueries, loadDashboards, renderDashboardSummary } from '../../src/observability/dashboards.js';

const DIR = dashboardsDir();
// Labels the Prometheus scrape adds; they are never in the exposition text.
const SCRAPE_LABELS = new Set(['instance', 'job']);

/** Metric name -> label names seen, from a live scrape of a real engine with every family populated. */
async function scrapeFamilies(): Promise<Map<string, Set<string>>> {
  const config = loadConfig({ overrides: { 'model.threads': '1' } });
  const engine = await Engine.load(engineOptionsFromConfig(config));
  try {
    const metrics = createMetrics({ engine, config });
    const gen = engine.generate({ prompt: 'ROMEO:', maxTokens: 4, temperature: 0, stopAtEos: false });
    await gen.result;
    // Labelled counters only get series once something happens; make them exist.
    metrics.observeRequest('/v1/completions', 200);
    metrics.observeError('invalid_request');
    metrics.observeConfigChange('maxBatchSize', 'api');
    const text = await metrics.metricsText();
    const families = new Map<string, Set<string>>();
    const add = (name: string): Set<string> => {
      let s = families.get(name);
      if (!s) families.set(name, (s = new Set()));
      return s;
    };
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)/.exec(line);
      if (type) {
        const [, name, kind] = type as unknown as [string, string, string];
        add(name);
        if (kind === 'histogram' || kind === 'summary') for (const s of ['_bucket', '_sum', '_count']) add(name + s);
        continue;
      }
      const series = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/.exec(line);
      if (series) {
        const labels = add(series[1]!);
        for (const m of series[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(m[1]!);
      }
    }
    return families;
  } finally {
    await engine.close();
  }
}

function balanced(expr: string): boolean {
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  const stack: string[] = [];
  let inString = false;
  for (const c of expr) {
    if (c === '"') inString = !inString;
    if (inString) continue;
    if ('([{'.includes(c)) stack.push(c);
    else if (c in pairs && stack.pop() !== pairs[c]) return false;
  }
  return stack.length === 0 && !inString;
}

describe('generated dashboards', () => {
  const built = buildDashboards();
  const committed = loadDashboards(DIR);

  it('are up to date with grafana/src (run `npm run dashboards` if this fails)', () => {
    expect(
      readdirSync(DIR)
        .filter((f) => f.endsWith('.json'))
        .sort(),
    ).toEqual(built.map((b) => b.file).sort());
    for (const b of built) {
      expect(readFileSync(join(DIR, b.file), 'utf8'), b.file).toBe(renderDashboardJson(b.dashboard));
    }
  });

  it('cover the five areas with unique uids', () => {
    const uids = committed.map((d) => d.dashboard.uid);
    expect(new Set(uids).size).toBe(5);
    expect(uids.sort()).toEqual(['tuneloop-capacity', 'tuneloop-engine', 'tuneloop-kv-cache', 'tuneloop-service', 'tuneloop-tuner']);
  });

  it('match the SDK Dashboard type with sane panels', () => {
    for (const { file, dashboard: raw } of committed) {
      // Typed through the SDK's Dashboard: the committed file is what the builders produced.
      const d = raw as dashboard.Dashboard;
      expect(d.title, file).toMatch(/^tuneloop \//);
      const ids = new Set<number>();
      for (const p of d.panels ?? []) {
        if (!('targets' in p)) throw new Error(`${file}: row panels are not expected`);
        expect(['timeseries', 'stat', 'heatmap'], `${file} ${p.title}`).toContain(p.type);
        expect(p.gridPos, `${file} ${p.title}`).toBeDefined();
        expect(p.datasource?.uid).toBe('tuneloop-prometheus');
        expect(typeof p.id).toBe('number');
        ids.add(p.id!);
      }
      expect(ids.size, `${file}: panel ids unique`).toBe(d.panels?.length);
      // Titles identify panels in listDashboardQueries() and the e2e report.
      expect(new Set((d.panels ?? []).map((p) => p.title)).size, `${file}: panel titles unique`).toBe(d.panels?.length);
    }
  });

  it('give every panel a unit, a description and at least one query', () => {
    for (const { file, dashboard: d } of committed) {
      expect(d.panels?.length ?? 0, file).toBeGreaterThan(5);
      for (const p of d.panels ?? []) {
        expect(p.fieldConfig?.defaults?.unit, `${file} ${p.title}`).toMatch(/\S/);
        expect(p.description, `${file} ${p.title}`).toMatch(/\S/);
        expect((p.targets ?? []).filter((t) => t.expr).length, `${file} ${p.title}`).toBeGreaterThan(0);
      }
    }
  });

  it('define instance and model query variables', () => {
    for (const { file, dashboard: d } of committed) {
      const vars = d.templating?.list ?? [];
      expect(
        vars.map((v) => v.name),
        file,
      ).toEqual(['instance', 'model']);
      expect(vars[0]!.query).toBe('label_values(tuneloop_build_info, instance)');
      expect(vars[1]!.query).toBe('label_values(tuneloop_model_info, model)');
    }
  });

  it('annotate config changes', () => {
    for (const { file, dashboard: d } of committed) {
      const exprs = (d.annotations?.list ?? []).map((a) => a.expr ?? '');
      expect(
        exprs.some((e) => e.includes('tuneloop_config_changes_total')),
        file,
      ).toBe(true);
    }
  });

  describe('queries', () => {
    const queries = listDashboardQueries(DIR);
    let families: Map<string, Set<string>>;

    beforeAll(async () => {
      families = await scrapeFamilies();
    });

    afterAll(() => undefined);

    it('exist for every panel', () => {
      const panels = committed.flatMap((d) => (d.dashboard.panels ?? []).map((p) => `${d.dashboard.title}/${p.title}`));
      const withQuery = new Set(queries.map((q) => `${q.dashboard}/${q.panel}`));
      for (const p of panels) expect(withQuery.has(p), p).toBe(true);
      expect(queries.every((q) => q.unit.length > 0)).toBe(true);
    });

    it('are balanced and use $__rate_interval for every range', () => {
      for (const q of queries) {
        expect(balanced(q.expr), q.expr).toBe(true);
        const ranges = [...q.expr.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]);
        for (const r of ranges) expect(r, `${q.panel}: ${q.expr}`).toBe('$__rate_interval');
        for (const fn of q.expr.matchAll(/\b(rate|increase|changes|irate)\(/g)) {
          expect(q.expr.slice(fn.index), q.expr).toMatch(/^\w+\([^[]*\[\$__rate_interval\]/);
        }
      }
    });

    it('name only metrics and labels a real engine exposes', () => {
      for (const q of queries) {
        for (const m of q.expr.matchAll(/\b((?:tuneloop|process)_[a-z0-9_]+)\b(\{([^}]*)\})?/g)) {
          const name = m[1]!;
          expect(families.has(name), `${q.panel}: unknown metric ${name}`).toBe(true);
          for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
            if (SCRAPE_LABELS.has(l[1]!)) continue;
            expect(families.get(name)!.has(l[1]!), `${q.panel}: ${name} has no label ${l[1]}`).toBe(true);
          }
        }
      }
    });

    it('select by $instance, and by $model where the metric has a model label', () => {
      for (const q of queries) {
        for (const m of q.expr.matchAll(/\b((?:tuneloop|process)_[a-z0-9_]+)\b(\{([^}]*)\})?/g)) {
          const sel = m[3] ?? '';
          expect(sel, `${q.panel}: ${m[1]} unfiltered`).toContain('instance=~"$instance"');
          if (families.get(m[1]!)?.has('model')) expect(sel, `${q.panel}: ${m[1]}`).toContain('model=~"$model"');
        }
      }
    });
  });

  it('summarise every panel with its unit', async () => {
    const summary = renderDashboardSummary(DIR);
    for (const { dashboard: d } of committed) {
      expect(summary).toContain(d.title!);
      for (const p of d.panels ?? []) expect(summary).toContain(`- ${p.title} [${p.type}, unit ${p.fieldConfig!.defaults!.unit}]`);
    }
    const writes: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = (s: string) => (writes.push(s), true);
    try {
      expect(await dashboardsCommand(['--list'])).toBe(0);
    } finally {
      process.stdout.write = orig;
    }
    expect(writes.length).toBe(listDashboardQueries().length);
  });
});
