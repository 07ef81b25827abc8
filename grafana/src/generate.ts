// Writes grafana/dashboards/*.json from the builders: `npm run dashboards`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDashboards, renderDashboardJson } from './index.js';

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'dashboards');
mkdirSync(outDir, { recursive: true });
for (const { file, dashboard } of buildDashboards()) {
  writeFileSync(join(outDir, file), renderDashboardJson(dashboard));
  console.log(`wrote grafana/dashboards/${file} (${dashboard.panels?.length ?? 0} panels)`);
}
