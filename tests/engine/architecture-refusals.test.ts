// What the model families refuse at load rather than run with part of the file ignored (native/src/model_loader.cpp:
// refuse_unknown_keys and load_decoder's check that every tensor is read): a metadata key under the architecture's
// prefix that it does not implement, a tensor it does not read, key and value heads of different widths, an unknown
// RoPE scaling type. Each refusal names what it refuses; the unmodified file of each family loads (otherwise every
// refusal below could pass for the wrong reason). Synthetic vocabularies: the refusals are about the weights.
import { afterAll, describe, expect, it } from 'vitest';

import { Engine, EngineError, type EngineErrorCode } from '../../src/engine/index.js';
import { GGML_TYPE, gv, type GgufValue } from '../../tools/lib/gguf-writer.js';
import type { EditableGgufModel } from '../../tools/lib/synthetic-llama.js';
import { ArchModels } from '../helpers/arch-models.js';

const models = new ArchModels();
afterAll(() => models.cleanup());

async function loadError(file: string): Promise<unknown> {
  try {
    const e = await Engine.load({ model: file, threads: 1, contextLength: 128 });
    await e.close();
  } catch (err) {
    return err;
  }
  return undefined;
}

function expectRefusal(err: unknown, code: EngineErrorCode, mentions: string[]): void {
  expect(err, 'expected an EngineError, got none').toBeInstanceOf(EngineError);
  const e = err as EngineError;
  expect(e.code, e.message).toBe(code);
  for (const m of mentions) expect(e.message).toContain(m);
}

function setKey(key: string, value: GgufValue): (m: EditableGgufModel) => void {
  return (m) => {
    const i = m.metadata.findIndex(([k]) => k === key);
    if (i >= 0) m.metadata[i] = [key, value];
    else m.metadata.push([key, value]);
  };
}

function addVector(name: string, n: number): (m: EditableGgufModel) => void {
  return (m) => {
    m.tensors.push({ name, ne: [n], type: GGML_TYPE.F32, data: () => [new Float32Array(n).fill(0.5)] });
  };
}

const write = (preset: string, edit?: (m: EditableGgufModel) => void): string => models.write(preset, { real: false, fileType: 'f32', edit }).file;

describe.each(['llama3.1', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'phi3'])('%s', (preset) => {
  it('the unmodified file loads', async () => {
    expect(await loadError(write(preset))).toBeUndefined();
  });
});

describe('refused at load, naming what', () => {
  it('a metadata key the architecture does not implement (llama.logit_scale)', async () => {
    expectRefusal(await loadError(write('mistral', setKey('llama.logit_scale', gv.f32(0.5)))), 'UNSUPPORTED_ARCHITECTURE', ["'llama.logit_scale'", 'does not implement']);
  });

  it('a key another family reads but this one does not (qwen3.attention.sliding_window)', async () => {
    expectRefusal(await loadError(write('qwen3', setKey('qwen3.attention.sliding_window', gv.u32(16)))), 'UNSUPPORTED_ARCHITECTURE', [
      "'qwen3.attention.sliding_window'",
    ]);
  });

  it('a mixture of experts in a llama file (expert_count 8); an expert count of 0 is a dense model and loads', async () => {
    expectRefusal(await loadError(write('mistral', setKey('llama.expert_count', gv.u32(8)))), 'UNSUPPORTED_ARCHITECTURE', ["'llama.expert_count'"]);
    expect(await loadError(write('mistral', setKey('llama.expert_count', gv.u32(0))))).toBeUndefined();
  });

  it('a tensor the architecture does not read (an attn_output bias on llama, a rope_freqs on qwen2)', async () => {
    expectRefusal(await loadError(write('mistral', addVector('blk.0.attn_output.bias', 128))), 'UNSUPPORTED_ARCHITECTURE', ["'blk.0.attn_output.bias'"]);
    expectRefusal(await loadError(write('qwen2', addVector('rope_freqs.weight', 16))), 'UNSUPPORTED_ARCHITECTURE', ["'rope_freqs.weight'"]);
  });

  it('an unknown RoPE scaling type', async () => {
    expectRefusal(await loadError(write('mistral', setKey('llama.rope.scaling.type', gv.str('su')))), 'UNSUPPORTED_ARCHITECTURE', ["'su'", 'rope.scaling.type']);
  });

  it('value heads of another width than key heads', async () => {
    expectRefusal(await loadError(write('qwen3', setKey('qwen3.attention.value_length', gv.u32(16)))), 'UNSUPPORTED_ARCHITECTURE', ['value_length 16']);
  });

  it('partial rotary on llama (llama.cpp asserts whole heads there)', async () => {
    expectRefusal(await loadError(write('mistral', setKey('llama.rope.dimension_count', gv.u32(8)))), 'MODEL_CORRUPT', ['rope.dimension_count 8']);
  });
});
