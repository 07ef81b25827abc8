// Issue 9, Load: soak, the 2-minute CI version (`npm run bench:soak` runs 20 minutes). A real tuned server in this
// process (the shipped model, one compute thread), mixed traffic from 8 clients (completions and chat, streamed and
// not, a fifth of the streams abandoned after their first token), a live reconfigure every 15 s and one reload
// half-way (runSoak and standardSoakEvents, src/loadgen/soak.ts). Afterwards: memory flat, every KV block returned,
// no handle left behind once the server stops, and the server's counters equal to the traffic the clients saw.
import { afterAll, describe, expect, it } from 'vitest';
import { scrapeMetrics } from '../../src/loadgen/probe.js';
import { checkSoakCounters, formatSoak, runSoak, standardSoakEvents } from '../../src/loadgen/soak.js';
import { startTunedServer, type TunedServer } from '../tuner/harness.js';
import { waitFor } from '../controlplane/harness.js';

const MiB = 1024 * 1024;
const DURATION_S = 120;

/** Active libuv handles and requests by type (process.getActiveResourcesInfo), e.g. { TCPServerWrap: 1, Timeout: 2 }. */
function activeResources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

describe('soak: 2 minutes of mixed traffic with live reconfigures and a reload', () => {
  let h: TunedServer | undefined;
  afterAll(async () => {
    await h?.stop();
  });

  it('keeps memory flat, returns every KV block, leaks no handle, and counts exactly the traffic sent', async () => {
    const baseline = activeResources();
    h = await startTunedServer();
    const engine = h.engine;
    const before = await scrapeMetrics(h.url);
    const r = await runSoak({
      url: h.url,
      model: h.config.model.name,
      concurrency: 8,
      durationS: DURATION_S,
      maxTokens: 48,
      seed: 9,
      events: standardSoakEvents(engine, DURATION_S, 15),
      sample: () => ({ rssBytes: process.memoryUsage().rss, kvBlocksUsed: engine.stats().kvCache.blocksUsed }),
      gcBeforeSample: true,
    });
    // Abandoned generations are cancelled at the engine's next step: give the last ones that long.
    expect(await waitFor(() => engine.stats().kvCache.blocksUsed === 0 && engine.stats().requests.running === 0, 5000, 20)).toBe(true);
    const after = await scrapeMetrics(h.url);
    const problems = checkSoakCounters(r.traffic, before, after);
    console.log(
      formatSoak(r, [
        ['RSS samples', r.samples.map((s) => (s.rssBytes / MiB).toFixed(0)).join(' ') + ' MiB'],
        ['counters', problems.length ? problems.join('; ') : 'consistent with the traffic sent'],
      ]),
    );

    // Traffic of every kind went through, and only the planned disconnects did not complete.
    expect(r.traffic.failed).toBe(0);
    expect(r.traffic.disconnected).toBeGreaterThan(0);
    for (const kind of ['completions stream ok', 'completions plain ok', 'chat stream ok', 'chat plain ok']) expect(r.traffic.byKind[kind]).toBeGreaterThan(0);
    // Every reconfigure and the reload took effect, none failed.
    expect(r.events.filter((e) => e.error)).toEqual([]);
    expect(r.events.map((e) => e.name).filter((n) => n.startsWith('reload'))).toHaveLength(1);
    expect(engine.stats().reloads).toBe(1);
    expect(engine.info.layout.kvBlockSizeTokens).toBe(32);

    // Counters: requests by route and status, engine outcomes, and tokens all match what the clients saw.
    expect(problems).toEqual([]);

    // KV blocks: none held once the traffic is over (the prefix cache may keep some, as evictable 'cached' blocks).
    expect(engine.stats().kvCache.blocksUsed).toBe(0);

    // Memory flat (RSS after a full GC at each sample: the V8 heap's garbage alone swings it by ±100 MiB). Warm-up grows
    // RSS in the first seconds (about 240 → 270 MiB); afterwards it moved by 1.5-3.5 MiB/min in trial runs, the reload
    // included (its second instance is freed once the first drains), with other test files sharing the two cores.
    // Bounds: the second half's slope under 8 MiB/min and the last reading within 16 MiB of the first half's peak.
    // Two minutes catch gross leaks only (8 MiB/min is ~3 KiB per request at ~2500 requests a minute); the 20-minute
    // bench:soak is the finer test.
    const firstHalfMax = Math.max(...r.samples.filter((s) => s.tS <= DURATION_S / 2).map((s) => s.rssBytes));
    expect(r.rss.secondHalfMiBPerMin).toBeLessThan(8);
    expect(r.rss.lastBytes).toBeLessThan(firstHalfMax + 16 * MiB);

    // No handle left behind: once the server, tuner and engine are stopped, the process holds what it held before.
    await h.stop();
    h = undefined;
    const grown = (): string[] =>
      Object.entries(activeResources())
        .filter(([k, v]) => v > (baseline[k] ?? 0))
        .map(([k, v]) => `${k} ${baseline[k] ?? 0} → ${v}`);
    await waitFor(() => grown().length === 0, 5000, 50);
    expect(grown()).toEqual([]);
  }, 200_000);
});
