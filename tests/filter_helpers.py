"""Trace records and one-call filter runs for the filter tests.

Usage:
    from filter_helpers import trace, run_filter
    from records_factory import write_traces
    write_traces(tmp_path / "traces.jsonl", [trace("p1", 0), trace("p1", 1, content="\\boxed{7}")])
    stats, kept, rejected = run_filter(tmp_path, ["checks.max_tokens=100"])
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.config import load_config
from distill.filter import FilterConfig, run
import records_factory

GOOD = ("Natalia sold 48 clips in April. In May she sold half as many, so 48 / 2 = 24 clips. "
        "Altogether she sold 48 + 24 = 72 clips in April and May, which answers the question.")


def trace(pid: str = "p1", sample: int = 0, reasoning: str | None = GOOD, content: str | None = "So \\boxed{72}",
          answer: str = "72", kind: str = "gsm8k", question: str | None = None, **extra) -> dict:
    """A gsm8k trace (records_factory's record) whose reasoning passes the quality checks."""
    source = {"id": pid, "question": question or f"Natalia sold clips to 48 of her friends ({pid}). How many in total?",
              "answer": answer, "kind": kind}
    return records_factory.trace(source, sample, messages=[{"role": "user", "content": "q"}], reasoning=reasoning,
                                 content=content, **extra)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_filter(tmp: Path, overrides: list[str] = (), traces: str = "traces.jsonl", out: str = "out/kept.jsonl"):
    """Run the stage on tmp/traces; returns (stats, kept records, rejected records)."""
    cfg = load_config(FilterConfig, None, [f"traces={tmp / traces}", f"out={tmp / out}", "progress=false",
                                           "plot=false", *overrides])
    kept_path = run(cfg)
    stats = json.loads((kept_path.parent / "stats.json").read_text())
    return stats, read(kept_path), read(kept_path.parent / "rejected.jsonl")


def reasons(rejected: list[dict]) -> dict[tuple, str]:
    return {(r["id"], r["sample"]): r["verdict"]["reason"] for r in rejected}
