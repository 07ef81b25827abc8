// Grammar-constrained decoding against llama.cpp (node-llama-cpp 3.21.1's LlamaGrammar) and on the real 128k-token
// Llama-3 vocabulary (a synthetic llama3.1-preset model). Greedy decoding under the same grammar on the same file must
// give the same tokens in both engines: the strongest check of the mask (a token wrongly allowed or refused changes
// the argmax somewhere). llama.cpp ends a complete grammar with an end token, tuneloop with finish 'stop' and no
// token: the comparison drops llama.cpp's trailing end token.
import { join } from 'node:path';
import { LlamaGrammarEvaluationState, type LlamaContext, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/index.js';
import { ArchModels, forceToken } from '../helpers/arch-models.js';
import { llamaCpp } from '../helpers/llama-cpp.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { JSON_GBNF, JSON_OBJECT_GBNF, REGULAR_CASES } from './grammar-fixtures.js';

const SHAKESPEARE = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');

/** llama.cpp with one context per file, loaded once (disposeLlamaModels frees them). */
const loaded = new Map<string, Promise<{ model: LlamaModel; context: LlamaContext }>>();
function llamaModel(file: string, contextSize: number): Promise<{ model: LlamaModel; context: LlamaContext }> {
  let p = loaded.get(file);
  if (p === undefined) {
    p = (async () => {
      const model = await (await llamaCpp()).loadModel({ modelPath: file, gpuLayers: 0 });
      const context = await model.createContext({
        contextSize,
        threads: 2,
        sequences: 1,
        flashAttention: false,
        experimentalKvCacheKeyType: 'F32',
        experimentalKvCacheValueType: 'F32',
      });
      return { model, context };
    })();
    loaded.set(file, p);
  }
  return p;
}
async function disposeLlamaModels(): Promise<void> {
  for (const p of loaded.values()) {
    const { model, context } = await p;
    await context.dispose();
    await model.dispose();
  }
  loaded.clear();
}
afterAll(disposeLlamaModels);

async function llamaGreedy(file: string, prompt: number[], grammar: string, maxTokens: number, contextSize = 512): Promise<{ tokens: number[]; eog: boolean }> {
  const { model, context } = await llamaModel(file, contextSize);
  const seq = context.getSequence();
  try {
    const g = await (await llamaCpp()).createGrammar({ grammar });
    const state = new LlamaGrammarEvaluationState({ model, grammar: g });
    const tokens: number[] = [];
    let eog = false;
    for await (const t of seq.evaluate(prompt as Token[], { temperature: 0, grammarEvaluationState: state, yieldEogToken: true })) {
      if (model.isEogToken(t)) {
        eog = true;
        break;
      }
      tokens.push(Number(t));
      if (tokens.length >= maxTokens) break;
    }
    return { tokens, eog };
  } finally {
    await seq.dispose();
  }
}

const ORACLE_GRAMMARS = [
  ...REGULAR_CASES.map((c) => ({ name: c.name, grammar: c.grammar })),
  { name: 'bounded JSON', grammar: JSON_OBJECT_GBNF },
  { name: 'JSON', grammar: JSON_GBNF },
];

describe('greedy tokens equal llama.cpp under the same grammar', () => {
  describe('shipped model', () => {
    let engine: Engine;
    beforeAll(async () => {
      engine = await Engine.load({ model: SHAKESPEARE, threads: 2 });
    });
    afterAll(() => engine?.close());
    for (const { name, grammar } of ORACLE_GRAMMARS) {
      it(name, async () => {
        for (const text of ['ROMEO:\n', 'First Citizen:\nWe are']) {
          const prompt = engine.tokenize(text);
          const ours = await engine.generate({ tokens: prompt, grammar, maxTokens: 64, temperature: 0 }).result;
          const theirs = await llamaGreedy(SHAKESPEARE, prompt, grammar, 64, 256);
          expect(ours.tokens, `${JSON.stringify(ours.text)} vs llama.cpp`).toEqual(theirs.tokens);
          if (ours.finishReason === 'stop') expect(theirs.eog || theirs.tokens.length === ours.tokens.length).toBe(true);
        }
      });
    }
  });

  describe('llama3.1 preset with the real 128k Llama-3 vocabulary', () => {
    const models = new ArchModels();
    const m = models.write('llama3.1', { real: true });
    let engine: Engine;
    beforeAll(async () => {
      engine = await Engine.load({ model: m.file, threads: 2, contextLength: 512 });
    });
    afterAll(async () => {
      await engine?.close();
      models.cleanup();
    });

    it('has the 128k vocabulary', () => {
      expect(engine.info.nVocab).toBeGreaterThan(128_000);
    });

    for (const { name, grammar } of ORACLE_GRAMMARS) {
      it(`${name}: matches llama.cpp`, async () => {
        const prompt = engine.tokenize('The answer is');
        const ours = await engine.generate({ tokens: prompt, grammar, maxTokens: 40, temperature: 0 }).result;
        const theirs = await llamaGreedy(m.file, prompt, grammar, 40);
        expect(ours.tokens, `${JSON.stringify(ours.text)} vs llama.cpp`).toEqual(theirs.tokens);
      });
    }

    it('regular grammars and JSON hold, greedy and sampled', async () => {
      for (const c of REGULAR_CASES) {
        for (const opts of [{ temperature: 0 }, { temperature: 1, seed: 4 }, { temperature: 0.7, topK: 40, topP: 0.95, seed: 5 }]) {
          const r = await engine.generate({ prompt: 'Hello', grammar: c.grammar, maxTokens: 200, ...opts }).result;
          if (r.finishReason === 'length' && c.prefix) expect(r.text).toMatch(c.prefix);
          else {
            expect(r.finishReason, `${c.name}: ${JSON.stringify(r.text)}`).toBe('stop');
            expect(r.text).toMatch(c.regex);
          }
        }
      }
      for (let seed = 0; seed < 4; seed++) {
        const r = await engine.generate({ prompt: '{"', grammar: JSON_OBJECT_GBNF, maxTokens: 400, temperature: seed === 0 ? 0 : 1, seed }).result;
        expect(r.finishReason, r.text).toBe('stop');
        expect(typeof JSON.parse(r.text)).toBe('object');
      }
    });

    it('a control-token trigger starts a lazy grammar (matched on the token text)', async () => {
      // <|start_header_id|> (128006) is one control token in Llama-3's vocabulary. A copy of the model made to pick it
      // at every position generates it first; from there the grammar, which starts with its text, constrains the rest.
      const TAG = 128006;
      const forced = models.write('llama3.1', { real: true, edit: (mm) => forceToken(mm, TAG) });
      const e = await Engine.load({ model: forced.file, threads: 2, contextLength: 256 });
      try {
        expect(e.tokenize('<|start_header_id|>', { addBos: false, parseSpecial: true })).toEqual([TAG]);
        const before = e.stats().grammar!;
        const r = await e.generate({
          prompt: 'Call',
          grammar: 'root ::= "<|start_header_id|>" [a-z]{3} "."',
          grammarTriggers: ['<|start_header_id|>'],
          maxTokens: 30,
          temperature: 0,
        }).result;
        expect(r.tokens[0]).toBe(TAG);
        expect(r.text).toMatch(/^[a-z]{3}\.$/);
        expect(r.finishReason).toBe('stop');
        expect(e.stats().grammar!.triggered).toBe(before.triggered + 1);
        // Without the trigger the same grammar is eager: the control token is never allowed.
        const eager = await e.generate({ prompt: 'Call', grammar: 'root ::= [a-z]{3} "."', maxTokens: 30, temperature: 0 }).result;
        expect(eager.tokens).not.toContain(TAG);
        expect(eager.text).toMatch(/^[a-z]{3}\.$/);
      } finally {
        await e.close();
      }
    });
  });
});
