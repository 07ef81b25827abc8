// The same load loop driving an Engine directly, no HTTP: the baseline bench:serve compares the server against.
// Stamps are taken where the HTTP client takes them (first non-empty text chunk, each later one), so the figures
// differ by the HTTP layer only.
import type { Engine } from '../engine/index.js';
import type { LoadReport } from './report.js';
import { driveLoad, type SendOne, type WorkloadOptions } from './run.js';
import type { RequestRecord } from './types.js';

export interface InProcessOptions extends WorkloadOptions {
  /** Name in the report; default: the engine's model name. */
  model?: string;
}

export async function runLoadInProcess(engine: Engine, o: InProcessOptions): Promise<LoadReport> {
  const temperature = o.temperature ?? 0.8;
  const send: SendOne = async (spec, signal, runStartMs) => {
    const t0 = performance.now();
    const rec: RequestRecord = { index: spec.index, startS: (t0 - runStartMs) / 1000, ok: false, itlS: [], e2eS: 0, completionTokens: 0 };
    let chunks = 0,
      last = 0;
    const fail = (e: unknown): RequestRecord => {
      const code = (e as { code?: unknown }).code;
      rec.errorKind = signal.aborted ? 'aborted' : typeof code === 'string' ? `engine_${code}` : 'engine';
      rec.errorMessage = (e as Error).message;
      rec.e2eS = (performance.now() - t0) / 1000;
      rec.completionTokens = chunks;
      return rec;
    };
    try {
      const gen = engine.generate({ prompt: spec.prompt, maxTokens: spec.maxTokens, temperature, seed: spec.seed, stopAtEos: !o.ignoreEos });
      const onAbort = () => gen.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of gen) {
          if (!chunk.text) continue;
          const now = performance.now();
          if (chunks === 0) rec.ttftS = (now - t0) / 1000;
          else rec.itlS.push((now - last) / 1000);
          last = now;
          chunks++;
        }
        const r = await gen.result;
        if (r.finishReason === 'cancelled') return fail(new Error('cancelled'));
        rec.ok = true;
        rec.e2eS = (performance.now() - t0) / 1000;
        rec.completionTokens = r.usage.completionTokens;
        rec.promptTokens = r.usage.promptTokens;
        return rec;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } catch (e) {
      return fail(e);
    }
  };
  return driveLoad(o, { target: 'in-process', model: o.model ?? engine.info.name }, send);
}
