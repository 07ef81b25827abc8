// Tokenizers read from GGUF metadata (tokenizer.ggml.*):
//   model = "llama": SentencePiece-style. Spaces become U+2581 ("▁"), a "▁" is prefixed to the text
//                    (tokenizer.ggml.add_space_prefix, default true), then symbols are merged greedily by the highest
//                    vocabulary score (tokenizer.ggml.scores); bytes no token covers fall back to <0xXX> tokens.
//   model = "gpt2":  byte-level BPE. Text is pre-split by the family's pre-tokenizer (tokenizer.ggml.pre, see
//                    pretokenizer.h), bytes map to printable code points (the GPT-2 bytes_to_unicode table), and
//                    each piece is merged by rank (tokenizer.ggml.merges).
// Token ids come from tokenizer.ggml.tokens; tokenizer.ggml.token_type marks control/user-defined/byte tokens.
// Special tokens (docs/tokenizers.md): user-defined tokens are always cut out of the text first (as Hugging Face
// and llama.cpp do); control tokens only with parse_special, and never inside the caller's plain ranges.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "gguf.h"
#include "pretokenizer.h"

namespace tl {

enum class TokenizerKind { LLAMA, GPT2 };

// What from_vocab needs beyond the vocabulary itself.
struct TokenizerOptions {
    // tokenizer.ggml.pre (gpt2 only): a known value, or "" for a file that has none (then the "default" split is
    // used and a warning recorded). Direct callers get the GPT-2 split.
    std::string pre = "gpt-2";
    int32_t eot = -1; // tokenizer.ggml.eot_token_id (-1: none)
    int32_t eom = -1; // tokenizer.ggml.eom_token_id (-1: none)
    // general.name: Phi-3 files (a name containing "phi-3" or "phi3") strip the whitespace after their special
    // tokens, as Hugging Face's rstrip flags do there (GGUF does not carry the flags; llama.cpp keys on the name).
    std::string model_name;
};

class Tokenizer {
public:
    // Throws EngineException(MODEL_CORRUPT) on missing/inconsistent metadata, UNSUPPORTED_ARCHITECTURE for an
    // unknown tokenizer.ggml.model or tokenizer.ggml.pre.
    static Tokenizer from_gguf(const GgufFile & file);
    // The one construction path (from_gguf reads the metadata and calls this; tests build small vocabularies with
    // it). `scores` and `token_types` may be empty (all 0 / all normal) or must have one entry per token; `merges`
    // ("left right") is required for GPT2, and each must name two tokens whose concatenation is a token.
    // bos/eos/unk: -1 for none, else must be a valid id (MODEL_CORRUPT otherwise). unk -1 means: the first token
    // typed 2 (unknown), if any.
    static Tokenizer from_vocab(TokenizerKind kind, std::vector<std::string> tokens, std::vector<float> scores,
                                std::vector<int32_t> token_types, std::vector<std::string> merges, int32_t bos,
                                int32_t eos, bool add_bos, bool add_space_prefix, int32_t unk = -1,
                                const TokenizerOptions & options = TokenizerOptions());

    TokenizerKind kind() const { return kind_; }
    const char * model_name() const { return kind_ == TokenizerKind::LLAMA ? "llama" : "gpt2"; }
    // The pre-tokenizer in use: the file's tokenizer.ggml.pre ("default" when a gpt2 file has none; for "llama"
    // vocabularies the file's value, which SentencePiece ignores).
    const std::string & pre_name() const { return pre_name_; }
    int32_t n_vocab() const { return (int32_t) tokens_.size(); }
    int32_t bos() const { return bos_; }              // -1 if none
    int32_t eos() const { return eos_; }              // -1 if none
    bool add_bos_default() const { return add_bos_; } // tokenizer.ggml.add_bos_token (default true for llama)
    bool add_space_prefix() const { return add_space_prefix_; }
    // True for tokens that end generation: EOS, EOT, EOM and the end-of-turn control tokens (eog_ids()).
    bool is_end_of_generation(int32_t id) const;
    const std::vector<int32_t> & eog_ids() const { return eog_ids_; }
    // Load-time warnings (missing pre-tokenizer, tokens retyped as control ...), for the engine's info().
    const std::vector<std::string> & warnings() const { return warnings_; }
    int32_t token_type(int32_t id) const { return token_types_.at(id); }

    // Text (UTF-8) to ids. Control-token text in the input is plain text unless `parse_special`; then it becomes
    // the token, except inside `plain_ranges` (flat [begin, end) byte-offset pairs: user content in a rendered
    // template). INVALID_ARGUMENT for malformed ranges or a text of 4 GiB or more.
    std::vector<int32_t> encode(const std::string & text, bool add_bos, bool parse_special = false,
                                const std::vector<int64_t> & plain_ranges = {}) const;
    // The bytes one token stands for (may be an incomplete UTF-8 sequence for byte tokens). Control tokens → "".
    std::string token_to_piece(int32_t id) const;
    // Ids to text. For "llama" the space prefix added by encode() is removed when the sequence starts at the
    // beginning of a text (first non-BOS token), so decode(encode(s)) == s.
    std::string decode(const std::vector<int32_t> & ids) const;
    // Exactly decode({id}): the text one token stands for on its own (the space prefix of a leading "▁" removed
    // as at the start of a text; a byte token is its single raw byte). Engine events carry it for logprobs.
    std::string decode_one(int32_t id) const;
    const std::string & token_text(int32_t id) const { return tokens_.at(id); } // raw vocabulary entry

private:
    TokenizerKind kind_ = TokenizerKind::LLAMA;
    std::vector<std::string> tokens_;
    std::vector<float> scores_;
    std::vector<int32_t> token_types_; // 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    std::unordered_map<std::string, int32_t> token_to_id_; // only tokens plain text may produce (no control/byte/unk)
    // gpt2 merges by the vocabulary ids of their halves (left << 32 | right; ids of the first token with that text),
    // so that BPE never builds or hashes strings.
    struct Merge {
        int32_t rank;
        int32_t result;      // id of the merged text (first token with it)
        int32_t result_text; // the id plain text may produce for it (text_token), or -1
    };
    std::unordered_map<uint64_t, Merge> merges_;
    int32_t byte_key_[256];        // gpt2: id of the first token spelling the byte's mapped symbol, or -1
    int32_t byte_tokens_[256];     // llama: <0xXX> ids; gpt2: the byte's mapped symbol (-1 if absent)
    std::vector<int32_t> eog_ids_; // EOS, EOT, EOM plus end-of-turn control tokens (small, scanned)
    std::vector<std::string> warnings_;
    std::vector<int32_t>
        rendered_controls_; // control tokens that decode as their text (gpt-oss harmony markup, tool-call markup)
    int32_t bos_ = -1, eos_ = -1, unk_ = -1;
    bool add_bos_ = true;
    bool add_space_prefix_ = true;
    std::string pre_name_;
    const PreTokenizer * pre_ = nullptr; // gpt2 only

    // Special-token matching: control, unknown and user-defined tokens, in the order llama.cpp splits them out
    // (longest text first), and a byte trie over their texts to find every occurrence in one pass.
    struct TrieNode {
        int32_t token = -1; // special index (into specials_) ending here, or -1
        uint32_t first = 0; // children: edges_[first, first + count), sorted by byte
        uint32_t count = 0;
    };
    struct TrieEdge {
        uint8_t byte;
        uint32_t node;
    };
    std::vector<int32_t> specials_;       // token ids, longest text first
    std::vector<uint8_t> special_rstrip_; // per entry of specials_: whitespace after it is dropped (Phi-3)
    std::vector<TrieNode> trie_;
    std::vector<TrieEdge> trie_edges_;
    uint64_t special_first_bytes_[4] = {0, 0, 0, 0};

    void build_special_matcher(const std::string & model_name);
    void encode_fragment(const char * text, size_t n, bool prefix_space, std::vector<int32_t> & out) const;
    void encode_llama(const char * text, size_t n, bool prefix_space, std::vector<int32_t> & out) const;
    void encode_gpt2(const char * text, size_t n, std::vector<int32_t> & out) const;
    // Id of a token that may appear as ordinary text (not control/unknown/unused/byte), or -1.
    int32_t text_token(const std::string & s) const;
    void push_byte(uint8_t b, std::vector<int32_t> & out) const; // byte fallback: byte token, else unk, else fail
    struct BpeScratch;
    void bpe_piece(const char * piece, size_t n, BpeScratch & s, std::vector<int32_t> & out) const; // gpt2
    void append_decoded(int32_t id, bool * strip_prefix, std::string & out) const; // one step of decode()
};

} // namespace tl
