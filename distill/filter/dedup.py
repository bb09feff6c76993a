"""Duplicates among a problem's traces (exact hash, bottom-k MinHash from :mod:`distill.minhash`) and the per-problem cap.

Usage:
    from distill.filter.dedup import Candidate, select
    dropped = select("p1", candidates, exact=True, near=True, threshold=0.8, max_keep=4, policy="shortest",
                     seed=0)                               # {line: "duplicate" | "max_per_problem"}
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from distill.minhash import jaccard

__all__ = ["Candidate", "select"]


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
