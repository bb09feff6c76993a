"""The report's STaR sections: the per-round table and chart (loop.json), and generate's until-correct tally.

Usage:
    blocks = loop_blocks(run_dir)      # [] for a one-pass run without until_correct
    # build_blocks (distill.pipeline.report) appends them after the accuracy section

Everything is read from files the run wrote: ``loop.json`` (:class:`distill.artifacts.LoopSummary`)
and ``traces.summary.json`` (generate's sample-until-correct tally).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from distill import plots
from distill.artifacts import LoopSummary
from distill.layout import RunLayout, generate_summary_path

log = logging.getLogger(__name__)

__all__ = ["loop_blocks"]


def loop_blocks(run_dir: Path) -> list[Any]:
    """Report blocks for the rounds and the until-correct tally, where the run has them."""
    blocks: list[Any] = []
    tally_path = generate_summary_path(RunLayout(run_dir).traces)
    if tally_path.exists():
        tally = json.loads(tally_path.read_text(encoding="utf-8"))
        blocks += [("h2", "Sampling until correct"),
                   ("p", f"until_correct={tally.get('until_correct')}, max_samples={tally.get('max_samples')}, "
                         f"first wave {tally.get('first_wave')}, rationalize={tally.get('rationalize')} (round 1)."),
                   ("table", ["reached k", "short of k", "solved only by rationalization", "unsolved",
                              "samples per solved problem", "hinted requests"],
                    [[str(tally.get(k, "-")) for k in ("reached_k", "partly_solved", "rationalized", "unsolved",
                                                        "samples_per_solved", "rationalizations")]])]
    loop_path = RunLayout(run_dir).loop_summary
    if not loop_path.exists():
        return blocks
    summary = LoopSummary.read(loop_path)
    rows = summary.rounds
    blocks += [("h2", "Rounds"),
               ("p", f"Best round: **{summary.best_round}** (its adapter, {summary.adapter}, is the "
                     "run's adapter). Round 1 trains on teacher traces; later rounds are sampled by "
                     + _HOW.get(summary.generator or "student", "?") + " and " + _trained(summary) + ".")]
    # Every accuracy of the eval record after pass@1 (loop.json's "scores"; older files have pass@1 alone).
    more = [k for k in dict.fromkeys(k for r in rows for k in r.get("scores") or {}) if k != "pass@1"]
    blocks += [("table", ["round", "traces drawn", "kept", "rationalized", "new problems solved",
                          "held-out pass@1", "95% interval"] + [f"held-out {k}" for k in more],
                [[str(r["round"]), str(r["drawn"]), str(r["kept"]), str(r["rationalized"]),
                  str(r["new_problems_solved"]), _pct(r.get("accuracy")),
                  f"{_pct(r.get('low'))} - {_pct(r.get('high'))}" if r.get("low") is not None else "-"]
                 + [_pct(((r.get("scores") or {}).get(k) or {}).get("value")) for k in more]
                 for r in rows])]
    try:
        chart = plots.rounds(rows, RunLayout(run_dir).plots / "rounds.png")
    except Exception as exc:  # a chart is never worth failing a finished run
        log.warning("report: could not draw the rounds chart (%s)", exc)
        chart = None
    if chart:
        blocks.append(("img", chart, "held-out accuracy per round"))
    return blocks


_HOW = {"student": "the previous round's student (run here)",
        "endpoint": "the previous round's adapter loaded into your inference server (loop.generator=endpoint)",
        "base": "each with a fresh LoRA from the base model (restart=base)",
        "continue": "each starting from the previous round's adapter (restart=continue)"}


def _trained(summary: LoopSummary) -> str:
    if summary.method == "on_policy":
        return ("train on-policy (the onpolicy section's teacher scoring the student's own answers) from the "
                "previous round's adapter, on the problems of every round's kept traces (loop.method=on_policy)")
    return "train on the union of every round's kept traces, " + _HOW.get(summary.restart or "base", "?")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
