// Writes a synthetic llama GGUF (seeded random weights, working tokenizer) of any shape and file type.
//
//   node --import tsx tools/make-synthetic-model.ts --shape tinyllama-1.1b --type f16 --seed 1 --out models/tl.gguf
//   node --import tsx tools/make-synthetic-model.ts --shape tiny --dim 96 --heads 6 --kv-heads 3 --type q8_0 --out x.gguf
//
// Shape flags override the preset's fields. Prints the parameter count, file size and time taken.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { writeGgufFile } from './lib/gguf-writer.js';
import { SHAPE_PRESETS, SYNTHETIC_FILE_TYPES, buildSyntheticLlama, parameterCount, type LlamaShape, type SyntheticFileType } from './lib/synthetic-llama.js';

const USAGE = `usage: make-synthetic-model --shape ${Object.keys(SHAPE_PRESETS).join('|')} [--dim N --layers N --heads N
  --kv-heads N --ffn N --vocab N --ctx N --rope-theta X --rms-eps X --tied|--untied] --type ${SYNTHETIC_FILE_TYPES.join('|')}
  [--tokenizer llama|gpt2] [--name NAME] [--alignment N] --seed N --out FILE`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n${USAGE}\n`);
  process.exit(2);
}

function intFlag(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) fail(`--${flag} must be a positive integer, got '${v}'`);
  return n;
}

function numFlag(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) fail(`--${flag} must be a positive number, got '${v}'`);
  return n;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: 'tiny' },
      dim: { type: 'string' },
      layers: { type: 'string' },
      heads: { type: 'string' },
      'kv-heads': { type: 'string' },
      ffn: { type: 'string' },
      vocab: { type: 'string' },
      ctx: { type: 'string' },
      'rope-theta': { type: 'string' },
      'rms-eps': { type: 'string' },
      tied: { type: 'boolean' },
      untied: { type: 'boolean' },
      type: { type: 'string', default: 'f16' },
      tokenizer: { type: 'string', default: 'llama' },
      name: { type: 'string' },
      alignment: { type: 'string' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const preset = SHAPE_PRESETS[values.shape];
  if (preset === undefined) fail(`unknown --shape '${values.shape}'`);
  if (!SYNTHETIC_FILE_TYPES.includes(values.type as SyntheticFileType)) fail(`unknown --type '${values.type}'`);
  if (values.tokenizer !== 'llama' && values.tokenizer !== 'gpt2') fail(`unknown --tokenizer '${values.tokenizer}'`);
  if (values.out === undefined) fail('--out is required');
  if (values.tied && values.untied) fail('--tied and --untied are exclusive');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`--seed must be an integer in [0, 2^32), got '${values.seed}'`);

  const shape: LlamaShape = {
    dim: intFlag(values.dim, 'dim') ?? preset.dim,
    nLayers: intFlag(values.layers, 'layers') ?? preset.nLayers,
    nHeads: intFlag(values.heads, 'heads') ?? preset.nHeads,
    nKvHeads: intFlag(values['kv-heads'], 'kv-heads') ?? preset.nKvHeads,
    ffnDim: intFlag(values.ffn, 'ffn') ?? preset.ffnDim,
    nVocab: intFlag(values.vocab, 'vocab') ?? preset.nVocab,
    contextLength: intFlag(values.ctx, 'ctx') ?? preset.contextLength,
    ropeTheta: numFlag(values['rope-theta'], 'rope-theta') ?? preset.ropeTheta,
    rmsEps: numFlag(values['rms-eps'], 'rms-eps') ?? preset.rmsEps,
    tiedEmbeddings: values.tied ? true : values.untied ? false : preset.tiedEmbeddings,
  };
  const fileType = values.type as SyntheticFileType;
  const alignment = intFlag(values.alignment, 'alignment');
  let model;
  try {
    model = buildSyntheticLlama({
      shape,
      fileType,
      seed,
      tokenizer: values.tokenizer,
      name: values.name ?? `synthetic-${values.shape}-${fileType}`,
      ...(alignment !== undefined ? { alignment } : {}),
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const out = path.resolve(values.out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const t0 = performance.now();
  const layout = writeGgufFile(out, model);
  const seconds = (performance.now() - t0) / 1000;
  const params = parameterCount(shape);
  const mb = layout.fileSize / 1e6;
  process.stdout.write(
    `wrote ${out}\n  shape ${JSON.stringify(shape)}\n  type ${fileType}, seed ${seed}, ${(params / 1e6).toFixed(2)}M parameters, ` +
      `${layout.tensors.length} tensors\n  ${mb.toFixed(1)} MB in ${seconds.toFixed(2)} s (${(mb / seconds).toFixed(0)} MB/s)\n`,
  );
}

main();
