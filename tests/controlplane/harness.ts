// Shared setup for the control-plane tests: the shipped model behind a real HTTP server on a free port.
import { join } from 'node:path';
import { pino } from 'pino';
import { Engine, type EngineOptions } from '../../src/engine/index.js';
import { DEFAULT_SERVER_OPTIONS, type ServerOptions } from '../../src/controlplane/app.js';
import { startServer, type RunningServer } from '../../src/controlplane/http-server.js';
import { REPO_ROOT } from '../helpers/shared.js';

export const MODEL = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');
export const MODEL_NAME = 'tuneloop-shakespeare';

export interface Harness {
  engine: Engine;
  server: RunningServer;
  url: string;
  stop(): Promise<void>;
}

/** One compute thread (the test machine's two cores are shared), port 0, silent logs. */
export async function startHarness(options: Partial<ServerOptions> = {}, engineOptions: Omit<EngineOptions, 'model'> = {}): Promise<Harness> {
  const engine = await Engine.load({ threads: 1, ...engineOptions, model: MODEL });
  const server = await startServer({
    engine,
    options: { ...DEFAULT_SERVER_OPTIONS, port: 0, modelName: MODEL_NAME, ...options },
    logger: pino({ level: 'silent' }),
  });
  return {
    engine,
    server,
    url: server.url,
    async stop() {
      await server.close();
      await engine.close();
    },
  };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** Parse an SSE body into its `data:` payloads ('[DONE]' kept as a string). */
export function sseData(text: string): unknown[] {
  return text
    .split('\n\n')
    .map((b) => b.trim())
    .filter((b) => b.startsWith('data: '))
    .map((b) => b.slice(6))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

export const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

export async function waitFor(pred: () => boolean, timeoutMs = 2000, everyMs = 5): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (pred()) return true;
    if (performance.now() > until) return false;
    await sleep(everyMs);
  }
}
