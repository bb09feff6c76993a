"""Shared bits of the hostile-input tests: a valid traces file, a problems file, a tree snapshot.

Usage:
    from hostile_helpers import write_traces, write_problems, snapshot
    before = snapshot(tmp_path); ...; assert snapshot(tmp_path) == before
"""

from __future__ import annotations

import json
from pathlib import Path


def trace(i: int, sample: int = 0, **extra) -> dict:
    row = {"schema": 1, "id": f"q{i}", "sample": sample, "question": f"What is {i} + 1?", "answer": str(i + 1),
           "kind": "math", "messages": [{"role": "user", "content": f"What is {i} + 1?"}],
           "reasoning": f"We add one to {i}. " * 8, "content": f"The answer is \\boxed{{{i + 1}}}.",
           "finish_reason": "stop", "truncated": False, "model": "m", "usage": {"completion_tokens": 30},
           "cost_usd": 0.0001, "error": None}
    row.update(extra)
    return row


def write_traces(path: Path, rows: list[dict] | None = None) -> Path:
    rows = rows if rows is not None else [trace(i) for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_problems(path: Path, n: int = 4) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Question number {i}?", "answer": "7"}) + "\n"
                            for i in range(n)))
    return path


def snapshot(root: Path, ignore_locks: bool = True) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under ``root``; lock files (``.*.lock``, ``.lock``) left out:
    they name the last holder and are never data."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        if ignore_locks and p.name.endswith(".lock") and p.name.startswith("."):
            continue
        out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out
