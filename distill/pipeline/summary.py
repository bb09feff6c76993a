"""The run's figures, read back from the files its stages wrote: counts, tokens, cost, time, accuracy.

Usage:
    figures = collect(Path("runs/default"))
    show_summary(figures)        # the table `distill run` prints at the end

Everything comes from the run folder's records (:mod:`distill.artifacts`: traces, FilterStats,
AdapterRecord, EvalReport, and .state/), so the summary and the report say the same as the
records; a stage that did not run shows as a dash, a record of another version is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.artifacts import (AblationReport, AdapterRecord, EvalReport, FilterStats, Spend, is_failed, latest_per_pair,
                               read_records)
from distill.layout import RunLayout
from distill.metrics import Metrics, metric_rows
from distill.pipeline.state import Ledger
from distill.progress import human_count, show_table
from distill.records import read_jsonl

STEP_ORDER = ("generate", "filter", "finetune", "finetune-onpolicy", "eval-before", "eval-after", "guard-before", "guard-after", "publish")


@dataclass
class Figures:
    """What a run produced; None where a stage did not run."""

    run_dir: Path
    problems: int | None = None
    traces: int | None = None
    failed: int | None = None
    kept: int | None = None
    funnel: dict[str, int] = field(default_factory=dict)
    filter_stats: dict[str, Any] | None = None  # stats.json as written (the funnel chart draws it)
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    train_seconds: float | None = None
    train_examples: int | None = None
    training_log: list[dict] = field(default_factory=list)  # loss.jsonl rows: loss, eval_loss, dev_<metric>
    accuracy_before: Metrics | None = None
    accuracy_after: Metrics | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    artefacts: dict[str, Path] = field(default_factory=dict)
    checkpoint: dict | None = None  # which step's adapter finetune kept, and by what
    adapter_stage: str | None = None  # the step that made the adapter eval-after scored (finetune, finetune-onpolicy)
    ablation: AblationReport | None = None  # ablation/report.json (distill.pipeline.ablation)
    gate: list[str] = field(default_factory=list)  # the regression gate's sentences (distill.gate)
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
    ablation = layout.ablation.report
    fig.ablation = AblationReport.read(ablation) if ablation.is_file() else None
    states = Ledger(layout.root).all()
    fig.steps = {name: states[name] for name in STEP_ORDER if name in states}
    named = {"traces": layout.traces, "kept": layout.kept, "rejected": layout.filter.rejected,
             "filter stats": layout.filter.stats, "adapter": layout.adapter.folder,
             "on-policy adapter": layout.onpolicy_adapter.folder,
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
    fig.filter_stats = stats.to_dict()
    fig.funnel = {s["step"]: s["dropped"] for s in stats.funnel if s["step"] != "input" and s["dropped"]}


def _read_adapter(layout: RunLayout, fig: Figures) -> None:
    """The adapter eval-after scored: finetune-onpolicy's when the run added that step, else finetune's."""
    files, fig.adapter_stage = layout.adapter, "finetune"
    if layout.eval_after.report.exists():
        scored = EvalReport.read(layout.eval_after.report).model.get("adapter")
        if scored and Path(scored).resolve() == layout.onpolicy_adapter.folder.resolve():
            files, fig.adapter_stage = layout.onpolicy_adapter, "finetune-onpolicy"
    if not files.record.exists():
        fig.adapter_stage = None
        return
    record = AdapterRecord.read(files.folder)
    fig.train_seconds = record.metrics.get("wall_time_s")
    fig.train_examples = record.data.get("train_examples")
    if files.loss_log.exists():
        fig.training_log = [rec for _, rec in read_jsonl(files.loss_log)]
    fig.checkpoint = record.metrics.get("checkpoint")


def _read_eval(path: Path) -> Metrics | None:
    return EvalReport.read(path).metrics if path.exists() else None


def accuracy_text(fig: Figures) -> str:
    """'12.0% -> 46.0% (+34.0 pts); sound 5.0% -> 30.0%': every accuracy of the record, the first with
    its change; or what is known of it."""
    rows = metric_rows(fig.accuracy_after, fig.accuracy_before, sections=("accuracy",))
    if not rows:
        return "-"
    parts = []
    for i, r in enumerate(rows):
        name = "" if i == 0 else f"{r.key} "
        if r.change() is not None:
            parts.append(f"{name}{r.text('before', interval=False)} -> {r.text(interval=False)}"
                         + (f" ({100 * r.change():+.1f} pts)" if i == 0 else ""))
        elif r.after is not None:
            parts.append(f"{name}after {r.text(interval=False)}")
        else:
            parts.append(f"{name}before {r.text('before', interval=False)}")
    return "; ".join(parts)


def _family_rows(fig: Figures) -> list[tuple[str, str]]:
    """One row per problem family: each accuracy, before -> after, beside chance."""
    rows = metric_rows(fig.accuracy_after, fig.accuracy_before, sections=("family",))
    out = []
    for name in dict.fromkeys(r.group for r in rows):
        mine = [r for r in rows if r.group == name]
        chance = next((r.chance for r in mine if r.chance is not None), None)
        scores = ", ".join(f"{r.key} {r.text('before', digits=0)} -> {r.text(digits=0)}" for r in mine)
        out.append((f"  {name}", f"{scores} (chance {'-' if chance is None else f'{chance:.0%}'}, "
                                 f"{mine[0].problems} problems)"))
    return out


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
        *([("adapter made by", "finetune-onpolicy (on-policy distillation from finetune's SFT adapter)")]
          if fig.adapter_stage == "finetune-onpolicy" else []),
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
