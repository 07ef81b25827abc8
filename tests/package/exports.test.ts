// The package as a consumer sees it. Two halves, because a real `npm install` of the packed tarball would rebuild the
// addon and fetch every dependency (minutes):
// - what `npm pack` would ship (`files`): every `exports`/`main`/`types`/`bin` target, the addon's sources and
//   binding.gyp (the install script builds it), the embedded model and the data files read at run time; and every
//   bare import of the compiled code is a declared runtime dependency, not a devDependency;
// - importing it BY NAME from a clean directory whose node_modules/tuneloop is a symlink to this checkout (so
//   `exports` is what resolves, and the dependencies come from the checkout's node_modules), in a child `node`, then
//   generating a few tokens with the embedded default model; and `tsc` resolving the same names to their types.
// Needs the built dist/ (`npm ci` / `npm run build`); it does not build it, so that it never races other test files.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/defaults.js';

const run = promisify(execFile);
const root = packageRoot();

interface PackageJson {
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;

/** A child process's environment without the test runner's loaders. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

const norm = (p: string): string => p.replace(/^\.\//, '');

/** The paths `npm pack` would put in the tarball (asked once, shared by the tests that need it). */
let packed: Promise<Set<string>> | undefined;
function packedFiles(): Promise<Set<string>> {
  packed ??= run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, env: childEnv(), maxBuffer: 16 << 20 }).then(({ stdout }) => {
    const [report] = JSON.parse(stdout) as { files: { path: string }[] }[];
    return new Set(report!.files.map((f) => f.path));
  });
  return packed;
}

// Concurrent: the pack listing, the child node and tsc overlap (about half the wall time of running them in turn).
describe.concurrent('package tuneloop', () => {
  it('holds every entry point: exports, main, types, bin', async () => {
    const files = await packedFiles();
    const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin)];
    for (const t of Object.values(pkg.exports)) targets.push(...(typeof t === 'string' ? [t] : Object.values(t)));
    expect(targets.length).toBeGreaterThan(6);
    for (const t of targets.map(norm)) {
      expect(files.has(t), `${t} is packed`).toBe(true);
      expect(existsSync(join(root, t)), `${t} exists (built?)`).toBe(true);
    }
  });

  it('holds the addon sources and binding.gyp, so the install script can build it', async () => {
    const files = await packedFiles();
    expect(files.has('binding.gyp')).toBe(true);
    const sources = [...readFileSync(join(root, 'binding.gyp'), 'utf8').matchAll(/"(native\/[^"]+\.(?:cpp|cc|c))"/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThan(5);
    for (const s of sources) expect(files.has(s), `${s} is packed`).toBe(true);
    const headers = walk(join(root, 'native', 'src'))
      .filter((f) => f.endsWith('.h'))
      .map((f) => relative(root, f));
    for (const h of headers) expect(files.has(h), `${h} is packed`).toBe(true);
  });

  it('holds the embedded model and the files read at run time', async () => {
    const files = await packedFiles();
    for (const f of ['models/tuneloop-shakespeare.gguf', 'models/validation-slice.txt', 'alerts/alerting.rules.yml', 'alerts/recording.rules.yml', 'README.md']) {
      expect(files.has(f), `${f} is packed`).toBe(true);
    }
    expect([...files].filter((f) => /^grafana\/dashboards\/.+\.json$/.test(f)).length).toBeGreaterThan(0);
  });

  it('leaves out tests, TypeScript sources, build outputs and dependencies', async () => {
    const files = await packedFiles();
    const stray = [...files].filter((f) => /^(tests|src|bench|tools|build|node_modules|reports|native\/(tests|fuzz))\//.test(f));
    expect(stray).toEqual([]);
  });

  it('every bare import of the compiled code is a runtime dependency', async () => {
    const files = await packedFiles();
    const deps = new Set(Object.keys(pkg.dependencies));
    const missing = new Set<string>();
    const seen = new Set<string>();
    for (const file of [...files].filter((f) => f.startsWith('dist/') && f.endsWith('.js'))) {
      // TypeScript's pre-processor lists a file's imports and re-exports (static and dynamic), skipping comments and strings.
      const { importedFiles } = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
      for (const { fileName: spec } of importedFiles) {
        if (spec.startsWith('.') || isBuiltin(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        seen.add(name);
        if (!deps.has(name)) missing.add(`${name} (${file})`);
      }
    }
    expect([...missing]).toEqual([]);
    expect([...seen]).toEqual(expect.arrayContaining(['express', 'prom-client', 'yaml']));
  });

  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tuneloop-consumer-'));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'tuneloop'), 'dir');
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('node: imports the face and the subpaths, refuses deep imports, generates with the default model', async () => {
    writeFileSync(
      join(dir, 'consumer.mjs'),
      `
import { Engine, EngineError, Generation, loadConfig, ConfigError, engineOptionsFromConfig, startServer, createApp, defaultModelPath, HOT_KNOBS } from 'tuneloop';
const engineModule = await import('tuneloop/engine');
const configModule = await import('tuneloop/config');
const { default: manifest } = await import('tuneloop/package.json', { with: { type: 'json' } });
let deep = 'resolved';
try { await import('tuneloop/dist/src/engine/index.js'); } catch (e) { deep = e.code; }
const opts = engineOptionsFromConfig(loadConfig());
const engine = await Engine.load({ model: opts.model, threads: 1 });
const gen = engine.generate({ prompt: 'ROMEO:', maxTokens: 8, temperature: 0, seed: 1 });
let text = '';
for await (const chunk of gen) text += chunk.text;
const result = await gen.result;
await engine.close();
console.log(JSON.stringify({
  types: [Engine, EngineError, Generation, loadConfig, ConfigError, engineOptionsFromConfig, startServer, createApp].map((f) => typeof f),
  sameEngine: engineModule.Engine === Engine, sameLoader: configModule.loadConfig === loadConfig,
  hotKnobs: HOT_KNOBS.length, name: manifest.name, deep,
  defaultModel: opts.model === defaultModelPath() && defaultModelPath().endsWith('models/tuneloop-shakespeare.gguf'),
  text, completionTokens: result.usage.completionTokens, finishReason: result.finishReason,
}));
`,
    );
    const { stdout } = await run(process.execPath, ['consumer.mjs'], { cwd: dir, env: childEnv(), timeout: 60_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out).toMatchObject({
      types: Array(8).fill('function'),
      sameEngine: true,
      sameLoader: true,
      name: 'tuneloop',
      deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      defaultModel: true,
      completionTokens: 8,
      finishReason: 'length',
    });
    expect(out.hotKnobs).toBeGreaterThan(0);
    expect(typeof out.text === 'string' && out.text.length > 0).toBe(true);
  }, 90_000);

  it('tsc: the same names resolve to their declarations through exports', async () => {
    writeFileSync(
      join(dir, 'consumer.ts'),
      `
import { Engine, EngineError, loadConfig, startServer, createApp, type EngineOptions, type TuneloopConfig, type GenerationResult } from 'tuneloop';
import { Engine as EngineAgain, type GenerateRequest } from 'tuneloop/engine';
import { ConfigError, engineOptionsFromConfig } from 'tuneloop/config';
const cfg: TuneloopConfig = loadConfig();
const opts: EngineOptions = engineOptionsFromConfig(cfg);
const req: GenerateRequest = { prompt: 'x', maxTokens: 1 };
export async function f(): Promise<GenerationResult> {
  const engine: EngineAgain = await Engine.load(opts);
  return engine.generate(req).result;
}
export const checks: [typeof EngineError, typeof ConfigError, typeof startServer, typeof createApp] = [EngineError, ConfigError, startServer, createApp];
`,
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        files: ['consumer.ts'],
      }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir, env: childEnv(), timeout: 60_000 }).catch(
      (e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout ?? ''}${e.stderr ?? ''}`, failed: true }),
    );
    expect(r.stdout).toBe('');
    expect('failed' in r).toBe(false);
  }, 90_000);
});
