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
