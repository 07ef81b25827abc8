// Shared pieces for every tuneloop dashboard: one datasource, the same variables and the
// config-change annotation everywhere, so that the five dashboards read as one product.
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as heatmap from '@grafana/grafana-foundation-sdk/heatmap';
import * as common from '@grafana/grafana-foundation-sdk/common';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';

// Matches grafana/provisioning/datasources/prometheus.yaml; a fixed uid keeps panels bound to
// the provisioned datasource without any clicks.
export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: 'tuneloop-prometheus' };

// Series published by the engine carry a model label; the Prometheus scrape adds instance.
export const SEL = 'instance=~"$instance", model=~"$model"';
// Control-plane-wide series (tuner, SLO targets, build info) have no model label.
export const SEL_INSTANCE = 'instance=~"$instance"';

/** A Prometheus range query; refIds are assigned by the panel helpers. */
export function q(expr: string, legend?: string): prometheus.DataqueryBuilder {
  const b = new prometheus.DataqueryBuilder().datasource(DATASOURCE).expr(expr).range();
  if (legend !== undefined) b.legendFormat(legend);
  return b;
}

/** p-quantile of a histogram, summed across instances and models on the selector. */
export function quantile(p: number, metric: string, sel = SEL, by = ''): string {
  const groups = by ? `le, ${by}` : 'le';
  return `histogram_quantile(${p}, sum by (${groups}) (rate(${metric}_bucket{${sel}}[$__rate_interval])))`;
}

// Panels are numbered per dashboard so the committed JSON is stable between runs.
export class PanelIds {
  private next = 1;
  take(): number {
    return this.next++;
  }
}

function withTargets<T extends { withTarget(t: cog.Builder<cog.Dataquery>): T }>(panel: T, targets: prometheus.DataqueryBuilder[]): T {
  targets.forEach((t, i) => panel.withTarget(t.refId(String.fromCharCode(65 + i))));
  return panel;
}

export interface PanelOpts {
  title: string;
  description: string;
  unit: string;
  targets: prometheus.DataqueryBuilder[];
  width?: number;
  height?: number;
  stacked?: boolean;
  min?: number;
  max?: number;
}

export function timeseriesPanel(ids: PanelIds, o: PanelOpts): timeseries.PanelBuilder {
  const p = new timeseries.PanelBuilder()
    .id(ids.take())
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.width ?? 12)
    .height(o.height ?? 8)
    .lineWidth(1)
    .fillOpacity(o.stacked ? 30 : 10)
    .showPoints(common.VisibilityMode.Never);
  if (o.stacked) p.stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal));
  if (o.min !== undefined) p.min(o.min);
  if (o.max !== undefined) p.max(o.max);
  return withTargets(p, o.targets);
}

export function statPanel(ids: PanelIds, o: PanelOpts): stat.PanelBuilder {
  const p = new stat.PanelBuilder()
    .id(ids.take())
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.width ?? 6)
    .height(o.height ?? 5)
    .graphMode(common.BigValueGraphMode.Area)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']));
  if (o.min !== undefined) p.min(o.min);
  if (o.max !== undefined) p.max(o.max);
  return withTargets(p, o.targets);
}

/** A heatmap over pre-bucketed histogram series: Grafana must not re-bucket them. */
export function heatmapPanel(ids: PanelIds, o: PanelOpts): heatmap.PanelBuilder {
  const p = new heatmap.PanelBuilder()
    .id(ids.take())
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.width ?? 12)
    .height(o.height ?? 8)
    .calculate(false)
    .yAxis(new heatmap.YAxisConfigBuilder().unit(o.unit))
    .color(
      new heatmap.HeatmapColorOptionsBuilder()
        .mode(heatmap.HeatmapColorMode.Scheme)
        .scheme('Oranges')
        .scale(heatmap.HeatmapColorScale.Exponential)
        .exponent(0.5)
        .steps(64)
        .reverse(false),
    );
  for (const t of o.targets) t.format(prometheus.PromQueryFormat.Heatmap);
  return withTargets(p, o.targets);
}

/** A heatmap whose rows are plain series (one per label set, e.g. per expert), not histogram buckets: the
 *  query stays a time series and Grafana must not re-bucket it. */
export function seriesHeatmapPanel(ids: PanelIds, o: PanelOpts): heatmap.PanelBuilder {
  const p = new heatmap.PanelBuilder()
    .id(ids.take())
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .unit(o.unit)
    .span(o.width ?? 12)
    .height(o.height ?? 8)
    .calculate(false)
    .color(
      new heatmap.HeatmapColorOptionsBuilder()
        .mode(heatmap.HeatmapColorMode.Scheme)
        .scheme('Oranges')
        .scale(heatmap.HeatmapColorScale.Exponential)
        .exponent(0.5)
        .steps(64)
        .reverse(false),
    );
  return withTargets(p, o.targets);
}

function queryVariable(name: string, label: string, query: string): dashboard.QueryVariableBuilder {
  return (
    new dashboard.QueryVariableBuilder(name)
      .label(label)
      .datasource(DATASOURCE)
      .query(query)
      .definition(query)
      .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
      .sort(dashboard.VariableSort.AlphabeticalAsc)
      .multi(true)
      .includeAll(true)
      // '.*' rather than Grafana's default enumeration keeps queries short with many instances.
      .allValue('.*')
      .current({ selected: true, text: ['All'], value: ['$__all'] })
  );
}

/** Config changes as annotations: each knob change by the tuner or an operator is a marker. */
function configChangeAnnotation(): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name('Config changes')
    .datasource(DATASOURCE)
    .enable(true)
    .iconColor('orange')
    .expr(`sum by (knob, source) (changes(tuneloop_config_changes_total{${SEL}}[2m])) > 0`)
    .step('1m')
    .titleFormat('config change: {{knob}}')
    .textFormat('{{knob}} changed by {{source}}')
    .tagKeys('knob,source');
}

/** Engine settings flips (reload / reconfigure) seen through the config_info label set. */
function settingsAnnotation(): dashboard.AnnotationQueryBuilder {
  return new dashboard.AnnotationQueryBuilder()
    .name('Engine settings changed')
    .datasource(DATASOURCE)
    .enable(true)
    .iconColor('purple')
    .expr(
      `sum by (instance, model) (changes(tuneloop_config_max_batch_size{${SEL}}[2m]) + changes(tuneloop_config_kv_cache_blocks{${SEL}}[2m]) + changes(tuneloop_config_threads{${SEL}}[2m])) > 0`,
    )
    .step('1m')
    .titleFormat('engine settings changed')
    .textFormat('{{instance}} {{model}}')
    .tagKeys('instance,model');
}

export interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  tags: string[];
}

/** A dashboard with the shared variables, annotations, time range and refresh. */
export function newDashboard(spec: DashboardSpec): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(spec.title)
    .uid(spec.uid)
    .description(spec.description)
    .tags(['tuneloop', ...spec.tags])
    .editable()
    .timezone('browser')
    .time({ from: 'now-1h', to: 'now' })
    .refresh('30s')
    .withVariable(queryVariable('instance', 'Instance', 'label_values(tuneloop_build_info, instance)'))
    .withVariable(queryVariable('model', 'Model', 'label_values(tuneloop_model_info, model)'))
    .annotation(configChangeAnnotation())
    .annotation(settingsAnnotation());
}
