// Grammar-constrained decoding (GBNF, docs/structured-output.md) on the shipped model: the output always matches
// the grammar (regular grammars checked against an equivalent JS regex, JSON with JSON.parse), greedy and sampled;
// the end token only where the grammar accepts; lazy grammars with triggers; characters split across tokens; grammar
// errors naming line:column; hostile grammars refused or bounded; and a property test over random grammar text.
import fc from 'fast-check';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, type GenerateRequest } from '../../src/engine/index.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { JSON_OBJECT_GBNF, REGULAR_CASES } from './grammar-fixtures.js';

const MODEL = join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf');

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.load({ model: MODEL, threads: 2 });
});
afterAll(() => engine?.close());

const run = (r: GenerateRequest) => engine.generate(r).result;

async function expectGrammarError(grammar: string, pattern: RegExp): Promise<EngineError> {
  let err: unknown;
  try {
    await run({ prompt: 'ROMEO:', grammar, maxTokens: 4 });
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(EngineError);
  expect((err as EngineError).code).toBe('INVALID_ARGUMENT');
  expect((err as EngineError).message).toMatch(pattern);
  return err as EngineError;
}

describe('output matches the grammar', () => {
  for (const c of REGULAR_CASES) {
    it(`${c.name}: greedy and sampled`, async () => {
      for (const opts of [{ temperature: 0 }, { temperature: 1, seed: 1 }, { temperature: 1.5, seed: 2 }, { temperature: 0.8, topK: 20, topP: 0.9, seed: 3 }]) {
        const r = await run({ prompt: 'ROMEO:\n', grammar: c.grammar, maxTokens: 200, ...opts });
        if (r.finishReason === 'length' && c.prefix) expect(r.text).toMatch(c.prefix);
        else {
          expect(r.finishReason, JSON.stringify(r.text)).toBe('stop');
          expect(r.text).toMatch(c.regex);
        }
      }
    });
  }

  it('a JSON object grammar gives parseable JSON, greedy and sampled', async () => {
    for (let seed = 0; seed < 6; seed++) {
      const r = await run({ prompt: 'JULIET:\n', grammar: JSON_OBJECT_GBNF, maxTokens: 400, temperature: seed === 0 ? 0 : 1, seed });
      expect(r.finishReason, r.text).toBe('stop');
      const v: unknown = JSON.parse(r.text);
      expect(typeof v).toBe('object');
    }
  });

  it('the same seed gives the same tokens (the fast path and the mask cache do not change the draw)', async () => {
    const req = { prompt: 'KING:', grammar: JSON_OBJECT_GBNF, maxTokens: 120, temperature: 1, seed: 42 };
    const a = await run(req);
    const b = await run(req);
    expect(b.tokens).toEqual(a.tokens);
  });

  it('the end token comes only where the grammar accepts; a complete grammar ends the request with stop', async () => {
    // Accepting after any number of words: the model may end whenever it likes, but only after a whole word.
    const before = engine.stats().grammar!;
    const r = await run({ prompt: 'ROMEO:', grammar: 'root ::= ([a-z]+ " "?)+', maxTokens: 60, temperature: 1, seed: 5 });
    expect(r.text).toMatch(/^([a-z]+ ?)+$/);
    // A grammar with exactly one string: completes.
    const one = await run({ prompt: 'ROMEO:', grammar: 'root ::= "to be or not"', maxTokens: 60, temperature: 0 });
    expect(one.text).toBe('to be or not');
    expect(one.finishReason).toBe('stop');
    const after = engine.stats().grammar!;
    expect(after.completed).toBeGreaterThan(before.completed);
    expect(after.requests - before.requests).toBe(2);
  });

  it('logprobs are those of the masked distribution', async () => {
    const r = await run({ prompt: 'ROMEO:', grammar: 'root ::= ("yes" | "no") "."', maxTokens: 10, temperature: 0, logprobs: 5 });
    expect(r.text).toMatch(/^(yes|no)\.$/);
    let text = '';
    for (const lp of r.logprobs!) {
      expect(Number.isFinite(lp.logprob)).toBe(true);
      // Every alternative with a finite logprob continues the text within the grammar.
      for (const alt of lp.top)
        if (Number.isFinite(alt.logprob))
          expect(
            ['yes.', 'no.'].some((w) => w.startsWith(text + alt.text)),
            alt.text,
          ).toBe(true);
      text += lp.text;
    }
  });

  it('stats count masks, fast accepts and mask time', async () => {
    const before = engine.stats().grammar!;
    await run({ prompt: 'HAMLET:', grammar: JSON_OBJECT_GBNF, maxTokens: 100, temperature: 1, seed: 9 });
    const after = engine.stats().grammar!;
    expect(after.tokens).toBeGreaterThan(before.tokens);
    expect(after.fastAccepts + after.masksComputed + after.maskCacheHits - before.fastAccepts - before.masksComputed - before.maskCacheHits).toBe(
      after.tokens - before.tokens,
    );
    expect(after.maskSeconds).toBeGreaterThan(before.maskSeconds);
  });
});

describe('lazy grammars (grammarTriggers)', () => {
  it('unconstrained until the trigger, constrained from its first character', async () => {
    const before = engine.stats().grammar!;
    // The token that completes the trigger may carry more text ("ell" of " tell"): the grammar takes letters first.
    const r = await run({ prompt: 'ROMEO:\n', grammar: 'root ::= "e" [a-z]{0,8} [0-9]{3} "!"', grammarTriggers: ['e'], maxTokens: 200, temperature: 0 });
    expect(r.text).toMatch(/^[^e]*e[a-z]{0,8}[0-9]{3}!$/);
    expect(r.finishReason).toBe('stop');
    expect(engine.stats().grammar!.triggered).toBe(before.triggered + 1);
  });

  it('a trigger never seen leaves the text unconstrained', async () => {
    const free = await run({ prompt: 'ROMEO:\n', maxTokens: 30, temperature: 0 });
    const lazy = await run({ prompt: 'ROMEO:\n', grammar: 'root ::= "@@" [0-9]', grammarTriggers: ['@@'], maxTokens: 30, temperature: 0 });
    expect(lazy.tokens).toEqual(free.tokens);
  });

  it('refuses triggers without a grammar', () => {
    expect(() => engine.generate({ prompt: 'x', grammarTriggers: ['a'] })).toThrow(/grammarTriggers requires grammar/);
  });
});

describe('grammar errors name line:column and the rule', () => {
  it('syntax errors', async () => {
    await expectGrammarError('root ::= "a"\nfoo ::= "b" )', /line 2, column 13 \(rule 'foo'\).*newline/);
    await expectGrammarError('root ::= "abc', /line 1, column 10.*unterminated literal/);
    await expectGrammarError('root ::= [a-', /unterminated character class/);
    await expectGrammarError('root := "a"', /line 1, column 6.*expecting '::='/);
    await expectGrammarError('root ::= "\\q"', /unknown escape '\\q'/);
    await expectGrammarError('root ::= "a"{3,1}', /n below m/);
    await expectGrammarError('root ::= * "a"', /must follow an item/);
    await expectGrammarError('root ::= ("a" | "b"', /expecting '\)' to close the group opened at 1:10/);
    await expectGrammarError('root ::= [z-a]', /range end below its start/);
  });
  it('undefined rules, missing root, duplicate rules', async () => {
    await expectGrammarError('root ::= item\nitem ::= thing', /line 2, column 10.*undefined rule 'thing'/);
    await expectGrammarError('start ::= "a"', /no 'root' rule/);
    await expectGrammarError('root ::= "a"\nroot ::= "b"', /line 2, column 1.*defined twice/);
  });
  it('left recursion is refused, naming the cycle', async () => {
    await expectGrammarError('root ::= root "a" | "a"', /rule 'root' is left-recursive \(root -> root/);
    await expectGrammarError('root ::= x\nx ::= y "a"\ny ::= "b"? x', /left-recursive/);
    // A repetition of something that can be empty loops without consuming: refused too.
    await expectGrammarError('root ::= a* "x"\na ::= "b"?', /left-recursive/);
  });
  it('a grammar that matches nothing', async () => {
    await expectGrammarError(String.raw`root ::= [^\x00-\U0010FFFF]`, /matches nothing/);
  });
  it('a dead end (the start is fine, then no token can continue) ends with stop and is counted', async () => {
    const before = engine.stats().grammar!;
    const r = await run({ prompt: 'ROMEO:', grammar: String.raw`root ::= "a" [^\x00-\U0010FFFF]`, maxTokens: 10, temperature: 0 });
    expect(r.text).toBe('a');
    expect(r.finishReason).toBe('stop');
    expect(engine.stats().grammar!.deadEnds).toBe(before.deadEnds + 1);
  });
});

describe('hostile grammars: refused or bounded', () => {
  it('text over the size limit', async () => {
    const big = 'root ::= "a"\n' + '# padding\n'.repeat(120_000);
    expect(() => engine.generate({ prompt: 'x', grammar: big })).toThrow(/at most 1048576/);
  });
  it('groups nested too deep', async () => {
    await expectGrammarError('root ::= ' + '('.repeat(200) + '"a"' + ')'.repeat(200), /nested deeper than 128/);
  });
  it('repetition that expands too far', async () => {
    // Repeated items are references to one rule, so only many large repetitions add up past the element limit.
    const many = ['root ::= r0', ...Array.from({ length: 6 }, (_, i) => `r${i} ::= "x"{100000} r${i + 1}`), 'r6 ::= "y"'];
    await expectGrammarError(many.join('\n'), /expands to more than 524288 elements/);
    await expectGrammarError('root ::= "a"{0,50000}', /more than 16384 rules/);
  });
  it('exponentially ambiguous grammars run in bounded time', async () => {
    // r0 ::= r1 | r1, r1 ::= r2 | r2, ...: 2^40 derivations of one string.
    const rules = ['root ::= r0 "!"'];
    for (let i = 0; i < 40; i++) rules.push(`r${i} ::= r${i + 1} | r${i + 1} | "x" r${i + 1}`);
    rules.push('r40 ::= [a-z]');
    const r = await run({ prompt: 'ROMEO:', grammar: rules.join('\n'), maxTokens: 60, temperature: 1, seed: 3 });
    expect(r.text).toMatch(/^x{0,40}[a-z]!$/);
  });
  it('a grammar whose stack set doubles with every character stays bounded', async () => {
    // After n "a"s the pending suffixes are every string of n "b"/"c": 2^n stacks, past the limit at n = 11.
    const before = engine.stats().grammar!;
    const g = 'root ::= t\nt ::= "a" t "b" | "a" t "c" | "d"';
    for (let seed = 0; seed < 3; seed++) {
      const r = await run({ prompt: 'a', grammar: g, maxTokens: 40, temperature: 1, seed });
      const m = /^(a*)d([bc]*)$/.exec(r.text);
      if (r.finishReason === 'stop') expect(m).not.toBeNull();
      expect(r.text.length).toBeLessThanOrEqual(200);
    }
    const after = engine.stats().grammar!;
    expect(after.requests - before.requests).toBe(3);
  });
});

describe('property: random grammar text is an error or a bounded generation, never a crash', () => {
  const pieces = [
    'root',
    ' ::= ',
    '::=',
    'a',
    'b',
    ' ',
    '\n',
    '|',
    '(',
    ')',
    '"x"',
    '"\\n"',
    '"é"',
    '[a-z]',
    '[^"]',
    '.',
    '*',
    '+',
    '?',
    '{2}',
    '{1,3}',
    '{2,}',
    '#c\n',
    '\\',
    '"',
    '[',
    ']',
    '-',
    '{',
    '}',
    'root ::= ',
    'a ::= ',
    'b ::= ',
  ];
  it('holds', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 3 })), { maxLength: 24 }), async (parts) => {
        const grammar = parts.join('');
        if (grammar.length === 0) return;
        try {
          const r = await run({ prompt: 'ROMEO:', grammar, maxTokens: 3, temperature: 1, seed: 1 });
          expect(['stop', 'length']).toContain(r.finishReason);
        } catch (e) {
          expect(e).toBeInstanceOf(EngineError);
          expect((e as EngineError).code).toBe('INVALID_ARGUMENT');
          expect((e as EngineError).message).toMatch(/grammar/);
        }
      }),
      { numRuns: 300, seed: 18 },
    );
  });
});
