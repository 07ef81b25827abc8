// The GBNF parser and matcher below the N-API layer: which byte strings a grammar accepts (complete), keeps alive
// (a prefix of a match) or refuses; escapes, classes, repetition bounds, UTF-8 (overlong forms refused), masks over a
// small vocabulary, and error messages with line:column. Prints "N checks, 0 failures" (tests/native/native-tests.test.ts).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "grammar.h"
#include "grammar_matcher.h"
#include "tokenizer.h"

using namespace tl;

static int checks = 0, failures = 0;
#define CHECK(cond, what)                                                                   \
    do {                                                                                    \
        ++checks;                                                                           \
        if (!(cond)) {                                                                      \
            ++failures;                                                                     \
            std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, std::string(what).c_str()); \
        }                                                                                   \
    } while (0)

static const Tokenizer & vocab() {
    static const Tokenizer tok = [] {
        std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
        std::vector<int32_t> types{2, 3, 3};
        char buf[8];
        for (int b = 0; b < 256; ++b) {
            std::snprintf(buf, sizeof buf, "<0x%02X>", b);
            tokens.push_back(buf);
            types.push_back(6);
        }
        for (const char * p : {"a", "b", "ab", "abc", "yes", "no", "\xC3\xA9", "{\"", "\"}"}) {
            tokens.push_back(p);
            types.push_back(1);
        }
        return Tokenizer::from_vocab(TokenizerKind::LLAMA, tokens, {}, types, {}, 1, 2, true, false, 0);
    }();
    return tok;
}

static std::shared_ptr<const TokenTrie> trie() {
    static auto t = std::make_shared<const TokenTrie>(vocab());
    return t;
}

enum class Verdict { REFUSED, PREFIX, ACCEPTED, COMPLETE };

static Verdict run(const std::string & grammar, const std::string & text) {
    auto g = std::make_shared<const CompiledGrammar>(parse_grammar(grammar));
    GrammarRuntime rt(g, trie(), nullptr);
    int32_t s = rt.initial();
    s = rt.step_bytes(s, text);
    if (s == GrammarRuntime::DEAD) return Verdict::REFUSED;
    if (rt.complete(s)) return Verdict::COMPLETE;
    return rt.accepting(s) ? Verdict::ACCEPTED : Verdict::PREFIX;
}

static bool matches(const std::string & g, const std::string & t) {
    const Verdict v = run(g, t);
    return v == Verdict::ACCEPTED || v == Verdict::COMPLETE;
}

static std::string error_of(const std::string & grammar) {
    try {
        parse_grammar(grammar);
    } catch (const EngineException & e) {
        return e.code() == ErrorCode::INVALID_ARGUMENT ? e.what() : "wrong code";
    }
    return "";
}

int main() {
    // Literals and escapes.
    CHECK(run(R"(root ::= "abc")", "abc") == Verdict::COMPLETE, "literal");
    CHECK(run(R"(root ::= "abc")", "ab") == Verdict::PREFIX, "literal prefix");
    CHECK(run(R"(root ::= "abc")", "abd") == Verdict::REFUSED, "literal mismatch");
    CHECK(matches(R"(root ::= "\x41\u00e9\U0001F600\t\n\r\\\"")", "A\xC3\xA9\xF0\x9F\x98\x80\t\n\r\\\""), "escapes");
    // Classes.
    CHECK(matches("root ::= [^a-c]", "d") && !matches("root ::= [^a-c]", "b"), "negated class");
    CHECK(matches(R"(root ::= [\]\-x]+)", "]-x]"), "escaped ] and - in a class");
    CHECK(matches("root ::= [a-cx-z0]{3}", "by0") && !matches("root ::= [a-cx-z0]{3}", "bw0"), "ranges");
    CHECK(matches("root ::= . . .", "a\xC3\xA9\xE4\xB8\xAD"), "any char, multi-byte");
    // Repetition.
    const char * rep = R"(root ::= "ab"{2,3})";
    CHECK(!matches(rep, "ab") && matches(rep, "abab") && matches(rep, "ababab") && !matches(rep, "abababab"), "{2,3}");
    CHECK(matches(R"(root ::= "x"{0} "y")", "y") && !matches(R"(root ::= "x"{0} "y")", "xy"), "{0}");
    CHECK(matches(R"(root ::= "a"{2,} "b")", "aaaab") && !matches(R"(root ::= "a"{2,} "b")", "ab"), "{2,}");
    CHECK(matches(R"(root ::= ("a" | "bc")* "!")", "abcbca!") && matches(R"(root ::= ("a" | "bc")* "!")", "!"), "*");
    CHECK(!matches(R"(root ::= "a"+)", "") && matches(R"(root ::= "a"+)", "aaa"), "+");
    CHECK(run(R"(root ::= "a"+)", "aaa") == Verdict::ACCEPTED, "+ accepts and may go on");
    CHECK(matches(R"(root ::= "a"? "b")", "b") && matches(R"(root ::= "a"? "b")", "ab"), "?");
    // Multi-line rules and comments.
    CHECK(matches("# head\nroot ::= a |\n  b # tail\na ::= \"x\"\nb ::= ( \"y\"\n \"z\" )\n", "yz"), "multi-line");
    // UTF-8: the exact encoding only.
    CHECK(matches(R"(root ::= "é")", "\xC3\xA9"), "2-byte");
    CHECK(run(R"(root ::= "é")", "\xC3") == Verdict::PREFIX, "a partial character is a live prefix");
    CHECK(run(R"(root ::= "é")", "\xE0\x83\xA9") == Verdict::REFUSED, "overlong form refused");
    CHECK(run(R"(root ::= [^a])", "\xED\xA0\x80") == Verdict::REFUSED, "surrogate refused");
    CHECK(run(R"(root ::= [a-z])", "\xC3") == Verdict::REFUSED, "a lead byte no class can finish");
    CHECK(run(R"(root ::= "x")", "\xFF") == Verdict::REFUSED, "invalid byte");
    // Masks over the vocabulary: end token only when accepting, control tokens never.
    {
        auto g = std::make_shared<const CompiledGrammar>(parse_grammar(R"(root ::= "ab" "c"?)"));
        GrammarRuntime rt(g, trie(), nullptr);
        int32_t s = rt.initial();
        bool cached = false;
        auto bit = [](const std::vector<uint64_t> & m, int32_t id) { return (m[id >> 6] >> (id & 63)) & 1; };
        std::vector<uint64_t> m = rt.mask(s, &cached);
        const int32_t a = 259, b = 260, ab = 261, abc = 262;
        CHECK(bit(m, a) && !bit(m, b) && bit(m, ab) && bit(m, abc) && !bit(m, 2) && !bit(m, 1), "start mask");
        CHECK(bit(m, 3 + 'a'), "byte token <0x61> allowed");
        s = rt.step_bytes(s, "ab");
        m = rt.mask(s, &cached);
        CHECK(bit(m, 2) && !bit(m, a) && bit(m, 3 + 'c'), "after ab: end token and c");
        rt.mask(s, &cached);
        CHECK(cached, "the second mask of a state comes from the cache");
        for (int32_t id = 0; id < trie()->n_vocab(); ++id)
            CHECK(bit(m, id) == rt.allowed(s, id), "mask agrees with allowed() for id " + std::to_string(id));
    }
    // Errors name line:column and the rule.
    CHECK(error_of("root ::= \"a\"\nfoo ::= [b").find("line 2, column 9 (rule 'foo'): unterminated character class") !=
              std::string::npos,
          error_of("root ::= \"a\"\nfoo ::= [b"));
    CHECK(error_of("root ::= x").find("undefined rule 'x'") != std::string::npos, "undefined");
    CHECK(error_of("x ::= \"a\"").find("no 'root' rule") != std::string::npos, "no root");
    CHECK(error_of("root ::= root \"a\"").find("left-recursive") != std::string::npos, "left recursion");
    CHECK(error_of("root ::= (\"a\"? )* \"b\"").find("left-recursive") != std::string::npos, "nullable loop");
    CHECK(error_of("root ::= \"\\z\"").find("unknown escape") != std::string::npos, "escape");
    CHECK(error_of("root ::= \"\xC3\"").find("malformed UTF-8") != std::string::npos, "bad UTF-8 in a literal");
    CHECK(error_of(std::string("root ::= ") + std::string(200, '(') + "\"a\"" + std::string(200, ')'))
                  .find("nested deeper than 128") != std::string::npos,
          "nesting limit");
    // Exponential ambiguity stays linear.
    {
        std::string g = "root ::= r0\n";
        for (int i = 0; i < 60; ++i)
            g += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + " | r" + std::to_string(i + 1) + "\n";
        g += "r60 ::= \"q\"\n";
        CHECK(run(g, "q") == Verdict::COMPLETE, "2^60 derivations");
    }
    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
