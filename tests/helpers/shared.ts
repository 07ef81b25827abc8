// Files from ../shared (beside the repository in development and CI). Tests that use them skip cleanly when absent:
// the project never needs ../shared to run.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = resolve(REPO_ROOT, '..', 'shared');

export function sharedFile(...parts: string[]): string | undefined {
  const p = join(SHARED, ...parts);
  return existsSync(p) ? p : undefined;
}

export const STORIES_260K = sharedFile('models', 'stories260K-f32.gguf');
export const TINY_SHAKESPEARE = sharedFile('data', 'tinyshakespeare.txt');
