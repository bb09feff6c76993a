"""Select traces by learnability: the best K per problem, the top share overall, a long:short mix (pure).

Usage:
    cands = [Scored(line, "p1", 0, tokens=120, value=-3.2), ...]       # value: higher is more learnable
    notes = []
    dropped = select(cands, per_problem=2, top_share=0.8, long_share=0.2, long_tokens=None, notes=notes)
    # {line: "less_learnable" | "below_top_share" | "mix_ratio"}; notes: why a rule was not applied

Every decision sorts by (value descending, problem, sample), so the result depends only on the
candidates, never on file order or a clock. A candidate without a value (not trainable, e.g. too
long for finetune's max_length) sorts after every scored one. A mix that needs a kind (long or
short) no candidate is of is not applied (it would keep nothing): a note says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Scored:
    """One trace that passed every check: where it is, its problem, length and oriented score."""

    index: int  # what the caller maps back (the trace's line)
    problem: str
    sample: int
    tokens: int
    value: float | None  # higher is more learnable; None: no score


def order(cands: Iterable[Scored]) -> list[Scored]:
    """Most learnable first; ties by problem id and sample, so the order is total."""
    return sorted(cands, key=lambda c: (c.value is None, -(c.value or 0.0), c.problem, c.sample))


def select(cands: list[Scored], per_problem: int | None = None, top_share: float = 1.0,
           long_share: float | None = None, long_tokens: int | None = None,
           notes: list[str] | None = None) -> dict[int, str]:
    """Which candidates to drop and why, each rule applied to what the previous one kept.

    ``notes`` receives a sentence for each rule left unapplied (the mix, when a kind it needs is missing)."""
    dropped: dict[int, str] = {}
    alive = list(cands)
    if per_problem is not None:
        alive = _apply(alive, best_per_problem(alive, per_problem), "less_learnable", dropped)
    if top_share < 1.0 and alive:
        keep = max(1, math.ceil(top_share * len(alive)))
        alive = _apply(alive, {c.index for c in order(alive)[:keep]}, "below_top_share", dropped)
    if long_share is not None and alive:
        keep = mixed(alive, long_share, long_tokens)
        if isinstance(keep, str):
            if notes is not None:
                notes.append(keep)
        else:
            alive = _apply(alive, keep, "mix_ratio", dropped)
    return dropped


def best_per_problem(cands: list[Scored], k: int) -> set[int]:
    """The ``k`` most learnable traces of each problem."""
    by_problem: dict[str, list[Scored]] = {}
    for c in cands:
        by_problem.setdefault(c.problem, []).append(c)
    return {c.index for group in by_problem.values() for c in order(group)[:k]}


def mixed(cands: list[Scored], long_share: float, long_tokens: int | None) -> set[int] | str:
    """The largest set with ``long_share`` long traces that keeps the best of the scarcer kind whole.

    Long means more trained tokens than ``long_tokens`` (default: the median of ``cands``). The
    surplus kind loses its least learnable traces until long:short matches the ratio (rounded down).
    When the ratio needs a kind no candidate is of, it cannot be met by dropping: returns why instead.
    """
    bound = long_tokens if long_tokens is not None else statistics.median(c.tokens for c in cands)
    long = order(c for c in cands if c.tokens > bound)
    short = order(c for c in cands if c.tokens <= bound)
    for kind, group, needed in (("long", long, long_share > 0.0), ("short", short, long_share < 1.0)):
        if needed and not group:
            return (f"long_share={long_share} not applied: no trace is {kind} (long: more than {bound:g} trained"
                    f" tokens, of {len(cands)} traces)")
    if long_share <= 0.0:
        return {c.index for c in short}
    if long_share >= 1.0:
        return {c.index for c in long}
    if len(long) / len(cands) > long_share:
        long = long[:math.floor(long_share * len(short) / (1 - long_share) + 1e-9)]
    else:
        short = short[:math.floor((1 - long_share) * len(long) / long_share + 1e-9)]
    return {c.index for c in long + short}


def _apply(alive: list[Scored], keep: set[int], reason: str, dropped: dict[int, str]) -> list[Scored]:
    for c in alive:
        if c.index not in keep:
            dropped[c.index] = reason
    return [c for c in alive if c.index in keep]
