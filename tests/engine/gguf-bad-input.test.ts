// Malformed models and requests: each must fail with the right EngineError code and a message that says what is
// wrong (names the file, key, tensor or field), never crash or load garbage.
//
// Every malformed file is a small valid synthetic model with one defect, and the first test checks that the
// unmodified model loads: otherwise every "rejects" test below would pass for the wrong reason.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Engine, EngineError, type EngineErrorCode, type EngineOptions, type GenerateRequest } from '../../src/engine/index.js';
import { GGML_TYPE, encodeGguf, gv, type GgufLayout, type GgufValue } from '../../tools/lib/gguf-writer.js';
import { buildSyntheticLlama, type EditableGgufModel, type LlamaShape } from '../../tools/lib/synthetic-llama.js';

const SHAPE: LlamaShape = {
  dim: 32,
  nLayers: 1,
  nHeads: 2,
  nKvHeads: 1,
  ffnDim: 64,
  nVocab: 270,
  contextLength: 32,
  ropeTheta: 10000,
  rmsEps: 1e-5,
  tiedEmbeddings: false,
};

let tmpDir = '';
let validPath = '';
let validBytes: Buffer;
let validLayout: GgufLayout;

function model(edit?: (m: EditableGgufModel) => void): EditableGgufModel {
  const m = buildSyntheticLlama({ shape: SHAPE, fileType: 'f32', seed: 7 });
  edit?.(m);
  return m;
}

function writeBytes(name: string, bytes: Uint8Array): string {
  const p = path.join(tmpDir, name);
  fs.writeFileSync(p, bytes);
  return p;
}

function writeModel(name: string, edit: (m: EditableGgufModel) => void): string {
  return writeBytes(name, encodeGguf(model(edit)).bytes);
}

function setMeta(m: EditableGgufModel, key: string, value: GgufValue): void {
  const i = m.metadata.findIndex(([k]) => k === key);
  if (i < 0) throw new Error(`test bug: no metadata ${key}`);
  m.metadata[i] = [key, value];
}

function tensor(m: EditableGgufModel, name: string): EditableGgufModel['tensors'][number] {
  const t = m.tensors.find((x) => x.name === name);
  if (t === undefined) throw new Error(`test bug: no tensor ${name}`);
  return t;
}

/** Checks `err` is an EngineError with `code` whose message mentions each of `mentions`. */
function expectEngineError(err: unknown, code: EngineErrorCode, mentions: (string | RegExp)[]): void {
  expect(err, 'expected an EngineError, got none').toBeDefined();
  expect(err, `expected an EngineError, got ${String(err)}`).toBeInstanceOf(EngineError);
  const e = err as EngineError;
  expect({ code: e.code, message: e.message }).toMatchObject({ code });
  expect(e.message.length).toBeGreaterThan(0);
  for (const m of mentions) {
    if (typeof m === 'string') expect(e.message).toContain(m);
    else expect(e.message).toMatch(m);
  }
}

async function loadError(options: EngineOptions): Promise<unknown> {
  try {
    const e = await Engine.load({ threads: 1, ...options });
    await e.close();
  } catch (err) {
    return err;
  }
  return undefined;
}

/** The error of a generation, whether generate() throws at once or the generation fails later. */
async function generationError(e: Engine, req: GenerateRequest): Promise<unknown> {
  let g;
  try {
    g = e.generate(req);
  } catch (err) {
    return err;
  }
  try {
    for await (const chunk of g) void chunk;
    await g.result;
  } catch (err) {
    return err;
  }
  return undefined;
}

beforeAll(() => {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-badinput-'));
  ({ bytes: validBytes, layout: validLayout } = encodeGguf(model()));
  validPath = writeBytes('valid.gguf', validBytes);
});
afterAll(() => {
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
});

describe('control', () => {
  it('the unmodified model loads and evaluates', async () => {
    const e = await Engine.load({ model: validPath, threads: 1 });
    try {
      expect(e.info.nVocab).toBe(SHAPE.nVocab);
      const logits = await e.evaluate([1, 100, 200], { allLogits: true });
      expect(logits.length).toBe(3 * SHAPE.nVocab);
      expect(logits.every(Number.isFinite)).toBe(true);
    } finally {
      await e.close();
    }
  });
});

describe('unreadable files', () => {
  it('a missing file is MODEL_NOT_FOUND, naming the path', async () => {
    const p = path.join(tmpDir, 'no-such-model.gguf');
    expectEngineError(await loadError({ model: p }), 'MODEL_NOT_FOUND', [p]);
  });

  it('a directory is MODEL_NOT_FOUND', async () => {
    expectEngineError(await loadError({ model: tmpDir }), 'MODEL_NOT_FOUND', [tmpDir]);
  });

  it('an empty file is MODEL_CORRUPT', async () => {
    const p = writeBytes('empty.gguf', new Uint8Array(0));
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [p]);
  });

  it('a wrong magic is MODEL_CORRUPT, saying so', async () => {
    const b = Buffer.from(validBytes);
    b.write('GGML', 0, 'latin1');
    const p = writeBytes('magic.gguf', b);
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [p, /magic|not a gguf/i]);
  });

  it('an unknown GGUF version is MODEL_CORRUPT, naming it', async () => {
    const b = Buffer.from(validBytes);
    b.writeUInt32LE(7, 4);
    const p = writeBytes('version.gguf', b);
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [p, /version/i, '7']);
  });
});

describe('truncated files are MODEL_CORRUPT', () => {
  // Cut points in every section; computed from the writer's layout of the valid file.
  const cuts: [string, () => number][] = [
    ['inside the magic', () => 2],
    ['inside the header counts', () => 20],
    ['right after the header', () => validLayout.headerEnd],
    ['inside the first metadata key', () => validLayout.headerEnd + 5],
    ['inside the vocabulary array', () => kvOf('tokenizer.ggml.tokens').valueStart + 100],
    ['inside the last metadata value', () => validLayout.metadataEnd - 1],
    ['inside the first tensor info', () => validLayout.metadataEnd + 6],
    ['inside a middle tensor info', () => validLayout.tensorInfos[4]!.end - 3],
    ['at the start of the tensor data', () => validLayout.dataStart],
    ['inside the first tensor', () => validLayout.dataStart + 100],
    ['inside the last tensor', () => validLayout.fileSize - validLayout.tensors.at(-1)!.nBytes / 2],
  ];
  function kvOf(key: string): GgufLayout['kv'][number] {
    const kv = validLayout.kv.find((k) => k.key === key);
    if (kv === undefined) throw new Error(`test bug: no ${key}`);
    return kv;
  }

  it.each(cuts)('truncated %s', async (_where, at) => {
    const cut = at();
    expect(cut).toBeLessThan(validBytes.length);
    const p = writeBytes(`trunc-${cut}.gguf`, validBytes.subarray(0, cut));
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [p, /truncat|too short|exceed|beyond|end of (the )?file/i]);
  });

  it('a cut inside tensor data names the tensor', async () => {
    const last = validLayout.tensors.at(-1)!;
    const p = writeBytes('trunc-data-named.gguf', validBytes.subarray(0, last.absOffset + 8));
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [last.name]);
  });
});

describe('unsupported content', () => {
  it('general.architecture = mamba is UNSUPPORTED_ARCHITECTURE, naming it', async () => {
    const p = writeModel('mamba.gguf', (m) => setMeta(m, 'general.architecture', gv.str('mamba')));
    expectEngineError(await loadError({ model: p }), 'UNSUPPORTED_ARCHITECTURE', ['mamba']);
  });

  it('an unknown tokenizer model is UNSUPPORTED_ARCHITECTURE, naming it', async () => {
    const p = writeModel('tokenizer.gguf', (m) => setMeta(m, 'tokenizer.ggml.model', gv.str('wordpiece-x')));
    expectEngineError(await loadError({ model: p }), 'UNSUPPORTED_ARCHITECTURE', ['wordpiece-x']);
  });

  // (Q4_1, once refused here, is one of the types the engine runs now: gguf-types.test.ts.)
  it('a tensor of a type the engine cannot run (f64, ggml type 28) is UNSUPPORTED_TENSOR_TYPE, naming the tensor and the type', async () => {
    const p = writeModel('f64.gguf', (m) => {
      const t = tensor(m, 'blk.0.ffn_up.weight');
      t.type = GGML_TYPE.F64;
      t.data = () => [new Uint8Array(SHAPE.dim * SHAPE.ffnDim * 8)];
    });
    expectEngineError(await loadError({ model: p }), 'UNSUPPORTED_TENSOR_TYPE', ['blk.0.ffn_up.weight', 'f64', 'id 28']);
  });

  it('a tensor of an unknown ggml type id (99) is UNSUPPORTED_TENSOR_TYPE, naming the tensor and the id', async () => {
    const p = writeModel('type99.gguf', (m) => {
      const t = tensor(m, 'blk.0.attn_q.weight');
      t.type = 99;
      t.nBytes = 1024;
      t.data = () => [new Uint8Array(1024)];
    });
    expectEngineError(await loadError({ model: p }), 'UNSUPPORTED_TENSOR_TYPE', ['blk.0.attn_q.weight', 'id 99']);
  });
});

describe('hostile blocks are MODEL_CORRUPT, naming the tensor', () => {
  // A q4_K model needs rows of 256: its own small shape.
  const K_SHAPE: LlamaShape = { ...SHAPE, dim: 256, nHeads: 2, nKvHeads: 1, ffnDim: 256 };
  const kModel = (): EditableGgufModel => buildSyntheticLlama({ shape: K_SHAPE, fileType: 'q4_k', seed: 7 });
  /** The valid bytes of `m` with `patch` applied at tensor `name`'s data (offset relative to its first byte). */
  function patched(m: EditableGgufModel, name: string, patch: (b: Buffer, at: number) => void): Buffer {
    const { bytes, layout } = encodeGguf(m);
    const t = layout.tensors.find((x) => x.name === name);
    if (t === undefined) throw new Error(`test bug: no ${name}`);
    const b = Buffer.from(bytes);
    patch(b, t.absOffset);
    return b;
  }

  it('the unmodified q4_K model loads', async () => {
    const p = writeBytes('q4k-valid.gguf', encodeGguf(kModel()).bytes);
    const e = await Engine.load({ model: p, threads: 1 });
    try {
      expect(e.info.weightBytes.q4_K).toBeGreaterThan(0);
    } finally {
      await e.close();
    }
  });

  it('a q4_K tensor whose rows (32) are not whole blocks of 256, naming the block size', async () => {
    const p = writeModel('ragged-q4k.gguf', (m) => {
      const t = tensor(m, 'blk.0.ffn_up.weight');
      t.type = GGML_TYPE.Q4_K;
      t.nBytes = 144 * SHAPE.ffnDim;
      t.data = () => [new Uint8Array(144 * SHAPE.ffnDim)];
    });
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', ['blk.0.ffn_up.weight', 'q4_K', '256']);
  });

  it.each([
    ['native', 'NaN'],
    ['f32', 'NaN'],
    ['int4', 'Inf'],
  ] as const)('weights %s: a q8_0 block with a %s scale, the block named', async (weights, kind) => {
    const m = buildSyntheticLlama({ shape: SHAPE, fileType: 'q8_0', seed: 7 });
    // Block 3 of the tensor: d (f16) at its first two bytes. 0x7e00 is a NaN, 0x7c00 +Inf.
    const b = patched(m, 'blk.0.attn_q.weight', (buf, at) => buf.writeUInt16LE(kind === 'NaN' ? 0x7e00 : 0x7c00, at + 3 * 34));
    const p = writeBytes(`q8-${kind}-${weights}.gguf`, b);
    expectEngineError(await loadError({ model: p, weights }), 'MODEL_CORRUPT', ['blk.0.attn_q.weight', `q8_0 block 3: d is ${kind}`]);
  });

  it('a q4_K block with an Inf dmin', async () => {
    const b = patched(kModel(), 'blk.0.ffn_gate.weight', (buf, at) => buf.writeUInt16LE(0xfc00, at + 144 + 2));
    const p = writeBytes('q4k-inf-dmin.gguf', b);
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', ['blk.0.ffn_gate.weight', 'q4_K block 1: dmin is Inf']);
  });

  it('an Inf element in an f32 matrix, and a NaN in a norm vector', async () => {
    const inf = patched(model(), 'blk.0.attn_k.weight', (buf, at) => buf.writeFloatLE(Infinity, at + 40));
    expectEngineError(await loadError({ model: writeBytes('f32-inf.gguf', inf) }), 'MODEL_CORRUPT', ['blk.0.attn_k.weight', /Inf/]);
    const nan = patched(model(), 'blk.0.ffn_norm.weight', (buf, at) => buf.writeFloatLE(NaN, at + 8));
    expectEngineError(await loadError({ model: writeBytes('f32-nan-norm.gguf', nan) }), 'MODEL_CORRUPT', ['blk.0.ffn_norm.weight', /non-finite/]);
  });

  it('a q4_K file cut inside its last tensor', async () => {
    const { bytes, layout } = encodeGguf(kModel());
    const last = layout.tensors.at(-1)!;
    const p = writeBytes('q4k-trunc.gguf', bytes.subarray(0, last.absOffset + 100));
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [last.name, /beyond the end|truncat/]);
  });
});

describe('inconsistent models are MODEL_CORRUPT', () => {
  it.each(['blk.0.attn_k.weight', 'output_norm.weight', 'token_embd.weight', 'blk.0.ffn_down.weight'])('missing required tensor %s', async (name) => {
    const p = writeModel(`missing-${name}.gguf`, (m) => {
      m.tensors = m.tensors.filter((t) => t.name !== name);
    });
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [name]);
  });

  it('a tensor whose shape disagrees with the metadata (ffn_gate rows != feed_forward_length)', async () => {
    const p = writeModel('shape-ffn.gguf', (m) => {
      const t = tensor(m, 'blk.0.ffn_gate.weight');
      t.ne = [SHAPE.dim, SHAPE.ffnDim + 32];
      const n = SHAPE.dim * (SHAPE.ffnDim + 32);
      t.data = () => [new Float32Array(n).fill(0.01)];
    });
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', ['blk.0.ffn_gate.weight']);
  });

  it('a transposed attention matrix (attn_k as [kvDim, dim])', async () => {
    const p = writeModel('shape-transposed.gguf', (m) => {
      const t = tensor(m, 'blk.0.attn_k.weight');
      t.ne = [t.ne[1]!, t.ne[0]!];
    });
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', ['blk.0.attn_k.weight']);
  });

  it('embedding_length that no tensor has', async () => {
    const p = writeModel('meta-dim.gguf', (m) => setMeta(m, 'llama.embedding_length', gv.u32(SHAPE.dim * 2)));
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [/\.weight|embedding_length/]);
  });

  it('a tokenizer with more tokens than token_embd has rows', async () => {
    // (Fewer tokens than rows is legal: padded embedding matrices exist in real models.)
    const p = writeModel('meta-vocab.gguf', (m) => {
      const extra = Array.from({ length: 10 }, (_, i) => `extra${i}`);
      const grow = (key: string, items: readonly (string | number)[]): void => {
        const v = m.metadata.find(([k]) => k === key)![1];
        if (v.type !== 'array' || v.itemType === 'array') throw new Error('test bug');
        setMeta(m, key, gv.arr(v.itemType, [...v.items, ...items]));
      };
      // Tokens, scores and types grow together so that the tokenizer itself stays consistent.
      grow('tokenizer.ggml.tokens', extra);
      grow(
        'tokenizer.ggml.scores',
        extra.map(() => -1000),
      );
      grow(
        'tokenizer.ggml.token_type',
        extra.map(() => 1),
      );
    });
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [/token_embd|vocab/i]);
  });

  it('head_count_kv that does not divide head_count', async () => {
    const p = writeModel('meta-kvheads.gguf', (m) => setMeta(m, 'llama.attention.head_count_kv', gv.u32(3)));
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [/head/]);
  });

  it('a required metadata key of the wrong type (block_count as a string)', async () => {
    const p = writeModel('meta-type.gguf', (m) => setMeta(m, 'llama.block_count', gv.str('one')));
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', ['llama.block_count']);
  });

  it('a missing required metadata key (llama.embedding_length)', async () => {
    const p = writeModel('meta-missing.gguf', (m) => {
      m.metadata = m.metadata.filter(([k]) => k !== 'llama.embedding_length');
    });
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', ['llama.embedding_length']);
  });

  it('a tensor offset that is not aligned', async () => {
    const b = Buffer.from(validBytes);
    const info = validLayout.tensorInfos[2]!;
    b.writeBigUInt64LE(BigInt(validLayout.tensors[2]!.offset + 4), info.end - 8); // the offset is the info's last u64
    const p = writeBytes('unaligned.gguf', b);
    expectEngineError(await loadError({ model: p }), 'MODEL_CORRUPT', [info.name]);
  });
});

describe('invalid options and requests', () => {
  let e: Engine;
  beforeAll(async () => {
    e = await Engine.load({ model: validPath, threads: 1, contextLength: 16 });
  });
  afterAll(async () => {
    await e?.close();
  });

  it('an unknown weights policy is INVALID_ARGUMENT', async () => {
    expectEngineError(await loadError({ model: validPath, weights: 'fp8' as never }), 'INVALID_ARGUMENT', ['weights']);
  });

  it('contextLength above the model maximum is INVALID_ARGUMENT naming both numbers', async () => {
    expectEngineError(await loadError({ model: validPath, contextLength: SHAPE.contextLength * 4 }), 'INVALID_ARGUMENT', [
      'contextLength',
      String(SHAPE.contextLength * 4),
      String(SHAPE.contextLength),
    ]);
  });

  it('contextLength 1 or fractional is INVALID_ARGUMENT', async () => {
    expectEngineError(await loadError({ model: validPath, contextLength: 1 }), 'INVALID_ARGUMENT', ['contextLength']);
    expectEngineError(await loadError({ model: validPath, contextLength: 8.5 }), 'INVALID_ARGUMENT', ['contextLength']);
  });

  it('a prompt (token ids) longer than the context is CONTEXT_OVERFLOW', async () => {
    const tokens = Array.from({ length: 20 }, (_, i) => 3 + i);
    expectEngineError(await generationError(e, { tokens, maxTokens: 1 }), 'CONTEXT_OVERFLOW', [/20/, /16/]);
  });

  it('a text prompt longer than the context is CONTEXT_OVERFLOW', async () => {
    const prompt = 'hello world once upon a time '.repeat(8);
    expect(e.tokenize(prompt).length).toBeGreaterThan(16); // the premise of the test
    expectEngineError(await generationError(e, { prompt, maxTokens: 1 }), 'CONTEXT_OVERFLOW', [/context/i]);
  });

  it('evaluate() of more tokens than the context is CONTEXT_OVERFLOW', async () => {
    const tokens = Array.from({ length: 17 }, (_, i) => 3 + i);
    let err: unknown;
    try {
      await e.evaluate(tokens, { allLogits: true });
    } catch (x) {
      err = x;
    }
    expectEngineError(err, 'CONTEXT_OVERFLOW', [/17/]);
  });

  it('a prompt that exactly fills the context is accepted', async () => {
    // The boundary: CONTEXT_OVERFLOW must not fire one token early.
    const tokens = Array.from({ length: 16 }, (_, i) => 3 + i);
    const logits = await e.evaluate(tokens);
    expect(logits.length).toBe(SHAPE.nVocab);
  });

  const badRequests: [string, GenerateRequest, (string | RegExp)[]][] = [
    ['temperature NaN', { prompt: 'hi', temperature: NaN }, ['temperature']],
    ['temperature Infinity', { prompt: 'hi', temperature: Infinity }, ['temperature']],
    ['temperature negative', { prompt: 'hi', temperature: -0.5 }, ['temperature']],
    ['maxTokens negative', { prompt: 'hi', maxTokens: -1 }, ['maxTokens']],
    ['maxTokens fractional', { prompt: 'hi', maxTokens: 2.5 }, ['maxTokens']],
    ['both prompt and tokens', { prompt: 'hi', tokens: [1, 2] }, ['prompt', 'tokens']],
    ['neither prompt nor tokens', { maxTokens: 2 }, ['prompt', 'tokens']],
    ['a token id past the vocabulary', { tokens: [1, SHAPE.nVocab] }, ['tokens[1]']],
    ['topP 0', { prompt: 'hi', topP: 0 }, ['topP']],
  ];
  it.each(badRequests)('%s is INVALID_ARGUMENT', async (_label, req, mentions) => {
    expectEngineError(await generationError(e, req), 'INVALID_ARGUMENT', mentions);
  });

  it('a valid request on the same engine still works after the rejected ones', async () => {
    const g = e.generate({ tokens: [1, 5, 9], maxTokens: 3, temperature: 0, stopAtEos: false });
    const r = await g.result;
    expect(r.tokens).toHaveLength(3);
  });
});
