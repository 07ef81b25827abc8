"""Writes the trained model and its tokenizer as a llama GGUF v3 file that tuneloop's engine loads (numpy only).

Parameter names are those of model.py (Meta's llama naming); each maps to the llama.cpp tensor name below. PyTorch's
nn.Linear weight [out, in] is written as-is, which GGUF reads as ne = [in, out]: no transposes. RoPE in model.py
rotates adjacent pairs (llama.cpp's "normal" mode, as the engine does), so q/k need no permutation either.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from bpe import ByteBPE
from gguf_writer import GGML_BF16, GGML_F16, GGML_F32, T_INT32, T_STRING, GgufWriter

NAME_MAP = {
    "attention_norm.weight": "attn_norm.weight",
    "attention.wq.weight": "attn_q.weight",
    "attention.wk.weight": "attn_k.weight",
    "attention.wv.weight": "attn_v.weight",
    "attention.wo.weight": "attn_output.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "feed_forward.w1.weight": "ffn_gate.weight",
    "feed_forward.w3.weight": "ffn_up.weight",
    "feed_forward.w2.weight": "ffn_down.weight",
}

FILE_TYPES = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16}
# general.file_type as llama.cpp numbers it (ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_BF16 = 32).
LLAMA_FTYPE = {"f32": 0, "f16": 1, "bf16": 32}


def gguf_name(torch_name: str) -> str:
    if torch_name == "tok_embeddings.weight":
        return "token_embd.weight"
    if torch_name == "norm.weight":
        return "output_norm.weight"
    if torch_name == "output.weight":
        return "output.weight"
    parts = torch_name.split(".", 2)
    assert parts[0] == "layers", torch_name
    return f"blk.{int(parts[1])}.{NAME_MAP[parts[2]]}"


def round_like_file(a: np.ndarray, file_type: str) -> np.ndarray:
    """The values a matrix has once written as `file_type` (norms are always F32)."""
    a = np.asarray(a, dtype=np.float32)
    if file_type == "f16":
        return a.astype(np.float16).astype(np.float32)
    if file_type == "bf16":
        from gguf_writer import bf16_bits_to_f32, f32_to_bf16_bits
        return bf16_bits_to_f32(f32_to_bf16_bits(a)).reshape(a.shape)
    return a


def export_gguf(path: str, cfg: Dict, weights: Dict[str, np.ndarray], tok: ByteBPE, file_type: str = "f16",
                name: str = "tuneloop-shakespeare", extra: Dict[str, str] | None = None) -> int:
    """`weights`: model.py state dict as float32 numpy arrays. Matrices are stored as `file_type`, vectors as F32."""
    w = GgufWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", name)
    w.add_uint32("general.file_type", LLAMA_FTYPE[file_type])
    for k, v in (extra or {}).items():
        w.add_string(k, v)
    hd = cfg["dim"] // cfg["n_heads"]
    w.add_uint32("llama.context_length", cfg["context_length"])
    w.add_uint32("llama.embedding_length", cfg["dim"])
    w.add_uint32("llama.block_count", cfg["n_layers"])
    w.add_uint32("llama.feed_forward_length", cfg["ffn_dim"])
    w.add_uint32("llama.attention.head_count", cfg["n_heads"])
    w.add_uint32("llama.attention.head_count_kv", cfg["n_kv_heads"])
    w.add_uint32("llama.rope.dimension_count", hd)
    w.add_float32("llama.rope.freq_base", cfg["rope_theta"])
    w.add_float32("llama.attention.layer_norm_rms_epsilon", cfg["norm_eps"])
    w.add_uint32("llama.vocab_size", tok.vocab_size)

    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-2")
    w.add_array("tokenizer.ggml.tokens", T_STRING, tok.token_strings())
    w.add_array("tokenizer.ggml.token_type", T_INT32, tok.token_types())
    w.add_array("tokenizer.ggml.merges", T_STRING, tok.merge_strings())
    w.add_uint32("tokenizer.ggml.bos_token_id", tok.eot_id)
    w.add_uint32("tokenizer.ggml.eos_token_id", tok.eot_id)
    w.add_bool("tokenizer.ggml.add_bos_token", True)

    order = ["tok_embeddings.weight"]
    for i in range(cfg["n_layers"]):
        order += [f"layers.{i}.{k}" for k in NAME_MAP]
    order += ["norm.weight"]
    if "output.weight" in weights:
        order.append("output.weight")
    assert set(order) == set(weights), sorted(set(weights) ^ set(order))
    for k in order:
        a = weights[k]
        w.add_tensor(gguf_name(k), a, GGML_F32 if a.ndim == 1 else FILE_TYPES[file_type])
    return w.write(path)
