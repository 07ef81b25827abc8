"""Byte-level BPE (GPT-2 style) in plain Python: a trainer and an encoder that match tuneloop's "gpt2" tokenizer.

No third-party packages: the trainer runs wherever Python 3.9+ does.

How text becomes tokens (the same steps as native/src/tokenizer.cpp, Tokenizer::encode_gpt2):
  1. Pre-split with the GPT-2 pattern
       's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
     with ASCII letters, ASCII digits and the ASCII whitespace set (tab, LF, VT, FF, CR, space). The training text is
     ASCII, where this is exactly the engine's classification. (For non-ASCII input the engine treats most code
     points as letters; this module treats them as "other". Only where pieces split differs, never the round trip,
     and nothing here encodes non-ASCII text.)
  2. Each piece's UTF-8 bytes start as one symbol per byte (token id = byte value, 0..255).
  3. Merges apply by rank, lowest first, leftmost first among equal ranks (the GPT-2 reference algorithm; the
     engine's priority-queue version gives the same result for merges learned this way, where every merge's inputs
     are older merges or bytes).

Vocabulary layout: ids 0..255 are the 256 single bytes (every input is encodable), 256.. the learned merges in rank
order, and the last id is the control token <|endoftext|> (BOS and EOS). Token strings are written in GPT-2's
bytes_to_unicode form, merges as "left right" of those strings.
"""
from __future__ import annotations

import heapq
import re
from collections import Counter
from typing import Dict, Iterable, List, Sequence, Tuple

WS = "\\t\\n\\x0b\\x0c\\r "
GPT2_ASCII_PATTERN = re.compile(
    r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^" + WS + r"A-Za-z0-9]+|[" + WS + r"]+(?![^" + WS + r"])|[" + WS + r"]+"
)

EOT = "<|endoftext|>"



def merge_pair(ids: List[int], a: int, b: int, new_id: int) -> List[int]:
    """Replace every non-overlapping occurrence of the pair (a, b), left to right, by new_id (one BPE merge)."""
    out: List[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out

def pre_split(text: str) -> List[str]:
    pieces = GPT2_ASCII_PATTERN.findall(text)
    assert "".join(pieces) == text, "pre-split lost characters"
    return pieces


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's byte -> printable character map (printable Latin-1 bytes map to themselves)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_MAP = bytes_to_unicode()


def train_bpe(text: str, n_merges: int, log_every: int = 0) -> List[Tuple[int, int]]:
    """Learn `n_merges` merges from `text`. Returns [(left_id, right_id)], merge k creating token id 256 + k.

    Deterministic: each step merges the most frequent adjacent pair (counted over pre-split pieces, weighted by how
    often each piece occurs); ties go to the pair with the smallest (left_id, right_id).
    """
    word_freq = Counter(pre_split(text))
    words: List[List[int]] = [list(w.encode("utf-8")) for w in word_freq]
    freqs: List[int] = list(word_freq.values())

    pair_count: Dict[Tuple[int, int], int] = Counter()
    pair_words: Dict[Tuple[int, int], set] = {}
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for p in zip(w, w[1:]):
            pair_count[p] += f
            pair_words.setdefault(p, set()).add(wi)

    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    merges: List[Tuple[int, int]] = []
    while len(merges) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -negc or negc == 0:
            continue  # stale entry
        new_id = 256 + len(merges)
        merges.append(pair)
        a, b = pair
        for wi in sorted(pair_words.pop(pair, ())):
            w, f = words[wi], freqs[wi]
            # Remove this word's pair contributions, merge, then add them back.
            changed = set()
            for p in zip(w, w[1:]):
                pair_count[p] -= f
                changed.add(p)
            out = merge_pair(w, a, b, new_id)
            words[wi] = out
            for p in zip(out, out[1:]):
                pair_count[p] += f
                changed.add(p)
                if p != pair:
                    pair_words.setdefault(p, set()).add(wi)
            for p in changed:
                c = pair_count.get(p, 0)
                if c > 0:
                    heapq.heappush(heap, (-c, p))
                else:
                    pair_count.pop(p, None)
        pair_count.pop(pair, None)
        if log_every and len(merges) % log_every == 0:
            print(f"  bpe: {len(merges)}/{n_merges} merges", flush=True)
    return merges


class ByteBPE:
    def __init__(self, merges: Sequence[Tuple[int, int]]):
        self.merges = [tuple(m) for m in merges]
        self.token_bytes: List[bytes] = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        self.eot_id = len(self.token_bytes)  # the control token comes last
        self._cache: Dict[str, List[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.token_bytes) + 1

    def token_strings(self) -> List[str]:
        """Tokens as GGUF stores them (bytes_to_unicode form), the control token last."""
        return ["".join(BYTE_MAP[x] for x in tb) for tb in self.token_bytes] + [EOT]

    def token_types(self) -> List[int]:
        return [1] * len(self.token_bytes) + [3]

    def merge_strings(self) -> List[str]:
        s = self.token_strings()
        return [f"{s[a]} {s[b]}" for a, b in self.merges]

    def _encode_piece(self, piece: str) -> List[int]:
        ids = self._cache.get(piece)
        if ids is not None:
            return ids
        ids = list(piece.encode("utf-8"))
        while len(ids) > 1:
            best = None
            for p in zip(ids, ids[1:]):
                r = self.ranks.get(p)
                if r is not None and (best is None or r < best[0]):
                    best = (r, p)
            if best is None:
                break
            r, (a, b) = best
            new_id = 256 + r
            ids = merge_pair(ids, a, b, new_id)
        self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> List[int]:
        out: List[int] = []
        for piece in pre_split(text):
            out.extend(self._encode_piece(piece))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(self.token_bytes[i] for i in ids if i < len(self.token_bytes)).decode("utf-8", errors="replace")
