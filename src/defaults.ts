// Paths and defaults shared by the CLI and the server.
import { dirname, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The package root, found from this file whether it runs from src/ (tsx) or dist/src/ (compiled). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = resolve(dir, '..');
  }
  throw new Error('tuneloop package root not found');
}

/** The embedded default model shipped in models/ (see models/README.md). */
export const DEFAULT_MODEL_FILE = 'tuneloop-shakespeare.gguf';

export function defaultModelPath(): string {
  return join(packageRoot(), 'models', DEFAULT_MODEL_FILE);
}

/**
 * The models shipped in models/, by the name a CLI `--model` flag accepts in place of a path: the default dense model
 * and the tiny DeepSeek-style MoE model (MLA, shared + routed experts; tools/train-deepseek-model). The default stays
 * the dense model.
 */
export const EMBEDDED_MODELS: Readonly<Record<string, string>> = {
  'tuneloop-shakespeare': DEFAULT_MODEL_FILE,
  'tuneloop-deepseek-tiny': 'tuneloop-deepseek-tiny.gguf',
};

/** The path of an embedded model by name, or undefined when the name is not one of EMBEDDED_MODELS. */
export function embeddedModelPath(name: string): string | undefined {
  const file = Object.prototype.hasOwnProperty.call(EMBEDDED_MODELS, name) ? EMBEDDED_MODELS[name] : undefined;
  return file === undefined ? undefined : join(packageRoot(), 'models', file);
}

/**
 * A `--model` argument as a file path: an embedded model's name (exactly, e.g. `tuneloop-deepseek-tiny`) means that
 * shipped file, unless a file of that very name exists in the working directory (a path always wins); anything else
 * is a path.
 */
export function resolveModelArg(arg: string): string {
  if (existsSync(arg)) return arg;
  return embeddedModelPath(arg) ?? arg;
}
