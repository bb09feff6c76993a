"""Resume state of a traces file: which (id, sample) pairs are settled, so a re-run never re-pays them.

Usage:
    state = scan_traces("traces.jsonl", on_truncated="keep", ceiling=131072)
    state.is_done("p-1", 0)          # never request this pair again

The file is append-only, so a pair may have several lines: failed attempts (``error`` set)
followed, on a later run, by the good one. Generate reads it with the rule every stage reads
it with (:func:`distill.artifacts.latest_per_pair`): **the last record of a pair wins**. A
record dropped as truncated (``on_truncated=drop``) has ``error.type == "truncated"``: it is
done (not re-paid) unless a later run asks for ``on_truncated=retry``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from distill.artifacts import Spend, is_failed, latest_per_pair, read_records


def is_complete(record: dict, on_truncated: str, ceiling: int) -> bool:
    """Whether ``record`` settles its (id, sample) pair under the current truncation policy."""
    if is_failed(record):
        return False
    if record.get("truncated") and on_truncated == "retry":
        return int(record.get("max_tokens") or 0) >= ceiling  # already asked for the most we may
    return True


@dataclass
class TraceState:
    """What an existing traces file already holds (keys only: memory grows with pairs, not text)."""

    done: set[tuple[str, int]] = field(default_factory=set)
    failed: set[tuple[str, int]] = field(default_factory=set)
    lines: int = 0
    cost: float = 0.0  # everything this file has cost so far (max_cost_usd counts it)

    def is_done(self, problem_id: str, sample: int) -> bool:
        return (problem_id, sample) in self.done


def scan_traces(path: str | Path, on_truncated: str = "keep", ceiling: int = 1 << 30) -> TraceState:
    """Read ``path`` (if any) into a :class:`TraceState`; the last record of each pair wins."""
    state = TraceState()
    path = Path(path)
    if not path.exists():
        return state

    spend = Spend()  # every line costs, superseded ones too
    # A torn last line is skipped here and cut by the appender.
    settled = latest_per_pair(spend.counting(read_records(path), path),
                              keep=lambda _line, rec: is_complete(rec, on_truncated, ceiling), path=path)
    state.lines, state.cost = spend.responses, spend.cost_usd
    state.done = {key for key, ok in settled.items() if ok}
    state.failed = {key for key, ok in settled.items() if not ok}
    return state
