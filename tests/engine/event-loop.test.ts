// Generation runs on engine threads: a long generation must not hold up Node's event loop.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { TempModels } from '../helpers/synthetic.js';

describe('the event loop stays free while the engine works', () => {
  const models = new TempModels();
  let engine: Engine;
  beforeAll(async () => {
    // Big enough that one decode step takes milliseconds and the whole generation about a second.
    const file = models.write(
      { dim: 512, nLayers: 8, nHeads: 8, nKvHeads: 4, ffnDim: 1536, nVocab: 4096, contextLength: 1024, ropeTheta: 10000, rmsEps: 1e-5, tiedEmbeddings: true },
      'f32',
    );
    // One compute thread leaves the second core to Node, as a deployment would size it.
    engine = await Engine.load({ model: file, weights: 'f32', threads: 1 });
  });
  afterAll(async () => {
    await engine?.close();
    models.cleanup();
  });

  it('a 1 ms timer is never delayed by more than a few ms during a long generation', async () => {
    const gen = engine.generate({ tokens: [1, 5, 9, 13, 17, 21, 25, 29], maxTokens: 300, temperature: 0, stopAtEos: false });
    const lags: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      lags.push(now - last - 1);
      last = now;
    }, 1);
    let chunks = 0;
    for await (const _ of gen) chunks++;
    clearInterval(timer);
    const r = await gen.result;
    lags.sort((a, b) => a - b);
    const p90 = lags[Math.floor(lags.length * 0.9)]!;
    const p99 = lags[Math.floor(lags.length * 0.99)]!;
    const max = lags[lags.length - 1]!;
    console.log(
      `generation ${r.timings.decodeMs.toFixed(0)} ms, ${r.tokens.length} tokens in ${chunks} chunks; timer ticks ${lags.length}, lag p90 ${p90.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${max.toFixed(2)} ms`,
    );
    expect(r.tokens.length).toBe(300);
    // The generation took long enough that a blocked loop would have shown.
    expect(r.timings.decodeMs).toBeGreaterThan(300);
    expect(lags.length).toBeGreaterThan(r.timings.decodeMs / 4);
    // A blocked loop would lag by whole decode steps (~15 ms) or the whole generation; the bars leave room for the
    // scheduler noise of a shared 2-core machine running other test files at the same time.
    // The max is the least stable figure: a CI box compiling the sanitizer build beside this file descheduled the
    // process for 131 ms once. A loop blocked for the generation would lag more than the whole decode (> 300 ms).
    expect(p90).toBeLessThan(3);
    expect(p99).toBeLessThan(10);
    expect(max).toBeLessThan(250);
  });

  // Compute threads run at a lower CPU priority than Node's threads (threadpool.cpp: lower_compute_priority), so
  // when compute saturates the cores the event loop (health checks, admission) still gets the CPU first.
  it.runIf(process.platform === 'linux')('engine compute threads run niced (+5), the event loop thread does not', async () => {
    // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value; the comm field (2) may hold spaces, so split after ')'.
    const niceOf = (tid: string): number => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
    const before = new Set(readdirSync('/proc/self/task'));
    const mainNice = niceOf(String(process.pid));
    const other = await Engine.load({
      model: models.write(
        { dim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, ffnDim: 128, nVocab: 320, contextLength: 64, ropeTheta: 10000, rmsEps: 1e-5, tiedEmbeddings: true },
        'f32',
      ),
      threads: 2,
    });
    try {
      await other.generate({ tokens: [1, 2, 3], maxTokens: 4, temperature: 0, stopAtEos: false }).result; // workers started
      const added = readdirSync('/proc/self/task').filter((t) => !before.has(t));
      const niced = added.filter((t) => niceOf(t) === Math.min(19, mainNice + 5));
      // The engine loop (pool worker 0) and the one extra pool worker.
      expect(niced.length, `new threads ${added.map((t) => `${t}:${niceOf(t)}`).join(' ')}`).toBeGreaterThanOrEqual(2);
      expect(niceOf(String(process.pid)), 'the main (event loop) thread keeps its priority').toBe(mainNice);
    } finally {
      await other.close();
    }
  });
});
