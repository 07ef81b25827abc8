// The GBNF parser (grammar.h): text → rules of elements, repetitions expanded into generated rules, then checked
// (undefined rules, root, left recursion) and flattened for the matcher.
#include "grammar.h"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include "errors.h"

namespace tl {

bool decode_utf8_at(const std::string & s, size_t & i, uint32_t & cp) {
    const unsigned char c = (unsigned char) s[i];
    int need;
    if (c < 0x80) {
        cp = c;
        need = 0;
    } else if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F;
        need = 1;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F;
        need = 2;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07;
        need = 3;
    } else return false;
    if (i + need >= s.size() && need > 0) return false;
    for (int k = 1; k <= need; ++k) {
        const unsigned char d = (unsigned char) s[i + k];
        if ((d & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (d & 0x3F);
    }
    i += need + 1;
    return cp <= 0x10FFFF;
}

bool CharClass::matches_any(uint32_t lo, uint32_t hi) const {
    if (!negated) {
        for (const auto & r : ranges)
            if (r.first <= hi && r.second >= lo) return true;
        return false;
    }
    // Ranges are merged (sorted, disjoint, non-adjacent): [lo, hi] is fully excluded only inside one of them.
    for (const auto & r : ranges)
        if (r.first <= lo && r.second >= hi) return false;
    return true;
}

namespace {

bool is_word_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

class Parser {
public:
    explicit Parser(const std::string & text) : s_(text) {}

    CompiledGrammar run() {
        if (s_.size() > GrammarLimits::MAX_TEXT_BYTES)
            fail(ErrorCode::INVALID_ARGUMENT, "grammar: the text is " + std::to_string(s_.size()) + " bytes; at most " +
                                                  std::to_string(GrammarLimits::MAX_TEXT_BYTES) + " are accepted");
        space(true);
        while (pos_ < s_.size()) parse_rule();
        for (size_t i = 0; i < rules_.size(); ++i)
            if (!defined_[i]) {
                cur_rule_.clear();
                error_at(first_ref_[i], "undefined rule '" + names_[i] + "'");
            }
        auto it = ids_.find("root");
        if (it == ids_.end())
            fail(ErrorCode::INVALID_ARGUMENT, "grammar: no 'root' rule (the start rule is named root)");
        check_left_recursion();
        return flatten(it->second);
    }

private:
    const std::string & s_;
    size_t pos_ = 0;
    std::vector<std::vector<GElem>> rules_;
    std::vector<std::string> names_;
    std::vector<bool> defined_;
    std::vector<size_t> first_ref_;
    std::unordered_map<std::string, uint32_t> ids_;
    std::vector<CharClass> classes_;
    std::string cur_rule_;
    size_t n_elems_ = 0;
    int depth_ = 0;

    int peek(size_t k = 0) const { return pos_ + k < s_.size() ? (unsigned char) s_[pos_ + k] : -1; }

    [[noreturn]] void error_at(size_t at, const std::string & msg) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < s_.size(); ++i) {
            if (s_[i] == '\n') {
                ++line;
                col = 1;
            } else ++col;
        }
        std::string where = "grammar: line " + std::to_string(line) + ", column " + std::to_string(col);
        if (!cur_rule_.empty()) where += " (rule '" + cur_rule_ + "')";
        fail(ErrorCode::INVALID_ARGUMENT, where + ": " + msg);
    }
    [[noreturn]] void error(const std::string & msg) const { error_at(pos_, msg); }

    std::string describe_here() const {
        const int c = peek();
        if (c < 0) return "the end of the text";
        if (c == '\n') return "a newline";
        if (c >= 0x20 && c < 0x7F) return std::string("'") + (char) c + "'";
        char buf[8];
        snprintf(buf, sizeof buf, "0x%02X", c);
        return std::string("byte ") + buf;
    }

    void space(bool newline_ok) {
        for (;;) {
            const int c = peek();
            if (c == ' ' || c == '\t' || (newline_ok && (c == '\r' || c == '\n'))) ++pos_;
            else if (c == '#') {
                while (peek() >= 0 && peek() != '\r' && peek() != '\n') ++pos_;
            } else return;
        }
    }

    uint32_t symbol(const std::string & name, size_t at) {
        auto it = ids_.find(name);
        if (it != ids_.end()) return it->second;
        if (rules_.size() >= GrammarLimits::MAX_RULES)
            error_at(at, "more than " + std::to_string(GrammarLimits::MAX_RULES) +
                             " rules (repetitions and groups count as rules)");
        const uint32_t id = (uint32_t) rules_.size();
        ids_.emplace(name, id);
        rules_.emplace_back();
        names_.push_back(name);
        defined_.push_back(false);
        first_ref_.push_back(at);
        return id;
    }
    uint32_t generated(const std::string & base) {
        std::string name;
        do name = base + "_" + std::to_string(rules_.size());
        while (ids_.count(name));
        const uint32_t id = symbol(name, pos_);
        defined_[id] = true;
        return id;
    }
    void count(size_t n) {
        n_elems_ += n;
        if (n_elems_ > GrammarLimits::MAX_ELEMENTS)
            error("the grammar expands to more than " + std::to_string(GrammarLimits::MAX_ELEMENTS) +
                  " elements (repetitions are expanded)");
    }
    void set_rule(uint32_t id, std::vector<GElem> elems) {
        count(elems.size());
        rules_[id] = std::move(elems);
    }

    std::string parse_name() {
        const size_t start = pos_;
        while (is_word_char(peek())) ++pos_;
        if (pos_ == start) error("expecting a rule name, got " + describe_here());
        return s_.substr(start, pos_ - start);
    }

    uint32_t parse_hex(int digits) {
        uint32_t v = 0;
        for (int i = 0; i < digits; ++i) {
            const int c = peek();
            int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else error("expecting " + std::to_string(digits) + " hex digits, got " + describe_here());
            v = v * 16 + (uint32_t) d;
            ++pos_;
        }
        return v;
    }

    // One character of a literal or class: an escape or a UTF-8 code point.
    uint32_t parse_char() {
        const size_t start = pos_;
        if (peek() == '\\') {
            ++pos_;
            const int c = peek();
            ++pos_;
            uint32_t v = 0;
            switch (c) {
                case 'x': v = parse_hex(2); break;
                case 'u': v = parse_hex(4); break;
                case 'U': v = parse_hex(8); break;
                case 't': return '\t';
                case 'r': return '\r';
                case 'n': return '\n';
                case '\\':
                case '"':
                case '[':
                case ']':
                case '-':
                case '^':
                case '/': return (uint32_t) c;
                default:
                    pos_ = start;
                    error("unknown escape '\\" + (c >= 0x20 && c < 0x7F ? std::string(1, (char) c) : "?") + "'");
            }
            if (v > 0x10FFFF) error_at(start, "code point beyond U+10FFFF");
            return v;
        }
        uint32_t cp;
        size_t i = pos_;
        if (!decode_utf8_at(s_, i, cp)) error("malformed UTF-8");
        pos_ = i;
        return cp;
    }

    uint32_t add_class(CharClass c) {
        // Sort and merge the ranges: matches_any relies on disjoint, non-adjacent ones.
        std::sort(c.ranges.begin(), c.ranges.end());
        std::vector<std::pair<uint32_t, uint32_t>> merged;
        for (const auto & r : c.ranges) {
            if (!merged.empty() && r.first <= merged.back().second + 1)
                merged.back().second = std::max(merged.back().second, r.second);
            else merged.push_back(r);
        }
        c.ranges = std::move(merged);
        for (uint32_t cp = 0; cp < 128; ++cp) {
            bool in = false;
            for (const auto & r : c.ranges) in = in || (cp >= r.first && cp <= r.second);
            if (in != c.negated) c.ascii[cp >> 6] |= 1ull << (cp & 63);
        }
        classes_.push_back(std::move(c));
        return (uint32_t) classes_.size() - 1;
    }
    GElem char_elem(uint32_t cp) {
        CharClass c;
        c.ranges.push_back({cp, cp});
        return {GElemType::CLASS, add_class(std::move(c))};
    }

    // Replaces out[last, end) — the preceding item — by min..max repetitions of it (max UINT32_MAX: unbounded).
    void repeat(std::vector<GElem> & out, size_t last, uint32_t min, uint32_t max) {
        std::vector<GElem> item(out.begin() + (long) last, out.end());
        out.resize(last);
        const bool unbounded = max == UINT32_MAX;
        if (!unbounded && max == 0) return;
        if (item.size() > 1 && (min > 1 || (!unbounded && max > 1) || (min > 0 && unbounded))) {
            // A multi-element item repeated: one rule holds it, copies are references.
            const uint32_t g = generated(cur_rule_);
            std::vector<GElem> body = item;
            body.push_back({GElemType::END, 0});
            set_rule(g, std::move(body));
            item = {{GElemType::REF, g}};
        }
        const size_t copies = (size_t) min + (unbounded ? 1 : (size_t) (max - min));
        if (copies * (item.size() + 3) > GrammarLimits::MAX_ELEMENTS)
            error("the repetition expands to more than " + std::to_string(GrammarLimits::MAX_ELEMENTS) + " elements");
        for (uint32_t i = 0; i < min; ++i) out.insert(out.end(), item.begin(), item.end());
        count((size_t) min * item.size());
        if (unbounded) {
            // r ::= item r |
            const uint32_t r = generated(cur_rule_);
            std::vector<GElem> body = item;
            body.push_back({GElemType::REF, r});
            body.push_back({GElemType::ALT, 0});
            body.push_back({GElemType::END, 0});
            set_rule(r, std::move(body));
            out.push_back({GElemType::REF, r});
            count(1);
            return;
        }
        // item{0,k}: r_1 ::= item r_2 | ... r_k ::= item |, built innermost first.
        int64_t next = -1;
        for (uint32_t i = 0; i < max - min; ++i) {
            const uint32_t r = generated(cur_rule_);
            std::vector<GElem> body = item;
            if (next >= 0) body.push_back({GElemType::REF, (uint32_t) next});
            body.push_back({GElemType::ALT, 0});
            body.push_back({GElemType::END, 0});
            set_rule(r, std::move(body));
            next = r;
        }
        if (next >= 0) {
            out.push_back({GElemType::REF, (uint32_t) next});
            count(1);
        }
    }

    uint32_t parse_int() {
        const size_t start = pos_;
        uint64_t v = 0;
        while (peek() >= '0' && peek() <= '9') {
            v = v * 10 + (uint64_t) (peek() - '0');
            if (v > GrammarLimits::MAX_REPETITION)
                error_at(start, "repetition count above " + std::to_string(GrammarLimits::MAX_REPETITION));
            ++pos_;
        }
        if (pos_ == start) error("expecting a number, got " + describe_here());
        return (uint32_t) v;
    }

    void parse_sequence(std::vector<GElem> & out, bool nested) {
        size_t last = out.size();
        bool have_last = false;
        for (;;) {
            const int c = peek();
            if (c == '"') {
                ++pos_;
                last = out.size();
                have_last = true;
                const size_t start = pos_;
                while (peek() != '"') {
                    if (peek() < 0) error_at(start - 1, "unterminated literal");
                    out.push_back(char_elem(parse_char()));
                    count(1);
                }
                ++pos_;
                space(nested);
            } else if (c == '[') {
                const size_t start = pos_;
                ++pos_;
                CharClass cls;
                if (peek() == '^') {
                    cls.negated = true;
                    ++pos_;
                }
                while (peek() != ']') {
                    if (peek() < 0) error_at(start, "unterminated character class");
                    const uint32_t lo = parse_char();
                    uint32_t hi = lo;
                    if (peek() == '-' && peek(1) != ']' && peek(1) >= 0) {
                        ++pos_;
                        hi = parse_char();
                        if (hi < lo) error("character range end below its start");
                    }
                    cls.ranges.push_back({lo, hi});
                }
                ++pos_;
                last = out.size();
                have_last = true;
                out.push_back({GElemType::CLASS, add_class(std::move(cls))});
                count(1);
                space(nested);
            } else if (is_word_char(c)) {
                const size_t at = pos_;
                const std::string name = parse_name();
                last = out.size();
                have_last = true;
                out.push_back({GElemType::REF, symbol(name, at)});
                count(1);
                space(nested);
            } else if (c == '(') {
                const size_t open = pos_;
                ++pos_;
                if (++depth_ > GrammarLimits::MAX_NESTING)
                    error_at(open, "groups nested deeper than " + std::to_string(GrammarLimits::MAX_NESTING));
                space(true);
                const uint32_t g = generated(cur_rule_);
                std::vector<GElem> body;
                parse_alternates(body, true);
                set_rule(g, std::move(body));
                if (peek() != ')')
                    error("expecting ')' to close the group opened at " + position(open) + ", got " + describe_here());
                ++pos_;
                --depth_;
                last = out.size();
                have_last = true;
                out.push_back({GElemType::REF, g});
                count(1);
                space(nested);
            } else if (c == '.') {
                ++pos_;
                CharClass any;
                any.negated = true;
                last = out.size();
                have_last = true;
                out.push_back({GElemType::CLASS, add_class(std::move(any))});
                count(1);
                space(nested);
            } else if (c == '*' || c == '+' || c == '?') {
                if (!have_last || last == out.size())
                    error(std::string("'") + (char) c + "' must follow an item to repeat");
                ++pos_;
                repeat(out, last, c == '+' ? 1 : 0, c == '?' ? 1 : UINT32_MAX);
                have_last = false;
                space(nested);
            } else if (c == '{') {
                if (!have_last || last == out.size()) error("'{' must follow an item to repeat");
                ++pos_;
                space(nested);
                const uint32_t min = parse_int();
                uint32_t max = min;
                space(nested);
                if (peek() == ',') {
                    ++pos_;
                    space(nested);
                    if (peek() >= '0' && peek() <= '9') {
                        max = parse_int();
                        space(nested);
                    } else max = UINT32_MAX;
                }
                if (peek() != '}') error("expecting '}' after a repetition count, got " + describe_here());
                ++pos_;
                if (max < min) error("repetition {m,n} with n below m");
                repeat(out, last, min, max);
                have_last = false;
                space(nested);
            } else return;
        }
    }

    std::string position(size_t at) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < s_.size(); ++i) {
            if (s_[i] == '\n') {
                ++line;
                col = 1;
            } else ++col;
        }
        return std::to_string(line) + ":" + std::to_string(col);
    }

    void parse_alternates(std::vector<GElem> & out, bool nested) {
        parse_sequence(out, nested);
        while (peek() == '|') {
            ++pos_;
            space(true);
            out.push_back({GElemType::ALT, 0});
            parse_sequence(out, nested);
        }
        out.push_back({GElemType::END, 0});
    }

    void parse_rule() {
        cur_rule_.clear();
        const size_t at = pos_;
        const std::string name = parse_name();
        cur_rule_ = name;
        space(false);
        if (!(peek() == ':' && peek(1) == ':' && peek(2) == '=')) error("expecting '::=', got " + describe_here());
        pos_ += 3;
        space(true);
        const uint32_t id = symbol(name, at);
        if (defined_[id]) error_at(at, "rule '" + name + "' is defined twice");
        defined_[id] = true;
        std::vector<GElem> body;
        parse_alternates(body, false);
        set_rule(id, std::move(body));
        if (peek() == '\r') pos_ += peek(1) == '\n' ? 2 : 1;
        else if (peek() == '\n') ++pos_;
        else if (peek() >= 0)
            error("expecting a newline or the end of the text after the rule, got " + describe_here());
        space(true);
    }

    // A rule that reaches itself through references each preceded only by nullable elements would make the
    // matcher's expansion loop forever: refused, naming the cycle.
    void check_left_recursion() {
        const size_t n = rules_.size();
        std::vector<bool> nullable(n, false);
        for (bool changed = true; changed;) {
            changed = false;
            for (size_t r = 0; r < n; ++r) {
                if (nullable[r]) continue;
                bool alt_ok = true;
                for (const GElem & e : rules_[r]) {
                    if (e.type == GElemType::ALT || e.type == GElemType::END) {
                        if (alt_ok) {
                            nullable[r] = true;
                            changed = true;
                            break;
                        }
                        alt_ok = true;
                    } else if (e.type == GElemType::CLASS || (e.type == GElemType::REF && !nullable[e.value]))
                        alt_ok = false;
                }
            }
        }
        std::vector<std::vector<uint32_t>> left(n);
        for (size_t r = 0; r < n; ++r) {
            bool prefix_nullable = true;
            for (const GElem & e : rules_[r]) {
                if (e.type == GElemType::ALT || e.type == GElemType::END) prefix_nullable = true;
                else if (!prefix_nullable) continue;
                else if (e.type == GElemType::CLASS) prefix_nullable = false;
                else {
                    left[r].push_back(e.value);
                    prefix_nullable = nullable[e.value];
                }
            }
        }
        std::vector<uint8_t> color(n, 0); // 0 new, 1 on the path, 2 done
        std::vector<uint32_t> path;
        // Iterative DFS (deep rule chains must not overflow the C++ stack).
        for (uint32_t start = 0; start < n; ++start) {
            if (color[start]) continue;
            std::vector<std::pair<uint32_t, size_t>> st{{start, 0}};
            color[start] = 1;
            path = {start};
            while (!st.empty()) {
                auto & [r, next] = st.back();
                if (next < left[r].size()) {
                    const uint32_t t = left[r][next++];
                    if (color[t] == 1) {
                        std::string cycle;
                        auto it = std::find(path.begin(), path.end(), t);
                        for (; it != path.end(); ++it) cycle += names_[*it] + " -> ";
                        cycle += names_[t];
                        cur_rule_ = names_[t];
                        fail(ErrorCode::INVALID_ARGUMENT, "grammar: rule '" + names_[t] + "' is left-recursive (" +
                                                              cycle +
                                                              " without consuming a character); rewrite it with "
                                                              "repetition, e.g. a ::= b (\"x\" b)*");
                    }
                    if (color[t] == 0) {
                        color[t] = 1;
                        path.push_back(t);
                        st.push_back({t, 0});
                    }
                } else {
                    color[r] = 2;
                    path.pop_back();
                    st.pop_back();
                }
            }
        }
    }

    CompiledGrammar flatten(uint32_t root) {
        CompiledGrammar g;
        g.root = root;
        g.rule_names = names_;
        g.classes = std::move(classes_);
        g.elems.reserve(n_elems_);
        for (size_t r = 0; r < rules_.size(); ++r) {
            const uint32_t base = (uint32_t) g.elems.size();
            g.rule_start.push_back(base);
            std::vector<uint32_t> alts{base};
            for (size_t i = 0; i < rules_[r].size(); ++i) {
                g.elems.push_back(rules_[r][i]);
                if (rules_[r][i].type == GElemType::ALT) alts.push_back(base + (uint32_t) i + 1);
            }
            g.rule_alts.push_back(std::move(alts));
        }
        return g;
    }
};

} // namespace

CompiledGrammar parse_grammar(const std::string & text) { return Parser(text).run(); }

} // namespace tl
