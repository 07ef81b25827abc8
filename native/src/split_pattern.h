// A small backtracking pattern matcher over code points, for the pre-tokenizer split patterns (pretokenizer.h).
//
// Syntax (a subset of Oniguruma's, enough for the tokenizer.json patterns of the supported families):
//   literals (UTF-8), \r \n \t, \x{HHHH}, \ followed by punctuation (that character), \s \S (White_Space),
//   \p{L} \p{Lu} ... \p{N} \p{P} \p{S} \p{M} \p{Z} \p{C} and one-letter/two-letter categories, [...] and [^...]
//   classes with ranges, groups (...) (?:...), lookahead (?=...) (?!...), quantifiers ? * + {n} {n,} {n,m}
//   (greedy), alternation |, and $ (end of the piece being split). Case-insensitive groups are written out
//   ('[sS]) by the callers.
// Matching is leftmost, alternatives in order (Perl/Oniguruma semantics). A quantified single class repeats
// without a backtracking entry per character, so a long run costs one entry. Syntax errors throw
// std::invalid_argument (patterns are compiled from constants at start-up).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pretokenizer.h"

namespace tl {

class SplitPattern {
public:
    explicit SplitPattern(const std::string & pattern);

    // The first non-empty match in cps[from, end) (lookahead and $ see `end` as the end of the text): true and
    // [*mb, *me), or false. `prune` false runs every branch (the same answer, slower: the fuzz target compares).
    bool find(const uint32_t * cps, const uint8_t * cats, uint32_t from, uint32_t end, uint32_t * mb, uint32_t * me,
              std::vector<SplitScratch::Frame> & stack, bool prune = true) const;

private:
    struct CharClass {
        uint64_t ascii[2] = {0, 0}; // members below U+0080 (after negation)
        uint32_t cat_mask = 0;      // general categories (above U+007F)
        bool whitespace = false;    // \s (above U+007F)
        bool negated = false;
        std::vector<std::pair<uint32_t, uint32_t>> ranges; // code point ranges (above U+007F)
        bool matches(uint32_t cp, uint8_t cat) const;
    };
    enum Op : uint8_t { CLASS, REPEAT, SPLIT, JMP, LOOK, NLOOK, END, MATCH };
    struct Inst {
        Inst(Op o, uint32_t a_ = 0) : op(o), a(a_) {}
        Op op;
        uint32_t a = 0; // CLASS/REPEAT: class; SPLIT: first choice; JMP: target; LOOK/NLOOK: continuation
        uint32_t b = 0; // SPLIT: second choice
        uint32_t min = 0, max = 0;
    };
    // The ASCII characters a match starting at an instruction can begin with (conservative: any character that
    // might start it is in the set; non-ASCII characters are always tried). A split skips a branch, and find()
    // a start position, whose next character cannot begin it, without running it.
    struct First {
        uint64_t ascii[2];
        bool may_start(uint32_t cp) const { return cp >= 128 || ((ascii[cp >> 6] >> (cp & 63)) & 1); }
    };
    struct Node;
    std::vector<CharClass> classes_;
    std::vector<Inst> code_;
    std::vector<First> first_; // per instruction
    void compute_first();
    First first_of(uint32_t pc, std::vector<uint8_t> & visiting) const;

    int64_t run(uint32_t pc, uint32_t pos, const uint32_t * cps, const uint8_t * cats, uint32_t end,
                std::vector<SplitScratch::Frame> & stack, bool prune) const;
    void emit(const Node & n);
    friend class PatternParser;
};

} // namespace tl
