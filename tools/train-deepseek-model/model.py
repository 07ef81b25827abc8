"""A tiny DeepSeek-V3-style decoder in PyTorch that computes what llama.cpp's `deepseek2` graph computes
(node-llama-cpp 3.21.1's bundled llama.cpp, src/models/deepseek2.cpp, MLA path):

  x = tok_embeddings[tokens]
  per layer:  n1 = RMSNorm(x)
     MLA:     q      = q_b(RMSNorm(q_a(n1)))                 -> per head [q_nope (nope) | q_pe (rope)]
              ckv    = kv_a_mqa(n1)                          -> [latent (kv_lora_rank) | k_pe (rope, shared by heads)]
              latent = RMSNorm(latent) (kv_a_norm)
              kv     = kv_b(latent)                          -> per head [k_nope (nope) | v (v_dim)]
              q_pe, k_pe rotated by RoPE (ADJACENT pairs, llama.cpp's NORM mode, which deepseek2 uses)
              attention over k = [k_nope | k_pe], scale 1/sqrt(nope + rope), out = wo(concat heads of v)
     h = x + out
     n2 = RMSNorm(h)
     FFN:     dense layers (i < n_dense): SwiGLU(n2)
              MoE layers: shared expert SwiGLU(n2) + sum over the top-k routed experts of w_e * SwiGLU_e(n2), where
                s = sigmoid(gate(n2)) (fp32); experts chosen by top-k of s + e_score_correction_bias (`exp_probs_b`);
                w = s[chosen] / sum(s[chosen]) * routed_scaling_factor
     x = h + FFN
  h = RMSNorm(x) (output_norm); logits = h @ tok_embeddings^T   (tied output head)

MTP (multi-token prediction, DeepSeek-V3's module of depth 1, as llama.cpp's deepseek2 `graph_mtp` computes it): at
position i, from the trunk's normed hidden state h_i and the embedding of the next token t_(i+1), predict t_(i+2):
  m = eh_proj([RMSNorm_e(embed(t_(i+1))) | RMSNorm_h(h_i)])     (embedding half first, as ggml_concat(e, h))
  m = one more decoder block (MLA + MoE with the shared expert), over the positions of the sequence, causal
  logits_mtp = RMSNorm_head(m) @ tok_embeddings^T                (nextn.shared_head_norm; the head is shared)
In the file the block is `blk.<n_layers>` (block_count = n_layers + 1, nextn_predict_layers = 1) with its
`nextn.{eh_proj,enorm,hnorm,shared_head_norm}` tensors; llama.cpp skips it when it does not load MTP. The speculative
decoding issue uses it as a draft model.

The selection bias is not trained by gradient: after every optimizer step train.py calls `update_router_bias()`,
DeepSeek-V3's auxiliary-loss-free balancing: b_e += gamma * sign(mean_load - load_e) over the batch's selections.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    vocab_size: int = 2048
    dim: int = 256
    n_layers: int = 6
    n_dense_layers: int = 1          # leading_dense_block_count
    n_heads: int = 8
    q_lora_rank: int = 128
    kv_lora_rank: int = 64
    qk_nope_dim: int = 32
    qk_rope_dim: int = 32
    v_dim: int = 32
    ffn_dim: int = 512               # dense layers (feed_forward_length)
    n_experts: int = 8               # routed experts (expert_count)
    n_experts_used: int = 2          # top-k (expert_used_count)
    n_shared_experts: int = 1        # expert_shared_count
    expert_ffn_dim: int = 192        # expert_feed_forward_length (shared expert: n_shared * this)
    routed_scaling_factor: float = 1.5
    norm_topk_prob: bool = True
    context_length: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    dropout: float = 0.0
    n_mtp: int = 1                   # MTP modules (nextn_predict_layers); 0 or 1


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).type_as(x)


def rope_tables(rot_dim: int, n_pos: int, theta: float, device=None):
    i = torch.arange(rot_dim // 2, dtype=torch.float64)
    freq = theta ** (-2.0 * i / rot_dim)
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * freq[None, :]
    return torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)


def apply_rope(x, cos, sin):
    """x: [..., T, d]; rotates adjacent pairs (x[2i], x[2i+1]) (GGML_ROPE_TYPE_NORM)."""
    T = x.shape[-2]
    c, s = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)


class MLA(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        qk = c.qk_nope_dim + c.qk_rope_dim
        self.q_a = nn.Linear(c.dim, c.q_lora_rank, bias=False)
        self.q_a_norm = RMSNorm(c.q_lora_rank, c.norm_eps)
        self.q_b = nn.Linear(c.q_lora_rank, c.n_heads * qk, bias=False)
        self.kv_a_mqa = nn.Linear(c.dim, c.kv_lora_rank + c.qk_rope_dim, bias=False)
        self.kv_a_norm = RMSNorm(c.kv_lora_rank, c.norm_eps)
        self.kv_b = nn.Linear(c.kv_lora_rank, c.n_heads * (c.qk_nope_dim + c.v_dim), bias=False)
        self.wo = nn.Linear(c.n_heads * c.v_dim, c.dim, bias=False)
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        c = self.c
        H, nope, rope, vd = c.n_heads, c.qk_nope_dim, c.qk_rope_dim, c.v_dim
        q = self.q_b(self.q_a_norm(self.q_a(x))).view(B, T, H, nope + rope).transpose(1, 2)
        q_nope, q_pe = q[..., :nope], q[..., nope:]
        ckv = self.kv_a_mqa(x)
        latent, k_pe = ckv[..., :c.kv_lora_rank], ckv[..., c.kv_lora_rank:]
        kv = self.kv_b(self.kv_a_norm(latent)).view(B, T, H, nope + vd).transpose(1, 2)
        k_nope, v = kv[..., :nope], kv[..., nope:]
        q_pe = apply_rope(q_pe, cos, sin)
        k_pe = apply_rope(k_pe[:, None], cos, sin).expand(B, H, T, rope)
        qf = torch.cat([q_nope, q_pe], -1)
        kf = torch.cat([k_nope, k_pe], -1)
        y = F.scaled_dot_product_attention(qf, kf, v, is_causal=True, dropout_p=c.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, H * vd)
        return self.resid_drop(self.wo(y))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)  # gate
        self.w3 = nn.Linear(dim, hidden, bias=False)  # up
        self.w2 = nn.Linear(hidden, dim, bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoE(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.c = c
        E, D, Fe = c.n_experts, c.dim, c.expert_ffn_dim
        self.gate = nn.Linear(D, E, bias=False)                          # ffn_gate_inp
        self.register_buffer("e_score_correction_bias", torch.zeros(E))  # exp_probs_b.bias (not trained by gradient)
        self.w1 = nn.Parameter(torch.empty(E, Fe, D))                    # ffn_gate_exps
        self.w3 = nn.Parameter(torch.empty(E, Fe, D))                    # ffn_up_exps
        self.w2 = nn.Parameter(torch.empty(E, D, Fe))                    # ffn_down_exps
        self.shared = SwiGLU(D, Fe * c.n_shared_experts)                 # ffn_{gate,up,down}_shexp
        self.last_load = None        # selections per expert in the last forward (for the bias update)
        self.count = None            # accumulated selections per expert while counting (evaluation)

    def forward(self, x):
        c = self.c
        B, T, D = x.shape
        xt = x.reshape(-1, D)
        with torch.autocast(device_type=x.device.type, enabled=False):  # the router in fp32, as llama.cpp runs it
            scores = torch.sigmoid(F.linear(xt.float(), self.gate.weight.float()))    # [N, E]
        sel = torch.topk(scores + self.e_score_correction_bias[None], c.n_experts_used, dim=-1).indices
        w = scores.gather(1, sel).float()
        if c.norm_topk_prob:
            w = w / w.sum(-1, keepdim=True).clamp_min(6.103515625e-5)
        w = w * c.routed_scaling_factor
        dense_w = torch.zeros_like(scores).scatter(1, sel, w)                         # [N, E]
        load = torch.bincount(sel.reshape(-1), minlength=c.n_experts)
        self.last_load = load.detach()
        if self.count is not None:
            self.count += load.detach().cpu()
        out = torch.zeros_like(xt)
        for e in range(c.n_experts):  # dispatch: each expert computes only its tokens
            idx = (sel == e).any(-1).nonzero(as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            xe = xt[idx]
            he = F.linear(F.silu(F.linear(xe, self.w1[e])) * F.linear(xe, self.w3[e]), self.w2[e])
            out.index_add_(0, idx, (he.float() * dense_w[idx, e:e + 1]).to(out.dtype))
        return (out + self.shared(xt)).view(B, T, D)


class Block(nn.Module):
    def __init__(self, c: ModelConfig, layer: int):
        super().__init__()
        self.attention_norm = RMSNorm(c.dim, c.norm_eps)
        self.attention = MLA(c)
        self.ffn_norm = RMSNorm(c.dim, c.norm_eps)
        self.is_moe = layer >= c.n_dense_layers
        self.feed_forward = MoE(c) if self.is_moe else SwiGLU(c.dim, c.ffn_dim)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, cos, sin):
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.drop(self.feed_forward(self.ffn_norm(h)))


class MTPModule(nn.Module):
    """DeepSeek-V3's multi-token-prediction module (see the module docstring)."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.enorm = RMSNorm(c.dim, c.norm_eps)
        self.hnorm = RMSNorm(c.dim, c.norm_eps)
        self.eh_proj = nn.Linear(2 * c.dim, c.dim, bias=False)
        self.block = Block(c, c.n_layers)  # past the dense layers: an MoE block
        self.head_norm = RMSNorm(c.dim, c.norm_eps)

    def forward(self, h, next_emb, cos, sin):
        m = self.eh_proj(torch.cat([self.enorm(next_emb), self.hnorm(h)], -1))
        return self.head_norm(self.block(m, cos, sin))


class DeepSeekTiny(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.cfg = c
        self.tok_embeddings = nn.Embedding(c.vocab_size, c.dim)
        self.layers = nn.ModuleList(Block(c, i) for i in range(c.n_layers))
        self.norm = RMSNorm(c.dim, c.norm_eps)
        self.mtp = nn.ModuleList(MTPModule(c) for _ in range(c.n_mtp))
        cos, sin = rope_tables(c.qk_rope_dim, c.context_length, c.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02
                if name.endswith("wo.weight") or name.endswith("w2.weight") or name.endswith(".w2"):
                    std = 0.02 / math.sqrt(2 * c.n_layers)
                nn.init.normal_(p, mean=0.0, std=std)

    def moe_layers(self):
        """The trunk's MoE layers (what routing statistics describe)."""
        return [l.feed_forward for l in self.layers if l.is_moe]

    def all_moe_layers(self):
        return self.moe_layers() + [m.block.feed_forward for m in self.mtp]

    @torch.no_grad()
    def update_router_bias(self, gamma: float):
        """DeepSeek-V3 auxiliary-loss-free balancing: raise the bias of under-loaded experts, lower over-loaded ones."""
        for m in self.all_moe_layers():
            if m.last_load is None:
                continue
            load = m.last_load.float()
            m.e_score_correction_bias += gamma * torch.sign(load.mean() - load)

    def start_counting(self):
        for m in self.moe_layers():
            m.count = torch.zeros(self.cfg.n_experts, dtype=torch.long)

    def stop_counting(self):
        out = [m.count.tolist() for m in self.moe_layers()]
        for m in self.moe_layers():
            m.count = None
        return out

    def forward(self, tokens, return_hidden: bool = False):
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, self.rope_cos, self.rope_sin)
        h = self.norm(x)
        logits = F.linear(h, self.tok_embeddings.weight).float()
        return (logits, h) if return_hidden else logits

    def mtp_logits(self, h, next_tokens):
        """Logits of t_(i+2) at each position i from the trunk's normed hidden h [B, T, D] and t_(i+1) [B, T]."""
        m = self.mtp[0](h, self.tok_embeddings(next_tokens), self.rope_cos, self.rope_sin)
        return F.linear(m, self.tok_embeddings.weight).float()
