// Standalone tests for the tokenizers, the sampler and the stop matcher (no Node).
//   g++ -std=c++17 -O3 -Inative/src native/tests/tokenizer_sampler_test.cpp native/src/tokenizer.cpp
//       native/src/sampler.cpp native/src/gguf.cpp native/src/errors.cpp native/src/tensor_convert.cpp native/src/quant/formats.cpp native/src/quant/dequantize.cpp -o tok_test
//   ./tok_test path/to/stories260K-f32.gguf
// Without a model path the llama-tokenizer tests that need it are skipped (the rest still run).
// TL_TEST_NO_TIMING=1 skips the speed checks (for sanitizer builds).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "errors.h"
#include "gguf.h"
#include "pretokenizer.h"
#include "sampler.h"
#include "split_pattern.h"
#include "tokenizer.h"
#include "unicode.h"

using namespace tl;

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        g_checks++;                                                              \
        if (!(cond)) {                                                           \
            g_failures++;                                                        \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, msg)                                                                                    \
    do {                                                                                                        \
        g_checks++;                                                                                             \
        if (!(cond)) {                                                                                          \
            g_failures++;                                                                                       \
            std::fprintf(stderr, "FAIL %s:%d: %s [%s]\n", __FILE__, __LINE__, #cond, std::string(msg).c_str()); \
        }                                                                                                       \
    } while (0)

// Runs f and returns the EngineException code it threw, or -1 if it did not throw one.
static int thrown_code(const std::function<void()> & f) {
    try {
        f();
    } catch (const EngineException & e) {
        if (getenv("TL_TEST_VERBOSE")) std::fprintf(stderr, "  (threw %s: %s)\n", error_code_name(e.code()), e.what());
        return (int) e.code();
    }
    return -1;
}

// Timing checks are skipped with TL_TEST_NO_TIMING=1 (sanitizer or debug builds).
static bool timing_checks() { return std::getenv("TL_TEST_NO_TIMING") == nullptr; }

static double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static std::string escape(const std::string & s) {
    std::string out;
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7F) out += (char) c;
        else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        }
    }
    return out;
}

// Strings for round trips: leading/trailing/multiple spaces, control characters, accents, CJK, emoji (ZWJ
// sequences), text that looks like special tokens, and malformed UTF-8.
static const std::vector<std::string> kRoundTrip = {
    "Once upon a time",
    "",
    " ",
    "   ",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple    inner     spaces",
    "\n\nnew\tlines\r\nand tabs\t",
    "Hello, world! It's 3:45pm; (really?) [yes] {no} <maybe> \"quoted\" 'single' -- done...",
    "h\xC3\xA9llo w\xC3\xB6rld na\xC3\xAFve caf\xC3\xA9",
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",
    "emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\x89 family "
    "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7!",
    "</s> <s> <unk> <0x41> <|endoftext|>",
    "a",
    "bad utf8: \xFF\xFE \xC3 \xE2\x82 end",
    "numbers 1234567890 and 3.14159 and 1,000,000",
    "Lily's mom said, \"Don't touch the dog!\" They'll go.",
};

// ---------------------------------------------------------------------------------------------------------------
// llama (SentencePiece) tokenizer against the real model

// Reference SPM encoder: the naive algorithm of llama2.c (rescan all pairs, merge the best-scoring one, leftmost
// on ties, until none merges). Slow but obviously right; the heap-based encoder must produce the same ids.
static std::vector<int32_t> reference_spm(const Tokenizer & tok, const std::vector<double> & scores,
                                          const std::vector<int64_t> & types, const std::string & text) {
    std::map<std::string, int32_t> vocab;
    std::map<int, int32_t> bytes;
    for (int32_t i = 0; i < tok.n_vocab(); i++) {
        const int ty = types.empty() ? 1 : (int) types[i];
        if (ty == 6) bytes[(int) std::strtol(tok.token_text(i).substr(3, 2).c_str(), nullptr, 16)] = i;
        else if (ty == 1 || ty == 4) vocab.emplace(tok.token_text(i), i);
    }
    std::vector<int32_t> out;
    if (text.empty()) return out;
    std::string s = "\xE2\x96\x81";
    for (char c : text) s += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    std::vector<std::string> syms;
    for (size_t i = 0; i < s.size();) {
        unsigned char c = (unsigned char) s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        if (i + n > s.size()) n = 1;
        for (size_t k = 1; k < n; k++) {
            if (((unsigned char) s[i + k] & 0xC0) != 0x80) n = 1;
        }
        syms.push_back(s.substr(i, n));
        i += n;
    }
    for (;;) {
        double best = -1e30;
        int best_i = -1;
        for (size_t i = 0; i + 1 < syms.size(); i++) {
            auto it = vocab.find(syms[i] + syms[i + 1]);
            if (it != vocab.end() && scores[it->second] > best) {
                best = scores[it->second];
                best_i = (int) i;
            }
        }
        if (best_i < 0) break;
        syms[best_i] += syms[best_i + 1];
        syms.erase(syms.begin() + best_i + 1);
    }
    for (const auto & sym : syms) {
        auto it = vocab.find(sym);
        if (it != vocab.end()) {
            out.push_back(it->second);
        } else {
            for (unsigned char c : sym) out.push_back(bytes.count(c) ? bytes[c] : 0);
        }
    }
    return out;
}

static void test_llama(const std::string & path) {
    GgufFile file(path);
    Tokenizer tok = Tokenizer::from_gguf(file);
    CHECK(tok.kind() == TokenizerKind::LLAMA);
    CHECK(tok.n_vocab() == 512);
    CHECK(tok.bos() == 1);
    CHECK(tok.eos() == 2);
    CHECK(tok.add_bos_default());
    CHECK(tok.is_end_of_generation(2));
    CHECK(!tok.is_end_of_generation(1));
    CHECK(!tok.is_end_of_generation(100));
    CHECK(tok.token_to_piece(1).empty());        // <s> is control
    CHECK(tok.token_to_piece(2).empty());        // </s>
    CHECK(tok.token_to_piece(3 + 0x41) == "A");  // <0x41>
    CHECK(tok.token_to_piece(3 + 0x0A) == "\n"); // <0x0A>
    CHECK(thrown_code([&] { tok.token_to_piece(512); }) == (int) ErrorCode::INVALID_ARGUMENT);
    CHECK(thrown_code([&] { tok.token_to_piece(-1); }) == (int) ErrorCode::INVALID_ARGUMENT);

    // "Once upon a time": BOS, then a few whole-word tokens (no byte fallback for plain English).
    std::vector<int32_t> ids = tok.encode("Once upon a time", true);
    std::printf("  'Once upon a time' ->");
    for (int32_t id : ids) std::printf(" %d('%s')", id, escape(tok.token_text(id)).c_str());
    std::printf("\n");
    CHECK(!ids.empty() && ids[0] == 1);
    CHECK(ids.size() >= 3 && ids.size() <= 8);
    for (size_t i = 1; i < ids.size(); i++) CHECK(ids[i] >= 3 + 256); // no <0xXX> tokens
    CHECK(tok.token_text(ids[1]).rfind("\xE2\x96\x81", 0) == 0);      // first word carries the "▁" prefix
    CHECK(tok.decode(ids) == "Once upon a time");
    CHECK(tok.encode("Once upon a time", false) == std::vector<int32_t>(ids.begin() + 1, ids.end()));

    // Same ids as the naive reference encoder, and exact round trips.
    const std::vector<double> scores = file.get_float_array("tokenizer.ggml.scores");
    const std::vector<int64_t> types = file.get_int_array("tokenizer.ggml.token_type");
    for (const std::string & s : kRoundTrip) {
        std::vector<int32_t> with_bos = tok.encode(s, true);
        std::vector<int32_t> no_bos = tok.encode(s, false);
        CHECK_MSG(!with_bos.empty() && with_bos[0] == 1, escape(s));
        CHECK_MSG(no_bos == reference_spm(tok, scores, types, s), escape(s));
        CHECK_MSG(tok.decode(with_bos) == s, escape(s) + " -> " + escape(tok.decode(with_bos)));
        CHECK_MSG(tok.decode(no_bos) == s, escape(s));
        for (int32_t id : with_bos) CHECK(id >= 0 && id < tok.n_vocab());
        for (size_t i = 1; i < with_bos.size(); i++) CHECK(with_bos[i] != 1 && with_bos[i] != 2);
    }
    CHECK(tok.encode("", true) == std::vector<int32_t>{1});
    CHECK(tok.encode("", false).empty());

    // Emoji are not in a 512-token vocabulary: they must come out as byte tokens <0xF0> <0x9F> ...
    std::vector<int32_t> emoji = tok.encode("\xF0\x9F\x98\x80", false);
    bool has_f0 = false;
    for (int32_t id : emoji) has_f0 |= id == 3 + 0xF0;
    CHECK(has_f0);

    // SentencePiece cannot tell a literal "▁" from a space: it decodes as one (same as llama.cpp/sentencepiece).
    CHECK(tok.decode(tok.encode("a\xE2\x96\x81"
                                "b",
                                true)) == "a b");

    // Special-token text in the input stays text.
    for (int32_t id : tok.encode("</s><s>", false)) CHECK(id != 1 && id != 2);

    // Pieces concatenate to the decoded text (apart from the removed prefix space).
    std::vector<int32_t> story = tok.encode("The little dog ran to the park.", true);
    std::string pieces;
    for (int32_t id : story) pieces += tok.token_to_piece(id);
    CHECK(pieces == " The little dog ran to the park.");

    // Random printable ASCII + unicode: encode/decode round trip and reference agreement.
    std::mt19937 rng(42);
    const std::vector<std::string> alphabet = {
        "a", "b", " ",  "  ",   "e",       "th", "\n", ".", "'", "\xC3\xA9", "\xF0\x9F\x98\x80",
        "Z", "1", "\t", "\xC3", "\xE2\x82"};
    for (int iter = 0; iter < 200; iter++) {
        std::string s;
        const int len = (int) (rng() % 30);
        for (int i = 0; i < len; i++) s += alphabet[rng() % alphabet.size()];
        std::vector<int32_t> e = tok.encode(s, true);
        CHECK_MSG(tok.decode(e) == s, escape(s));
        CHECK_MSG(std::vector<int32_t>(e.begin() + 1, e.end()) == reference_spm(tok, scores, types, s), escape(s));
    }

    // Speed: 100 KB of story-like text with some unicode.
    std::string big;
    const std::string para = "Once upon a time, there was a little girl named Lily. She loved to play outside "
                             "in the sunshine with her dog, Max. \xF0\x9F\x90\xB6 One day they found a caf\xC3\xA9!\n";
    while (big.size() < 100 * 1024) big += para;
    double t0 = now_ms();
    std::vector<int32_t> big_ids = tok.encode(big, true);
    double t1 = now_ms();
    std::printf("  llama encode: %zu bytes -> %zu tokens in %.1f ms\n", big.size(), big_ids.size(), t1 - t0);
    if (timing_checks()) CHECK(t1 - t0 < 100.0);
    CHECK(tok.decode(big_ids) == big);
}

// ---------------------------------------------------------------------------------------------------------------
// gpt2 (byte-level BPE) tokenizer on a tiny in-memory vocabulary

static std::string gpt2_byte_symbol(int b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++) {
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        }
        cp = 256 + n;
    }
    std::string out;
    if (cp < 0x80) out += (char) cp;
    else {
        out += (char) (0xC0 | (cp >> 6));
        out += (char) (0x80 | (cp & 0x3F));
    }
    return out;
}

static void test_gpt2() {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; b++) tokens.push_back(gpt2_byte_symbol(b)); // id == byte
    CHECK(tokens[' '] == "\xC4\xA0");                                    // "Ġ"
    CHECK(tokens['\n'] == "\xC4\x8A");                                   // "Ċ"
    // Merges, lowest rank first. "o Ġ" and "a 1" would cross pre-tokenizer boundaries and must never apply.
    const std::vector<std::string> merges = {
        "h e",
        "l l",
        "he ll",
        "hell o",
        "\xC4\xA0 w",
        "o r",
        "\xC4\xA0w or",
        "l d",
        "\xC4\xA0wor ld",
        "o \xC4\xA0",
        "' s",
        "1 2",
        "\xC4\xA0 \xC4\xA0",
        "a 1",
        "\xC4\xA0 1",
    };
    std::map<std::string, int32_t> id;
    for (const std::string & m : merges) {
        const size_t sp = m.find(' ');
        const std::string t = m.substr(0, sp) + m.substr(sp + 1);
        id[t] = (int32_t) tokens.size();
        tokens.push_back(t);
    }
    const int32_t eot = (int32_t) tokens.size();
    tokens.push_back("<|endoftext|>");
    std::vector<int32_t> types(tokens.size(), 1);
    types[eot] = 3;

    Tokenizer tok = Tokenizer::from_vocab(TokenizerKind::GPT2, tokens, {}, types, merges, -1, -1, false, false);
    CHECK(tok.kind() == TokenizerKind::GPT2);
    CHECK(tok.bos() == -1 && tok.eos() == -1);
    CHECK(tok.is_end_of_generation(eot));
    CHECK(!tok.is_end_of_generation(id["hello"]));
    CHECK(tok.token_to_piece(eot).empty());
    CHECK(tok.token_to_piece(' ') == " ");
    CHECK(tok.token_to_piece(id["\xC4\xA0world"]) == " world");
    CHECK(tok.token_to_piece(0xE9) == "\xE9"); // a lone byte decodes to that byte

    using V = std::vector<int32_t>;
    const int32_t G = ' ';
    CHECK(tok.encode("hello world", false) == (V{id["hello"], id["\xC4\xA0world"]}));
    CHECK(tok.encode("hello world", true) == (V{id["hello"], id["\xC4\xA0world"]})); // no BOS: bos = -1
    CHECK(tok.encode("hello's", false) == (V{id["hello"], id["'s"]}));
    CHECK(tok.encode("a1", false) == (V{'a', '1'}));                    // letters and digits split
    CHECK(tok.encode("  world", false) == (V{G, id["\xC4\xA0world"]})); // \s+(?!\S) leaves one space
    CHECK(tok.encode("   world", false) == (V{id["\xC4\xA0\xC4\xA0"], id["\xC4\xA0world"]}));
    CHECK(tok.encode("x 12", false) == (V{'x', G, id["12"]}));         // rank 11 "1 2" before rank 14 "Ġ 1"
    CHECK(tok.encode("hello \n", false) == (V{id["hello"], G, '\n'})); // trailing whitespace run
    CHECK(tok.encode("hello\n world", false) == (V{id["hello"], '\n', id["\xC4\xA0world"]}));
    CHECK(tok.encode("lll", false) == (V{id["ll"], 'l'})); // leftmost pair first
    CHECK(tok.encode("hello!!", false) == (V{id["hello"], '!', '!'}));
    CHECK(tok.encode("<|endoftext|>", false).size() > 1); // text, not the control token
    for (int32_t t : tok.encode("<|endoftext|>", false)) CHECK(t != eot);

    for (const std::string & s : kRoundTrip) {
        CHECK_MSG(tok.decode(tok.encode(s, true)) == s, escape(s));
    }
    std::mt19937 rng(7);
    for (int iter = 0; iter < 300; iter++) {
        std::string s;
        const int len = (int) (rng() % 40);
        for (int i = 0; i < len; i++) s += (char) (rng() % 256); // arbitrary bytes, malformed UTF-8 included
        CHECK_MSG(tok.decode(tok.encode(s, false)) == s, escape(s));
    }

    std::string big;
    const std::string para = "hello world, it's a test of the GPT-2 pre-tokenizer: 12 apples, "
                             "na\xC3\xAFve caf\xC3\xA9 \xF0\x9F\x98\x80   spaces\n\n";
    while (big.size() < 100 * 1024) big += para;
    double t0 = now_ms();
    std::vector<int32_t> big_ids = tok.encode(big, false);
    double t1 = now_ms();
    std::printf("  gpt2 encode:  %zu bytes -> %zu tokens in %.1f ms\n", big.size(), big_ids.size(), t1 - t0);
    if (timing_checks()) CHECK(t1 - t0 < 100.0);
    CHECK(tok.decode(big_ids) == big);

    // Construction errors.
    const int corrupt = (int) ErrorCode::MODEL_CORRUPT;
    CHECK(thrown_code([&] {
              Tokenizer::from_vocab(TokenizerKind::GPT2, tokens, {}, types, {}, -1, -1, false, false);
          }) == corrupt);
    CHECK(thrown_code([&] {
              Tokenizer::from_vocab(TokenizerKind::GPT2, tokens, {}, types, {"hello"}, -1, -1, false, false);
          }) == corrupt);
    CHECK(thrown_code([&] {
              Tokenizer::from_vocab(TokenizerKind::GPT2, tokens, {}, types, merges, (int32_t) tokens.size(), -1, false,
                                    false);
          }) == corrupt);
    CHECK(thrown_code([&] {
              Tokenizer::from_vocab(TokenizerKind::GPT2, tokens, {}, types, merges, -1, -7, false, false);
          }) == corrupt);
    CHECK(thrown_code([&] {
              Tokenizer::from_vocab(TokenizerKind::LLAMA, tokens, {1.0f, 2.0f}, {}, {}, -1, -1, true, true);
          }) == corrupt);
    CHECK(thrown_code([&] {
              Tokenizer::from_vocab(TokenizerKind::LLAMA, tokens, {}, {1, 2}, {}, -1, -1, true, true);
          }) == corrupt);
    CHECK(thrown_code([&] { Tokenizer::from_vocab(TokenizerKind::LLAMA, {}, {}, {}, {}, -1, -1, true, true); }) ==
          corrupt);
}

// A llama vocabulary without byte tokens or unk: an unencodable character is a clear error, not a crash.
static void test_llama_small_vocab() {
    std::vector<std::string> tokens = {"<s>",
                                       "</s>",
                                       "\xE2\x96\x81",
                                       "a",
                                       "b",
                                       "\xE2\x96\x81"
                                       "a",
                                       "ab"};
    std::vector<float> scores = {0, 0, 0, 0, 0, -1, -2};
    std::vector<int32_t> types = {3, 3, 1, 1, 1, 1, 1};
    Tokenizer tok = Tokenizer::from_vocab(TokenizerKind::LLAMA, tokens, scores, types, {}, 0, 1, true, true);
    using V = std::vector<int32_t>;
    CHECK(tok.encode("ab", true) == (V{0, 5, 4})); // "▁a" (-1) beats "ab" (-2)
    CHECK(tok.encode("b ab", false) == (V{2, 4, 5, 4}));
    CHECK(tok.decode(tok.encode("b ab", true)) == "b ab");
    CHECK(thrown_code([&] { tok.encode("c", false); }) == (int) ErrorCode::INVALID_ARGUMENT);
    // No space prefix: text starts directly.
    Tokenizer np = Tokenizer::from_vocab(TokenizerKind::LLAMA, tokens, scores, types, {}, 0, 1, true, false);
    CHECK(np.encode("ab", false) == (V{6}));
    CHECK(np.decode(np.encode(" ab", true)) == " ab");
}

// from_gguf on hand-written GGUF files: unsupported and missing tokenizer metadata.
struct GgufWriter {
    std::string buf;
    uint64_t n_kv = 0;
    void u32(uint32_t v) { buf.append((const char *) &v, 4); }
    void u64(uint64_t v) { buf.append((const char *) &v, 8); }
    void str(const std::string & s) {
        u64(s.size());
        buf += s;
    }
    void kv_string(const std::string & k, const std::string & v) {
        str(k);
        u32(8);
        str(v);
        n_kv++;
    }
    void kv_strings(const std::string & k, const std::vector<std::string> & v) {
        str(k);
        u32(9);
        u32(8);
        u64(v.size());
        for (const auto & s : v) str(s);
        n_kv++;
    }
    void kv_u32(const std::string & k, uint32_t v) {
        str(k);
        u32(4);
        u32(v);
        n_kv++;
    }
    std::string file() const {
        std::string out = "GGUF";
        uint32_t ver = 3;
        uint64_t nt = 0;
        out.append((const char *) &ver, 4);
        out.append((const char *) &nt, 8);
        out.append((const char *) &n_kv, 8);
        out += buf;
        out.resize((out.size() + 31) / 32 * 32, '\0'); // the data section starts at the 32-byte alignment
        return out;
    }
};

static int from_gguf_code(const GgufWriter & w) {
    char path[] = "/tmp/tl_tok_test_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return -2;
    const std::string data = w.file();
    const bool ok = write(fd, data.data(), data.size()) == (ssize_t) data.size();
    close(fd);
    int code = ok ? thrown_code([&] {
        GgufFile f(path);
        Tokenizer::from_gguf(f);
    })
                  : -2;
    unlink(path);
    return code;
}

static void test_from_gguf_errors() {
    GgufWriter bert;
    bert.kv_string("tokenizer.ggml.model", "bert");
    bert.kv_strings("tokenizer.ggml.tokens", {"a", "b"});
    CHECK(from_gguf_code(bert) == (int) ErrorCode::UNSUPPORTED_ARCHITECTURE);

    GgufWriter no_tokens;
    no_tokens.kv_string("tokenizer.ggml.model", "llama");
    CHECK(from_gguf_code(no_tokens) == (int) ErrorCode::MODEL_CORRUPT);

    GgufWriter bad_bos;
    bad_bos.kv_string("tokenizer.ggml.model", "llama");
    bad_bos.kv_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
    bad_bos.kv_u32("tokenizer.ggml.bos_token_id", 99);
    CHECK(from_gguf_code(bad_bos) == (int) ErrorCode::MODEL_CORRUPT);

    GgufWriter none_bos; // 0xFFFFFFFF means "no such token", as llama.cpp writes it
    none_bos.kv_string("tokenizer.ggml.model", "llama");
    none_bos.kv_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
    none_bos.kv_u32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu);
    CHECK(from_gguf_code(none_bos) == -1);

    GgufWriter gpt2_no_merges;
    gpt2_no_merges.kv_string("tokenizer.ggml.model", "gpt2");
    gpt2_no_merges.kv_strings("tokenizer.ggml.tokens", {"a", "b"});
    CHECK(from_gguf_code(gpt2_no_merges) == (int) ErrorCode::MODEL_CORRUPT);
}

// ---------------------------------------------------------------------------------------------------------------
// Sampler

static std::vector<float> random_logits(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 3.0f);
    std::vector<float> v(n);
    for (float & x : v) x = d(rng);
    return v;
}

static int32_t argmax(const std::vector<float> & v) {
    int32_t b = 0;
    for (int32_t i = 1; i < (int32_t) v.size(); i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static int32_t sample_copy(Sampler & s, const std::vector<float> & logits, TokenLogprob * lp = nullptr) {
    std::vector<float> scratch = logits; // sample() may overwrite its input
    return s.sample(scratch.data(), (int32_t) scratch.size(), lp);
}

static void test_sampler() {
    const int N = 32000;
    std::vector<float> logits = random_logits(N, 1);
    const int32_t am = argmax(logits);

    // Greedy = argmax; ties go to the lowest id.
    {
        SamplingParams p;
        p.temperature = 0.0f;
        Sampler s(p);
        CHECK(sample_copy(s, logits) == am);
        std::vector<float> tie = logits;
        tie[700] = tie[300] = 100.0f;
        CHECK(sample_copy(s, tie) == 300);
    }
    // top_k = 1 and a tiny top_p are greedy whatever the temperature.
    for (uint64_t seed = 0; seed < 20; seed++) {
        SamplingParams p;
        p.temperature = 1.5f;
        p.seed = seed;
        p.top_k = 1;
        Sampler a(p);
        CHECK(sample_copy(a, logits) == am);
        p.top_k = 0;
        p.top_p = 1e-6f;
        Sampler b(p);
        CHECK(sample_copy(b, logits) == am);
    }
    // Same seed, same tokens; another seed, other tokens.
    {
        SamplingParams p;
        p.temperature = 1.0f;
        p.top_k = 40;
        p.top_p = 0.95f;
        p.seed = 1234;
        const std::vector<float> flat = random_logits(N, 9); // spread out so draws vary
        std::vector<std::vector<float>> steps;
        for (int i = 0; i < 50; i++) steps.push_back(random_logits(N, 100 + i));
        auto run = [&](SamplingParams q) {
            Sampler s(q);
            std::vector<int32_t> out;
            for (const auto & l : steps) out.push_back(sample_copy(s, l));
            return out;
        };
        CHECK(run(p) == run(p));
        SamplingParams q = p;
        q.seed = 4321;
        CHECK(run(p) != run(q));
        p.top_k = 0;
        p.top_p = 1.0f;
        CHECK(run(p) == run(p));
        p.top_p = 0.5f;
        CHECK(run(p) == run(p));
    }
    // Frequencies follow the distribution; top-k and top-p cut the tail.
    {
        const std::vector<float> l3 = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
        auto freqs = [&](SamplingParams p) {
            Sampler s(p);
            std::vector<double> f(3, 0.0);
            const int n = 20000;
            for (int i = 0; i < n; i++) f[sample_copy(s, l3)] += 1.0 / n;
            return f;
        };
        SamplingParams p;
        p.seed = 5;
        std::vector<double> f = freqs(p);
        CHECK(std::fabs(f[0] - 0.5) < 0.02 && std::fabs(f[1] - 0.3) < 0.02 && std::fabs(f[2] - 0.2) < 0.02);
        p.top_k = 2;
        f = freqs(p);
        CHECK(f[2] == 0.0 && std::fabs(f[0] - 0.625) < 0.02);
        p.top_k = 0;
        p.top_p = 0.7f; // 0.5 < 0.7 <= 0.8: keeps tokens 0 and 1
        f = freqs(p);
        CHECK(f[2] == 0.0 && std::fabs(f[0] - 0.625) < 0.02);
        p.top_p = 0.5f; // 0.5 >= 0.5: token 0 alone
        f = freqs(p);
        CHECK(f[1] == 0.0 && f[2] == 0.0);
        p.top_p = 1.0f;
        p.temperature = 0.5f; // sharper: p ∝ p^2 -> 25/38, 9/38, 4/38
        f = freqs(p);
        CHECK(std::fabs(f[0] - 25.0 / 38) < 0.02 && std::fabs(f[2] - 4.0 / 38) < 0.02);
    }
    // Sampled tokens always lie in the nucleus computed the slow way (full sort), with and without top-k.
    {
        const std::vector<float> l = random_logits(2000, 77);
        for (int k : {0, 300}) {
            for (float top_p : {0.3f, 0.8f, 0.99f}) {
                const float temp = 0.7f;
                std::vector<std::pair<float, int32_t>> sorted;
                for (int32_t i = 0; i < (int32_t) l.size(); i++) sorted.push_back({l[i], i});
                std::sort(sorted.begin(), sorted.end(), [](const auto & a, const auto & b) {
                    return a.first > b.first || (a.first == b.first && a.second < b.second);
                });
                if (k > 0) sorted.resize(k);
                double total = 0.0;
                for (const auto & c : sorted) total += std::exp((c.first - sorted[0].first) / temp);
                std::vector<bool> in_nucleus(l.size(), false);
                double cum = 0.0;
                size_t size = 0;
                for (const auto & c : sorted) {
                    in_nucleus[c.second] = true;
                    size++;
                    cum += std::exp((c.first - sorted[0].first) / temp) / total;
                    if (cum >= top_p) break;
                }
                SamplingParams p;
                p.temperature = temp;
                p.top_k = k;
                p.top_p = top_p;
                p.seed = 99;
                Sampler s(p);
                std::vector<bool> seen(l.size(), false);
                size_t n_seen = 0;
                bool all_inside = true;
                for (int i = 0; i < 5000; i++) {
                    const int32_t t = sample_copy(s, l);
                    all_inside &= in_nucleus[t];
                    if (!seen[t]) n_seen++;
                    seen[t] = true;
                }
                CHECK_MSG(all_inside, "k=" + std::to_string(k) + " top_p=" + std::to_string(top_p));
                CHECK(n_seen > size / 3); // and it does spread over the nucleus
            }
        }
    }
    // Logprobs: log-softmax of the raw logits, independent of temperature; all of them sum to 1.
    {
        const std::vector<float> small = random_logits(50, 3);
        SamplingParams p;
        p.temperature = 0.3f;
        p.n_logprobs = 50;
        p.seed = 11;
        Sampler s(p);
        TokenLogprob lp;
        const int32_t tok = sample_copy(s, small, &lp);
        CHECK(lp.token == tok);
        CHECK(lp.top.size() == 50);
        double sum = 0.0;
        for (const auto & e : lp.top) sum += std::exp((double) e.second);
        CHECK(std::fabs(sum - 1.0) < 1e-5);
        for (size_t i = 1; i < lp.top.size(); i++) CHECK(lp.top[i - 1].second >= lp.top[i].second);
        CHECK(lp.top[0].first == argmax(small));
        double lse = 0.0;
        for (float x : small) lse += std::exp((double) x);
        lse = std::log(lse);
        CHECK(std::fabs(lp.logprob - (small[tok] - lse)) < 1e-5);

        SamplingParams q;
        q.temperature = 0.0f;
        q.n_logprobs = 0;
        Sampler g(q);
        TokenLogprob lp0;
        CHECK(sample_copy(g, logits, &lp0) == am);
        CHECK(lp0.top.empty() && lp0.logprob <= 0.0f && lp0.token == am);
        q.n_logprobs = 5;
        Sampler g5(q);
        TokenLogprob lp5;
        sample_copy(g5, logits, &lp5);
        CHECK(lp5.top.size() == 5 && lp5.top[0].first == am && std::fabs(lp5.top[0].second - lp5.logprob) < 1e-6);
        q.n_logprobs = -1;
        Sampler none(q);
        TokenLogprob untouched;
        sample_copy(none, logits, &untouched);
        CHECK(untouched.token == -1);
    }
    // NaN and -inf logits.
    {
        std::vector<float> v = {NAN, 1.0f, -INFINITY, 2.0f, NAN};
        SamplingParams p;
        p.temperature = 0.0f;
        Sampler g(p);
        CHECK(sample_copy(g, v) == 3);
        p.temperature = 1.0f;
        p.seed = 3;
        Sampler s(p);
        for (int i = 0; i < 100; i++) {
            const int32_t t = sample_copy(s, v);
            CHECK(t == 1 || t == 3);
        }
        std::vector<float> masked(10, -INFINITY);
        CHECK(sample_copy(s, masked) == 0);
    }
    // Speed on a 32000-token vocabulary.
    {
        struct Case {
            const char * name;
            float t;
            int k;
            float p;
            int lp;
        };
        const Case cases[] = {
            {"greedy", 0.0f, 0, 1.0f, -1},
            {"temp 0.8", 0.8f, 0, 1.0f, -1},
            {"top_k 40", 0.8f, 40, 1.0f, -1},
            {"top_p 0.95", 0.8f, 0, 0.95f, -1},
            {"top_k 40 + top_p 0.95", 0.8f, 40, 0.95f, -1},
            {"temp 0.8 + 5 logprobs", 0.8f, 0, 1.0f, 5},
        };
        std::vector<std::vector<float>> inputs;
        for (int i = 0; i < 8; i++) inputs.push_back(random_logits(N, 500 + i));
        std::vector<float> scratch(N);
        for (const Case & c : cases) {
            SamplingParams p;
            p.temperature = c.t;
            p.top_k = c.k;
            p.top_p = c.p;
            p.n_logprobs = c.lp;
            Sampler s(p);
            TokenLogprob lp;
            const int iters = 400;
            double total = 0.0;
            for (int i = 0; i < iters; i++) {
                scratch = inputs[i % inputs.size()];
                const double t0 = now_ms();
                s.sample(scratch.data(), N, &lp);
                total += now_ms() - t0;
            }
            std::printf("  sample %-24s %.3f ms\n", c.name, total / iters);
            if (timing_checks()) CHECK(total / iters < 1.0); // target < 0.3 ms at -O3; loose for busy machines
        }
    }
}

// The stages of Sampler::sample(), one by one, and sample() as their composition.
static void test_sampler_stages() {
    using Cand = std::vector<std::pair<float, int32_t>>;
    // sanitize_and_argmax: NaN becomes -inf; the first maximum wins.
    {
        std::vector<float> v = {1.0f, NAN, 3.0f, 3.0f, -INFINITY};
        sampling::Argmax a = sampling::sanitize_and_argmax(v.data(), (int32_t) v.size());
        CHECK(a.max_logit == 3.0f && a.best == 2 && v[1] == -INFINITY);
        std::vector<float> all(4, -INFINITY);
        a = sampling::sanitize_and_argmax(all.data(), 4);
        CHECK(a.best == 0 && a.max_logit == -INFINITY);
    }
    // top_k: the k largest, best first, equal logits by lower id.
    {
        const std::vector<float> v = {0.5f, 2.0f, -1.0f, 2.0f, 7.0f, 0.5f};
        Cand c;
        sampling::top_k(v.data(), (int32_t) v.size(), 4, c);
        CHECK(c.size() == 4 && c[0].second == 4 && c[1].second == 1 && c[2].second == 3 && c[3].second == 0);
        const std::vector<float> big = random_logits(5000, 21);
        sampling::top_k(big.data(), (int32_t) big.size(), 50, c);
        Cand full;
        for (int32_t i = 0; i < (int32_t) big.size(); i++) full.push_back({big[i], i});
        std::sort(full.begin(), full.end(), [](const auto & a, const auto & b) {
            return a.first > b.first || (a.first == b.first && a.second < b.second);
        });
        full.resize(50);
        CHECK(c == full);
    }
    // temper + nucleus_prefix: weights relative to the max; the shortest prefix holding top_p.
    {
        Cand c = {{std::log(0.5f), 0}, {std::log(0.3f), 1}, {std::log(0.2f), 2}};
        const double total = sampling::temper(c, std::log(0.5f), 1.0f);
        CHECK(std::fabs(c[0].first - 1.0f) < 1e-6f && std::fabs(c[1].first - 0.6f) < 1e-6f &&
              std::fabs(total - 2.0) < 1e-6);
        double t = total;
        CHECK(sampling::nucleus_prefix(c, 0.7, &t) == 2 && std::fabs(t - 1.6) < 1e-6);
        t = total;
        CHECK(sampling::nucleus_prefix(c, 0.5, &t) == 1 && std::fabs(t - 1.0) < 1e-6);
        t = total;
        CHECK(sampling::nucleus_prefix(c, 1.0, &t) == 3 && std::fabs(t - total) < 1e-9);
    }
    // draw / draw_linear: u splits the cumulative weights.
    {
        const Cand c = {{2.0f, 7}, {1.0f, 3}, {1.0f, 9}};
        CHECK(sampling::draw(c, 3, 4.0, 0.0) == 7 && sampling::draw(c, 3, 4.0, 0.49) == 7);
        CHECK(sampling::draw(c, 3, 4.0, 0.5) == 3 && sampling::draw(c, 3, 4.0, 0.99) == 9);
        CHECK(sampling::draw(c, 1, 2.0, 0.99) == 7);
        const std::vector<float> w = {0.0f, 1.0f, 3.0f};
        CHECK(sampling::draw_linear(w.data(), 3, 4.0, 0.0, -1) == 1 &&
              sampling::draw_linear(w.data(), 3, 4.0, 0.3, -1) == 2);
        CHECK(sampling::draw_linear(w.data(), 3, 4.0, 1.0, -1) == -1);
    }
    // nucleus_buckets keeps the same set, with the same mass, as a full sort.
    {
        const std::vector<float> l = random_logits(3000, 5);
        const float inv_t = 1.0f / 0.8f;
        std::vector<float> lc = l;
        const sampling::Argmax am = sampling::sanitize_and_argmax(lc.data(), (int32_t) lc.size());
        std::vector<float> w(l.size());
        const double sum = sampling::weights(l.data(), (int32_t) l.size(), am.max_logit, inv_t, w.data());
        for (double top_p : {0.2, 0.9, 0.999}) {
            Cand sorted;
            for (int32_t i = 0; i < (int32_t) l.size(); i++) sorted.push_back({w[i], i});
            std::sort(sorted.begin(), sorted.end(), [](const auto & a, const auto & b) {
                return a.first > b.first || (a.first == b.first && a.second < b.second);
            });
            double t_full = sum;
            const size_t n_full = sampling::nucleus_prefix(sorted, top_p, &t_full);
            sampling::NucleusScratch scratch;
            Cand out;
            double t = sum;
            const size_t n = sampling::nucleus_buckets(l.data(), w.data(), (int32_t) l.size(), am.max_logit, inv_t,
                                                       top_p, &t, scratch, out);
            std::vector<int32_t> a, b;
            for (size_t i = 0; i < n; i++) a.push_back(out[i].second);
            for (size_t i = 0; i < n_full; i++) b.push_back(sorted[i].second);
            std::sort(a.begin(), a.end());
            std::sort(b.begin(), b.end());
            CHECK_MSG(a == b, "top_p " + std::to_string(top_p));
            CHECK(std::fabs(t - t_full) < 1e-9 * sum);
        }
    }
    // logprobs: log-softmax at temperature 1, best alternatives first.
    {
        const std::vector<float> v = {0.0f, std::log(3.0f), -INFINITY};
        TokenLogprob lp;
        std::vector<float> scratch;
        sampling::logprobs(v.data(), 3, std::log(3.0f), 0, 5, scratch, &lp);
        CHECK(lp.token == 0 && std::fabs(lp.logprob - std::log(0.25f)) < 1e-6f);
        CHECK(lp.top.size() == 3 && lp.top[0].first == 1 && lp.top[1].first == 0 && lp.top[2].second == -INFINITY);
    }
    // sample() is the composition: one uniform draw per tempered token from the seed's stream, none when greedy.
    {
        const std::vector<float> l = random_logits(4000, 8);
        for (int k : {0, 40}) {
            for (float top_p : {1.0f, 0.9f}) {
                SamplingParams p;
                p.temperature = 0.9f;
                p.top_k = k;
                p.top_p = top_p;
                p.seed = 77;
                Sampler s(p);
                std::mt19937_64 rng(p.seed);
                for (int i = 0; i < 20; i++) {
                    std::vector<float> a = l, b = l;
                    a[i] += 4.0f; // vary the distribution a little from step to step
                    b[i] += 4.0f;
                    const int32_t got = s.sample(a.data(), (int32_t) a.size(), nullptr);
                    const sampling::Argmax am = sampling::sanitize_and_argmax(b.data(), (int32_t) b.size());
                    const float inv_t = 1.0f / p.temperature;
                    const double tp = (double) top_p * (1.0 - 1e-6);
                    const double u = sampling::uniform01(rng);
                    int32_t want;
                    Cand c;
                    if (k > 0) {
                        sampling::top_k(b.data(), (int32_t) b.size(), k, c);
                        double total = sampling::temper(c, am.max_logit, inv_t);
                        const size_t n = top_p < 1.0f ? sampling::nucleus_prefix(c, tp, &total) : c.size();
                        want = sampling::draw(c, n, total, u);
                    } else {
                        std::vector<float> w(b.size());
                        double total = sampling::weights(b.data(), (int32_t) b.size(), am.max_logit, inv_t, w.data());
                        if (top_p < 1.0f) {
                            sampling::NucleusScratch scratch;
                            const size_t n = sampling::nucleus_buckets(b.data(), w.data(), (int32_t) b.size(),
                                                                       am.max_logit, inv_t, tp, &total, scratch, c);
                            want = sampling::draw(c, n, total, u);
                        } else {
                            want = sampling::draw_linear(w.data(), (int32_t) w.size(), total, u, am.best);
                        }
                    }
                    CHECK_MSG(got == want, "k " + std::to_string(k) + " top_p " + std::to_string(top_p) + " step " +
                                               std::to_string(i));
                }
            }
        }
        SamplingParams g;
        g.temperature = 0.0f;
        g.seed = 5;
        Sampler greedy(g);
        std::vector<float> a = l;
        CHECK(greedy.sample(a.data(), (int32_t) a.size(), nullptr) == argmax(l));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// StopMatcher

static void test_stop_matcher() {
    bool stopped = false;
    {
        StopMatcher m({"llo"});
        CHECK(m.push("He", &stopped) == "He" && !stopped);
        CHECK(m.push("llo", &stopped).empty() && stopped);
        CHECK(m.push("more", &stopped).empty() && stopped); // nothing after a stop
        CHECK(m.flush().empty());
    }
    {
        StopMatcher m({"llo"});
        CHECK(m.push("Hel", &stopped) == "He" && !stopped); // "l" may start "llo"
        CHECK(m.push("l", &stopped).empty() && !stopped);   // "ll" still may
        CHECK(m.push("o world", &stopped).empty() && stopped);
    }
    {
        StopMatcher m({"</end>"});
        CHECK(m.push("a</e", &stopped) == "a" && !stopped);
        CHECK(m.push("nd", &stopped).empty() && !stopped);
        CHECK(m.push("x", &stopped) == "</endx" && !stopped); // the partial match is released once it fails
        CHECK(m.push("</end", &stopped).empty() && !stopped);
        CHECK(m.flush() == "</end"); // end of generation: held text goes out
    }
    {
        StopMatcher m({"abc", "b"});
        CHECK(m.push("xabc", &stopped) == "x" && stopped); // earliest occurrence wins ("abc" at 1, not "b" at 2)
    }
    {
        StopMatcher m({"abc", "b"});
        CHECK(m.push("xa", &stopped) == "x" && !stopped);
        CHECK(m.push("bd", &stopped) == "a" && stopped); // held "a" was not "abc" after all; "b" stops
    }
    {
        StopMatcher m({"STOP"});
        CHECK(m.push("hello STOP world", &stopped) == "hello " && stopped);
    }
    {
        StopMatcher m({"", "###"});
        CHECK(m.push("hi ##", &stopped) == "hi " && !stopped); // the empty stop is ignored
        CHECK(m.flush() == "##");
        CHECK(m.push("x", &stopped) == "x" && !stopped);
    }
    {
        StopMatcher m({});
        CHECK(m.push("anything", &stopped) == "anything" && !stopped);
        CHECK(m.flush().empty());
    }
    {
        // Streamed one byte at a time, output + stop equals the text up to the stop.
        const std::string text = "The end is near.\n\nUser: hi";
        StopMatcher m({"\n\nUser:", "zzz"});
        std::string out;
        for (char c : text) {
            out += m.push(std::string(1, c), &stopped);
            if (stopped) break;
        }
        CHECK(stopped && out == "The end is near.");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-tokenizers (split patterns) on small texts, worked out by hand from the patterns' semantics

static std::vector<std::string> pieces(const char * pre, const std::string & text) {
    const PreTokenizer * p = find_pre_tokenizer(pre);
    CHECK_MSG(p != nullptr, pre);
    if (!p) return {};
    SplitScratch scratch;
    std::vector<uint32_t> ranges;
    pre_tokenize(*p, text.data(), text.size(), scratch, ranges);
    std::vector<std::string> out;
    for (size_t i = 0; i < ranges.size(); i += 2) out.push_back(text.substr(ranges[i], ranges[i + 1] - ranges[i]));
    return out;
}

static void test_pre_tokenizers() {
    using S = std::vector<std::string>;
    CHECK(pieces("gpt-2", "Hello world's  x") == (S{"Hello", " world", "'s", " ", " x"}));
    // Llama 3: contractions in any case, a lone space before digits, digits in threes, punctuation with its newlines.
    CHECK(pieces("llama-bpe", "I'M 12345 ok!!\n\n") == (S{"I", "'M", " ", "123", "45", " ok", "!!\n\n"}));
    CHECK(pieces("llama3", "I'M 12345 ok!!\n\n") == pieces("llama-bpe", "I'M 12345 ok!!\n\n")); // alias
    CHECK(pieces("qwen2", "I'M 12345") == (S{"I", "'M", " ", "1", "2", "3", "4", "5"}));
    CHECK(pieces("deepseek-v3", "abc123def") == (S{"abc", "123", "def"}));
    // o200k: words split where lower case turns upper, contractions attached.
    CHECK(pieces("gpt-4o", "HelloWorld isn't") == (S{"Hello", "World", " isn't"}));
    // DeepSeek LLM: newlines alone, letters with one leading space, the trailing whitespace run of a piece.
    CHECK(pieces("deepseek-llm", "Hi  \n") == (S{"Hi", "  ", "\n"}));
    // Every piece non-empty and in order, for text with invalid UTF-8.
    const std::string bad = "a\xFF\xC3 b\xE2\x82";
    for (const std::string & name : pre_tokenizer_names()) {
        std::string joined;
        for (const std::string & p : pieces(name.c_str(), bad)) {
            CHECK_MSG(!p.empty(), name);
            joined += p;
        }
        CHECK_MSG(joined == bad, name);
    }
    // NFC (the Qwen2 family normalizes before splitting): composition, Hangul, singletons, canonical order, an
    // excluded composite, and a malformed byte kept as it is.
    auto nfc = [](const std::string & in) {
        std::string out;
        unicode::nfc(in.data(), in.size(), out);
        return out;
    };
    CHECK(nfc("e\xCC\x81") == "\xC3\xA9");                                // e + U+0301 -> U+00E9
    CHECK(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") == "\xEA\xB0\x81"); // jamo -> U+AC01
    CHECK(nfc("\xE2\x84\xAB") == "\xC3\x85");                             // U+212B ANGSTROM SIGN -> U+00C5
    CHECK(nfc("a\xCC\x82\xCC\xA3") == "\xE1\xBA\xAD");                    // a + U+0302 + U+0323 -> U+1EAD
    CHECK(nfc("\xE0\xA5\x98") == "\xE0\xA4\x95\xE0\xA4\xBC");             // U+0958 is excluded: stays decomposed
    CHECK(nfc("e\xFF\xCC\x81") == "e\xFF\xCC\x81");                       // a malformed byte blocks composition
    CHECK(!unicode::needs_nfc("plain ASCII, caf\xC3\xA9", 17));
    CHECK(unicode::needs_nfc("e\xCC\x81", 3));
    // Unnormalized, the split cuts the mark off its letter (\p{L}+ stops at \p{M}): why Qwen2 normalizes first.
    CHECK(pieces("qwen2", "e\xCC\x81") == (S{"e", "\xCC\x81"}));
    CHECK(find_pre_tokenizer("no-such") == nullptr);
    CHECK(known_pre_tokenizers().find("tekken") != std::string::npos);

    // The pattern compiler refuses what it does not support.
    for (const char * badpat : {"(", "[a-", "\\q", "a{2,1}", "a**", "\\p{Xx}", "(?<x>a)"}) {
        bool threw = false;
        try {
            SplitPattern p(badpat);
        } catch (const std::invalid_argument &) {
            threw = true;
        }
        CHECK_MSG(threw, badpat);
    }

    // An unknown pre value is refused by from_vocab too.
    std::vector<std::string> tokens = {"a", "b", "ab"};
    TokenizerOptions opt;
    opt.pre = "no-such";
    CHECK(thrown_code([&] {
              Tokenizer::from_vocab(TokenizerKind::GPT2, tokens, {}, {}, {"a b"}, -1, -1, false, false, -1, opt);
          }) == (int) ErrorCode::UNSUPPORTED_ARCHITECTURE);
}

// The logit-processing stages (bias, penalties, min_p) one by one against their definitions, and through Sampler:
// the raw logprobs survive processing, and penalties follow the tokens the sampler itself chose.
static void test_sampler_processing() {
    const float NEG_INF = -std::numeric_limits<float>::infinity();
    {
        std::vector<float> l = {1.0f, -2.0f, 3.0f, 0.5f};
        sampling::apply_logit_bias(l.data(), 4, {{1, 10.0f}, {3, -1.5f}, {7, 5.0f}}); // id 7: outside, ignored
        CHECK(l[0] == 1.0f && l[1] == 8.0f && l[2] == 3.0f && l[3] == -1.0f);
    }
    {
        std::vector<float> l = {2.0f, -2.0f, 3.0f, 0.5f};
        std::unordered_set<int32_t> seen = {0, 1};
        std::unordered_map<int32_t, int32_t> counts = {{2, 3}, {1, 1}};
        sampling::apply_penalties(l.data(), 4, seen, 2.0f, counts, 0.5f, 0.25f);
        // 0: 2 / 2; 1: -2 * 2 then - (1 * 0.5 + 0.25); 2: 3 - (3 * 0.5 + 0.25); 3 untouched.
        CHECK(l[0] == 1.0f);
        CHECK(l[1] == -4.75f);
        CHECK(l[2] == 1.25f);
        CHECK(l[3] == 0.5f);
    }
    {
        // min_p 0.5 at temperature 1: keep l >= max + ln 0.5; at temperature 2 the cut is twice as far.
        std::vector<float> l = {0.0f, -0.5f, -0.7f, -2.0f};
        std::vector<float> a = l, b = l;
        CHECK(sampling::apply_min_p(a.data(), 4, 0.0f, 1.0f, 0.5f) == 2);
        CHECK(a[0] == 0.0f && a[1] == -0.5f && a[2] == NEG_INF && a[3] == NEG_INF);
        CHECK(sampling::apply_min_p(b.data(), 4, 0.0f, 0.5f, 0.5f) == 3);
        CHECK(b[2] == -0.7f && b[3] == NEG_INF);
    }
    // Through the sampler: a +100 bias forces a token at any temperature; logprobs stay the raw ones.
    {
        const std::vector<float> logits = random_logits(1000, 5);
        SamplingParams p;
        p.temperature = 0.8f;
        p.logit_bias = {{17, 100.0f}};
        p.n_logprobs = 2;
        Sampler s(p);
        TokenLogprob lp, raw;
        CHECK(sample_copy(s, logits, &lp) == 17);
        SamplingParams q;
        q.temperature = 0.0f;
        q.n_logprobs = 2;
        Sampler plain(q);
        sample_copy(plain, logits, &raw);
        std::vector<float> scratch;
        TokenLogprob want;
        std::vector<float> l = logits;
        const auto am = sampling::sanitize_and_argmax(l.data(), (int32_t) l.size());
        sampling::logprobs(l.data(), (int32_t) l.size(), am.max_logit, 17, 2, scratch, &want);
        CHECK(lp.logprob == want.logprob);
        CHECK(lp.top.size() == 2 && lp.top[0].first == raw.top[0].first && lp.top[0].second == raw.top[0].second);
    }
    // Greedy with a strong presence penalty never repeats a token while others remain near the top.
    {
        const std::vector<float> logits = random_logits(64, 6);
        SamplingParams p;
        p.temperature = 0.0f;
        p.presence_penalty = 100.0f;
        Sampler s(p);
        std::set<int32_t> got;
        for (int i = 0; i < 20; i++) got.insert(sample_copy(s, logits)); // sample() records its choice
        // A trial draw left unrecorded (the grammar stage's) leaves the counts alone; record() counts it.
        SamplingParams g;
        g.temperature = 0.0f;
        g.presence_penalty = 100.0f;
        Sampler spec(g);
        std::vector<float> scratch = logits;
        const int32_t first = spec.sample(scratch.data(), (int32_t) scratch.size(), nullptr, false);
        scratch = logits;
        CHECK(spec.sample(scratch.data(), (int32_t) scratch.size(), nullptr, false) == first);
        spec.record(first);
        scratch = logits;
        CHECK(spec.sample(scratch.data(), (int32_t) scratch.size(), nullptr, false) != first);
        CHECK(got.size() == 20);
        // The repetition penalty counts the prompt: a prompt holding the argmax moves greedy off it.
        SamplingParams r;
        r.temperature = 0.0f;
        r.repetition_penalty = 1e6f;
        const int32_t top = argmax(logits);
        Sampler with_prompt(r, {top});
        CHECK(sample_copy(with_prompt, logits) != top);
    }
}

int main(int argc, char ** argv) {
    try {
        if (argc > 1) {
            std::printf("llama tokenizer (%s)\n", argv[1]);
            test_llama(argv[1]);
        } else {
            std::printf("llama tokenizer: skipped (pass a stories260K GGUF path to run it)\n");
        }
        std::printf("llama tokenizer (in-memory vocabulary)\n");
        test_llama_small_vocab();
        std::printf("gpt2 tokenizer (in-memory vocabulary)\n");
        test_gpt2();
        std::printf("pre-tokenizers\n");
        test_pre_tokenizers();
        std::printf("gguf tokenizer metadata errors\n");
        test_from_gguf_errors();
        std::printf("sampler\n");
        test_sampler();
        std::printf("sampler stages\n");
        test_sampler_stages();
        std::printf("sampler logit processing\n");
        test_sampler_processing();
        std::printf("stop matcher\n");
        test_stop_matcher();
    } catch (const EngineException & e) {
        std::fprintf(stderr, "unexpected EngineException %s: %s\n", error_code_name(e.code()), e.what());
        return 1;
    }
    std::printf("%d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
