"""An eval's outputs scored: the :class:`~distill.metrics.Metrics` record with Wilson intervals, pass@k,
avg@n, chance rates and the paired bootstrap between two evals. Pure.

Usage:
    from distill.estimates import summarise, compare_outputs, pass_at_k, avg_at_n, wilson_interval, chance_rates
    m = summarise(records)                         # records: outputs.jsonl rows -> Metrics
    diff = compare_outputs(before, after, confidence=0.95, resamples=2000, field="sound")
    pass_at_k(n=16, c=4, k=8); wilson_interval(3, 10)   # (low, high)
    chance_rates(eval_problems, train_problems)    # per family: always the most common training answer

Each accuracy of the record (:func:`distill.metrics.accuracy_specs`) is scored per problem first (the
share of its samples whose ``sample_field`` is true), then averaged over problems, overall and per
breakdown group. Failed requests (``error`` set) are counted in ``errors`` and never scored.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable

from distill.metrics import Group, Metrics, Score, Spec, accuracy_specs, breakdown_specs

__all__ = ["summarise", "pass_at_k", "avg_at_n", "wilson_interval", "chance_rates", "compare_outputs"]


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


def compare_outputs(before: list[dict], after: list[dict], confidence: float = 0.95,
                    resamples: int = 2000, seed: int = 0, field: str = "correct") -> dict:
    """Paired comparison over the problems both evals scored: difference of pass@1 (``field="sound"``:
    of sound accuracy) with a paired bootstrap interval (problems resampled with replacement, the
    same draw for both sides)."""
    a, b = _problems(before, [field]), _problems(after, [field])
    common = sorted(set(a) & set(b))
    if not common:
        return {"paired_problems": 0, "before": None, "after": None, "difference": None, "interval": None}
    xs = [a[i]["hits"][field] / a[i]["n"] for i in common]
    ys = [b[i]["hits"][field] / b[i]["n"] for i in common]
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


# ---------------------------------------------------------------- scoring


def summarise(records: list[dict], confidence: float = 0.95) -> Metrics:
    """The record of an eval from its outputs.jsonl rows (failed requests counted, never scored).

    An accuracy after the first is scored only when some sample carries its field (older outputs have no
    ``sound``): None, not 0%.
    """
    done = [r for r in records if not r.get("error")]
    measured = [(name, spec) for i, (name, spec) in enumerate(accuracy_specs())  # the first, pass@1: always
                if i == 0 or any(spec.sample_field in r for r in done)]
    groups = _problems(done, [spec.sample_field for _, spec in measured])
    n_min = min((g["n"] for g in groups.values()), default=0)
    reasons: dict[str, int] = defaultdict(int)
    for r in done:
        reasons[r.get("reason") or "-"] += 1
    scores = {name: _score(list(groups.values()), spec.sample_field, confidence) for name, spec in measured}
    avg, stderr = avg_at_n(groups.values())
    return Metrics(
        problems=len(groups), samples=len(done), errors=len(records) - len(done), **scores,
        pass_at_k={f"pass@{k}": _mean(pass_at_k(g["n"], g["hits"]["correct"], k) for g in groups.values())
                   for k in _ks(n_min)} if n_min else {},
        samples_per_problem=n_min if groups else None, avg_at_n=avg, avg_at_n_stderr=stderr,
        unsound_correct=sum(1 for r in done if r.get("correct") is True and r.get("sound") is False),
        answered=_mean(r.get("extracted") is not None and not r.get("truncated") for r in done),
        truncated=_mean(bool(r.get("truncated")) for r in done),
        undecided=_mean(r.get("correct") is None for r in done),
        mean_reasoning_tokens=_mean(r.get("reasoning_tokens") or 0 for r in done),
        mean_completion_tokens=_mean(r.get("completion_tokens") or 0 for r in done),
        reasons=dict(sorted(reasons.items())),
        **{name: _breakdown(groups, spec, measured, confidence) for name, spec in breakdown_specs()})


def avg_at_n(groups: Iterable[dict], field: str = "correct") -> tuple[float | None, float | None]:
    """avg@n over per-problem groups (mean of each problem's share of correct samples) and its standard error
    across problems (None with fewer than two problems)."""
    shares = [g["hits"][field] / g["n"] for g in groups if g["n"]]
    if not shares:
        return None, None
    mean = sum(shares) / len(shares)
    if len(shares) < 2:
        return mean, None
    variance = sum((x - mean) ** 2 for x in shares) / (len(shares) - 1)
    return mean, math.sqrt(variance / len(shares))


def _problems(records: Iterable[dict], fields: list[str]) -> dict[str, dict]:
    """Per problem id: samples ``n``, how many have each field true (``hits``), source, kind, family.
    Failed requests are left out."""
    groups: dict[str, dict] = {}
    for rec in records:
        if rec.get("error"):
            continue
        g = groups.setdefault(rec["id"], {"n": 0, "hits": dict.fromkeys(fields + ["correct"], 0),
                                          "kind": rec.get("kind") or "-", "source": rec.get("source") or "-",
                                          "family": rec.get("family")})
        g["n"] += 1
        for name in g["hits"]:
            g["hits"][name] += rec.get(name) is True
    return groups


def _score(groups: list[dict], sample_field: str, confidence: float) -> Score:
    n = len(groups)
    value = sum(g["hits"][sample_field] / g["n"] for g in groups) / n if n else 0.0
    low, high = wilson_interval(value * n, n, confidence)
    return Score(value, low, high, "wilson", confidence)


def _breakdown(groups: dict[str, dict], spec: Spec, measured: list[tuple[str, Spec]],
               confidence: float) -> dict[str, Group]:
    """Per source, kind or family (problems without a family are left out of the family breakdown)."""
    group_key = spec.key.removeprefix("by_")
    buckets: dict[str, list[dict]] = defaultdict(list)
    for g in groups.values():
        if g.get(group_key):
            buckets[g[group_key]].append(g)
    out = {}
    for name, gs in sorted(buckets.items()):
        if spec.every_metric:
            scores = {s.key: _score(gs, s.sample_field, confidence) for _, s in measured}
        else:  # a compact breakdown: the headline accuracy, no interval
            scores = {s.key: Score(_score(gs, s.sample_field, confidence).value) for _, s in measured[:1]}
        out[name] = Group(problems=len(gs), scores=scores)
    return out


def _ks(n_min: int) -> list[int]:
    ks, k = [], 1
    while k <= n_min:
        ks.append(k)
        k *= 2
    if n_min not in ks:
        ks.append(n_min)
    return ks


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
