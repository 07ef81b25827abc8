// The Grafana dashboards: committed JSON matches the TypeScript builders, and every panel query
// names metrics and labels a real engine's /metrics actually exposes.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { buildDashboards, renderDashboardJson } from '../../grafana/src/index.js';
import { engineOptionsFromConfig, loadConfig } from '../../src/config/load.js';
import { createMetrics } from '../../src/metrics/registry.js';
import { Engine, type EngineStats, type ModelInfo } from '../../src/engine/index.js';
import { MOE_ROW, dashboardsCommand, dashboardsDir, listDashboardQueries, loadDashboards, renderDashboardSummary } from '../../src/observability/dashboards.js';

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
    // The MoE row's families only have series for an MoE model. Until the engine's MoE is merged, a second binding
    // serves this engine's stats with an `moe` section in the shape the engine reports (src/engine/types.ts MoeStats):
    // the families' own translation code produces the series and labels the queries are checked against.
    // After the merge: load a synthetic MoE model (tests/helpers/arch-models.ts) here instead.
    metrics.attachEngine(moeStandIn(engine), 'shadow', 'moe-stand-in');
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

function moeStandIn(engine: Engine): { stats(): EngineStats; readonly info: ModelInfo } {
  const counts = [
    [17005, 138, 2, 10023, 6189, 726, 16708, 36329],
    [9000, 9100, 8900, 9050, 8950, 9000, 9020, 8980],
  ];
  return {
    stats: () => ({
      ...engine.stats(),
      moe: {
        expertCount: 8,
        expertUsed: 2,
        sharedExperts: 1,
        moeLayers: [1, 2],
        tokensPerExpert: counts,
        epDegree: 2,
        redundantExperts: [{ layer: 1, expert: 7 }],
        allToAllSeconds: [0.5, 0.75],
        allToAlls: 1200,
        expertSecondsPerRank: [4, 1.5],
      },
    }),
    get info(): ModelInfo {
      return {
        ...engine.info,
        moe: {
          expertCount: 8,
          expertUsed: 2,
          sharedExperts: 1,
          leadingDenseLayers: 1,
          gating: 'sigmoid',
          activeParams: 2e6,
          totalParams: 5e6,
          activeWeightBytesPerToken: 4e6,
        },
        kvBytesPerToken: 4608,
        kvBytesPerTokenMha: 32768,
      };
    },
  };
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
        if (p.type === 'row') {
          // Rows group the panels after them (engine.json's MoE row); they hold none themselves (not collapsed).
          expect(file).toBe('engine.json');
          expect('panels' in p ? p.panels : [], `${file} ${p.title}`).toEqual([]);
          expect(typeof p.id).toBe('number');
          ids.add(p.id!);
          continue;
        }
        if (!('targets' in p)) throw new Error(`${file}: panel ${p.title} has no targets`);
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
      for (const p of (d.panels ?? []).filter((x) => x.type !== 'row')) {
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

  it("put the MoE panels under the engine dashboard's MoE row: heatmap, imbalance, all-to-all share, active parameters", () => {
    const moe = listDashboardQueries(DIR).filter((q) => q.row === MOE_ROW);
    expect(new Set(moe.map((q) => q.dashboard))).toEqual(new Set(['tuneloop / Engine']));
    const exprs = moe.map((q) => q.expr).join('\n');
    for (const m of [
      'tuneloop_moe_expert_tokens_total',
      'tuneloop_moe_expert_load_imbalance_ratio',
      'tuneloop_moe_alltoall_seconds_total',
      'tuneloop_model_parameters',
    ]) {
      expect(exprs).toContain(m);
    }
    // Nothing outside the row reads an MoE-only family (a dense model's dashboards stay full).
    const outside = listDashboardQueries(DIR).filter((q) => q.row !== MOE_ROW);
    expect(outside.filter((q) => /tuneloop_moe_|tuneloop_model_parameters|_bytes_per_token/.test(q.expr))).toEqual([]);
  });

  describe('queries', () => {
    const queries = listDashboardQueries(DIR);
    let families: Map<string, Set<string>>;

    beforeAll(async () => {
      families = await scrapeFamilies();
    });

    afterAll(() => undefined);

    it('exist for every panel', () => {
      const panels = committed.flatMap((d) => (d.dashboard.panels ?? []).filter((p) => p.type !== 'row').map((p) => `${d.dashboard.title}/${p.title}`));
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
      for (const p of d.panels ?? []) {
        if (p.type === 'row') expect(summary).toContain(`== ${p.title} ==`);
        else expect(summary).toContain(`- ${p.title} [${p.type}, unit ${p.fieldConfig!.defaults!.unit}]`);
      }
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
