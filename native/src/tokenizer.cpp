// Tokenizers for GGUF vocabularies: SentencePiece-style ("llama") and GPT-2 byte-level BPE ("gpt2").
// Both merge with a priority queue over adjacent symbol pairs (as llama.cpp does), so encoding is
// O(n log n) in the text length rather than rescanning the text after every merge.
#include "tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <queue>

#include "errors.h"
#include "unicode.h"

namespace tl {

namespace {

// Token types as written by llama.cpp's converters (tokenizer.ggml.token_type).
constexpr int32_t TT_UNDEFINED = 0;
constexpr int32_t TT_NORMAL = 1;
constexpr int32_t TT_UNKNOWN = 2;
constexpr int32_t TT_CONTROL = 3;
constexpr int32_t TT_USER_DEFINED = 4;
constexpr int32_t TT_UNUSED = 5;
constexpr int32_t TT_BYTE = 6;

const char * const SPM_SPACE = "\xE2\x96\x81"; // U+2581 "▁", SentencePiece's visible space
constexpr size_t SPM_SPACE_LEN = 3;
const char * const REPLACEMENT_CHAR = "\xEF\xBF\xBD"; // U+FFFD, what an <unk> token decodes to

// Length of the UTF-8 sequence starting with lead byte `c`. Invalid lead bytes count as one byte so that
// arbitrary input still splits into symbols (byte fallback then covers them).
size_t utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

// Length of the character at s[i]: its UTF-8 length when all continuation bytes are present, else 1. Splitting a
// malformed sequence byte by byte keeps a stray lead byte from swallowing the next (valid) character.
size_t utf8_char_len(const std::string & s, size_t i) {
    const size_t n = utf8_len((unsigned char) s[i]);
    if (i + n > s.size()) return 1;
    for (size_t k = 1; k < n; k++) {
        if (((unsigned char) s[i + k] & 0xC0) != 0x80) return 1;
    }
    return n;
}

// Decodes one code point at s[i]; *len gets its byte length. Malformed sequences decode as U+FFFD, one byte long.
uint32_t decode_utf8(const std::string & s, size_t i, size_t * len) {
    const unsigned char c = (unsigned char) s[i];
    size_t n = utf8_len(c);
    if (n == 1 || i + n > s.size()) {
        *len = 1;
        return c < 0x80 ? c : 0xFFFD;
    }
    uint32_t cp = c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
        const unsigned char cc = (unsigned char) s[i + k];
        if ((cc & 0xC0) != 0x80) {
            *len = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (cc & 0x3F);
    }
    *len = n;
    return cp;
}

// Parses "<0xXX>" (SentencePiece byte tokens); -1 if `s` is not one.
int parse_byte_token(const std::string & s) {
    if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    const int hi = hex(s[3]), lo = hex(s[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes are moved to
// U+0100.. in byte order, so every byte has a visible, non-space code point and BPE never sees raw whitespace.
struct Gpt2ByteMap {
    std::string byte_utf8[256]; // byte -> UTF-8 of its code point
    int16_t cp_to_byte[512];    // code point -> byte (-1 if none); all mapped code points are < 0x144

    Gpt2ByteMap() {
        std::fill(std::begin(cp_to_byte), std::end(cp_to_byte), (int16_t) -1);
        int next = 0;
        for (int b = 0; b < 256; b++) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const uint32_t cp = printable ? (uint32_t) b : (uint32_t) (256 + next++);
            unicode::append_utf8(byte_utf8[b], cp);
            cp_to_byte[cp] = (int16_t) b;
        }
    }
};

const Gpt2ByteMap & gpt2_bytes() {
    static const Gpt2ByteMap map;
    return map;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Construction

Tokenizer Tokenizer::from_gguf(const GgufFile & file) {
    const std::string model = file.get_string("tokenizer.ggml.model", "");
    TokenizerKind kind;
    if (model.empty()) {
        fail(ErrorCode::MODEL_CORRUPT, "GGUF has no tokenizer.ggml.model: the file carries no vocabulary");
    } else if (model == "llama") {
        kind = TokenizerKind::LLAMA;
    } else if (model == "gpt2") {
        kind = TokenizerKind::GPT2;
    } else {
        fail(ErrorCode::UNSUPPORTED_ARCHITECTURE,
             "tokenizer model '" + model + "' is not supported (supported: llama, gpt2)");
    }

    std::vector<std::string> tokens = file.get_string_array("tokenizer.ggml.tokens");
    if (tokens.empty()) fail(ErrorCode::MODEL_CORRUPT, "GGUF has no tokenizer.ggml.tokens");
    const int64_t n_vocab = (int64_t) tokens.size();

    std::vector<float> scores;
    for (double s : file.get_float_array("tokenizer.ggml.scores")) scores.push_back((float) s);
    std::vector<int32_t> types;
    for (int64_t t : file.get_int_array("tokenizer.ggml.token_type")) {
        // Values outside int32 cannot be a type; keep them out of range so they read as "normal" below.
        types.push_back(t < INT32_MIN || t > INT32_MAX ? TT_NORMAL : (int32_t) t);
    }
    std::vector<std::string> merges;
    if (kind == TokenizerKind::GPT2) merges = file.get_string_array("tokenizer.ggml.merges");

    // Special ids: llama.cpp writes "none" as -1 or as uint32 0xFFFFFFFF. SentencePiece vocabularies default to
    // <unk>=0, <s>=1, </s>=2 when the keys are absent (as llama.cpp assumes); GPT-2 ones have no defaults.
    const bool spm = kind == TokenizerKind::LLAMA;
    auto read_id = [&](const char * key, int64_t def) -> int32_t {
        int64_t v;
        if (file.find(key) == nullptr) {
            v = def < n_vocab ? def : -1;
        } else {
            v = file.get_int(key, -1);
        }
        if (v < 0 || v == 0xFFFFFFFFLL) return -1;
        if (v >= n_vocab) {
            fail(ErrorCode::MODEL_CORRUPT, std::string(key) + " = " + std::to_string(v) +
                                               " is outside the vocabulary (" + std::to_string(n_vocab) + " tokens)");
        }
        return (int32_t) v;
    };
    const int32_t bos = read_id("tokenizer.ggml.bos_token_id", spm ? 1 : -1);
    const int32_t eos = read_id("tokenizer.ggml.eos_token_id", spm ? 2 : -1);
    const int32_t unk = read_id("tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
    TokenizerOptions opt;
    opt.eot = read_id("tokenizer.ggml.eot_token_id", -1);
    opt.eom = read_id("tokenizer.ggml.eom_token_id", -1);
    opt.pre = file.get_string("tokenizer.ggml.pre", "");
    opt.model_name = file.get_string("general.name", "");
    // Without the key, llama.cpp adds BOS for SentencePiece and for the Llama 3 and Tekken pre-tokenizers.
    const PreTokenizer * pre = spm ? nullptr : find_pre_tokenizer(opt.pre);
    const bool bos_family = pre && (pre->name == "llama-bpe" || pre->name == "tekken");
    const bool add_bos = file.get_bool("tokenizer.ggml.add_bos_token", spm || bos_family);
    const bool add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix", spm);

    return from_vocab(kind, std::move(tokens), std::move(scores), std::move(types), std::move(merges), bos, eos,
                      add_bos, add_space_prefix, unk, opt);
}

Tokenizer Tokenizer::from_vocab(TokenizerKind kind, std::vector<std::string> tokens, std::vector<float> scores,
                                std::vector<int32_t> token_types, std::vector<std::string> merges, int32_t bos,
                                int32_t eos, bool add_bos, bool add_space_prefix, int32_t unk,
                                const TokenizerOptions & options) {
    if (tokens.empty()) fail(ErrorCode::MODEL_CORRUPT, "tokenizer vocabulary is empty");
    if (tokens.size() > (size_t) INT32_MAX) fail(ErrorCode::MODEL_CORRUPT, "tokenizer vocabulary is too large");
    const size_t n = tokens.size();
    if (!scores.empty() && scores.size() != n) {
        fail(ErrorCode::MODEL_CORRUPT, "tokenizer.ggml.scores has " + std::to_string(scores.size()) + " entries for " +
                                           std::to_string(n) + " tokens");
    }
    if (!token_types.empty() && token_types.size() != n) {
        fail(ErrorCode::MODEL_CORRUPT, "tokenizer.ggml.token_type has " + std::to_string(token_types.size()) +
                                           " entries for " + std::to_string(n) + " tokens");
    }
    auto check_id = [&](int32_t id, const char * what) {
        if (id < -1 || id >= (int32_t) n) {
            fail(ErrorCode::MODEL_CORRUPT, std::string(what) + " token id " + std::to_string(id) +
                                               " is outside the vocabulary (" + std::to_string(n) + " tokens)");
        }
    };
    check_id(bos, "BOS");
    check_id(eos, "EOS");
    check_id(unk, "unknown");
    check_id(options.eot, "EOT");
    check_id(options.eom, "EOM");
    if (kind == TokenizerKind::GPT2 && merges.empty()) {
        fail(ErrorCode::MODEL_CORRUPT, "gpt2 tokenizer has no tokenizer.ggml.merges");
    }

    Tokenizer t;
    t.kind_ = kind;
    t.bos_ = bos;
    t.eos_ = eos;
    t.add_bos_ = add_bos;
    t.add_space_prefix_ = add_space_prefix;
    t.scores_ = scores.empty() ? std::vector<float>(n, 0.0f) : std::move(scores);

    // The pre-tokenizer: only byte-level BPE has one (SentencePiece ignores tokenizer.ggml.pre, as llama.cpp does).
    t.pre_name_ = options.pre;
    if (kind == TokenizerKind::GPT2) {
        if (options.pre.empty()) {
            t.pre_name_ = "default";
            t.warnings_.push_back("tokenizer.ggml.pre is missing: using the 'default' pre-tokenizer; text may be "
                                  "split differently from how the model was trained (regenerate the GGUF with a "
                                  "current converter)");
        }
        t.pre_ = find_pre_tokenizer(t.pre_name_);
        if (!t.pre_) {
            fail(ErrorCode::UNSUPPORTED_ARCHITECTURE,
                 "pre-tokenizer '" + t.pre_name_ +
                     "' (tokenizer.ggml.pre) is not supported; known values: " + known_pre_tokenizers());
        }
    }

    const bool typed = !token_types.empty();
    t.token_types_ = typed ? std::move(token_types) : std::vector<int32_t>(n, TT_NORMAL);
    if (!typed) {
        // Without types, recognise what we can so that specials and byte tokens do not decode as literal text.
        if (kind == TokenizerKind::LLAMA) {
            for (size_t i = 0; i < n; i++) {
                if (parse_byte_token(tokens[i]) >= 0) t.token_types_[i] = TT_BYTE;
            }
        }
        if (bos >= 0) t.token_types_[bos] = TT_CONTROL;
        if (eos >= 0) t.token_types_[eos] = TT_CONTROL;
        if (unk >= 0) t.token_types_[unk] = TT_UNKNOWN;
    }
    if (unk < 0) {
        for (size_t i = 0; i < n; i++) {
            if (t.token_types_[i] == TT_UNKNOWN) {
                unk = (int32_t) i;
                break;
            }
        }
    }
    t.unk_ = unk;
    t.tokens_ = std::move(tokens);

    // End of generation: EOS, EOT, EOM, plus the turn-end tokens chat models emit (found by text, as llama.cpp
    // does: converters do not always write eot_token_id). Such a token is made a control token if the file did
    // not type it so, so that it never comes out of plain text and decodes to nothing.
    for (int32_t id : {eos, options.eot, options.eom}) {
        if (id >= 0 && std::find(t.eog_ids_.begin(), t.eog_ids_.end(), id) == t.eog_ids_.end())
            t.eog_ids_.push_back(id);
    }
    static const char * const eog_texts[] = {
        "<|eot_id|>",
        "<|eom_id|>",
        "<|im_end|>",
        "<|end|>",
        "<|return|>",
        "<|call|>",
        "<end_of_turn>",
        "<|endoftext|>",
        "<|end_of_text|>",
        "<EOT>",
        "_<EOT>",
        "<end_of_utterance>",
        "<eos>",
        "<\xEF\xBD\x9C"
        "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", // <｜end▁of▁sentence｜> (DeepSeek)
    };
    int32_t end_id = -1, return_id = -1, call_id = -1;
    for (size_t i = 0; i < n; i++) {
        const std::string & text = t.tokens_[i];
        if (text.size() < 5 || text.size() > 32 || (text[0] != '<' && text[0] != '_')) continue;
        for (const char * e : eog_texts) {
            if (text != e) continue;
            const int32_t ty = t.token_types_[i];
            if (ty == TT_BYTE || ty == TT_UNUSED) break;
            if (ty != TT_CONTROL) {
                t.warnings_.push_back("token " + std::to_string(i) + " '" + text + "' ends a turn but is not typed " +
                                      "control; it is treated as control");
                t.token_types_[i] = TT_CONTROL;
            }
            if (std::find(t.eog_ids_.begin(), t.eog_ids_.end(), (int32_t) i) == t.eog_ids_.end()) {
                t.eog_ids_.push_back((int32_t) i);
            }
            if (text == "<|end|>") end_id = (int32_t) i;
            if (text == "<|return|>") return_id = (int32_t) i;
            if (text == "<|call|>") call_id = (int32_t) i;
            break;
        }
    }
    // gpt-oss (harmony): <|end|> closes a message, not the generation; <|return|> and <|call|> do. The message
    // markup tokens are decoded as their text (as llama.cpp does), so that generated text keeps its channel
    // structure (<|channel|>analysis<|message|>...<|end|>) for the layer above to read. They stay control tokens
    // for encoding: parsed only with parse_special, never inside plain ranges.
    if (end_id >= 0 && return_id >= 0 && call_id >= 0) {
        if (end_id != eos) t.eog_ids_.erase(std::find(t.eog_ids_.begin(), t.eog_ids_.end(), end_id));
        for (size_t i = 0; i < n; i++) {
            const std::string & text = t.tokens_[i];
            if (t.token_types_[i] == TT_CONTROL && (text == "<|end|>" || text == "<|start|>" || text == "<|channel|>" ||
                                                    text == "<|message|>" || text == "<|constrain|>")) {
                t.rendered_controls_.push_back((int32_t) i);
            }
        }
    }

    // Tool-call markup (DeepSeek-V3/R1's <｜tool▁calls▁begin｜>…, Mistral's [TOOL_CALLS] [ARGS] [CALL_ID]) decodes as
    // its text too, as llama.cpp's server keeps them (its chat formats' "preserved tokens"): the tool-call parser of
    // the layer above (src/controlplane/openai/tools/) reads the calls off the text, and without these markers it
    // could not tell a call from an answer. Like the harmony markup they stay control tokens for encoding.
    static const char * const tool_markup[] = {
        "<\xEF\xBD\x9C"
        "tool\xE2\x96\x81"
        "calls\xE2\x96\x81"
        "begin\xEF\xBD\x9C>", // <｜tool▁calls▁begin｜>
        "<\xEF\xBD\x9C"
        "tool\xE2\x96\x81"
        "calls\xE2\x96\x81"
        "end\xEF\xBD\x9C>", // <｜tool▁calls▁end｜>
        "<\xEF\xBD\x9C"
        "tool\xE2\x96\x81"
        "call\xE2\x96\x81"
        "begin\xEF\xBD\x9C>", // <｜tool▁call▁begin｜>
        "<\xEF\xBD\x9C"
        "tool\xE2\x96\x81"
        "call\xE2\x96\x81"
        "end\xEF\xBD\x9C>", // <｜tool▁call▁end｜>
        "<\xEF\xBD\x9C"
        "tool\xE2\x96\x81"
        "sep\xEF\xBD\x9C>", // <｜tool▁sep｜>
        "[TOOL_CALLS]",
        "[ARGS]",
        "[CALL_ID]",
    };
    for (size_t i = 0; i < n; i++) {
        const std::string & text = t.tokens_[i];
        if (t.token_types_[i] != TT_CONTROL || text.size() < 6 || text.size() > 40) continue;
        for (const char * m : tool_markup) {
            if (text == m) {
                t.rendered_controls_.push_back((int32_t) i);
                break;
            }
        }
    }

    // token_to_id_ holds only tokens that ordinary text may produce: control, unknown, unused and byte tokens are
    // left out so that text such as "</s>" or "<0x41>" in a prompt encodes as plain characters, never as the
    // special token. The first of duplicate entries wins.
    t.token_to_id_.reserve(n * 2);
    for (size_t i = 0; i < n; i++) {
        const int32_t ty = t.token_types_[i];
        const bool special = ty == TT_UNKNOWN || ty == TT_CONTROL || ty == TT_UNUSED || ty == TT_BYTE;
        if (!special && !t.tokens_[i].empty()) t.token_to_id_.emplace(t.tokens_[i], (int32_t) i);
    }

    std::fill(std::begin(t.byte_tokens_), std::end(t.byte_tokens_), -1);
    if (kind == TokenizerKind::LLAMA) {
        for (size_t i = 0; i < n; i++) {
            if (t.token_types_[i] != TT_BYTE) continue;
            const int b = parse_byte_token(t.tokens_[i]);
            if (b >= 0 && t.byte_tokens_[b] < 0) t.byte_tokens_[b] = (int32_t) i;
        }
    } else {
        const Gpt2ByteMap & bm = gpt2_bytes();
        for (int b = 0; b < 256; b++) t.byte_tokens_[b] = t.text_token(bm.byte_utf8[b]);

        // Every merge must join two vocabulary tokens into a third (as Hugging Face's BPE requires): a file whose
        // merges and vocabulary disagree was not written by a converter, and would tokenize into garbage.
        std::unordered_map<std::string, int32_t> all;
        all.reserve(n * 2);
        for (size_t i = 0; i < n; i++) all.emplace(t.tokens_[i], (int32_t) i);
        t.merges_.reserve(merges.size() * 2);
        for (int b = 0; b < 256; b++) {
            auto it = all.find(bm.byte_utf8[b]);
            t.byte_key_[b] = it == all.end() ? -1 : it->second;
        }
        std::string joined;
        for (size_t r = 0; r < merges.size(); r++) {
            const std::string & m = merges[r];
            // Merged symbols never contain a raw space (bytes_to_unicode maps it to "Ġ"), so exactly one space
            // separates the halves.
            const size_t sp = m.find(' ');
            if (sp == std::string::npos || sp == 0 || sp + 1 >= m.size() || m.find(' ', sp + 1) != std::string::npos) {
                fail(ErrorCode::MODEL_CORRUPT, "tokenizer.ggml.merges entry " + std::to_string(r) + " ('" + m +
                                                   "') is not of the form 'left right'");
            }
            if (r > (size_t) INT32_MAX) fail(ErrorCode::MODEL_CORRUPT, "too many tokenizer.ggml.merges");
            const std::string left = m.substr(0, sp), right = m.substr(sp + 1);
            int32_t ids[2];
            for (int k = 0; k < 2; k++) {
                const std::string & part = k == 0 ? left : right;
                auto it = all.find(part);
                if (it == all.end()) {
                    fail(ErrorCode::MODEL_CORRUPT, "tokenizer.ggml.merges entry " + std::to_string(r) + " ('" + m +
                                                       "') names '" + part + "', which is not in the vocabulary");
                }
                ids[k] = it->second;
            }
            joined.assign(left).append(right);
            auto res = all.find(joined);
            if (res == all.end()) {
                fail(ErrorCode::MODEL_CORRUPT, "tokenizer.ggml.merges entry " + std::to_string(r) + " ('" + m +
                                                   "') makes '" + joined + "', which is not in the vocabulary");
            }
            const uint64_t key = ((uint64_t) (uint32_t) ids[0] << 32) | (uint32_t) ids[1];
            // The first occurrence of a pair has the lowest rank and wins.
            t.merges_.emplace(key, Merge{(int32_t) r, res->second, t.text_token(joined)});
        }
    }

    t.build_special_matcher(options.model_name);
    return t;
}

void Tokenizer::build_special_matcher(const std::string & model_name) {
    for (size_t i = 0; i < tokens_.size(); i++) {
        const int32_t ty = token_types_[i];
        if ((ty == TT_CONTROL || ty == TT_UNKNOWN || ty == TT_USER_DEFINED) && !tokens_[i].empty()) {
            specials_.push_back((int32_t) i);
        }
    }
    std::stable_sort(specials_.begin(), specials_.end(),
                     [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });

    // Phi-3: every special token but <unk>, <s> and <|endoftext|> swallows the whitespace after it (llama.cpp's rule
    // for these files, standing for the rstrip flags of Hugging Face's added tokens).
    std::string lower = model_name;
    for (char & c : lower) c = (char) std::tolower((unsigned char) c);
    const bool phi3 = lower.find("phi-3") != std::string::npos || lower.find("phi3") != std::string::npos;
    special_rstrip_.assign(specials_.size(), 0);
    for (size_t k = 0; phi3 && k < specials_.size(); k++) {
        const std::string & text = tokens_[specials_[k]];
        special_rstrip_[k] = text != "<unk>" && text != "<s>" && text != "<|endoftext|>";
    }

    // The trie is built with a map of edges, then flattened into sorted per-node edge runs.
    std::vector<std::map<uint8_t, uint32_t>> kids(1);
    std::vector<int32_t> terminal(1, -1);
    for (size_t k = 0; k < specials_.size(); k++) {
        const std::string & text = tokens_[specials_[k]];
        uint32_t node = 0;
        for (unsigned char c : text) {
            auto it = kids[node].find(c);
            if (it == kids[node].end()) {
                kids.emplace_back();
                terminal.push_back(-1);
                it = kids[node].emplace(c, (uint32_t) kids.size() - 1).first;
            }
            node = it->second;
        }
        if (terminal[node] < 0) terminal[node] = (int32_t) k; // duplicate texts: the first (longest-order) wins
        special_first_bytes_[(unsigned char) text[0] >> 6] |= 1ull << ((unsigned char) text[0] & 63);
    }
    trie_.resize(kids.size());
    for (size_t i = 0; i < kids.size(); i++) {
        trie_[i].token = terminal[i];
        trie_[i].first = (uint32_t) trie_edges_.size();
        trie_[i].count = (uint32_t) kids[i].size();
        for (const auto & [byte, child] : kids[i]) trie_edges_.push_back({byte, child});
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

bool Tokenizer::is_end_of_generation(int32_t id) const {
    return std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

int32_t Tokenizer::text_token(const std::string & s) const {
    auto it = token_to_id_.find(s);
    return it == token_to_id_.end() ? -1 : it->second;
}

void Tokenizer::push_byte(uint8_t b, std::vector<int32_t> & out) const {
    if (byte_tokens_[b] >= 0) {
        out.push_back(byte_tokens_[b]);
    } else if (unk_ >= 0) {
        out.push_back(unk_);
    } else {
        char buf[8];
        snprintf(buf, sizeof buf, "0x%02X", b);
        fail(ErrorCode::INVALID_ARGUMENT, std::string("cannot encode byte ") + buf +
                                              ": the vocabulary has neither a token for it nor an unknown token");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

std::vector<int32_t> Tokenizer::encode(const std::string & text, bool add_bos, bool parse_special,
                                       const std::vector<int64_t> & plain_ranges) const {
    if (text.size() >= (size_t) UINT32_MAX) fail(ErrorCode::INVALID_ARGUMENT, "text to tokenize is 4 GiB or more");
    if (plain_ranges.size() % 2 != 0) {
        fail(ErrorCode::INVALID_ARGUMENT, "plainRanges must hold [start, end) pairs (an even number of offsets)");
    }
    for (size_t i = 0; i < plain_ranges.size(); i += 2) {
        if (plain_ranges[i] < 0 || plain_ranges[i] > plain_ranges[i + 1] ||
            plain_ranges[i + 1] > (int64_t) text.size()) {
            fail(ErrorCode::INVALID_ARGUMENT,
                 "plainRanges pair " + std::to_string(i / 2) + " [" + std::to_string(plain_ranges[i]) + ", " +
                     std::to_string(plain_ranges[i + 1]) + ") is not a range of byte offsets inside the text (" +
                     std::to_string(text.size()) + " bytes)");
        }
    }

    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    // Like llama.cpp, empty text has no fragment to prefix: it encodes to BOS alone (or nothing).
    if (text.empty()) return out;

    // Special tokens first, in llama.cpp's order: for each special token, longest text first, every occurrence
    // inside text not yet claimed becomes that token. Occurrences are found in one pass over the text with the
    // trie; a control token inside a plain range (or any without parse_special) stays text.
    struct Hit {
        uint32_t order; // index into specials_ (the claiming order)
        uint32_t pos;
        uint32_t len;
    };
    std::vector<Hit> hits;
    const char * s = text.data();
    const size_t n = text.size();
    for (size_t p = 0; p < n; p++) {
        const unsigned char c0 = (unsigned char) s[p];
        if (!((special_first_bytes_[c0 >> 6] >> (c0 & 63)) & 1)) continue;
        uint32_t node = 0;
        for (size_t q = p; q < n; q++) {
            const TrieNode & nd = trie_[node];
            const unsigned char c = (unsigned char) s[q];
            uint32_t next = UINT32_MAX;
            for (uint32_t e = nd.first; e < nd.first + nd.count; e++) {
                if (trie_edges_[e].byte == c) {
                    next = trie_edges_[e].node;
                    break;
                }
            }
            if (next == UINT32_MAX) break;
            node = next;
            const int32_t k = trie_[node].token;
            if (k < 0) continue;
            const int32_t ty = token_types_[specials_[k]];
            bool allowed = ty == TT_USER_DEFINED || parse_special;
            for (size_t r = 0; allowed && ty != TT_USER_DEFINED && r < plain_ranges.size(); r += 2) {
                if ((int64_t) p < plain_ranges[r + 1] && (int64_t) (q + 1) > plain_ranges[r]) allowed = false;
            }
            if (allowed) hits.push_back({(uint32_t) k, (uint32_t) p, (uint32_t) (q + 1 - p)});
        }
    }
    std::vector<Hit> claimed;
    if (!hits.empty()) {
        std::sort(hits.begin(), hits.end(),
                  [](const Hit & a, const Hit & b) { return a.order != b.order ? a.order < b.order : a.pos < b.pos; });
        std::vector<uint8_t> taken(n, 0);
        for (const Hit & h : hits) {
            bool free = true;
            for (uint32_t i = h.pos; free && i < h.pos + h.len; i++) free = !taken[i];
            if (!free) continue;
            std::fill(taken.begin() + h.pos, taken.begin() + h.pos + h.len, 1);
            claimed.push_back(h);
        }
        std::sort(claimed.begin(), claimed.end(), [](const Hit & a, const Hit & b) { return a.pos < b.pos; });
    }

    // SentencePiece prefixes a space to text at the start and after each special token (llama.cpp's rule).
    size_t pos = 0;
    bool prev_special = true;
    for (size_t c = 0; c < claimed.size(); c++) {
        const Hit & h = claimed[c];
        if (h.pos > pos) encode_fragment(s + pos, h.pos - pos, prev_special, out);
        out.push_back(specials_[h.order]);
        prev_special = true;
        pos = h.pos + h.len;
        if (special_rstrip_[h.order]) {
            const size_t limit = c + 1 < claimed.size() ? claimed[c + 1].pos : n;
            while (pos < limit && std::isspace((unsigned char) s[pos])) pos++;
        }
    }
    if (pos < n) encode_fragment(s + pos, n - pos, prev_special, out);
    return out;
}

void Tokenizer::encode_fragment(const char * text, size_t n, bool prefix_space, std::vector<int32_t> & out) const {
    if (kind_ == TokenizerKind::LLAMA) encode_llama(text, n, prefix_space && add_space_prefix_, out);
    else encode_gpt2(text, n, out);
}

namespace {

// A symbol of the text being merged: a byte range plus doubly linked neighbours (merged-away symbols get n = 0).
struct Symbol {
    int32_t prev;
    int32_t next;
    size_t off;
    size_t n;
};

// A candidate merge of two adjacent symbols. `size` detects stale entries: if either side has changed since the
// entry was queued, left.n + right.n no longer equals it (symbols only grow, or drop to 0 when absorbed).
struct Bigram {
    int32_t left;
    int32_t right;
    float score; // SPM: higher merges first; GPT-2: negated rank
    size_t size;
};

struct BigramOrder {
    // Max-heap on score; equal scores merge the leftmost pair first.
    bool operator()(const Bigram & a, const Bigram & b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

// A binary heap over a caller-owned vector, so that its storage is reused from one piece to the next.
struct BigramHeap {
    std::vector<Bigram> v;
    bool empty() const { return v.empty(); }
    void push(const Bigram & b) {
        v.push_back(b);
        std::push_heap(v.begin(), v.end(), BigramOrder());
    }
    Bigram pop() {
        std::pop_heap(v.begin(), v.end(), BigramOrder());
        const Bigram b = v.back();
        v.pop_back();
        return b;
    }
};

// The merge loop both tokenizers share: take the best pair, skip it if either side changed since it was queued,
// merge it into the left symbol, and queue the new pairs it forms with its neighbours (`try_add(left, right)`).
template <typename TryAdd>
void merge_best_first(std::vector<Symbol> & syms, BigramHeap & queue, TryAdd && try_add) {
    while (!queue.empty()) {
        const Bigram bg = queue.pop();
        Symbol & l = syms[bg.left];
        Symbol & r = syms[bg.right];
        if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) syms[r.next].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
    }
}

} // namespace

void Tokenizer::encode_llama(const char * text, size_t n, bool prefix_space, std::vector<int32_t> & out) const {
    // SentencePiece shows spaces as "▁" and (by default) starts the text with one, so that a word at the start
    // of the text tokenizes the same as one after a space.
    std::string s;
    s.reserve(n + n / 4 + SPM_SPACE_LEN);
    if (prefix_space) s.append(SPM_SPACE, SPM_SPACE_LEN);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') s.append(SPM_SPACE, SPM_SPACE_LEN);
        else s += text[i];
    }

    std::vector<Symbol> syms;
    syms.reserve(s.size());
    for (size_t off = 0; off < s.size();) {
        const size_t len = utf8_char_len(s, off);
        const int32_t idx = (int32_t) syms.size();
        syms.push_back({idx - 1, idx + 1, off, len});
        off += len;
    }
    syms.back().next = -1;

    BigramHeap queue;
    queue.v.reserve(syms.size());
    std::string buf; // reused so that vocabulary look-ups do not allocate
    auto try_add = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0) return;
        const size_t size = syms[left].n + syms[right].n;
        buf.assign(s, syms[left].off, size); // adjacent symbols are contiguous in s
        const int32_t id = text_token(buf);
        if (id < 0) return;
        queue.push({left, right, scores_[id], size});
    };
    for (int32_t i = 1; i < (int32_t) syms.size(); i++) try_add(i - 1, i);

    merge_best_first(syms, queue, try_add);

    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        const Symbol & sym = syms[i];
        buf.assign(s, sym.off, sym.n);
        const int32_t id = text_token(buf);
        if (id >= 0) {
            out.push_back(id);
        } else {
            // Only single characters can be missing (merges always produce vocabulary tokens): spell them in bytes.
            for (size_t k = 0; k < sym.n; k++) push_byte((uint8_t) s[sym.off + k], out);
        }
    }
}

// Buffers of one encode_gpt2 call, reused for every piece.
struct Tokenizer::BpeScratch {
    std::string mapped;
    std::vector<Symbol> syms;
    std::vector<int32_t> key;  // per symbol: the vocabulary id of its text (first token with it), or -1
    std::vector<int32_t> text; // per symbol: the id plain text may produce for it, or -1
    BigramHeap queue;
};

void Tokenizer::encode_gpt2(const char * text, size_t n, std::vector<int32_t> & out) const {
    // Families whose tokenizer normalizes to NFC (Qwen2) see the normalized text; most text already is NFC, which
    // the quick check finds without copying.
    std::string normalized;
    if (pre_->nfc && unicode::needs_nfc(text, n)) {
        unicode::nfc(text, n, normalized);
        text = normalized.data();
        n = normalized.size();
    }
    SplitScratch split;
    std::vector<uint32_t> pieces;
    pre_tokenize(*pre_, text, n, split, pieces);
    BpeScratch scratch;
    for (size_t k = 0; k < pieces.size(); k += 2) {
        bpe_piece(text + pieces[k], pieces[k + 1] - pieces[k], scratch, out);
    }
}

void Tokenizer::bpe_piece(const char * piece, size_t n, BpeScratch & s, std::vector<int32_t> & out) const {
    if (n == 0) return;
    // Llama 3 / Tekken (ignore_merges): a piece that is a whole token is that token.
    if (pre_->ignore_merges && n > 1) {
        const Gpt2ByteMap & bm = gpt2_bytes();
        s.mapped.clear();
        for (size_t i = 0; i < n; i++) s.mapped += bm.byte_utf8[(unsigned char) piece[i]];
        const int32_t id = text_token(s.mapped);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }

    // One symbol per byte (its byte-mapped code point), merged by rank; symbols are identified by vocabulary id.
    std::vector<Symbol> & syms = s.syms;
    syms.resize(n);
    s.key.resize(n);
    s.text.resize(n);
    for (size_t i = 0; i < n; i++) {
        syms[i] = {(int32_t) i - 1, (int32_t) i + 1, i, 1};
        s.key[i] = byte_key_[(unsigned char) piece[i]];
        s.text[i] = byte_tokens_[(unsigned char) piece[i]];
    }
    syms.back().next = -1;

    s.queue.v.clear();
    auto find = [&](int32_t left, int32_t right) -> const Merge * {
        if (s.key[left] < 0 || s.key[right] < 0) return nullptr;
        auto it = merges_.find(((uint64_t) (uint32_t) s.key[left] << 32) | (uint32_t) s.key[right]);
        return it == merges_.end() ? nullptr : &it->second;
    };
    auto try_add = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0) return;
        const Merge * m = find(left, right);
        // Lowest rank merges first: negate for the max-heap. Ranks beyond 2^24 lose float precision, which can
        // only reorder merges whose ranks differ by less than that; real vocabularies have < 2^18 merges.
        if (m) s.queue.push({left, right, -(float) m->rank, syms[left].n + syms[right].n});
    };
    for (int32_t i = 1; i < (int32_t) n; i++) try_add(i - 1, i);

    while (!s.queue.empty()) {
        const Bigram bg = s.queue.pop();
        Symbol & l = syms[bg.left];
        Symbol & r = syms[bg.right];
        if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue; // stale: a side changed since it was queued
        const Merge * m = find(bg.left, bg.right);
        s.key[bg.left] = m->result;
        s.text[bg.left] = m->result_text;
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) syms[r.next].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        const Symbol & sym = syms[i];
        if (s.text[i] >= 0) {
            out.push_back(s.text[i]);
        } else {
            // No token plain text may produce for the symbol (a byte the vocabulary lacks, or a merge whose result
            // is a control token): spell the bytes instead.
            for (size_t b = 0; b < sym.n; b++) push_byte((uint8_t) piece[sym.off + b], out);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

std::string Tokenizer::token_to_piece(int32_t id) const {
    if (id < 0 || id >= n_vocab()) {
        fail(ErrorCode::INVALID_ARGUMENT, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                              std::to_string(n_vocab()) + " tokens)");
    }
    const int32_t ty = token_types_[id];
    const std::string & text = tokens_[id];
    if (ty == TT_CONTROL &&
        std::find(rendered_controls_.begin(), rendered_controls_.end(), id) != rendered_controls_.end()) {
        return text;
    }
    if (ty == TT_CONTROL || ty == TT_UNUSED) return "";
    if (ty == TT_UNKNOWN) return REPLACEMENT_CHAR;

    if (kind_ == TokenizerKind::LLAMA) {
        if (ty == TT_BYTE) {
            const int b = parse_byte_token(text);
            if (b >= 0) return std::string(1, (char) b);
        }
        std::string out;
        out.reserve(text.size());
        for (size_t i = 0; i < text.size();) {
            if (text.compare(i, SPM_SPACE_LEN, SPM_SPACE) == 0) {
                out += ' ';
                i += SPM_SPACE_LEN;
            } else {
                out += text[i++];
            }
        }
        return out;
    }

    // GPT-2: user-defined (added) tokens are stored as plain text, not byte-mapped.
    if (ty == TT_USER_DEFINED) return text;
    const Gpt2ByteMap & bm = gpt2_bytes();
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        size_t len;
        const uint32_t cp = decode_utf8(text, i, &len);
        if (cp < 512 && bm.cp_to_byte[cp] >= 0) out += (char) bm.cp_to_byte[cp];
        else out.append(text, i, len); // not a mapped byte: keep the text as written
        i += len;
    }
    return out;
}

// Appends the text of `id` to `out`. *strip_prefix is true until the first real (non-BOS, non-control) token of a
// text: the space prefix encode() added shows up as a leading "▁" on that token, and is removed.
void Tokenizer::append_decoded(int32_t id, bool * strip_prefix, std::string & out) const {
    std::string piece = token_to_piece(id);
    if (*strip_prefix) {
        const int32_t ty = token_types_[id];
        if (id == bos_ || ty == TT_CONTROL || ty == TT_UNUSED) return; // still before the first real token
        *strip_prefix = false;
        if (ty != TT_BYTE && tokens_[id].compare(0, SPM_SPACE_LEN, SPM_SPACE) == 0 && !piece.empty() &&
            piece[0] == ' ') {
            piece.erase(0, 1);
        }
    }
    out += piece;
}

std::string Tokenizer::decode(const std::vector<int32_t> & ids) const {
    std::string out;
    bool strip_prefix = kind_ == TokenizerKind::LLAMA && add_space_prefix_;
    for (int32_t id : ids) append_decoded(id, &strip_prefix, out);
    return out;
}

std::string Tokenizer::decode_one(int32_t id) const {
    std::string out;
    bool strip_prefix = kind_ == TokenizerKind::LLAMA && add_space_prefix_;
    append_decoded(id, &strip_prefix, out);
    return out;
}

} // namespace tl
