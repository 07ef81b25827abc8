// The dashboard set and its canonical JSON form; generate.ts writes it, the stale test compares it.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { buildServiceDashboard } from './service.js';
import { buildEngineDashboard } from './engine.js';
import { buildKvCacheDashboard } from './kvcache.js';
import { buildTunerDashboard } from './tuner.js';
import { buildCapacityDashboard } from './capacity.js';

export interface GeneratedDashboard {
  /** File name inside grafana/dashboards/. */
  file: string;
  dashboard: dashboard.Dashboard;
}

export function buildDashboards(): GeneratedDashboard[] {
  return [
    { file: 'service.json', dashboard: buildServiceDashboard() },
    { file: 'engine.json', dashboard: buildEngineDashboard() },
    { file: 'kv-cache.json', dashboard: buildKvCacheDashboard() },
    { file: 'tuner.json', dashboard: buildTunerDashboard() },
    { file: 'capacity.json', dashboard: buildCapacityDashboard() },
  ];
}

// Sorted keys make the committed JSON independent of builder call order, so diffs stay small.
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

export function renderDashboardJson(d: dashboard.Dashboard): string {
  return `${JSON.stringify(sortKeys(d), null, 2)}\n`;
}
