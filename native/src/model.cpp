// The architecture-neutral model instance (model.h): ranks, weights accounting, and the forward dispatch.
#include "model.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "architecture.h"
#include "layers.h"
#include "moe.h"
#include "quant/formats.h"

namespace tl {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Every weight matrix of a layer shard, the MoE experts included.
template <typename F>
void for_each_matrix(const ShardWeights::Layer & L, F && f) {
    for (const QMatrix * m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) f(*m);
    // MLA (deepseek2): the compressions and the per-head slabs.
    for (const QMatrix * m : {&L.mla.wq_a, &L.mla.wq, &L.mla.wkv_a}) f(*m);
    for (const auto * v : {&L.mla.wk_b, &L.mla.wv_b})
        for (const QMatrix & m : *v) f(m);
    if (!L.moe) return;
    for (const auto * v : {&L.moe->gate, &L.moe->up, &L.moe->down})
        for (const QMatrix & m : *v) f(m);
    for (const QMatrix * m : {&L.moe->sh_gate, &L.moe->sh_up, &L.moe->sh_down}) f(*m);
}

} // namespace

namespace {

const std::pair<const char *, WeightsPolicy> kPolicyNames[] = {
    {"native", WeightsPolicy::NATIVE}, {"f32", WeightsPolicy::F32},   {"bf16", WeightsPolicy::BF16},
    {"q8_0", WeightsPolicy::Q8_0},     {"q6_k", WeightsPolicy::Q6_K}, {"q5_k", WeightsPolicy::Q5_K},
    {"q4_k", WeightsPolicy::Q4_K},     {"q4_0", WeightsPolicy::Q4_0}, {"mixed", WeightsPolicy::MIXED},
    {"int8", WeightsPolicy::INT8},     {"int4", WeightsPolicy::INT4}};

} // namespace

const char * weights_policy_name(WeightsPolicy p) {
    for (auto & [name, q] : kPolicyNames)
        if (q == p) return name;
    return "native";
}

bool parse_weights_policy(const std::string & s, WeightsPolicy * out) {
    for (auto & [name, p] : kPolicyNames) {
        if (s == name) {
            *out = p;
            return true;
        }
    }
    return false;
}

std::vector<KvLayerShape> kv_layer_shapes(const ModelHParams & hp, int32_t local_kv_heads) {
    KvLayerShape s;
    if (hp.is_mla()) {
        // One row per token: the latent (kv_lora), then the shared RoPE key part; the value is the latent.
        s.heads = 1;
        s.k_width = hp.mla.kv_lora + hp.mla.rope;
        s.v_width = hp.mla.kv_lora;
        s.v_in_k = true;
    } else {
        s.heads = local_kv_heads;
        s.k_width = s.v_width = hp.head_dim;
    }
    return std::vector<KvLayerShape>(hp.n_layers, s);
}

size_t kv_bytes_per_token(const ModelHParams & hp, KvDtype dtype, int32_t tp) {
    size_t b = 0;
    // Ranks own n_kv_heads / tp heads each (the MLA latent: all of it).
    for (const KvLayerShape & s : kv_layer_shapes(hp, hp.n_kv_heads / std::max(1, tp))) b += s.bytes_per_token(dtype);
    return b * (size_t) std::max(1, tp);
}

size_t kv_bytes_per_token_mha(const ModelHParams & hp, KvDtype dtype) {
    KvLayerShape s;
    s.heads = hp.n_heads;
    s.k_width = hp.is_mla() ? hp.mla.nope + hp.mla.rope : hp.head_dim;
    s.v_width = hp.is_mla() ? hp.mla.v_head : hp.head_dim;
    // bytes_per_token as if keys and values had one width each: (k + v) elements per head, two scales under int8.
    size_t per_layer = (size_t) s.heads * (s.k_width + s.v_width) * kv_dtype_bytes(dtype);
    if (dtype == KvDtype::I8) per_layer += (size_t) s.heads * 2 * sizeof(float);
    return per_layer * (size_t) hp.n_layers;
}

Model::Model(const Architecture & arch, ModelHParams hp, ModelWeights weights, ModelLayout layout)
    : arch_(arch), hp_(std::move(hp)), shared_(std::move(weights.shared)), layout_(layout) {
    const int n = (int) weights.shards.size();
    comm_ = std::make_unique<SharedMemoryCommunicator>(n, layout_.allreduce_delay_us);
    comm_moe_ = std::make_unique<SharedMemoryCommunicator>(n, layout_.alltoall_delay_us);
    for (int r = 0; r < n; ++r)
        ranks_.push_back(
            std::make_unique<RankState>(r, n, hp_, layout_, shared_, *comm_, *comm_moe_, std::move(weights.shards[r])));
    rank_threads_ = std::make_unique<RankThreads>(n);
    std::map<std::string, WeightFallback> fb;
    auto note = [&](const QMatrix & m) {
        if (m.rows && m.requested != m.qtype)
            fb[m.name] = WeightFallback{m.name, quant::type_name(m.requested), quant::type_name(m.qtype)};
    };
    note(shared_.tok_embd);
    for (const auto & r : ranks_) {
        if (!r->shard.output_is_tok_embd) note(r->shard.output);
        for (const auto & L : r->shard.layers) for_each_matrix(L, note);
    }
    for (auto & [_, f] : fb) fallbacks_.push_back(f);
}

Model::~Model() = default;

std::vector<std::pair<std::string, size_t>> Model::weight_bytes() const {
    std::map<std::string, size_t> by;
    auto add = [&](const QMatrix & m) {
        if (m.rows) by[quant::type_name(m.qtype)] += m.bytes();
    };
    add(shared_.tok_embd);
    size_t norms = shared_.output_norm.size() * sizeof(float);
    for (const auto * vs :
         {&shared_.attn_norm, &shared_.ffn_norm, &shared_.attn_post_norm, &shared_.ffn_post_norm, &shared_.attn_q_norm,
          &shared_.attn_k_norm, &shared_.attn_q_a_norm, &shared_.attn_kv_a_norm})
        for (const std::vector<float> & v : *vs) norms += v.size() * sizeof(float);
    norms += shared_.rope_factors.size() * sizeof(float);
    for (const QMatrix & m : shared_.moe_router) add(m);
    for (const std::vector<float> & v : shared_.moe_sel_bias) norms += v.size() * sizeof(float);
    for (const auto & r : ranks_) {
        if (!r->shard.output_is_tok_embd) add(r->shard.output);
        for (const auto & L : r->shard.layers) {
            for_each_matrix(L, add);
            norms += (L.bq.size() + L.bk.size() + L.bv.size()) * sizeof(float); // biases: f32 too
        }
    }
    by["f32"] += norms;
    return {by.begin(), by.end()};
}

size_t Model::weight_bytes_total() const {
    size_t total = 0;
    for (auto & [_, b] : weight_bytes()) total += b;
    return total;
}

void Model::copy_kv_block(int32_t src, int32_t dst) {
    for (auto & r : ranks_) r->kv.copy_block(src, dst);
}

size_t Model::kv_bytes() const {
    size_t b = 0;
    for (const auto & r : ranks_) b += r->kv.bytes();
    return b;
}

size_t Model::scratch_bytes() const {
    size_t b = 0;
    for (const auto & r : ranks_) b += r->scratch_bytes();
    return b;
}

ModelTimes Model::times() const {
    ModelTimes t;
    for (const auto & r : ranks_) {
        t.matmul += r->times.matmul;
        t.attention += r->times.attention;
        t.norm += r->times.norm;
        t.rope += r->times.rope;
        t.ffn_act += r->times.ffn_act;
        t.embed += r->times.embed;
        t.output += r->times.output;
        t.rank_busy.push_back(r->busy);
        t.rank_allreduce.push_back(r->allreduce);
        t.allreduces += r->times.allreduces;
        if (r->moe) t.rank_expert.push_back(r->moe->expert_seconds);
        t.rank_alltoall.push_back(r->alltoall);
        t.alltoall_rows += r->a2a_rows;
    }
    t.alltoalls = ranks_[0]->alltoalls;
    if (hp_.moe.enabled()) {
        // Rank 0 counts every routed token (each rank routes all of them the same way).
        const MoeScratch & s = *ranks_[0]->moe;
        for (int l = 0; l < hp_.n_layers; ++l)
            if (hp_.moe.layer_is_moe(l)) t.moe_tokens.push_back(s.tokens[l]);
    } else {
        t.rank_alltoall.clear();
    }
    return t;
}

MoeActiveCounts Model::active_counts() const {
    MoeActiveCounts c;
    auto params = [](const QMatrix & m) { return (double) m.rows * (double) m.cols; };
    auto both = [&](const QMatrix & m) {
        c.active_params += params(m);
        c.total_params += params(m);
        c.active_bytes_per_token += (double) m.bytes();
    };
    const QMatrix & embd = shared_.tok_embd;
    c.total_params += params(embd);
    if (!hp_.tied_output) {
        c.active_params += (double) embd.cols; // one row looked up (a tied head reads the whole matrix below)
        c.active_bytes_per_token += (double) embd.row_bytes();
    }
    for (const QMatrix & m : shared_.moe_router) both(m);
    // Norm weights (read by every token, in f32).
    auto vec = [&](const std::vector<float> & v) {
        c.active_params += (double) v.size();
        c.total_params += (double) v.size();
        c.active_bytes_per_token += (double) (v.size() * sizeof(float));
    };
    vec(shared_.output_norm);
    for (const auto * vs :
         {&shared_.attn_norm, &shared_.ffn_norm, &shared_.attn_post_norm, &shared_.ffn_post_norm, &shared_.attn_q_norm,
          &shared_.attn_k_norm, &shared_.attn_q_a_norm, &shared_.attn_kv_a_norm})
        for (const std::vector<float> & v : *vs) vec(v);
    for (const auto & r : ranks_) {
        const ShardWeights & S = r->shard;
        if (S.output_is_tok_embd) { // the whole embedding matrix is read as the head
            c.active_params += params(embd);
            c.active_bytes_per_token += (double) embd.bytes();
        } else if (hp_.tied_output) { // this rank's copy of its vocabulary rows of token_embd (tp > 1), counted once
            c.active_params += params(S.output);
            c.active_bytes_per_token += (double) S.output.bytes();
        } else {
            both(S.output);
        }
        for (const auto & L : S.layers) {
            for (const QMatrix * m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) both(*m);
            for (const auto * v : {&L.bq, &L.bk, &L.bv}) vec(*v);
            // MLA: every token runs the compressions and each of the rank's heads' slabs.
            for (const QMatrix * m : {&L.mla.wq_a, &L.mla.wq, &L.mla.wkv_a}) both(*m);
            for (const auto * v : {&L.mla.wk_b, &L.mla.wv_b})
                for (const QMatrix & m : *v) both(m);
            if (!L.moe) continue;
            for (const QMatrix * m : {&L.moe->sh_gate, &L.moe->sh_up, &L.moe->sh_down}) both(*m);
            double p = 0, bytes = 0;
            for (const auto * v : {&L.moe->gate, &L.moe->up, &L.moe->down})
                for (size_t e = 0; e < v->size(); ++e) {
                    // A redundant expert's replica (expert parallelism) is the same parameters again.
                    if (L.moe->part[e] == MoeLayerWeights::SECOND) continue;
                    p += params((*v)[e]);
                    bytes += (double) (*v)[e].bytes();
                }
            c.total_params += p;
            const double share = (double) hp_.moe.n_expert_used / hp_.moe.n_expert;
            c.active_params += p * share;
            c.active_bytes_per_token += bytes * share;
        }
    }
    return c;
}

int64_t Model::logits_rows(const std::vector<BatchEntry> & batch) {
    int64_t rows = 0;
    for (const BatchEntry & e : batch) rows += !e.want_logits ? 0 : e.all_logits ? e.n_tokens : 1;
    return rows;
}

void Model::forward(const std::vector<BatchEntry> & batch, float * logits) {
    rank_threads_->run([&](int r) { rank_forward(r, batch, logits); });
}

// The architecture's forward on one rank; busy time is the rank's wall time less its all-reduces.
void Model::rank_forward(int r, const std::vector<BatchEntry> & batch, float * logits) {
    RankState & R = *ranks_[r];
    const auto t_start = Clock::now();
    const double allreduce_before = R.allreduce + R.alltoall;
    const ForwardBatch b(batch);
    if (b.n == 0) return;
    arch_.forward(R, b, logits);
    R.busy += seconds_since(t_start) - (R.allreduce + R.alltoall - allreduce_before);
}

} // namespace tl
