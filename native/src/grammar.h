// GBNF grammars (llama.cpp's dialect) compiled into flat rule tables that grammar_matcher.h runs over code points.
//
// The dialect (docs/structured-output.md):
//   name ::= alternatives            a rule; `root` is the start rule; names are [A-Za-z0-9_-]+
//   a | b                            alternatives; a newline after `|` or `::=` continues the rule, and inside
//                                    ( ) newlines are free; elsewhere a newline ends the rule
//   "text"                           a literal, escapes \n \t \r \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH
//   [a-z_] [^"\\]                    character classes with ranges, negation and the same escapes
//   .                                any code point
//   ( ... )                          a group
//   x* x+ x? x{m} x{m,} x{m,n}       repetition of the preceding element (a literal repeats whole)
//   # ...                            a comment to the end of the line
// Refused with INVALID_ARGUMENT, the message naming line:column (bytes, 1-based) and the rule: syntax errors,
// undefined rules, no `root`, left recursion (a rule that can reach itself without consuming a character, which
// the matcher could not expand), and the limits below.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tl {

// Limits against hostile grammar text (each refused with a message naming it).
struct GrammarLimits {
    static constexpr size_t MAX_TEXT_BYTES = 1 << 20;  // grammar text
    static constexpr size_t MAX_RULES = 16384;         // rules, including those repetition and groups generate
    static constexpr size_t MAX_ELEMENTS = 1 << 19;    // rule elements after repetitions are expanded
    static constexpr int MAX_NESTING = 128;            // ( ) depth
    static constexpr uint32_t MAX_REPETITION = 100000; // m and n of {m,n}
};

enum class GElemType : uint8_t {
    END,   // end of a rule's last alternative
    ALT,   // end of an alternative (another follows)
    REF,   // value: rule index
    CLASS, // value: index into CompiledGrammar::classes
};

struct GElem {
    GElemType type;
    uint32_t value;
};

struct CharClass {
    bool negated = false;
    std::vector<std::pair<uint32_t, uint32_t>> ranges; // inclusive code point ranges
    uint64_t ascii[2] = {0, 0};                        // membership of code points < 128 (negation applied)

    bool matches(uint32_t cp) const {
        if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
        bool in = false;
        for (const auto & r : ranges)
            if (cp >= r.first && cp <= r.second) {
                in = true;
                break;
            }
        return in != negated;
    }
    // Whether some code point in [lo, hi] matches (for a partial UTF-8 character).
    bool matches_any(uint32_t lo, uint32_t hi) const;
};

struct CompiledGrammar {
    std::vector<GElem> elems;                     // every rule's alternatives, back to back
    std::vector<uint32_t> rule_start;             // per rule: index of its first element in elems
    std::vector<std::vector<uint32_t>> rule_alts; // per rule: start index of each alternative
    std::vector<std::string> rule_names;
    std::vector<CharClass> classes;
    uint32_t root = 0;
};

// Parses and checks `text`. Throws EngineException(INVALID_ARGUMENT) with "grammar: line L, column C: ...".
CompiledGrammar parse_grammar(const std::string & text);

// Decodes one UTF-8 code point at s[i] (advancing i); returns false on malformed input.
bool decode_utf8_at(const std::string & s, size_t & i, uint32_t & cp);

} // namespace tl
