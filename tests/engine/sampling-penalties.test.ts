// The sampler's logit-processing stages against their definitions, on the engine's own raw logits: logit bias,
// repetition penalty (CTRL / vLLM / llama.cpp), frequency and presence penalties (OpenAI) and min_p. Greedy decoding is
// checked step by step: the raw logits of every prefix come from engine.evaluate, the definition is applied here in
// TypeScript, and the engine's token must be the argmax of the processed logits. Reported logprobs stay those of the
// raw distribution (docs/api.md, "Sampling").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, GenerateRequest } from '../../src/engine/index.js';
import { EngineError } from '../../src/engine/index.js';
import { SERVE_SHAPE, greedy, load, promptOf, thrownBy } from '../helpers/serving.js';
import { TempModels } from '../helpers/synthetic.js';

const V = SERVE_SHAPE.nVocab;
const models = new TempModels();
let engine: Engine;
beforeAll(async () => {
  engine = await load(models.write(SERVE_SHAPE, 'f32', 'llama', 33));
});
afterAll(async () => {
  await engine.close();
  models.cleanup();
});

/** The definitions, in the engine's documented order: bias, repetition, frequency/presence. */
function processLogits(raw: Float32Array, r: GenerateRequest, prompt: number[], generated: number[]): Float64Array {
  const l = Float64Array.from(raw);
  for (const [k, b] of Object.entries(r.logitBias ?? {})) l[Number(k)]! += b;
  const rep = r.repetitionPenalty ?? 1;
  if (rep !== 1) {
    for (const t of new Set([...prompt, ...generated])) l[t] = l[t]! > 0 ? l[t]! / rep : l[t]! * rep;
  }
  const counts = new Map<number, number>();
  for (const t of generated) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, c] of counts) l[t]! -= c * (r.frequencyPenalty ?? 0) + (r.presencePenalty ?? 0);
  return l;
}

function logSoftmax(row: ArrayLike<number>, t: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return row[t]! - max - Math.log(sum);
}

/** Runs `r` greedily and checks each generated token against the processed raw logits of its prefix. */
async function checkGreedySteps(r: GenerateRequest): Promise<number[]> {
  const prompt = r.tokens!;
  const res = await engine.generate({ ...r, logprobs: 0 }).result;
  expect(res.tokens.length).toBe(r.maxTokens);
  for (let step = 0; step < res.tokens.length; step++) {
    const prefix = [...prompt, ...res.tokens.slice(0, step)];
    const raw = await engine.evaluate(prefix);
    const p = processLogits(raw, r, prompt, res.tokens.slice(0, step));
    let best = 0;
    for (let i = 1; i < V; i++) if (p[i]! > p[best]!) best = i;
    const chosen = res.tokens[step]!;
    // evaluate's batch shape differs from decode's, so ties within float noise may go either way.
    expect(p[chosen]!, `step ${step}: engine chose ${chosen}, the definition's argmax is ${best}`).toBeGreaterThanOrEqual(p[best]! - 1e-3);
    // The reported logprob is the raw distribution's.
    expect(res.logprobs![step]!.logprob).toBeCloseTo(logSoftmax(raw, chosen), 3);
  }
  return res.tokens;
}

describe('logit processing against the definitions (greedy, step by step)', () => {
  const prompt = promptOf(5, 24);

  it('logit_bias: +100 forces a token, and logprobs stay raw', async () => {
    const tokens = await checkGreedySteps(greedy(prompt, 6, { logitBias: { 77: 100 } }));
    expect(tokens).toEqual([77, 77, 77, 77, 77, 77]);
  });

  it('logit_bias: -100 on the unbiased choice moves greedy elsewhere', async () => {
    const plain = (await engine.generate(greedy(prompt, 1)).result).tokens[0]!;
    const tokens = await checkGreedySteps(greedy(prompt, 4, { logitBias: { [plain]: -100 } }));
    expect(tokens).not.toContain(plain);
  });

  it('frequency and presence penalties (OpenAI) change greedy output as defined', async () => {
    const plain = (await engine.generate(greedy(prompt, 16)).result).tokens;
    const penalized = await checkGreedySteps(greedy(prompt, 16, { frequencyPenalty: 2, presencePenalty: 1.5 }));
    const negative = await checkGreedySteps(greedy(prompt, 16, { frequencyPenalty: -0.5, presencePenalty: -2 }));
    // A strong penalty makes repeats rarer than greedy's own loop; a negative one makes them likelier.
    const distinct = (t: number[]): number => new Set(t).size;
    expect(distinct(penalized)).toBeGreaterThan(distinct(plain));
    expect(distinct(negative)).toBeLessThanOrEqual(distinct(plain));
  });

  it('repetition penalty covers the prompt and the generated tokens', async () => {
    const plain = (await engine.generate(greedy(prompt, 16)).result).tokens;
    const penalized = await checkGreedySteps(greedy(prompt, 16, { repetitionPenalty: 3 }));
    expect(penalized).not.toEqual(plain);
    await checkGreedySteps(greedy(prompt, 8, { repetitionPenalty: 0.5 })); // < 1 rewards repeats
  });

  it('every stage at once, in the documented order', async () => {
    await checkGreedySteps(greedy(prompt, 12, { logitBias: { 5: 3, 9: -2, 100: 1.5 }, repetitionPenalty: 1.3, frequencyPenalty: 0.7, presencePenalty: 0.4 }));
  });
});

describe('min_p', () => {
  const prompt = promptOf(9, 16);

  it('never samples a token below min_p × the top probability (tempered), and min_p 1 is greedy', async () => {
    const raw = await engine.evaluate(prompt);
    const T = 1.5,
      minP = 0.3;
    let max = -Infinity;
    for (const v of raw) max = Math.max(max, v);
    const allowed = new Set<number>();
    for (let i = 0; i < V; i++) if (Math.exp((raw[i]! - max) / T) >= minP - 1e-5) allowed.add(i);
    expect(allowed.size, 'the test needs a cut that leaves a choice').toBeGreaterThan(1);
    expect(allowed.size).toBeLessThan(V / 2);
    const seen = new Set<number>();
    for (let seed = 0; seed < 60; seed++) {
      const r = await engine.generate({ tokens: prompt, maxTokens: 1, temperature: T, minP, seed, stopAtEos: false }).result;
      seen.add(r.tokens[0]!);
    }
    for (const t of seen) expect(allowed.has(t), `token ${t} is below the min_p cut`).toBe(true);
    expect(seen.size).toBeGreaterThan(1);
    // Without min_p the same seeds reach beyond the cut (so the check above could fail).
    const free = new Set<number>();
    for (let seed = 0; seed < 60; seed++) free.add((await engine.generate({ tokens: prompt, maxTokens: 1, temperature: T, seed, stopAtEos: false }).result).tokens[0]!);
    expect([...free].some((t) => !allowed.has(t))).toBe(true);
    // min_p = 1 keeps only the top token.
    const top = (await engine.generate(greedy(prompt, 1)).result).tokens[0]!;
    for (let seed = 0; seed < 10; seed++) {
      expect((await engine.generate({ tokens: prompt, maxTokens: 1, temperature: 2, minP: 1, seed }).result).tokens[0]).toBe(top);
    }
  });

  it('a seeded sampled request with every stage is reproducible', async () => {
    const r: GenerateRequest = {
      tokens: prompt,
      maxTokens: 12,
      temperature: 0.9,
      topK: 40,
      topP: 0.95,
      minP: 0.05,
      repetitionPenalty: 1.2,
      frequencyPenalty: 0.3,
      presencePenalty: 0.3,
      logitBias: { 7: 2 },
      seed: 1234,
      stopAtEos: false,
    };
    const a = await engine.generate(r).result;
    const b = await engine.generate(r).result;
    expect(a.tokens).toEqual(b.tokens);
  });
});

describe('sampled: the draw follows the processed distribution', () => {
  it('logit_bias and the repetition penalty shape the tempered distribution as defined', async () => {
    const prompt = promptOf(11, 12);
    const raw = await engine.evaluate(prompt);
    const order = [...raw.keys()].sort((a, b) => raw[b]! - raw[a]!);
    const a = prompt[3]!; // in the prompt: the repetition penalty applies to it
    const [b, c] = order.filter((t) => !prompt.includes(t)).slice(0, 2) as [number, number];
    // Biases that bring a, b, c to 1, 0.5, 0 and push every other token out (-100).
    const target = new Map([
      [a, 1],
      [b, 0.5],
      [c, 0],
    ]);
    const logitBias: Record<number, number> = {};
    for (let t = 0; t < V; t++) logitBias[t] = target.has(t) ? Math.fround(target.get(t)! - raw[t]!) : -100;
    const req: GenerateRequest = { tokens: prompt, maxTokens: 1, temperature: 1, repetitionPenalty: 2, logitBias, stopAtEos: false };
    const p = processLogits(raw, req, prompt, []);
    const probs = new Map([...target.keys()].map((t) => [t, Math.exp(logSoftmax(p, t))]));
    // a: 1 / 2 = 0.5, b: 0.5, c: 0 → about 0.38, 0.38, 0.23.
    expect(probs.get(a)!).toBeCloseTo(probs.get(b)!, 3);
    const N = 600;
    const counts = new Map<number, number>();
    for (let seed = 0; seed < N; seed++) {
      const t = (await engine.generate({ ...req, seed }).result).tokens[0]!;
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    expect(
      [...counts.keys()].every((t) => target.has(t)),
      `only a, b, c are drawn: ${JSON.stringify([...counts])}`,
    ).toBe(true);
    for (const [t, pt] of probs) {
      // Five standard deviations of a binomial frequency: deterministic seeds, so this never flakes, yet a stage
      // applied in another order (penalty before bias: a at 1 - x or 2x) moves a's share far outside it.
      const tol = 5 * Math.sqrt((pt * (1 - pt)) / N);
      expect(Math.abs((counts.get(t) ?? 0) / N - pt), `token ${t}: drawn ${counts.get(t) ?? 0}/${N}, expected p ${pt.toFixed(3)}`).toBeLessThan(tol);
    }
  });
});

describe('validation', () => {
  const base = { tokens: [1, 2, 3] };
  const cases: [Partial<GenerateRequest>, string][] = [
    [{ presencePenalty: 2.5 }, 'presencePenalty'],
    [{ frequencyPenalty: -3 }, 'frequencyPenalty'],
    [{ repetitionPenalty: 0 }, 'repetitionPenalty'],
    [{ repetitionPenalty: -1 }, 'repetitionPenalty'],
    [{ minP: 1.5 }, 'minP'],
    [{ logitBias: { 5: 101 } }, 'logitBias[5]'],
    [{ logitBias: { [V]: 1 } }, `logitBias key '${V}'`],
    [{ logitBias: { ['-1' as unknown as number]: 1 } }, "logitBias key '-1'"],
    [{ logitBias: [1, 2] }, 'logitBias'],
  ];
  for (const [extra, field] of cases) {
    it(`refuses ${JSON.stringify(extra)} naming ${field}`, () => {
      const e = thrownBy(() => engine.generate({ ...base, ...extra }));
      expect(e).toBeInstanceOf(EngineError);
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(field);
    });
  }
});
