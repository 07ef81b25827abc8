// Hostile or inconsistent Mixture-of-Experts files (native/src/moe.cpp read_moe_hparams / plan_moe_layer,
// models/qwen3moe.cpp): each is refused at load with an EngineError naming the key or tensor, never run with a part
// ignored and never a crash. The unmodified file loads, so that every refusal below is about its edit.
import { afterAll, describe, expect, it } from 'vitest';

import { Engine, EngineError, type EngineErrorCode } from '../../src/engine/index.js';
import { GGML_TYPE, gv, type GgufValue } from '../../tools/lib/gguf-writer.js';
import type { EditableGgufModel } from '../../tools/lib/synthetic-llama.js';
import { ArchModels } from '../helpers/arch-models.js';

const models = new ArchModels();
afterAll(() => models.cleanup());

async function loadError(file: string, options: Record<string, unknown> = {}): Promise<unknown> {
  try {
    const e = await Engine.load({ model: file, threads: 2, threadsPerRank: 1, contextLength: 128, ...options });
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

const dropTensor =
  (name: string) =>
  (m: EditableGgufModel): void => {
    m.tensors = m.tensors.filter((t) => t.name !== name);
  };

/** Replace a tensor by one of another shape (zeros of the same type family: f32). */
const reshapeTensor =
  (name: string, ne: number[]) =>
  (m: EditableGgufModel): void => {
    const i = m.tensors.findIndex((t) => t.name === name);
    const n = ne.reduce((a, b) => a * b, 1);
    m.tensors[i] = { name, ne, type: GGML_TYPE.F32, data: () => [new Float32Array(n).fill(0.01)] };
  };

const write = (edit?: (m: EditableGgufModel) => void): string => models.write('qwen3moe', { real: false, fileType: 'f16', edit }).file;

describe('qwen3moe', () => {
  it('the unmodified file loads', async () => {
    expect(await loadError(write())).toBeUndefined();
  });

  it.each([
    ['expert_used_count above expert_count', setKey('qwen3moe.expert_used_count', gv.u32(17)), 'MODEL_CORRUPT', ["'qwen3moe.expert_used_count' = 17", 'expert_count']],
    ['expert_used_count 0', setKey('qwen3moe.expert_used_count', gv.u32(0)), 'MODEL_CORRUPT', ["'qwen3moe.expert_used_count' = 0"]],
    [
      'a per-layer expert_used_count array',
      setKey('qwen3moe.expert_used_count', gv.arr('uint32', [4, 2])),
      'UNSUPPORTED_ARCHITECTURE',
      ["'qwen3moe.expert_used_count'", 'per-layer array'],
    ],
    ['expert_count 0 (a qwen3moe has experts)', setKey('qwen3moe.expert_count', gv.u32(0)), 'MODEL_CORRUPT', ["'qwen3moe.expert_count'"]],
    // The file's tensors hold 16 experts: the counts disagree with their shapes.
    [
      'expert_count that disagrees with the tensors (8 of 16)',
      setKey('qwen3moe.expert_count', gv.u32(8)),
      'MODEL_CORRUPT',
      ["'blk.0.ffn_gate_inp.weight'", '[128, 16]', 'expected [128, 8]'],
    ],
    [
      'expert_feed_forward_length that disagrees with the tensors',
      setKey('qwen3moe.expert_feed_forward_length', gv.u32(32)),
      'MODEL_CORRUPT',
      ["'blk.0.ffn_gate_exps.weight'", 'expected [128, 32, 16]'],
    ],
    ['a missing router', dropTensor('blk.1.ffn_gate_inp.weight'), 'MODEL_CORRUPT', ["'blk.1.ffn_gate_inp.weight' is missing"]],
    ['a missing expert tensor', dropTensor('blk.0.ffn_down_exps.weight'), 'MODEL_CORRUPT', ["'blk.0.ffn_down_exps.weight' is missing"]],
    [
      'a 3-D expert tensor with the wrong ne (2-D)',
      reshapeTensor('blk.0.ffn_up_exps.weight', [128, 64 * 16]),
      'MODEL_CORRUPT',
      ["'blk.0.ffn_up_exps.weight'", '[128, 1024]', 'expected [128, 64, 16]'],
    ],
    [
      'a 3-D expert tensor with ne transposed',
      reshapeTensor('blk.1.ffn_down_exps.weight', [128, 64, 16]),
      'MODEL_CORRUPT',
      ["'blk.1.ffn_down_exps.weight'", 'expected [64, 128, 16]'],
    ],
    ['a router of the wrong width', reshapeTensor('blk.0.ffn_gate_inp.weight', [64, 16]), 'MODEL_CORRUPT', ["'blk.0.ffn_gate_inp.weight'"]],
    [
      'shared experts declared (llama.cpp qwen3moe ignores them)',
      setKey('qwen3moe.expert_shared_count', gv.u32(2)),
      'UNSUPPORTED_ARCHITECTURE',
      ["'qwen3moe.expert_shared_count'"],
    ],
    ['a DeepSeek routing key (expert_gating_func)', setKey('qwen3moe.expert_gating_func', gv.u32(2)), 'UNSUPPORTED_ARCHITECTURE', ["'qwen3moe.expert_gating_func'"]],
    [
      'groups that do not divide the experts',
      (m: EditableGgufModel) => (setKey('qwen3moe.expert_group_count', gv.u32(3))(m), setKey('qwen3moe.expert_group_used_count', gv.u32(1))(m)),
      'MODEL_CORRUPT',
      ["'qwen3moe.expert_group_count' = 3"],
    ],
    ['a group count without used groups', setKey('qwen3moe.expert_group_count', gv.u32(4)), 'MODEL_CORRUPT', ["'qwen3moe.expert_group_used_count' = 0"]],
    [
      'a selection bias qwen3moe does not read',
      (m: EditableGgufModel) => m.tensors.push({ name: 'blk.0.exp_probs_b.bias', ne: [16], type: GGML_TYPE.F32, data: () => [new Float32Array(16)] }),
      'UNSUPPORTED_ARCHITECTURE',
      ["'blk.0.exp_probs_b.bias'"],
    ],
    [
      'a leftover dense FFN tensor',
      (m: EditableGgufModel) => m.tensors.push({ name: 'blk.0.ffn_gate.weight', ne: [128, 384], type: GGML_TYPE.F32, data: () => [new Float32Array(128 * 384)] }),
      'UNSUPPORTED_ARCHITECTURE',
      ["'blk.0.ffn_gate.weight'"],
    ],
  ] as const)('refuses %s', async (_label, edit, code, mentions) => {
    expectRefusal(await loadError(write(edit)), code, [...mentions]);
  });

  it('a non-finite expert weight names the tensor and the expert matrix', async () => {
    const file = write((m) => {
      const t = m.tensors.find((x) => x.name === 'blk.1.ffn_up_exps.weight')!;
      const n = t.ne.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n).fill(0.01);
      data[5 * 64 * 128 + 3] = Number.NaN; // expert 5
      m.tensors[m.tensors.indexOf(t)] = { name: t.name, ne: t.ne, type: GGML_TYPE.F32, data: () => [data] };
    });
    expectRefusal(await loadError(file), 'MODEL_CORRUPT', ["'blk.1.ffn_up_exps.weight'", 'non-finite', 'of matrix 5']);
  });

  it.each([
    ['epDegree beside a tpDegree other than 1 or itself', { epDegree: 4, tpDegree: 2 }, ['epDegree 4 with tpDegree 2']],
    ['epDegree above the experts', { epDegree: 32 }, ['epDegree 32 exceeds', '16 experts']],
    ['redundant experts without expert parallelism', { redundantExperts: [{ layer: 0, expert: 1 }] }, ['redundantExperts need epDegree > 1']],
    [
      'a redundant expert of a layer that does not exist',
      { epDegree: 2, redundantExperts: [{ layer: 5, expert: 1 }] },
      ['redundantExperts[0] {layer 5, expert 1}', 'not a MoE layer'],
    ],
    ['a redundant expert out of range', { epDegree: 2, redundantExperts: [{ layer: 0, expert: 16 }] }, ['redundantExperts[0] {layer 0, expert 16}', 'experts 0..15']],
    [
      'a redundant expert listed twice',
      {
        epDegree: 2,
        redundantExperts: [
          { layer: 1, expert: 2 },
          { layer: 1, expert: 2 },
        ],
      },
      ['redundantExperts[1]', 'listed twice'],
    ],
    ['a tpDegree that does not divide the heads', { tpDegree: 3 }, ['tpDegree 3']],
  ] as const)('layout: refuses %s', async (_label, options, mentions) => {
    expectRefusal(await loadError(write(), options), 'INVALID_ARGUMENT', [...mentions]);
  });
});
