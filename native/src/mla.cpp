// Multi-head Latent Attention, absorbed form (mla.h).
#include "mla.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "quant/quant.h"

namespace tl {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// y_h = W[h] x_h for every local head h, in one parallel region. x is float[H][n][cols] (head-major, so each head's
// tokens are the contiguous [n x cols] input the kernels take); head h's output row r of token t goes to
// y[h * y_head + t * y_stride + r]. The slabs of one tensor share their type and shape, so the activations are
// converted once per head into the one format they need.
void head_matmuls(RankState & rs, const std::vector<QMatrix> & W, const float * x, int n, int64_t cols, float * y,
                  int64_t y_head, int64_t y_stride) {
    const int H = (int) W.size();
    if (H == 0 || n == 0) return;
    auto t0 = Clock::now();
    const QMatrix & W0 = W[0];
    const bool int_layout = W0.type == WeightType::I8 || W0.type == WeightType::I4;
    quant::Type at = quant::Type::F32;
    size_t as = (size_t) cols * sizeof(float);
    const uint8_t * acts = nullptr;
    if (int_layout) {
        if ((int) rs.mla_xq.size() < H) rs.mla_xq.resize(H);
        for (int h = 0; h < H; ++h) qacts_quantize(rs.mla_xq[h], x + (size_t) h * n * cols, n, cols, W0.cols_padded);
    } else if (W0.type == WeightType::BLOCKS && quant::traits(W0.qtype)->act_type != quant::Type::F32) {
        at = quant::traits(W0.qtype)->act_type;
        as = (size_t) quant::row_bytes(at, cols);
        AlignedBuffer & buf = rs.acts[(int) at];
        const size_t rows = (size_t) H * n;
        if (buf.size < as * rows || !buf.data()) buf.allocate(as * rows);
        rs.pool.run([&](int idx, int nth) {
            for (size_t r = rows * idx / nth; r < rows * (idx + 1) / nth; ++r)
                quant::quantize_acts(at, x + r * cols, buf.data() + as * r, cols);
        });
        acts = buf.data();
    }
    // Each thread takes a contiguous run of (head, 16-row tile) items, one kernel call per head it touches.
    const int64_t rows = W0.rows, tiles = (rows + 15) / 16, items = (int64_t) H * tiles;
    rs.pool.run([&](int idx, int nth) {
        const int64_t i0 = items * idx / nth, i1 = items * (idx + 1) / nth;
        for (int64_t h = i0 / tiles; h < H && h * tiles < i1; ++h) {
            const int64_t b = (std::max(i0, h * tiles) - h * tiles) * 16;
            const int64_t e = std::min(rows, (std::min(i1, (h + 1) * tiles) - h * tiles) * 16);
            if (b >= e) continue;
            const QMatrix & m = W[h];
            const float * xh = x + (size_t) h * n * cols;
            float * yh = y + h * y_head;
            if (m.type != WeightType::BLOCKS) {
                rs.kernels.matmul(m, xh, int_layout ? &rs.mla_xq[h] : nullptr, yh, y_stride, n, b, e);
                continue;
            }
            const void * a = acts ? (const void *) (acts + as * (size_t) h * n) : (const void *) xh;
            quant::matmul(m.qtype, m.data.data(), m.row_bytes(), cols, b, e, a, as, n, yh, y_stride);
        }
    });
    rs.times.matmul += seconds_since(t0);
}

// RoPE on `heads` vectors of rope_dim values each (at `stride`), one token's angles (cs, sn: rope_dim / 2 each).
void rotate(float * p, int heads, int64_t stride, int rope_dim, bool neox, const float * cs, const float * sn) {
    const int n_pairs = rope_dim / 2;
    for (int h = 0; h < heads; ++h, p += stride) {
        for (int i = 0; i < n_pairs; ++i) {
            float *a = neox ? p + i : p + 2 * i, *c = neox ? p + i + n_pairs : p + 2 * i + 1;
            const float x0 = *a, x1 = *c;
            *a = x0 * cs[i] - x1 * sn[i];
            *c = x0 * sn[i] + x1 * cs[i];
        }
    }
}

} // namespace

namespace layers {

void mla_attention(RankState & rs, const ForwardBatch & b, int l, const ShardWeights::Layer & w) {
    const ModelHParams & hp = rs.hp;
    const MlaHParams & m = hp.mla;
    const MlaLayerWeights & W = w.mla;
    const int H = rs.shard.n_heads, n = b.n;
    const int qk = m.nope + m.rope;     // a head's query
    const int row = m.kv_lora + m.rope; // a cached row, and a head's absorbed query [q_lat | q_pe]
    const int kvl = m.kv_lora;

    // 1. The query (through the q_lora bottleneck when there is one) and the latent row [c | k_pe], in one pass over x.
    rs.mla_q.resize((size_t) n * H * qk);
    float * kv = rs.k.data(); // [n][row]
    if (m.q_lora > 0) {
        rs.mla_qa.resize((size_t) n * m.q_lora);
        matmuls(rs, rs.xn.data(), n, hp.dim, {{&W.wq_a, rs.mla_qa.data()}, {&W.wkv_a, kv}});
        rms_norm_part(rs, rs.mla_qa.data(), rs.shared.attn_q_a_norm[l], n, m.q_lora, m.q_lora);
        matmuls(rs, rs.mla_qa.data(), n, m.q_lora, {{&W.wq, rs.mla_q.data()}});
    } else {
        matmuls(rs, rs.xn.data(), n, hp.dim, {{&W.wq, rs.mla_q.data()}, {&W.wkv_a, kv}});
    }
    rms_norm_part(rs, kv, rs.shared.attn_kv_a_norm[l], n, kvl, row);

    // 2. RoPE on q_pe of every head and on the shared k_pe; the row goes into the cache; q_nope gathered head-major.
    auto t0 = Clock::now();
    const int n_pairs = m.rope / 2, bs = rs.layout.kv_block_size;
    const bool neox = hp.rope_style == RopeStyle::NEOX;
    rs.mla_heads.resize((size_t) H * n * std::max(m.nope, kvl));
    float * q_nope = rs.mla_heads.data(); // [H][n][nope]
    for (int t = 0; t < n; ++t) {
        const float *cs = rs.rope_cos.data() + (size_t) t * n_pairs, *sn = rs.rope_sin.data() + (size_t) t * n_pairs;
        float * q = rs.mla_q.data() + (size_t) t * H * qk;
        rotate(q + m.nope, H, qk, m.rope, neox, cs, sn);
        rotate(kv + (size_t) t * row + kvl, 1, row, m.rope, neox, cs, sn);
        const BatchEntry & e = b.entries[b.tok_entry[t]];
        const int pos = b.tok_pos[t];
        rs.kv.write(l, e.block_table[pos / bs], pos % bs, kv + (size_t) t * row, nullptr);
        for (int h = 0; h < H; ++h)
            std::memcpy(q_nope + ((size_t) h * n + t) * m.nope, q + (size_t) h * qk, sizeof(float) * m.nope);
    }
    rs.times.rope += seconds_since(t0);

    // 3. The absorbed query [q_lat | q_pe] per head, kv_lora + rope wide like the cached rows: q_lat = W_kb[h] q_nope.
    float * qc = rs.q.data(); // [n][H][row]
    head_matmuls(rs, W.wk_b, q_nope, n, m.nope, qc, row, (int64_t) H * row);
    for (int t = 0; t < n; ++t)
        for (int h = 0; h < H; ++h)
            std::memcpy(qc + ((size_t) t * H + h) * row + kvl, rs.mla_q.data() + ((size_t) t * H + h) * qk + m.nope,
                        sizeof(float) * m.rope);

    // 4. Attention over the latent rows: every head of a token shares each row read (MQA with one KV head); the
    // values are the rows' first kv_lora elements. The output o_lat goes head-major into rs.att ([H][n][kv_lora]),
    // the layout step 5 multiplies. A token's heads are split into parts so that a short batch (decode) still gives
    // every thread work.
    t0 = Clock::now();
    const int nth = rs.pool.size();
    int parts = std::max((H + ATTN_MAX_ROWS - 1) / ATTN_MAX_ROWS, std::min(H, (nth + n - 1) / n));
    const int per_part = (H + parts - 1) / parts;
    parts = (H + per_part - 1) / per_part;
    const int64_t items = (int64_t) n * parts;
    const size_t scratch = attn_scratch_floats(per_part, b.max_ctx, row);
    float * o_lat = rs.att.data();
    rs.pool.run([&](int idx, int nthreads) {
        float * sc = rs.scores.data() + (size_t) idx * scratch;
        for (int64_t it = idx; it < items; it += nthreads) {
            const int t = (int) (it / parts), h0 = (int) (it % parts) * per_part;
            const BatchEntry & e = b.entries[b.tok_entry[t]];
            AttnTask task;
            rs.kv.fill_task(task, l, e.block_table, 0);
            task.rows = std::min(per_part, H - h0);
            task.n_ctx = b.tok_pos[t] + 1;
            task.scale = m.kq_scale;
            task.q = qc + ((size_t) t * H + h0) * row;
            task.row_stride = row;
            task.out = o_lat + ((size_t) h0 * n + t) * kvl;
            task.out_stride = (int64_t) n * kvl;
            rs.kernels.attend(task, sc);
        }
    });
    rs.times.attention += seconds_since(t0);

    // 5. Each head's value o[h] = W_vb[h] o_lat[h], then the output projection (this rank's heads' columns).
    rs.mla_o.resize((size_t) n * H * m.v_head);
    head_matmuls(rs, W.wv_b, o_lat, n, kvl, rs.mla_o.data(), m.v_head, (int64_t) H * m.v_head);
    matmuls(rs, rs.mla_o.data(), n, (int64_t) H * m.v_head, {{&w.wo, rs.partial.data()}});
    rs.partial_whole = rs.layout.tp == 1; // every head on every rank beside expert parallelism: not summed
}

} // namespace layers
} // namespace tl
