// Loads the trained deepseek2 GGUF in node-llama-cpp (the pinned 3.21.1, CPU), scores the committed validation slice
// with the engine's windowing (tests/helpers/llama-cpp.ts, LlamaCppOracle.perplexity) and compares it with the PyTorch
// figure recorded in the eval JSON; prints greedy text after "ROMEO:".
//
//   npx tsx tools/train-deepseek-model/verify.mts [MODEL.gguf] [EVAL.json] [SLICE.txt] [OUT.json]
import { readFileSync, writeFileSync } from 'node:fs';
import { LlamaCppOracle } from '../../tests/helpers/llama-cpp.ts';

const [model = 'models/tuneloop-deepseek-tiny.gguf', evalPath = 'models/tuneloop-deepseek-tiny.eval.json',
  slicePath = 'models/validation-slice.txt', outPath] = process.argv.slice(2);
const ev = JSON.parse(readFileSync(evalPath, 'utf8'));
const text = readFileSync(slicePath, 'utf8');
const t0 = performance.now();
const o = await LlamaCppOracle.load(model, { threads: 2 });
const toks = o.tokenize(text, { addBos: true });
const ppl = await o.perplexity(toks, { window: ev.context_length });
const ref = ev.slice.framework_file_weights;
const rel = ppl.perplexity / ref.perplexity - 1;
const prompt = o.tokenize('ROMEO:', { addBos: true });
const greedy = await o.decode(prompt, 80);
const greedyText = o.model.detokenize(greedy.tokens.map((t) => t as never));
const res = {
  model, slice_tokens_with_bos: toks.length, expected_tokens_with_bos: ev.slice.tokens_with_bos,
  llama_cpp: ppl, pytorch_file_weights: ref, relative_difference: rel,
  greedy_prompt: 'ROMEO:', greedy_llama_cpp: greedyText, seconds: (performance.now() - t0) / 1000,
};
console.log(JSON.stringify(res, null, 2));
if (outPath) writeFileSync(outPath, JSON.stringify(res, null, 2) + '\n');
await o.close();
