"""Sample until correct: per problem, count distinct verified-correct traces and say what to draw next.

Usage:
    tally = CorrectTally(UntilCorrect(k=2, max_samples=8, first_wave=1, rationalize=True), judge)
    for trace in resumed_traces: tally.seen(trace)      # what the output file already holds
    tally.next_samples("p-1")                            # -> [(0, False)]: first wave, not a rationalization
    tally.seen(new_trace)                                # as each trace arrives
    tally.next_samples("p-1")                            # -> [] once p-1 has k distinct correct traces

Easy problems stop after the first wave; the budget goes to the hard ones (STaR/RFT's "sample
until correct"). Two correct traces count once when they are near-duplicates by the filter's own
measure (MinHash Jaccard of word shingles, :mod:`distill.minhash`). A problem that used all
``max_samples`` without one correct trace gets ``rationalize_samples`` rationalization requests
(asked again with the answer as a hint). Sample indices are handed out in order per problem, so a
resumed run continues where the file stops and never asks again for a problem that has ``k``.
Pure: the verifier is passed in as ``judge(trace) -> True | False | None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from distill.artifacts import Trace
from distill.minhash import jaccard, sketch

__all__ = ["UntilCorrect", "CorrectTally", "ProblemTally"]


@dataclass(frozen=True)
class UntilCorrect:
    """The policy: stop a problem at ``k`` distinct correct traces or ``max_samples`` drawn."""

    k: int
    max_samples: int
    first_wave: int = 1
    rationalize: bool = False
    rationalize_samples: int = 1
    near_threshold: float = 0.85
    shingle: int = 5
    sketch_size: int = 64


@dataclass
class ProblemTally:
    """What one problem has: samples drawn (rationalizations apart), distinct correct ones, in flight."""

    drawn: int = 0
    rationalized: int = 0
    correct: int = 0
    rationalized_correct: int = 0
    in_flight: int = 0
    next_index: int = 0
    sketches: list[list[int]] = field(default_factory=list)


class CorrectTally:
    """Per-problem tallies under one :class:`UntilCorrect` policy (keys only: no trace text is kept)."""

    def __init__(self, policy: UntilCorrect, judge: Callable[[dict], bool | None]):
        if policy.k < 1 or policy.max_samples < policy.k or policy.first_wave < 1:
            raise ValueError("until_correct: need 1 <= k <= max_samples and first_wave >= 1")
        self.policy, self.judge = policy, judge
        self.problems: dict[str, ProblemTally] = {}

    def _get(self, problem_id: str) -> ProblemTally:
        return self.problems.setdefault(problem_id, ProblemTally())

    def seen(self, trace: Trace, *, was_in_flight: bool = False) -> bool | None:
        """Count a finished trace (resumed or new); return whether it counted as a new distinct correct one."""
        tally = self._get(str(trace["id"]))
        if was_in_flight:
            tally.in_flight = max(0, tally.in_flight - 1)
        tally.next_index = max(tally.next_index, int(trace["sample"]) + 1)
        is_rationalized = bool(trace.get("rationalized"))
        if is_rationalized:
            tally.rationalized += 1
        else:
            tally.drawn += 1
        if trace.get("error"):
            return None
        verdict = self.judge(trace)
        if verdict is not True:
            return verdict
        words = f"{trace.get('reasoning') or ''}\n{trace.get('content') or ''}".lower().split()
        sig = sketch(words, self.policy.shingle, self.policy.sketch_size)
        if any(jaccard(sig, other) >= self.policy.near_threshold for other in tally.sketches):
            return False
        tally.sketches.append(sig)
        if is_rationalized:
            tally.rationalized_correct += 1
        else:
            tally.correct += 1
        return True

    def next_samples(self, problem_id: str) -> list[tuple[int, bool]]:
        """``(sample index, is_rationalization)`` pairs to request now; marks them in flight."""
        tally, policy = self._get(problem_id), self.policy
        if tally.in_flight or tally.correct + tally.rationalized_correct >= policy.k:
            return []  # wait for what is in flight before deciding: it may settle the problem
        if tally.drawn < policy.first_wave:
            want, rationalize = policy.first_wave - tally.drawn, False
        elif tally.drawn < policy.max_samples:
            # As many as are still needed, never past the ceiling: a problem short of k by 2 asks for 2.
            want, rationalize = min(policy.k - tally.correct, policy.max_samples - tally.drawn), False
        elif policy.rationalize and tally.correct == 0 and tally.rationalized < policy.rationalize_samples:
            want, rationalize = policy.rationalize_samples - tally.rationalized, True
        else:
            return []
        start = tally.next_index
        tally.next_index += want
        tally.in_flight += want
        return [(start + i, rationalize) for i in range(want)]

    def summary(self) -> dict[str, float | int]:
        """Problems that reached k, that stayed unsolved, rationalized, and samples spent per solved problem."""
        k, tallies = self.policy.k, list(self.problems.values())
        solved = [t for t in tallies if t.correct >= k]
        spent = sum(t.drawn for t in solved)
        return {
            "problems": len(tallies), "reached_k": len(solved),
            "partly_solved": sum(1 for t in tallies if 0 < t.correct < k),
            "rationalized": sum(1 for t in tallies if t.correct == 0 and t.rationalized_correct),
            "unsolved": sum(1 for t in tallies if t.correct == 0 and not t.rationalized_correct),
            "samples": sum(t.drawn for t in tallies), "rationalizations": sum(t.rationalized for t in tallies),
            "samples_per_solved": round(spent / len(solved), 3) if solved else 0.0,
        }
