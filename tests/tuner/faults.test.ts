// Faults around the tuner (issue 9): the tuner pauses and says why — it never guesses — while serving goes on.
// 1. Fleet mode with Prometheus unreachable: status 'paused' with the reason, tuneloop_tuner_paused 1, a run is
//    refused with 503, completions still work; it resumes by itself once a tick succeeds.
// 2. A full disk under the store (the real server under `ulimit -f`, so SQLite's writes fail with EFBIG): a clear
//    "store unavailable" reason in status, serving continues.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { hashToken } from '../../src/controlplane/auth.js';
import { type RegistrySource } from '../../src/tuner/monitor.js';
import { startServeChild, type ServeChild } from '../helpers/serve-child.js';
import { MODEL, MODEL_NAME } from '../controlplane/harness.js';
import { TOKENS, startTunedServer } from './harness.js';

async function complete(url: string): Promise<number> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL_NAME, prompt: 'To be', max_tokens: 4 }),
  });
  await res.text();
  return res.status;
}

describe('Prometheus unreachable in fleet mode', () => {
  it('pauses with the reason in status and metrics, refuses runs, keeps serving, and resumes', async () => {
    const h = await startTunedServer({ config: { tuner: { metricsSource: 'prometheus', prometheusUrl: 'http://127.0.0.1:9' } as never } });
    try {
      expect(await h.tuned.tuner.monitorTick('test')).toBeUndefined();
      const status = await h.api('/api/tuner/status', { role: 'viewer' });
      expect(status.body.state).toBe('paused');
      expect(status.body.pausedReason).toMatch(/metrics source unavailable/);
      expect(status.body.metricsSource).toBe('prometheus');
      const metrics = await (await fetch(`${h.url}/metrics`)).text();
      expect(metrics).toMatch(/^tuneloop_tuner_paused 1$/m);
      const run = await h.api('/api/tuner/run', { method: 'POST', role: 'approver' });
      expect(run.status).toBe(503);
      expect(run.body.error.code).toBe('tuner_paused');
      expect(h.store.runs({ kind: 'monitor' })[0]).toMatchObject({ outcome: 'error' });
      expect(await complete(h.url)).toBe(200);

      // The source comes back (here: swap in the in-process one): the next tick resumes the tuner.
      (h.tuned.tuner as unknown as { d: { source: RegistrySource } }).d.source = h.tuned.requests;
      expect(await h.tuned.tuner.monitorTick('test')).toBeDefined();
      expect(h.tuned.tuner.status().state).toBe('idle');
      expect(await (await fetch(`${h.url}/metrics`)).text()).toMatch(/^tuneloop_tuner_paused 0$/m);
    } finally {
      await h.stop();
    }
  });
});

describe('a full disk under the store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tuneloop-fulldisk-'));
  let child: ServeChild | undefined;
  afterAll(() => {
    if (child && child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('pauses the tuner with a clear reason while serving continues', async () => {
    const config = join(dir, 'tuneloop.yaml');
    writeFileSync(
      config,
      stringify({
        server: { port: 0 },
        model: { path: MODEL, name: MODEL_NAME, threads: 1 },
        logging: { level: 'info' },
        tuner: { storePath: join(dir, 'tuner.db'), monitorCron: '* * * * * *', analyzeCron: '0 0 1 1 *' },
        auth: { tokens: [{ name: 'viewer-user', role: 'viewer', sha256: hashToken(TOKENS.viewer) }] },
      }),
    );
    // 200 KiB: room for the schema and the first few rollups, then every write fails as on a full disk.
    child = startServeChild(['--config', config], {}, { fileSizeLimitKiB: 200 });
    const url = await child.url;
    const statusOf = async () =>
      (await (await fetch(`${url}/api/tuner/status`, { headers: { authorization: `Bearer ${TOKENS.viewer}` } })).json()) as { state: string; pausedReason: string };
    let status = await statusOf();
    const deadline = Date.now() + 90_000;
    // Each second the monitor writes a rollup (and the store's WAL grows) until the limit is hit.
    while (!/store unavailable/.test(status.pausedReason) && Date.now() < deadline) {
      await complete(url);
      await new Promise((r) => setTimeout(r, 500));
      status = await statusOf();
    }
    expect(status.state).toBe('paused');
    expect(status.pausedReason).toMatch(/store unavailable: .*(full|disk|I\/O|too large)/i);
    expect(await complete(url)).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(child.child.exitCode).toBeNull();
  });
});
