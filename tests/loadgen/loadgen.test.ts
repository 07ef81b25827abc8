// Load generator: the pure parts (arrivals, workload, percentiles, goodput, SSE parsing) and one run over real HTTP
// against a test double of the OpenAI streaming protocol (not of the engine: it streams canned tokens on a timer).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SseParser,
  apiRoot,
  buildReport,
  createRng,
  createWorkload,
  driveClosedLoop,
  driveOpenLoop,
  loadPromptFile,
  meetsSlo,
  parseLoadArgs,
  parseOutputLen,
  percentile,
  poissonArrivals,
  runLoad,
  sampleOutputLen,
  type RequestRecord,
  type SloTargets,
} from '../../src/loadgen/index.js';

describe('Poisson arrivals', () => {
  it('count over a long window is rate x duration within 4 sigma, for several seeds', () => {
    const rate = 50,
      dur = 200; // expect 10,000 arrivals, sd 100
    for (const seed of [1, 2, 3]) {
      const t = poissonArrivals(rate, dur, createRng(seed));
      expect(Math.abs(t.length - rate * dur)).toBeLessThan(4 * Math.sqrt(rate * dur));
      expect(t.every((x, i) => x >= 0 && x < dur && (i === 0 || x > t[i - 1]!))).toBe(true);
    }
  });

  it('inter-arrival gaps have mean 1/rate and the exponential coefficient of variation 1', () => {
    const t = poissonArrivals(10, 1000, createRng(7));
    const gaps = t.map((x, i) => x - (i ? t[i - 1]! : 0));
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
    expect(mean).toBeGreaterThan(0.1 * 0.97);
    expect(mean).toBeLessThan(0.1 * 1.03);
    expect(sd / mean).toBeGreaterThan(0.95);
    expect(sd / mean).toBeLessThan(1.05);
  });

  it('is reproducible from the seed, capped by maxRequests, and rejects bad rates', () => {
    expect(poissonArrivals(5, 10, createRng(42))).toEqual(poissonArrivals(5, 10, createRng(42)));
    expect(poissonArrivals(5, 10, createRng(42))).not.toEqual(poissonArrivals(5, 10, createRng(43)));
    expect(poissonArrivals(1000, 10, createRng(1), 17)).toHaveLength(17);
    expect(() => poissonArrivals(0, 10, createRng(1))).toThrow(/rate/);
    expect(() => poissonArrivals(1, -1, createRng(1))).toThrow(/duration/);
  });

  it('open loop sends on schedule and honours the concurrency cap; closed loop keeps C in flight', async () => {
    let inflight = 0,
      peak = 0;
    const fire = async () => {
      peak = Math.max(peak, ++inflight);
      await new Promise((r) => setTimeout(r, 30));
      inflight--;
    };
    const t0 = performance.now();
    const sent = await driveOpenLoop({ offsets: [0, 0, 0, 0, 0.05], concurrency: 2, fire });
    expect(sent).toBe(5);
    expect(peak).toBe(2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50);
    peak = 0;
    expect(await driveClosedLoop({ concurrency: 3, maxRequests: 10, fire })).toBe(10);
    expect(peak).toBe(3);
  });
});

describe('workload', () => {
  it('parses output-length distributions and rejects bad ones', () => {
    expect(parseOutputLen('64')).toEqual({ kind: 'fixed', tokens: 64 });
    expect(parseOutputLen('uniform:8-32')).toEqual({ kind: 'uniform', min: 8, max: 32 });
    expect(parseOutputLen('exp:40')).toEqual({ kind: 'exp', mean: 40 });
    expect(parseOutputLen('exp:2.5')).toEqual({ kind: 'exp', mean: 2.5 });
    for (const bad of ['0', '-3', '1.5', 'abc', 'uniform:9-3', 'uniform:0-3', 'uniform:3', 'exp:0', 'exp:', 'normal:5', '']) {
      expect(() => parseOutputLen(bad), bad).toThrow(/output-len/);
    }
  });

  it('samples within range, with the right mean', () => {
    const rng = createRng(3);
    const u = Array.from({ length: 5000 }, () => sampleOutputLen({ kind: 'uniform', min: 8, max: 12 }, rng));
    expect(Math.min(...u)).toBe(8);
    expect(Math.max(...u)).toBe(12);
    const e = Array.from({ length: 20000 }, () => sampleOutputLen({ kind: 'exp', mean: 50 }, rng));
    const mean = e.reduce((a, b) => a + b, 0) / e.length;
    expect(Math.min(...e)).toBeGreaterThanOrEqual(1);
    expect(mean).toBeGreaterThan(48);
    expect(mean).toBeLessThan(52);
  });

  it('is the same request by request for one seed, whatever order requests are asked in', () => {
    const a = createWorkload(['a', 'b', 'c'], { kind: 'uniform', min: 1, max: 100 }, 9);
    const b = createWorkload(['a', 'b', 'c'], { kind: 'uniform', min: 1, max: 100 }, 9);
    const late = b(5);
    expect([0, 1, 2, 3, 4, 5].map((i) => a(i))[5]).toEqual(late);
    expect(a(3)).toEqual(b(3));
  });

  it('reads a prompt file: one per line, blank lines skipped, \\n escapes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loadgen-'));
    const f = join(dir, 'p.txt');
    writeFileSync(f, 'ROMEO:\\nHello there\n\n  \nsecond\r\n');
    expect(loadPromptFile(f)).toEqual(['ROMEO:\nHello there', 'second']);
    writeFileSync(f, '\n\n');
    expect(() => loadPromptFile(f)).toThrow(/no prompts/);
  });
});

describe('percentiles and goodput', () => {
  it('nearest-rank percentile', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 0.5)).toBe(50);
    expect(percentile(xs, 0.9)).toBe(90);
    expect(percentile(xs, 0.99)).toBe(99);
    expect(percentile(xs, 1)).toBe(100);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
    expect(percentile([1, 2, 3], 0.5)).toBe(2);
  });

  const slo: SloTargets = { ttftP99Seconds: 1, interTokenP99Seconds: 0.1, e2eP99Seconds: 5 };
  const rec = (over: Partial<RequestRecord>): RequestRecord => ({
    index: 0,
    startS: 0,
    ok: true,
    ttftS: 0.5,
    itlS: [0.05, 0.05, 0.05],
    e2eS: 1,
    completionTokens: 10,
    ...over,
  });
  /** A record that never saw its first token (no `ttftS`). */
  const noTtft = (over: Partial<RequestRecord>): RequestRecord => {
    const { ttftS: _ttftS, ...r } = rec(over);
    return r;
  };

  it('a request meets the SLO only when TTFT, its own p99 gap and e2e are all within target', () => {
    expect(meetsSlo(rec({}), slo)).toBe(true);
    expect(meetsSlo(rec({ ttftS: 1.01 }), slo)).toBe(false);
    expect(meetsSlo(rec({ e2eS: 5.5 }), slo)).toBe(false);
    expect(meetsSlo(rec({ itlS: [0.05, 0.2] }), slo)).toBe(false); // fewer than 100 gaps: p99 is the max
    // 200 gaps, one slow: p99 (the 198th smallest) is still fast.
    expect(meetsSlo(rec({ itlS: [...Array(199).fill(0.01), 0.5] }), slo)).toBe(true);
    expect(meetsSlo(rec({ itlS: [] }), slo)).toBe(true);
    expect(meetsSlo(rec({ ok: false, errorKind: 'http_500' }), slo)).toBe(false);
    expect(meetsSlo(noTtft({}), slo)).toBe(false);
  });

  it('report: throughput counts completed requests, goodput only good ones, errors by kind', () => {
    const records = [
      rec({ index: 0, completionTokens: 10 }),
      rec({ index: 1, completionTokens: 20, ttftS: 2 }), // completed, misses TTFT
      rec({ index: 2, completionTokens: 30 }),
      noTtft({ index: 3, ok: false, errorKind: 'http_429', completionTokens: 0, itlS: [] }),
      noTtft({ index: 4, ok: false, errorKind: 'http_429', completionTokens: 0, itlS: [] }),
      rec({ index: 5, ok: false, errorKind: 'network', completionTokens: 3 }),
    ];
    const r = buildReport(records, {
      target: 'http',
      model: 'm',
      startedAt: new Date(0),
      wallSeconds: 10,
      slo,
      config: { mode: 'closed', concurrency: 2, outputLen: '64', temperature: 0.8, seed: 0, prompts: 1 },
    });
    expect(r.requests).toEqual({ sent: 6, completed: 3, failed: 3, good: 2 });
    expect(r.errors).toEqual({ http_429: 2, network: 1 });
    expect(r.throughput.outputTokensPerS).toBeCloseTo(6);
    expect(r.throughput.requestsPerS).toBeCloseTo(0.3);
    expect(r.goodput.outputTokensPerS).toBeCloseTo(4);
    expect(r.goodput.requestsPerS).toBeCloseTo(0.2);
    expect(r.goodput.fraction).toBeCloseTo(2 / 6);
    expect(r.latency.ttftSeconds).toMatchObject({ count: 3, p50: 0.5, p99: 2, max: 2 });
    expect(r.latency.interTokenSeconds.count).toBe(9);
    expect(r.records).toBeUndefined();
    expect(JSON.parse(JSON.stringify(r)).schema).toBe('tuneloop.load/v1');
  });
});

describe('SSE parser', () => {
  const stream = 'data: {"a":1}\n\n: keep-alive\n\ndata: {"b":2}\r\n\r\ndata: line1\ndata: line2\n\nevent: x\ndata: [DONE]\n\n';
  const expected = ['{"a":1}', '{"b":2}', 'line1\nline2', '[DONE]'];

  it('gives the same events however the stream is split, down to one character at a time', () => {
    for (const size of [1, 2, 3, 5, 7, 13, stream.length]) {
      const p = new SseParser();
      const out: string[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...p.push(stream.slice(i, i + size)));
      out.push(...p.end());
      expect(out, `split every ${size}`).toEqual(expected);
    }
  });

  it('handles a \\r\\n split across chunks, data without a space, and a last event with no blank line', () => {
    const p = new SseParser();
    expect(p.push('data:x\r')).toEqual([]);
    expect(p.push('\n\r\n')).toEqual(['x']);
    expect(p.push('data: tail')).toEqual([]);
    expect(p.end()).toEqual(['tail']);
  });

  it('normalizes the API root', () => {
    expect(apiRoot('http://h:1')).toBe('http://h:1/v1');
    expect(apiRoot('http://h:1/')).toBe('http://h:1/v1');
    expect(apiRoot('http://h:1/v1/')).toBe('http://h:1/v1');
  });
});

describe('CLI flags', () => {
  it('closed loop with --concurrency, open loop with --rate, errors on missing or bad values', () => {
    const c = parseLoadArgs(['--url', 'http://x:1', '--concurrency', '4', '--requests', '10', '--quiet']);
    expect(c).toMatchObject({ concurrency: 4, maxRequests: 10, quiet: true, progress: false });
    expect(c.durationS).toBeUndefined();
    const o = parseLoadArgs(['--url', 'http://x:1', '--rate', '2.5', '--output-len', 'exp:30', '--slo-ttft', '0.5', '--json', 'out.json']);
    expect(o).toMatchObject({ rate: 2.5, durationS: 30, outputLen: { kind: 'exp', mean: 30 }, json: 'out.json' });
    expect(o.slo).toEqual({ ttftP99Seconds: 0.5, interTokenP99Seconds: 0.25, e2eP99Seconds: 10 });
    expect(() => parseLoadArgs(['--rate', '1'])).toThrow(/--url/);
    expect(() => parseLoadArgs(['--url', 'http://x:1'])).toThrow(/--rate.*--concurrency/);
    expect(() => parseLoadArgs(['--url', 'http://x:1', '--concurrency', '1.5'])).toThrow(/concurrency/);
    expect(() => parseLoadArgs(['--url', 'http://x:1', '--rate', '1', '--output-len', 'x'])).toThrow(/output-len/);
    expect(() => parseLoadArgs(['--url', 'http://x:1', '--rate', '1', '--bogus'])).toThrow();
  });
});

// ---- integration: a real HTTP server speaking OpenAI's streaming completions protocol ----------------------------

/** Test double of the protocol: GET /v1/models, POST /v1/completions streaming max_tokens one-word chunks, one every
 *  `gapMs`, then a usage chunk and [DONE]. Prompts containing FAIL get HTTP 500; SLOW ones start after 300 ms. */
function startProtocolDouble(gapMs: number): Promise<{ server: Server; url: string; bodies: Record<string, unknown>[] }> {
  const bodies: Record<string, unknown>[] = [];
  const readBody = async (req: IncomingMessage) => {
    let s = '';
    for await (const c of req) s += c;
    return JSON.parse(s) as Record<string, unknown>;
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'double-model', object: 'model' }] }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/completions') {
      res.writeHead(404).end();
      return;
    }
    const body = await readBody(req);
    bodies.push(body);
    const prompt = String(body.prompt);
    if (prompt.includes('FAIL')) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'boom', type: 'server_error' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const n = Number(body.max_tokens);
    const base = { id: 'cmpl-1', object: 'text_completion', created: 0, model: body.model };
    if (prompt.includes('SLOW')) await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < n; i++) {
      if (res.destroyed) return;
      const finish = i === n - 1 ? 'length' : null;
      // Split each event in two writes: the client must reassemble SSE across network chunks.
      const ev = `data: ${JSON.stringify({ ...base, choices: [{ index: 0, text: ` w${i}`, logprobs: null, finish_reason: finish }] })}\n\n`;
      res.write(ev.slice(0, 10));
      res.write(ev.slice(10));
      await new Promise((r) => setTimeout(r, gapMs));
    }
    res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: n, total_tokens: n + 5 } })}\n\n`);
    res.end('data: [DONE]\n\n');
  };
  const server = createServer((req, res) => void handle(req, res));
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies });
    }),
  );
}

describe('runLoad over HTTP (protocol test double)', () => {
  let dbl: Awaited<ReturnType<typeof startProtocolDouble>>;
  beforeAll(async () => {
    dbl = await startProtocolDouble(5);
  });
  afterAll(() => new Promise<void>((r) => dbl.server.close(() => r())));

  it('closed loop: every request streams, TTFT/ITL/e2e are measured, the model comes from /v1/models', async () => {
    const r = await runLoad({ url: dbl.url, concurrency: 4, maxRequests: 12, outputLen: '8', seed: 1, includeRecords: true });
    expect(r.model).toBe('double-model');
    expect(r.requests).toMatchObject({ sent: 12, completed: 12, failed: 0 });
    expect(r.throughput.outputTokensPerS).toBeGreaterThan(0);
    expect(r.latency.interTokenSeconds.count).toBe(12 * 7);
    expect(r.latency.interTokenSeconds.p50).toBeGreaterThan(0.003);
    expect(r.latency.e2eSeconds.p50).toBeGreaterThan(r.latency.ttftSeconds.p50);
    expect(r.records!.every((x) => x.completionTokens === 8 && x.promptTokens === 5)).toBe(true);
    const sent = dbl.bodies.slice(-12);
    expect(sent.every((b) => b.stream === true && (b.stream_options as { include_usage: boolean }).include_usage && b.max_tokens === 8)).toBe(true);
    expect(new Set(sent.map((b) => b.seed)).size).toBe(12);
  });

  it('open loop: Poisson arrivals for the duration, errors counted by kind, goodput below throughput under a tight SLO', async () => {
    const prompts = ['ok one', 'ok two', 'FAIL me', 'SLOW one'];
    const r = await runLoad({
      url: dbl.url,
      model: 'x',
      rate: 40,
      durationS: 1,
      prompts,
      outputLen: 'uniform:2-6',
      seed: 3,
      slo: { ttftP99Seconds: 0.2 },
    });
    // 40 expected arrivals; 4 sigma is about 25.
    expect(r.requests.sent).toBeGreaterThan(15);
    expect(r.requests.sent).toBeLessThan(65);
    expect(r.errors.http_500).toBeGreaterThan(0);
    expect(r.requests.failed).toBe(r.errors.http_500);
    expect(r.goodput.requestsPerS).toBeLessThan(r.throughput.requestsPerS);
    expect(r.config).toMatchObject({ mode: 'open', rate: 40, durationS: 1, outputLen: 'uniform:2-6' });
  });

  it('stragglers are cut at the drain timeout and counted as aborted', async () => {
    const r = await runLoad({ url: dbl.url, model: 'x', concurrency: 2, durationS: 0.1, drainTimeoutS: 0.1, outputLen: '1000' });
    expect(r.requests.sent).toBe(2);
    expect(r.errors.aborted).toBe(2);
    expect(r.wallSeconds).toBeLessThan(2);
  });

  it('a dead server gives network errors, not a throw', async () => {
    const r = await runLoad({ url: 'http://127.0.0.1:9', model: 'x', concurrency: 1, maxRequests: 2 });
    expect(r.errors.network).toBe(2);
  });
});

// ---- integration: the real server (src/controlplane) on the shipped model, and the in-process twin -------------------

describe('runLoad against startServer with the shipped model', () => {
  let engine: import('../../src/engine/index.js').Engine;
  let server: import('../../src/controlplane/http-server.js').RunningServer;
  beforeAll(async () => {
    const { Engine } = await import('../../src/engine/index.js');
    const { startServer } = await import('../../src/controlplane/http-server.js');
    const { DEFAULT_SERVER_OPTIONS } = await import('../../src/controlplane/app.js');
    const { defaultModelPath } = await import('../../src/defaults.js');
    const { pino } = await import('pino');
    engine = await Engine.load({ model: defaultModelPath(), threads: 1 });
    server = await startServer({ engine, options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: 'shakespeare' }, logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await server?.close();
    await engine?.close();
  });

  it('streams every request over HTTP, and the in-process run of the same workload generates the same tokens', async () => {
    const w = { concurrency: 4, maxRequests: 8, outputLen: '16', seed: 5, ignoreEos: true, includeRecords: true };
    const http = await runLoad({ ...w, url: server.url });
    expect(http.model).toBe('shakespeare');
    expect(http.requests).toMatchObject({ sent: 8, completed: 8, failed: 0 });
    expect(http.records!.every((r) => r.completionTokens === 16 && (r.promptTokens ?? 0) > 0 && r.ttftS !== undefined)).toBe(true);
    // One gap per text event after the first: the server sends the tokens delivered together as one event
    // (coalescing), so how many events a request gets depends on the machine's pace — at most one per token.
    expect(http.latency.interTokenSeconds.count).toBeGreaterThan(0);
    expect(http.latency.interTokenSeconds.count).toBeLessThanOrEqual(8 * 15);
    const { runLoadInProcess } = await import('../../src/loadgen/index.js');
    const local = await runLoadInProcess(engine, w);
    expect(local.requests).toMatchObject({ sent: 8, completed: 8 });
    expect(local.records!.map((r) => [r.completionTokens, r.promptTokens])).toEqual(http.records!.map((r) => [r.completionTokens, r.promptTokens]));
  });

  it('tuneloop load (loadCommand): prints the summary and writes the JSON report', async () => {
    const { loadCommand } = await import('../../src/loadgen/index.js');
    const file = join(mkdtempSync(join(tmpdir(), 'loadgen-')), 'report.json');
    const code = await loadCommand(['--url', server.url, '--concurrency', '2', '--requests', '4', '--output-len', '8', '--quiet', '--json', file]);
    expect(code).toBe(0);
    const r = JSON.parse(readFileSync(file, 'utf8')) as { schema: string; requests: { completed: number }; latency: { ttftSeconds: { p99: number } } };
    expect(r.schema).toBe('tuneloop.load/v1');
    expect(r.requests.completed).toBe(4);
    expect(r.latency.ttftSeconds.p99).toBeGreaterThan(0);
    expect(await loadCommand(['--url', server.url, '--quiet'])).toBe(2);
  });

  it('a wrong model name is counted as an HTTP error by status', async () => {
    const r = await runLoad({ url: server.url, model: 'no-such-model', concurrency: 1, maxRequests: 2, outputLen: '4' });
    expect(r.requests.failed).toBe(2);
    expect(Object.keys(r.errors)[0]).toMatch(/^http_4\d\d$/);
  });
});
