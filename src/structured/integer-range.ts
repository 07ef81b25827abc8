// Decimal integers within bounds, as grammar expressions: the digit strings (no leading zeros) of every integer in
// [lo, hi] and no other. BigInt throughout, so zod's ±(2^53 − 1) bounds and larger ones stay exact.
//
// The classic digit-range decomposition: split [lo, hi] by digit count; for two numbers of the same length, share
// their common prefix, then take the low end's tail up to all nines, the full middle digits, and all zeros up to
// the high end's tail. Each level recurses along one edge only, so the expression is O(digits²) in size.
import { alt, cls, type Expr, lit, rep, seq } from './gbnf.js';

const DIGIT = cls([['0', '9']]);

function digitClass(lo: number, hi: number): Expr {
  if (lo === hi) return lit(String(lo));
  return cls([[String(lo), String(hi)]]);
}

/** Same-length digit strings a ≤ b (as numbers): every digit string of that length between them. */
function sameLength(a: string, b: string): Expr {
  if (a === b) return lit(a);
  let i = 0;
  while (a[i] === b[i]) i++;
  const prefix = lit(a.slice(0, i));
  const a0 = Number(a[i]);
  const b0 = Number(b[i]);
  const aTail = a.slice(i + 1);
  const bTail = b.slice(i + 1);
  const rest = aTail.length;
  const alts: Expr[] = [];
  let fullLo = a0;
  let fullHi = b0;
  if (!/^0*$/.test(aTail)) {
    alts.push(seq(lit(String(a0)), sameLength(aTail, '9'.repeat(rest))));
    fullLo = a0 + 1;
  }
  const highEdge = !/^9*$/.test(bTail) ? seq(lit(String(b0)), sameLength('0'.repeat(rest), bTail)) : undefined;
  if (highEdge) fullHi = b0 - 1;
  if (fullLo <= fullHi) alts.push(seq(digitClass(fullLo, fullHi), rest > 0 ? rep(DIGIT, rest, rest) : lit('')));
  if (highEdge) alts.push(highEdge);
  return seq(prefix, alt(...alts));
}

/** Every integer in [lo, hi] (lo ≥ 0) written in decimal without leading zeros. Requires lo ≤ hi. */
export function unsignedRange(lo: bigint, hi: bigint): Expr {
  if (lo < 0n || lo > hi) throw new Error(`internal: bad unsigned range [${lo}, ${hi}]`);
  const alts: Expr[] = [];
  const loLen = lo.toString().length;
  const hiLen = hi.toString().length;
  // Whole digit-counts in a row (every number of 2..15 digits, say) fold into one [1-9] [0-9]{m,n}.
  let fullFrom = -1;
  const flush = (to: number): void => {
    if (fullFrom < 0) return;
    alts.push(seq(cls([['1', '9']]), rep(DIGIT, fullFrom - 1, to - 1)));
    fullFrom = -1;
  };
  for (let len = loLen; len <= hiLen; len++) {
    const first = len === 1 ? 0n : 10n ** BigInt(len - 1);
    const last = 10n ** BigInt(len) - 1n;
    const a = lo > first ? lo : first;
    const b = hi < last ? hi : last;
    if (len > 1 && a === first && b === last) {
      if (fullFrom < 0) fullFrom = len;
      continue;
    }
    flush(len - 1);
    if (a <= b) alts.push(sameLength(a.toString(), b.toString()));
  }
  flush(hiLen);
  return alt(...alts);
}

/** Every integer in [lo, hi] (lo ≤ hi), negatives with a leading '-'. Zero is written "0" only. */
export function signedRange(lo: bigint, hi: bigint): Expr {
  if (lo > hi) throw new Error(`internal: bad range [${lo}, ${hi}]`);
  const alts: Expr[] = [];
  if (lo < 0n) {
    const magLo = hi < 0n ? -hi : 1n;
    alts.push(seq(lit('-'), unsignedRange(magLo, -lo)));
  }
  if (hi >= 0n) alts.push(unsignedRange(lo > 0n ? lo : 0n, hi));
  return alt(...alts);
}
