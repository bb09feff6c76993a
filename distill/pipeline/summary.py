"""The run's figures, read back from the files its stages wrote: counts, tokens, cost, time, accuracy.

Usage:
    figures = collect(Path("runs/default"))
    show_summary(figures)        # the table `distill run` prints at the end

Everything comes from the run folder's records (:mod:`distill.artifacts`: traces, FilterStats,
AdapterRecord, EvalReport, and .state/), so the summary and the report say the same as the
records; a stage that did not run shows as a dash, a record of another version is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.artifacts import AdapterRecord, EvalReport, FilterStats, Spend, is_failed, latest_per_pair, read_records
from distill.layout import RunLayout
from distill.pipeline.state import Ledger
from distill.progress import human_count, show_table
from distill.records import read_jsonl

STEP_ORDER = ("generate", "filter", "finetune", "eval-before", "eval-after", "guard-before", "guard-after", "publish")


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
    dev_accuracy: list[tuple[float, float]] = field(default_factory=list)  # (step, dev pass@1) from loss.jsonl
    checkpoint: dict | None = None  # which step's adapter finetune kept, and by what
    ablation: dict | None = None  # ablation/report.json (distill.pipeline.ablation)
    gate: list[str] = field(default_factory=list)  # the regression gate's sentences (distill.evaluate.gate)
    gate_failed: bool = False


def collect(run_dir: Path) -> Figures:
    """Read every figure the run folder holds (through the records of :mod:`distill.artifacts`)."""
    layout = RunLayout(Path(run_dir))
    fig = Figures(run_dir=layout.root)
    _read_traces(layout.traces, fig)
    _read_filter(layout, fig)
    _read_adapter(layout, fig)
    fig.accuracy_before = _read_eval(layout.eval_before.report)
    fig.accuracy_after = _read_eval(layout.eval_after.report)
    ablation = layout.root / "ablation" / "report.json"
    fig.ablation = json.loads(ablation.read_text(encoding="utf-8")) if ablation.is_file() else None
    states = Ledger(layout.root).all()
    fig.steps = {name: states[name] for name in STEP_ORDER if name in states}
    named = {"traces": layout.traces, "kept": layout.kept, "rejected": layout.filter.rejected,
             "filter stats": layout.filter.stats, "adapter": layout.adapter.folder,
             "eval before": layout.eval_before.folder, "eval after": layout.eval_after.folder,
             "publish": layout.publish, "recipe": layout.recipe}
    fig.artefacts = {label: path for label, path in named.items() if path.exists()}
    return fig


def _read_traces(path: Path, fig: Figures) -> None:
    """Counts from the last record of each pair; tokens and cost from every line (each was paid for)."""
    if not path.exists():
        return
    spend = Spend()
    failed = latest_per_pair(spend.counting(read_records(path), path), keep=lambda _line, rec: is_failed(rec),
                             path=path)
    fig.problems = len({pid for pid, _ in failed})
    fig.failed = sum(failed.values())
    fig.traces = len(failed) - fig.failed
    fig.tokens = {name: getattr(spend, f"{name}_tokens") for name in ("prompt", "completion", "reasoning", "cached")}
    fig.cost_usd = spend.cost_usd


def _read_filter(layout: RunLayout, fig: Figures) -> None:
    if not layout.filter.stats.exists():
        return
    stats = FilterStats.read(layout.filter.stats)
    fig.kept = stats.kept
    fig.funnel = {s["step"]: s["dropped"] for s in stats.funnel if s["step"] != "input" and s["dropped"]}


def _read_adapter(layout: RunLayout, fig: Figures) -> None:
    files = layout.adapter
    if not files.record.exists():
        return
    record = AdapterRecord.read(files.folder)
    fig.train_seconds = record.metrics.get("wall_time_s")
    fig.train_examples = record.data.get("train_examples")
    if files.loss_log.exists():
        fig.loss = [(float(rec["step"]), float(rec["loss"])) for _, rec in read_jsonl(files.loss_log) if "loss" in rec]
        fig.dev_accuracy = [(float(rec["step"]), float(rec["dev_pass@1"])) for _, rec in read_jsonl(files.loss_log)
                            if "dev_pass@1" in rec]
    fig.checkpoint = record.metrics.get("checkpoint")


def _read_eval(path: Path) -> dict[str, Any] | None:
    return EvalReport.read(path).metrics if path.exists() else None


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
    if fig.gate:
        rows.append(("regression check", "REGRESSED (publish refuses; see report)" if fig.gate_failed
                     else "no regression detected"))
    if reused:
        rows.append(("reused", ", ".join(reused)))
    rows += [(f"  {label}", str(path)) for label, path in fig.artefacts.items()]
    rows.append(("report", str(fig.run_dir / "report.md")))
    return rows


def show_summary(fig: Figures) -> None:
    show_table(f"distill run: {fig.run_dir.name}", summary_rows(fig))
