"""Scores kept with their traces: the record field, the refusal of another student's scores, aggregates (no torch).

Usage:
    rec["learnability"] = scored(key, identity, scores, precision)   # the field filter writes on a trace
    reuse = reusable(rec, key, path, line)      # its scores if computed for this key; raises if for another
    aggregate([rec["learnability"], ...])       # one teacher's RSR, local naturalness, mean surprisal
    card_lines({card_student(r) for r in rows})   # the dataset card's sentence naming the student

Each scored trace carries ``{"for": KEY, "student": ..., "rsr": ..., ...}``: KEY digests the
student's weights, vocabulary, chat template, every rendering/scoring setting, the precision and
the scoring code (:func:`distill.learnability.scorer.scoring_identity`), so scores made for another
student, other settings or by other code are never taken for this one's: they are refused with the
file and line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from distill.errors import InputError
from distill.learnability.config import LOWER_IS_BETTER

FIELD = "learnability"
SCORE_NAMES = ("rsr", "local_naturalness", "mean_surprisal")


def scored(key: str, identity: dict, scores: dict | None, precision: str, skipped: str | None = None) -> dict:
    """The ``learnability`` field of one trace (``skipped``: why it has no scores, e.g. too_long)."""
    field = {"for": key, "student": identity["student"], "hub_id": identity.get("hub_id"), "precision": precision}
    if scores is None:
        return {**field, "skipped": skipped or "not_trained"}
    return {**field, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in scores.items()}}


def reusable(rec: dict, key: str, path: str | Path, line: int) -> dict | None:
    """The record's scores when they were computed for ``key``; None when it has none.

    Raises :class:`InputError` when they were computed for another student or other settings: a
    score only means something for the student that reads the trace.
    """
    field = rec.get(FIELD)
    if field is None:
        return None
    if not isinstance(field, dict) or "for" not in field:
        raise InputError("expected an object with a 'for' key (the scoring key)", path=path, line=line, field=FIELD)
    if field["for"] != key:
        raise InputError(f"scored for student {field.get('student')!r} under key {field['for']}, not for this student"
                         f" and settings (key {key}): scores are not reused across students; score the traces"
                         " before they were scored (the generate output) or drop the field", path=path, line=line,
                         field=FIELD)
    return field


def value(field: dict | None, by: str) -> float | None:
    """The score ``by`` oriented so that higher is more learnable (None: not scored)."""
    if not field or field.get(by) is None:
        return None
    return -field[by] if LOWER_IS_BETTER[by] else field[by]


def aggregate(fields: list[dict]) -> dict[str, Any]:
    """Dataset-level scores of one teacher's traces.

    RSR as the reference code aggregates it (mean of per-trace mean ranks over mean of per-trace
    mean surprisals, arXiv 2601.14249 App. A.8); local naturalness averaged over traces ("aggregating
    local scores across prompts", arXiv 2510.03988); mean surprisal averaged over traces.
    """
    done = [f for f in fields if f.get("rsr") is not None]
    if not done:
        return {"traces": len(fields), "scored": 0, "rsr": None, "local_naturalness": None, "mean_surprisal": None,
                "mean_tokens": None}
    n = len(done)
    mean = lambda key: sum(f[key] for f in done) / n  # noqa: E731
    natural = [f["local_naturalness"] for f in done if f.get("local_naturalness") is not None]
    return {"traces": len(fields), "scored": n, "rsr": mean("mean_rank") / max(mean("mean_surprisal"), 1e-12),
            "local_naturalness": sum(natural) / len(natural) if natural else None,
            "mean_surprisal": mean("mean_surprisal"), "mean_tokens": mean("tokens")}


def card_student(rec: dict) -> str | None:
    """Whom a trace's scores are for, as the dataset card names them (None: the trace has none)."""
    field = rec.get(FIELD)
    return f"{field.get('hub_id') or field.get('student')} (scoring key {field.get('for')})" \
        if isinstance(field, dict) else None


def card_lines(students: Iterable[str]) -> list[str]:
    """The dataset card's note on the ``learnability`` column: which student the scores are for.

    ``students``: :func:`card_student` of the kept traces (counted as publish reads them, never held)."""
    students = sorted(set(students) - {None})
    if not students:
        return []
    return ["## Learnability scores", "",
            f"The `learnability` column holds scores computed for the student {', '.join(students)}, on exactly "
            "the tokens it was trained on: `rsr` (Rank-Surprisal Ratio, arXiv 2601.14249; lower is more learnable), "
            "`local_naturalness` (arXiv 2510.03988; higher is more natural) and `mean_surprisal` (nats per token). "
            "They describe these traces for that student only; another student reads them differently.", ""]
