"""Scores from per-sample outputs: pass@1, sound accuracy, unbiased pass@k, shares, breakdowns, intervals. Pure.

Usage:
    from distill.evaluate.metrics import summarise, compare_outputs, pass_at_k
    report = summarise(records)                  # records: outputs.jsonl rows
    diff = compare_outputs(before, after, confidence=0.95, resamples=2000)
    compare_outputs(before, after, field="sound")  # the same on sound accuracy
    chance_rates(eval_problems, train_problems)  # per family: always the most common training answer

Sound accuracy counts a sample only when it is correct and every checkable step of its reasoning
is true (the ``sound`` field of an outputs.jsonl row, see distill.soundness).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable

__all__ = ["pass_at_k", "wilson_interval", "per_problem", "summarise", "by_family", "chance_rates",
           "family_rows", "FAMILY_HEADER", "compare_outputs"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al. 2021): 1 - C(n-c,k)/C(n,k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    # The product form avoids huge binomials: prod_{i=n-c+1}^{n} (1 - k/i).
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def wilson_interval(successes: float, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (well-behaved near 0, 1 and for small n)."""
    if total == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= total else min(1.0, centre + half)
    return low, high


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def per_problem(records: Iterable[dict], field: str = "correct") -> dict[str, dict]:
    """Group scored samples by problem id: ``{id: {n, c, s, kind, source, family}}`` (errors left out).

    ``c`` counts samples whose ``field`` is true (``correct``, or ``sound`` to score soundness);
    ``s`` counts sound samples.
    """
    groups: dict[str, dict] = {}
    for rec in records:
        if rec.get("error"):
            continue
        g = groups.setdefault(rec["id"], {"n": 0, "c": 0, "s": 0, "kind": rec.get("kind") or "-",
                                          "source": rec.get("source") or "-", "family": rec.get("family")})
        g["n"] += 1
        g["c"] += 1 if rec.get(field) is True else 0
        g["s"] += 1 if rec.get("sound") is True else 0
    return groups


def _ks(n_min: int) -> list[int]:
    ks, k = [], 1
    while k <= n_min:
        ks.append(k)
        k *= 2
    if n_min not in ks:
        ks.append(n_min)
    return ks


def summarise(records: list[dict], confidence: float = 0.95) -> dict:
    """The headline numbers of an eval: pass@1 (+ Wilson interval), pass@k, shares, per source/kind."""
    done = [r for r in records if not r.get("error")]
    groups = per_problem(done)
    n_problems = len(groups)
    pass1 = sum(g["c"] / g["n"] for g in groups.values()) / n_problems if n_problems else 0.0
    n_min = min((g["n"] for g in groups.values()), default=0)
    pass_k = {f"pass@{k}": _mean(pass_at_k(g["n"], g["c"], k) for g in groups.values()) for k in _ks(n_min)} \
        if n_min else {}
    lo, hi = wilson_interval(pass1 * n_problems, n_problems, confidence)
    sound = sum(g["s"] / g["n"] for g in groups.values()) / n_problems if n_problems else 0.0
    reasons: dict[str, int] = defaultdict(int)
    for r in done:
        reasons[r.get("reason") or "-"] += 1
    return {
        "problems": n_problems,
        "samples": len(done),
        "errors": len(records) - len(done),
        "pass@1": pass1,
        "pass@1_interval": {"low": lo, "high": hi, "method": "wilson", "confidence": confidence},
        "pass@k": pass_k,
        "sound": sound,
        "sound_interval": _interval(sound * n_problems, n_problems, confidence),
        "unsound_correct": sum(1 for r in done if r.get("correct") is True and r.get("sound") is False),
        "answered": _mean(r.get("extracted") is not None and not r.get("truncated") for r in done),
        "truncated": _mean(bool(r.get("truncated")) for r in done),
        "undecided": _mean(r.get("correct") is None for r in done),
        "mean_reasoning_tokens": _mean(r.get("reasoning_tokens") or 0 for r in done),
        "mean_completion_tokens": _mean(r.get("completion_tokens") or 0 for r in done),
        "reasons": dict(sorted(reasons.items())),
        "by_source": _breakdown(groups, "source"),
        "by_kind": _breakdown(groups, "kind"),
        "by_family": by_family(groups, confidence),
    }


def by_family(groups: dict[str, dict], confidence: float = 0.95) -> dict[str, dict]:
    """Per problem family (problems without one are left out): pass@1 and sound, with Wilson intervals."""
    buckets: dict[str, list[dict]] = defaultdict(list)
    for g in groups.values():
        if g.get("family"):
            buckets[g["family"]].append(g)
    out = {}
    for name, gs in sorted(buckets.items()):
        n = len(gs)
        pass1 = sum(g["c"] / g["n"] for g in gs) / n
        sound = sum(g["s"] / g["n"] for g in gs) / n
        out[name] = {"problems": n, "pass@1": pass1, "pass@1_interval": _interval(pass1 * n, n, confidence),
                     "sound": sound, "sound_interval": _interval(sound * n, n, confidence)}
    return out


def chance_rates(eval_problems: list[dict], train_problems: list[dict]) -> dict[str, dict]:
    """Per family, the pass@1 of always giving the family's most common training answer."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in train_problems:
        if p.get("family"):
            counts[p["family"]][str(p["answer"])] += 1
    out = {}
    for family in sorted({p["family"] for p in eval_problems if p.get("family")}):
        golds = [str(p["answer"]) for p in eval_problems if p.get("family") == family]
        if not counts.get(family):
            continue
        answer = max(sorted(counts[family]), key=lambda a: counts[family][a])  # ties: the first in order
        out[family] = {"answer": answer, "pass@1": sum(g == answer for g in golds) / len(golds),
                       "train_problems": sum(counts[family].values())}
    return out


FAMILY_HEADER = ["family", "problems", "chance", "pass@1 before", "pass@1 after", "sound before", "sound after"]


def family_rows(before: dict | None, after: dict | None) -> list[list[str]]:
    """Rows under :data:`FAMILY_HEADER` from two ``metrics.by_family`` dicts: value [Wilson interval]."""
    before, after = before or {}, after or {}
    rows = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name) or {}, after.get(name) or {}
        chance = (a.get("chance") or b.get("chance") or {}).get("pass@1")
        rows.append([name, str(a.get("problems") or b.get("problems") or "-"),
                     "-" if chance is None else f"{chance:.0%}",
                     _with_interval(b, "pass@1"), _with_interval(a, "pass@1"),
                     _with_interval(b, "sound"), _with_interval(a, "sound")])
    return rows


def _with_interval(scores: dict, name: str) -> str:
    if scores.get(name) is None:
        return "-"
    ci = scores.get(f"{name}_interval") or {}
    span = f" [{ci['low']:.0%}, {ci['high']:.0%}]" if "low" in ci else ""
    return f"{scores[name]:.0%}{span}"


def _interval(successes: float, total: int, confidence: float) -> dict:
    lo, hi = wilson_interval(successes, total, confidence)
    return {"low": lo, "high": hi, "method": "wilson", "confidence": confidence}


def _breakdown(groups: dict[str, dict], key: str) -> dict[str, dict]:
    buckets: dict[str, list[float]] = defaultdict(list)
    for g in groups.values():
        buckets[g[key]].append(g["c"] / g["n"])
    return {name: {"problems": len(vals), "pass@1": sum(vals) / len(vals)} for name, vals in sorted(buckets.items())}


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def compare_outputs(before: list[dict], after: list[dict], confidence: float = 0.95,
                    resamples: int = 2000, seed: int = 0, field: str = "correct") -> dict:
    """Paired comparison over the problems both evals scored: difference of pass@1 (``field="sound"``:
    of sound accuracy) with a paired bootstrap interval (problems resampled with replacement, the
    same draw for both sides)."""
    a, b = per_problem(before, field), per_problem(after, field)
    common = sorted(set(a) & set(b))
    if not common:
        return {"paired_problems": 0, "before": None, "after": None, "difference": None, "interval": None}
    xs = [a[i]["c"] / a[i]["n"] for i in common]
    ys = [b[i]["c"] / b[i]["n"] for i in common]
    diffs = [y - x for x, y in zip(xs, ys)]
    n = len(diffs)
    rng = random.Random(seed)
    boots = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = boots[min(resamples - 1, int(math.floor(tail * resamples)))]
    high = boots[min(resamples - 1, int(math.ceil((1 - tail) * resamples)) - 1)]
    return {
        "paired_problems": n,
        "before": sum(xs) / n,
        "after": sum(ys) / n,
        "difference": sum(diffs) / n,
        "interval": {"low": low, "high": high, "method": "paired bootstrap", "confidence": confidence,
                     "resamples": resamples},
        "improved": sum(1 for d in diffs if d > 0),
        "regressed": sum(1 for d in diffs if d < 0),
    }
