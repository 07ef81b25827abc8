// Fuzz target: the GBNF parser and the grammar matcher over arbitrary grammar text.
//
// The input is grammar text. The parser must either accept it or throw EngineException(INVALID_ARGUMENT); an
// accepted grammar is then run over a small fixed vocabulary (ASCII letters and punctuation, multi-byte UTF-8
// pieces, all 256 byte tokens, and an end token): from the start state, up to 32 steps each take the lowest allowed
// token whose id is picked by the input's own bytes, checking that the full mask and the per-token check agree, that
// the end token is allowed exactly when the state accepts, and that the state advanced by an allowed token is live.
// Accepted outcomes: success or an EngineException; anything else aborts. Build and run: native/fuzz/run.sh.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "grammar.h"
#include "grammar_matcher.h"
#include "tokenizer.h"

using namespace tl;

namespace {

const Tokenizer & vocab() {
    static const Tokenizer tok = [] {
        std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
        std::vector<int32_t> types{2, 3, 3};
        char buf[8];
        for (int b = 0; b < 256; ++b) {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            tokens.push_back(buf);
            types.push_back(6);
        }
        const char * pieces[] = {"a",
                                 "b",
                                 "c",
                                 "x",
                                 "ab",
                                 "abc",
                                 "{",
                                 "}",
                                 "[",
                                 "]",
                                 "\"",
                                 ":",
                                 ",",
                                 " ",
                                 "\n",
                                 "0",
                                 "1",
                                 "12",
                                 "-",
                                 ".",
                                 "\xC3\xA9",
                                 "\xC3",
                                 "\xE4\xB8\xAD",
                                 "\xE2\x96\x81the",
                                 "true",
                                 "null",
                                 "\\",
                                 "\\n",
                                 "{\"",
                                 "\":",
                                 "yes",
                                 "no"};
        for (const char * p : pieces) {
            tokens.push_back(p);
            types.push_back(1);
        }
        return Tokenizer::from_vocab(TokenizerKind::LLAMA, tokens, {}, types, {}, 1, 2, true, false, 0);
    }();
    return tok;
}

void check(bool ok, const char * what) {
    if (!ok) {
        fprintf(stderr, "grammar_fuzz: invariant failed: %s\n", what);
        abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string text((const char *) data, size);
    std::shared_ptr<const CompiledGrammar> g;
    try {
        g = std::make_shared<const CompiledGrammar>(parse_grammar(text));
    } catch (const EngineException & e) {
        check(e.code() == ErrorCode::INVALID_ARGUMENT, "parse errors are INVALID_ARGUMENT");
        return 0;
    }
    static const std::shared_ptr<const TokenTrie> trie = std::make_shared<const TokenTrie>(vocab());
    GrammarCounters counters;
    GrammarRuntime rt(g, trie, &counters);
    int32_t state = rt.initial();
    if (state == GrammarRuntime::DEAD) return 0;
    const int32_t V = trie->n_vocab();
    for (size_t step = 0; step < 32; ++step) {
        bool cached = false;
        const std::vector<uint64_t> bits = rt.mask(state, &cached);
        int32_t n_allowed = 0;
        for (int32_t id = 0; id < V; ++id) {
            const bool in_mask = (bits[id >> 6] >> (id & 63)) & 1;
            check(in_mask == rt.allowed(state, id), "the mask and the per-token check agree");
            n_allowed += in_mask;
        }
        check(((bits[2 >> 6] >> 2) & 1) == rt.accepting(state), "the end token is allowed exactly when accepting");
        check(n_allowed > 0 || !rt.any_allowed(state), "any_allowed agrees with the mask");
        if (n_allowed == 0 || rt.complete(state)) break;
        // Pick the k-th allowed token, k from the input.
        int32_t k = (int32_t) (data[step % size] % n_allowed), pick = -1;
        for (int32_t id = 0; id < V && pick < 0; ++id)
            if ((bits[id >> 6] >> (id & 63)) & 1 && k-- == 0) pick = id;
        if (pick == 2) break; // the end token
        const int32_t next = rt.step_bytes(state, trie->piece(pick));
        check(next != GrammarRuntime::DEAD, "an allowed token leads to a live state");
        state = next;
        rt.attach(&state);
        rt.maybe_reset();
        rt.detach(&state);
    }
    return 0;
}
