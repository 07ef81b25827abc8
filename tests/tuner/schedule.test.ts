// The cron wiring and the triggers: node-cron really fires the monitor job (six-field, every second), a firing
// critical alert starts an out-of-schedule analysis while the tuner's own alerts do not, and runs never overlap
// (a second trigger while a cycle runs is refused over REST with 409, and recorded as skipped from cron/alerts).
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedAlert } from '../../src/alerts/inbox.js';
import { alertWantsAnalysis, startSchedule, type TunerSchedule } from '../../src/tuner/schedule.js';
import { startTunedServer, type TunedServer } from './harness.js';

const alert = (alertname: string, severity: string): ReceivedAlert => ({
  id: 1,
  receivedAt: new Date().toISOString(),
  receiver: 'tuneloop',
  status: 'firing',
  labels: { alertname, severity },
  annotations: {},
  startsAt: new Date().toISOString(),
  endsAt: '0001-01-01T00:00:00Z',
  fingerprint: 'x',
});

describe('schedule', () => {
  let h: TunedServer;
  let sched: TunerSchedule;
  beforeAll(async () => {
    h = await startTunedServer({ config: { scheduler: { maxBatchSize: 1 }, verify: { shadowShare: 0.5, minSamples: 12 } } });
    sched = startSchedule(
      { monitorCron: '* * * * * *', analyzeCron: '0 0 1 1 *', reportCron: '0 9 * * 1', timezone: 'Europe/Berlin', alertTriggersAnalysis: true },
      { tuner: h.tuned.tuner, store: h.store, logger: pino({ level: 'silent' }), alerts: h.server.alerts },
    );
  });
  afterAll(async () => {
    await sched?.stop();
    await h?.stop();
  });

  it('fires the monitor job from cron, in the configured time zone', async () => {
    const before = h.store.runs({ kind: 'monitor' }).filter((r) => r.trigger === 'cron').length;
    await new Promise((r) => setTimeout(r, 2600));
    const after = h.store.runs({ kind: 'monitor' }).filter((r) => r.trigger === 'cron');
    expect(after.length - before).toBeGreaterThanOrEqual(2);
    expect(after.every((r) => r.outcome === 'ok')).toBe(true);
    expect(h.store.rollups(0, Date.now() + 1).length).toBeGreaterThanOrEqual(2);
  });

  it("lets service alerts trigger an analysis, not the tuner's own, and never overlaps cycles", async () => {
    expect(alertWantsAnalysis(alert('TuneloopE2EP99OverSLO', 'critical'))).toBe(true);
    expect(alertWantsAnalysis(alert('TuneloopQueueGrowing', 'warning'))).toBe(true);
    expect(alertWantsAnalysis(alert('TuneloopProposalAwaitingApproval', 'info'))).toBe(false);
    expect(alertWantsAnalysis(alert('TuneloopShadowSimilarityLow', 'warning'))).toBe(false);

    // Windows that show queueing, so the analysis proposes and a verification cycle is running.
    await h.load({ clients: 8, seconds: 5 });
    const ac = new AbortController();
    const traffic = h.load({ clients: 8, seconds: 120, signal: ac.signal });
    h.server.alerts.emit('alert', alert('TuneloopE2EP99OverSLO', 'critical'));
    await new Promise((r) => setTimeout(r, 300));
    const byAlert = h.store.runs({ kind: 'analyze' }).filter((r) => r.trigger === 'alert');
    expect(byAlert).toHaveLength(1);
    expect(byAlert[0]!.outcome).toBe('ok');
    expect(h.tuned.tuner.status().state).toBe('running');

    // While it verifies: REST gets 409, a second alert is recorded as skipped.
    const busy = await h.api('/api/tuner/run', { method: 'POST', role: 'approver' });
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe('tuner_busy');
    h.server.alerts.emit('alert', alert('TuneloopTTFTP99OverSLO', 'critical'));
    await new Promise((r) => setTimeout(r, 100));
    expect(
      h.store
        .runs({ kind: 'analyze' })
        .filter((r) => r.trigger === 'alert')
        .map((r) => r.outcome)
        .sort(),
    ).toEqual(['ok', 'skipped']);

    await h.tuned.tuner.idle();
    ac.abort();
    await traffic;
    expect(h.tuned.tuner.status().state).toBe('idle');
  });
});
