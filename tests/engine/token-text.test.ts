// Engine events carry the text of each sampled token and of each top-n alternative, so that a caller reporting
// logprobs needs no detokenize call per token. The text must be exactly what engine.detokenize([id]) returns for
// that id: the single-token piece, with a leading "▁"'s space removed (llama) and a lone byte of an incomplete UTF-8
// sequence (byte-fallback <0xXX> tokens, GPT-2 byte symbols) as U+FFFD.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, type GenerateRequest, type TokenLogprob } from '../../src/engine/index.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { SMALL_SHAPE, TempModels } from '../helpers/synthetic.js';

const SHIPPED = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');
const models = new TempModels();
afterAll(() => models.cleanup());

/** Generates, and checks every logprob text of the streamed chunks and of the result against detokenize([id]).
 *  Returns the ids seen (chosen and alternatives). */
async function checkTexts(engine: Engine, request: GenerateRequest): Promise<Set<number>> {
  const gen = engine.generate(request);
  const streamed: TokenLogprob[] = [];
  for await (const c of gen) streamed.push(...(c.logprobs ?? []));
  const r = await gen.result;
  expect(r.logprobs).toEqual(streamed);
  expect(streamed.length).toBe(r.tokens.length);
  const seen = new Set<number>();
  for (const lp of streamed) {
    expect(lp.text, `text of chosen token ${lp.token}`).toBe(engine.detokenize([lp.token]));
    seen.add(lp.token);
    expect(lp.top).toHaveLength(request.logprobs!);
    for (const alt of lp.top) {
      expect(alt.text, `text of alternative ${alt.token}`).toBe(engine.detokenize([alt.token]));
      seen.add(alt.token);
    }
  }
  return seen;
}

describe('token text in engine events', () => {
  it('the shipped model (GPT-2 byte-level BPE): texts equal detokenize([id])', async () => {
    const engine = await Engine.load({ model: SHIPPED, threads: 1 });
    try {
      for (const [prompt, seed] of [
        ['ROMEO:', 1],
        ['Caf\u00e9 na\u00efve', 2],
      ] as const) {
        await checkTexts(engine, { prompt, maxTokens: 24, temperature: 1.5, seed, logprobs: 20, stopAtEos: false });
      }
    } finally {
      await engine.close();
    }
  });

  it('a GPT-2 vocabulary: lone-byte symbols (incomplete UTF-8 alone) included', async () => {
    const engine = await Engine.load({ model: models.write(SMALL_SHAPE, 'f32', 'gpt2', 7), threads: 1 });
    try {
      const seen = await checkTexts(engine, { prompt: 'Once upon a time', maxTokens: 16, temperature: 1, seed: 3, logprobs: 20, stopAtEos: false });
      const lone = [...seen].filter((id) => engine.detokenize([id]).includes('\ufffd'));
      expect(lone.length, 'lone-byte tokens among the texts checked').toBeGreaterThan(0);
    } finally {
      await engine.close();
    }
  });

  it('a llama (SentencePiece) vocabulary: "▁" pieces and <0xXX> byte-fallback tokens included', async () => {
    const engine = await Engine.load({ model: models.write(SMALL_SHAPE, 'f32', 'llama', 7), threads: 1 });
    try {
      const seen = await checkTexts(engine, { prompt: 'Once upon a time', maxTokens: 16, temperature: 1, seed: 3, logprobs: 20, stopAtEos: false });
      const vocabBytes = [...seen].filter((id) => id >= 3 && id < 3 + 256); // llamaVocab: <0x00>..<0xFF> after 3 specials
      expect(
        vocabBytes.some((id) => id - 3 >= 0x80),
        'a byte token above 0x7F (U+FFFD alone)',
      ).toBe(true);
      expect(
        vocabBytes.some((id) => id - 3 < 0x80),
        'an ASCII byte token',
      ).toBe(true);
      // llamaVocab then has "▁" and "▁a".."▁z" (ids 259..285): alone, their text has no leading space.
      expect(
        [...seen].some((id) => id >= 260 && id < 286),
        'a "▁x" piece',
      ).toBe(true);
    } finally {
      await engine.close();
    }
  });
});
