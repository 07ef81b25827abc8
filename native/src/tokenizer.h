// Tokenizers read from GGUF metadata (tokenizer.ggml.*):
//   model = "llama": SentencePiece-style. Spaces become U+2581 ("▁"), a "▁" is prefixed to the text
//                    (tokenizer.ggml.add_space_prefix, default true), then symbols are merged greedily by the highest
//                    vocabulary score (tokenizer.ggml.scores); bytes no token covers fall back to <0xXX> tokens.
//   model = "gpt2":  byte-level BPE. Bytes map to printable code points (the GPT-2 bytes_to_unicode table), text is
//                    pre-split with the GPT-2 pattern, and each piece is merged by rank (tokenizer.ggml.merges).
// Token ids come from tokenizer.ggml.tokens; tokenizer.ggml.token_type marks control/byte tokens.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "gguf.h"

namespace tl {

enum class TokenizerKind { LLAMA, GPT2 };

class Tokenizer {
public:
    // Throws EngineException(MODEL_CORRUPT) on missing/inconsistent metadata, UNSUPPORTED_ARCHITECTURE for an
    // unknown tokenizer.ggml.model.
    static Tokenizer from_gguf(const GgufFile & file);
    // The one construction path (from_gguf reads the metadata and calls this; tests build small vocabularies with
    // it). `scores` and `token_types` may be empty (all 0 / all normal) or must have one entry per token; `merges`
    // ("left right") is required for GPT2. bos/eos/unk: -1 for none, else must be a valid id (MODEL_CORRUPT
    // otherwise). unk -1 means: the first token typed 2 (unknown), if any.
    static Tokenizer from_vocab(TokenizerKind kind, std::vector<std::string> tokens, std::vector<float> scores,
                                std::vector<int32_t> token_types, std::vector<std::string> merges, int32_t bos,
                                int32_t eos, bool add_bos, bool add_space_prefix, int32_t unk = -1);

    TokenizerKind kind() const { return kind_; }
    int32_t n_vocab() const { return (int32_t) tokens_.size(); }
    int32_t bos() const { return bos_; }              // -1 if none
    int32_t eos() const { return eos_; }              // -1 if none
    bool add_bos_default() const { return add_bos_; } // tokenizer.ggml.add_bos_token (default true for llama)
    // True for tokens that end generation (EOS, and EOT-like control tokens if the vocabulary marks them).
    bool is_end_of_generation(int32_t id) const;

    // Text (UTF-8) to ids. Control-token text in the input is treated as plain text (no injection of BOS/EOS).
    std::vector<int32_t> encode(const std::string & text, bool add_bos) const;
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
    std::unordered_map<std::string, int32_t> merge_rank_;  // gpt2: "left right" -> rank
    int32_t byte_tokens_[256];     // llama: <0xXX> ids; gpt2: the byte's mapped symbol (-1 if absent)
    std::vector<int32_t> eog_ids_; // EOS plus control tokens like <|eot_id|> (small, scanned)
    int32_t bos_ = -1, eos_ = -1, unk_ = -1;
    bool add_bos_ = true;
    bool add_space_prefix_ = true;

    std::vector<int32_t> encode_llama(const std::string & text) const;
    std::vector<int32_t> encode_gpt2(const std::string & text) const;
    // Id of a token that may appear as ordinary text (not control/unknown/unused/byte), or -1.
    int32_t text_token(const std::string & s) const;
    void push_byte(uint8_t b, std::vector<int32_t> & out) const; // byte fallback: byte token, else unk, else fail
    void bpe_piece(const std::string & piece, std::vector<int32_t> & out) const;   // gpt2: merge one pre-token
    void append_decoded(int32_t id, bool * strip_prefix, std::string & out) const; // one step of decode()
};

} // namespace tl
