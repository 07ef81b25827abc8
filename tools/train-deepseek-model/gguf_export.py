"""Writes the trained model as a GGUF v3 file with general.architecture = deepseek2, in the layout node-llama-cpp
3.21.1's bundled llama.cpp reads (src/models/deepseek2.cpp, src/llama-arch.cpp, conversion/deepseek.py):

- MLA in the absorbed ("is_mla") form that today's convert_hf_to_gguf.py writes: kv_b is split per head into
  attn_k_b (ne [nope, kv_lora_rank, n_head], i.e. k_b transposed) and attn_v_b (ne [kv_lora_rank, v_dim, n_head]);
  head_count_kv = 1, key_length = kv_lora_rank + rope, value_length = kv_lora_rank, key_length_mla = nope + rope,
  value_length_mla = v_dim (both _mla keys present is what makes llama.cpp take the MLA path).
- rope.dimension_count = qk_rope_dim (n_rot); rope type NORM (adjacent pairs) as model.py does.
- MTP: the module's decoder block is blk.<n_layers> (block_count includes it, nextn_predict_layers = 1) with
  nextn.eh_proj / enorm / hnorm / shared_head_norm; no nextn.embed_tokens / shared_head_head (llama.cpp then uses
  token_embd and the output head, which is token_embd here).
- MoE: ffn_gate_inp (F32), exp_probs_b.bias (F32), split 3-D ffn_{gate,up,down}_exps, shared expert *_shexp,
  expert_gating_func = 2 (sigmoid), expert_weights_norm, expert_weights_scale, leading_dense_block_count.
Reuses ../train-default-model's gguf_writer.py and bpe.py.
"""
from __future__ import annotations

import os
import sys
from typing import Dict

import numpy as np

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train-default-model"))
from bpe import ByteBPE  # noqa: E402
from gguf_writer import GGML_BF16, GGML_F16, GGML_F32, T_INT32, T_STRING, GgufWriter  # noqa: E402

FILE_TYPES = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16}
LLAMA_FTYPE = {"f32": 0, "f16": 1, "bf16": 32}
ARCH = "deepseek2"
F32_ALWAYS = ("ffn_gate_inp.weight", "exp_probs_b.bias")  # router kept in F32 (as llama.cpp's converter does)


def round_like_file(a: np.ndarray, file_type: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if file_type == "f16":
        return a.astype(np.float16).astype(np.float32)
    if file_type == "bf16":
        from gguf_writer import bf16_bits_to_f32, f32_to_bf16_bits
        return bf16_bits_to_f32(f32_to_bf16_bits(a)).reshape(a.shape)
    return a


def stored_as_file_type(torch_name: str, a: np.ndarray) -> bool:
    """True if this state-dict entry is stored in the file's matrix type (else F32)."""
    return a.ndim >= 2 and not torch_name.endswith("feed_forward.gate.weight")


def block_tensors(cfg: Dict, weights: Dict[str, np.ndarray], p: str, b: str, dense: bool):
    """One decoder block: torch prefix p ("layers.3." or "mtp.0.block."), gguf prefix b ("blk.3.")."""
    H, nope, vd, r = cfg["n_heads"], cfg["qk_nope_dim"], cfg["v_dim"], cfg["kv_lora_rank"]
    a = p + "attention."
    out = [
        (b + "attn_norm.weight", weights[p + "attention_norm.weight"], p + "attention_norm.weight"),
        (b + "attn_q_a.weight", weights[a + "q_a.weight"], a + "q_a.weight"),
        (b + "attn_q_a_norm.weight", weights[a + "q_a_norm.weight"], a + "q_a_norm.weight"),
        (b + "attn_q_b.weight", weights[a + "q_b.weight"], a + "q_b.weight"),
        (b + "attn_kv_a_mqa.weight", weights[a + "kv_a_mqa.weight"], a + "kv_a_mqa.weight"),
        (b + "attn_kv_a_norm.weight", weights[a + "kv_a_norm.weight"], a + "kv_a_norm.weight"),
    ]
    kv_b = weights[a + "kv_b.weight"].reshape(H, nope + vd, r)
    k_b = np.ascontiguousarray(kv_b[:, :nope, :].transpose(0, 2, 1))   # [H, r, nope] -> ne [nope, r, H]
    v_b = np.ascontiguousarray(kv_b[:, nope:, :])                      # [H, vd, r]   -> ne [r, vd, H]
    out += [
        (b + "attn_k_b.weight", k_b, a + "kv_b.weight"),
        (b + "attn_v_b.weight", v_b, a + "kv_b.weight"),
        (b + "attn_output.weight", weights[a + "wo.weight"], a + "wo.weight"),
        (b + "ffn_norm.weight", weights[p + "ffn_norm.weight"], p + "ffn_norm.weight"),
    ]
    f = p + "feed_forward."
    if dense:
        out += [(b + "ffn_gate.weight", weights[f + "w1.weight"], f + "w1.weight"),
                (b + "ffn_up.weight", weights[f + "w3.weight"], f + "w3.weight"),
                (b + "ffn_down.weight", weights[f + "w2.weight"], f + "w2.weight")]
    else:
        out += [(b + "ffn_gate_inp.weight", weights[f + "gate.weight"], f + "gate.weight"),
                (b + "exp_probs_b.bias", weights[f + "e_score_correction_bias"], f + "e_score_correction_bias"),
                (b + "ffn_gate_exps.weight", weights[f + "w1"], f + "w1"),
                (b + "ffn_up_exps.weight", weights[f + "w3"], f + "w3"),
                (b + "ffn_down_exps.weight", weights[f + "w2"], f + "w2"),
                (b + "ffn_gate_shexp.weight", weights[f + "shared.w1.weight"], f + "shared.w1.weight"),
                (b + "ffn_up_shexp.weight", weights[f + "shared.w3.weight"], f + "shared.w3.weight"),
                (b + "ffn_down_shexp.weight", weights[f + "shared.w2.weight"], f + "shared.w2.weight")]
    return out


def gguf_tensors(cfg: Dict, weights: Dict[str, np.ndarray]):
    """(gguf name, array in PyTorch layout, torch name) in file order: the trunk, then the MTP block (blk.<n_layers>)."""
    out = [("token_embd.weight", weights["tok_embeddings.weight"], "tok_embeddings.weight")]
    for i in range(cfg["n_layers"]):
        out += block_tensors(cfg, weights, f"layers.{i}.", f"blk.{i}.", i < cfg["n_dense_layers"])
    for k in range(cfg.get("n_mtp", 0)):
        i, p = cfg["n_layers"] + k, f"mtp.{k}."
        b = f"blk.{i}."
        out += block_tensors(cfg, weights, p + "block.", b, False)
        out += [(b + "nextn.eh_proj.weight", weights[p + "eh_proj.weight"], p + "eh_proj.weight"),
                (b + "nextn.enorm.weight", weights[p + "enorm.weight"], p + "enorm.weight"),
                (b + "nextn.hnorm.weight", weights[p + "hnorm.weight"], p + "hnorm.weight"),
                (b + "nextn.shared_head_norm.weight", weights[p + "head_norm.weight"], p + "head_norm.weight")]
    out.append(("output_norm.weight", weights["norm.weight"], "norm.weight"))
    return out


def export_gguf(path: str, cfg: Dict, weights: Dict[str, np.ndarray], tok: ByteBPE, file_type: str = "f16",
                name: str = "tuneloop-deepseek-tiny", extra: Dict[str, str] | None = None) -> int:
    w = GgufWriter()
    w.add_string("general.architecture", ARCH)
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", LLAMA_FTYPE[file_type])
    for k, v in (extra or {}).items():
        w.add_string(k, v)
    A = ARCH
    w.add_uint32(f"{A}.context_length", cfg["context_length"])
    w.add_uint32(f"{A}.embedding_length", cfg["dim"])
    w.add_uint32(f"{A}.block_count", cfg["n_layers"] + cfg.get("n_mtp", 0))  # the MTP block counts
    if cfg.get("n_mtp", 0):
        w.add_uint32(f"{A}.nextn_predict_layers", cfg["n_mtp"])
    w.add_uint32(f"{A}.feed_forward_length", cfg["ffn_dim"])
    w.add_uint32(f"{A}.attention.head_count", cfg["n_heads"])
    w.add_uint32(f"{A}.attention.head_count_kv", 1)
    w.add_float32(f"{A}.rope.freq_base", cfg["rope_theta"])
    w.add_float32(f"{A}.attention.layer_norm_rms_epsilon", cfg["norm_eps"])
    w.add_uint32(f"{A}.leading_dense_block_count", cfg["n_dense_layers"])
    w.add_uint32(f"{A}.vocab_size", tok.vocab_size)
    w.add_uint32(f"{A}.attention.q_lora_rank", cfg["q_lora_rank"])
    w.add_uint32(f"{A}.attention.kv_lora_rank", cfg["kv_lora_rank"])
    w.add_uint32(f"{A}.attention.key_length", cfg["kv_lora_rank"] + cfg["qk_rope_dim"])
    w.add_uint32(f"{A}.attention.value_length", cfg["kv_lora_rank"])
    w.add_uint32(f"{A}.attention.key_length_mla", cfg["qk_nope_dim"] + cfg["qk_rope_dim"])
    w.add_uint32(f"{A}.attention.value_length_mla", cfg["v_dim"])
    w.add_uint32(f"{A}.expert_feed_forward_length", cfg["expert_ffn_dim"])
    w.add_uint32(f"{A}.expert_count", cfg["n_experts"])
    w.add_uint32(f"{A}.expert_used_count", cfg["n_experts_used"])
    w.add_uint32(f"{A}.expert_shared_count", cfg["n_shared_experts"])
    w.add_float32(f"{A}.expert_weights_scale", cfg["routed_scaling_factor"])
    w.add_bool(f"{A}.expert_weights_norm", bool(cfg["norm_topk_prob"]))
    w.add_uint32(f"{A}.expert_gating_func", 2)  # LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID
    w.add_uint32(f"{A}.rope.dimension_count", cfg["qk_rope_dim"])

    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-2")
    w.add_array("tokenizer.ggml.tokens", T_STRING, tok.token_strings())
    w.add_array("tokenizer.ggml.token_type", T_INT32, tok.token_types())
    w.add_array("tokenizer.ggml.merges", T_STRING, tok.merge_strings())
    w.add_uint32("tokenizer.ggml.bos_token_id", tok.eot_id)
    w.add_uint32("tokenizer.ggml.eos_token_id", tok.eot_id)
    w.add_bool("tokenizer.ggml.add_bos_token", True)

    for gname, a, tname in gguf_tensors(cfg, weights):
        t = FILE_TYPES[file_type] if stored_as_file_type(tname, a) else GGML_F32
        w.add_tensor(gname, a, t)
    return w.write(path)
