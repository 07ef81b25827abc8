#include "block_pool.h"

#include <cstring>

#include "errors.h"

namespace tl {

BlockPool::BlockPool(int32_t n_blocks, int32_t block_size) : block_size_(block_size), blocks_(n_blocks) {
    free_.reserve(n_blocks);
    // Hand out low ids first (free_ is used as a stack).
    for (int32_t i = n_blocks - 1; i >= 0; --i) free_.push_back(i);
}

int32_t BlockPool::allocate() {
    int32_t id;
    if (!free_.empty()) {
        id = free_.back();
        free_.pop_back();
    } else if (!lru_.empty()) {
        id = lru_.front();
        lru_.pop_front();
        forget_hash(id);
    } else {
        return -1;
    }
    blocks_[id].ref = 1;
    return id;
}

void BlockPool::retain(int32_t id) {
    Block & b = blocks_[id];
    if (b.ref == 0) {
        if (!b.hashed) fail(ErrorCode::INTERNAL, "retain of a free block");
        lru_.erase(b.lru_pos);
    }
    ++b.ref;
}

void BlockPool::release(int32_t id) {
    Block & b = blocks_[id];
    if (b.ref <= 0) fail(ErrorCode::INTERNAL, "release of an unreferenced block " + std::to_string(id));
    if (--b.ref > 0) return;
    if (b.hashed) {
        lru_.push_back(id);
        b.lru_pos = std::prev(lru_.end());
    } else {
        free_.push_back(id);
    }
}

uint64_t BlockPool::hash_block(uint64_t parent, const int32_t * tokens, int32_t n) {
    // FNV-1a over the parent hash and the token ids, then a final avalanche (splitmix64).
    uint64_t h = 0xcbf29ce484222325ull ^ parent;
    for (int32_t i = 0; i < n; ++i) {
        uint32_t t = (uint32_t) tokens[i];
        for (int k = 0; k < 4; ++k) {
            h ^= (t >> (8 * k)) & 0xff;
            h *= 0x100000001b3ull;
        }
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

int32_t BlockPool::lookup(uint64_t hash, const int32_t * tokens) {
    ++queries_;
    auto range = by_hash_.equal_range(hash);
    for (auto it = range.first; it != range.second; ++it) {
        Block & b = blocks_[it->second];
        if (std::memcmp(b.tokens.data(), tokens, sizeof(int32_t) * block_size_) == 0) {
            retain(it->second);
            ++hits_;
            return it->second;
        }
    }
    return -1;
}

void BlockPool::register_block(int32_t id, uint64_t hash, const int32_t * tokens) {
    Block & b = blocks_[id];
    if (b.hashed) return;
    b.hashed = true;
    b.hash = hash;
    b.tokens.assign(tokens, tokens + block_size_);
    by_hash_.emplace(hash, id);
}

void BlockPool::forget_hash(int32_t id) {
    Block & b = blocks_[id];
    auto range = by_hash_.equal_range(b.hash);
    for (auto it = range.first; it != range.second; ++it) {
        if (it->second == id) {
            by_hash_.erase(it);
            break;
        }
    }
    b.hashed = false;
    b.tokens.clear();
}

BlockPoolStats BlockPool::stats() const {
    BlockPoolStats s;
    s.total = (int32_t) blocks_.size();
    s.free = (int32_t) free_.size();
    s.cached = (int32_t) lru_.size();
    s.used = s.total - s.free - s.cached;
    s.prefix_queries = queries_;
    s.prefix_hits = hits_;
    return s;
}

bool BlockPool::consistent() const {
    int32_t referenced = 0, unref_hashed = 0, unref_free = 0;
    for (const Block & b : blocks_) {
        if (b.ref < 0) return false;
        if (b.ref > 0) ++referenced;
        else if (b.hashed) ++unref_hashed;
        else ++unref_free;
    }
    return unref_hashed == (int32_t) lru_.size() && unref_free == (int32_t) free_.size() &&
           referenced + unref_hashed + unref_free == (int32_t) blocks_.size();
}

} // namespace tl
