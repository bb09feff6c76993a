"""`distill rank-teachers`: how learnable each teacher's traces are for one student, before any training.

Usage:
    distill rank-teachers student=smollm2 traces=a.jsonl,b.jsonl,c.jsonl            # a table, and the pick
    distill rank-teachers student=smollm2 traces=a.jsonl,b.jsonl by=local_naturalness format=json out=rank.json

Each file holds one teacher's traces (generate's output, or filter's kept.jsonl). Only problems
that every file has a trainable trace for are scored, so the teachers are compared on the same
problems; ``problems=N`` draws N of them. Scores are the filter's (same student, same rendering,
same key); a record already scored for this student is reused, one scored for another is refused.
Per family (or source) and overall, the file with the best ``by`` score is picked.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from distill.errors import InputError
from distill.learnability.config import LOWER_IS_BETTER, RankTeachersConfig
from distill.learnability.store import aggregate, reusable, scored
from distill.records import read_jsonl, write_json_atomic


def run(cfg: RankTeachersConfig) -> str:
    """Score the shared problems' traces of every file; returns the table (or JSON) and writes ``out``."""
    from distill.examples import sample_of
    from distill.learnability.scorer import Scorer

    files = [Path(p) for p in cfg.traces]
    for path in files:
        if not path.is_file():
            raise InputError("traces file not found", path=path, field="traces")
    wanted = "{reasoning}" in cfg.reasoning_format
    usable = {path: [(line, rec) for line, rec in read_jsonl(path)
                     if sample_of(rec, line, path, cfg.system_prompt, wanted)[0] is not None] for path in files}
    chosen = _shared(usable, cfg.problems, cfg.seed)
    scorer = Scorer.load(cfg, progress=cfg.progress)
    report: dict[str, Any] = {"student": cfg.student, "key": scorer.key, "for": scorer.identity, "by": cfg.by,
                              "problems": len(chosen), "files": []}
    for path in files:
        rows = [(line, rec) for line, rec in usable[path] if str(rec.get("id")) in chosen]
        fields = _fields(scorer, path, rows, sample_of)
        groups: dict[str, list[dict]] = {}
        for (_, rec), field in zip(rows, fields):
            groups.setdefault(_family(rec), []).append(field)
        report["files"].append({"file": str(path), "overall": aggregate(fields),
                                "by_family": {g: aggregate(f) for g, f in sorted(groups.items())}})
    report["pick"] = _picks(report["files"], cfg.by)
    if cfg.out:
        write_json_atomic(cfg.out, report)
    return json.dumps(report, indent=2) if cfg.format == "json" else table(report)


def _shared(usable: dict[Path, list[tuple[int, dict]]], limit: int | None, seed: int) -> set[str]:
    """Problem ids every file has a trainable trace for (``limit`` of them, drawn with ``seed``)."""
    ids = [{str(rec.get("id")) for _, rec in rows} for rows in usable.values()]
    shared = sorted(set.intersection(*ids)) if ids else []
    if not shared:
        raise InputError("the traces files share no problem with a trainable trace: nothing to compare on",
                         path=", ".join(str(p) for p in usable), field="traces")
    if limit is not None and limit < len(shared):
        shared = sorted(random.Random(seed).sample(shared, limit))
    return set(shared)


def _fields(scorer: Any, path: Path, rows: list[tuple[int, dict]], sample_of: Any) -> list[dict]:
    """The learnability field of each row: reused when scored for this key, else scored now."""
    precision = "bf16" if scorer.bf16 else "fp32"
    out: dict[int, dict] = {}
    samples = []
    for line, rec in rows:
        field = reusable(rec, scorer.key, path, line)
        if field is not None:
            out[line] = field
        else:
            samples.append(sample_of(rec, line, path, scorer.cfg.system_prompt,
                                     "{reasoning}" in scorer.cfg.reasoning_format)[0])
    encoded = scorer.encode(samples)
    for sample in samples:
        out[sample.line] = scored(scorer.key, scorer.identity, None, precision, "too_long")
    for line, scores in zip(encoded.lines, scorer.score(encoded.examples)):
        out[line] = scored(scorer.key, scorer.identity, scores, precision)
    return [out[line] for line, _ in rows]


def _family(rec: dict) -> str:
    return str(rec.get("family") or rec.get("source") or "all")


def _picks(files: list[dict], by: str) -> dict[str, Any]:
    """The best file overall and per family by ``by`` (files without a score never win)."""
    def best(values: list[tuple[str, float | None]]) -> str | None:
        scoredv = [(f, v) for f, v in values if v is not None]
        if not scoredv:
            return None
        sign = 1 if LOWER_IS_BETTER[by] else -1
        return min(scoredv, key=lambda fv: (sign * fv[1], fv[0]))[0]

    families = sorted({g for f in files for g in f["by_family"]})
    return {"overall": best([(f["file"], f["overall"][by]) for f in files]),
            "by_family": {g: best([(f["file"], f["by_family"].get(g, {}).get(by)) for f in files]) for g in families}}


def table(report: dict) -> str:
    """The ranking as a plain-text table, one row per (family, file), then the picks."""
    arrow = {k: "lower is better" if low else "higher is better" for k, low in LOWER_IS_BETTER.items()}
    header = ("family", "traces file", "traces", "tokens", "RSR", "local nat.", "surprisal", "pick")
    rows = []
    for family in ["(all)", *report["pick"]["by_family"]]:
        winner = report["pick"]["overall"] if family == "(all)" else report["pick"]["by_family"][family]
        for f in report["files"]:
            agg = f["overall"] if family == "(all)" else f["by_family"].get(family)
            if agg is None:
                continue
            rows.append((family, Path(f["file"]).name, f"{agg['scored']}/{agg['traces']}", _num(agg["mean_tokens"], 0),
                         _num(agg["rsr"], 3), _num(agg["local_naturalness"], 3), _num(agg["mean_surprisal"], 3),
                         "<-" if f["file"] == winner else ""))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"learnability for student {report['student']} (key {report['key']}), {report['problems']} shared"
             f" problems; picked by {report['by']} ({arrow[report['by']]})", ""]
    lines += ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
              for r in [header, *rows]]
    lines += ["", f"pick: {report['pick']['overall']}"]
    return "\n".join(lines)


def _num(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"
