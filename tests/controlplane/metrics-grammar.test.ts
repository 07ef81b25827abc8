// The grammar families (src/metrics/grammar-families.ts): a real engine (the shipped model) runs constrained
// generations, and its engine.stats().grammar comes out of a real prom-client registry as the tuneloop_grammar_*
// series docs/metrics.md lists.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineOptionsFromConfig, loadConfig } from '../../src/config/load.js';
import { Engine } from '../../src/engine/index.js';
import { createMetrics } from '../../src/metrics/registry.js';

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

describe('grammar metric families', () => {
  const config = loadConfig({ overrides: { 'model.threads': '1', 'model.name': 'grammar-test' } });
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load(engineOptionsFromConfig(config));
  });
  afterAll(async () => {
    await engine.close();
  });

  it('report requests, tokens, mask time, masks by source, finishes and triggers', async () => {
    const before = parse(await createMetrics({ engine, config }).metricsText());
    expect(before.find((s) => s.name === 'tuneloop_grammar_requests_total')?.value).toBe(0);

    await engine.generate({ prompt: 'ROMEO:', grammar: 'root ::= "to be or not"', maxTokens: 30, temperature: 0 }).result;
    await engine.generate({ prompt: 'ROMEO:', grammar: String.raw`root ::= "a" [^\x00-\U0010FFFF]`, maxTokens: 10, temperature: 0 }).result;
    await engine.generate({ prompt: 'ROMEO:\n', grammar: 'root ::= "e" [a-z]{0,8} "!"', grammarTriggers: ['e'], maxTokens: 60, temperature: 0 }).result;

    const text = await createMetrics({ engine, config }).metricsText();
    expect(text).toContain('# TYPE tuneloop_grammar_mask_seconds_total counter');
    const s = parse(text);
    const value = (name: string, labels: Record<string, string> = {}) =>
      s.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
    expect(value('tuneloop_grammar_requests_total')).toBe(3);
    expect(value('tuneloop_grammar_tokens_total')).toBeGreaterThan(0);
    expect(value('tuneloop_grammar_mask_seconds_total')).toBeGreaterThan(0);
    expect(value('tuneloop_grammar_finishes_total', { reason: 'complete' })).toBeGreaterThanOrEqual(1);
    expect(value('tuneloop_grammar_finishes_total', { reason: 'dead_end' })).toBe(1);
    expect(value('tuneloop_grammar_triggered_total')).toBe(1);
    const stats = engine.stats().grammar!;
    expect(value('tuneloop_grammar_masks_total', { source: 'computed' })).toBe(stats.masksComputed);
    expect(value('tuneloop_grammar_masks_total', { source: 'cached' })).toBe(stats.maskCacheHits);
    expect(value('tuneloop_grammar_fast_accepts_total')).toBe(stats.fastAccepts);
    expect(s.filter((x) => x.name.startsWith('tuneloop_grammar_')).every((x) => x.labels['model'] === 'grammar-test')).toBe(true);
  });
});
