"""Where a run's files are: every file a stage writes, named once (the run folder, filter, adapter, eval).

Usage:
    from distill.layout import RunLayout
    layout = RunLayout(Path("runs/default"))
    layout.traces, layout.kept, layout.adapter.record, layout.eval_after.report   # every file of a run
    layout.round(2).traces, layout.loop_summary, layout.ablation.arm("unfiltered").adapter.folder
    generate_config_path("traces.jsonl")      # traces.config.yaml, beside generate's output
    generate_batches_path("traces.jsonl")     # traces.batches.jsonl: mode=batch's ledger (files in traces.batches/)

The records those files hold are typed in :mod:`distill.artifacts`; this module only names paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.artifacts import AdapterRecord


def generate_config_path(traces: str | Path) -> Path:
    """``traces.jsonl`` -> ``traces.config.yaml``: generate's resolved config, beside its output."""
    traces = Path(traces)
    return traces.with_name(traces.name.rsplit(".", 1)[0] + ".config.yaml")


def generate_summary_path(traces: str | Path) -> Path:
    """``traces.jsonl`` -> ``traces.summary.json``: generate's sample-until-correct tally over the whole file."""
    traces = Path(traces)
    return traces.with_name(traces.name.rsplit(".", 1)[0] + ".summary.json")


def generate_batches_path(traces: str | Path) -> Path:
    """``traces.jsonl`` -> ``traces.batches.jsonl``: mode=batch's ledger of request files and batch ids; the
    files themselves go in the folder of the same name without ``.jsonl`` (``traces.batches/``)."""
    traces = Path(traces)
    return traces.with_name(traces.name.rsplit(".", 1)[0] + ".batches.jsonl")


@dataclass(frozen=True)
class FilterFiles:
    """Everything filter writes, named from its kept file (rejected/stats may be set elsewhere)."""

    kept: Path
    rejected: Path
    stats: Path
    plot: Path
    config: Path
    cache: Path

    @classmethod
    def beside(cls, kept: str | Path, rejected: str | Path | None = None,
               stats: str | Path | None = None) -> FilterFiles:
        kept = Path(kept)
        return cls(kept, Path(rejected) if rejected else kept.with_name("rejected.jsonl"),
                   Path(stats) if stats else kept.with_name("stats.json"), kept.with_name("filter_funnel.png"),
                   kept.with_name("filter.config.yaml"), kept.parent / "filter-cache")


@dataclass(frozen=True)
class AdapterFiles:
    """An adapter folder: PEFT weights plus the record, resolved config and loss log finetune adds."""

    folder: Path

    @property
    def record(self) -> Path:
        return self.folder / AdapterRecord.FILE

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def loss_log(self) -> Path:
        return self.folder / "loss.jsonl"

    @property
    def lint(self) -> Path:
        return self.folder / "lint.txt"

    @property
    def dev_outputs(self) -> Path:
        return self.folder / "dev_outputs.jsonl"

    @property
    def loss_plot(self) -> Path:
        return self.folder / "loss.png"

    @property
    def merged(self) -> Path:
        return self.folder / "merged"

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"


@dataclass(frozen=True)
class EvalFiles:
    """An eval folder: per-answer outputs, the report, the resolved config, the base model's eval."""

    folder: Path

    @property
    def outputs(self) -> Path:
        return self.folder / "outputs.jsonl"

    @property
    def report(self) -> Path:
        return self.folder / "report.json"

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def base(self) -> EvalFiles:
        return EvalFiles(self.folder / "base")


@dataclass(frozen=True)
class ArmFiles:
    """One ablation arm's folder: its adapter, its eval, its ledger (``.state/``) and a pick arm's kept traces."""

    root: Path

    @property
    def adapter(self) -> AdapterFiles:
        return AdapterFiles(self.root / "adapter")

    @property
    def eval(self) -> EvalFiles:
        return EvalFiles(self.root / "eval")

    @property
    def kept(self) -> Path:
        """A pick arm's own filter output (its training set; rejected.jsonl and stats.json beside it)."""
        return self.root / "kept.jsonl"


@dataclass(frozen=True)
class AblationFiles:
    """``ablation/``: the arms' training sets, their folders, the report and its table."""

    root: Path

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def table(self) -> Path:
        return self.root / "table.md"

    def data(self, arm: str) -> Path:
        """The training set an arm derives from the run's traces (answers_only, unfiltered)."""
        return self.root / f"{arm}.jsonl"

    def arm(self, arm: str) -> ArmFiles:
        return ArmFiles(self.root / arm)


@dataclass(frozen=True)
class RunLayout:
    """Every file of a `distill run` folder, named once."""

    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def problems_dir(self) -> Path:
        return self.root / "problems"

    @property
    def traces(self) -> Path:
        return self.root / "traces.jsonl"

    @property
    def generate_config(self) -> Path:
        return generate_config_path(self.traces)

    @property
    def filter(self) -> FilterFiles:
        return FilterFiles.beside(self.root / "kept.jsonl")

    @property
    def kept(self) -> Path:
        return self.filter.kept

    @property
    def adapter(self) -> AdapterFiles:
        return AdapterFiles(self.root / "adapter")

    @property
    def onpolicy_adapter(self) -> AdapterFiles:
        """finetune-onpolicy's adapter (pipeline onpolicy.enabled): started from ``adapter``."""
        return AdapterFiles(self.root / "adapter-onpolicy")

    @property
    def eval_before(self) -> EvalFiles:
        return EvalFiles(self.root / "eval-before")

    @property
    def eval_after(self) -> EvalFiles:
        return EvalFiles(self.root / "eval-after")

    @property
    def guard_before(self) -> EvalFiles:
        return EvalFiles(self.root / "guard-before")

    @property
    def guard_after(self) -> EvalFiles:
        return EvalFiles(self.root / "guard-after")

    @property
    def publish(self) -> Path:
        return self.root / "publish"

    @property
    def lock(self) -> Path:
        """Held by the one `distill run` working in the folder."""
        return self.root / ".lock"

    @property
    def state(self) -> Path:
        return self.root / ".state"

    @property
    def superseded(self) -> Path:
        return self.root / ".superseded"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def ablation(self) -> AblationFiles:
        return AblationFiles(self.root / "ablation")

    @property
    def loop_summary(self) -> Path:
        """loop.json: the STaR rounds' rows and the best round (:class:`distill.artifacts.LoopSummary`)."""
        return self.root / "loop.json"

    def round(self, number: int) -> RunLayout:
        """A STaR round's folder: round 1 is the run folder itself, round r >= 2 is ``round-<r>/`` inside it."""
        return self if number == 1 else RunLayout(self.root / f"round-{number}")

    @property
    def train_union(self) -> Path:
        """A round's training set from round 2 on: every round's kept traces so far, tagged with their round."""
        return self.root / "train.jsonl"
