"""Resume state of a traces file: which (id, sample) pairs are done, and how readers pick records.

Usage:
    state = scan_traces("traces.jsonl", on_truncated="keep", ceiling=131072)
    state.is_done("p-1", 0)          # never request this pair again
    for trace in iter_good_traces("traces.jsonl"): ...   # what filter / finetune read

The file is append-only, so a pair may have several lines: failed attempts (``error`` set)
followed, on a later run, by the good one. Rule for readers: **the last record of a pair wins**;
since a done pair is never requested again, a pair has at most one good record (``error`` null),
except that ``on_truncated=retry`` may supersede a kept truncated trace with a longer one.
``iter_good_traces`` applies the rule. A record dropped as truncated
(``on_truncated=drop``) has ``error.type == "truncated"``: it is done (not re-paid) unless a
later run asks for ``on_truncated=retry``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import InputError
from distill.records import read_jsonl


def is_complete(record: dict, on_truncated: str, ceiling: int) -> bool:
    """Whether ``record`` settles its (id, sample) pair under the current truncation policy."""
    error = record.get("error")
    if error and (error.get("type") if isinstance(error, dict) else None) != "truncated":
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
    for line, record in read_jsonl(path):  # a torn last line is skipped here and cut by the appender
        state.lines += 1
        key = pair_key(record, path, line)
        state.cost += record_cost(record, path, line)
        if is_complete(record, on_truncated, ceiling):
            state.done.add(key)
            state.failed.discard(key)
        elif key not in state.done:
            state.failed.add(key)
    return state


def iter_good_traces(path: str | Path) -> Iterator[dict]:
    """The last record of each (id, sample) pair when it is good, in file order.

    Two streaming passes (the first keeps only each pair's last line number), so a truncated
    trace superseded by a later ``on_truncated=retry`` run is not read twice.
    """
    last: dict[tuple[str, int], int] = {}
    for line, record in read_jsonl(path):
        last[pair_key(record, path, line)] = line
    for line, record in read_jsonl(path):
        key = pair_key(record, path, line)
        if last.get(key) == line and not record.get("error"):
            yield record


def pair_key(record: dict, path: str | Path, line: int) -> tuple[str, int]:
    """``(id, sample)`` of a trace record, or InputError naming the line and the mistyped field."""
    ident, sample = record.get("id"), record.get("sample", 0)
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        raise InputError(f"id must be a string, got {type(ident).__name__}", path=path, line=line, field="id")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        raise InputError(f"sample must be a non-negative integer, got {sample!r}"[:120], path=path, line=line,
                         field="sample")
    usage = record.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise InputError(f"usage must be an object, got {type(usage).__name__}", path=path, line=line, field="usage")
    return str(ident), sample


def record_cost(record: dict, path: str | Path, line: int) -> float:
    cost = record.get("cost_usd")
    if cost is None:
        return 0.0
    if not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost < 0:
        raise InputError(f"cost_usd must be a non-negative number, got {cost!r}"[:120], path=path, line=line,
                         field="cost_usd")
    return float(cost)
