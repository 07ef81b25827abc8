// The weekly bottleneck report from real stores: constructed weeks where the answer is known (queueing dominates one
// week, KV pressure the next) rank as the data says; every figure is recomputed here from the store by its stated
// rule; the Markdown and HTML show them; the charts are valid SVG with the SLO and settings-change rules; an empty or
// thin week says "not enough data"; regeneration is byte-identical and survives a writer killed mid-write. Last, a
// store filled by a real run of the shipped model (mis-set batching, one tuner cycle) names queueing first.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TunerStore } from '../../src/tuner/store.js';
import { buildWeeklyReport, type BuildReportOptions } from '../../src/tuner/report/build.js';
import { renderReportCharts } from '../../src/tuner/report/charts.js';
import { renderHtml, renderMarkdown } from '../../src/tuner/report/render.js';
import { writeWeeklyReport } from '../../src/tuner/report/writer.js';
import { formatIsoWeek, isoWeekOf, isoWeekRange, parseIsoWeek } from '../../src/tuner/report/iso-week.js';
import type { WeeklyReport } from '../../src/tuner/report/types.js';
import type { WindowSummary } from '../../src/tuner/types.js';
import { MIN, SLO, TUE, W10, W11, fillStore, finding, windows } from './report-fixtures.js';
import { startTunedServer, type TunedServer } from './harness.js';

const PRICE = 0.05;

const options = (week: string, over: Partial<BuildReportOptions> = {}): BuildReportOptions => ({
  week,
  timezone: 'UTC',
  service: 'shop-llm',
  model: 'tuneloop-shakespeare',
  slo: SLO,
  pricePerCoreHour: PRICE,
  verify: { shadowShare: 0.05, minSamples: 20 },
  now: Date.UTC(2027, 0, 1),
  ...over,
});

// ---- recomputation from the store, by the rules the report states -------------------------------------------------

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const met = (w: WindowSummary): number => (w.requests.finished > 0 ? Math.round(w.requests.finished * w.sloAttainment) : 0);
const violating = (w: WindowSummary): number => w.requests.finished - met(w) + w.requests.rejected;

function recompute(store: TunerStore, week: string) {
  const r = isoWeekRange(parseIsoWeek(week), 'UTC');
  const ws = store.rollups(r.startMs, r.endMs);
  const requests = sum(ws.map((w) => w.requests.finished));
  const generated = sum(ws.map((w) => w.tokens.generated));
  const cost = (sum(ws.map((w) => w.cpuSeconds)) / 3600) * PRICE;
  const inRanges = (kind: string): WindowSummary[] => {
    const fs = store.findings(r.startMs, r.endMs).filter((f) => f.kind === kind);
    return ws.filter((w) => fs.some((f) => w.startMs < f.toMs && w.endMs > f.fromMs));
  };
  return {
    ws,
    requests,
    generated,
    cost,
    attainment: sum(ws.map(met)) / requests,
    costPerM: cost / (generated / 1e6),
    violatingOf: (kind: string) => sum(inRanges(kind).map(violating)),
    weekViolating: sum(ws.map(violating)),
  };
}

describe('weekly report from constructed weeks', () => {
  let dir: string;
  let store: TunerStore;
  const clock = { ms: 0 };
  let w10: WeeklyReport;
  let w11: WeeklyReport;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-report-'));
    store = TunerStore.open(join(dir, 'tuner.db'), { now: () => clock.ms });
    fillStore(store, clock);
    w10 = buildWeeklyReport(store, options('2026-W10'));
    w11 = buildWeeklyReport(store, options('2026-W11'));
  });
  afterAll(() => {
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ranks the bottlenecks as the data says: queueing, then KV pressure, then tail latency', () => {
    expect(w10.coverage.enough).toBe(true);
    expect(w10.bottlenecks.ranked.map((b) => b.kind)).toEqual(['queueing', 'kv_pressure', 'tail_latency']);
    const [q, kv, tail] = w10.bottlenecks.ranked;
    const x = recompute(store, '2026-W10');
    expect(q!.sloViolatingRequests).toBe(640);
    expect(q!.sloViolatingRequests).toBe(x.violatingOf('queueing'));
    expect(kv!.sloViolatingRequests).toBe(202); // 40 windows × 5 late + 2 refused
    expect(kv!.sloViolatingRequests).toBe(x.violatingOf('kv_pressure'));
    expect(tail!.sloViolatingRequests).toBe(0);
    expect(q!.shareOfViolations).toBeCloseTo(640 / x.weekViolating, 12);
    // The three queueing findings merge into one 40-minute range; the analyzer's 2 queue-seconds/min over it.
    expect(q!.findings).toBe(3);
    expect(q!.ranges).toEqual([{ fromMs: W10 + TUE, toMs: W10 + TUE + 40 * MIN }]);
    expect(q!.activeMinutes).toBe(40);
    expect(q!.analyzerImpact).toBeCloseTo(80, 9);
    expect(q!.analyzerUnit).toBe('queue-seconds');
    expect(q!.evidence).toEqual({ queueShare: 0.83, fill: 1 });
    expect(q!.requestSeconds).toBeCloseTo(sum(x.ws.slice(0, 40).map((w) => w.requests.meanConcurrency * 60)), 9);
    // The next week KV pressure dominates.
    expect(w11.bottlenecks.ranked.map((b) => b.kind)).toEqual(['kv_pressure', 'queueing']);
    expect(w11.bottlenecks.ranked[0]!.sloViolatingRequests).toBe(600);
    expect(w11.bottlenecks.ranked[1]!.sloViolatingRequests).toBe(80);
  });

  it('links proposals and says what to do where nothing was applied', () => {
    const [q, kv, tail] = w10.bottlenecks.ranked;
    expect(q!.proposals).toEqual([{ id: 1, change: 'maxBatchSize 1 → 4', stateAtWeekEnd: 'confirmed', verdict: 'pass' }]);
    expect(q!.applied).toBe(true);
    expect(q!.nextAction).toBeNull();
    expect(q!.activeMinutesAfterApply).toBe(0);
    expect(kv!.applied).toBe(false);
    expect(kv!.nextAction).toMatch(/#2 \(kvDtype f32 → int8\) passed verification and awaits approval since 2026-03-03 11:30 UTC/);
    expect(kv!.nextAction).toContain('POST /api/proposals/2/approve');
    expect(tail!.nextAction).toMatch(/inconclusive \(only 9 mirrored requests \(minSamples 20\)\): raise verify\.shadowShare \(now 0\.05\)/);
    // W11 had findings but no proposals.
    expect(w11.bottlenecks.ranked[0]!.nextAction).toMatch(/^No change was proposed for it: raise model\.kvCacheMaxBytes/);
  });

  it('matches the store: traffic, attainment, error budget, cost', () => {
    const x = recompute(store, '2026-W10');
    expect(w10.traffic.requests).toBe(2400);
    expect(w10.traffic.requests).toBe(x.requests);
    expect(w10.traffic.generatedTokens).toBe(x.generated);
    expect(w10.traffic.rejected).toBe(2);
    expect(w10.slo.allObjectives).toEqual({ requests: 2400, met: 1560, violating: 840, attainment: 0.65 });
    expect(w10.slo.allObjectives.attainment).toBeCloseTo(x.attainment, 12);
    expect(w10.slo.errorBudget.errorRate).toBeCloseTo(2 / 2402, 12);
    expect(w10.slo.errorBudget.burned).toBeCloseTo(2 / 2402 / 0.01, 12);
    // TTFT: the 40 queueing windows missed 1 s at p99; the 80 others met it.
    const ttft = w10.slo.objectives.find((o) => o.objective === 'ttft')!;
    expect(ttft).toMatchObject({ windows: 120, windowsMet: 80, requests: 2400, requestsInMetWindows: 1600, worstP99S: 3, worstWindowMs: W10 + TUE });
    expect(ttft.share).toBeCloseTo(2 / 3, 12);
    expect(w10.cost.cpuSeconds).toBe(10_800);
    expect(w10.cost.total).toBeCloseTo(x.cost, 12);
    expect(w10.cost.perMillionTokens).toBeCloseTo(x.costPerM, 12);
    expect(w10.cost.perMillionTokens).toBeCloseTo(0.15 / 0.0576, 9);
    expect(w10.coverage).toMatchObject({ windows: 120, rollupMinutes: 120, requests: 2400, sources: ['registry'] });
  });

  it('lists every proposal of the week with its verification, approvals, applies and rollbacks', () => {
    expect(w10.changes.map((c) => [c.id, c.stateAtWeekEnd])).toEqual([
      [1, 'confirmed'],
      [2, 'verified'],
      [3, 'rejected'],
    ]);
    const c1 = w10.changes[0]!;
    expect(c1.changes).toEqual([{ knob: 'maxBatchSize', from: 1, to: 4 }]);
    expect(c1.verification).toMatchObject({ verdict: 'pass', mirroredRequests: 40, meanCosine: 0.9995, qualityPassed: true, goodputChange: 1.5 });
    expect(c1.verification!.latency[0]).toEqual({
      metric: 'ttft',
      baselineMedianS: 2,
      candidateMedianS: 0.5,
      relativeChange: -0.75,
      pValue: 0.0004,
      effectSize: -0.8,
      outcome: 'better',
    });
    expect(c1.approvals).toEqual([{ decision: 'approve', actor: 'tuner', role: 'system', atMs: W10 + TUE + 45 * MIN, comment: 'policy: auto-apply' }]);
    expect(c1.applied).toEqual({ atMs: W10 + TUE + 46 * MIN, version: 2 });
    expect(c1.rollback).toBeNull();
    expect(c1.transitions.map((t) => t.to)).toEqual(['proposed', 'verifying', 'verified', 'approved', 'applying', 'watching', 'confirmed']);
    expect(w10.changes[2]!.verification?.verdict).toBe('inconclusive');
    // Settings: v1 from before the week, v2 applied in it.
    expect(w10.settings.map((s) => [s.version, s.liveFromMs, s.liveToMs])).toEqual([
      [1, W10, W10 + TUE + 46 * MIN],
      [2, W10 + TUE + 46 * MIN, W11],
    ]);
    expect(w10.settings[1]!.changes).toEqual([{ knob: 'maxBatchSize', from: 1, to: 4 }]);
    // W11 has no transitions: no changes listed, v2 live all week.
    expect(w11.changes).toEqual([]);
    expect(w11.settings.map((s) => s.version)).toEqual([2]);
  });

  it('counts the alerts that fired, by severity, episodes apart from repeated notifications', () => {
    expect(w10.alerts.notifications).toBe(3);
    expect(w10.alerts.firings).toBe(2);
    expect(w10.alerts.bySeverity.map((s) => [s.severity, s.firings, s.notifications])).toEqual([
      ['critical', 1, 1],
      ['warning', 1, 2],
    ]);
    expect(w10.alerts.bySeverity[1]!.alerts[0]).toMatchObject({
      alertname: 'TuneloopQueueGrowing',
      firings: 1,
      notifications: 2,
      summary: 'TuneloopQueueGrowing <fired>',
    });
    expect(w11.alerts.firings).toBe(1);
  });

  it('compares with the week before, from the store', () => {
    expect(w10.weekOverWeek.source).toBe('none');
    const wow = w11.weekOverWeek;
    expect(wow).toMatchObject({ previousWeek: '2026-W10', source: 'store', topBottleneck: { current: 'kv_pressure', previous: 'queueing' } });
    const row = (k: string) => wow.rows.find((r) => r.key === k)!;
    expect(row('requests')).toMatchObject({ current: 1600, previous: 2400 });
    expect(row('requests').relativeChange).toBeCloseTo(-1 / 3, 12);
    expect(row('sloAttainment').previous).toBe(0.65);
    expect(row('sloAttainment').current).toBeCloseTo((40 * 5 + 40 * 18) / 1600, 12);
    expect(row('costPerMillionTokens').previous).toBe(w10.cost.perMillionTokens);
  });

  it('uses the previous JSON twin when the store no longer has that week', () => {
    const empty = TunerStore.open(':memory:');
    try {
      const r = buildWeeklyReport(empty, options('2026-W11', { previous: w10 }));
      expect(r.weekOverWeek.source).toBe('previous report');
      expect(r.weekOverWeek.rows.find((x) => x.key === 'requests')!.previous).toBe(2400);
      expect(buildWeeklyReport(empty, options('2026-W12', { previous: w10 })).weekOverWeek.source).toBe('none');
    } finally {
      empty.close();
    }
  });

  it('is plain JSON (no NaN, nothing lost in a round trip)', () => {
    for (const r of [w10, w11]) expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    expect(w10.schema).toBe('tuneloop.report/v1');
    expect(w10.period).toMatchObject({ start: '2026-03-02 00:00', end: '2026-03-09 00:00', timezone: 'UTC', partial: false });
  });

  it('renders Markdown and HTML that show the figures', async () => {
    const charts = await renderReportCharts(w10);
    const md = renderMarkdown(w10, charts);
    const html = renderHtml(w10, charts);
    for (const text of [md, html]) {
      expect(text).toContain('shop-llm, 2026-W10');
      expect(text).toContain('1. Queueing');
      expect(text).toContain('2. KV-cache pressure');
      expect(text).toContain('640 SLO-violating requests');
      expect(text).toContain('65.0%'); // attainment
      expect(text).toContain('1,560 of 2,400');
      expect(text).toContain('cost 2.6 per million tokens'); // 0.15 / 0.0576 = 2.604
      expect(text).toContain('#1 maxBatchSize 1 → 4');
      expect(text).toContain('TuneloopQueueGrowing');
      expect(text).toContain('awaits approval since');
    }
    // User text is escaped: the alert summary's angle brackets never become markup.
    expect(html).toContain('TuneloopQueueGrowing &lt;fired&gt;');
    expect(md).toContain('TuneloopQueueGrowing &lt;fired&gt;');
    expect(html).not.toMatch(/<script|\bsrc=|\bhref=|@import|url\(/i);
    expect(md).toContain('are in the HTML version of this report, `2026-W10.html`');
  });

  it('draws valid SVG charts with the SLO lines and the settings changes marked', async () => {
    const charts = await renderReportCharts(w10);
    expect(charts.map((c) => c.id)).toEqual(['ttft', 'inter_token', 'e2e', 'throughput', 'batch_size', 'kv_usage']);
    for (const c of charts) {
      expect(XMLValidator.validate(c.svg), c.id).toBe(true);
      expect(c.svg.startsWith('<svg')).toBe(true);
    }
    for (const c of charts.slice(0, 3)) {
      expect(c.svg, c.id).toContain('slo_marks');
      expect(c.svg, c.id).toContain('SLO p99 ≤');
    }
    for (const c of charts.filter((x) => x.id !== 'batch_size')) {
      expect(c.svg, c.id).toContain('changes_marks');
      expect(c.svg, c.id).toMatch(/>v2</);
    }
    // The batch chart splits steps by settings version.
    expect(charts[4]!.svg).toMatch(/>v1</);
    expect(charts[4]!.svg).toMatch(/>v2</);
    expect(charts[5]!.svg).toContain('preemptions_marks');
    const html = renderHtml(w10, charts);
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    expect(svgs).toHaveLength(6);
  });

  it('says "not enough data" for an empty week, and lists nothing it does not have', async () => {
    const r = buildWeeklyReport(store, options('2026-W20'));
    expect(r.coverage).toMatchObject({ windows: 0, requests: 0, enough: false });
    expect(r.bottlenecks.ranked).toEqual([]);
    expect(r.bottlenecks.others).toEqual([]);
    expect(r.changes).toEqual([]);
    expect(r.slo.allObjectives.attainment).toBeNull();
    expect(r.cost.perMillionTokens).toBeNull();
    expect(r.series.points).toEqual([]);
    const charts = await renderReportCharts(r);
    expect(charts).toEqual([]);
    const md = renderMarkdown(r, charts);
    expect(md).toContain('**Not enough data**');
    expect(md).toContain('no rollup windows were stored for this week');
    expect(md).toContain('No rollup windows to chart.');
    expect(md).not.toMatch(/### 1\./);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('ranks nothing in a thin week, but says which findings there were', () => {
    const thin = TunerStore.open(':memory:', { now: () => clock.ms });
    try {
      const t = Date.UTC(2026, 2, 17, 10);
      windows(thin, t, 10, { requests: 5, attainment: 0.2 });
      thin.insertFinding(finding('queueing', t, t + 10 * MIN));
      const r = buildWeeklyReport(thin, options('2026-W12'));
      expect(r.coverage).toMatchObject({ windows: 10, rollupMinutes: 10, requests: 50, enough: false, thresholds: { minRollupMinutes: 30, minRequests: 100 } });
      expect(r.bottlenecks.ranked).toEqual([]);
      expect(r.bottlenecks.findingsByKind).toEqual([{ kind: 'queueing', count: 1 }]);
      const md = renderMarkdown(r);
      expect(md).toContain('Not enough data to rank bottlenecks this week. The tuner stored findings of: queueing (1).');
      expect(md).toContain('has 10 min and 50');
      // The thresholds are options: the same week with lower ones is ranked.
      expect(buildWeeklyReport(thin, options('2026-W12', { thresholds: { minRollupMinutes: 5, minRequests: 10 } })).bottlenecks.ranked[0]?.kind).toBe('queueing');
    } finally {
      thin.close();
    }
  });

  it('buckets a full week of one-minute windows into half-hour chart points (at most 400)', () => {
    const busy = TunerStore.open(':memory:');
    try {
      const t = Date.UTC(2026, 2, 16);
      busy.transaction(() => windows(busy, t, 7 * 1440, { requests: 3, attainment: 1 }));
      const r = buildWeeklyReport(busy, options('2026-W12'));
      expect(r.series.bucketMs).toBe(1_800_000);
      expect(r.series.points).toHaveLength(336);
      expect(r.series.points[0]!.requests).toBe(90);
      expect(r.series.aggregation).toContain('p99: the worst window');
    } finally {
      busy.close();
    }
  });

  describe('writing', () => {
    let out: string;
    beforeAll(() => {
      out = join(dir, 'reports');
    });

    it('writes .md, .html and .json, records the report, and regenerates byte-identically', async () => {
      const first = await writeWeeklyReport(store, { ...options('2026-W10'), dir: out }, Date.UTC(2026, 2, 9, 9));
      expect(first.rewritten).toEqual(['md', 'html', 'json']);
      expect(readdirSync(out).sort()).toEqual(['2026-W10.html', '2026-W10.json', '2026-W10.md']);
      const files = Object.fromEntries(Object.entries(first.paths).map(([f, p]) => [f, readFileSync(p, 'utf8')]));
      expect(JSON.parse(files['json']!)).toEqual(JSON.parse(JSON.stringify(w10)));
      expect(files['html']).toMatch(/^<!DOCTYPE html>/);
      // A week later, from the same store data: nothing changes, not even the files' bytes.
      const again = await writeWeeklyReport(store, { ...options('2026-W10'), dir: out }, Date.UTC(2026, 2, 16, 9));
      expect(again.rewritten).toEqual([]);
      for (const [f, p] of Object.entries(again.paths)) expect(readFileSync(p, 'utf8'), f).toBe(files[f]);
      // The store's index knows when it was last written.
      expect(store.reports().find((r) => r.week === '2026-W10')).toMatchObject({ generatedMs: Date.UTC(2026, 2, 16, 9), periodStartMs: W10, periodEndMs: W11 });
    });

    it('replaces a half-written file and leftovers of a killed writer', async () => {
      const md = join(out, '2026-W11.md');
      writeFileSync(md, '# Weekly performance report — half of it'); // a non-atomic writer killed mid-way
      writeFileSync(`${md}.${process.pid}.tmp`, 'partial tmp of this very process id');
      const stale = join(out, '2026-W11.html.99999.tmp');
      writeFileSync(stale, 'partial tmp of a writer killed a while ago');
      utimesSync(stale, new Date(Date.UTC(2026, 2, 16)), new Date(Date.UTC(2026, 2, 16)));
      const w = await writeWeeklyReport(store, { ...options('2026-W11'), dir: out }, Date.UTC(2026, 2, 16, 9));
      expect(readFileSync(md, 'utf8')).toBe(renderMarkdown(w.report, await renderReportCharts(w.report)));
      expect(existsSync(`${md}.${process.pid}.tmp`)).toBe(false);
      expect(existsSync(stale)).toBe(false);
      expect(readdirSync(out).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      // W11's week over week came from the store, and the W10 twin is there too.
      expect(w.report.weekOverWeek.source).toBe('store');
    });
  });
});

// ---- a store filled by a real run ------------------------------------------------------------------------------

describe('weekly report from a real run of the shipped model', () => {
  let h: TunedServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-report-run-'));
    h = await startTunedServer({
      dir,
      config: { scheduler: { maxBatchSize: 1 }, verify: { shadowShare: 0.5, minSamples: 12 }, tuner: { reportsDir: join(dir, 'reports') } },
    });
  });
  afterAll(async () => {
    await h?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('names queueing first and shows the applied proposal with its passing verdict', async () => {
    await h.load({ clients: 8, seconds: 5 });
    const run = await h.api('/api/tuner/run', { method: 'POST', role: 'approver' });
    expect(run.status).toBe(202);
    const ac = new AbortController();
    const traffic = h.load({ clients: 8, seconds: 120, signal: ac.signal });
    await h.tuned.tuner.idle();
    ac.abort();
    await traffic;

    const week = formatIsoWeek(isoWeekOf(Date.now(), 'UTC'));
    // A few seconds of windows, not a week: lowered thresholds, as the example report does.
    const r = buildWeeklyReport(
      h.store,
      options(week, {
        model: h.config.model.name,
        now: Date.now(),
        thresholds: { minRollupMinutes: 0.05, minRequests: 10 },
      }),
    );
    expect(r.bottlenecks.ranked[0]?.kind, JSON.stringify(r.bottlenecks.ranked.map((b) => [b.kind, b.sloViolatingRequests]))).toBe('queueing');
    const applied = r.changes.find((c) => c.applied);
    expect(applied, JSON.stringify(r.changes.map((c) => [c.id, c.stateAtWeekEnd, c.verification?.verdict]))).toBeDefined();
    expect(applied!.verification?.verdict).toBe('pass');
    expect(applied!.changes[0]).toMatchObject({ knob: 'maxBatchSize', from: 1 });
    expect(r.bottlenecks.ranked[0]!.proposals.map((p) => p.id)).toContain(applied!.id);
    expect(r.settings.at(-1)!.knobs['maxBatchSize']).toBe(applied!.changes[0]!.to);
    // The figures are the store's.
    const range = isoWeekRange(parseIsoWeek(week), 'UTC');
    const ws = h.store.rollups(range.startMs, range.endMs);
    expect(r.traffic.requests).toBe(sum(ws.map((w) => w.requests.finished)));
    expect(r.traffic.generatedTokens).toBe(sum(ws.map((w) => w.tokens.generated)));
    expect(r.slo.allObjectives.met).toBe(sum(ws.map(met)));
    expect(r.traffic.requests).toBeGreaterThan(50);
    const charts = await renderReportCharts(r);
    for (const c of charts) expect(XMLValidator.validate(c.svg), c.id).toBe(true);
  });

  it('keeps received alerts for the report, and the job sets tuneloop_report_last_timestamp_seconds', async () => {
    const gauge = async (): Promise<number> => Number(/^tuneloop_report_last_timestamp_seconds (\S+)$/m.exec(await (await fetch(`${h.url}/metrics`)).text())?.[1]);
    expect(await gauge()).toBe(0);
    h.server.alerts.record({
      version: '4',
      receiver: 'tuneloop',
      status: 'firing',
      groupLabels: {},
      commonLabels: {},
      commonAnnotations: {},
      alerts: [
        {
          status: 'firing',
          labels: { alertname: 'TuneloopQueueGrowing', severity: 'warning' },
          annotations: { summary: 'queue growing' },
          startsAt: new Date().toISOString(),
          endsAt: '',
          fingerprint: 'f1',
        },
      ],
    });
    const week = formatIsoWeek(isoWeekOf(Date.now(), 'UTC'));
    const before = Date.now();
    const written = await h.tuned.writeReport(week);
    expect(written.paths.html).toBe(join(dir, 'reports', `${week}.html`));
    expect(existsSync(written.paths.json)).toBe(true);
    expect(written.report.alerts.bySeverity).toEqual([expect.objectContaining({ severity: 'warning', firings: 1 })]);
    expect(await gauge()).toBeGreaterThanOrEqual(Math.floor(before / 1000));
    expect(h.store.reports()[0]).toMatchObject({ week });
  });
});
