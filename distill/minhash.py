"""Near-duplicate text by bottom-k MinHash of word shingles, and an exact digest of the words.

Usage:
    from distill.minhash import text_digest, sketch, jaccard
    words = text.lower().split()
    sig = sketch(words, shingle=5, size=64)       # stable across processes and runs
    jaccard(sig_a, sig_b)                         # estimated word-shingle Jaccard
    text_digest(words)                            # exact-duplicate key

Used by the filter's dedup and by generate's sample-until-correct (distinct correct samples).
Sketches use CRC32 word ids combined by Python's tuple hash, which (unlike ``hash(str)``) does
not depend on PYTHONHASHSEED, so a sketch cached by one run compares with one made by the next.
One hash per shingle keeps the cost far below a 128-permutation MinHash.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

__all__ = ["text_digest", "sketch", "jaccard"]


def text_digest(words: Sequence[str]) -> str:
    """Digest of the lower-cased words (exact-duplicate key: case and spacing do not count)."""
    return hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=10).hexdigest()


def sketch(words: Sequence[str], shingle: int, size: int) -> list[int]:
    """The ``size`` smallest hashes of the word shingles (the whole set when it is smaller).

    ``words`` should be lower-cased (``text.lower().split()``) so case does not count.
    """
    ids = {w: zlib.crc32(w.encode("utf-8")) for w in set(words)}
    seq = list(map(ids.__getitem__, words))
    if len(seq) < shingle:
        grams = {hash(tuple(seq))} if seq else set()
    else:
        grams = set(map(hash, zip(*(seq[i:] for i in range(shingle)))))
    return sorted(grams)[:size]  # a C sort beats heapq.nsmallest at these sizes


def jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """Bottom-k estimate of the Jaccard similarity of the two shingle sets."""
    if not a or not b:
        return 1.0 if not a and not b else 0.0
    size = max(len(a), len(b))
    set_a, set_b = set(a), set(b)
    union_low = sorted(set_a | set_b)[:size]
    both = sum(1 for h in union_low if h in set_a and h in set_b)
    return both / len(union_low)
