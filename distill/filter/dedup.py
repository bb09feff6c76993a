"""Duplicates among a problem's traces (exact hash, bottom-k MinHash) and the per-problem cap.

Usage:
    from distill.filter.dedup import text_digest, sketch, jaccard, select
    words = text.lower().split()
    sig = sketch(words, shingle=5, size=64)       # stable across processes and runs
    jaccard(sig_a, sig_b)                                  # estimated word-shingle Jaccard
    dropped = select("p1", candidates, exact=True, near=True, threshold=0.8, max_keep=4, policy="shortest",
                     seed=0)                               # {line: "duplicate" | "max_per_problem"}

Sketches use CRC32 word ids combined by Python's tuple hash, which (unlike ``hash(str)``) does
not depend on PYTHONHASHSEED, so a sketch cached by one run compares with one made by the next.
One hash per shingle keeps the cost far below a 128-permutation MinHash.
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["text_digest", "sketch", "jaccard", "Candidate", "select"]

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


@dataclass
class Candidate:
    """One trace of a problem that passed every per-trace check."""

    index: int  # position in the run's trace list (what the caller maps back)
    sample: int
    tokens: int
    digest: str | None
    sig: list[int] | None


def select(problem_id: str, cands: list[Candidate], exact: bool, near: bool, threshold: float,
           max_keep: int | None, policy: str, seed: int) -> dict[int, str]:
    """Which candidates of one problem to drop, and why; decided in sample order, so deterministic."""
    dropped: dict[int, str] = {}
    survivors: list[Candidate] = []
    seen_digests: set[str] = set()
    for cand in sorted(cands, key=lambda c: c.sample):
        if exact and cand.digest is not None:
            if cand.digest in seen_digests:
                dropped[cand.index] = "duplicate"
                continue
        if near and cand.sig is not None and any(
                s.sig is not None and jaccard(cand.sig, s.sig) >= threshold for s in survivors):
            dropped[cand.index] = "duplicate"
            continue
        if cand.digest is not None:
            seen_digests.add(cand.digest)
        survivors.append(cand)
    if policy == "all" or max_keep is None or len(survivors) <= max_keep:
        return dropped
    if policy == "first":
        order = survivors
    elif policy == "shortest":
        order = sorted(survivors, key=lambda c: (c.tokens, c.sample))
    else:  # random: seeded per problem, so adding another problem does not reshuffle this one
        rng = random.Random(f"{seed}:{problem_id}")
        order = list(survivors)
        rng.shuffle(order)
    for cand in order[max_keep:]:
        dropped[cand.index] = "max_per_problem"
    return dropped
