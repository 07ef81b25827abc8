// Grammar-constrained decoding families, read from engine.stats().grammar (docs/metrics.md, "Structured output").
// An engine without the section contributes no series.
import type { GrammarStats } from '../engine/types.js';
import type { FamilyBuilder } from './families.js';
import type { UpSnapshot } from './snapshot.js';

const one =
  (key: keyof GrammarStats) =>
  (s: UpSnapshot): [Record<string, never>, number][] =>
    s.stats.grammar ? [[{}, s.stats.grammar[key]]] : [];

export function defineGrammarFamilies(f: FamilyBuilder): void {
  f.labelled('tuneloop_grammar_requests_total', 'Requests submitted with a grammar (raw grammar, response_format or tool-call grammars).', 'counter', one('requests'));
  f.labelled('tuneloop_grammar_tokens_total', 'Tokens sampled while a grammar constrained the request.', 'counter', one('tokens'));
  f.labelled(
    'tuneloop_grammar_mask_seconds_total',
    'Time spent constraining tokens: the allowed-check of the sampled token, full masks, the masked resample and advancing the matcher.',
    'counter',
    one('maskSeconds'),
  );
  f.labelled('tuneloop_grammar_fast_accepts_total', 'Tokens the unconstrained sampler picked that the grammar allowed (no mask applied).', 'counter', one('fastAccepts'));
  f.labelled(
    'tuneloop_grammar_masks_total',
    'Full token masks applied, by source: computed (a walk of the vocabulary trie) or cached (the per-grammar mask cache).',
    'counter',
    (s) =>
      s.stats.grammar
        ? [
            [{ source: 'computed' }, s.stats.grammar.masksComputed],
            [{ source: 'cached' }, s.stats.grammar.maskCacheHits],
          ]
        : [],
  );
  f.labelled(
    'tuneloop_grammar_finishes_total',
    'Requests the grammar ended with stop: reason="complete" (no further character possible) or "dead_end" (no token could continue the text).',
    'counter',
    (s) =>
      s.stats.grammar
        ? [
            [{ reason: 'complete' }, s.stats.grammar.completed],
            [{ reason: 'dead_end' }, s.stats.grammar.deadEnds],
          ]
        : [],
  );
  f.labelled('tuneloop_grammar_limit_hits_total', 'Matcher transitions refused by a bound (live stacks, stack depth, expansion steps).', 'counter', one('limitHits'));
  f.labelled('tuneloop_grammar_triggered_total', 'Lazy grammars (grammarTriggers) whose trigger appeared.', 'counter', one('triggered'));
}
