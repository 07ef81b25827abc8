// Structured-output cost: decode tokens/s with and without a JSON grammar, and the grammar's own per-token cost
// measured in-process (engine.stats().grammar.maskSeconds over grammar tokens) as a share of the constrained decode
// time per token. Issue 18's bar: at most 10% on both models.
//
//   npm run bench:structured                         both models, 5 rounds of 4 generations of 128 tokens each
//   npm run bench:structured -- --rounds 1 --tokens 32 --models shipped     a smoke run
//
// Models: the shipped one (models/tuneloop-shakespeare.gguf) and a synthetic llama3.1-preset model with the real
// 128k-token Llama-3 vocabulary (tests/helpers/arch-models.ts; random weights: its unconstrained choice is rarely
// JSON, so nearly every token needs the full mask — the worst case for the fast path). Grammar: what
// `response_format: {type: "json_schema"}` compiles for a typical extraction schema (BENCH_SCHEMA below: nested
// object, bounded strings, an enum, an integer range, an array of numbers, a nullable field), via compileJsonSchema.
// Each round runs the plain and the constrained batch back to back in one process, the order alternating between
// rounds; figures are medians over rounds. Sampling at --temperature (default 1; 0 = greedy) with fixed seeds: greedy
// JSON on a random-weight model closes its object within a few tokens, sampled JSON runs long. The plain runs ignore
// the end token so both sides decode the full --tokens where the grammar does not finish first.
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { loadavg } from 'node:os';

import { Engine, type GenerationResult } from '../src/engine/index.js';
import { ArchModels } from '../tests/helpers/arch-models.js';
import { REPO_ROOT } from '../tests/helpers/shared.js';
import { compileJsonSchema } from '../src/structured/json-schema-grammar.js';

/** A typical extraction schema (what an app sends with response_format json_schema, strict). */
const BENCH_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    role: { enum: ['lord', 'servant', 'soldier', 'other'] },
    scores: { type: 'array', items: { type: 'number' }, maxItems: 4 },
    home: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 24 }, verona: { type: 'boolean' } },
      required: ['city', 'verona'],
      additionalProperties: false,
    },
    note: { anyOf: [{ type: 'string', maxLength: 60 }, { type: 'null' }] },
  },
  required: ['name', 'age', 'role', 'scores', 'home', 'note'],
  additionalProperties: false,
};
const JSON_GBNF = compileJsonSchema(BENCH_SCHEMA).grammar;

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    tokens: { type: 'string', default: '128' },
    requests: { type: 'string', default: '4' },
    models: { type: 'string', default: 'shipped,llama3-128k' },
    threads: { type: 'string', default: '2' },
    temperature: { type: 'string', default: '1' },
  },
  strict: true,
});
const rounds = Number(values.rounds),
  maxTokens = Number(values.tokens),
  nRequests = Number(values.requests),
  threads = Number(values.threads),
  temperature = Number(values.temperature);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Batch {
  tokens: number;
  decodeMs: number;
}

async function batch(engine: Engine, grammar: string | undefined): Promise<Batch> {
  let tokens = 0,
    decodeMs = 0;
  for (let i = 0; i < nRequests; i++) {
    const r: GenerationResult = await engine.generate({
      prompt: ['Here is the record as JSON:\n', 'Output:', 'ROMEO:\n', 'data = '][i % 4]!,
      maxTokens,
      temperature,
      seed: 1000 + i,
      stopAtEos: grammar !== undefined,
      ...(grammar !== undefined ? { grammar } : {}),
    }).result;
    // Decode time covers tokens 2..n (the first comes out of prefill).
    tokens += Math.max(0, r.usage.completionTokens - 1);
    decodeMs += r.timings.decodeMs;
  }
  return { tokens, decodeMs };
}

async function benchModel(label: string, file: string): Promise<string> {
  const engine = await Engine.load({ model: file, threads });
  try {
    await batch(engine, JSON_GBNF); // warm: the vocabulary trie, the first masks
    await batch(engine, undefined);
    const plain: number[] = [],
      json: number[] = [],
      maskUs: number[] = [],
      share: number[] = [];
    let counts = { computed: 0, cached: 0, fast: 0, tokens: 0 };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ['plain', 'json'] : ['json', 'plain'];
      for (const which of order) {
        if (which === 'plain') {
          const b = await batch(engine, undefined);
          plain.push((b.tokens / b.decodeMs) * 1000);
        } else {
          const s0 = engine.stats().grammar!;
          const b = await batch(engine, JSON_GBNF);
          const s1 = engine.stats().grammar!;
          json.push((b.tokens / b.decodeMs) * 1000);
          const perToken = (s1.maskSeconds - s0.maskSeconds) / Math.max(1, s1.tokens - s0.tokens);
          maskUs.push(perToken * 1e6);
          share.push((perToken * 1000) / (b.decodeMs / Math.max(1, b.tokens)));
          counts = {
            computed: counts.computed + s1.masksComputed - s0.masksComputed,
            cached: counts.cached + s1.maskCacheHits - s0.maskCacheHits,
            fast: counts.fast + s1.fastAccepts - s0.fastAccepts,
            tokens: counts.tokens + s1.tokens - s0.tokens,
          };
        }
      }
    }
    const p = median(plain),
      j = median(json);
    const row = [
      label,
      String(engine.info.nVocab),
      p.toFixed(1),
      j.toFixed(1),
      `${(((p - j) / p) * 100).toFixed(1)}%`,
      median(maskUs).toFixed(0),
      `${(median(share) * 100).toFixed(1)}%`,
      `${counts.fast} / ${counts.computed} / ${counts.cached} of ${counts.tokens}`,
    ];
    return `| ${row.join(' | ')} |`;
  } finally {
    await engine.close();
  }
}

async function main(): Promise<void> {
  const want = values.models.split(',').map((s) => s.trim());
  const rows: string[] = [];
  const models = new ArchModels();
  try {
    for (const m of want) {
      if (m === 'shipped') rows.push(await benchModel('tuneloop-shakespeare', join(REPO_ROOT, 'models', 'tuneloop-shakespeare.gguf')));
      else if (m === 'llama3-128k') rows.push(await benchModel('llama3.1 preset, real Llama-3 vocab', models.write('llama3.1', { real: true }).file));
      else throw new Error(`--models: unknown '${m}' (shipped, llama3-128k)`);
    }
  } finally {
    models.cleanup();
  }
  console.log(
    `\nbench:structured — ${rounds} rounds × ${nRequests} generations of ${maxTokens} tokens at temperature ${temperature}, ${threads} threads, load ${loadavg()[0]!.toFixed(2)}; medians over rounds`,
  );
  console.log('| model | vocab | plain tok/s | JSON tok/s | slowdown | mask µs/token | mask share of decode | fast / computed / cached of tokens |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

await main();
