// Running a compiled GBNF grammar (grammar.h) over a vocabulary: which tokens may come next.
//
// A matcher state is a set of stacks over the grammar's elements (every way the text so far can still be parsed;
// each stack's top is the character class to match next, the empty stack means "complete parse") plus the bytes of a
// code point a token left unfinished (tokens are bytes; a character may be split across tokens). Stacks are
// hash-consed persistent lists, so a state is a small sorted vector of ids, and states are interned: the transition
// state × byte → state is memoised, which turns the grammar into a lazily built byte automaton.
//
// The token mask walks a byte trie of the whole vocabulary (TokenTrie, built once per tokenizer) from the current
// state: a prefix shared by thousands of tokens is matched once. Control and other special tokens are never allowed;
// the end-of-generation tokens are allowed exactly when the state accepts. Masks are cached per state (LRU), since
// JSON generation keeps returning to the same states.
//
// Bounds against hostile grammars (docs/structured-output.md): a state may hold at most MAX_STACKS stacks, a stack
// at most MAX_DEPTH entries, and one expansion at most MAX_EXPAND_STEPS steps; a transition that would exceed one is
// treated as impossible (the token is masked out) and counted. The runtime's memory (states, stack nodes, masks) is
// capped: past a cap it is cleared at the next safe point and rebuilt on demand.
#pragma once
#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "grammar.h"
#include "grammar_stats.h"
#include "tokenizer.h"

namespace tl {

struct GrammarRuntimeLimits {
    static constexpr size_t MAX_STACKS = 1024;          // stacks in one state
    static constexpr uint32_t MAX_DEPTH = 4096;         // entries in one stack (nesting of the text)
    static constexpr size_t MAX_EXPAND_STEPS = 1 << 16; // work in one code-point transition
    static constexpr size_t MAX_STATES = 1 << 16;       // interned states before a reset
    static constexpr size_t MAX_NODES = 1 << 20;        // interned stack entries before a reset
    static constexpr size_t MAX_DENSE_TABLES = 4096;    // states with a 256-entry transition table
    static constexpr size_t MAX_MASK_BYTES = 8u << 20;  // cached masks per grammar
};

// The vocabulary as a byte trie. Built once per tokenizer; immutable, shared by every request.
class TokenTrie {
public:
    explicit TokenTrie(const Tokenizer & tok);
    struct Node {
        uint32_t first_child = 0, n_children = 0; // children: nodes [first_child, first_child + n_children)
        uint32_t tok_begin = 0, tok_end = 0;      // tokens spelled exactly by this node's path: ids_[begin, end)
        uint8_t byte = 0;                         // the byte leading into this node
    };
    const std::vector<Node> & nodes() const { return nodes_; }
    const std::vector<int32_t> & ids() const { return ids_; }
    // The bytes a token stands for if the grammar may ever produce it ("" for control, unused and unknown tokens,
    // which are never allowed).
    const std::string & piece(int32_t id) const { return pieces_[id]; }
    bool is_eog(int32_t id) const { return eog_[id]; }
    int32_t n_vocab() const { return (int32_t) pieces_.size(); }

private:
    std::vector<Node> nodes_;
    std::vector<int32_t> ids_;
    std::vector<std::string> pieces_;
    std::vector<uint8_t> eog_;
};

// A grammar's states over one vocabulary. Used only by the engine thread (or by one caller for a throwaway check).
class GrammarRuntime {
public:
    static constexpr int32_t DEAD = -1;
    GrammarRuntime(std::shared_ptr<const CompiledGrammar> g, std::shared_ptr<const TokenTrie> trie,
                   GrammarCounters * counters);
    ~GrammarRuntime();

    const CompiledGrammar & grammar() const { return *g_; }
    const TokenTrie & trie() const { return *trie_; }
    // The start state, or DEAD if its expansion exceeds a bound.
    int32_t initial();
    int32_t step_byte(int32_t state, uint8_t b);
    int32_t step_bytes(int32_t state, const std::string & bytes);
    bool accepting(int32_t state) const { return states_[state].accepting; }
    // Accepting, and no character can follow.
    bool complete(int32_t state) const { return states_[state].stacks.size() == 1 && states_[state].accepting; }
    bool allowed(int32_t state, int32_t token);
    // The full mask (one bit per token of the vocabulary), cached. *cached tells whether it came from the cache.
    const std::vector<uint64_t> & mask(int32_t state, bool * cached);
    // Whether any token at all is allowed (stops at the first one).
    bool any_allowed(int32_t state);

    // Requests hold state ids; a reset renumbers them. Each live request registers where it keeps its id.
    void attach(int32_t * state_slot) { slots_.push_back(state_slot); }
    void detach(int32_t * state_slot);
    // At a safe point (between tokens): clear the memo tables if they outgrew their caps, keeping attached states.
    void maybe_reset();

private:
    struct Node {
        uint32_t pos;    // element index: a CLASS on top of a stack, or the continuation in a parent sequence
        uint32_t parent; // node id below (0: the empty stack)
        uint32_t depth;
    };
    struct State {
        std::vector<uint32_t> stacks; // sorted node ids; 0 = the empty stack (accepting)
        uint32_t partial_cp = 0;      // bits of an unfinished code point
        uint8_t partial_need = 0;     // continuation bytes it still needs (0: none pending)
        uint8_t partial_len = 0;      // the whole sequence's length in bytes (rules out overlong forms)
        bool accepting = false;
        uint16_t n_queries = 0;           // transitions asked for (a dense table past a few)
        std::unique_ptr<int32_t[]> dense; // transitions by byte (TRANS_UNKNOWN until computed)
    };
    static constexpr int32_t TRANS_UNKNOWN = -2;

    std::shared_ptr<const CompiledGrammar> g_;
    std::shared_ptr<const TokenTrie> trie_;
    GrammarCounters * counters_;
    std::vector<Node> nodes_;
    std::unordered_map<uint64_t, uint32_t> node_ids_; // (pos, parent) -> id
    std::vector<State> states_;
    std::unordered_map<std::string, int32_t> state_ids_;
    std::unordered_map<uint64_t, int32_t> sparse_trans_; // (state, byte) for states without a dense table
    size_t n_dense_ = 0;
    int32_t initial_ = TRANS_UNKNOWN;
    // Mask LRU: state -> bitset.
    std::list<std::pair<int32_t, std::vector<uint64_t>>> masks_;
    std::unordered_map<int32_t, std::list<std::pair<int32_t, std::vector<uint64_t>>>::iterator> mask_index_;
    std::vector<int32_t *> slots_;
    // Scratch of one expansion.
    std::vector<uint32_t> out_;
    std::unordered_set<uint64_t> visited_;
    std::vector<std::pair<uint32_t, uint32_t>> work_;
    size_t steps_ = 0;
    bool overflow_ = false;

    uint32_t intern_node(uint32_t pos, uint32_t parent);
    void expand(uint32_t rest, uint32_t pos);
    int32_t intern_state(std::vector<uint32_t> && stacks, uint32_t partial_cp, uint8_t partial_need,
                         uint8_t partial_len);
    int32_t compute_step(int32_t state, uint8_t b);
    int32_t advance(int32_t state, uint32_t cp);
    bool partial_possible(int32_t state, uint32_t lo, uint32_t hi) const;
    struct Content {
        std::vector<std::vector<uint32_t>> stacks; // positions, top first
        uint32_t partial_cp;
        uint8_t partial_need, partial_len;
    };
    Content content(int32_t state) const;
    int32_t restore(const Content & c);
    void clear_all();
};

// One request's grammar: the runtime it uses, its current state, and a lazy grammar's trigger search.
class GrammarConstraint {
public:
    GrammarConstraint(std::shared_ptr<GrammarRuntime> rt, std::vector<std::string> triggers);
    ~GrammarConstraint();
    GrammarConstraint(const GrammarConstraint &) = delete;
    GrammarConstraint & operator=(const GrammarConstraint &) = delete;

    bool active() const { return active_; }
    GrammarRuntime & runtime() { return *rt_; }
    int32_t state() const { return state_; }
    // A token was chosen (allowed, when active). Advances the state, or for a lazy grammar not yet triggered appends
    // the token's text (`text`: its piece, or for a control token its vocabulary text) and looks for a trigger. False: the text can no
    // longer match (a trigger's token carried text the grammar refuses, or a bound was hit) — a dead end.
    bool accept(int32_t token, const std::string & text);
    bool complete() const { return active_ && rt_->complete(state_); }
    std::vector<float> scratch; // the logits row kept for a masked resample
    // The fast path's recent record (grammar_sampling.h): consecutive misses, and tokens sampled under the grammar.
    int fast_misses = 0;
    uint64_t n_sampled = 0;

private:
    std::shared_ptr<GrammarRuntime> rt_;
    std::vector<std::string> triggers_;
    std::string tail_; // lazy: the last generated bytes (enough to find a trigger spanning tokens)
    size_t max_trigger_ = 0;
    bool active_ = true;
    int32_t state_ = GrammarRuntime::DEAD;
};

// Grammars by text (compiled once) and their runtimes (engine thread), plus the vocabulary trie.
class GrammarRegistry {
public:
    GrammarRegistry(const Tokenizer & tok, GrammarCounters & counters) : tok_(tok), counters_(counters) {}
    // Any thread: parses (or finds) the grammar and refuses one whose start allows no token. Throws
    // EngineException(INVALID_ARGUMENT).
    std::shared_ptr<const CompiledGrammar> compile(const std::string & text, bool lazy);
    // Engine thread: the shared runtime for a compiled grammar.
    std::shared_ptr<GrammarRuntime> runtime(const std::shared_ptr<const CompiledGrammar> & g);
    std::shared_ptr<const TokenTrie> trie();
    GrammarCounters & counters() { return counters_; }

private:
    const Tokenizer & tok_;
    GrammarCounters & counters_;
    std::once_flag trie_once_;
    std::shared_ptr<const TokenTrie> trie_;
    std::mutex mu_;
    std::list<std::pair<std::string, std::shared_ptr<const CompiledGrammar>>> compiled_; // LRU by (lazy, text)
    std::list<std::shared_ptr<GrammarRuntime>> runtimes_;                                // engine thread; LRU
};

} // namespace tl
