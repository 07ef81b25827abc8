// Where the time of one prefill and one decode goes, per operation (engine opSeconds), for one file.
//   npm run bench:ops -- FILE [--kv f16] [--prompt 512] [--decode 64] [--threads 2]
import { parseArgs } from 'node:util';
import { Engine } from '../src/engine/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    kv: { type: 'string', default: 'f16' },
    prompt: { type: 'string', default: '512' },
    decode: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
  },
});
const file = positionals[0];
if (!file) throw new Error('usage: profile-ops FILE');
const P = Number(values.prompt),
  D = Number(values.decode);
const engine = await Engine.load({ model: file, weights: 'native', threads: Number(values.threads), kvDtype: values.kv as 'f16', contextLength: P + D + 16 });
await engine.generate({ tokens: [1, 2, 3, 4], maxTokens: 2, temperature: 0, stopAtEos: false }).result;
const ops = () => ({ ...engine.stats().opSeconds });
const diff = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(b).map((k) => [k, +((b[k] ?? 0) - (a[k] ?? 0)).toFixed(3)]));
let seed = 7;
// Ids drawn below the model's vocabulary size (the shipped model has 2048 tokens).
const span = Math.max(1, engine.info.nVocab - 101);
const tok = () => ((seed = (seed * 1103515245 + 12345) % 2147483648), 100 + (seed % span));
const long = Array.from({ length: P }, tok);
let o0 = ops();
const r1 = await engine.generate({ tokens: long, maxTokens: 1, temperature: 0, stopAtEos: false }).result;
const o1 = ops();
console.log(`prefill ${P}: ${r1.timings.prefillTokensPerS.toFixed(1)} tok/s`, JSON.stringify(diff(o0, o1)));
o0 = ops();
const r2 = await engine.generate({ tokens: long.map((t) => 100 + ((t - 99) % span)), maxTokens: D, temperature: 0, stopAtEos: false }).result;
const o2 = ops();
console.log(
  `prefill+decode long: prefill ${r2.timings.prefillTokensPerS.toFixed(1)} decode ${r2.timings.decodeTokensPerS.toFixed(1)} tok/s`,
  JSON.stringify(diff(o0, o2)),
);
o0 = ops();
const r3 = await engine.generate({ tokens: [5, 6, 7, 8, 9, 10], maxTokens: D, temperature: 0, stopAtEos: false }).result;
console.log(`decode short: ${r3.timings.decodeTokensPerS.toFixed(1)} tok/s`, JSON.stringify(diff(o0, ops())));
await engine.close();
