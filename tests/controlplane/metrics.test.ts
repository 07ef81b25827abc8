// The /metrics registry on a real engine (the shipped model, one thread): what a Prometheus server and its linter
// would see after real traffic.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineOptionsFromConfig, loadConfig } from '../../src/config/load.js';
import { createMetrics, type Metrics, type StatsSource } from '../../src/metrics/registry.js';
import { Engine, type GenerationResult } from '../../src/engine/index.js';

const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).status === 0;
const PROMTOOL_NOTE = hasPromtool ? '' : ' [SKIPPED: promtool not on PATH — apt-get install prometheus]';

/** `promtool check metrics < file`: exit status and everything it printed. */
function promtool(text: string): { status: number | null; output: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'tuneloop-metrics-')), 'metrics.txt');
  writeFileSync(file, text);
  const r = spawnSync('sh', ['-c', `promtool check metrics < "${file}"`], { encoding: 'utf8' });
  return { status: r.status, output: (r.stdout + r.stderr).trim() };
}

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): { types: Map<string, string>; samples: ParsedSample[] } {
  const types = new Map<string, string>();
  const samples: ParsedSample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

function values(samples: ParsedSample[], name: string, match: Record<string, string> = {}): number[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).map((s) => s.value);
}

function single(samples: ParsedSample[], name: string, match: Record<string, string> = {}): number {
  const v = values(samples, name, match);
  expect(v, `${name} ${JSON.stringify(match)}: exactly one sample`).toHaveLength(1);
  return v[0]!;
}

const SECRET = 'ZEBRA QUOKKA prompt text';
const N_REQUESTS = 6;

describe('metrics registry on a real engine', () => {
  const config = loadConfig({ overrides: { 'model.threads': '1', 'model.name': 'shakespeare-test' } });
  let engine: Engine;
  let metrics: Metrics;
  let results: GenerationResult[];
  let stats = 0;
  let text: string;

  beforeAll(async () => {
    engine = await Engine.load(engineOptionsFromConfig(config));
    // Count crossings into the addon: a scrape must take exactly one snapshot.
    const counting: StatsSource = {
      stats: () => {
        stats++;
        return engine.stats();
      },
      get info() {
        return engine.info;
      },
    };
    metrics = createMetrics({ engine: counting, config });
    const gens = Array.from({ length: N_REQUESTS }, (_, i) => engine.generate({ prompt: `${SECRET} ${i}: ROMEO:`, maxTokens: 4 + i, temperature: 0, stopAtEos: false }));
    results = await Promise.all(gens.map((g) => g.result));
    // Requests resolve on the event loop before the engine publishes the step that retired them.
    for (let i = 0; i < 500 && engine.stats().requests.running + engine.stats().requests.waiting > 0; i++) {
      await new Promise((r) => setTimeout(r, 2));
    }
    metrics.observeRequest('/v1/completions', 200);
    metrics.observeRequest('/v1/completions', 400);
    metrics.observeError('invalid_request');
    metrics.observeConfigChange('maxBatchSize', 'api');
    stats = 0;
    text = await metrics.metricsText();
  });

  afterAll(async () => {
    await engine?.close();
  });

  it('reads the engine once per scrape', async () => {
    expect(stats).toBe(1);
    await metrics.metricsText();
    expect(stats).toBe(2);
    // An unpinned registry.metrics() (prom-client calls every family in one pass) also reads once.
    await metrics.registry.metrics();
    expect(stats).toBe(3);
  });

  it('exposes at least 60 metric families', () => {
    const families = text.split('\n').filter((l) => l.startsWith('# TYPE ')).length;
    expect(families).toBeGreaterThanOrEqual(60);
  });

  it.skipIf(!hasPromtool)(`passes promtool check metrics with nothing reported${PROMTOOL_NOTE}`, () => {
    const r = promtool(text);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('has every family the architecture names', () => {
    const { types } = parse(text);
    const expected: Record<string, string> = {
      tuneloop_requests_total: 'counter',
      tuneloop_request_errors_total: 'counter',
      tuneloop_requests_rejected_total: 'counter',
      tuneloop_requests_cancelled_total: 'counter',
      tuneloop_requests_running: 'gauge',
      tuneloop_requests_waiting: 'gauge',
      tuneloop_request_queue_time_seconds: 'histogram',
      tuneloop_time_to_first_token_seconds: 'histogram',
      tuneloop_inter_token_latency_seconds: 'histogram',
      tuneloop_e2e_request_latency_seconds: 'histogram',
      tuneloop_request_prompt_tokens: 'histogram',
      tuneloop_request_generation_tokens: 'histogram',
      tuneloop_prompt_tokens_total: 'counter',
      tuneloop_generation_tokens_total: 'counter',
      tuneloop_batch_size: 'histogram',
      tuneloop_batch_tokens: 'histogram',
      tuneloop_step_duration_seconds: 'histogram',
      tuneloop_batch_flush_total: 'counter',
      tuneloop_preemptions_total: 'counter',
      tuneloop_scheduler_steps_total: 'counter',
      tuneloop_kv_cache_blocks: 'gauge',
      tuneloop_kv_cache_usage_ratio: 'gauge',
      tuneloop_kv_cache_fragmentation_ratio: 'gauge',
      tuneloop_kv_cache_bytes_per_token: 'gauge',
      tuneloop_prefix_cache_queries_total: 'counter',
      tuneloop_prefix_cache_hits_total: 'counter',
      tuneloop_tp_rank_busy_seconds_total: 'counter',
      tuneloop_tp_allreduce_seconds_total: 'counter',
      tuneloop_op_seconds_total: 'counter',
      tuneloop_engine_memory_bytes: 'gauge',
      tuneloop_model_weight_bytes: 'gauge',
      tuneloop_engine_utilization_ratio: 'gauge',
      tuneloop_config_info: 'gauge',
      tuneloop_config_max_batch_size: 'gauge',
      tuneloop_config_changes_total: 'counter',
      tuneloop_slo_target_seconds: 'gauge',
      tuneloop_slo_error_rate_budget_ratio: 'gauge',
      tuneloop_tuner_runs_total: 'counter',
      tuneloop_tuner_proposals: 'gauge',
      tuneloop_shadow_requests_total: 'counter',
      tuneloop_shadow_similarity: 'histogram',
      tuneloop_verification_verdicts_total: 'counter',
      tuneloop_rollbacks_total: 'counter',
      tuneloop_tuner_last_run_timestamp_seconds: 'gauge',
      tuneloop_bottleneck_info: 'gauge',
      tuneloop_report_last_timestamp_seconds: 'gauge',
      tuneloop_engine_up: 'gauge',
      tuneloop_model_load_seconds: 'gauge',
      tuneloop_cold_starts_total: 'counter',
      tuneloop_build_info: 'gauge',
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) expect(types.get(name), name).toBe(type);
  });

  it('counts match the traffic that was sent', () => {
    const { samples } = parse(text);
    const base = { model: 'shakespeare-test', role: 'primary' };
    expect(single(samples, 'tuneloop_e2e_request_latency_seconds_count', base)).toBe(N_REQUESTS);
    expect(single(samples, 'tuneloop_time_to_first_token_seconds_count', base)).toBe(N_REQUESTS);
    expect(single(samples, 'tuneloop_requests_finished_total', base)).toBe(N_REQUESTS);
    const completion = results.reduce((a, r) => a + r.usage.completionTokens, 0);
    expect(completion).toBe(Array.from({ length: N_REQUESTS }, (_, i) => 4 + i).reduce((a, b) => a + b, 0));
    expect(single(samples, 'tuneloop_generation_tokens_total', base)).toBe(completion);
    expect(single(samples, 'tuneloop_request_generation_tokens_sum', base)).toBe(completion);
    expect(single(samples, 'tuneloop_prompt_tokens_total', base)).toBe(results.reduce((a, r) => a + r.usage.promptTokens, 0));
    // Each request has (completion - 1) gaps between tokens.
    expect(single(samples, 'tuneloop_inter_token_latency_seconds_count', base)).toBe(completion - N_REQUESTS);
    expect(single(samples, 'tuneloop_requests_running', base)).toBe(0);
    expect(single(samples, 'tuneloop_engine_up', base)).toBe(1);
    // The shipped model: 6 layers x 4 KV heads x (32 + 32) values, f32 by default; MHA over its 8 heads: twice that.
    expect(single(samples, 'tuneloop_kv_cache_bytes_per_token', { ...base, kind: 'model' })).toBe(6 * 4 * 64 * 4);
    expect(single(samples, 'tuneloop_kv_cache_bytes_per_token', { ...base, kind: 'mha' })).toBe(6 * 8 * 64 * 4);
    const util = single(samples, 'tuneloop_engine_utilization_ratio', base);
    expect(util).toBeGreaterThan(0);
    expect(util).toBeLessThanOrEqual(1);
    expect(single(samples, 'tuneloop_config_max_batch_size', base)).toBe(16);
    expect(single(samples, 'tuneloop_slo_target_seconds', { objective: 'ttft_p99' })).toBe(1);
    expect(single(samples, 'tuneloop_requests_total', { ...base, endpoint: '/v1/completions', status: '200' })).toBe(1);
    expect(single(samples, 'tuneloop_requests_total', { ...base, endpoint: '/v1/completions', status: '400' })).toBe(1);
    expect(single(samples, 'tuneloop_request_errors_total', { ...base, reason: 'invalid_request' })).toBe(1);
    expect(single(samples, 'tuneloop_config_changes_total', { ...base, knob: 'maxBatchSize', source: 'api' })).toBe(1);
    expect(single(samples, 'tuneloop_tuner_runs_total', { stage: 'verify', outcome: 'ok' })).toBe(0);
  });

  it('histogram buckets are cumulative, monotone, and end at +Inf = _count', () => {
    const { types, samples } = parse(text);
    let checked = 0;
    for (const [family, type] of types) {
      if (type !== 'histogram') continue;
      const buckets = samples.filter((s) => s.name === `${family}_bucket`);
      const series = new Map<string, ParsedSample[]>();
      for (const b of buckets) {
        const { le: _le, ...rest } = b.labels;
        const key = JSON.stringify(rest);
        series.set(key, [...(series.get(key) ?? []), b]);
      }
      for (const [key, bs] of series) {
        const les = bs.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)));
        for (let i = 1; i < bs.length; i++) {
          expect(les[i]!, `${family}${key}: le increases`).toBeGreaterThan(les[i - 1]!);
          expect(bs[i]!.value, `${family}${key}: cumulative`).toBeGreaterThanOrEqual(bs[i - 1]!.value);
        }
        expect(les.at(-1), `${family}${key}: last bucket is +Inf`).toBe(Infinity);
        const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === key);
        expect(count?.value, `${family}${key}: +Inf bucket = _count`).toBe(bs.at(-1)!.value);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(10);
  });

  it('never puts prompt text in a label value', () => {
    const { samples } = parse(text);
    for (const s of samples) {
      for (const v of Object.values(s.labels)) {
        expect(v).not.toContain('ZEBRA');
        expect(v).not.toContain('QUOKKA');
      }
    }
  });

  it('caps the distinct values of caller-given labels', async () => {
    const local = createMetrics({ engine, config });
    for (let i = 0; i < 100; i++) local.observeRequest(`/v1/x${i}`, 200);
    local.observeRequest('/v1/x0', 'not-a-status');
    const { samples } = parse(await local.metricsText());
    const endpoints = new Set(samples.filter((s) => s.name === 'tuneloop_requests_total').map((s) => s.labels.endpoint));
    expect(endpoints.size).toBeLessThanOrEqual(33);
    expect(endpoints.has('other')).toBe(true);
    expect(single(samples, 'tuneloop_requests_total', { endpoint: '/v1/x0', status: 'other' })).toBe(1);
  });

  it('exposes the vllm:* names only with metrics.compat: vllm', async () => {
    const VLLM = [
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:kv_cache_usage_perc',
      'vllm:time_to_first_token_seconds',
      'vllm:e2e_request_latency_seconds',
      'vllm:inter_token_latency_seconds',
      'vllm:prompt_tokens_total',
      'vllm:generation_tokens_total',
      'vllm:request_success_total',
      'vllm:num_preemptions_total',
      'vllm:prefix_cache_queries_total',
      'vllm:prefix_cache_hits_total',
    ];
    expect(text).not.toContain('vllm:');
    const vllm = createMetrics({ engine, config: { ...config, metrics: { ...config.metrics, compat: 'vllm' } } });
    const vtext = await vllm.metricsText();
    const { types, samples } = parse(vtext);
    for (const name of VLLM) expect(types.has(name), name).toBe(true);
    const m = { model_name: 'shakespeare-test' };
    expect(single(samples, 'vllm:e2e_request_latency_seconds_count', m)).toBe(N_REQUESTS);
    expect(single(samples, 'vllm:request_success_total', m)).toBe(N_REQUESTS);
    expect(single(samples, 'vllm:generation_tokens_total', m)).toBe(results.reduce((a, r) => a + r.usage.completionTokens, 0));
    if (hasPromtool) {
      // The one thing promtool's linter objects to is the ':' that vLLM put in its names.
      const r = promtool(vtext);
      const lines = r.output.split('\n').filter((l) => l.length > 0);
      expect(lines.length).toBe(VLLM.length);
      for (const l of lines) expect(l).toMatch(/^vllm:\S+ metric names should not contain ':'$/);
    }
  });

  it('reports engine_up 0 and no engine series while no engine is loaded', async () => {
    let current: Engine | undefined;
    const m = createMetrics({ engine: () => current, config });
    const down = parse(await m.metricsText());
    expect(single(down.samples, 'tuneloop_engine_up')).toBe(0);
    expect(values(down.samples, 'tuneloop_generation_tokens_total')).toEqual([]);
    current = engine;
    const up = parse(await m.metricsText());
    expect(single(up.samples, 'tuneloop_engine_up')).toBe(1);
  });

  it('reports a closed engine as down, and the text still passes promtool', async () => {
    await engine.close();
    const after = await metrics.metricsText();
    expect(single(parse(after).samples, 'tuneloop_engine_up')).toBe(0);
    if (hasPromtool) expect(promtool(after)).toEqual({ status: 0, output: '' });
  });
});
