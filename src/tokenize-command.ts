// `tuneloop tokenize --model FILE (--text T | --file F)`: the token ids of a text under a GGUF's vocabulary, as
// llama.cpp's `llama-tokenize` prints them. Only the tokenizer metadata is read (VocabTokenizer), so vocabulary-only
// files (llama.cpp's ggml-vocab-*.gguf, tools/hf-vocab-to-gguf.ts output) work as well as full models.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EngineError, VocabTokenizer } from './engine/index.js';

export const TOKENIZE_USAGE = `usage:
  tuneloop tokenize --model FILE.gguf (--text TEXT | --file FILE|-) [--no-bos] [--special] [--json]
      token ids of the text (one line, space-separated); BOS as the file's add_bos_token says unless --no-bos;
      --special turns control-token text (<|im_end|>, ...) into the tokens (default: plain text);
      --json prints {model, pre, ids, pieces} with each token's text and vocabulary entry
`;

export interface TokenizeJson {
  file: string;
  model: string;
  pre: string;
  addBos: boolean;
  count: number;
  ids: number[];
  /** Per token: its id, its text alone (a byte-level piece of a multi-byte character decodes to U+FFFD) and its raw
   *  vocabulary entry (byte-level BPE: the byte-mapped form, e.g. "Ġworld"). */
  pieces: { id: number; text: string; vocab: string }[];
}

function readText(values: { text?: string | undefined; file?: string | undefined }): string {
  if ((values.text === undefined) === (values.file === undefined)) {
    throw new EngineError('INVALID_ARGUMENT', 'tokenize needs exactly one of --text and --file');
  }
  if (values.text !== undefined) return values.text;
  const file = values.file!;
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new EngineError('INVALID_ARGUMENT', `cannot read --file ${file}: ${(e as Error).message}`);
  }
}

/** `tuneloop tokenize`: 0 on success; EngineError (exit 2 in main) for a bad file or arguments. */
export function tokenizeCommand(argv: string[], write: (s: string) => void = (s) => process.stdout.write(s)): number {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      text: { type: 'string' },
      file: { type: 'string' },
      'no-bos': { type: 'boolean', default: false },
      special: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length > 0) throw new EngineError('INVALID_ARGUMENT', `tokenize takes no positional arguments (got '${positionals[0]}'): use --text or --file`);
  if (values.model === undefined) throw new EngineError('INVALID_ARGUMENT', 'tokenize needs --model FILE.gguf');
  const text = readText(values);
  const tokenizer = VocabTokenizer.load(values.model);
  const addBos = values['no-bos'] ? false : tokenizer.info.addBos;
  const ids = tokenizer.tokenize(text, addBos, { parseSpecial: values.special });
  if (!values.json) {
    write(`${ids.join(' ')}\n`);
    return 0;
  }
  const out: TokenizeJson = {
    file: values.model,
    model: tokenizer.info.model,
    pre: tokenizer.info.pre,
    addBos,
    count: ids.length,
    ids,
    pieces: ids.map((id) => ({ id, text: tokenizer.detokenize([id]), vocab: tokenizer.tokenText(id) })),
  };
  write(`${JSON.stringify(out, null, 2)}\n`);
  return 0;
}
