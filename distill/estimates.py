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
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator

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


def summarise(records: Iterable[dict], confidence: float = 0.95) -> Metrics:
    """The record of an eval from its outputs.jsonl rows (failed requests counted, never scored).

    One pass over ``records`` (an eval streams a million from its file): running counts, and per
    problem a short list (samples, hits, kind, source, family), never the records themselves.
    An accuracy after the first is scored only when some sample carries its field (older outputs have no
    ``sound``): None, not 0%.
    """
    specs = accuracy_specs()
    fields = list(dict.fromkeys([spec.sample_field for _, spec in specs] + ["correct"]))
    tally = _Tally(fields)
    for rec in records:
        tally.add(rec)
    measured = [(name, spec) for i, (name, spec) in enumerate(specs)  # the first, pass@1: always
                if i == 0 or spec.sample_field in tally.carried]
    groups = tally.groups()
    n_min = min((g["n"] for g in groups), default=0)
    scores = {name: _score(groups, spec.sample_field, confidence) for name, spec in measured}
    avg, stderr = avg_at_n(groups)
    done = tally.samples
    return Metrics(
        problems=len(tally.problems), samples=done, errors=tally.errors, **scores,
        pass_at_k={f"pass@{k}": _mean(array("d", (pass_at_k(g["n"], g["hits"]["correct"], k) for g in groups)))
                   for k in _ks(n_min)} if n_min else {},
        samples_per_problem=n_min if tally.problems else None, avg_at_n=avg, avg_at_n_stderr=stderr,
        unsound_correct=tally.unsound_correct,
        answered=tally.answered / done if done else 0.0, truncated=tally.truncated / done if done else 0.0,
        undecided=tally.undecided / done if done else 0.0,
        mean_reasoning_tokens=tally.reasoning_tokens / done if done else 0.0,
        mean_completion_tokens=tally.completion_tokens / done if done else 0.0,
        reasons=dict(sorted(tally.reasons.items())),
        **{name: _breakdown(groups, spec, measured, confidence) for name, spec in breakdown_specs()})


class _Tally:
    """Running counts over an eval's records, and per problem ``[n, hits of each field..., kind, source, family]``."""

    def __init__(self, fields: list[str]):
        self.fields = fields
        self.problems: dict[str, list] = {}
        self.names: dict[str, str] = {}  # one string object per kind, source and family, not one per problem
        self.carried: set[str] = set()  # the fields some done sample carries
        self.reasons: dict[str, int] = defaultdict(int)
        self.errors = self.samples = self.unsound_correct = self.answered = self.truncated = self.undecided = 0
        self.reasoning_tokens = self.completion_tokens = 0

    def add(self, rec: dict) -> None:
        if rec.get("error"):
            self.errors += 1
            return
        self.samples += 1
        self.carried.update(f for f in self.fields if f in rec)
        self.reasons[rec.get("reason") or "-"] += 1
        self.unsound_correct += rec.get("correct") is True and rec.get("sound") is False
        self.answered += rec.get("extracted") is not None and not rec.get("truncated")
        self.truncated += bool(rec.get("truncated"))
        self.undecided += rec.get("correct") is None
        self.reasoning_tokens += rec.get("reasoning_tokens") or 0
        self.completion_tokens += rec.get("completion_tokens") or 0
        g = self.problems.get(rec["id"])
        if g is None:
            g = self.problems[rec["id"]] = [0, *[0] * len(self.fields), self._name(rec.get("kind") or "-"),
                                            self._name(rec.get("source") or "-"), self._name(rec.get("family"))]
        g[0] += 1
        for i, name in enumerate(self.fields, 1):
            g[i] += rec.get(name) is True

    def _name(self, value):
        return self.names.setdefault(value, value) if isinstance(value, str) else value

    def groups(self) -> _Groups:
        return _Groups(self)


class _Groups:
    """The problems of a :class:`_Tally` as the group dicts of :func:`_problems`, built one at a time."""

    def __init__(self, tally: _Tally):
        self.tally = tally

    def __len__(self) -> int:
        return len(self.tally.problems)

    def __iter__(self) -> Iterator[dict]:
        fields = self.tally.fields
        for g in self.tally.problems.values():
            yield {"n": g[0], "hits": dict(zip(fields, g[1:])), "kind": g[-3], "source": g[-2], "family": g[-1]}


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


def _score(groups: Iterable[dict], sample_field: str, confidence: float) -> Score:
    return _score_shares(array("d", (g["hits"][sample_field] / g["n"] for g in groups)), confidence)


def _score_shares(shares: array, confidence: float) -> Score:
    """Mean of per-problem shares with its Wilson interval (8 bytes a problem while scoring)."""
    n = len(shares)
    value = sum(shares) / n if n else 0.0
    low, high = wilson_interval(value * n, n, confidence)
    return Score(value, low, high, "wilson", confidence)


def _breakdown(groups: Iterable[dict], spec: Spec, measured: list[tuple[str, Spec]],
               confidence: float) -> dict[str, Group]:
    """Per source, kind or family (problems without a family are left out of the family breakdown)."""
    group_key = spec.key.removeprefix("by_")
    scored = measured if spec.every_metric else measured[:1]  # a compact breakdown: the headline accuracy
    buckets: dict[str, list[array]] = {}  # per group: each scored accuracy's per-problem shares
    for g in groups:
        if g.get(group_key):
            columns = buckets.setdefault(g[group_key], [array("d") for _ in scored])
            for column, (_, s) in zip(columns, scored):
                column.append(g["hits"][s.sample_field] / g["n"])
    out = {}
    for name, columns in sorted(buckets.items()):
        if spec.every_metric:
            scores = {s.key: _score_shares(col, confidence) for col, (_, s) in zip(columns, scored)}
        else:  # no interval
            scores = {scored[0][1].key: Score(_score_shares(columns[0], confidence).value)}
        out[name] = Group(problems=len(columns[0]), scores=scores)
    return out


def _ks(n_min: int) -> list[int]:
    ks, k = [], 1
    while k <= n_min:
        ks.append(k)
        k *= 2
    if n_min not in ks:
        ks.append(n_min)
    return ks


def _mean(values: array) -> float:
    return sum(values) / len(values) if values else 0.0
