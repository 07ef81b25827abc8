// The grammar matcher, token trie and mask cache (grammar_matcher.h).
#include "grammar_matcher.h"

#include <algorithm>
#include <cstring>
#include <deque>

#include "errors.h"

namespace tl {

// ---------------------------------------------------------------------------------------------------------------
// TokenTrie

TokenTrie::TokenTrie(const Tokenizer & tok) {
    const int32_t V = tok.n_vocab();
    pieces_.resize(V);
    eog_.assign(V, 0);
    std::vector<int32_t> order;
    for (int32_t id = 0; id < V; ++id) {
        eog_[id] = tok.is_end_of_generation(id) ? 1 : 0;
        const int32_t ty = tok.token_type(id);
        if (ty == 2 || ty == 3 || ty == 5) continue; // unknown, control, unused: never produced under a grammar
        pieces_[id] = tok.token_to_piece(id);
        if (!pieces_[id].empty()) order.push_back(id);
    }
    // std::string orders bytes as unsigned char, so a prefix sorts before its extensions and children group by byte.
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        const int c = pieces_[a].compare(pieces_[b]);
        return c != 0 ? c < 0 : a < b;
    });
    struct Pending {
        uint32_t node;
        size_t a, b, depth;
    };
    // Breadth first, so each node's children are contiguous.
    nodes_.push_back(Node());
    std::deque<Pending> queue{{0, 0, order.size(), 0}};
    while (!queue.empty()) {
        Pending p = queue.front();
        queue.pop_front();
        size_t i = p.a;
        nodes_[p.node].tok_begin = (uint32_t) ids_.size();
        while (i < p.b && pieces_[order[i]].size() == p.depth) ids_.push_back(order[i++]);
        nodes_[p.node].tok_end = (uint32_t) ids_.size();
        nodes_[p.node].first_child = (uint32_t) nodes_.size();
        uint32_t n_children = 0;
        while (i < p.b) {
            const uint8_t byte = (uint8_t) pieces_[order[i]][p.depth];
            size_t k = i;
            while (k < p.b && (uint8_t) pieces_[order[k]][p.depth] == byte) ++k;
            Node child;
            child.byte = byte;
            nodes_.push_back(child);
            queue.push_back({(uint32_t) nodes_.size() - 1, i, k, p.depth + 1});
            ++n_children;
            i = k;
        }
        nodes_[p.node].n_children = n_children;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// GrammarRuntime

GrammarRuntime::GrammarRuntime(std::shared_ptr<const CompiledGrammar> g, std::shared_ptr<const TokenTrie> trie,
                               GrammarCounters * counters)
    : g_(std::move(g)), trie_(std::move(trie)), counters_(counters) {
    nodes_.push_back({UINT32_MAX, 0, 0}); // 0: the empty stack
}

GrammarRuntime::~GrammarRuntime() = default;

void GrammarRuntime::detach(int32_t * slot) {
    slots_.erase(std::remove(slots_.begin(), slots_.end(), slot), slots_.end());
}

uint32_t GrammarRuntime::intern_node(uint32_t pos, uint32_t parent) {
    const uint64_t key = ((uint64_t) pos << 32) | parent;
    auto it = node_ids_.find(key);
    if (it != node_ids_.end()) return it->second;
    const uint32_t depth = nodes_[parent].depth + 1;
    if (depth > GrammarRuntimeLimits::MAX_DEPTH) {
        overflow_ = true;
        return 0;
    }
    const uint32_t id = (uint32_t) nodes_.size();
    nodes_.push_back({pos, parent, depth});
    node_ids_.emplace(key, id);
    return id;
}

// All stacks reachable from "match the sequence at `pos`, then continue with stack `rest`" without consuming a
// character: their tops are character classes, or the empty stack for a complete parse. (rest, pos) pairs already
// expanded in this transition are skipped, which keeps ambiguous grammars (r ::= a | a, nested) linear.
void GrammarRuntime::expand(uint32_t rest, uint32_t pos) {
    const CompiledGrammar & g = *g_;
    work_.clear();
    work_.push_back({rest, pos});
    while (!work_.empty()) {
        const auto [r, p] = work_.back();
        work_.pop_back();
        if (!visited_.insert(((uint64_t) r << 32) | p).second) continue;
        if (++steps_ > GrammarRuntimeLimits::MAX_EXPAND_STEPS) {
            overflow_ = true;
            return;
        }
        const GElem & e = g.elems[p];
        switch (e.type) {
            case GElemType::END:
            case GElemType::ALT:
                if (r == 0) out_.push_back(0);
                else work_.push_back({nodes_[r].parent, nodes_[r].pos});
                break;
            case GElemType::CLASS: {
                const uint32_t id = intern_node(p, r);
                if (overflow_) return;
                out_.push_back(id);
                break;
            }
            case GElemType::REF: {
                const GElemType next = g.elems[p + 1].type;
                // A reference ending its sequence continues straight with `rest` (no entry: tail calls stay flat).
                const uint32_t cont = (next == GElemType::END || next == GElemType::ALT) ? r : intern_node(p + 1, r);
                if (overflow_) return;
                for (uint32_t a : g.rule_alts[e.value]) work_.push_back({cont, a});
                break;
            }
        }
    }
}

int32_t GrammarRuntime::intern_state(std::vector<uint32_t> && stacks, uint32_t partial_cp, uint8_t partial_need,
                                     uint8_t partial_len) {
    std::string key;
    key.resize(6 + stacks.size() * 4);
    memcpy(&key[0], &partial_cp, 4);
    key[4] = (char) partial_need;
    key[5] = (char) partial_len;
    if (!stacks.empty()) memcpy(&key[6], stacks.data(), stacks.size() * 4);
    auto it = state_ids_.find(key);
    if (it != state_ids_.end()) return it->second;
    State s;
    s.accepting = !stacks.empty() && stacks[0] == 0;
    s.stacks = std::move(stacks);
    s.partial_cp = partial_cp;
    s.partial_need = partial_need;
    s.partial_len = partial_len;
    states_.push_back(std::move(s));
    const int32_t id = (int32_t) states_.size() - 1;
    state_ids_.emplace(std::move(key), id);
    return id;
}

int32_t GrammarRuntime::initial() {
    if (initial_ != TRANS_UNKNOWN) return initial_;
    out_.clear();
    visited_.clear();
    steps_ = 0;
    overflow_ = false;
    for (uint32_t a : g_->rule_alts[g_->root]) {
        expand(0, a);
        if (overflow_) break;
    }
    std::sort(out_.begin(), out_.end());
    out_.erase(std::unique(out_.begin(), out_.end()), out_.end());
    if (overflow_ || out_.size() > GrammarRuntimeLimits::MAX_STACKS) initial_ = DEAD;
    else initial_ = intern_state(std::vector<uint32_t>(out_), 0, 0, 0);
    return initial_;
}

int32_t GrammarRuntime::advance(int32_t state, uint32_t cp) {
    out_.clear();
    visited_.clear();
    steps_ = 0;
    overflow_ = false;
    const CompiledGrammar & g = *g_;
    for (uint32_t s : states_[state].stacks) {
        if (s == 0) continue;
        const Node n = nodes_[s];
        if (!g.classes[g.elems[n.pos].value].matches(cp)) continue;
        expand(n.parent, n.pos + 1);
        if (overflow_) break;
    }
    if (!overflow_ && out_.empty()) return DEAD;
    std::sort(out_.begin(), out_.end());
    out_.erase(std::unique(out_.begin(), out_.end()), out_.end());
    if (overflow_ || out_.size() > GrammarRuntimeLimits::MAX_STACKS) {
        if (counters_) counters_->limit_hits.fetch_add(1, std::memory_order_relaxed);
        return DEAD;
    }
    return intern_state(std::vector<uint32_t>(out_), 0, 0, 0);
}

bool GrammarRuntime::partial_possible(int32_t state, uint32_t lo, uint32_t hi) const {
    const CompiledGrammar & g = *g_;
    for (uint32_t s : states_[state].stacks)
        if (s != 0 && g.classes[g.elems[nodes_[s].pos].value].matches_any(lo, hi)) return true;
    return false;
}

int32_t GrammarRuntime::compute_step(int32_t state, uint8_t b) {
    // The smallest code point a sequence of each length may encode: shorter forms (overlong) are not UTF-8.
    static const uint32_t MIN_CP[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t cp;
    uint8_t need, len;
    if (states_[state].partial_need > 0) {
        if ((b & 0xC0) != 0x80) return DEAD;
        cp = (states_[state].partial_cp << 6) | (b & 0x3F);
        need = states_[state].partial_need - 1;
        len = states_[state].partial_len;
        if (need == 0) {
            if (cp < MIN_CP[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return DEAD;
            return advance(state, cp);
        }
    } else if (b < 0x80) {
        return advance(state, b);
    } else if ((b & 0xE0) == 0xC0) {
        cp = b & 0x1F;
        need = 1;
    } else if ((b & 0xF0) == 0xE0) {
        cp = b & 0x0F;
        need = 2;
    } else if ((b & 0xF8) == 0xF0) {
        cp = b & 0x07;
        need = 3;
    } else return DEAD;
    if (states_[state].partial_need == 0) len = need + 1;
    // An unfinished character: possible if some stack's class holds a code point this sequence can still encode.
    uint32_t lo = cp << (6 * need), hi = lo | ((1u << (6 * need)) - 1);
    lo = std::max(lo, MIN_CP[len]);
    hi = std::min<uint32_t>(hi, 0x10FFFF);
    if (lo > hi || !partial_possible(state, lo, hi)) return DEAD;
    std::vector<uint32_t> stacks = states_[state].stacks;
    return intern_state(std::move(stacks), cp, need, len);
}

int32_t GrammarRuntime::step_byte(int32_t state, uint8_t b) {
    {
        State & s = states_[state];
        if (s.dense) {
            const int32_t t = s.dense[b];
            if (t != TRANS_UNKNOWN) return t;
        } else {
            auto it = sparse_trans_.find(((uint64_t) state << 8) | b);
            if (it != sparse_trans_.end()) return it->second;
        }
    }
    const int32_t t = compute_step(state, b);
    State & s = states_[state]; // compute_step may have grown states_
    if (!s.dense && ++s.n_queries >= 8 && n_dense_ < GrammarRuntimeLimits::MAX_DENSE_TABLES) {
        // A state queried often gets a flat table (the hot loop of a mask walk is then one load per byte).
        s.dense.reset(new int32_t[256]);
        std::fill(s.dense.get(), s.dense.get() + 256, TRANS_UNKNOWN);
        for (int c = 0; c < 256; ++c) {
            auto it = sparse_trans_.find(((uint64_t) state << 8) | (uint64_t) c);
            if (it != sparse_trans_.end()) {
                s.dense[c] = it->second;
                sparse_trans_.erase(it);
            }
        }
        ++n_dense_;
    }
    if (s.dense) s.dense[b] = t;
    else sparse_trans_.emplace(((uint64_t) state << 8) | b, t);
    return t;
}

int32_t GrammarRuntime::step_bytes(int32_t state, const std::string & bytes) {
    for (char c : bytes) {
        if (state == DEAD) return DEAD;
        state = step_byte(state, (uint8_t) c);
    }
    return state;
}

bool GrammarRuntime::allowed(int32_t state, int32_t token) {
    if (token < 0 || token >= trie_->n_vocab()) return false;
    if (trie_->is_eog(token)) return accepting(state);
    const std::string & piece = trie_->piece(token);
    return !piece.empty() && step_bytes(state, piece) != DEAD;
}

const std::vector<uint64_t> & GrammarRuntime::mask(int32_t state, bool * cached) {
    auto hit = mask_index_.find(state);
    if (hit != mask_index_.end()) {
        masks_.splice(masks_.begin(), masks_, hit->second);
        *cached = true;
        return masks_.front().second;
    }
    *cached = false;
    const int32_t V = trie_->n_vocab();
    std::vector<uint64_t> bits(((size_t) V + 63) / 64, 0);
    if (accepting(state))
        for (int32_t id = 0; id < V; ++id)
            if (trie_->is_eog(id)) bits[id >> 6] |= 1ull << (id & 63);
    const auto & nodes = trie_->nodes();
    const auto & ids = trie_->ids();
    std::vector<std::pair<uint32_t, int32_t>> stack{{0u, state}};
    while (!stack.empty()) {
        const auto [ni, st] = stack.back();
        stack.pop_back();
        const TokenTrie::Node & n = nodes[ni];
        for (uint32_t k = n.tok_begin; k < n.tok_end; ++k) bits[ids[k] >> 6] |= 1ull << (ids[k] & 63);
        for (uint32_t c = n.first_child; c < n.first_child + n.n_children; ++c) {
            const int32_t ns = step_byte(st, nodes[c].byte);
            if (ns != DEAD) stack.push_back({c, ns});
        }
    }
    const size_t bytes = bits.size() * 8;
    const size_t cap = std::max<size_t>(1, GrammarRuntimeLimits::MAX_MASK_BYTES / std::max<size_t>(bytes, 1));
    while (masks_.size() >= cap) {
        mask_index_.erase(masks_.back().first);
        masks_.pop_back();
    }
    masks_.emplace_front(state, std::move(bits));
    mask_index_[state] = masks_.begin();
    return masks_.front().second;
}

bool GrammarRuntime::any_allowed(int32_t state) {
    if (accepting(state))
        for (int32_t id = 0; id < trie_->n_vocab(); ++id)
            if (trie_->is_eog(id)) return true;
    const auto & nodes = trie_->nodes();
    std::vector<std::pair<uint32_t, int32_t>> stack{{0u, state}};
    while (!stack.empty()) {
        const auto [ni, st] = stack.back();
        stack.pop_back();
        const TokenTrie::Node & n = nodes[ni];
        if (n.tok_end > n.tok_begin) return true;
        for (uint32_t c = n.first_child; c < n.first_child + n.n_children; ++c) {
            const int32_t ns = step_byte(st, nodes[c].byte);
            if (ns != DEAD) stack.push_back({c, ns});
        }
    }
    return false;
}

GrammarRuntime::Content GrammarRuntime::content(int32_t state) const {
    Content c;
    const State & s = states_[state];
    c.partial_cp = s.partial_cp;
    c.partial_need = s.partial_need;
    c.partial_len = s.partial_len;
    for (uint32_t id : s.stacks) {
        std::vector<uint32_t> positions;
        for (uint32_t n = id; n != 0; n = nodes_[n].parent) positions.push_back(nodes_[n].pos);
        c.stacks.push_back(std::move(positions));
    }
    return c;
}

int32_t GrammarRuntime::restore(const Content & c) {
    std::vector<uint32_t> stacks;
    overflow_ = false;
    for (const auto & positions : c.stacks) {
        uint32_t id = 0;
        for (auto it = positions.rbegin(); it != positions.rend(); ++it) id = intern_node(*it, id);
        stacks.push_back(id);
    }
    std::sort(stacks.begin(), stacks.end());
    return intern_state(std::move(stacks), c.partial_cp, c.partial_need, c.partial_len);
}

void GrammarRuntime::clear_all() {
    nodes_.resize(1);
    node_ids_.clear();
    states_.clear();
    state_ids_.clear();
    sparse_trans_.clear();
    n_dense_ = 0;
    masks_.clear();
    mask_index_.clear();
    initial_ = TRANS_UNKNOWN;
}

void GrammarRuntime::maybe_reset() {
    if (states_.size() <= GrammarRuntimeLimits::MAX_STATES && nodes_.size() <= GrammarRuntimeLimits::MAX_NODES &&
        sparse_trans_.size() <= GrammarRuntimeLimits::MAX_STATES * 4)
        return;
    std::vector<std::pair<int32_t *, Content>> keep;
    for (int32_t * slot : slots_)
        if (*slot >= 0) keep.push_back({slot, content(*slot)});
    clear_all();
    for (auto & [slot, c] : keep) *slot = restore(c);
}

// ---------------------------------------------------------------------------------------------------------------
// GrammarConstraint

GrammarConstraint::GrammarConstraint(std::shared_ptr<GrammarRuntime> rt, std::vector<std::string> triggers)
    : rt_(std::move(rt)), triggers_(std::move(triggers)) {
    rt_->attach(&state_);
    active_ = triggers_.empty();
    for (const auto & t : triggers_) max_trigger_ = std::max(max_trigger_, t.size());
    if (active_) state_ = rt_->initial();
}

GrammarConstraint::~GrammarConstraint() { rt_->detach(&state_); }

bool GrammarConstraint::accept(int32_t token, const std::string & text) {
    if (active_) {
        if (rt_->trie().is_eog(token)) return rt_->accepting(state_); // nothing to advance: allowed when accepting
        const std::string & piece = rt_->trie().piece(token);
        const int32_t s = piece.empty() ? GrammarRuntime::DEAD : rt_->step_bytes(state_, piece);
        if (s == GrammarRuntime::DEAD) return false;
        state_ = s;
        return true;
    }
    const size_t old = tail_.size();
    tail_ += text;
    // A trigger may start in the bytes kept from earlier tokens: search from there.
    const size_t from = old >= max_trigger_ ? old - (max_trigger_ - 1) : 0;
    size_t best = std::string::npos;
    for (const auto & t : triggers_) {
        const size_t p = tail_.find(t, from);
        if (p != std::string::npos && p < best) best = p;
    }
    if (best == std::string::npos) {
        if (tail_.size() > max_trigger_) tail_.erase(0, tail_.size() - max_trigger_);
        return true;
    }
    active_ = true;
    state_ = rt_->initial();
    if (state_ == GrammarRuntime::DEAD) return false;
    const int32_t s = rt_->step_bytes(state_, tail_.substr(best));
    tail_.clear();
    if (s == GrammarRuntime::DEAD) return false;
    state_ = s;
    return true;
}

// ---------------------------------------------------------------------------------------------------------------
// GrammarRegistry

std::shared_ptr<const TokenTrie> GrammarRegistry::trie() {
    std::call_once(trie_once_, [this] { trie_ = std::make_shared<const TokenTrie>(tok_); });
    return trie_;
}

std::shared_ptr<const CompiledGrammar> GrammarRegistry::compile(const std::string & text, bool lazy) {
    // Lazy grammars skip the start check, so they are cached under their own key: an eager use still gets the check.
    const std::string key = (lazy ? "L" : "E") + text;
    {
        std::lock_guard<std::mutex> l(mu_);
        for (auto it = compiled_.begin(); it != compiled_.end(); ++it)
            if (it->first == key) {
                compiled_.splice(compiled_.begin(), compiled_, it);
                return it->second;
            }
    }
    auto g = std::make_shared<const CompiledGrammar>(parse_grammar(text));
    // A throwaway runtime on the caller's thread (the engine's runtimes belong to its thread).
    GrammarRuntime check(g, trie(), nullptr);
    const int32_t s = check.initial();
    if (s == GrammarRuntime::DEAD)
        fail(ErrorCode::INVALID_ARGUMENT,
             "grammar: the start rule expands to more than " + std::to_string(GrammarRuntimeLimits::MAX_STACKS) +
                 " alternatives at once (or nests deeper than " + std::to_string(GrammarRuntimeLimits::MAX_DEPTH) +
                 "): too ambiguous to match");
    if (!lazy && !check.any_allowed(s))
        fail(ErrorCode::INVALID_ARGUMENT,
             "grammar matches nothing: no token of the model's vocabulary can start a text that matches 'root'");
    std::lock_guard<std::mutex> l(mu_);
    compiled_.emplace_front(key, g);
    while (compiled_.size() > 16) compiled_.pop_back();
    return g;
}

std::shared_ptr<GrammarRuntime> GrammarRegistry::runtime(const std::shared_ptr<const CompiledGrammar> & g) {
    for (auto it = runtimes_.begin(); it != runtimes_.end(); ++it)
        if (&(*it)->grammar() == g.get()) {
            runtimes_.splice(runtimes_.begin(), runtimes_, it);
            return runtimes_.front();
        }
    runtimes_.push_front(std::make_shared<GrammarRuntime>(g, trie(), &counters_));
    while (runtimes_.size() > 8) runtimes_.pop_back();
    return runtimes_.front();
}

} // namespace tl
