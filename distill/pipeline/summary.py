"""The run's figures, read back from the files its stages wrote: counts, tokens, cost, time, accuracy.

Usage:
    figures = collect(Path("runs/default"))
    show_summary(figures)        # the table `distill run` prints at the end

Everything comes from the run folder (traces.jsonl, stats.json, adapter/distill.json,
eval-*/report.json, .state/), so the summary and the report say the same as the records, and a
missing stage shows as a dash rather than an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.pipeline.state import Ledger
from distill.progress import human_count, show_table
from distill.records import read_jsonl

STEP_ORDER = ("generate", "filter", "finetune", "eval-before", "eval-after", "publish")


@dataclass
class Figures:
    """What a run produced; None where a stage did not run."""

    run_dir: Path
    problems: int | None = None
    traces: int | None = None
    failed: int | None = None
    kept: int | None = None
    funnel: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    train_seconds: float | None = None
    train_examples: int | None = None
    loss: list[tuple[float, float]] = field(default_factory=list)
    accuracy_before: dict[str, Any] | None = None
    accuracy_after: dict[str, Any] | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    artefacts: dict[str, Path] = field(default_factory=dict)


def collect(run_dir: Path) -> Figures:
    """Read every figure the run folder holds."""
    run_dir = Path(run_dir)
    fig = Figures(run_dir=run_dir)
    _read_traces(run_dir / "traces.jsonl", fig)
    _read_filter(run_dir, fig)
    _read_adapter(run_dir / "adapter", fig)
    fig.accuracy_before = _read_eval(run_dir / "eval-before" / "report.json")
    fig.accuracy_after = _read_eval(run_dir / "eval-after" / "report.json")
    states = Ledger(run_dir).all()
    fig.steps = {name: states[name] for name in STEP_ORDER if name in states}
    names = {"traces": "traces.jsonl", "kept": "kept.jsonl", "rejected": "rejected.jsonl",
             "filter stats": "stats.json", "adapter": "adapter", "eval before": "eval-before",
             "eval after": "eval-after", "publish": "publish", "recipe": "recipe.yaml"}
    fig.artefacts = {label: run_dir / rel for label, rel in names.items() if (run_dir / rel).exists()}
    return fig


def _read_traces(path: Path, fig: Figures) -> None:
    if not path.exists():
        return
    ids, ok, failed, cost = set(), 0, 0, 0.0
    tokens = {"prompt": 0, "completion": 0, "reasoning": 0, "cached": 0}
    for _, rec in read_jsonl(path):
        ids.add(rec.get("id"))
        if rec.get("error"):
            failed += 1
        else:
            ok += 1
        usage = rec.get("usage") or {}
        for name in tokens:
            tokens[name] += int(usage.get(f"{name}_tokens") or 0)
        cost += float(rec.get("cost_usd") or 0.0)
    fig.problems, fig.traces, fig.failed, fig.tokens, fig.cost_usd = len(ids), ok, failed, tokens, cost


def _read_filter(run_dir: Path, fig: Figures) -> None:
    kept = run_dir / "kept.jsonl"
    if kept.exists():
        fig.kept = sum(1 for _ in read_jsonl(kept))
    stats = _load_json(run_dir / "stats.json")
    if stats:
        funnel = stats.get("funnel") or stats.get("reasons") or {}
        if isinstance(funnel, list):  # ordered steps: [{"step": "truncated", "dropped": 3, "left": 97}, ...]
            fig.funnel = {str(s.get("step")): int(s.get("dropped") or 0) for s in funnel
                          if isinstance(s, dict) and s.get("step") != "input" and s.get("dropped")}
        elif isinstance(funnel, dict):
            fig.funnel = {str(k): int(v) for k, v in funnel.items() if isinstance(v, (int, float))}


def _read_adapter(adapter: Path, fig: Figures) -> None:
    record = _load_json(adapter / "distill.json")
    if record:
        fig.train_seconds = _first(record, ("wall_time_s", "train_seconds", "wall_seconds", "seconds", "wall_time"))
        fig.train_examples = _first(record, ("examples", "train_examples", "n_examples", "examples_trained"))
    loss_log = adapter / "loss.jsonl"
    if loss_log.exists():
        for _, rec in read_jsonl(loss_log):
            step, loss = rec.get("step"), rec.get("loss", rec.get("train_loss"))
            if isinstance(step, (int, float)) and isinstance(loss, (int, float)):
                fig.loss.append((float(step), float(loss)))


def _read_eval(path: Path) -> dict[str, Any] | None:
    report = _load_json(path)
    if not report:
        return None
    for candidate in (report, report.get("summary"), report.get("metrics"), report.get("results")):
        if isinstance(candidate, dict) and "pass@1" in candidate:
            return candidate
    return None


def _first(record: dict, keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` found in the record or one level down (records nest metrics by topic)."""
    for scope in [record, *(v for v in record.values() if isinstance(v, dict))]:
        for key in keys:
            if isinstance(scope.get(key), (int, float)):
                return scope[key]
    return None


def _load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def accuracy_text(fig: Figures) -> str:
    """'12.0% -> 46.0% (+34.0 pts)', or what is known of it."""
    before = fig.accuracy_before["pass@1"] if fig.accuracy_before else None
    after = fig.accuracy_after["pass@1"] if fig.accuracy_after else None
    if before is not None and after is not None:
        sb, sa = (fig.accuracy_before.get("sound"), fig.accuracy_after.get("sound"))
        sound = f"; sound {sb:.1%} -> {sa:.1%}" if sb is not None and sa is not None else ""
        return f"{before:.1%} -> {after:.1%} ({(after - before) * 100:+.1f} pts){sound}"
    if after is not None:
        return f"after {after:.1%}"
    return f"before {before:.1%}" if before is not None else "-"


def _family_rows(fig: Figures) -> list[tuple[str, str]]:
    """One row per problem family: pass@1 and sound accuracy, before -> after, beside chance."""
    from distill.evaluate.metrics import family_rows

    rows = family_rows((fig.accuracy_before or {}).get("by_family"), (fig.accuracy_after or {}).get("by_family"))
    return [(f"  {name}", f"pass@1 {pb} -> {pa}, sound {sb} -> {sa} (chance {chance}, {n} problems)")
            for name, n, chance, pb, pa, sb, sa in rows]


def summary_rows(fig: Figures) -> list[tuple[str, str]]:
    """The end-of-run table as (label, value) rows."""
    def count(n: int | None) -> str:
        return "-" if n is None else f"{n:,}"

    total_tokens = sum(fig.tokens.get(k, 0) for k in ("prompt", "completion"))
    reused = [n for n, s in fig.steps.items() if s.get("reused_at") and s.get("reused_at", "") >= s.get("finished_at", "")]
    rows = [
        ("problems", count(fig.problems)),
        ("traces", count(fig.traces) + (f" ({fig.failed} failed)" if fig.failed else "")),
        ("kept", count(fig.kept) + (f" ({fig.kept / fig.traces:.0%})" if fig.kept is not None and fig.traces else "")),
        ("tokens", f"{human_count(total_tokens)} ({human_count(fig.tokens.get('reasoning', 0))} reasoning)"
         if fig.tokens else "-"),
        ("cost", "-" if fig.cost_usd is None else f"${fig.cost_usd:,.4f}"),
        ("training time", "-" if fig.train_seconds is None else f"{fig.train_seconds:.0f} s"),
        ("accuracy before -> after", accuracy_text(fig)),
        *_family_rows(fig),
        ("time per stage", ", ".join(f"{n} {s.get('seconds', 0):.0f}s" for n, s in fig.steps.items()) or "-"),
    ]
    if reused:
        rows.append(("reused", ", ".join(reused)))
    rows += [(f"  {label}", str(path)) for label, path in fig.artefacts.items()]
    rows.append(("report", str(fig.run_dir / "report.md")))
    return rows


def show_summary(fig: Figures) -> None:
    show_table(f"distill run: {fig.run_dir.name}", summary_rows(fig))
