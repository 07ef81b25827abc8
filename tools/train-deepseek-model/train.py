#!/usr/bin/env python3
"""Trains a tiny DeepSeek-V3-style model (MLA, shared + routed sigmoid experts with aux-loss-free selection bias,
one leading dense layer) on tinyshakespeare with the default model's tokenizer, and exports it as a `deepseek2` GGUF.
A copy of tools/train-default-model/train.py with the model, the bias update, routing counts and export changed.

  python3 tools/train-deepseek-model/train.py --out-dir OUT        # see README.md for the shipped command

Steps (all seeded; see README.md):
  1. Read the text (default ../shared/data/tinyshakespeare.txt beside the repository), split it by characters:
     the first 90% trains, the last 10% is held out for validation.
  2. Learn a byte-level BPE (bpe.py) on the training split: 256 byte tokens + merges + <|endoftext|> (BOS/EOS).
  3. Train the DeepSeek-style model (model.py) with AdamW, warm-up + cosine learning rate, bf16 autocast on CUDA (fp32 on
     CPU). Training rows are random windows of the training tokens; a fraction of rows instead start with BOS
     followed by the start of a speech (the text after a blank line), which is how a prompt looks to the engine
     (it prepends BOS). Validation loss is measured every --eval-every steps, with the engine's own windowing
     (evaluate_nll below), and the checkpoint with the lowest validation loss is kept.
  4. Evaluate the kept checkpoint in fp32, both as trained and with its matrices rounded to the file type (the
     weights the engine will read), on the full validation split and on the committed slice of it.
  5. Write OUT/tuneloop-shakespeare.gguf, OUT/tuneloop-shakespeare.eval.json, OUT/validation-slice.txt,
     OUT/train_log.csv (loss curves) and OUT/run.json (command, hyper-parameters, timings, samples).

Runs on CPU too (--device cpu), only slower.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.append(os.path.join(HERE, "..", "train-default-model"))  # bpe.py, gguf_writer.py

from bpe import ByteBPE, train_bpe  # noqa: E402
from gguf_export import export_gguf, round_like_file, stored_as_file_type  # noqa: E402
from model import DeepSeekTiny, ModelConfig  # noqa: E402

DATA_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
MODEL_FILE = "tuneloop-deepseek-tiny.gguf"
EVAL_FILE = "tuneloop-deepseek-tiny.eval.json"
SLICE_FILE = "validation-slice.txt"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(REPO_ROOT, "..", "shared", "data", "tinyshakespeare.txt"))
    p.add_argument("--out-dir", default=os.path.join(HERE, "out"))
    p.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--slice-chars", type=int, default=16384, help="the committed validation slice: at most this many "
                   "characters from the start of the validation split, cut after the last blank line's first newline")
    # tokenizer
    p.add_argument("--vocab-size", type=int, default=2048, help="256 bytes + merges + 1 control token")
    # model
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=5, help="trunk layers (the MTP block is one more)")
    p.add_argument("--n-dense-layers", type=int, default=1)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--q-lora-rank", type=int, default=128)
    p.add_argument("--kv-lora-rank", type=int, default=64)
    p.add_argument("--qk-nope-dim", type=int, default=32)
    p.add_argument("--qk-rope-dim", type=int, default=32)
    p.add_argument("--v-dim", type=int, default=32)
    p.add_argument("--ffn-dim", type=int, default=512, help="dense layers")
    p.add_argument("--n-experts", type=int, default=8)
    p.add_argument("--n-experts-used", type=int, default=2)
    p.add_argument("--n-shared-experts", type=int, default=1)
    p.add_argument("--expert-ffn-dim", type=int, default=192)
    p.add_argument("--routed-scaling-factor", type=float, default=1.5)
    p.add_argument("--bias-update-rate", type=float, default=1e-3, help="gamma of the aux-loss-free balancing")
    p.add_argument("--bias-update-until", type=float, default=1.0,
                   help="stop updating the selection bias after this fraction of --max-steps (DeepSeek-V3 stops near the end)")
    p.add_argument("--n-mtp", type=int, default=1, choices=[0, 1], help="DeepSeek-V3 MTP modules (depth 1)")
    p.add_argument("--mtp-weight", type=float, default=0.3, help="lambda of the MTP loss (DeepSeek-V3: 0.3, then 0.1)")
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--dropout", type=float, default=0.2)
    # optimisation
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-steps", type=int, default=4000)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--bos-fraction", type=float, default=0.125, help="share of rows that start with BOS + a speech")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--skip-first-eval", action="store_true", help="no evaluation at step 0 (saves time on CPU)")
    p.add_argument("--time-limit", type=float, default=0, help="seconds of training: after 10 steps, --max-steps is "
                   "lowered to what fits (the cosine schedule follows it); 0 = no limit")
    p.add_argument("--patience", type=int, default=10, help="stop after this many evaluations without a new best")
    # export
    p.add_argument("--file-type", default="f16", choices=["f16", "bf16", "f32"])
    p.add_argument("--samples", type=int, default=3, help="sampled continuations of ROMEO: to record")
    return p.parse_args(argv)


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def lr_at(step: int, a) -> float:
    if step < a.warmup_steps:
        return a.lr * (step + 1) / a.warmup_steps
    t = min(1.0, (step - a.warmup_steps) / max(1, a.max_steps - a.warmup_steps))
    return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate_nll(model, tokens, ctx: int, device, batch: int = 64):
    """Mean NLL (nats/token) exactly as Engine.perplexity() computes it (src/engine/engine.ts): consecutive,
    non-overlapping windows of `ctx` tokens starting at 0, each evaluated from position 0; the first token of each
    window is context only; the mean is over all predicted tokens. fp32, dropout off. Returns (mean_nll, n)."""
    was_training = model.training
    model.eval()
    windows = [tokens[s:s + ctx] for s in range(0, len(tokens) - 1, ctx)]
    windows = [w for w in windows if len(w) >= 2]
    total, n = 0.0, 0
    full = [w for w in windows if len(w) == ctx]
    rest = [w for w in windows if len(w) != ctx]
    groups = [full[i:i + batch] for i in range(0, len(full), batch)] + [[w] for w in rest]
    for g in groups:
        x = torch.tensor(g, dtype=torch.long, device=device)
        logits = model(x).double()
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += nll.item()
        n += x.shape[0] * (x.shape[1] - 1)
    model.train(was_training)
    return total / n, n


@torch.no_grad()
def evaluate_mtp(model, tokens, ctx: int, device, batch: int = 64):
    """The MTP head over the engine's windows: at each position i (with i + 2 inside the window), from the trunk's
    normed hidden h_i and the true t_(i+1), its prediction of t_(i+2). Returns the mean NLL, top-1 accuracy against the
    text, and the rate at which its argmax equals the trunk's own argmax at position i + 1 (what greedy speculative
    decoding would accept), and the number of positions."""
    was_training = model.training
    model.eval()
    windows = [tokens[s:s + ctx] for s in range(0, len(tokens) - 1, ctx)]
    windows = [w for w in windows if len(w) >= 3]
    full = [w for w in windows if len(w) == ctx]
    rest = [w for w in windows if len(w) != ctx]
    groups = [full[i:i + batch] for i in range(0, len(full), batch)] + [[w] for w in rest]
    total, correct, agree, n = 0.0, 0, 0, 0
    for g in groups:
        x = torch.tensor(g, dtype=torch.long, device=device)
        logits, h = model(x, return_hidden=True)
        m = model.mtp_logits(h[:, :-1], x[:, 1:])[:, :-1].double()   # predicts x[:, 2:]
        tgt = x[:, 2:]
        total += F.cross_entropy(m.reshape(-1, m.shape[-1]), tgt.reshape(-1), reduction="sum").item()
        guess = m.argmax(-1)
        correct += (guess == tgt).sum().item()
        agree += (guess == logits[:, 1:-1].argmax(-1)).sum().item()
        n += tgt.numel()
    model.train(was_training)
    return {"nll": total / n, "top1_vs_text": correct / n, "top1_vs_trunk_greedy": agree / n, "positions": n}


@torch.no_grad()
def generate(model, prompt, n_new: int, ctx: int, device, temperature: float = 0.0, top_k: int = 0, gen=None):
    model.eval()
    ids = list(prompt)
    for _ in range(n_new):
        x = torch.tensor([ids[-ctx:]], dtype=torch.long, device=device)
        logits = model(x)[0, -1].double()
        if temperature == 0:
            nxt = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, top_k).values[-1]
                logits = torch.where(logits < kth, torch.full_like(logits, -math.inf), logits)
            probs = torch.softmax(logits, -1)
            nxt = int(torch.multinomial(probs.float().cpu(), 1, generator=gen))
        ids.append(nxt)
    return ids[len(prompt):]


def main(argv=None):
    a = parse_args(argv)
    t_start = time.time()
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    device = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else ("cpu" if a.device == "auto" else a.device))
    use_bf16 = device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(a.out_dir, exist_ok=True)
    # 1. data ----------------------------------------------------------------------------------------------------
    raw = open(a.data, "rb").read()
    data_sha = sha256_bytes(raw)
    if data_sha != DATA_SHA256:
        print(f"warning: {a.data} has sha256 {data_sha}, expected {DATA_SHA256}", flush=True)
    text = raw.decode("utf-8")
    n_train_chars = int(len(text) * (1 - a.val_fraction))
    train_text, val_text = text[:n_train_chars], text[n_train_chars:]
    cut = val_text.rfind("\n\n", 0, a.slice_chars)
    slice_text = val_text[:cut + 1] if cut > 0 else val_text[:a.slice_chars]

    # 2. tokenizer -----------------------------------------------------------------------------------------------
    t0 = time.time()
    merges = train_bpe(train_text, a.vocab_size - 256 - 1)
    tok = ByteBPE(merges)
    assert tok.vocab_size == a.vocab_size
    BOS = tok.eot_id
    train_ids = tok.encode(train_text)
    val_ids = tok.encode(val_text)
    slice_ids = tok.encode(slice_text)
    assert tok.decode(val_ids) == val_text
    t_tok = time.time() - t0
    merges_sha = sha256_bytes("\n".join(tok.merge_strings()).encode())
    print(f"tokenizer: {len(merges)} merges in {t_tok:.1f}s (merges sha256 {merges_sha[:16]}); train {len(train_text)} chars -> "
          f"{len(train_ids)} tokens, val {len(val_text)} -> {len(val_ids)}, slice {len(slice_text)} -> {len(slice_ids)}", flush=True)

    # 3. model and training ----------------------------------------------------------------------------------------
    cfg = ModelConfig(vocab_size=a.vocab_size, dim=a.dim, n_layers=a.n_layers, n_dense_layers=a.n_dense_layers,
                      n_heads=a.n_heads, q_lora_rank=a.q_lora_rank, kv_lora_rank=a.kv_lora_rank,
                      qk_nope_dim=a.qk_nope_dim, qk_rope_dim=a.qk_rope_dim, v_dim=a.v_dim, ffn_dim=a.ffn_dim,
                      n_experts=a.n_experts, n_experts_used=a.n_experts_used, n_shared_experts=a.n_shared_experts,
                      expert_ffn_dim=a.expert_ffn_dim, routed_scaling_factor=a.routed_scaling_factor,
                      context_length=a.context, rope_theta=a.rope_theta, norm_eps=a.norm_eps, dropout=a.dropout,
                      n_mtp=a.n_mtp)
    model = DeepSeekTiny(cfg).to(device)
    n_mtp_params = sum(p.numel() for p in model.mtp.parameters())
    n_params = sum(p.numel() for p in model.parameters()) - n_mtp_params  # the trunk
    c_ = cfg
    active = n_params - sum(3 * (c_.n_experts - c_.n_experts_used) * c_.dim * c_.expert_ffn_dim for _ in model.moe_layers())
    print(f"model: {n_params} trunk parameters ({active} active per token) + {n_mtp_params} in the MTP module, "
          f"device {device}", flush=True)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), **({"fused": True} if device.type == "cuda" else {}))

    ctx = a.context
    train_t = torch.tensor(train_ids, dtype=torch.long, device=device)
    nl = ord("\n")  # byte token 10 is "\n"; a speech starts after two of them
    para = [i for i in range(2, len(train_ids) - ctx) if train_ids[i - 1] == nl and train_ids[i - 2] == nl]
    para_t = torch.tensor(para, dtype=torch.long, device=device)
    ar = torch.arange(ctx + 1, device=device)
    gen = torch.Generator(device=device)
    gen.manual_seed(a.seed)

    def get_batch():
        off = torch.randint(0, len(train_ids) - ctx - 1, (a.batch_size,), generator=gen, device=device)
        rows = train_t[off[:, None] + ar]
        if a.bos_fraction > 0:
            m = torch.rand(a.batch_size, generator=gen, device=device) < a.bos_fraction
            ps = para_t[torch.randint(0, len(para), (a.batch_size,), generator=gen, device=device)]
            brow = torch.cat([torch.full((a.batch_size, 1), BOS, dtype=torch.long, device=device), train_t[ps[:, None] + ar[:-1]]], 1)
            rows = torch.where(m[:, None], brow, rows)
        return rows[:, :-1], rows[:, 1:]

    # A fixed piece of the training split, scored like validation, for a train curve without dropout.
    train_probe = [BOS] + train_ids[: len(val_ids)]
    val_eval = [BOS] + val_ids

    log_path = os.path.join(a.out_dir, "train_log.csv")
    log_f = open(log_path, "w", newline="")
    log = csv.writer(log_f)
    log.writerow(["step", "lr", "train_batch_loss", "train_loss", "val_loss", "val_ppl", "elapsed_s"])
    best = (float("inf"), -1)
    best_state = None
    since_best = 0
    running, running_n = 0.0, 0
    t_train0 = time.time()
    model.train()
    step = 0
    for step in range(a.max_steps + 1):
        if a.time_limit and step == 5:
            t_step5 = time.time()
        if a.time_limit and step == 10:  # steps 5..9 (the first ones are slower: allocation, warm-up)
            per_step = (time.time() - t_step5) / 5
            a.max_steps = min(a.max_steps, 10 + int((a.time_limit - (time.time() - t_train0)) / per_step))
            print(f"time limit {a.time_limit:.0f}s: {per_step:.2f}s per step -> --max-steps {a.max_steps}", flush=True)
        if (step % a.eval_every == 0 and not (step == 0 and a.skip_first_eval)) or step == a.max_steps:
            vl, _ = evaluate_nll(model, val_eval, ctx, device)
            tl, _ = evaluate_nll(model, train_probe, ctx, device)
            tb = running / running_n if running_n else float("nan")
            running, running_n = 0.0, 0
            el = time.time() - t_train0
            log.writerow([step, f"{lr_at(step, a):.6g}", f"{tb:.5f}", f"{tl:.5f}", f"{vl:.5f}", f"{math.exp(vl):.3f}", f"{el:.1f}"])
            log_f.flush()
            print(f"step {step:5d} lr {lr_at(step, a):.2e} train(batch) {tb:.4f} train {tl:.4f} val {vl:.4f} "
                  f"(ppl {math.exp(vl):.2f}) {el:.0f}s", flush=True)
            if vl < best[0]:
                best = (vl, step)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                since_best = 0
            else:
                since_best += 1
                if since_best >= a.patience:
                    print(f"early stop: no new best validation loss for {a.patience} evaluations", flush=True)
                    break
        if step == a.max_steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        x, y = get_batch()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            if a.n_mtp:
                logits, h = model(x, return_hidden=True)
                mtp = model.mtp_logits(h[:, :-1], y[:, :-1])   # at i, from h_i and t_(i+1) = y_i: predicts y_(i+1)
            else:
                logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
        if a.n_mtp:
            loss_mtp = F.cross_entropy(mtp.reshape(-1, mtp.shape[-1]), y[:, 1:].reshape(-1))
            loss_main = loss
            loss = loss + a.mtp_weight * loss_mtp
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        if step < a.bias_update_until * a.max_steps:
            model.update_router_bias(a.bias_update_rate)
        running += loss.item() if step % 10 == 0 else 0.0
        running_n += 1 if step % 10 == 0 else 0
        if step % 20 == 0:
            extra = f" (trunk {loss_main.item():.4f}, mtp {loss_mtp.item():.4f})" if a.n_mtp else ""
            print(f"  step {step:5d} lr {lr_at(step, a):.2e} batch loss {loss.item():.4f}{extra} "
                  f"{time.time() - t_train0:.0f}s", flush=True)
    log_f.close()
    t_train = time.time() - t_train0
    print(f"training: {step} steps in {t_train:.1f}s; best validation loss {best[0]:.4f} at step {best[1]}", flush=True)

    # 4. evaluation of the kept checkpoint ----------------------------------------------------------------------------
    model.load_state_dict(best_state)
    model.eval()
    slice_eval = [BOS] + slice_ids
    res = {}
    res["f32_checkpoint"] = {
        "val": evaluate_nll(model, val_eval, ctx, device),
        "slice": evaluate_nll(model, slice_eval, ctx, device),
        "train_probe": evaluate_nll(model, train_probe, ctx, device),
    }
    weights = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    filed = {k: (round_like_file(v, a.file_type) if stored_as_file_type(k, v) else v) for k, v in weights.items()}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in filed.items()})
    res["file_weights"] = {
        "val": evaluate_nll(model, val_eval, ctx, device),
        "slice": evaluate_nll(model, slice_eval, ctx, device),
        "train_probe": evaluate_nll(model, train_probe, ctx, device),
    }
    mtp_eval = None
    if a.n_mtp:
        mtp_eval = {"val": evaluate_mtp(model, val_eval, ctx, device), "slice": evaluate_mtp(model, slice_eval, ctx, device)}
        print(f"mtp (file weights): {mtp_eval}", flush=True)
    model.start_counting()
    evaluate_nll(model, val_eval, ctx, device)
    routing_counts = model.stop_counting()
    routing = []
    for li, counts in enumerate(routing_counts):
        mean = sum(counts) / len(counts)
        routing.append({"layer": a.n_dense_layers + li, "counts": counts, "max_over_mean": max(counts) / mean,
                        "min_over_mean": min(counts) / mean,
                        "bias": [round(float(x), 5) for x in model.moe_layers()[li].e_score_correction_bias.tolist()]})
        print(f"routing layer {a.n_dense_layers + li}: counts {counts} max/mean {max(counts) / mean:.2f} "
              f"min/mean {min(counts) / mean:.2f}", flush=True)
    for k, r in res.items():
        print(f"{k}: " + ", ".join(f"{n} nll {v[0]:.5f} ppl {math.exp(v[0]):.3f} ({v[1]} tokens)" for n, v in r.items()), flush=True)

    # Reference outputs for the engine (file weights, fp32): top logits after [BOS] ROMEO:, greedy and sampled text.
    prompt = [BOS] + tok.encode("ROMEO:")
    with torch.no_grad():
        last = model(torch.tensor([prompt], device=device))[0, -1]
    top = torch.topk(last, 10)
    greedy_ids = generate(model, prompt, 120, ctx, device)
    sgen = torch.Generator().manual_seed(a.seed)
    sampled = [tok.decode(generate(model, prompt, 120, ctx, device, temperature=0.8, top_k=40, gen=sgen)) for _ in range(a.samples)]
    greedy = tok.decode([t for t in greedy_ids if t != BOS])
    print("greedy: ROMEO:" + greedy, flush=True)
    for s in sampled:
        print("sampled: ROMEO:" + s, flush=True)

    # 5. export ----------------------------------------------------------------------------------------------------------
    model_path = os.path.join(a.out_dir, MODEL_FILE)
    export_cfg = {k: getattr(cfg, k) for k in ["dim", "n_layers", "n_dense_layers", "n_heads", "q_lora_rank", "kv_lora_rank",
                                                "qk_nope_dim", "qk_rope_dim", "v_dim", "ffn_dim", "n_experts", "n_experts_used",
                                                "n_shared_experts", "expert_ffn_dim", "routed_scaling_factor", "norm_topk_prob",
                                                "context_length", "rope_theta", "norm_eps", "n_mtp"]}
    size = export_gguf(model_path, export_cfg, weights, tok, a.file_type,
                       extra={"general.description": "a tiny DeepSeek-V3-style model (MLA + MoE) trained on tinyshakespeare "
                                                     "(tools/train-deepseek-model)",
                              "general.license": "MIT"})
    model_sha = sha256_bytes(open(model_path, "rb").read())
    with open(os.path.join(a.out_dir, SLICE_FILE), "w", newline="") as f:
        f.write(slice_text)

    def fig(r):
        return {"nll": r[0], "perplexity": math.exp(r[0]), "predicted_tokens": r[1]}

    eval_doc = {
        "model": MODEL_FILE,
        "model_sha256": model_sha,
        "procedure": (f"tokens = [BOS={BOS}] + tokenize(text) (byte-level BPE, no BOS added by the tokenizer); "
                      f"consecutive non-overlapping windows of {ctx} tokens (llama.context_length) starting at token 0, "
                      "each evaluated from position 0; the first token of each window is context only; "
                      "nll = mean negative log-likelihood (nats) over all predicted tokens; perplexity = exp(nll). "
                      "This is Engine.perplexity(engine.tokenize(text, { addBos: true })). Framework figures: PyTorch "
                      f"{torch.__version__}, fp32 (TF32 off), dropout off."),
        "bos_token_id": BOS,
        "context_length": ctx,
        "slice": {"file": SLICE_FILE, "chars": len(slice_text), "sha256": sha256_bytes(slice_text.encode()),
                  "tokens_with_bos": len(slice_eval),
                  "framework_file_weights": fig(res["file_weights"]["slice"]),
                  "framework_f32_checkpoint": fig(res["f32_checkpoint"]["slice"])},
        "validation": {"what": f"the last {a.val_fraction:.0%} of tinyshakespeare.txt by characters "
                               f"(characters {n_train_chars}..{len(text)})",
                       "chars": len(val_text), "tokens_with_bos": len(val_eval),
                       "framework_file_weights": fig(res["file_weights"]["val"]),
                       "framework_f32_checkpoint": fig(res["f32_checkpoint"]["val"])},
        "train_probe": {"what": f"[BOS] + the first {len(val_ids)} training tokens, same windowing",
                        "framework_file_weights": fig(res["file_weights"]["train_probe"]),
                        "framework_f32_checkpoint": fig(res["f32_checkpoint"]["train_probe"])},
        "file_weights": f"matrices as stored in the file ({a.file_type}), norms, router and selection bias f32",
        "routing_validation": {"what": "tokens routed to each expert per MoE layer over the validation split "
                                       "(file weights, the windows above, every position)", "layers": routing},
        "mtp": ({"what": "the MTP module (blk.<n_layers>, nextn_predict_layers = 1): at position i, from the trunk's "
                        "normed hidden state and the true t(i+1), its prediction of t(i+2); top1_vs_trunk_greedy is "
                        "the share where it equals the trunk's own argmax at i + 1 (greedy speculative acceptance of "
                        "one drafted token, teacher-forced)", **mtp_eval} if mtp_eval else None),
        "reference": {"prompt_tokens": prompt, "top10_ids": top.indices.tolist(),
                      "top10_logits": [round(float(v), 5) for v in top.values]},
    }
    with open(os.path.join(a.out_dir, EVAL_FILE), "w") as f:
        json.dump(eval_doc, f, indent=2)
        f.write("\n")

    t_total = time.time() - t_start
    run = {
        "command": "python3 " + " ".join([os.path.relpath(os.path.abspath(__file__), REPO_ROOT)] + (argv if argv is not None else sys.argv[1:])),
        "args": vars(a),
        "data_sha256": data_sha,
        "split": {"train_chars": len(train_text), "val_chars": len(val_text), "train_tokens": len(train_ids),
                  "val_tokens": len(val_ids)},
        "tokenizer": {"vocab_size": tok.vocab_size, "merges": len(merges), "bos_eos_id": BOS, "merges_sha256": merges_sha},
        "model": {"parameters": n_params, "active_parameters": active, "mtp_parameters": n_mtp_params, **export_cfg, "tied_embeddings": True},
        "best": {"step": best[1], "val_loss": best[0], "val_ppl": math.exp(best[0])},
        "steps_run": step,
        "file": {"name": MODEL_FILE, "bytes": size, "sha256": model_sha, "file_type": a.file_type},
        "timing_s": {"tokenizer": round(t_tok, 1), "training": round(t_train, 1), "total": round(time.time() - t_start, 1)},
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
                        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None, "bf16_autocast": use_bf16},
        "routing_validation": routing,
        "samples": {"prompt": "ROMEO:", "greedy_framework": greedy, "sampled_framework_t0.8_top40": sampled},
    }
    with open(os.path.join(a.out_dir, "run.json"), "w") as f:
        json.dump(run, f, indent=2)
        f.write("\n")
    print(f"wrote {model_path} ({size} bytes, sha256 {model_sha}) in {t_total:.0f}s total", flush=True)


if __name__ == "__main__":
    main()
