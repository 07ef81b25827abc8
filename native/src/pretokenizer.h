// Pre-tokenizers of byte-level BPE vocabularies, selected by tokenizer.ggml.pre: the text is cut into pieces by a
// sequence of split patterns (as Hugging Face's pre_tokenizers.Split(behavior=isolated) and llama.cpp do: every
// stage cuts each piece of the previous one into its matches and the text between them), and BPE then merges
// inside each piece only.
//
// The patterns are the ones the model families' tokenizer.json files declare, matched by a small backtracking
// matcher over code points (split_pattern.cpp) with real Unicode categories (unicode.h), not a regex library.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tl {

class SplitPattern;

// One family's pre-tokenization.
struct PreTokenizer {
    std::string name; // the canonical tokenizer.ggml.pre value
    // Stages in order: a compiled pattern, or (pattern null) the trailing-whitespace stage "\s+$".
    std::vector<std::shared_ptr<const SplitPattern>> stages;
    // Llama 3 and Tekken: a piece that is itself a vocabulary token is emitted whole, without merging (HF's
    // BPE ignore_merges).
    bool ignore_merges = false;
    // Qwen2: the tokenizer.json normalizes text to NFC before splitting (unicode.h nfc()).
    bool nfc = false;
};

// The pre-tokenizer of a tokenizer.ggml.pre value, or null if nobody knows it. Aliases (llama3, llama-v3 for
// llama-bpe, ...) map to their family.
const PreTokenizer * find_pre_tokenizer(const std::string & pre);
// The known values, comma-separated (for the refusal message).
std::string known_pre_tokenizers();
// The known values, each once (aliases included).
std::vector<std::string> pre_tokenizer_names();

// Reusable buffers of one split (no allocation per character; capacity grows with the largest text seen by one
// call and is released with the object).
struct SplitScratch {
    std::vector<uint32_t> cps;       // code points of the text
    std::vector<uint8_t> cats;       // their general categories
    std::vector<uint32_t> offs;      // byte offset of each code point, plus the text length at the end
    std::vector<uint32_t> cur, next; // pieces as [begin, end) code point index pairs, flattened
    struct Frame {
        uint32_t pc;
        uint32_t pos;
        uint32_t count; // repeat entries: current repetition count; split entries: UINT32_MAX
        uint32_t min;
    };
    std::vector<Frame> stack;
    bool prune = true; // skip pattern branches that cannot start with the next character (false: the fuzz check)
};

// Splits text[0, n) into pieces; out gets their byte ranges [begin, end) flattened, in order, covering the text.
void pre_tokenize(const PreTokenizer & pre, const char * text, size_t n, SplitScratch & s, std::vector<uint32_t> & out);

} // namespace tl
