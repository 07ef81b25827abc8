// Graceful shutdown of the real CLI entry (serveCommand in a child process): on SIGTERM the in-flight streams
// finish, new connections are refused (or get 503), and the process exits 0. Every JSON log line carries a reqId.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startServeChild } from '../helpers/serve-child.js';
import { MODEL, MODEL_NAME, sseData } from './harness.js';

const STORE = join(mkdtempSync(join(tmpdir(), 'tuneloop-drain-')), 'tuner.db');
const startServe = (args: string[]) => startServeChild([...args, '--set', `tuner.storePath=${STORE}`]);

describe('graceful drain on SIGTERM', () => {
  let proc: ReturnType<typeof startServe> | undefined;
  afterAll(() => {
    if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
  });

  it('finishes in-flight streams, refuses new work, exits 0', async () => {
    // One sequence per step: the two streams run one after the other, so the drain has real work to wait for.
    proc = startServe(['--model', MODEL, '--port', '0', '--threads', '1', '--set', 'scheduler.maxBatchSize=1']);
    const url = await proc.url;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const m = await fetch(`${url}/metrics`);
    expect(m.status).toBe(200);
    expect(await m.text()).toMatch(/tuneloop_/);

    const body = { model: MODEL_NAME, prompt: 'ROMEO:', max_tokens: 200, ignore_eos: true, stream: true, stream_options: { include_usage: true } };
    const streams = [0, 1].map(() =>
      fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'drain-test' },
        body: JSON.stringify(body),
      }),
    );
    const first = await streams[0]!;
    expect(first.status).toBe(200);
    const reader = first.body!.getReader();
    const { value } = await reader.read();
    let text1 = new TextDecoder().decode(value);

    proc.child.kill('SIGTERM');
    // The signal is handled on the child's event loop: wait until it says it is draining.
    const lines = proc.lines;
    const until = performance.now() + 5000;
    while (!lines.some((l) => l.msg === 'draining') && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    const drainLine = lines.find((l) => l.msg === 'draining');
    expect(drainLine).toBeDefined();
    // Both streams were still in flight when the drain began, so it really had to wait for them.
    expect(drainLine!.inflight).toBe(2);
    // After the signal: new connections are refused, or answered 503 if they raced onto a live socket.
    const late = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then(
      (r) => r.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(late);

    for (;;) {
      const { value: v, done } = await reader.read();
      if (done) break;
      text1 += new TextDecoder().decode(v);
    }
    const text2 = await (await streams[1]!).text();
    for (const t of [text1, text2]) {
      const events = sseData(t);
      expect(events.at(-1)).toBe('[DONE]');
      const usage = (events.at(-2) as { usage: { completion_tokens: number } }).usage;
      expect(usage.completion_tokens).toBe(200);
    }

    expect(await proc.exit).toBe(0);
    const msgs = proc.lines.map((l) => l.msg);
    expect(msgs).toContain('draining');
    expect(msgs).toContain('exiting');
    const reqLines = proc.lines.filter((l) => l.msg === 'request');
    expect(reqLines.length).toBeGreaterThanOrEqual(2);
    for (const l of reqLines) expect(typeof l.reqId).toBe('string');
    // The log is JSON lines from pino: every line parsed.
    expect(proc.lines.filter((l) => 'raw' in l)).toEqual([]);
    expect(reqLines.some((l) => l.reqId === 'drain-test')).toBe(true);
  });

  it('exits 2 with a clear message for a missing model', async () => {
    const p = startServe(['--model', '/nonexistent/model.gguf', '--port', '0']);
    await expect(p.url).rejects.toThrow(/does not exist/);
    expect(await p.exit).toBe(2);
  });
});
