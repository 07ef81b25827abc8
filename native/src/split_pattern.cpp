// The split-pattern matcher (split_pattern.h): a recursive-descent parser to a tree, compiled to a tiny backtracking
// program (class / repeat / split / jump / lookahead / end / match), run with an explicit stack.
#include "split_pattern.h"

#include <stdexcept>

#include "unicode.h"

namespace tl {

namespace {
constexpr uint32_t INF = UINT32_MAX;
constexpr uint32_t SPLIT_FRAME = UINT32_MAX; // Frame::count of a split (alternative) entry
} // namespace

struct SplitPattern::Node {
    enum Kind { CLS, SEQ, ALT, REP, LOOK, NLOOK, END } kind;
    explicit Node(Kind k) : kind(k) {}
    uint32_t cls = 0;
    uint32_t min = 0, max = 0;
    std::vector<Node> kids;
};

bool SplitPattern::CharClass::matches(uint32_t cp, uint8_t cat) const {
    if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
    bool in = ((cat_mask >> cat) & 1) || (whitespace && unicode::is_whitespace(cp));
    if (!in) {
        for (const auto & r : ranges) {
            if (cp >= r.first && cp <= r.second) {
                in = true;
                break;
            }
        }
    }
    return in != negated;
}

class PatternParser {
public:
    PatternParser(SplitPattern & p, const std::string & src) : p_(p), s_(src) {}

    SplitPattern::Node parse() {
        SplitPattern::Node n = alternation();
        if (i_ != s_.size()) error("unexpected ')'");
        return n;
    }

private:
    using Node = SplitPattern::Node;
    SplitPattern & p_;
    const std::string & s_;
    size_t i_ = 0;

    [[noreturn]] void error(const std::string & what) const {
        throw std::invalid_argument("split pattern '" + s_ + "' at " + std::to_string(i_) + ": " + what);
    }
    bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }
    uint32_t next_cp() {
        uint32_t cp;
        i_ += unicode::decode_utf8(s_.data(), s_.size(), i_, &cp);
        return cp;
    }

    Node alternation() {
        Node alt{Node::ALT};
        alt.kids.push_back(sequence());
        while (at('|')) {
            i_++;
            alt.kids.push_back(sequence());
        }
        return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
    }

    Node sequence() {
        Node seq{Node::SEQ};
        while (i_ < s_.size() && !at('|') && !at(')')) {
            Node a = atom();
            quantifier(a);
            seq.kids.push_back(std::move(a));
        }
        return seq;
    }

    uint32_t number() {
        if (i_ >= s_.size() || s_[i_] < '0' || s_[i_] > '9') error("expected a number");
        uint32_t v = 0;
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') v = v * 10 + (uint32_t) (s_[i_++] - '0');
        return v;
    }

    void quantifier(Node & a) {
        if (i_ >= s_.size()) return;
        uint32_t mn, mx;
        const char c = s_[i_];
        if (c == '?') mn = 0, mx = 1;
        else if (c == '*') mn = 0, mx = INF;
        else if (c == '+') mn = 1, mx = INF;
        else if (c == '{') {
            i_++;
            mn = number();
            mx = mn;
            if (at(',')) {
                i_++;
                mx = at('}') ? INF : number();
            }
            if (!at('}') || mx < mn) error("bad {n,m}");
        } else return;
        i_++;
        if (at('?') || at('+')) error("lazy and possessive quantifiers are not supported");
        if (a.kind == Node::LOOK || a.kind == Node::NLOOK || a.kind == Node::END) error("quantified assertion");
        Node rep{Node::REP};
        rep.min = mn;
        rep.max = mx;
        rep.kids.push_back(std::move(a));
        a = std::move(rep);
    }

    uint32_t new_class() {
        p_.classes_.emplace_back();
        return (uint32_t) p_.classes_.size() - 1;
    }

    // Finishes class `k`: the ASCII bitmap from its members, then negation.
    void seal(uint32_t k) {
        SplitPattern::CharClass & c = p_.classes_[k];
        for (uint32_t cp = 0; cp < 128; cp++) {
            bool in = ((c.cat_mask >> unicode::category(cp)) & 1) || (c.whitespace && unicode::is_whitespace(cp));
            for (const auto & r : c.ranges) in = in || (cp >= r.first && cp <= r.second);
            if (in != c.negated) c.ascii[cp >> 6] |= 1ull << (cp & 63);
        }
    }

    Node class_node(uint32_t k) {
        seal(k);
        Node n{Node::CLS};
        n.cls = k;
        return n;
    }

    uint32_t category_mask(const std::string & name) {
        using namespace unicode;
        static const struct {
            const char * name;
            uint32_t mask;
        } names[] = {{"L", MASK_L},   {"Lu", bit(Lu)}, {"Ll", bit(Ll)}, {"Lt", bit(Lt)}, {"Lm", bit(Lm)},
                     {"Lo", bit(Lo)}, {"M", MASK_M},   {"Mn", bit(Mn)}, {"Mc", bit(Mc)}, {"Me", bit(Me)},
                     {"N", MASK_N},   {"Nd", bit(Nd)}, {"Nl", bit(Nl)}, {"No", bit(No)}, {"P", MASK_P},
                     {"S", MASK_S},   {"Z", MASK_Z},   {"C", MASK_C}};
        for (const auto & n : names) {
            if (name == n.name) return n.mask;
        }
        error("unknown category \\p{" + name + "}");
    }

    // After a backslash: a category, \s, or one literal code point (returned; UINT32_MAX for the set escapes,
    // which are added to class `k`).
    uint32_t escape(uint32_t k, bool * negated_set) {
        if (i_ >= s_.size()) error("trailing backslash");
        const char c = s_[i_++];
        SplitPattern::CharClass & cls = p_.classes_[k];
        switch (c) {
            case 'r': return '\r';
            case 'n': return '\n';
            case 't': return '\t';
            case 's': cls.whitespace = true; return UINT32_MAX;
            case 'S':
                if (!negated_set) error("\\S inside a class");
                cls.whitespace = true;
                *negated_set = true;
                return UINT32_MAX;
            case 'p': {
                if (!at('{')) error("expected {");
                const size_t close = s_.find('}', i_);
                if (close == std::string::npos) error("unterminated \\p{");
                cls.cat_mask |= category_mask(s_.substr(i_ + 1, close - i_ - 1));
                i_ = close + 1;
                return UINT32_MAX;
            }
            case 'x': {
                if (!at('{')) error("expected {");
                const size_t close = s_.find('}', i_);
                if (close == std::string::npos) error("unterminated \\x{");
                const uint32_t v = (uint32_t) std::stoul(s_.substr(i_ + 1, close - i_ - 1), nullptr, 16);
                i_ = close + 1;
                return v;
            }
            default:
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
                    error(std::string("unsupported escape \\") + c);
                }
                return (uint32_t) (unsigned char) c;
        }
    }

    Node bracket() {
        const uint32_t k = new_class();
        if (at('^')) {
            p_.classes_[k].negated = true;
            i_++;
        }
        bool first = true;
        while (!at(']') || first) {
            if (i_ >= s_.size()) error("unterminated class");
            first = false;
            uint32_t lo;
            if (at('\\')) {
                i_++;
                lo = escape(k, nullptr);
                if (lo == UINT32_MAX) continue;
            } else {
                lo = next_cp();
            }
            uint32_t hi = lo;
            if (at('-') && i_ + 1 < s_.size() && s_[i_ + 1] != ']') {
                i_++;
                if (at('\\')) {
                    i_++;
                    hi = escape(k, nullptr);
                    if (hi == UINT32_MAX) error("range to a set");
                } else {
                    hi = next_cp();
                }
                if (hi < lo) error("reversed range");
            }
            p_.classes_[k].ranges.emplace_back(lo, hi);
        }
        i_++;
        return class_node(k);
    }

    Node atom() {
        const char c = s_[i_];
        if (c == '(') {
            i_++;
            Node::Kind kind = Node::SEQ;
            if (at('?')) {
                i_++;
                if (at(':')) kind = Node::SEQ;
                else if (at('=')) kind = Node::LOOK;
                else if (at('!')) kind = Node::NLOOK;
                else error("unsupported group");
                i_++;
            }
            Node inner = alternation();
            if (!at(')')) error("missing )");
            i_++;
            if (kind == Node::SEQ) return inner;
            Node look{kind};
            look.kids.push_back(std::move(inner));
            return look;
        }
        if (c == '[') {
            i_++;
            return bracket();
        }
        if (c == '$') {
            i_++;
            return Node(Node::END);
        }
        if (c == '*' || c == '+' || c == '?' || c == '{' || c == ')' || c == ']') error("unexpected character");
        const uint32_t k = new_class();
        uint32_t cp;
        if (c == '\\') {
            i_++;
            bool negated = false;
            cp = escape(k, &negated);
            p_.classes_[k].negated = negated;
            if (cp == UINT32_MAX) return class_node(k);
        } else {
            cp = next_cp();
        }
        p_.classes_[k].ranges.emplace_back(cp, cp);
        return class_node(k);
    }
};

SplitPattern::SplitPattern(const std::string & pattern) {
    PatternParser parser(*this, pattern);
    const Node root = parser.parse();
    emit(root);
    code_.push_back(Inst(MATCH));
    compute_first();
}

SplitPattern::First SplitPattern::first_of(uint32_t pc, std::vector<uint8_t> & visiting) const {
    const First all{{~0ull, ~0ull}};
    if (visiting[pc]) return all; // a loop back to itself: no information
    const Inst & in = code_[pc];
    switch (in.op) {
        case CLASS: return First{{classes_[in.a].ascii[0], classes_[in.a].ascii[1]}};
        case REPEAT: {
            First f{{classes_[in.a].ascii[0], classes_[in.a].ascii[1]}};
            if (in.min == 0) {
                visiting[pc] = 1;
                const First next = first_of(pc + 1, visiting);
                visiting[pc] = 0;
                f.ascii[0] |= next.ascii[0];
                f.ascii[1] |= next.ascii[1];
            }
            return f;
        }
        case SPLIT: {
            visiting[pc] = 1;
            First f = first_of(in.a, visiting);
            const First g = first_of(in.b, visiting);
            visiting[pc] = 0;
            f.ascii[0] |= g.ascii[0];
            f.ascii[1] |= g.ascii[1];
            return f;
        }
        case JMP: {
            visiting[pc] = 1;
            const First f = first_of(in.a, visiting);
            visiting[pc] = 0;
            return f;
        }
        default: return all; // lookahead, $ and match do not consume: anything may follow
    }
}

void SplitPattern::compute_first() {
    std::vector<uint8_t> visiting(code_.size(), 0);
    first_.resize(code_.size());
    for (uint32_t pc = 0; pc < code_.size(); pc++) first_[pc] = first_of(pc, visiting);
}

void SplitPattern::emit(const Node & n) {
    auto pc = [&] { return (uint32_t) code_.size(); };
    switch (n.kind) {
        case Node::CLS: code_.push_back(Inst(CLASS, n.cls)); break;
        case Node::SEQ:
            for (const Node & k : n.kids) emit(k);
            break;
        case Node::ALT: {
            std::vector<uint32_t> jumps;
            for (size_t i = 0; i + 1 < n.kids.size(); i++) {
                const uint32_t split = pc();
                code_.push_back(Inst(SPLIT, split + 1));
                emit(n.kids[i]);
                jumps.push_back(pc());
                code_.push_back(Inst(JMP));
                code_[split].b = pc();
            }
            emit(n.kids.back());
            for (uint32_t j : jumps) code_[j].a = pc();
            break;
        }
        case Node::REP: {
            const Node & body = n.kids[0];
            if (body.kind == Node::CLS) {
                Inst in(REPEAT, body.cls);
                in.min = n.min;
                in.max = n.max;
                code_.push_back(in);
                break;
            }
            for (uint32_t i = 0; i < n.min; i++) emit(body);
            if (n.max == INF) {
                const uint32_t loop = pc();
                code_.push_back(Inst(SPLIT, loop + 1));
                emit(body);
                code_.push_back(Inst(JMP, loop));
                code_[loop].b = pc();
            } else {
                std::vector<uint32_t> splits;
                for (uint32_t i = n.min; i < n.max; i++) {
                    splits.push_back(pc());
                    code_.push_back(Inst(SPLIT, pc() + 1));
                    emit(body);
                }
                for (uint32_t s : splits) code_[s].b = pc();
            }
            break;
        }
        case Node::LOOK:
        case Node::NLOOK: {
            const uint32_t look = pc();
            code_.push_back(Inst(n.kind == Node::LOOK ? LOOK : NLOOK));
            emit(n.kids[0]);
            code_.push_back(Inst(MATCH));
            code_[look].a = pc();
            break;
        }
        case Node::END: code_.push_back(Inst(END)); break;
    }
}

int64_t SplitPattern::run(uint32_t pc, uint32_t pos, const uint32_t * cps, const uint8_t * cats, uint32_t end,
                          std::vector<SplitScratch::Frame> & stack, bool prune) const {
    const size_t base = stack.size();
    for (;;) {
        const Inst & in = code_[pc];
        bool ok = true;
        switch (in.op) {
            case CLASS:
                if (pos < end && classes_[in.a].matches(cps[pos], cats[pos])) {
                    pos++;
                    pc++;
                } else ok = false;
                break;
            case REPEAT: {
                const CharClass & cls = classes_[in.a];
                uint32_t n = 0;
                while (n < in.max && pos + n < end && cls.matches(cps[pos + n], cats[pos + n])) n++;
                if (n < in.min) {
                    ok = false;
                } else {
                    // One entry for the whole run: backtracking gives back one character at a time.
                    if (n > in.min) stack.push_back({pc + 1, pos, n, in.min});
                    pos += n;
                    pc++;
                }
                break;
            }
            case SPLIT: {
                // Branches that cannot begin with the next character are not tried (first_ is conservative).
                const bool a_ok = !prune || pos >= end || first_[in.a].may_start(cps[pos]);
                const bool b_ok = !prune || pos >= end || first_[in.b].may_start(cps[pos]);
                if (a_ok && b_ok) {
                    stack.push_back({in.b, pos, SPLIT_FRAME, 0});
                    pc = in.a;
                } else if (a_ok) {
                    pc = in.a;
                } else if (b_ok) {
                    pc = in.b;
                } else {
                    ok = false;
                }
                break;
            }
            case JMP: pc = in.a; break;
            case LOOK:
            case NLOOK: {
                // Lookahead is atomic: its own alternatives are discarded once it has answered.
                const bool found = run(pc + 1, pos, cps, cats, end, stack, prune) >= 0;
                if (found == (in.op == LOOK)) pc = in.a;
                else ok = false;
                break;
            }
            case END:
                if (pos == end) pc++;
                else ok = false;
                break;
            case MATCH: stack.resize(base); return pos;
        }
        if (!ok) {
            if (stack.size() == base) return -1;
            SplitScratch::Frame & f = stack.back();
            pc = f.pc;
            if (f.count == SPLIT_FRAME) {
                pos = f.pos;
                stack.pop_back();
            } else {
                f.count--;
                pos = f.pos + f.count;
                if (f.count == f.min) stack.pop_back();
            }
        }
    }
}

bool SplitPattern::find(const uint32_t * cps, const uint8_t * cats, uint32_t from, uint32_t end, uint32_t * mb,
                        uint32_t * me, std::vector<SplitScratch::Frame> & stack, bool prune) const {
    const First & f0 = first_[0];
    for (uint32_t s = from; s < end; s++) {
        if (prune && !f0.may_start(cps[s])) continue;
        const int64_t r = run(0, s, cps, cats, end, stack, prune);
        if (r > (int64_t) s) {
            *mb = s;
            *me = (uint32_t) r;
            return true;
        }
    }
    return false;
}

} // namespace tl
