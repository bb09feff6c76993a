"""What a benchmark eval adds to its report: the protocol, the keys that differ from it, the set's
provenance and licence, and per-problem results (samples, correct, truncated).

Usage:
    from distill.benchmarks.report import attach, overrides, benchmark_settings, per_problem
    overrides(cfg, protocol)                  # {"samples": {"protocol": 64, "used": 4}} ({} when comparable)
    settings = benchmark_settings(cfg, protocol, source)   # report.json's settings["benchmark"]
    rows = per_problem(records)               # one row per problem id, for per_problem.jsonl
    attach(report.settings, cfg, source, records, folder)  # both, plus folder/per_problem.jsonl

``cfg`` is anything with EvalConfig's sampling attributes, ``records`` are outputs.jsonl rows; only
:func:`attach` writes (per_problem.jsonl, replaced whole) and warns. A report whose ``overrides``
is not empty is not comparable with published figures, and says so.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from distill.benchmarks import SAMPLING_KEYS, Protocol, parse_dates, protocol_for

log = logging.getLogger(__name__)

__all__ = ["attach", "overrides", "benchmark_settings", "per_problem"]


def overrides(cfg: Any, protocol: Protocol) -> dict[str, dict]:
    """Each sampling key whose value differs from the protocol's (and a system prompt, which it has none of)."""
    expected = protocol.sampling()
    out = {key: {"protocol": expected[key], "used": getattr(cfg, key)}
           for key in SAMPLING_KEYS if getattr(cfg, key) != expected[key]}
    if getattr(cfg, "system_prompt", None):
        out["system_prompt"] = {"protocol": None, "used": cfg.system_prompt}
    dates = getattr(cfg, "benchmark_dates", None)
    if dates and protocol.dates and parse_dates(dates) != protocol.dates:
        out["benchmark_dates"] = {"protocol": "..".join(protocol.dates), "used": dates}
    if getattr(cfg, "limit", None) is not None:
        out["limit"] = {"protocol": None, "used": cfg.limit}
    return out


def benchmark_settings(cfg: Any, protocol: Protocol, source: dict) -> dict:
    """report.json's ``settings["benchmark"]``: name, protocol, overrides, where the set came from."""
    changed = overrides(cfg, protocol)
    return {"name": protocol.name, "task_id": protocol.task_id, "dataset": source, "kind": protocol.kind,
            "answer_format": protocol.answer_format,
            "protocol": {**protocol.sampling(), "dates": list(protocol.dates) if protocol.dates else None},
            "overrides": changed, "comparable": not changed}


def per_problem(records: list[dict]) -> list[dict]:
    """Per problem id: samples, correct, truncated, undecided, avg (share correct), in id order."""
    rows: dict[str, dict] = defaultdict(lambda: {"samples": 0, "correct": 0, "truncated": 0, "undecided": 0})
    for rec in records:
        if rec.get("error"):
            continue
        row = rows[rec["id"]]
        row["samples"] += 1
        row["correct"] += rec.get("correct") is True
        row["truncated"] += bool(rec.get("truncated"))
        row["undecided"] += rec.get("correct") is None
    return [{"id": ident, **row, "avg": row["correct"] / row["samples"]} for ident, row in sorted(rows.items())]


def attach(settings: dict, cfg: Any, source: dict | None, records: list[dict], folder: Path) -> dict:
    """Put ``settings["benchmark"]`` in place, write ``folder/per_problem.jsonl``, warn about each override."""
    protocol = protocol_for(cfg.benchmark)
    section = benchmark_settings(cfg, protocol, source or {"dataset": protocol.dataset})
    settings["benchmark"] = section
    for key, change in section["overrides"].items():
        log.warning("benchmark %s: %s=%r differs from the protocol's %r: not comparable with published figures",
                    protocol.name, key, change["used"], change["protocol"])
    tmp = Path(folder) / "per_problem.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row) + "\n" for row in per_problem(records)), encoding="utf-8")
    tmp.replace(Path(folder) / "per_problem.jsonl")
    return section
