// llama.cpp's own quantizer as a tool: builds tools/llama-quantize/quantize.cpp at first use and runs it.
//
// The program is compiled with g++ against the headers of the llama.cpp release that node-llama-cpp (a
// devDependency) ships as a git bundle, and linked to node-llama-cpp's prebuilt libllama / libggml-base (rpath), so
// the struct layouts and llama_ftype values are the library's own. The headers are checked out of the bundle into
// bench/.cache/ (git-ignored); nothing is downloaded and no llama.cpp code is committed here.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOURCE = join(REPO_ROOT, 'tools', 'llama-quantize', 'quantize.cpp');
/** Where the checked-out headers and the built program live (git-ignored). */
export const LLAMA_QUANTIZE_CACHE = join(REPO_ROOT, 'bench', '.cache', 'llama-quantize');

/** The presets the reference files are made in (llama.cpp's names; the values come from llama.h via `--list`). */
export const LLAMA_CPP_PRESETS = ['Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q8_0', 'Q4_0', 'Q3_K_M', 'Q2_K', 'IQ4_NL', 'Q4_K_S', 'Q5_K_S', 'IQ4_XS'] as const;
export type LlamaCppPreset = (typeof LLAMA_CPP_PRESETS)[number];

export interface LlamaCppPaths {
  /** node-llama-cpp's package folder (holds llama/gitRelease.bundle). */
  packageDir: string;
  /** Folder of the prebuilt libllama.*.so and libggml*.so for this platform. */
  binsDir: string;
  /** The libllama file name (versioned: libllama.v0.4.0.so). */
  libllama: string;
}

/** Locates node-llama-cpp and its prebuilt CPU binaries for this platform (linux-x64 only). */
export function llamaCppPaths(): LlamaCppPaths {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`llama-quantize: only linux-x64 is supported, not ${process.platform}-${process.arch}`);
  const packageDir = packageRoot(fileURLToPath(import.meta.resolve('node-llama-cpp')), 'node-llama-cpp');
  // The prebuilt-binary package is a dependency of node-llama-cpp: nested under it, or hoisted beside it.
  const candidates = [join(packageDir, 'node_modules', '@node-llama-cpp', 'linux-x64'), join(dirname(packageDir), '@node-llama-cpp', 'linux-x64')];
  const binPkg = candidates.find((d) => existsSync(join(d, 'package.json')));
  if (binPkg === undefined) throw new Error(`llama-quantize: @node-llama-cpp/linux-x64 is not installed (looked in ${candidates.join(', ')})`);
  const binsDir = join(binPkg, 'bins', 'linux-x64');
  const libllama = ['libllama.so', ...listLibllama(binsDir)].find((f) => existsSync(join(binsDir, f)));
  if (libllama === undefined) throw new Error(`llama-quantize: no libllama*.so in ${binsDir}`);
  return { packageDir, binsDir, libllama };
}

/** The folder of the package.json named `name` at or above `file`. */
function packageRoot(file: string, name: string): string {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === name) return dir;
  }
  throw new Error(`llama-quantize: cannot find the ${name} package above ${file}`);
}

function listLibllama(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => /^libllama\.v[\d.]+\.so$/.test(f)) : [];
}

/** Checks the llama.h / ggml headers of the bundled release out into the cache (once per release commit). */
function ensureHeaders(paths: LlamaCppPaths): { includeDirs: string[]; commit: string } {
  const bundle = join(paths.packageDir, 'llama', 'gitRelease.bundle');
  if (!existsSync(bundle)) throw new Error(`llama-quantize: ${bundle} is missing (node-llama-cpp without its llama.cpp bundle?)`);
  const head = execFileSync('git', ['bundle', 'list-heads', bundle], { encoding: 'utf8' }).trim().split(/\s+/)[0];
  if (head === undefined || !/^[0-9a-f]{40}$/.test(head)) throw new Error(`llama-quantize: cannot read the head of ${bundle}`);
  const dir = join(LLAMA_QUANTIZE_CACHE, `llama.cpp-${head.slice(0, 12)}`);
  const includeDirs = [join(dir, 'include'), join(dir, 'ggml', 'include')];
  if (!existsSync(join(includeDirs[0]!, 'llama.h')) || !existsSync(join(includeDirs[1]!, 'gguf.h'))) {
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(dirname(tmp), { recursive: true });
    execFileSync('git', ['clone', '-q', '--no-checkout', bundle, tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('git', ['-C', tmp, '-c', 'advice.detachedHead=false', 'checkout', '-q', head, '--', 'include', 'ggml/include', 'LICENSE'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process got there first: use its copy.
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(join(includeDirs[0]!, 'llama.h'))) throw e;
    }
  }
  return { includeDirs, commit: head };
}

let cachedBinary: string | undefined;

/** Path of the built llama-quantize program, building it first when the source, the headers or the library changed. */
export function llamaQuantizeBinary(): string {
  if (cachedBinary !== undefined && existsSync(cachedBinary)) return cachedBinary;
  const paths = llamaCppPaths();
  const { includeDirs, commit } = ensureHeaders(paths);
  const key = createHash('sha256').update(readFileSync(SOURCE)).update(commit).update(paths.binsDir).update(paths.libllama).digest('hex').slice(0, 16);
  const out = join(LLAMA_QUANTIZE_CACHE, `llama-quantize-${key}`);
  if (!existsSync(out)) {
    const tmp = `${out}.tmp-${process.pid}`;
    const args = [
      '-std=c++17',
      '-O2',
      '-Wall',
      '-Wextra',
      '-Werror',
      ...includeDirs.map((d) => `-I${d}`),
      SOURCE,
      '-o',
      tmp,
      `-L${paths.binsDir}`,
      `-l:${paths.libllama}`,
      '-l:libggml-base.so',
      `-Wl,-rpath,${paths.binsDir}`,
    ];
    try {
      execFileSync(process.env['CXX'] ?? 'g++', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`llama-quantize: build failed: ${err.stderr?.toString() ?? err.message}`, { cause: e });
    }
    renameSync(tmp, out);
  }
  cachedBinary = out;
  return out;
}

/** The presets the built program knows, with their llama_ftype values as compiled from llama.h. */
export function llamaFtypes(): Map<string, number> {
  const text = execFileSync(llamaQuantizeBinary(), ['--list'], { encoding: 'utf8' });
  const m = new Map<string, number>();
  for (const line of text.trim().split('\n')) {
    const [name, value] = line.split(' ');
    if (name !== undefined && value !== undefined) m.set(name, Number(value));
  }
  return m;
}

export interface QuantizeOptions {
  /** Quantizer threads (default: llama.cpp's, all cores). */
  threads?: number;
  /** Every tensor in the preset's base type (llama.cpp's --pure): no per-tensor mix. */
  pure?: boolean;
  /** Accept quantized input tensors (dequantized to f32 first). */
  allowRequantize?: boolean;
}

/** Quantizes `input` (an F32/F16/BF16 GGUF) into `output` with llama.cpp's preset. Throws with llama.cpp's log on failure. */
export function llamaQuantize(input: string, output: string, preset: string, options: QuantizeOptions = {}): void {
  const args = ['--quiet'];
  if (options.threads !== undefined) args.push('--threads', String(options.threads));
  if (options.pure) args.push('--pure');
  if (options.allowRequantize) args.push('--allow-requantize');
  args.push(input, output, preset);
  mkdirSync(dirname(resolve(output)), { recursive: true });
  try {
    execFileSync(llamaQuantizeBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`llama-quantize ${preset} failed: ${err.stderr?.toString().trim() ?? err.message}`, { cause: e });
  }
}

/** Writes `input`'s weights dequantized exactly to F32 (llama.cpp's own dequantizers): the same model as the quantized
 *  file with none of its arithmetic (activation rounding, integer dot products), for checking an engine's decoding. */
export function llamaDequantize(input: string, output: string, options: { threads?: number } = {}): void {
  llamaQuantize(input, output, 'F32', { ...options, pure: true, allowRequantize: true });
}

export interface GgufTensorInfo {
  name: string;
  /** ggml's type name (ggml_type_name): f32, f16, q4_K, q6_K, iq4_nl, ... */
  type: string;
  ne: number[];
  bytes: number;
}

/** Tensor names, types, shapes and sizes of any GGUF file, read with ggml's own gguf reader. */
export function inspectGguf(file: string): { fileType: number | undefined; tensors: GgufTensorInfo[] } {
  const text = execFileSync(llamaQuantizeBinary(), ['--inspect', file], { encoding: 'utf8' });
  let fileType: number | undefined;
  const tensors: GgufTensorInfo[] = [];
  for (const line of text.trim().split('\n')) {
    const ft = /^# general\.file_type (\d+)$/.exec(line);
    if (ft) {
      fileType = Number(ft[1]);
      continue;
    }
    const [name, type, dims, bytes] = line.split(' ');
    if (name === undefined || type === undefined || dims === undefined || bytes === undefined) continue;
    tensors.push({ name, type, ne: dims.split('x').map(Number), bytes: Number(bytes) });
  }
  return { fileType, tensors };
}

/** Groups tensors by role (the name without its block number) → type; e.g. `ffn_down: q4_K x1, q6_K x1`. */
export function typeMix(tensors: readonly GgufTensorInfo[]): Map<string, Map<string, number>> {
  const mix = new Map<string, Map<string, number>>();
  for (const t of tensors) {
    const role = t.name.replace(/^blk\.\d+\./, '').replace(/\.weight$/, '');
    const byType = mix.get(role) ?? new Map<string, number>();
    byType.set(t.type, (byType.get(t.type) ?? 0) + 1);
    mix.set(role, byType);
  }
  return mix;
}

/** One line per role: `ffn_down      q4_K x11, q6_K x11`. */
export function formatTypeMix(tensors: readonly GgufTensorInfo[]): string {
  const rows: string[] = [];
  for (const [role, byType] of typeMix(tensors)) {
    rows.push(`${role.padEnd(14)} ${[...byType].map(([t, n]) => `${t} x${n}`).join(', ')}`);
  }
  return rows.join('\n');
}
