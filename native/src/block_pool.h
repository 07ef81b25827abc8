// Fixed-size KV-cache blocks: allocation, reference counts and the prefix cache.
//
// A block holds the keys and values of `block_size` consecutive tokens of one sequence (storage lives in
// kv_cache.h; this class only does the bookkeeping). A full block of prompt tokens is registered under a chained hash
// of every token up to and including it, so a later request whose prompt starts with the same tokens can reuse the
// block instead of recomputing it. Blocks whose reference count drops to zero keep their content and stay findable
// ("cached") until the pool needs them: the least recently freed is evicted first.
#pragma once
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace tl {

struct BlockPoolStats {
    int32_t total = 0;
    int32_t used = 0;            // referenced by at least one sequence
    int32_t cached = 0;          // unreferenced but holding a registered prefix (reusable)
    int32_t free = 0;            // unreferenced and empty
    uint64_t prefix_queries = 0; // blocks looked up
    uint64_t prefix_hits = 0;    // blocks found
};

class BlockPool {
public:
    BlockPool(int32_t n_blocks, int32_t block_size);

    int32_t n_blocks() const { return (int32_t) blocks_.size(); }
    int32_t block_size() const { return block_size_; }
    // Blocks that allocate() can hand out now (free + evictable cached).
    int32_t available() const { return (int32_t) (free_.size() + lru_.size()); }

    // A block for new content, reference count 1; -1 when none is left (the caller preempts).
    int32_t allocate();
    void retain(int32_t id);
    void release(int32_t id);

    // Chained hash of a full block: hash of (parent, tokens[0..block_size)).
    static uint64_t hash_block(uint64_t parent, const int32_t * tokens, int32_t n);
    // The cached block for `hash` whose tokens equal `tokens` (retained for the caller), or -1. Counts a query.
    int32_t lookup(uint64_t hash, const int32_t * tokens);
    // Make a full block findable under `hash` (its content has been computed).
    void register_block(int32_t id, uint64_t hash, const int32_t * tokens);

    BlockPoolStats stats() const;
    // Invariant check for tests: every block is in exactly one state and counts agree.
    bool consistent() const;

private:
    struct Block {
        int32_t ref = 0;
        bool hashed = false;
        uint64_t hash = 0;
        std::vector<int32_t> tokens;          // the block's tokens when hashed (to rule out hash collisions)
        std::list<int32_t>::iterator lru_pos; // valid when ref == 0 && hashed
    };
    int32_t block_size_;
    std::vector<Block> blocks_;
    std::vector<int32_t> free_; // ref == 0 && !hashed
    std::list<int32_t> lru_;    // ref == 0 && hashed, least recently released first
    std::unordered_multimap<uint64_t, int32_t> by_hash_;
    uint64_t queries_ = 0, hits_ = 0;

    void forget_hash(int32_t id);
};

} // namespace tl
