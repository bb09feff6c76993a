"""What a benchmark eval adds to its report: the protocol, the keys that differ from it, the set's
provenance and licence, and per-problem results (samples, correct, truncated).

Usage:
    from distill.benchmarks.report import attach, overrides, benchmark_settings, per_problem, failed_note
    overrides(cfg, protocol)                  # {"samples": {"protocol": 64, "used": 4}} ({} when kept)
    settings = benchmark_settings(cfg, protocol, source, failed=0, answered=256)  # report.json's settings["benchmark"]
    rows = per_problem(records)               # one row per problem id, for per_problem.jsonl
    attach(report.settings, cfg, source, records, folder)  # both, plus folder/per_problem.jsonl

``cfg`` is anything with EvalConfig's sampling attributes, ``records`` are outputs.jsonl rows; only
:func:`attach` writes (per_problem.jsonl, replaced whole) and warns. A report whose ``overrides``
is not empty, or with failed samples (avg@n is over the answered ones, so a problem whose every
sample failed drops out of it), is not comparable with published figures: ``comparable: false``
and ``not_comparable_because`` says why.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from distill.benchmarks import SAMPLING_KEYS, Protocol, parse_dates, protocol_for

log = logging.getLogger(__name__)

__all__ = ["attach", "overrides", "benchmark_settings", "failed_note", "per_problem"]


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


def benchmark_settings(cfg: Any, protocol: Protocol, source: dict, failed: int = 0, answered: int = 0) -> dict:
    """report.json's ``settings["benchmark"]``: name, protocol, overrides, failed samples, where the set came from."""
    changed = overrides(cfg, protocol)
    why = [f"differs from the protocol in {', '.join(changed)}"] if changed else []
    if failed:
        why.append(failed_note(failed, answered))
    return {"name": protocol.name, "task_id": protocol.task_id, "dataset": source, "kind": protocol.kind,
            "answer_format": protocol.answer_format,
            "protocol": {**protocol.sampling(), "dates": list(protocol.dates) if protocol.dates else None},
            "overrides": changed, "failed_samples": failed, "comparable": not why, "not_comparable_because": why}


def failed_note(failed: int, answered: int) -> str:
    """'64 of 128 samples failed (avg@n is over the 64 answered)': the report's and the card's words."""
    return f"{failed} of {failed + answered} samples failed (avg@n is over the {answered} answered)"


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
    failed = sum(1 for r in records if r.get("error"))
    section = benchmark_settings(cfg, protocol, source or {"dataset": protocol.dataset}, failed, len(records) - failed)
    settings["benchmark"] = section
    for key, change in section["overrides"].items():
        log.warning("benchmark %s: %s=%r differs from the protocol's %r: not comparable with published figures",
                    protocol.name, key, change["used"], change["protocol"])
    if failed:
        log.warning("benchmark %s: %s: not comparable with published figures until a re-run retries them",
                    protocol.name, failed_note(failed, len(records) - failed))
    tmp = Path(folder) / "per_problem.jsonl.tmp"
    tmp.write_text("".join(json.dumps(row) + "\n" for row in per_problem(records)), encoding="utf-8")
    tmp.replace(Path(folder) / "per_problem.jsonl")
    return section
