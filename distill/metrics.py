"""An eval's scores as a typed record, and the rows every table shows of it. Pure.

Usage:
    from distill.metrics import Metrics, metric_rows, family_table, metrics_from_json
    m = Metrics.from_dict(data)                    # or distill.estimates.summarise(records)
    m.pass_at_1.value, m.sound.low, m.by_family["decimals"].scores["sound"].value
    m.to_dict(); metrics_from_json(data)           # the JSON report.json's "metrics" holds, both ways
    rows = metric_rows(after=m, before=m0)         # what every table, chart and card shows, a row per metric
    header, table = family_table(after=m, before=m0)

A metric is a field of :class:`Metrics` whose :class:`Spec` gives its JSON key, its label and its
kind. An ``accuracy`` field names the outputs.jsonl field it averages per problem (``correct``,
``sound``): :func:`distill.estimates.summarise` scores it overall and per family with Wilson
intervals, and :func:`metric_rows` hands it to the console, the summary, the report, its chart, the
card and the ablation, so a new accuracy metric is one field here (and the stage that writes its
sample field).
Sound accuracy counts a sample only when it is correct and every checkable step of its reasoning
is true (see distill.soundness).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any


__all__ = ["Score", "Group", "Spec", "Metrics", "MetricRow", "metrics_from_json", "metric_rows", "family_table",
           "accuracy_specs", "breakdown_specs"]


@dataclass(frozen=True)
class Score:
    """A value (a share of problems, a count, a mean) and, for an accuracy, its confidence interval."""

    value: float
    low: float | None = None
    high: float | None = None
    method: str = "wilson"
    confidence: float = 0.95

    def interval(self) -> dict | None:
        """The JSON form of the interval (``{"low", "high", "method", "confidence"}``), None without one."""
        if self.low is None or self.high is None:
            return None
        return {"low": self.low, "high": self.high, "method": self.method, "confidence": self.confidence}


@dataclass
class Group:
    """One family, source or kind of a breakdown: its problem count and accuracies."""

    problems: int
    scores: dict[str, Score] = field(default_factory=dict)  # by metric key: "pass@1", "sound"
    chance: dict | None = None  # families: always giving the most common training answer (chance_rates)


@dataclass(frozen=True)
class Spec:
    """How a :class:`Metrics` field is stored and shown.

    ``kind``: ``accuracy`` (a share of problems with an interval, from ``sample_field``), ``pass@k``,
    ``count``, ``share``, ``tokens``, ``tally`` (stored, not shown) or ``breakdown`` (per group;
    ``every_metric``: every accuracy with intervals, else the first accuracy alone).
    """

    key: str
    label: str
    kind: str
    sample_field: str | None = None
    every_metric: bool = False
    meaning: str | None = None  # said once beside the label where a sentence names the metric (the card's gate)


def _metric(key: str, label: str, kind: str, factory: Any = None, **more: Any) -> Any:
    meta = {"spec": Spec(key, label, kind, **more)}
    return field(default_factory=factory, metadata=meta) if factory else field(default=None, metadata=meta)


@dataclass
class Metrics:
    """report.json's ``metrics``: every score of an eval. None: not measured (or an older report)."""

    problems: int | None = _metric("problems", "problems", "count")
    samples: int | None = _metric("samples", "samples", "count")
    errors: int | None = _metric("errors", "failed requests (retried next run)", "count")
    pass_at_1: Score | None = _metric("pass@1", "pass@1", "accuracy", sample_field="correct")
    sound: Score | None = _metric("sound", "sound", "accuracy", sample_field="sound",
                                  meaning="correct, no false step")
    pass_at_k: dict[str, float] = _metric("pass@k", "pass@k", "pass@k", dict)
    # avg@n: correct samples over all samples, averaged per problem first (= pass@1's value); its standard
    # error is across problems (sample std of the per-problem means / sqrt(problems)), as published tables give it.
    samples_per_problem: int | None = _metric("n", "samples per problem (n)", "count")
    avg_at_n: float | None = _metric("avg@n", "avg@n", "share")
    avg_at_n_stderr: float | None = _metric("avg@n_stderr", "avg@n standard error", "share")
    unsound_correct: int | None = _metric("unsound_correct", "correct but unsound samples", "count")
    answered: float | None = _metric("answered", "with a final answer", "share")
    truncated: float | None = _metric("truncated", "truncated", "share")
    undecided: float | None = _metric("undecided", "undecided by the verifier", "share")
    mean_reasoning_tokens: float | None = _metric("mean_reasoning_tokens", "mean reasoning tokens", "tokens")
    mean_completion_tokens: float | None = _metric("mean_completion_tokens", "mean completion tokens", "tokens")
    reasons: dict[str, int] = _metric("reasons", "verdicts", "tally", dict)
    by_source: dict[str, Group] = _metric("by_source", "source", "breakdown", dict)
    by_kind: dict[str, Group] = _metric("by_kind", "kind", "breakdown", dict)
    by_family: dict[str, Group] = _metric("by_family", "family", "breakdown", dict, every_metric=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: each field under its key; an accuracy ``k`` as ``k`` and ``k_interval``."""
        out: dict[str, Any] = {}
        for f, spec in _specs(type(self)):
            value = getattr(self, f.name)
            if spec.kind == "accuracy":
                if value is not None:
                    out[spec.key] = value.value
                    if value.interval():
                        out[f"{spec.key}_interval"] = value.interval()
            elif spec.kind == "breakdown":
                out[spec.key] = {name: _group_json(g) for name, g in value.items()}
            elif value is not None:
                out[spec.key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Read the JSON form back (keys this distill does not know are left out); raises on bad types."""
        if not isinstance(data, dict):
            raise TypeError(f"metrics must be an object, got {type(data).__name__}")
        keys = [spec.key for _, spec in accuracy_specs(cls)]
        values: dict[str, Any] = {}
        for f, spec in _specs(cls):
            if spec.key not in data or data[spec.key] is None:
                continue
            raw = data[spec.key]
            if spec.kind == "accuracy":
                values[f.name] = _score_json(data, spec.key)
            elif spec.kind == "breakdown":
                values[f.name] = {str(name): _group_from(g, keys) for name, g in dict(raw).items()}
            elif spec.kind in ("pass@k", "tally"):
                values[f.name] = {str(k): v for k, v in dict(raw).items()}
            else:
                values[f.name] = int(raw) if spec.kind == "count" else float(raw)
        return cls(**values)


def metrics_from_json(data: dict[str, Any]) -> Metrics:
    """:meth:`Metrics.from_dict` of this module's record: every reader of report.json goes through here."""
    return Metrics.from_dict(data)


def _specs(cls: type) -> list[tuple[dataclasses.Field, Spec]]:
    return [(f, f.metadata["spec"]) for f in dataclasses.fields(cls) if "spec" in f.metadata]


def accuracy_specs(cls: type | None = None) -> list[tuple[str, Spec]]:
    """``(field name, spec)`` of every accuracy metric of the record, in the record's order."""
    return [(f.name, spec) for f, spec in _specs(cls or Metrics) if spec.kind == "accuracy"]


def breakdown_specs(cls: type | None = None) -> list[tuple[str, Spec]]:
    """``(field name, spec)`` of every breakdown (by source, kind, family) of the record, in the record's order."""
    return [(f.name, spec) for f, spec in _specs(cls or Metrics) if spec.kind == "breakdown"]


def _score_json(data: dict, key: str) -> Score:
    ci = data.get(f"{key}_interval") or {}
    if not isinstance(ci, dict):
        raise TypeError(f"{key}_interval must be an object")
    return Score(float(data[key]), _float(ci.get("low")), _float(ci.get("high")), str(ci.get("method", "wilson")),
                 float(ci.get("confidence", 0.95)))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _group_from(data: dict, keys: list[str]) -> Group:
    if not isinstance(data, dict):
        raise TypeError(f"a breakdown entry must be an object, got {type(data).__name__}")
    scores = {k: _score_json(data, k) for k in keys if data.get(k) is not None}
    return Group(problems=int(data.get("problems") or 0), scores=scores, chance=data.get("chance"))


def _group_json(group: Group) -> dict:
    out: dict[str, Any] = {"problems": group.problems}
    for key, score in group.scores.items():
        out[key] = score.value
        if score.interval():
            out[f"{key}_interval"] = score.interval()
    if group.chance is not None:
        out["chance"] = group.chance
    return out


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class MetricRow:
    """One metric of one eval (``after``), or of two (``before`` -> ``after``), ready to show.

    ``section`` is the kind (``accuracy``, ``pass@k``, ``count``, ``share``, ``tokens``) or, for a
    breakdown row, the breakdown's label (``family``, ``source``, ``kind``) with ``group`` its name.
    """

    section: str
    key: str
    label: str
    unit: str  # "share", "count" or "tokens": how text() writes the value
    before: Score | None
    after: Score | None
    group: str | None = None
    problems: int | None = None
    chance: float | None = None  # a family's pass@1 when always giving its most common training answer

    def text(self, side: str = "after", digits: int = 1, interval: bool = True) -> str:
        """``'46.0% [38.1%, 54.1%]'``, ``'1,200'``, ``'-'`` when that side has no value."""
        score = self.before if side == "before" else self.after
        if score is None:
            return "-"
        if self.unit == "count":
            return f"{int(score.value):,}"
        if self.unit == "tokens":
            return f"{score.value:.{digits}f}"
        span = f" [{score.low:.{digits}%}, {score.high:.{digits}%}]" if interval and score.low is not None else ""
        return f"{score.value:.{digits}%}{span}"

    def change(self) -> float | None:
        """after minus before (None unless both are there)."""
        return None if self.before is None or self.after is None else self.after.value - self.before.value


_UNITS = {"count": "count", "tokens": "tokens"}


def metric_rows(after: Metrics | None, before: Metrics | None = None,
                sections: Collection[str] | None = None) -> list[MetricRow]:
    """Every metric the record(s) hold, in the record's field order; breakdowns one row per group and
    accuracy. ``sections`` keeps only those (e.g. ``("accuracy",)``, ``("family",)``)."""
    ref = after if after is not None else before
    if ref is None:
        return []
    rows: list[MetricRow] = []
    for f, spec in _specs(type(ref)):
        b, a = (getattr(m, f.name, None) if m is not None else None for m in (before, after))
        section = spec.label if spec.kind == "breakdown" else spec.kind
        if spec.kind == "tally" or (sections is not None and section not in sections):
            continue
        if spec.kind == "breakdown":
            rows += _breakdown_rows(spec.label, b or {}, a or {}, type(ref))
        elif spec.kind == "pass@k":
            keys = sorted(set(b or {}) | set(a or {}), key=lambda k: int(k.split("@")[1]))
            rows += [MetricRow("pass@k", k, k, "share", _plain((b or {}).get(k)), _plain((a or {}).get(k)))
                     for k in keys if k != "pass@1"]
        elif a is not None or b is not None:
            wrap = (lambda v: v) if spec.kind == "accuracy" else _plain
            rows.append(MetricRow(section, spec.key, spec.label, _UNITS.get(spec.kind, "share"), wrap(b), wrap(a)))
    return rows


def _plain(value: float | None) -> Score | None:
    return None if value is None else Score(float(value))


def _breakdown_rows(section: str, before: dict[str, Group], after: dict[str, Group], cls: type) -> list[MetricRow]:
    rows = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        for _, spec in accuracy_specs(cls):
            sb, sa = (g.scores.get(spec.key) if g else None for g in (b, a))
            if sb is None and sa is None:
                continue
            chance = ((a and a.chance) or (b and b.chance) or {}).get(spec.key)
            rows.append(MetricRow(section, spec.key, spec.key, "share", sb, sa, group=name,
                                  problems=(a or b).problems, chance=chance))
    return rows


def family_table(after: Metrics | None, before: Metrics | None = None) -> tuple[list[str], list[list[str]]]:
    """The per-family table of the report and the card: problems, chance, then each accuracy before and after
    as ``value [Wilson interval]`` (whole percents)."""
    rows = metric_rows(after, before, sections=("family",))
    keys = list(dict.fromkeys(r.key for r in rows))
    header = ["family", "problems", "chance"] + [f"{k} {side}" for k in keys for side in ("before", "after")]
    table = []
    for name in dict.fromkeys(r.group for r in rows):
        mine = {r.key: r for r in rows if r.group == name}
        first = next(iter(mine.values()))
        chance = next((r.chance for r in mine.values() if r.chance is not None), None)
        cells = [mine[k].text(side, digits=0) if k in mine else "-" for k in keys for side in ("before", "after")]
        table.append([str(name), str(first.problems), "-" if chance is None else f"{chance:.0%}", *cells])
    return header, table
