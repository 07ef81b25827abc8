// Fuzz target: the tokenizers over arbitrary text and arbitrary vocabularies.
//
// The first input byte picks a mode (byte % 5, or with bit 6 set: 5 + (byte & 1)), the rest is the payload:
//   modes 0-3: encode the payload as text (bit 7 of the first byte: with BOS) with one of four fixed tokenizers,
//              check every id is in the vocabulary and that decode(encode(text)) == text where the tokenizer
//              promises it (full byte coverage), then decode the payload read as little-endian int32 ids
//              (out-of-range ids must throw INVALID_ARGUMENT, not read past the table).
//   mode 4:    build a tokenizer from the payload itself (the second byte: flags that pick gpt2/llama, types, scores,
//              BOS/EOS/unk ids; then "tokens\0merges\0text", one entry a line), as from_gguf would from a hostile
//              file, and encode and decode the text with it.
//   mode 5:    pre-tokenizers: the second byte picks a tokenizer.ggml.pre value; the rest is text. The pieces must
//              cover the text in order, none empty, be the same with the matcher's branch pruning off, and a
//              byte-level vocabulary with that pre-tokenizer must round trip the text (its NFC form for Qwen2).
//   mode 6:    special tokens: the second byte: bit 0 parse_special, bits 1-3 the number of plain ranges, read as
//              little-endian u16 pairs from the next bytes; the rest is text, encoded with a vocabulary that has
//              control and user-defined tokens. Malformed ranges must throw INVALID_ARGUMENT; without
//              parse_special (or with the whole text plain) decode(encode(text)) == text.
// The fixed tokenizers: the shipped model's gpt2 vocabulary (models/tuneloop-shakespeare.gguf, or $TL_FUZZ_MODEL;
// a synthetic gpt2 one when absent), a synthetic SentencePiece one with byte fallback, one without byte tokens (so
// some bytes must go to <unk>), and one with neither (encode throws INVALID_ARGUMENT for uncovered bytes).
// Accepted outcomes: success or an EngineException; anything else aborts. Build and run: native/fuzz/run.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "errors.h"
#include "gguf.h"
#include "pretokenizer.h"
#include "tokenizer.h"
#include "unicode.h"

using namespace tl;

namespace {

const char * const SPM_SPACE = "\xE2\x96\x81";

std::string byte_token(int b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    return buf;
}

// A small SentencePiece vocabulary: specials, optionally the 256 byte tokens, "▁" and some pieces with scores.
Tokenizer synthetic_spm(bool byte_fallback, bool with_unk) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {with_unk ? 2 : 5, 3, 3}; // unknown (or unused), control, control
    if (byte_fallback) {
        for (int b = 0; b < 256; b++) {
            tokens.push_back(byte_token(b));
            types.push_back(6);
        }
    }
    const char * const pieces[] = {"\xE2\x96\x81",
                                   "e",
                                   "t",
                                   "h",
                                   "th",
                                   "the",
                                   "\xE2\x96\x81the",
                                   "a",
                                   "n",
                                   "an",
                                   "and",
                                   "\xE2\x96\x81"
                                   "and",
                                   "o",
                                   "r",
                                   "or",
                                   "l",
                                   "ll",
                                   "\xE2\x96\x81H",
                                   "He",
                                   "llo",
                                   "\xC3\xA9",
                                   "\xE2\x96\x81\xE2\x96\x81",
                                   "\n",
                                   "\xF0\x9F\x98\x80",
                                   "</s>"};
    std::vector<float> scores(tokens.size(), 0.0f);
    float s = -1.0f;
    for (const char * p : pieces) {
        tokens.push_back(p);
        types.push_back(1);
        scores.push_back(s);
        s -= 0.5f;
    }
    return Tokenizer::from_vocab(TokenizerKind::LLAMA, tokens, scores, types, {}, 1, 2, true, true, with_unk ? 0 : -1);
}

// A gpt2 vocabulary: the 256 byte symbols (GPT-2's bytes_to_unicode order does not matter here: each symbol is a
// token), a few merges, <|endoftext|> as BOS/EOS, and (with_specials) more control tokens and user-defined ones.
// Used when the shipped model is not at hand, and for the pre-tokenizer and special-token modes.
Tokenizer synthetic_gpt2(const std::string & pre = "gpt-2", bool with_specials = false) {
    std::vector<std::string> tokens;
    auto utf8 = [](uint32_t cp) {
        std::string o;
        if (cp < 0x80) o += (char) cp;
        else {
            o += (char) (0xC0 | (cp >> 6));
            o += (char) (0x80 | (cp & 0x3F));
        }
        return o;
    };
    int next = 0;
    for (int b = 0; b < 256; b++) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        tokens.push_back(utf8(printable ? (uint32_t) b : (uint32_t) (256 + next++)));
    }
    const std::vector<std::string> merges = {"t h", "th e", "\xC4\xA0 the", "a n", "an d", "\xC4\xA0 a", "l l", "e r"};
    for (const std::string & m : merges) tokens.push_back(m.substr(0, m.find(' ')) + m.substr(m.find(' ') + 1));
    std::vector<int32_t> types(tokens.size(), 1);
    if (with_specials) {
        for (const char * c : {"<|im_start|>", "<|im_end|>", "<|im_end|>x", "<|end|>", "<"}) {
            tokens.push_back(c);
            types.push_back(3); // control
        }
        for (const char * u : {"<tool>", "</tool>", "ol>", "\n\n"}) {
            tokens.push_back(u);
            types.push_back(4); // user-defined
        }
    }
    tokens.push_back("<|endoftext|>");
    types.push_back(3);
    const int32_t eot = (int32_t) tokens.size() - 1;
    TokenizerOptions opt;
    opt.pre = pre;
    return Tokenizer::from_vocab(TokenizerKind::GPT2, tokens, {}, types, merges, eot, eot, true, false, -1, opt);
}

Tokenizer shipped_or_synthetic_gpt2() {
    const char * env = std::getenv("TL_FUZZ_MODEL");
    const std::string path = env ? env : "models/tuneloop-shakespeare.gguf";
    try {
        GgufFile f(path);
        return Tokenizer::from_gguf(f);
    } catch (const EngineException &) {
        if (env) {
            std::fprintf(stderr, "tokenizer_fuzz: cannot read TL_FUZZ_MODEL=%s\n", env);
            std::abort();
        }
        return synthetic_gpt2();
    }
}

struct Fixed {
    Tokenizer tok;
    bool round_trips; // every byte is encodable and decode restores it exactly
};

const std::vector<Fixed> & fixed_tokenizers() {
    static const std::vector<Fixed> all = {
        {shipped_or_synthetic_gpt2(), true},
        {synthetic_spm(true, true), true}, // except text holding U+2581 itself, which decodes as a space (below)
        {synthetic_spm(false, true), false},
        {synthetic_spm(false, false), false},
    };
    return all;
}

[[noreturn]] void unexpected(const char * what, const EngineException & e) {
    std::fprintf(stderr, "tokenizer_fuzz: %s threw %s: %s\n", what, error_code_name(e.code()), e.what());
    std::abort();
}

void check_ids(const Tokenizer & tok, const std::vector<int32_t> & ids) {
    for (int32_t id : ids) {
        if (id < 0 || id >= tok.n_vocab()) {
            std::fprintf(stderr, "tokenizer_fuzz: id %d outside the vocabulary of %d\n", id, tok.n_vocab());
            std::abort();
        }
    }
}

void fixed_mode(const Fixed & fx, bool add_bos, const std::string & text) {
    const Tokenizer & tok = fx.tok;
    try {
        const std::vector<int32_t> ids = tok.encode(text, add_bos);
        check_ids(tok, ids);
        const std::string back = tok.decode(ids);
        const bool spm_space = tok.kind() == TokenizerKind::LLAMA && text.find(SPM_SPACE) != std::string::npos;
        if (fx.round_trips && !spm_space && back != text) {
            std::fprintf(stderr, "tokenizer_fuzz: decode(encode(text)) != text (%zu vs %zu bytes)\n", back.size(),
                         text.size());
            std::abort();
        }
        for (int32_t id : ids) (void) tok.token_to_piece(id);
    } catch (const EngineException & e) {
        // Only the tokenizers without byte tokens may refuse text (a byte they cannot spell, and no <unk>).
        if (fx.round_trips || e.code() != ErrorCode::INVALID_ARGUMENT) unexpected("encode", e);
    }
    // The same bytes as ids: decode must refuse out-of-range ids with INVALID_ARGUMENT, never read past the table.
    std::vector<int32_t> ids(text.size() / 4);
    if (!ids.empty()) std::memcpy(ids.data(), text.data(), ids.size() * 4);
    for (int32_t & id : ids) {
        if ((id & 0x40000000) == 0) id = (int32_t) ((uint32_t) id % (uint32_t) tok.n_vocab()); // mostly valid ids
    }
    try {
        (void) tok.decode(ids);
    } catch (const EngineException & e) {
        if (e.code() != ErrorCode::INVALID_ARGUMENT) unexpected("decode", e);
    }
}

std::vector<std::string> lines(const std::string & s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t nl = s.find('\n', start);
        if (nl == std::string::npos) nl = s.size();
        out.push_back(s.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

// A vocabulary made of the input, through the same from_vocab that from_gguf calls.
void vocab_mode(uint8_t flags, const std::string & payload) {
    const size_t z1 = payload.find('\0');
    const size_t z2 = z1 == std::string::npos ? std::string::npos : payload.find('\0', z1 + 1);
    std::vector<std::string> tokens = lines(payload.substr(0, z1));
    std::vector<std::string> merges =
        z1 == std::string::npos
            ? std::vector<std::string>{}
            : lines(payload.substr(z1 + 1, z2 == std::string::npos ? std::string::npos : z2 - z1 - 1));
    const std::string text = z2 == std::string::npos ? std::string("Hello world") : payload.substr(z2 + 1);
    if (tokens.size() > 4096 || merges.size() > 4096) return; // keep each input quick
    const int32_t n = (int32_t) tokens.size();
    // Types cycle through every value, including unknown ones (0, 7): token i has type (i + flags) % 8.
    std::vector<int32_t> types;
    if (flags & 0x10) {
        for (int32_t i = 0; i < n; i++) types.push_back((i + (flags >> 5)) % 8);
    }
    std::vector<float> scores;
    if (flags & 0x20) {
        for (int32_t i = 0; i < n; i++) scores.push_back((float) ((i * 7919) % 101) - 50.0f);
    }
    const int32_t bos = (flags & 0x40) ? 0 : -1;
    const int32_t eos = (flags & 0x80) ? n - 1 : -1;
    const int32_t unk = (flags & 0x08) ? n / 2 : -1;
    const TokenizerKind kind = (flags & 0x04) ? TokenizerKind::GPT2 : TokenizerKind::LLAMA;
    const Tokenizer tok =
        Tokenizer::from_vocab(kind, tokens, scores, types, merges, bos, eos, flags & 1, flags & 2, unk);
    std::vector<int32_t> ids;
    try {
        ids = tok.encode(text, flags & 1);
    } catch (const EngineException & e) {
        if (e.code() != ErrorCode::INVALID_ARGUMENT) unexpected("encode", e);
        return;
    }
    check_ids(tok, ids);
    (void) tok.decode(ids);
    for (int32_t id = 0; id < n; id++) {
        (void) tok.token_to_piece(id);
        (void) tok.is_end_of_generation(id);
    }
}

void pre_tokenizer_mode(uint8_t pick, const std::string & text) {
    static const std::vector<std::string> names = pre_tokenizer_names();
    static std::vector<Tokenizer> toks;
    if (toks.empty()) {
        for (const std::string & n : names) toks.push_back(synthetic_gpt2(n));
    }
    const size_t k = pick % names.size();
    const PreTokenizer * pre = find_pre_tokenizer(names[k]);
    SplitScratch scratch;
    std::vector<uint32_t> pieces;
    pre_tokenize(*pre, text.data(), text.size(), scratch, pieces);
    uint32_t at = 0;
    for (size_t i = 0; i < pieces.size(); i += 2) {
        if (pieces[i] != at || pieces[i + 1] <= pieces[i]) {
            std::fprintf(stderr, "tokenizer_fuzz: pre-tokenizer %s: piece %zu is [%u, %u) after %u\n", names[k].c_str(),
                         i / 2, pieces[i], pieces[i + 1], at);
            std::abort();
        }
        at = pieces[i + 1];
    }
    if (at != text.size()) {
        std::fprintf(stderr, "tokenizer_fuzz: pre-tokenizer %s covers %u of %zu bytes\n", names[k].c_str(), at,
                     text.size());
        std::abort();
    }
    // Pruning pattern branches by their first characters must not change any piece.
    SplitScratch exhaustive;
    exhaustive.prune = false;
    std::vector<uint32_t> pieces_exhaustive;
    pre_tokenize(*pre, text.data(), text.size(), exhaustive, pieces_exhaustive);
    if (pieces_exhaustive != pieces) {
        std::fprintf(stderr, "tokenizer_fuzz: pre-tokenizer %s splits differently without pruning\n", names[k].c_str());
        std::abort();
    }
    const Tokenizer & tok = toks[k];
    const std::vector<int32_t> ids = tok.encode(text, false);
    check_ids(tok, ids);
    // NFC families (Qwen2) give back the normalized text.
    std::string expected = text;
    if (pre->nfc) {
        expected.clear();
        unicode::nfc(text.data(), text.size(), expected);
    }
    if (tok.decode(ids) != expected) {
        std::fprintf(stderr, "tokenizer_fuzz: pre-tokenizer %s: decode(encode(text)) != text\n", names[k].c_str());
        std::abort();
    }
}

void special_mode(uint8_t flags, const std::string & payload) {
    static const Tokenizer tok = synthetic_gpt2("llama-bpe", true);
    const bool parse_special = flags & 1;
    const size_t n_ranges = (flags >> 1) & 7;
    if (payload.size() < n_ranges * 4) return;
    std::vector<int64_t> ranges;
    for (size_t i = 0; i < n_ranges * 2; i++) {
        ranges.push_back((uint8_t) payload[2 * i] | ((uint8_t) payload[2 * i + 1] << 8));
    }
    const std::string text = payload.substr(n_ranges * 4);
    bool valid = true;
    for (size_t i = 0; i < ranges.size(); i += 2)
        valid = valid && ranges[i] <= ranges[i + 1] && ranges[i + 1] <= (int64_t) text.size();
    std::vector<int32_t> ids;
    try {
        ids = tok.encode(text, false, parse_special, ranges);
    } catch (const EngineException & e) {
        if (valid || e.code() != ErrorCode::INVALID_ARGUMENT) unexpected("encode (special)", e);
        return;
    }
    if (!valid) {
        std::fprintf(stderr, "tokenizer_fuzz: malformed plain ranges were accepted\n");
        std::abort();
    }
    check_ids(tok, ids);
    const std::string back = tok.decode(ids);
    if (!parse_special && back != text) {
        std::fprintf(stderr, "tokenizer_fuzz: without parse_special, decode(encode(text)) != text\n");
        std::abort();
    }
    // The whole text plain: the same ids as without parse_special.
    if (parse_special && tok.encode(text, false, true, {0, (int64_t) text.size()}) != tok.encode(text, false)) {
        std::fprintf(stderr, "tokenizer_fuzz: a plain range over the whole text still parsed special tokens\n");
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    if (size < 2) return 0;
    const unsigned mode = (data[0] & 0x40) ? 5 + (data[0] & 1) : data[0] % 5;
    try {
        if (mode == 5) pre_tokenizer_mode(data[1], std::string(reinterpret_cast<const char *>(data + 2), size - 2));
        else if (mode == 6) special_mode(data[1], std::string(reinterpret_cast<const char *>(data + 2), size - 2));
        else if (mode < 4)
            fixed_mode(fixed_tokenizers()[mode], data[0] & 0x80,
                       std::string(reinterpret_cast<const char *>(data + 1), size - 1));
        else vocab_mode(data[1], std::string(reinterpret_cast<const char *>(data + 2), size - 2));
    } catch (const EngineException &) {
        // vocab mode: from_vocab refused the vocabulary (MODEL_CORRUPT), what it is for
    } catch (const std::exception & e) {
        std::fprintf(stderr, "tokenizer_fuzz: unexpected %s: %s\n", typeid(e).name(), e.what());
        std::abort();
    }
    return 0;
}
