// The weekly report as a reader sees it: Markdown (for the repository and chat) and one self-contained HTML page
// (charts inline as SVG, CSS inline, no scripts, no external assets; readable on a phone).
//
// Both come from one list of blocks (headings, paragraphs, lists, tables, charts) built once from the report data,
// so the two formats always say the same thing. Inline text knows two marks, **bold** and `code`; everything else
// is escaped for the target format (alert annotations and comments are user text).
import { formatLocal } from './iso-week.js';
import type { ReportChart } from './charts.js';
import { describeChanges } from './bottlenecks.js';
import type { Bottleneck, ChangeEntry, ObjectiveAttainment, WeeklyReport } from './types.js';

type Align = 'l' | 'r';
type Block =
  | { kind: 'h'; level: 1 | 2 | 3; text: string }
  | { kind: 'p'; text: string; tone?: 'note' | 'warn' | 'muted' }
  | { kind: 'ul'; items: string[] }
  | { kind: 'table'; head: string[]; rows: string[][]; align?: Align[] }
  | { kind: 'charts'; charts: ReportChart[] };

// ---- numbers and times -----------------------------------------------------------------------------------------

const DASH = '–';
export function int(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return DASH;
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
export function pct(x: number | null, digits = 1): string {
  return x === null || !Number.isFinite(x) ? DASH : `${(x * 100).toFixed(digits)}%`;
}
/** Three significant digits, without exponent notation for the sizes a report shows. */
export function num(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return DASH;
  if (Math.abs(x) >= 1000) return int(x);
  if (x === 0) return '0';
  return String(Number(x.toPrecision(3)));
}
export function secs(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return DASH;
  return s >= 1 ? `${num(s)} s` : `${num(s * 1000)} ms`;
}
function signedPct(x: number | null): string {
  return x === null || !Number.isFinite(x) ? DASH : `${x > 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
}
/** A reason as one sentence ending in a single full stop. */
function sentence(s: string): string {
  return `${s.trim().replace(/[.;\s]+$/, '')}.`;
}
function pValue(p: number | null): string {
  if (p === null) return DASH;
  return p < 0.001 ? '< 0.001' : p.toFixed(3);
}

interface Ctx {
  r: WeeklyReport;
  /** Short data (a load run, not a week): times with seconds. */
  fine: boolean;
}
const at = (c: Ctx, ms: number): string => formatLocal(ms, c.r.period.timezone, c.fine);
function range(c: Ctx, fromMs: number, toMs: number): string {
  const a = at(c, fromMs),
    b = at(c, toMs);
  return a.slice(0, 10) === b.slice(0, 10) ? `${a}${DASH}${b.slice(11)}` : `${a} ${DASH} ${b}`;
}
/** When a settings version was live, naming the week's edges rather than repeating them. */
function liveSpan(c: Ctx, fromMs: number, toMs: number): string {
  const startOfWeek = fromMs === c.r.period.startMs,
    endOfWeek = toMs === c.r.period.endMs;
  if (startOfWeek && endOfWeek) return 'the whole week';
  if (endOfWeek) return `from ${at(c, fromMs)} to the end of the week`;
  if (startOfWeek) return `from the start of the week to ${at(c, toMs)}`;
  return range(c, fromMs, toMs);
}
function minutes(m: number): string {
  if (m < 1) return `${num(m * 60)} s`;
  if (m < 120) return `${num(m)} min`;
  return `${num(m / 60)} h`;
}

// ---- blocks ----------------------------------------------------------------------------------------------------

function header(c: Ctx): Block[] {
  const r = c.r;
  const versions = r.settings.map((s) => `v${s.version} (${s.source}${s.changes.length ? `: ${describeChanges(s.changes)}` : ''})`).join(', ') || 'none recorded';
  const out: Block[] = [
    { kind: 'h', level: 1, text: `Weekly performance report ${DASH} ${r.service}, ${r.week}` },
    {
      kind: 'table',
      head: ['', ''],
      align: ['l', 'l'],
      rows: [
        ['Service', r.service],
        ['Model', `\`${r.model}\``],
        ['ISO week', `${r.week}: ${r.period.start} ${DASH} ${r.period.end} (${r.period.timezone})`],
        ['Live settings versions', versions],
      ],
    },
  ];
  const cov = r.coverage;
  const covText =
    cov.windows === 0
      ? `**Data:** no rollup windows were stored for this week.`
      : `**Data:** ${int(cov.windows)} rollup windows covering ${minutes(cov.rollupMinutes)}, ${int(cov.requests)} requests, ` +
        `${range(c, cov.firstWindowMs!, cov.lastWindowEndMs!)} (source: ${cov.sources.join(', ')}).` +
        (cov.note ? ` ${cov.note}` : '');
  out.push({ kind: 'p', text: covText, tone: 'note' });
  if (r.period.partial) out.push({ kind: 'p', text: 'This week is still running: the figures cover the data so far.', tone: 'muted' });
  if (!cov.enough) {
    out.push({
      kind: 'p',
      tone: 'warn',
      text:
        `**Not enough data** to name bottlenecks: a week needs at least ${minutes(cov.thresholds.minRollupMinutes)} of rollups and ` +
        `${int(cov.thresholds.minRequests)} requests; this one has ${minutes(cov.rollupMinutes)} and ${int(cov.requests)}. ` +
        'The figures below are what there is; no bottleneck is ranked.',
    });
  }
  return out;
}

function summary(c: Ctx): Block[] {
  const r = c.r;
  const items: string[] = [];
  const top = r.bottlenecks.ranked[0];
  if (top) {
    const outcome = top.applied
      ? `addressed by ${top.proposals
          .filter((p) => p.stateAtWeekEnd === 'watching' || p.stateAtWeekEnd === 'confirmed')
          .map((p) => `#${p.id} (${p.change})`)
          .join(', ')}`
      : 'nothing applied';
    items.push(
      `Top bottleneck: **${top.title}** ${DASH} ${int(top.sloViolatingRequests)} SLO-violating requests` +
        `${top.shareOfViolations !== null ? ` (${pct(top.shareOfViolations, 0)} of the week's)` : ''}, active ${minutes(top.activeMinutes)}; ${outcome}.`,
    );
  } else if (r.coverage.enough) {
    items.push('No bottleneck was found this week.');
  }
  const a = r.slo.allObjectives;
  items.push(
    `SLO attainment (every objective, per request): **${pct(a.attainment)}** (${int(a.met)} of ${int(a.requests)}); ` +
      `error budget burned: ${pct(r.slo.errorBudget.burned, 0)}.`,
  );
  items.push(
    `Traffic: ${int(r.traffic.requests)} requests, ${int(r.traffic.generatedTokens)} generated tokens; throughput ` +
      `${num(r.throughput.meanTokensPerS)} tokens/s; cost ${num(r.cost.perMillionTokens)} per million tokens.`,
  );
  const applied = r.changes.filter((x) => x.applied).length;
  const rolled = r.changes.filter((x) => x.rollback).length;
  items.push(
    `Changes: ${r.changes.length} proposal${r.changes.length === 1 ? '' : 's'} (${applied} applied, ${rolled} rolled back); ` +
      `alerts: ${int(r.alerts.firings)} firing${r.alerts.firings === 1 ? '' : 's'}` +
      `${r.alerts.bySeverity.length ? ` (${r.alerts.bySeverity.map((s) => `${s.firings} ${s.severity}`).join(', ')})` : ''}.`,
  );
  return [
    { kind: 'h', level: 2, text: 'Summary' },
    { kind: 'ul', items },
  ];
}

const OBJECTIVE_NAMES: Record<ObjectiveAttainment['objective'], string> = { ttft: 'Time to first token', inter_token: 'Inter-token latency', e2e: 'End-to-end latency' };

function slo(c: Ctx): Block[] {
  const s = c.r.slo;
  const rows = s.objectives.map((o) => [
    OBJECTIVE_NAMES[o.objective],
    secs(o.targetP99S),
    pct(o.share),
    `${o.windowsMet} of ${o.windows}`,
    secs(o.typicalP99S),
    o.worstP99S === null ? DASH : `${secs(o.worstP99S)} (${at(c, o.worstWindowMs!)})`,
  ]);
  const a = s.allObjectives,
    e = s.errorBudget;
  return [
    { kind: 'h', level: 2, text: 'SLO attainment' },
    {
      kind: 'table',
      head: ['Objective', 'p99 target', 'Requests within¹', 'Windows met', 'Typical p99²', 'Worst window p99'],
      align: ['l', 'r', 'r', 'r', 'r', 'r'],
      rows,
    },
    {
      kind: 'p',
      text:
        `**All objectives at once, per request:** ${pct(a.attainment)} ${DASH} ${int(a.met)} of ${int(a.requests)} requests met every ` +
        `target, ${int(a.violating)} did not. **Errors:** ${int(e.failed)} failed and ${int(e.refused)} refused of ${int(e.requests)} ` +
        `(${pct(e.errorRate, 2)}) against a budget of ${pct(e.budget, 2)}: ${pct(e.burned, 0)} of the error budget burned.`,
    },
    {
      kind: 'p',
      tone: 'muted',
      text:
        '¹ An estimate: the store keeps per-window latency summaries, not each request, so this is the share of requests ' +
        'served in windows whose p99 met the target. ² Request-weighted mean of the per-window p99s.',
    },
  ];
}

function trafficCost(c: Ctx): Block[] {
  const { traffic: t, throughput: th, cost } = c.r;
  return [
    { kind: 'h', level: 2, text: 'Traffic, throughput and cost' },
    {
      kind: 'table',
      head: ['', ''],
      align: ['l', 'l'],
      rows: [
        ['Requests', `${int(t.requests)} (${int(t.errors)} failed, ${int(t.rejected)} refused, ${int(t.cancelled)} cancelled)`],
        ['Busiest window', t.peakRequestsPerMinute === null ? DASH : `${num(t.peakRequestsPerMinute)} requests/min`],
        ['Tokens', `${int(t.promptTokens)} prompt, ${int(t.generatedTokens)} generated`],
        ['Throughput', `${num(th.meanTokensPerS)} tokens/s mean, ${num(th.peakTokensPerS)} peak window`],
        ['Goodput (within SLO)', `${num(th.meanGoodputTokensPerS)} tokens/s`],
        ['Mean batch size', `${num(th.meanBatchSize)} sequences per step`],
        ['Engine utilisation', pct(th.meanUtilization, 0)],
        ['CPU', `${num(cost.cpuSeconds)} CPU-seconds = ${num(cost.coreHours)} core-hours`],
        ['Cost', `${num(cost.total)} (at ${num(cost.pricePerCoreHour)} per core-hour)`],
        ['Cost per million generated tokens', `**${num(cost.perMillionTokens)}**`],
      ],
    },
  ];
}

function bottleneckBlocks(c: Ctx, b: Bottleneck): Block[] {
  const ev = Object.entries(b.evidence)
    .slice(0, 12)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? num(v) : String(v)}`)
    .join(', ');
  const shown = b.ranges
    .slice(0, 6)
    .map((x) => range(c, x.fromMs, x.toMs))
    .join('; ');
  const more = b.ranges.length > 6 ? ` and ${b.ranges.length - 6} more` : '';
  const items = [
    b.sloViolatingRequests === 0
      ? `**Impact:** no SLO-violating request while it was active (it is ranked by its ${int(b.requestSeconds)} request-seconds in the system).`
      : `**Impact:** ${int(b.sloViolatingRequests)} SLO-violating requests${b.shareOfViolations !== null ? ` (${pct(b.shareOfViolations, 0)} of the week's)` : ''}; ` +
        `${int(b.requestSeconds)} request-seconds in the system while active.`,
    `**Active:** ${minutes(b.activeMinutes)} in ${b.ranges.length} range${b.ranges.length === 1 ? '' : 's'}: ${shown}${more}.`,
    `**Evidence:** ${b.findings} finding${b.findings === 1 ? '' : 's'}, confidence up to ${num(b.maxConfidence)}; analyzer impact ` +
      `${num(b.analyzerImpact)} ${b.analyzerUnit}. Strongest: ${ev}.`,
    `**Proposals:** ${
      b.proposals.length === 0
        ? 'none'
        : b.proposals.map((p) => `#${p.id} ${p.change} ${DASH} ${p.stateAtWeekEnd.replace('_', ' ')}` + `${p.verdict ? `, verification ${p.verdict}` : ''}`).join('; ')
    }.`,
  ];
  if (b.applied) {
    items.push(
      b.activeMinutesAfterApply
        ? `**Outcome:** a change was applied, but the bottleneck was still seen for ${minutes(b.activeMinutesAfterApply)} after it.`
        : '**Outcome:** a change was applied and the bottleneck was not seen after it.',
    );
  } else {
    items.push(`**Next action:** ${b.nextAction ?? DASH}`);
  }
  return [
    { kind: 'h', level: 3, text: `${b.rank}. ${b.title}` },
    { kind: 'p', text: b.summary },
    { kind: 'ul', items },
  ];
}

function bottlenecks(c: Ctx): Block[] {
  const s = c.r.bottlenecks;
  const out: Block[] = [{ kind: 'h', level: 2, text: 'Top bottlenecks' }];
  if (!c.r.coverage.enough) {
    const found = s.findingsByKind.map((f) => `${f.kind} (${f.count})`).join(', ');
    out.push({ kind: 'p', text: `Not enough data to rank bottlenecks this week.${found ? ` The tuner stored findings of: ${found}.` : ''}` });
    return out;
  }
  if (s.ranked.length === 0) {
    out.push({ kind: 'p', text: 'The tuner found no bottleneck this week.' });
    return out;
  }
  out.push({ kind: 'p', text: s.definition, tone: 'muted' });
  for (const b of s.ranked) out.push(...bottleneckBlocks(c, b));
  if (s.others.length) {
    out.push({
      kind: 'p',
      text: `Also seen: ${s.others.map((b) => `${b.title} (${int(b.sloViolatingRequests)} SLO-violating requests, ${minutes(b.activeMinutes)})`).join('; ')}.`,
    });
  }
  return out;
}

const ENDED_SHORT = new Set(['expired', 'rejected', 'rolled_back']);

function changeBlocks(c: Ctx, x: ChangeEntry): Block[] {
  const items: string[] = [
    `**Addresses:** ${x.addresses}; ${x.temperature} change against settings v${x.baseVersion}` +
      `${x.needsApproval ? ', needs a human approval' : ', policy applies it without a human once verified'}. Proposed ${at(c, x.createdMs)}.`,
    `**Why:** ${x.rationale}`,
  ];
  const v = x.verification;
  if (v) {
    items.push(
      `**Verification:** **${v.verdict}** at ${at(c, v.atMs)}, ${int(v.mirroredRequests)} mirrored requests; quality: mean cosine ` +
        `${v.meanCosine?.toFixed(4) ?? DASH} (min ${v.minCosine?.toFixed(4) ?? DASH}), greedy agreement ${pct(v.greedyAgreement)}, perplexity ` +
        `${signedPct(v.perplexityDelta)}` +
        // The first reason is the verdict's own sentence; it usually states the goodput change already.
        `${v.reasons[0]?.includes('goodput per core') ? '' : `; goodput per core ${signedPct(v.goodputChange)}`}.` +
        `${v.reasons[0] ? ` ${sentence(v.reasons[0])}` : ''}`,
    );
  } else {
    items.push('**Verification:** none recorded by the end of the week.');
  }
  items.push(
    `**Approvals:** ${
      x.approvals.length === 0
        ? 'none'
        : x.approvals
            .map(
              (a) =>
                `${a.decision === 'approve' ? 'approved' : 'rejected'} by ` + `${a.actor} (${a.role}) at ${at(c, a.atMs)}${a.comment ? ` ${DASH} "${a.comment}"` : ''}`,
            )
            .join('; ')
    }.`,
  );
  items.push(
    `**Applied:** ${x.applied ? `as settings v${x.applied.version} at ${at(c, x.applied.atMs)}` : 'no'}.` +
      ` **Rollback:** ${x.rollback ? `at ${at(c, x.rollback.atMs)} by ${x.rollback.actor}: ${x.rollback.comment}` : 'none'}.`,
  );
  // Where a proposal stopped short, the comment says why (expired: the live settings moved; rolled back: the watch
  // failed); a rejection after verification is explained by the verification line already.
  const why = (t: ChangeEntry['transitions'][number]): string => {
    if (!ENDED_SHORT.has(t.to) || !t.comment || (t.to === 'rejected' && v)) return '';
    return `: ${t.comment.length > 160 ? `${t.comment.slice(0, 159)}…` : t.comment}`;
  };
  items.push(`**Trail:** ${x.transitions.map((t) => `${t.to.replace('_', ' ')} ${at(c, t.atMs).slice(11)} (${t.actor}${why(t)})`).join(' → ')}.`);
  const out: Block[] = [
    { kind: 'h', level: 3, text: `#${x.id} ${describeChanges(x.changes)} ${DASH} ${x.stateAtWeekEnd.replace('_', ' ')}` },
    { kind: 'ul', items },
  ];
  if (v && v.latency.length) {
    out.push({
      kind: 'table',
      head: ['Latency', 'Baseline median', 'Candidate median', 'Change', 'p-value', 'Effect size', 'Outcome'],
      align: ['l', 'r', 'r', 'r', 'r', 'r', 'l'],
      rows: v.latency.map((l) => [
        l.metric,
        secs(l.baselineMedianS),
        secs(l.candidateMedianS),
        signedPct(l.relativeChange),
        pValue(l.pValue),
        num(l.effectSize),
        l.outcome,
      ]),
    });
  }
  return out;
}

function changes(c: Ctx): Block[] {
  const out: Block[] = [{ kind: 'h', level: 2, text: 'Changes' }];
  if (c.r.changes.length === 0) out.push({ kind: 'p', text: 'No proposal was made, decided or applied this week.' });
  for (const x of c.r.changes) out.push(...changeBlocks(c, x));
  out.push({ kind: 'h', level: 3, text: 'Settings live during the week' });
  out.push({
    kind: 'table',
    head: ['Version', 'Live', 'Source', 'Changed'],
    align: ['l', 'l', 'l', 'l'],
    rows: c.r.settings.map((s) => [
      `v${s.version}`,
      liveSpan(c, s.liveFromMs, s.liveToMs),
      `${s.source}${s.actor !== s.source ? ` (${s.actor})` : ''}${s.proposalId !== null ? `, #${s.proposalId}` : ''}`,
      s.changes.length ? describeChanges(s.changes) : s.note || DASH,
    ]),
  });
  return out;
}

function weekOverWeek(c: Ctx): Block[] {
  const w = c.r.weekOverWeek;
  const head: Block = { kind: 'h', level: 2, text: `Week over week (against ${w.previousWeek})` };
  if (w.source === 'none') return [head, { kind: 'p', text: `No data for ${w.previousWeek}: nothing to compare with.` }];
  const fmt = (key: string, x: number | null): string => {
    if (key === 'sloAttainment' || key === 'errorRate') return pct(x, key === 'errorRate' ? 2 : 1);
    if (key.endsWith('P99S')) return secs(x);
    if (key === 'requests' || key === 'generatedTokens') return int(x);
    return num(x);
  };
  const verdict = (row: (typeof w.rows)[number]): string => {
    if (row.relativeChange === null || row.better === 'neutral' || Math.abs(row.relativeChange) < 0.005) return '';
    return row.relativeChange > 0 === (row.better === 'higher') ? ' (better)' : ' (worse)';
  };
  return [
    head,
    { kind: 'p', text: `Previous figures from ${w.source === 'store' ? 'the store' : "the previous report's JSON"}.`, tone: 'muted' },
    {
      kind: 'table',
      head: ['Figure', 'This week', w.previousWeek, 'Change'],
      align: ['l', 'r', 'r', 'r'],
      rows: [
        ...w.rows.map((row) => [row.label, fmt(row.key, row.current), fmt(row.key, row.previous), `${signedPct(row.relativeChange)}${verdict(row)}`]),
        ['Top bottleneck', w.topBottleneck.current ?? DASH, w.topBottleneck.previous ?? DASH, ''],
      ],
    },
  ];
}

function alerts(c: Ctx): Block[] {
  const a = c.r.alerts;
  const out: Block[] = [{ kind: 'h', level: 2, text: 'Alerts' }];
  if (a.bySeverity.length === 0) return [...out, { kind: 'p', text: 'No alert fired this week.' }];
  for (const s of a.bySeverity) {
    out.push({
      kind: 'h',
      level: 3,
      text: `${s.severity} ${DASH} ${s.firings} firing${s.firings === 1 ? '' : 's'}, ${s.notifications} notification${s.notifications === 1 ? '' : 's'}`,
    });
    out.push({
      kind: 'table',
      head: ['Alert', 'Firings', 'Notifications', 'First', 'Last', 'Summary'],
      align: ['l', 'r', 'r', 'l', 'l', 'l'],
      rows: s.alerts.map((g) => [`\`${g.alertname}\``, int(g.firings), int(g.notifications), at(c, g.firstMs), at(c, g.lastMs), g.summary || DASH]),
    });
  }
  return out;
}

function blocksOf(r: WeeklyReport, charts: ReportChart[]): Block[] {
  const span = r.coverage.firstWindowMs !== null ? r.coverage.lastWindowEndMs! - r.coverage.firstWindowMs : Infinity;
  const c: Ctx = { r, fine: span < 2 * 3_600_000 };
  const chartBlocks: Block[] = [{ kind: 'h', level: 2, text: 'Charts' }];
  chartBlocks.push(charts.length ? { kind: 'charts', charts } : { kind: 'p', text: 'No rollup windows to chart.' });
  if (r.series.aggregation) chartBlocks.push({ kind: 'p', tone: 'muted', text: `Each point is ${minutes(r.series.bucketMs / 60_000)}: ${r.series.aggregation}.` });
  return [...header(c), ...summary(c), ...bottlenecks(c), ...slo(c), ...trafficCost(c), ...chartBlocks, ...changes(c), ...weekOverWeek(c), ...alerts(c)];
}

// ---- Markdown --------------------------------------------------------------------------------------------------

/** Escape what Markdown would read as HTML or a table edge; keep the ** and ` marks. */
function mdText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
const mdCell = (s: string): string => mdText(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderMarkdown(r: WeeklyReport, charts: ReportChart[] = []): string {
  const out: string[] = [];
  for (const b of blocksOf(r, charts)) {
    switch (b.kind) {
      case 'h':
        out.push(`${'#'.repeat(b.level)} ${mdText(b.text)}`);
        break;
      case 'p':
        out.push(b.tone === 'note' || b.tone === 'warn' ? `> ${mdText(b.text)}` : b.tone === 'muted' ? `_${mdText(b.text)}_` : mdText(b.text));
        break;
      case 'ul':
        out.push(b.items.map((i) => `- ${mdText(i)}`).join('\n'));
        break;
      case 'table': {
        // A key/value table (no header) reads better in raw Markdown as a list.
        if (b.head.every((h) => h === '')) {
          out.push(b.rows.map(([k, v]) => `- **${mdText(k ?? '')}:** ${mdText(v ?? '')}`).join('\n'));
          break;
        }
        const align = b.align ?? b.head.map(() => 'l');
        out.push(
          [
            `| ${b.head.map(mdCell).join(' | ')} |`,
            `| ${align.map((a) => (a === 'r' ? '---:' : '---')).join(' | ')} |`,
            ...b.rows.map((row) => `| ${row.map(mdCell).join(' | ')} |`),
          ].join('\n'),
        );
        break;
      }
      case 'charts':
        out.push(`The charts (${b.charts.map((ch) => ch.title.toLowerCase()).join(', ')}) are in the HTML version of this report, \`${r.week}.html\`.`);
        break;
    }
  }
  return `${out.join('\n\n')}\n`;
}

// ---- HTML ------------------------------------------------------------------------------------------------------

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
/** Escaped text with **bold** and `code` turned into tags. */
function htmlText(s: string): string {
  return escapeHtml(s)
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/`([^`]+)`/g, '<code>$1</code>');
}

const CSS = `
:root{color-scheme:light;--fg:#1d2329;--muted:#5f6b76;--line:#e3e7eb;--accent:#0b5cad;--warn-bg:#fff4e5;--warn:#8a4b00;--note-bg:#f3f6f9}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:#fff}
main{max-width:980px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 12px}
h2{font-size:1.2rem;margin:36px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:1.02rem;margin:22px 0 6px}
p{margin:8px 0}
ul{margin:6px 0 10px;padding-left:22px}
li{margin:3px 0}
code{font:0.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f1f3f5;padding:1px 4px;border-radius:3px}
.note{background:var(--note-bg);border-left:4px solid var(--accent);padding:8px 12px;border-radius:4px}
.warn{background:var(--warn-bg);border-left:4px solid #f0a030;color:var(--warn);padding:8px 12px;border-radius:4px}
.muted{color:var(--muted);font-size:0.9em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:8px 0}
table{border-collapse:collapse;font-size:0.92em;min-width:50%}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);vertical-align:top;text-align:left}
th{background:#f7f9fa;font-weight:600;white-space:nowrap}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:1fr;gap:18px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:10px 10px 6px}
figure h3{margin:0 0 4px}
figure svg{display:block;width:100%;height:auto}
figcaption{color:var(--muted);font-size:0.85em;margin-top:4px}
@media (max-width:600px){main{padding:16px 12px 32px}h1{font-size:1.3rem}body{font-size:14px}th,td{padding:4px 6px}}
@media print{h2{break-after:avoid}figure{break-inside:avoid}}
`.trim();

export function renderHtml(r: WeeklyReport, charts: ReportChart[]): string {
  const body: string[] = [];
  for (const b of blocksOf(r, charts)) {
    switch (b.kind) {
      case 'h':
        body.push(`<h${b.level}>${htmlText(b.text)}</h${b.level}>`);
        break;
      case 'p':
        body.push(`<p${b.tone ? ` class="${b.tone}"` : ''}>${htmlText(b.text)}</p>`);
        break;
      case 'ul':
        body.push(`<ul>${b.items.map((i) => `<li>${htmlText(i)}</li>`).join('')}</ul>`);
        break;
      case 'table': {
        const cls = (i: number): string => (b.align?.[i] === 'r' ? ' class="r"' : '');
        const keyValue = b.head.every((h) => h === '');
        const head = keyValue ? '' : `<thead><tr>${b.head.map((h, i) => `<th${cls(i)}>${htmlText(h)}</th>`).join('')}</tr></thead>`;
        const rows = b.rows.map(
          (row) => `<tr>${row.map((cell, i) => (keyValue && i === 0 ? `<th>${htmlText(cell)}</th>` : `<td${cls(i)}>${htmlText(cell)}</td>`)).join('')}</tr>`,
        );
        body.push(`<div class="scroll"><table${keyValue ? ' class="kv"' : ''}>${head}<tbody>${rows.join('')}</tbody></table></div>`);
        break;
      }
      case 'charts':
        body.push(
          `<div class="charts">${b.charts
            .map((ch) => `<figure id="chart-${ch.id}"><h3>${escapeHtml(ch.title)}</h3>` + `${ch.svg}<figcaption>${escapeHtml(ch.caption)}</figcaption></figure>`)
            .join('')}</div>`,
        );
        break;
    }
  }
  const title = `${r.service} ${DASH} weekly performance report ${r.week}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tuneloop ${escapeHtml(r.schema)}">
<title>${escapeHtml(title)}</title>
<style>
${CSS}
</style>
</head>
<body>
<main>
${body.join('\n')}
</main>
</body>
</html>
`;
}
