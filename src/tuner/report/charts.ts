// The weekly report's charts: vega-lite specs over the report's series, rendered to SVG strings in-process (vega's
// headless 'none' renderer: no browser, no canvas), so the HTML report carries them inline.
//
// Times are drawn in the report's zone: each instant is shifted by the zone's UTC offset and drawn on a UTC scale,
// which makes the axis read local wall-clock time whatever TZ the process runs in. Every time chart marks the settings
// changes of the week as dashed vertical rules labelled with the new version; latency charts draw the SLO target as
// a red rule. Gaps longer than two points' width break the lines instead of joining across missing data.
// The output is deterministic (no ids or timestamps in the SVG), so a regenerated report is byte-identical.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { KV_HIGH_USAGE } from '../analyze.js';
import { utcOffsetMs } from './iso-week.js';
import type { SeriesPoint, WeeklyReport } from './types.js';

export interface ReportChart {
  id: 'ttft' | 'inter_token' | 'e2e' | 'throughput' | 'batch_size' | 'kv_usage';
  title: string;
  caption: string;
  svg: string;
}

const WIDTH = 640;
const HEIGHT = 170;
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif';
const COLORS = { p50: '#9ecae1', p90: '#4292c6', p99: '#08306b', slo: '#d62728', change: '#6b6b6b', good: '#2ca02c', through: '#1f77b4', throughPale: '#9ecae1' };

type Row = Record<string, number | string | null>;

const BASE = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  width: WIDTH,
  height: HEIGHT,
  autosize: { type: 'fit', contains: 'padding' },
  background: 'white',
  config: {
    font: FONT,
    view: { stroke: null },
    axis: {
      labelFontSize: 11,
      titleFontSize: 11,
      titleFontWeight: 'normal',
      titleColor: '#444',
      labelColor: '#444',
      gridColor: '#eee',
      domainColor: '#999',
      tickColor: '#999',
    },
    legend: { orient: 'top', title: null, labelFontSize: 11, labelLimit: 0, symbolStrokeWidth: 2 },
  },
} as const;

async function toSvg(spec: object): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec as TopLevelSpec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Local wall-clock ms for a UTC scale. */
const localMs = (ms: number, tz: string): number => ms + utcOffsetMs(ms, tz);
const midOf = (p: SeriesPoint): number => (p.startMs + p.endMs) / 2;

/** Long-format rows of some series fields, with a null row in each gap so lines break there. */
function longRows(r: WeeklyReport, fields: [keyof SeriesPoint, string][]): Row[] {
  const pts = r.series.points;
  const gapMs = 2 * Math.max(r.series.bucketMs, 1);
  const rows: Row[] = [];
  pts.forEach((p, i) => {
    const prev = pts[i - 1];
    for (const [field, series] of fields) {
      if (prev && p.startMs - prev.endMs > gapMs) rows.push({ t: localMs(prev.endMs + 1, r.period.timezone), series, value: null });
      rows.push({ t: localMs(midOf(p), r.period.timezone), series, value: p[field] });
    }
  });
  return rows;
}

/** The time axis: 24-hour local labels, ticks spaced for the span the data covers (minutes of a load run, a week). */
function timeX(r: WeeklyReport): object {
  const pts = r.series.points;
  const spanMs = pts.length ? pts[pts.length - 1]!.endMs - pts[0]!.startMs : 0;
  // A tick count, not an interval object (vega 6 cannot render those headless); few enough that a 24-hour label
  // never repeats (minute labels need ticks at least a minute apart).
  const minutes = spanMs / 60_000;
  const [tickCount, format] =
    minutes <= 120
      ? [Math.max(2, Math.min(10, Math.floor(minutes))), '%H:%M']
      : minutes <= 2 * 1440
        ? [Math.min(12, Math.floor(minutes / 60)), '%a %H:%M']
        : [Math.min(8, Math.ceil(minutes / 1440)), '%a %d'];
  return { field: 't', type: 'temporal', scale: { type: 'utc' }, title: null, axis: { aria: false, labelOverlap: true, tickCount, format } };
}

/** Dashed rules at each settings change, labelled with the version. */
function changeLayers(r: WeeklyReport): object[] {
  if (r.series.changes.length === 0) return [];
  const data = { values: r.series.changes.map((c) => ({ t: localMs(c.atMs, r.period.timezone), label: `v${c.version}`, what: c.label })) };
  return [
    { name: 'changes', data, mark: { type: 'rule', color: COLORS.change, strokeDash: [4, 3], strokeWidth: 1.2 }, encoding: { x: { field: 't', type: 'temporal' } } },
    {
      name: 'change_labels',
      data,
      mark: { type: 'text', color: COLORS.change, align: 'left', baseline: 'top', dx: 3, dy: 2, fontSize: 11 },
      encoding: { x: { field: 't', type: 'temporal' }, y: { value: 0 }, text: { field: 'label' } },
    },
  ];
}

function targetLayers(value: number, label: string, color: string, name: string): object[] {
  return [
    { name, data: { values: [{}] }, mark: { type: 'rule', color, strokeDash: [6, 3], strokeWidth: 1.5 }, encoding: { y: { datum: value } } },
    {
      name: `${name}_label`,
      data: { values: [{}] },
      mark: { type: 'text', color, align: 'right', baseline: 'bottom', dx: -4, dy: -3, fontSize: 11 },
      encoding: { y: { datum: value }, x: { value: 'width' }, text: { value: label } },
    },
  ];
}

/** One line per series of long-format rows, coloured by series, breaking at gaps. */
function linesLayer(r: WeeklyReport, name: string, rows: Row[], yTitle: string, series: string[], colors: string[], widths?: number[]): object {
  return {
    name,
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 1.6, invalid: 'break-paths-show-domains' },
    encoding: {
      x: timeX(r),
      y: { field: 'value', type: 'quantitative', title: yTitle },
      // Ordinal for both channels: one merged legend shows each series' colour and width.
      color: { field: 'series', type: 'ordinal', scale: { domain: series, range: colors } },
      ...(widths ? { strokeWidth: { field: 'series', type: 'ordinal', scale: { domain: series, range: widths } } } : {}),
    },
  };
}

const seconds = (s: number): string => (s >= 1 ? `${+s.toPrecision(3)} s` : `${+(s * 1000).toPrecision(3)} ms`);

async function latencyChart(r: WeeklyReport, id: 'ttft' | 'inter_token' | 'e2e'): Promise<ReportChart> {
  const m = {
    ttft: { key: 'ttft', title: 'Time to first token', target: r.slo.targets.ttftP99Seconds },
    inter_token: { key: 'interToken', title: 'Inter-token latency', target: r.slo.targets.interTokenP99Seconds },
    e2e: { key: 'e2e', title: 'End-to-end latency', target: r.slo.targets.e2eP99Seconds },
  }[id];
  const rows = longRows(
    r,
    (['p50', 'p90', 'p99'] as const).map((p) => [`${m.key}${p.toUpperCase()}S` as keyof SeriesPoint, p]),
  );
  const spec = {
    ...BASE,
    description: `${m.title}: p50, p90 and p99 per window, seconds, with the SLO target`,
    layer: [
      linesLayer(r, 'latency', rows, 'seconds', ['p50', 'p90', 'p99'], [COLORS.p50, COLORS.p90, COLORS.p99]),
      ...targetLayers(m.target, `SLO p99 ≤ ${seconds(m.target)}`, COLORS.slo, 'slo'),
      ...changeLayers(r),
    ],
  };
  return {
    id,
    title: `${m.title} (p50 / p90 / p99)`,
    svg: await toSvg(spec),
    caption: `Per ${r.series.aggregation ? 'bucket' : 'window'}; red dashed line: the p99 objective (${seconds(m.target)}); ` + 'grey dashed lines: settings changes.',
  };
}

async function throughputChart(r: WeeklyReport): Promise<ReportChart> {
  const rows = longRows(r, [
    ['throughputTokensPerS', 'throughput'],
    ['goodputTokensPerS', 'goodput (within SLO)'],
  ]);
  const spec = {
    ...BASE,
    description: 'Generated tokens per second and goodput per window',
    layer: [
      // Goodput is at most throughput and often equal: a thin line over a wide pale one keeps both visible.
      linesLayer(r, 'throughput', rows, 'tokens / s', ['throughput', 'goodput (within SLO)'], [COLORS.throughPale, COLORS.good], [5, 1.6]),
      ...changeLayers(r),
    ],
  };
  return {
    id: 'throughput',
    title: 'Throughput and goodput',
    svg: await toSvg(spec),
    caption: 'Generated tokens per second; goodput counts only requests that met every objective.',
  };
}

async function batchSizeChart(r: WeeklyReport): Promise<ReportChart> {
  const bins = r.series.batchSizeBins;
  const versions = [...new Set(bins.map((b) => `v${b.version}`))];
  // Bars on a numeric axis from bin start to end, stacked by version, so empty sizes show as gaps.
  const spec = {
    ...BASE,
    description: 'Engine steps by the mean batch size of their window, per settings version',
    data: { values: bins.map((b) => ({ from: b.fromSize, to: b.toSize, version: `v${b.version}`, steps: b.steps })) },
    mark: { type: 'bar', name: 'bars', binSpacing: 1 },
    encoding: {
      x: { field: 'from', type: 'quantitative', bin: { binned: true }, title: 'mean sequences per step (per window)', axis: { tickMinStep: 1 } },
      x2: { field: 'to' },
      y: { field: 'steps', type: 'quantitative', aggregate: 'sum', title: 'engine steps', stack: 'zero' },
      color: { field: 'version', type: 'nominal', scale: { domain: versions, scheme: 'tableau10' } },
    },
  };
  return {
    id: 'batch_size',
    title: 'Batch size distribution',
    svg: await toSvg(spec),
    caption: 'Engine steps, by the mean batch size of the window they ran in, coloured by the settings version live then.',
  };
}

async function kvChart(r: WeeklyReport): Promise<ReportChart> {
  const tz = r.period.timezone;
  const rows = longRows(r, [['kvUsageRatio', 'KV usage']]);
  const preempted = r.series.points
    .filter((p) => p.preemptions > 0 && p.kvUsageRatio !== null)
    .map((p) => ({ t: localMs(midOf(p), tz), value: p.kvUsageRatio, preemptions: p.preemptions }));
  const spec = {
    ...BASE,
    description: 'KV-cache usage per window with preemptions marked',
    layer: [
      {
        name: 'kv',
        data: { values: rows },
        mark: { type: 'line', strokeWidth: 1.6, color: COLORS.through, invalid: 'break-paths-show-domains' },
        encoding: { x: timeX(r), y: { field: 'value', type: 'quantitative', title: 'KV blocks in use', scale: { domain: [0, 1] }, axis: { format: '.0%' } } },
      },
      ...(preempted.length
        ? [
            {
              name: 'preemptions',
              data: { values: preempted },
              mark: { type: 'point', filled: true, color: COLORS.slo, size: 40 },
              encoding: { x: { field: 't', type: 'temporal' }, y: { field: 'value', type: 'quantitative' } },
            },
          ]
        : []),
      ...targetLayers(KV_HIGH_USAGE, `high ${Math.round(KV_HIGH_USAGE * 100)}%`, COLORS.change, 'kv_high'),
      ...changeLayers(r),
    ],
  };
  return {
    id: 'kv_usage',
    title: 'KV-cache usage',
    svg: await toSvg(spec),
    caption: `Share of KV blocks in use at the end of each ${r.series.aggregation ? 'bucket (its highest window)' : 'window'}; red dots: windows with preemptions.`,
  };
}

/** The report's charts as SVG; none when the week has no rollup windows. */
export async function renderReportCharts(r: WeeklyReport): Promise<ReportChart[]> {
  if (r.series.points.length === 0) return [];
  const charts = [await latencyChart(r, 'ttft'), await latencyChart(r, 'inter_token'), await latencyChart(r, 'e2e'), await throughputChart(r)];
  if (r.series.batchSizeBins.length > 0) charts.push(await batchSizeChart(r));
  charts.push(await kvChart(r));
  return charts;
}
