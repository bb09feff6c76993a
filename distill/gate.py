"""The regression gate: did the adapter make the student worse, on the task or on general skills it had?

Usage:
    from distill.gate import judge, judge_folders
    verdict = judge_folders("runs/x/eval-after", guard="runs/x/guard-after", guard_max_drop=0.05)
    verdict.blocked                # publish refuses; `distill run` warns
    verdict.lines()                # what the card, the report and the log say, either way

Pure apart from reading report.json: the comparisons are the paired ones ``distill eval`` wrote
(after minus before on the same problems, paired bootstrap interval; :func:`distill.
estimates.compare_outputs`). Held-out accuracy regressed when that interval lies entirely below
zero, in pass@1 or in any other accuracy eval compared (sound): a drop the resampling cannot
explain away, not any dip. Guard problems (general skills
outside the target task) are forgetting when their accuracy fell by more than ``guard_max_drop``
(absolute, e.g. 0.05 = 5 points): a threshold, since a guard set is there to catch damage the
task metric cannot see, and a small one rarely has the power for an interval to exclude zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.artifacts import EvalReport
from distill.layout import EvalFiles
from distill.errors import RegressionBlocked
from distill.metrics import accuracy_specs

ALLOW = "allow_regression=true"


__all__ = ["GateVerdict", "RegressionBlocked", "judge", "judge_folders"]


@dataclass
class GateVerdict:
    """The comparisons behind the decision, and the decision."""

    held_out: dict | None  # report.compare of the held-out eval (None: no before/after there)
    guard: dict | None  # report.compare of the guard eval, when one ran
    guard_max_drop: float
    allowed: bool = False  # the user said allow_regression=true

    @property
    def regressed(self) -> bool:
        """pass@1, or any other accuracy the eval compared (sound...), fell with the whole interval below zero."""
        held = self.held_out or {}
        return any(_below_zero(c) for c in (held, *(held.get(spec.key) or {} for _, spec in accuracy_specs()[1:])))

    @property
    def forgetting(self) -> bool:
        diff = (self.guard or {}).get("difference")
        return diff is not None and diff < -self.guard_max_drop

    @property
    def blocked(self) -> bool:
        return (self.regressed or self.forgetting) and not self.allowed

    def lines(self) -> list[str]:
        """Plain sentences stating each comparison and the decision (Markdown-safe)."""
        out = [_sentence("Held-out accuracy (pass@1)", self.held_out)]
        for _, spec in accuracy_specs()[1:]:
            if (self.held_out or {}).get(spec.key):
                other = {**self.held_out[spec.key], "paired_problems": self.held_out["paired_problems"]}
                meaning = f" ({spec.meaning})" if spec.meaning else ""
                out.append(_sentence(f"Held-out {spec.label} accuracy{meaning}", other))
        if self.regressed:
            out.append("This is a regression: the whole interval of after minus before lies below zero.")
        if self.guard is not None:
            out.append(_sentence("Guard problems (general skills outside the target task)", self.guard))
            if self.forgetting:
                out.append(f"This is forgetting: guard accuracy fell by more than {100 * self.guard_max_drop:.1f} "
                           "points (guard_max_drop).")
        if self.regressed or self.forgetting:
            out.append(f"Published anyway: the user set {ALLOW}." if self.allowed else
                       f"distill publish refuses this adapter unless {ALLOW}.")
        elif self.held_out is not None:
            out.append("No regression detected" + (" and no forgetting." if self.guard is not None else "."))
        return out


def _below_zero(c: dict) -> bool:
    high = (c.get("interval") or {}).get("high")
    return high is not None and high < 0


def _sentence(what: str, c: dict | None) -> str:
    if not c or c.get("difference") is None:
        return f"{what}: no before/after comparison was made, so a regression could not be checked."
    ci = c["interval"]
    return (f"{what}: {100 * c['before']:.1f}% before, {100 * c['after']:.1f}% after on {c['paired_problems']} "
            f"paired problems, {100 * c['difference']:+.1f} points "
            f"[{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}] ({int(100 * ci['confidence'])}% paired bootstrap).")


def judge(held_out: dict | None, guard: dict | None = None, guard_max_drop: float = 0.05,
          allow_regression: bool = False) -> GateVerdict:
    """The verdict from two comparison mappings (``EvalReport.compare``)."""
    return GateVerdict(held_out, guard, guard_max_drop, allow_regression)


def judge_folders(eval_dir: str | Path | None, guard: str | Path | None = None, guard_max_drop: float = 0.05,
                  allow_regression: bool = False) -> GateVerdict:
    """The verdict from eval folders (their report.json ``compare``); a missing folder compares nothing."""
    return judge(_compare(eval_dir), (_compare(guard) or {}) if guard else None, guard_max_drop, allow_regression)


def _compare(folder: str | Path | None) -> dict | None:
    if not folder:
        return None
    report = EvalFiles(Path(folder)).report
    return EvalReport.read(report).compare if report.is_file() else None
