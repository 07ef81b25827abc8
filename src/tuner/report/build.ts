// The weekly bottleneck report's data, built from the tuner store alone: what held the service back in one ISO week,
// with the evidence, the changes the tuner made or proposed and what verification said, the SLO, traffic and cost
// figures, the week before for comparison, the alerts that fired and the series the charts draw.
//
// Everything is read from the store for the week's [Monday 00:00, next Monday 00:00) in the configured zone, by the
// same half-open rules as the store (rollups and findings by their start, alerts by arrival, proposals by their
// transitions). A proposal's state is its state at the week's end, so a past week reads the same when regenerated
// later; the report carries no "generated at", so identical store data gives identical output. A week under the
// thresholds (figures.ts) says "not enough data" and ranks nothing.
import type { LiveSettings, SloTargets, WindowSummary } from '../types.js';
import { COLD_KNOBS, HOT_KNOBS, formatExperts } from '../../engine/knobs.js';
import type { SettingsVersion, StoredAlert, StoredFinding, TunerStore, Verification } from '../store.js';
import { formatIsoWeek, formatLocal, isoWeekRange, parseIsoWeek, previousIsoWeek, type IsoWeek, type WeekRange } from './iso-week.js';
import { DEFAULT_REPORT_THRESHOLDS, costOf, coverageOf, fin, seriesOf, sloOf, throughputOf, trafficOf } from './figures.js';
import { IMPACT_DEFINITION, TOP_BOTTLENECKS, describeChanges, rankBottlenecks } from './bottlenecks.js';
import {
  REPORT_SCHEMA,
  type AlertSection,
  type BottleneckSection,
  type ChangeEntry,
  type KnobChange,
  type ReportThresholds,
  type SettingsInWeek,
  type VerificationSummary,
  type WeekFigures,
  type WeekOverWeek,
  type WeekOverWeekRow,
  type WeeklyReport,
} from './types.js';

/** The store reads the report needs (a TunerStore, or a fake in tests). */
export type ReportStore = Pick<TunerStore, 'rollups' | 'findings' | 'listProposals' | 'transitions' | 'approvals' | 'verifications' | 'settingsHistory' | 'alerts'>;

export interface BuildReportOptions {
  /** ISO week, '2026-W47'. */
  week: string;
  /** IANA zone the week's days are read in (tuner.timezone). */
  timezone: string;
  service: string;
  model: string;
  slo: SloTargets;
  /** metrics.pricePerCoreHour. */
  pricePerCoreHour: number;
  /** The verification settings, named in recommended actions. */
  verify?: { shadowShare: number; minSamples: number };
  thresholds?: Partial<ReportThresholds>;
  /** The previous week's report (its JSON twin): week over week from it when the store no longer has that week. */
  previous?: WeeklyReport;
  /** A line on what the data is when it is not a production week (the example report's load run). */
  dataNote?: string;
  /** Only decides whether the week is still running (`period.partial`). Default Date.now(). */
  now?: number;
}

/** Lists are unbounded within a week: the store's default page (1000) is for the REST API. */
const ALL = 1_000_000;

/** Flat knob → value; the expert set as `layer:expert,…` text. MoE knobs appear only in settings that carry them, so
 *  the reports of dense models are unchanged. */
function knobsOf(s: LiveSettings): Record<string, number | string> {
  const { redundantExperts, ...layout } = s.layout;
  return { ...s.scheduler, ...layout, ...(redundantExperts !== undefined ? { redundantExperts: formatExperts(redundantExperts) } : {}) };
}

const KNOB_ORDER: readonly string[] = [...HOT_KNOBS, ...COLD_KNOBS];

function knobChanges(from: Record<string, number | string> | undefined, to: Record<string, number | string>, only?: readonly string[]): KnobChange[] {
  const keys = only ?? KNOB_ORDER.filter((k) => from === undefined || from[k] !== to[k]);
  return [...keys].sort((a, b) => KNOB_ORDER.indexOf(a) - KNOB_ORDER.indexOf(b)).map((knob) => ({ knob, from: from?.[knob] ?? null, to: to[knob] ?? null }));
}

/** The settings versions live at some point of the week, oldest first, each with what it changed. */
function settingsInWeek(history: readonly SettingsVersion[], range: WeekRange): SettingsInWeek[] {
  const asc = [...history].sort((a, b) => a.version - b.version);
  const out: SettingsInWeek[] = [];
  asc.forEach((v, i) => {
    const next = asc[i + 1];
    const liveFromMs = Math.max(v.createdMs, range.startMs);
    const liveToMs = Math.min(next?.createdMs ?? Infinity, range.endMs);
    // Live at some point of [start, end): made before the end, and not replaced before the start.
    if (v.createdMs >= range.endMs || (next !== undefined && next.createdMs <= range.startMs)) return;
    const prev = asc[i - 1];
    out.push({
      version: v.version,
      source: v.source,
      actor: v.actor,
      proposalId: v.proposalId,
      note: v.note,
      createdMs: v.createdMs,
      liveFromMs,
      liveToMs,
      changes: prev ? knobChanges(knobsOf(prev.settings), knobsOf(v.settings)) : [],
      knobs: knobsOf(v.settings),
    });
  });
  return out;
}

function verificationSummary(v: Verification): VerificationSummary {
  const e = v.evidence;
  return {
    atMs: v.atMs,
    verdict: e.verdict,
    reasons: e.reasons,
    method: e.method,
    mirroredRequests: e.mirroredRequests,
    meanCosine: fin(e.quality.meanCosine),
    minCosine: fin(e.quality.minCosine),
    greedyAgreement: fin(e.quality.greedyAgreement),
    perplexityDelta: fin(e.quality.perplexityDelta),
    qualityPassed: e.quality.passed,
    latency: e.performance.comparisons.map((c) => ({
      metric: c.metric,
      baselineMedianS: fin(c.baselineMedianS),
      candidateMedianS: fin(c.candidateMedianS),
      relativeChange: fin(c.relativeChange),
      pValue: fin(c.pValue),
      effectSize: fin(c.effectSize),
      outcome: c.outcome,
    })),
    goodputChange: fin(e.performance.goodputChange),
  };
}

/** Every proposal with a transition in the week, with its state at the week's end. */
function changesInWeek(store: ReportStore, range: WeekRange, history: readonly SettingsVersion[]): ChangeEntry[] {
  const inWeek = (ms: number): boolean => ms >= range.startMs && ms < range.endMs;
  const candidates = store
    .listProposals({ limit: ALL })
    .filter((p) => p.createdMs < range.endMs && p.updatedMs >= range.startMs)
    .sort((a, b) => a.id - b.id);
  if (candidates.length === 0) return [];
  const verifications = store.verifications(Math.min(...candidates.map((p) => p.createdMs)), range.endMs);
  const byVersion = new Map(history.map((v) => [v.version, v]));
  const out: ChangeEntry[] = [];
  for (const p of candidates) {
    const all = store.transitions(p.id);
    const transitions = all.filter((t) => inWeek(t.atMs));
    if (transitions.length === 0) continue;
    const stateAtWeekEnd = all.filter((t) => t.atMs < range.endMs).at(-1)!.to;
    const verified = verifications.filter((v) => v.proposalId === p.id).at(-1);
    const base = byVersion.get(p.baseVersion);
    const changed = [...Object.keys(p.candidate.change.scheduler ?? {}), ...Object.keys(p.candidate.change.layout ?? {})];
    const apply = transitions.find((t) => t.to === 'watching');
    const appliedVersion = p.appliedVersion ?? history.find((v) => v.proposalId === p.id && v.source === 'tuner')?.version ?? null;
    const rollback = transitions.find((t) => t.to === 'rolled_back');
    out.push({
      id: p.id,
      addresses: p.candidate.addresses,
      changes: knobChanges(base ? knobsOf(base.settings) : undefined, knobsOf(p.target), changed),
      temperature: p.candidate.temperature,
      rationale: p.candidate.rationale,
      createdMs: p.createdMs,
      needsApproval: p.needsApproval,
      baseVersion: p.baseVersion,
      stateAtWeekEnd,
      transitions: transitions.map((t) => ({ from: t.from, to: t.to, atMs: t.atMs, actor: t.actor, comment: t.comment })),
      verification: verified ? verificationSummary(verified) : null,
      approvals: store
        .approvals(p.id)
        .filter((a) => inWeek(a.atMs))
        .map((a) => ({ decision: a.decision, actor: a.actor, role: a.role, atMs: a.atMs, comment: a.comment })),
      applied: apply && appliedVersion !== null ? { atMs: apply.atMs, version: appliedVersion } : null,
      rollback: rollback ? { atMs: rollback.atMs, actor: rollback.actor, comment: rollback.comment } : null,
    });
  }
  return out;
}

const SEVERITY_ORDER = ['critical', 'warning', 'info'];

export function alertsSection(alerts: readonly StoredAlert[]): AlertSection {
  const firing = alerts.filter((a) => a.status === 'firing');
  const episode = (a: StoredAlert): string => `${a.fingerprint || JSON.stringify(a.labels)}|${a.startsAt}`;
  const bySeverity = new Map<string, StoredAlert[]>();
  for (const a of firing) {
    const sev = a.severity || 'none';
    bySeverity.set(sev, [...(bySeverity.get(sev) ?? []), a]);
  }
  const rank = (s: string): number => (SEVERITY_ORDER.includes(s) ? SEVERITY_ORDER.indexOf(s) : SEVERITY_ORDER.length);
  return {
    notifications: firing.length,
    firings: new Set(firing.map(episode)).size,
    bySeverity: [...bySeverity.entries()]
      .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
      .map(([severity, list]) => {
        const byName = new Map<string, StoredAlert[]>();
        for (const a of list) byName.set(a.alertname, [...(byName.get(a.alertname) ?? []), a]);
        const groups = [...byName.entries()]
          .map(([alertname, as]) => ({
            alertname,
            notifications: as.length,
            firings: new Set(as.map(episode)).size,
            firstMs: Math.min(...as.map((a) => a.receivedMs)),
            lastMs: Math.max(...as.map((a) => a.receivedMs)),
            summary: as.at(-1)!.annotations['summary'] ?? '',
          }))
          .sort((a, b) => b.firings - a.firings || a.alertname.localeCompare(b.alertname));
        return { severity, notifications: list.length, firings: new Set(list.map(episode)).size, alerts: groups };
      }),
  };
}

interface WeekParts {
  slo: WeeklyReport['slo'];
  traffic: WeeklyReport['traffic'];
  throughput: WeeklyReport['throughput'];
  cost: WeeklyReport['cost'];
  bottlenecks: BottleneckSection;
}

/** The figures compared week over week, from a report's sections (this week's, or the previous JSON twin's). */
export function weekFigures(r: WeekParts): WeekFigures {
  const p99 = (o: string): number | null => r.slo.objectives.find((x) => x.objective === o)?.typicalP99S ?? null;
  return {
    requests: r.traffic.requests,
    generatedTokens: r.traffic.generatedTokens,
    sloAttainment: r.slo.allObjectives.attainment,
    ttftP99S: p99('ttft'),
    interTokenP99S: p99('inter_token'),
    e2eP99S: p99('e2e'),
    meanTokensPerS: r.throughput.meanTokensPerS,
    meanGoodputTokensPerS: r.throughput.meanGoodputTokensPerS,
    errorRate: r.slo.errorBudget.errorRate,
    costPerMillionTokens: r.cost.perMillionTokens,
    topBottleneck: r.bottlenecks.ranked[0]?.kind ?? null,
  };
}

const WOW_ROWS: { key: Exclude<keyof WeekFigures, 'topBottleneck'>; label: string; better: WeekOverWeekRow['better'] }[] = [
  { key: 'requests', label: 'Requests', better: 'neutral' },
  { key: 'generatedTokens', label: 'Generated tokens', better: 'neutral' },
  { key: 'sloAttainment', label: 'SLO attainment (all objectives)', better: 'higher' },
  { key: 'ttftP99S', label: 'TTFT p99, typical window (s)', better: 'lower' },
  { key: 'interTokenP99S', label: 'Inter-token p99, typical window (s)', better: 'lower' },
  { key: 'e2eP99S', label: 'End-to-end p99, typical window (s)', better: 'lower' },
  { key: 'meanTokensPerS', label: 'Throughput (tokens/s)', better: 'higher' },
  { key: 'meanGoodputTokensPerS', label: 'Goodput (tokens/s)', better: 'higher' },
  { key: 'errorRate', label: 'Error rate', better: 'lower' },
  { key: 'costPerMillionTokens', label: 'Cost per million tokens', better: 'lower' },
];

function weekOverWeek(previousWeek: string, source: WeekOverWeek['source'], cur: WeekFigures, prev: WeekFigures | undefined): WeekOverWeek {
  return {
    previousWeek,
    source,
    rows: WOW_ROWS.map(({ key, label, better }) => {
      const c = cur[key],
        p = prev?.[key] ?? null;
      return { key, label, current: c, previous: p, relativeChange: c !== null && p !== null && p !== 0 ? (c - p) / p : null, better };
    }),
    topBottleneck: { current: cur.topBottleneck, previous: prev?.topBottleneck ?? null },
  };
}

interface WeekCore extends WeekParts {
  windows: WindowSummary[];
  findings: StoredFinding[];
  coverage: WeeklyReport['coverage'];
}

/** The figures of one week from the store (shared by the report's week and the week before it). */
function weekCore(store: ReportStore, range: WeekRange, o: BuildReportOptions, changes: readonly ChangeEntry[]): WeekCore {
  const thresholds = { ...DEFAULT_REPORT_THRESHOLDS, ...o.thresholds };
  const windows = store.rollups(range.startMs, range.endMs);
  const findings = store.findings(range.startMs, range.endMs);
  const coverage = coverageOf(windows, thresholds, o.dataNote ?? '');
  const all = rankBottlenecks({
    windows,
    findings,
    changes,
    week: { fromMs: range.startMs, toMs: range.endMs },
    enough: coverage.enough,
    timezone: o.timezone,
    ...(o.verify ? { verify: o.verify } : {}),
  });
  const counts = new Map<string, number>();
  for (const f of findings) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
  const bottlenecks: BottleneckSection = {
    definition: IMPACT_DEFINITION,
    ranked: coverage.enough ? all.slice(0, TOP_BOTTLENECKS) : [],
    others: coverage.enough ? all.slice(TOP_BOTTLENECKS) : [],
    findingsByKind: all.map((b) => ({ kind: b.kind, count: counts.get(b.kind) ?? 0 })).sort((a, b) => b.count - a.count || a.kind.localeCompare(b.kind)),
  };
  return {
    windows,
    findings,
    coverage,
    bottlenecks,
    slo: sloOf(windows, o.slo),
    traffic: trafficOf(windows),
    throughput: throughputOf(windows),
    cost: costOf(windows, o.pricePerCoreHour),
  };
}

/** Build one week's report from the store. Throws IsoWeekError for a malformed week. */
export function buildWeeklyReport(store: ReportStore, o: BuildReportOptions): WeeklyReport {
  const week: IsoWeek = parseIsoWeek(o.week);
  const range = isoWeekRange(week, o.timezone);
  const history = store.settingsHistory(ALL);
  const changes = changesInWeek(store, range, history);
  const core = weekCore(store, range, o, changes);
  const settings = settingsInWeek(history, range);

  const prevWeek = previousIsoWeek(week);
  const prevText = formatIsoWeek(prevWeek);
  const prevRange = isoWeekRange(prevWeek, o.timezone);
  const prevCore = weekCore(store, prevRange, { ...o, dataNote: '' }, []);
  let wow: WeekOverWeek;
  const current = weekFigures(core);
  if (prevCore.windows.length > 0) wow = weekOverWeek(prevText, 'store', current, weekFigures(prevCore));
  else if (o.previous?.schema === REPORT_SCHEMA && o.previous.week === prevText) wow = weekOverWeek(prevText, 'previous report', current, weekFigures(o.previous));
  else wow = weekOverWeek(prevText, 'none', current, undefined);

  const markers = settings
    .filter((s) => s.createdMs >= range.startMs)
    .map((s) => ({
      atMs: s.createdMs,
      version: s.version,
      label: `v${s.version}: ${describeChanges(s.changes)}`,
    }));
  return {
    schema: REPORT_SCHEMA,
    week: formatIsoWeek(week),
    service: o.service,
    model: o.model,
    period: {
      startMs: range.startMs,
      endMs: range.endMs,
      timezone: o.timezone,
      start: formatLocal(range.startMs, o.timezone),
      end: formatLocal(range.endMs, o.timezone),
      partial: (o.now ?? Date.now()) < range.endMs,
    },
    coverage: core.coverage,
    settings,
    slo: core.slo,
    traffic: core.traffic,
    throughput: core.throughput,
    cost: core.cost,
    bottlenecks: core.bottlenecks,
    changes,
    weekOverWeek: wow,
    alerts: alertsSection(store.alerts(range.startMs, range.endMs)),
    series: seriesOf(core.windows, markers),
  };
}
