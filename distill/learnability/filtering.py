"""The filter's learnability step: score the traces that passed every check, then select among them.

Usage:
    student = check_ready(cfg)                         # before the filter pays for anything
    stats = score_and_select(cfg, traces, cache_dir, hashes, winners, decisions, read, student)

Runs after the checks, dedup and the per-problem cap have decided (``per_problem.policy=learnable``
leaves the cap to this step). Scores are cached per trace line under the scoring key
(``filter-cache/learnability-KEY.jsonl``) and reused from an input record scored for the same key;
an input record scored for another student stops the run. Each surviving trace's verdict gets
a ``learnability`` entry, which the filter writes as a field of the trace.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.errors import ConfigError, InputError
from distill.learnability.selection import Scored, select
from distill.learnability.store import FIELD, reusable, scored, value
from distill.records import JsonlAppender, read_jsonl

if TYPE_CHECKING:  # torch loads only when scoring runs
    from distill.learnability.scorer import Identified

log = logging.getLogger(__name__)


def check_ready(cfg: Any) -> Identified | None:
    """Refuse a learnability section that cannot run, before anything is measured or judged: the student
    is resolved and everything its key needs is read (tokenizer, weight files), its weights not loaded.
    Returns what was read, for :func:`score_and_select` (None when learnability is off)."""
    learn = cfg.learnability
    if not learn.enabled:
        return None
    if not learn.student:
        raise ConfigError("learnability.student is not set: name the student the traces are scored for")
    from distill.learnability.scorer import identify

    return identify(learn)


def score_and_select(cfg: Any, traces: Path, cache_dir: Path, hashes: dict[int, str], winners: dict[tuple, int],
                     decisions: dict[int, dict], read: Callable[[int], dict], student: Identified | None = None) -> dict:
    """Score the kept candidates (cached), mark each decision's drop by the selection; returns stats.
    ``student``: :func:`check_ready`'s answer (else the student is identified again)."""
    from distill.learnability.scorer import Scorer

    learn = cfg.learnability
    alive = {line: key for key, line in winners.items() if decisions[line]["drop"] is None}
    if not alive:
        return {"scored": 0, "reused": 0, "dropped": {}}
    scorer = Scorer.load(learn, progress=cfg.progress, identified=student)
    fields, fresh = _fields(cfg, scorer, traces, cache_dir / f"learnability-{scorer.key}.jsonl", hashes,
                            sorted(alive), read)
    cands = [Scored(line, str(alive[line][0]), int(alive[line][1]), int(fields[line].get("tokens") or 0),
                    value(fields[line], learn.by)) for line in sorted(alive)]
    pp = cfg.per_problem
    notes: list[str] = []
    dropped = select(cands, pp.max if pp.policy == "learnable" else None, learn.top_share,
                     learn.long_share, learn.long_tokens, notes)
    for note in notes:
        log.warning("learnability: %s", note)
    if len(dropped) == len(alive):  # an empty kept file is never what was asked for: stop before writing it
        raise ConfigError(f"learnability: the selection dropped all {len(alive)} traces that passed the checks"
                          f" ({dict(Counter(dropped.values()))}): loosen per_problem.max, learnability.top_share"
                          " or learnability.long_share")
    for line in alive:
        decisions[line][FIELD] = fields[line]
        if line in dropped:
            decisions[line]["drop"] = dropped[line]
    log.info("learnability: %d traces scored for %s (%d reused), %d dropped by selection", fresh,
             learn.student, len(alive) - fresh, len(dropped))
    return {"key": scorer.key, "for": scorer.identity, "by": learn.by, "scored": fresh,
            "reused": len(alive) - fresh, "dropped": dict(Counter(dropped.values())),
            **({"mix_skipped": notes[0]} if notes else {})}


def _fields(cfg: Any, scorer: Any, traces: Path, cache_file: Path, hashes: dict[int, str], lines: list[int],
            read: Callable[[int], dict]) -> tuple[dict[int, dict], int]:
    """Each line's field: from the record (same key), the cache, or scored now (then cached); and how many new."""
    cached = _load(cache_file) if cfg.cache else {}
    fields, todo = {}, []
    for line in lines:
        rec = read(line)
        field = reusable(rec, scorer.key, traces, line) or cached.get(hashes[line])
        if field is not None:
            fields[line] = field
        else:
            todo.append((line, rec))
    fresh = _score(scorer, todo, traces)
    if cfg.cache and fresh:
        with JsonlAppender(cache_file) as out:
            for line, field in fresh.items():
                out.write({"h": hashes[line], "r": field})
    return {**fields, **fresh}, len(fresh)


def _score(scorer: Any, todo: list[tuple[int, dict]], traces: Path) -> dict[int, dict]:
    """Fields for the records not scored yet: finetune's sample and rendering, then the forward passes."""
    from distill.examples import sample_of

    precision = "bf16" if scorer.bf16 else "fp32"
    out: dict[int, dict] = {}
    samples = []
    for line, rec in todo:
        sample, reason = sample_of(rec, line, traces, scorer.cfg.system_prompt,
                                   "{reasoning}" in scorer.cfg.reasoning_format)
        if sample is None:
            out[line] = scored(scorer.key, scorer.identity, None, precision, reason)
        else:
            samples.append(sample)
    encoded = scorer.encode(samples)
    for sample in samples:
        out.setdefault(sample.line, scored(scorer.key, scorer.identity, None, precision, "too_long"))
    for line, scores in zip(encoded.lines, scorer.score(encoded.examples)):
        out[line] = scored(scorer.key, scorer.identity, scores, precision)
    return out


def _load(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        return {rec["h"]: rec["r"] for _, rec in read_jsonl(path) if "h" in rec and "r" in rec}
    except InputError as exc:  # a damaged cache only costs time
        log.warning("ignoring the learnability cache (%s)", exc)
        return {}
