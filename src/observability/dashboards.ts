// Read-side view of the generated Grafana dashboards. It parses the committed JSON in
// grafana/dashboards/ instead of importing the foundation SDK, because the SDK is a devDependency
// and this module ships: `tuneloop dashboards` and the live e2e check both use it at runtime.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../defaults.js';

/** The subset of Grafana's dashboard JSON this module reads. */
interface PanelJson {
  id?: number;
  type: string;
  title?: string;
  description?: string;
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: { expr?: string; legendFormat?: string; refId?: string }[];
}

interface DashboardJson {
  uid?: string;
  title?: string;
  panels?: PanelJson[];
  templating?: { list?: { name: string; query?: unknown }[] };
  annotations?: { list?: { name: string; expr?: string }[] };
}

export interface DashboardFile {
  file: string;
  dashboard: DashboardJson;
}

export interface DashboardQuery {
  dashboard: string;
  panel: string;
  expr: string;
  unit: string;
  /** Title of the row the panel sits under (e.g. 'Mixture of Experts'); absent before any row. */
  row?: string;
}

/** The engine dashboard's row whose panels read families only a Mixture-of-Experts model reports. */
export const MOE_ROW = 'Mixture of Experts';

export function dashboardsDir(): string {
  return join(packageRoot(), 'grafana', 'dashboards');
}

/** The committed dashboards, in file-name order so output is stable. */
export function loadDashboards(dir = dashboardsDir()): DashboardFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(dir, file), 'utf8')) as DashboardJson }));
}

/** Every panel query with its dashboard, panel title and unit; Grafana variables left in place. */
export function listDashboardQueries(dir?: string): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const { file, dashboard } of loadDashboards(dir)) {
    let row: string | undefined;
    for (const panel of dashboard.panels ?? []) {
      if (panel.type === 'row') row = panel.title;
      for (const t of panel.targets ?? []) {
        if (t.expr === undefined) continue;
        out.push({
          dashboard: dashboard.title ?? file,
          panel: panel.title ?? `panel ${panel.id ?? '?'}`,
          expr: t.expr,
          unit: panel.fieldConfig?.defaults?.unit ?? '',
          ...(row !== undefined ? { row } : {}),
        });
      }
    }
  }
  return out;
}

/** A readable summary: per dashboard its variables, annotations, and each panel with unit and queries. */
export function renderDashboardSummary(dir?: string): string {
  const lines: string[] = [];
  for (const { file, dashboard } of loadDashboards(dir)) {
    const panels = dashboard.panels ?? [];
    lines.push(`${dashboard.title ?? file}  (${file}, uid ${dashboard.uid ?? '-'}, ${panels.length} panels)`);
    const vars = (dashboard.templating?.list ?? []).map((v) => `$${v.name}`).join(', ');
    if (vars) lines.push(`  variables: ${vars}`);
    for (const a of dashboard.annotations?.list ?? []) lines.push(`  annotation: ${a.name}: ${a.expr ?? ''}`);
    for (const p of panels) {
      // A row only groups the panels after it (the MoE row of the engine dashboard): a heading, no queries.
      if (p.type === 'row') {
        lines.push(`  == ${p.title ?? `row ${p.id ?? '?'}`} ==`);
        continue;
      }
      lines.push(`  - ${p.title ?? `panel ${p.id ?? '?'}`} [${p.type}, unit ${p.fieldConfig?.defaults?.unit ?? 'none'}]`);
      for (const t of p.targets ?? []) {
        if (t.expr !== undefined) lines.push(`      ${t.refId ?? '?'}: ${t.expr}`);
      }
    }
    lines.push('');
  }
  return lines.join('\n');
}

export const DASHBOARDS_USAGE = `usage:
  tuneloop dashboards           summary of the Grafana dashboards: panels, units and queries
  tuneloop dashboards --list    one line per panel query: dashboard<TAB>panel<TAB>unit<TAB>expr
  tuneloop dashboards --json    the panel queries as JSON
  tuneloop dashboards --dir D   read dashboards from D instead of the packaged grafana/dashboards
`;

export async function dashboardsCommand(argv: string[]): Promise<number> {
  let values: { list?: boolean; json?: boolean; dir?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        list: { type: 'boolean' },
        json: { type: 'boolean' },
        dir: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`tuneloop dashboards: ${(e as Error).message}\n${DASHBOARDS_USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(DASHBOARDS_USAGE);
    return 0;
  }
  try {
    if (values.json) {
      process.stdout.write(`${JSON.stringify(listDashboardQueries(values.dir), null, 2)}\n`);
    } else if (values.list) {
      for (const q of listDashboardQueries(values.dir)) {
        process.stdout.write(`${q.dashboard}\t${q.panel}\t${q.unit}\t${q.expr}\n`);
      }
    } else {
      process.stdout.write(renderDashboardSummary(values.dir));
    }
  } catch (e) {
    process.stderr.write(`tuneloop dashboards: ${(e as Error).message}\n`);
    return 1;
  }
  return 0;
}
