// A client that goes away cancels its generation at once: the engine counts it cancelled and its KV blocks are
// free again within moments, instead of decoding to max_tokens for nobody.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_NAME, sleep, startHarness, waitFor, type Harness } from './harness.js';

describe('client disconnect', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  const idle = () => {
    const s = h.engine.stats();
    return s.requests.running === 0 && s.requests.waiting === 0 && s.kvCache.blocksUsed === 0;
  };

  it('aborting a stream mid-way cancels the generation and frees its KV blocks', async () => {
    const before = h.engine.stats().requests.cancelled;
    const ac = new AbortController();
    const r = await fetch(`${h.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 240, ignore_eos: true, stream: true }),
      signal: ac.signal,
    });
    expect(r.status).toBe(200);
    const reader = r.body!.getReader();
    // Read until some text has arrived, then leave.
    let got = '';
    while (!got.includes('"text":"') || got.split('data: ').length < 4) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended before the test could abort it');
      got += new TextDecoder().decode(value);
    }
    expect(h.engine.stats().kvCache.blocksUsed).toBeGreaterThan(0);
    const t0 = performance.now();
    ac.abort();
    expect(await waitFor(() => h.engine.stats().requests.cancelled > before && idle(), 2000)).toBe(true);
    const ms = performance.now() - t0;
    // 240 tokens would take far longer than this to decode; the cancel took effect at once.
    expect(ms).toBeLessThan(500);
    expect(h.engine.stats().tokens.generated).toBeLessThan(240);
    expect(h.server.state.active).toBe(0);
    expect(h.server.state.inflight.size).toBe(0);
  });

  it('aborting a plain (non-stream) request cancels it too', async () => {
    const before = h.engine.stats().requests.cancelled;
    const ac = new AbortController();
    const req = fetch(`${h.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_NAME, prompt: 'JULIET:', max_tokens: 240, ignore_eos: true }),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    expect(await waitFor(() => h.engine.stats().requests.running >= 1, 2000)).toBe(true);
    await sleep(20);
    ac.abort();
    expect(await req).toBeInstanceOf(Error);
    expect(await waitFor(() => h.engine.stats().requests.cancelled > before, 2000)).toBe(true);
    expect(await waitFor(idle, 2000)).toBe(true);
    expect(h.engine.stats().tokens.generated).toBeLessThan(480);
  });
});
