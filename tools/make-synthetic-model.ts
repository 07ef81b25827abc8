// Writes a synthetic llama GGUF (seeded random weights, working tokenizer) of any shape and file type.
//
//   node --import tsx tools/make-synthetic-model.ts --shape tinyllama-1.1b --type f16 --seed 1 --out models/tl.gguf
//   node --import tsx tools/make-synthetic-model.ts --shape tiny --dim 96 --heads 6 --kv-heads 3 --type q8_0 --out x.gguf
//
//   node --import tsx tools/make-synthetic-model.ts --arch gemma3 --type q8_0 --seed 1 --out g3.gguf
//   node --import tsx tools/make-synthetic-model.ts --arch phi3 --vocab-from ggml-vocab-phi-3.gguf --out phi3.gguf
//
// --shape picks a llama shape preset; --arch one of tools/lib/synthetic-arch.ts's family presets (llama RoPE variants,
// mistral, qwen2, qwen3, gemma2, gemma3, phi3), whose vocabulary is synthetic (--tokenizer, --vocab) unless
// --vocab-from copies the tokenizer.* metadata of another GGUF (e.g. one of llama.cpp's vocabulary-only files).
// Shape flags override the preset's fields. Prints the parameter count, file size and time taken.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { readGgufFile } from './lib/gguf-reader.js';
import { writeGgufFile, type GgufModel } from './lib/gguf-writer.js';
import {
  ARCH_PRESETS,
  archPreset,
  MOE_PRESETS,
  archParameterCount,
  buildSyntheticArch,
  syntheticArchName,
  vocabFromGguf,
  vocabSize,
  type ArchSpec,
  type ArchVocab,
} from './lib/synthetic-arch.js';
import {
  SHAPE_PRESETS,
  SYNTHETIC_FILE_TYPES,
  buildSyntheticLlama,
  parameterCount,
  type LlamaShape,
  type SyntheticFileType,
  type SyntheticTokenizer,
} from './lib/synthetic-llama.js';

const USAGE = `usage: make-synthetic-model (--shape ${Object.keys(SHAPE_PRESETS).join('|')}
  | --arch ${[...Object.keys(ARCH_PRESETS), ...Object.keys(MOE_PRESETS)].join('|')} [--head-dim N] [--vocab-from FILE.gguf])
  [--dim N --layers N --heads N --kv-heads N --ffn N --vocab N --ctx N --rope-theta X --rms-eps X --tied|--untied]
  --type ${SYNTHETIC_FILE_TYPES.join('|')} [--tokenizer llama|gpt2] [--name NAME] [--alignment N] --seed N --out FILE`;

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
      shape: { type: 'string' },
      arch: { type: 'string' },
      'head-dim': { type: 'string' },
      'vocab-from': { type: 'string' },
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
      tokenizer: { type: 'string' },
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
  if (!SYNTHETIC_FILE_TYPES.includes(values.type as SyntheticFileType)) fail(`unknown --type '${values.type}'`);
  if (values.tokenizer !== undefined && values.tokenizer !== 'llama' && values.tokenizer !== 'gpt2') fail(`unknown --tokenizer '${values.tokenizer}'`);
  if (values.out === undefined) fail('--out is required');
  if (values.tied && values.untied) fail('--tied and --untied are exclusive');
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail(`--seed must be an integer in [0, 2^32), got '${values.seed}'`);
  if (values.arch !== undefined) {
    if (values.shape !== undefined) fail('--shape and --arch are exclusive');
    writeArch(values, seed);
    return;
  }
  if (values['head-dim'] !== undefined || values['vocab-from'] !== undefined) fail('--head-dim and --vocab-from need --arch');
  const shapeName = values.shape ?? 'tiny';
  const preset = SHAPE_PRESETS[shapeName];
  if (preset === undefined) fail(`unknown --shape '${shapeName}'`);

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
      tokenizer: values.tokenizer ?? 'llama',
      name: values.name ?? `synthetic-${shapeName}-${fileType}`,
      ...(alignment !== undefined ? { alignment } : {}),
    });
  } catch (e) {
    fail((e as Error).message);
  }
  write(values.out, model, JSON.stringify(shape), fileType, seed, parameterCount(shape));
}

type Flags = Record<string, string | boolean | undefined>;

/** A family preset (--arch), its fields overridden by the shape flags given. */
function writeArch(values: Flags, seed: number): void {
  const name = values.arch as string;
  const preset = archPreset(name);
  if (preset === undefined) fail(`unknown --arch '${name}'`);
  const str = (k: string): string | undefined => values[k] as string | undefined;
  const spec: ArchSpec = {
    ...preset.spec,
    dim: intFlag(str('dim'), 'dim') ?? preset.spec.dim,
    nLayers: intFlag(str('layers'), 'layers') ?? preset.spec.nLayers,
    nHeads: intFlag(str('heads'), 'heads') ?? preset.spec.nHeads,
    nKvHeads: intFlag(str('kv-heads'), 'kv-heads') ?? preset.spec.nKvHeads,
    headDim: intFlag(str('head-dim'), 'head-dim') ?? preset.spec.headDim,
    ffnDim: intFlag(str('ffn'), 'ffn') ?? preset.spec.ffnDim,
    contextLength: intFlag(str('ctx'), 'ctx') ?? preset.spec.contextLength,
    ropeTheta: numFlag(str('rope-theta'), 'rope-theta') ?? preset.spec.ropeTheta,
    rmsEps: numFlag(str('rms-eps'), 'rms-eps') ?? preset.spec.rmsEps,
    tiedEmbeddings: values.tied ? true : values.untied ? false : preset.spec.tiedEmbeddings,
  };
  // A head width set without --head-dim follows dim / heads when the preset's was that.
  if (str('head-dim') === undefined && preset.spec.headDim * preset.spec.nHeads === preset.spec.dim) spec.headDim = spec.dim / spec.nHeads;
  if (spec.headDim * spec.nHeads !== spec.dim) spec.writeHeadDim = true;
  let vocab: ArchVocab;
  const from = str('vocab-from');
  if (from !== undefined) {
    if (str('vocab') !== undefined || str('tokenizer') !== undefined) fail('--vocab-from excludes --vocab and --tokenizer');
    try {
      vocab = { metadata: vocabFromGguf(readGgufFile(path.resolve(from))) };
    } catch (e) {
      fail(`--vocab-from ${from}: ${(e as Error).message}`);
    }
  } else {
    const tokenizer = (str('tokenizer') ?? preset.vocab.synthetic) as SyntheticTokenizer;
    vocab = { tokenizer, nVocab: intFlag(str('vocab'), 'vocab') ?? preset.vocab.syntheticSize ?? 512 };
  }
  const fileType = values.type as SyntheticFileType;
  if (values.alignment !== undefined) fail('--alignment is not supported with --arch');
  let model: GgufModel;
  let nVocab: number;
  try {
    model = buildSyntheticArch({ spec, fileType, seed, vocab, name: str('name') ?? syntheticArchName(name, fileType, 'metadata' in vocab) });
    nVocab = 'metadata' in vocab ? vocabSize(vocab.metadata) : vocab.nVocab;
  } catch (e) {
    fail((e as Error).message);
  }
  write(values.out as string, model, `${name} ${JSON.stringify({ ...spec, nVocab })}`, fileType, seed, archParameterCount(spec, nVocab));
}

function write(outFile: string, model: GgufModel, shape: string, fileType: SyntheticFileType, seed: number, params: number): void {
  const out = path.resolve(outFile);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const t0 = performance.now();
  const layout = writeGgufFile(out, model);
  const seconds = (performance.now() - t0) / 1000;
  const mb = layout.fileSize / 1e6;
  process.stdout.write(
    `wrote ${out}\n  shape ${shape}\n  type ${fileType}, seed ${seed}, ${(params / 1e6).toFixed(2)}M parameters, ` +
      `${layout.tensors.length} tensors\n  ${mb.toFixed(1)} MB in ${seconds.toFixed(2)} s (${(mb / seconds).toFixed(0)} MB/s)\n`,
  );
}

main();
