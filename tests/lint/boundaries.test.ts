// The import boundaries of eslint.config.js (FLOORS): planted violations of each rule must be reported and legal
// imports must not, so a config change cannot switch the boundaries off without a red test. Runs ESLint's Node API
// with the project's own config, type-aware linting switched off (the boundary rules need no types).
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/defaults.js';

const BOUNDARY_RULES = new Set(['@typescript-eslint/no-restricted-imports', 'no-restricted-syntax']);

let eslint: ESLint;
beforeAll(() => {
  eslint = new ESLint({
    cwd: packageRoot(),
    overrideConfig: [{ files: ['**/*.ts'], ...tseslint.configs.disableTypeChecked }],
  });
});

/** The boundary messages ESLint reports for `code` as if it were the file `filePath` (relative to the repo root). */
async function boundaryMessages(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  expect(result, filePath).toBeDefined();
  const fatal = result!.messages.filter((m) => m.fatal);
  expect(fatal, `${filePath} must parse`).toEqual([]);
  return result!.messages.filter((m) => m.ruleId !== null && BOUNDARY_RULES.has(m.ruleId)).map((m) => m.message);
}

// [file it is planted in, code, the words of the rule that must name it]
const violations: [string, string, string][] = [
  ['src/engine/planted.ts', "import { defaultModelPath } from '../defaults.js';", 'src/engine/ imports nothing else of src/'],
  ['src/engine/planted.ts', "export * from '../config/schema.js';", 'src/engine/ imports nothing else of src/'],
  ['src/config/planted.ts', "import { createMetrics } from '../metrics/registry.js';", 'src/config/ imports only src/engine/'],
  ['src/config/planted.ts', "import type { AlertInbox } from '../alerts/inbox.js';", 'src/config/ imports only src/engine/'],
  ['src/metrics/planted.ts', "export type { TunerStatus } from '../tuner/types.js';", 'src/metrics/ imports only src/engine/, src/config/'],
  ['src/metrics/planted.ts', "import { startServer } from '../controlplane/http-server.js';", 'src/metrics/ imports only'],
  ['src/alerts/planted.ts', "import type { EngineOptions } from '../engine/types.js';", 'src/alerts/ imports nothing else of src/ but the shared leaves'],
  ['src/alerts/planted.ts', "import { loadConfig } from '../config/load.js';", 'src/alerts/ imports nothing else'],
  ['src/structured/planted.ts', "import { ControlPlaneError } from '../controlplane/errors.js';", 'src/structured/ (JSON Schema → grammar) imports nothing else of src/'],
  ['src/tuner/planted.ts', "import { createApp } from '../controlplane/app.js';", 'src/tuner/ never imports src/controlplane/'],
  ['src/tuner/report/planted.ts', "import { errorBody } from '../../controlplane/errors.js';", 'src/tuner/ never imports src/controlplane/'],
  ['src/tuner/planted.ts', "import { serveCommand } from '../serve.js';", 'src/tuner/ never imports'],
  ['src/tuner/report/planted.ts', "import { main } from '../../cli.js';", 'src/tuner/ never imports'],
  ['src/tuner/planted.ts', "export const app = await import('../controlplane/app.js');", 'src/tuner/ never imports src/controlplane/'],
  ['src/tuner/planted.ts', "export type App = import('../controlplane/app.js').ServerOptions;", 'src/tuner/ never imports src/controlplane/'],
  ['src/controlplane/planted.ts', "import { loadCommand } from '../loadgen/index.js';", 'src/controlplane/ never imports src/loadgen/'],
  ['src/controlplane/openai/planted.ts', "import { serveCommand } from '../../serve.js';", 'src/controlplane/ never imports'],
  ['src/controlplane/planted.ts', "import { main } from '../cli.js';", 'src/controlplane/ never imports'],
  ['src/loadgen/planted.ts', "import { createMetrics } from '../metrics/registry.js';", 'src/loadgen/ imports only src/engine/'],
  ['src/loadgen/planted.ts', "import type { TunerStatus } from '../tuner/types.js';", 'src/loadgen/ imports only src/engine/'],
  ['src/observability/planted.ts', "import { serveCommand } from '../serve.js';", 'nothing in src/ imports src/cli.ts'],
  ['src/some-new-floor/planted.ts', "import { main } from '../cli.js';", 'nothing in src/ imports src/cli.ts'],
  ['src/engine/planted.ts', "import * as face from '../index.js';", 'src/engine/ imports nothing else'],
  ['src/defaults.ts', "import { FaultPoint } from './faults.js';", 'src/defaults.ts is a shared leaf'],
  ['src/faults.ts', "import { packageRoot } from './defaults.js';", 'src/faults.ts is a shared leaf'],
  ['src/serve.ts', "import { main } from './cli.js';", 'src/serve.ts never imports src/cli.ts'],
  ['src/index.ts', "import { serveCommand } from './serve.js';", 'never imports the composition roots'],
  ['src/tuner/planted.ts', "import { Engine } from 'tuneloop';", 'never through the package name'],
];

const legal: [string, string][] = [
  ['src/engine/planted.ts', "import { EngineError } from './errors.js';"],
  ['src/config/planted.ts', "import { KNOBS } from '../engine/knobs.js';\nimport { defaultModelPath } from '../defaults.js';"],
  ['src/metrics/planted.ts', "import type { TuneloopConfig } from '../config/schema.js';\nimport type { EngineStats } from '../engine/types.js';"],
  ['src/alerts/planted.ts', "import { FaultPoint } from '../faults.js';\nimport { x } from './inbox.js';"],
  ['src/tuner/planted.ts', "import { createMetrics } from '../metrics/registry.js';\nimport { AlertInbox } from '../alerts/inbox.js';"],
  ['src/tuner/report/planted.ts', "import { loadConfig } from '../../config/load.js';\nimport type { TunerStore } from '../store.js';"],
  ['src/controlplane/planted.ts', "import { TunerFacade } from '../tuner/facade.js';\nimport { AlertInbox } from '../alerts/inbox.js';"],
  ['src/controlplane/openai/planted.ts', "import { Engine } from '../../engine/engine.js';\nimport { x } from '../errors.js';"],
  ['src/loadgen/planted.ts', "import { Engine } from '../engine/index.js';\nexport const m = await import('../engine/engine.js');"],
  ['src/engine/planted.ts', "import pkg from '../../package.json' with { type: 'json' };"],
  ['src/serve.ts', "import { startServer } from './controlplane/http-server.js';\nimport { startTuner } from './tuner/bootstrap.js';"],
  ['src/cli.ts', "import { serveCommand } from './serve.js';\nimport { loadCommand } from './loadgen/index.js';"],
  ['src/index.ts', "export { Engine } from './engine/index.js';\nexport { startServer } from './controlplane/http-server.js';"],
  ['tests/planted.test.ts', "import { main } from '../src/cli.js';\nimport { createApp } from '../src/controlplane/app.js';"],
];

describe('import boundaries (eslint.config.js)', () => {
  it.each(violations)('%s: %s is reported', async (filePath, code, rule) => {
    const messages = await boundaryMessages(filePath, code);
    expect(messages.length, `${filePath}: ${code}`).toBeGreaterThan(0);
    for (const m of messages) expect(m).toContain('Import boundary');
    expect(messages.join('\n')).toContain(rule);
  });

  it.each(legal)('%s: %s is allowed', async (filePath, code) => {
    expect(await boundaryMessages(filePath, code)).toEqual([]);
  });
});
