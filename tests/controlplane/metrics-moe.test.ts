// The MoE and KV-size families: how engine.stats().moe and engine.info.moe become Prometheus series (bounded label
// sets, the windowed imbalance gauge), read through a real prom-client registry and checked by promtool. The stats are
// a real engine's (the shipped dense model, one thread) with an `moe` section added in the shape the engine reports
// (src/engine/types.ts MoeStats): the engine's MoE is not merged yet, and this tests the translation only. Routing
// counts are those of a trained router (skewed: the hottest expert takes ~26% of a layer's tokens).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineOptionsFromConfig, loadConfig } from '../../src/config/load.js';
import { Engine, type EngineStats, type ModelInfo, type MoeStats } from '../../src/engine/index.js';
import { MAX_EXPERT_LABELS, MAX_LAYER_LABELS, RoutingWindow, routingImbalance } from '../../src/metrics/expert-routing.js';
import { createMetrics, type StatsSource } from '../../src/metrics/registry.js';

const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).status === 0;
const PROMTOOL_NOTE = hasPromtool ? '' : ' [SKIPPED: promtool not on PATH — apt-get install prometheus]';

/** Per-expert counts of one layer of a trained 8-expert router (top-2). */
const SKEWED = [17005, 138, 2, 10023, 6189, 726, 16708, 36329];
const FLAT = [11000, 10800, 11300, 10900, 11100, 10950, 11050, 10900];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const of = (samples: Sample[], name: string): Sample[] => samples.filter((s) => s.name === name);

function moeStats(tokensPerExpert: number[][], moeLayers = tokensPerExpert.map((_, i) => i + 1)): MoeStats {
  return {
    expertCount: tokensPerExpert[0]!.length,
    expertUsed: 2,
    sharedExperts: 1,
    moeLayers,
    tokensPerExpert,
    epDegree: 2,
    redundantExperts: [{ layer: 1, expert: 7 }],
    allToAllSeconds: [1.25, 1.5],
    allToAlls: 4200,
    expertSecondsPerRank: [9.5, 3.25],
  };
}

const MOE_INFO: NonNullable<ModelInfo['moe']> = {
  expertCount: 8,
  expertUsed: 2,
  sharedExperts: 1,
  leadingDenseLayers: 1,
  gating: 'sigmoid',
  activeParams: 1_900_000,
  totalParams: 5_400_000,
  activeWeightBytesPerToken: 3_800_000,
};

/** A source serving the real engine's stats and info with `moe` from `current()` added. */
function moeSource(engine: Engine, current: () => MoeStats, info: Partial<ModelInfo> = { moe: MOE_INFO, kvBytesPerToken: 4608, kvBytesPerTokenMha: 32768 }): StatsSource {
  return {
    stats: (): EngineStats => ({ ...engine.stats(), moe: current() }),
    get info(): ModelInfo {
      return { ...engine.info, ...info };
    },
  };
}

describe('MoE metric families', () => {
  const config = loadConfig({ overrides: { 'model.threads': '1', 'model.name': 'moe-test' } });
  let engine: Engine;

  beforeAll(async () => {
    engine = await Engine.load(engineOptionsFromConfig(config));
  });
  afterAll(async () => {
    await engine.close();
  });

  it('a dense engine has no MoE series', async () => {
    const text = await createMetrics({ engine, config }).metricsText();
    expect(parse(text).filter((s) => s.name.startsWith('tuneloop_moe_') || s.name === 'tuneloop_model_parameters')).toEqual([]);
    // The families exist (HELP/TYPE) so dashboards and rules can name them.
    expect(text).toContain('# TYPE tuneloop_moe_expert_tokens_total counter');
    expect(text).toContain('# TYPE tuneloop_moe_expert_load_imbalance_ratio gauge');
  });

  it('routing counts per layer and expert, imbalance, all-to-all, busy time, parameters and KV bytes', async () => {
    let moe = moeStats([SKEWED, FLAT], [1, 2]);
    const metrics = createMetrics({ engine: moeSource(engine, () => moe), config });
    const s = parse(await metrics.metricsText());

    const tokens = of(s, 'tuneloop_moe_expert_tokens_total');
    expect(tokens).toHaveLength(16);
    expect(tokens.find((x) => x.labels['layer'] === '1' && x.labels['expert'] === '7')?.value).toBe(36329);
    expect(tokens.every((x) => x.labels['model'] === 'moe-test' && x.labels['role'] === 'primary')).toBe(true);

    // First scrape: the window is everything since load.
    const imbalance = new Map(of(s, 'tuneloop_moe_expert_load_imbalance_ratio').map((x) => [x.labels['layer'], x.value]));
    expect(imbalance.get('1')).toBeCloseTo(36329 / (SKEWED.reduce((a, b) => a + b) / 8), 9);
    expect(imbalance.get('1')).toBeGreaterThan(3);
    expect(imbalance.get('2')).toBeLessThan(1.05);

    expect(of(s, 'tuneloop_moe_alltoall_seconds_total').map((x) => [x.labels['rank'], x.value])).toEqual([
      ['0', 1.25],
      ['1', 1.5],
    ]);
    expect(of(s, 'tuneloop_moe_alltoalls_total').map((x) => x.value)).toEqual([4200]);
    expect(of(s, 'tuneloop_moe_expert_busy_seconds_total').map((x) => x.value)).toEqual([9.5, 3.25]);
    expect(of(s, 'tuneloop_moe_redundant_experts').map((x) => x.value)).toEqual([1]);
    expect(of(s, 'tuneloop_config_ep_degree').map((x) => x.value)).toEqual([2]);
    expect(Object.fromEntries(of(s, 'tuneloop_moe_experts').map((x) => [x.labels['kind'], x.value]))).toEqual({ routed: 8, used: 2, shared: 1 });
    expect(Object.fromEntries(of(s, 'tuneloop_model_parameters').map((x) => [x.labels['kind'], x.value]))).toEqual({ active: 1_900_000, total: 5_400_000 });
    expect(of(s, 'tuneloop_model_active_weight_bytes_per_token').map((x) => x.value)).toEqual([3_800_000]);
    expect(Object.fromEntries(of(s, 'tuneloop_kv_cache_bytes_per_token').map((x) => [x.labels['kind'], x.value]))).toEqual({ model: 4608, mha: 32768 });

    // Next window: layer 1's new traffic is flat, layer 2's skewed: the gauge follows the window, not the totals.
    moe = moeStats([SKEWED.map((c) => c + 1000), FLAT.map((c, e) => c + (e === 0 ? 5000 : 100))], [1, 2]);
    const s2 = parse(await metrics.metricsText());
    const w2 = new Map(of(s2, 'tuneloop_moe_expert_load_imbalance_ratio').map((x) => [x.labels['layer'], x.value]));
    expect(w2.get('1')).toBeCloseTo(1, 9);
    expect(w2.get('2')).toBeCloseTo(5000 / (5700 / 8), 9);

    // A window with too few tokens (2 per expert) reports nothing for that layer, and keeps growing.
    moe = moeStats([SKEWED.map((c) => c + 1000 + 2), FLAT.map((c, e) => c + (e === 0 ? 5000 : 100) + 2)], [1, 2]);
    expect(of(parse(await metrics.metricsText()), 'tuneloop_moe_expert_load_imbalance_ratio')).toEqual([]);
  });

  it('caps the label sets: 64 expert values per layer and 64 layers, the rest summed as "other"', async () => {
    const nLayers = 70,
      nExperts = 256;
    // Expert e of layer l routed l + e tokens: every sum is known in closed form.
    const counts = Array.from({ length: nLayers }, (_, l) => Array.from({ length: nExperts }, (_, e) => l + e));
    const layers = counts.map((_, i) => i + 3);
    const metrics = createMetrics({ engine: moeSource(engine, () => moeStats(counts, layers)), config });
    const s = parse(await metrics.metricsText());
    const tokens = of(s, 'tuneloop_moe_expert_tokens_total');
    const layerValues = new Set(tokens.map((x) => x.labels['layer']));
    expect(layerValues.size).toBe(MAX_LAYER_LABELS + 1);
    expect(layerValues.has('other')).toBe(true);
    expect(layerValues.has('66')).toBe(true); // the 64th MoE layer, block 66
    expect(layerValues.has('67')).toBe(false);
    for (const layer of layerValues) {
      const experts = tokens.filter((x) => x.labels['layer'] === layer).map((x) => x.labels['expert']);
      expect(experts.length).toBe(MAX_EXPERT_LABELS);
      expect(experts).toContain('other');
      expect(experts).toContain(String(MAX_EXPERT_LABELS - 2));
    }
    // Sums stay exact: every routed token is in exactly one series.
    const total = counts.flat().reduce((a, b) => a + b, 0);
    expect(tokens.reduce((a, x) => a + x.value, 0)).toBe(total);
    const l3other = tokens.find((x) => x.labels['layer'] === '3' && x.labels['expert'] === 'other')!.value;
    expect(l3other).toBe(Array.from({ length: nExperts - (MAX_EXPERT_LABELS - 1) }, (_, i) => i + MAX_EXPERT_LABELS - 1).reduce((a, b) => a + b, 0));
    // Imbalance: one series per layer label, "other" the worst of the capped layers.
    const imb = of(s, 'tuneloop_moe_expert_load_imbalance_ratio');
    expect(imb).toHaveLength(MAX_LAYER_LABELS + 1);
    const worstCapped = Math.max(...counts.slice(MAX_LAYER_LABELS).map(routingImbalance));
    expect(imb.find((x) => x.labels['layer'] === 'other')!.value).toBeCloseTo(worstCapped, 12);
  });

  it.skipIf(!hasPromtool)(`passes promtool check metrics${PROMTOOL_NOTE}`, async () => {
    const metrics = createMetrics({ engine: moeSource(engine, () => moeStats([SKEWED, FLAT], [1, 2])), config });
    const file = join(mkdtempSync(join(tmpdir(), 'tuneloop-moe-metrics-')), 'metrics.txt');
    writeFileSync(file, await metrics.metricsText());
    const r = spawnSync('sh', ['-c', `promtool check metrics < "${file}"`], { encoding: 'utf8' });
    expect((r.stdout + r.stderr).trim()).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('RoutingWindow', () => {
  it('restarts from zero when a counter goes down (a new engine) or the shape changes (another model)', () => {
    const w = new RoutingWindow();
    expect(w.advance([SKEWED])[0]).toBeCloseTo(routingImbalance(SKEWED), 12);
    // Counters reset: the new counts are the whole window.
    expect(w.advance([FLAT])[0]).toBeCloseTo(routingImbalance(FLAT), 12);
    expect(w.advance([FLAT, SKEWED])).toEqual([routingImbalance(FLAT), routingImbalance(SKEWED)]);
  });

  it('max/mean: 1 when balanced, the expert count when one expert takes everything, NaN when nothing was routed', () => {
    expect(routingImbalance([5, 5, 5, 5])).toBe(1);
    expect(routingImbalance([0, 0, 12, 0])).toBe(4);
    expect(routingImbalance([0, 0])).toBeNaN();
  });
});
