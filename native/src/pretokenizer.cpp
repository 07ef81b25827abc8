// The pre-tokenizer table: each family's split stages, written from the pre_tokenizer sections of the families'
// tokenizer.json files (and checked against llama.cpp's golden vectors in tests/engine/tokenizer-vectors.test.ts).
// Case-insensitive contraction groups (?i:'s|...) are written out as '[sS]|...; everything else is as declared.
#include "pretokenizer.h"

#include <stdexcept>

#include "split_pattern.h"
#include "unicode.h"

namespace tl {

namespace {

// GPT-2's pattern. llama.cpp drops the final |\s+ in some families; the result is the same (a lone whitespace
// character before a non-space is then left between matches, and becomes a piece of its own either way).
const char * const GPT2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k): contractions in any case, one optional non-letter before a word, digits in threes,
// punctuation runs with the newlines after them, newline runs with the whitespace before them.
const char * const LLAMA3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: the Llama 3 pattern with single digits.
const char * const QWEN2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// tiktoken o200k (GPT-4o, gpt-oss): words split at lower-to-upper case changes, contractions attached.
const char * const GPT4O =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Mistral Tekken: o200k's word rule without contractions, single digits.
const char * const TEKKEN =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM: cased letters (\p{LC} as of the tokenizer's Unicode version, spelled out), ASCII and full-width
// punctuation, CJK and Hangul blocks.
const char * const DEEPSEEK_LLM_LETTERS =
    R"(\s?[\x{41}-\x{5A}\x{61}-\x{7A}\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
const char * const DEEPSEEK_LLM_PUNCT =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
const char * const DEEPSEEK_CJK = R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
const char * const DEEPSEEK3_WORDS =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char * const TRAILING_WS = nullptr; // the stage \s+$ (done directly: see split_trailing_whitespace)

struct Family {
    std::vector<const char *> names; // canonical first
    std::vector<const char *> stages;
    bool ignore_merges;
    bool nfc = false;
};

const std::vector<Family> & families() {
    static const std::vector<Family> f = {
        {{"default"}, {R"([\p{P}\$\+<=>\^~\|]+)", GPT2, R"(\p{N}+)", R"([0-9][0-9][0-9])"}, false},
        {{"gpt-2", "mpt", "olmo", "phi-2", "jais"}, {GPT2}, false},
        {{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"}, {LLAMA3}, true},
        {{"qwen2", "deepseek-r1-qwen"}, {QWEN2}, false, true},
        {{"stablelm2", "megrez"}, {QWEN2}, false}, // Qwen2's split as llama.cpp runs it, without a normalizer
        {{"deepseek-llm"},
         {R"([\r\n])", DEEPSEEK_LLM_LETTERS, DEEPSEEK_LLM_PUNCT, TRAILING_WS, DEEPSEEK_CJK, R"(\p{N}+)"},
         false},
        {{"deepseek-coder"}, {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", DEEPSEEK_CJK, R"(\p{N})"}, false},
        {{"deepseek-v3"},
         {R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)", DEEPSEEK3_WORDS},
         false},
        {{"gpt-4o", "llama4"}, {GPT4O}, false},
        {{"tekken"}, {TEKKEN}, true},
        {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", GPT2, R"([0-9][0-9][0-9])"}, false},
        {{"starcoder", "refact", "smollm", "command-r", "codeshell"}, {R"(\p{N})", GPT2}, false},
    };
    return f;
}

struct Registry {
    std::vector<std::pair<std::string, PreTokenizer>> by_name;
    Registry() {
        for (const Family & fam : families()) {
            PreTokenizer p;
            p.name = fam.names[0];
            p.ignore_merges = fam.ignore_merges;
            p.nfc = fam.nfc;
            for (const char * st : fam.stages) {
                p.stages.push_back(st ? std::make_shared<const SplitPattern>(st) : nullptr);
            }
            for (const char * n : fam.names) by_name.emplace_back(n, p);
        }
    }
};

const Registry & registry() {
    static const Registry r;
    return r;
}

// \s+$ : the trailing whitespace run of a piece, if any, becomes a piece of its own. (A backtracking search for
// it would cost quadratic time on long whitespace runs inside the text.)
void split_trailing_whitespace(const uint32_t * cps, uint32_t b, uint32_t e, std::vector<uint32_t> & out) {
    uint32_t w = e;
    while (w > b && unicode::is_whitespace(cps[w - 1])) w--;
    if (w > b) out.insert(out.end(), {b, w});
    if (w < e) out.insert(out.end(), {w, e});
}

} // namespace

const PreTokenizer * find_pre_tokenizer(const std::string & pre) {
    for (const auto & [name, p] : registry().by_name) {
        if (name == pre) return &p;
    }
    return nullptr;
}

std::string known_pre_tokenizers() {
    std::string out;
    for (const auto & [name, p] : registry().by_name) out += (out.empty() ? "" : ", ") + name;
    return out;
}

std::vector<std::string> pre_tokenizer_names() {
    std::vector<std::string> out;
    for (const auto & [name, p] : registry().by_name) out.push_back(name);
    return out;
}

void pre_tokenize(const PreTokenizer & pre, const char * text, size_t n, SplitScratch & s,
                  std::vector<uint32_t> & out) {
    s.cps.clear();
    s.cats.clear();
    s.offs.clear();
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const size_t len = unicode::decode_utf8(text, n, i, &cp);
        s.cps.push_back(cp);
        s.cats.push_back((uint8_t) unicode::category(cp));
        s.offs.push_back((uint32_t) i);
        i += len;
    }
    s.offs.push_back((uint32_t) n);
    const uint32_t ncp = (uint32_t) s.cps.size();

    s.cur.assign({0, ncp});
    for (const auto & stage : pre.stages) {
        s.next.clear();
        for (size_t k = 0; k < s.cur.size(); k += 2) {
            const uint32_t b = s.cur[k], e = s.cur[k + 1];
            if (!stage) {
                split_trailing_whitespace(s.cps.data(), b, e, s.next);
                continue;
            }
            uint32_t pos = b, mb, me;
            while (pos < e) {
                if (!stage->find(s.cps.data(), s.cats.data(), pos, e, &mb, &me, s.stack, s.prune)) {
                    s.next.insert(s.next.end(), {pos, e});
                    break;
                }
                if (mb > pos) s.next.insert(s.next.end(), {pos, mb});
                s.next.insert(s.next.end(), {mb, me});
                pos = me;
            }
        }
        s.cur.swap(s.next);
    }
    out.clear();
    for (size_t k = 0; k < s.cur.size(); k += 2) out.insert(out.end(), {s.offs[s.cur[k]], s.offs[s.cur[k + 1]]});
}

} // namespace tl
