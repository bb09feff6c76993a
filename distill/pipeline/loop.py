"""The STaR loop of `distill run`: round after round the previous student samples, the verifier keeps, a LoRA trains.

Usage:
    distill run recipes/star-offline.yaml                 # loop: {rounds: 3, generator: student, patience: 1}
    distill run recipes/star-offline.yaml loop.method=on_policy   # rounds >= 2: on-policy self-distillation
    left_failed = run_loop(cfg, layout)                   # called by the runner after round 1

Round 1 is the ordinary pipeline in the run folder (teacher traces). Round r >= 2 lives in
``layout.round(r)`` (``round-<r>/``, a :class:`~distill.layout.RunLayout` of its own, with its own
ledger); its four steps are planned by :func:`distill.pipeline.wiring.plan` once round r-1 has
finished, and each runs through :func:`distill.pipeline.steps.run_step`: generate (sampling at
``loop.temperature`` from the round r-1 student: with ``loop.generator=student`` behind a
loopback OpenAI-compatible server, :mod:`distill.pipeline.student_teacher`; with ``endpoint``
from the user's server after it loaded round r-1's adapter, :mod:`distill.pipeline.lora_endpoint`;
generate's until_correct / rationalize options apply, and rationalization is the *student* with
the hint, as in STaR: the teacher already had its chance in round 1), filter (the same checks),
finetune (on the union of every round's kept traces so far: a fresh LoRA from the base model with
``loop.restart=base``, STaR's restart; round r-1's adapter as the trainable start with
``restart=continue``, its bytes in the key; or, with ``loop.method=on_policy``, on-policy
distillation from round r-1's adapter on the union's problems, the ``onpolicy`` section's teacher
(self by default: the student shown the problem's verified trace) scoring the student's answers)
and eval on the held-out set. A step whose key is
unchanged is reused, so killing the loop and running the same command again repeats nothing
finished. The loop stops after ``loop.rounds`` or when held-out accuracy has not risen for
``loop.patience`` rounds; ``loop.json`` (:class:`~distill.artifacts.LoopSummary`) names the best
round, whose adapter is the run's adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distill.artifacts import EvalReport, FilterStats, LoopSummary, is_failed, read_latest
from distill.layout import RunLayout
from distill.metrics import metric_rows
from distill.pipeline.config import PipelineConfig
from distill.pipeline.steps import run_step
from distill.pipeline.wiring import plan
from distill.records import read_jsonl

log = logging.getLogger(__name__)

__all__ = ["run_loop", "round_rows", "write_summary"]


def run_loop(cfg: PipelineConfig, layout: RunLayout) -> list[str]:
    """Rounds 2..``loop.rounds`` after round 1; writes loop.json; returns failed-sample notes.

    ``cfg`` is the run's wired config (its offline problem specs already files in the run folder).
    """
    left_failed: list[str] = []
    for number in range(2, cfg.loop.rounds + 1):
        if _should_stop(layout, number - 1, cfg.loop.patience):
            log.info("loop: held-out accuracy has not risen for %d round(s); stopping before round %d",
                     cfg.loop.patience, number)
            break
        log.info("")
        log.info("━━ loop: round %d of %d %s", number, cfg.loop.rounds, "━" * 40)
        layout.round(number).root.mkdir(parents=True, exist_ok=True)
        for step in plan(cfg, layout.root, number):  # planned now: round r-1's adapter names its samples
            failed = run_step(step).failed
            if failed:
                left_failed.append(f"{layout.round(number).root.name}/{step.name}: {failed} samples failed")
    write_summary(layout, cfg.loop.rounds, restart=cfg.loop.restart, generator=cfg.loop.generator,
                  method=cfg.loop.method)
    return left_failed


def _accuracy(layout: RunLayout, number: int) -> float | None:
    report = layout.round(number).eval_after.report
    return EvalReport.read(report).pass_at_1 if report.exists() else None


def _should_stop(layout: RunLayout, last: int, patience: int) -> bool:
    """True when the best accuracy of rounds 1..last was reached ``patience`` or more rounds ago."""
    scores = [_accuracy(layout, r) for r in range(1, last + 1)]
    known = [(s, r) for r, s in enumerate(scores, 1) if s is not None]
    if not known:
        return False
    best_round = max(known, key=lambda sr: (sr[0], -sr[1]))[1]
    return last - best_round >= patience


def round_rows(layout: RunLayout, rounds: int) -> list[dict[str, Any]]:
    """Per finished round: traces drawn / kept / rationalized, new problems solved, held-out accuracy."""
    rows, solved = [], set()
    for number in range(1, rounds + 1):
        rl = layout.round(number)
        if not rl.traces.exists():
            break
        drawn = read_latest(rl.traces, keep=lambda _line, rec: not is_failed(rec))
        kept = [rec for _, rec in read_jsonl(rl.kept)] if rl.kept.exists() else []
        ids = {str(rec["id"]) for rec in kept}
        row: dict[str, Any] = {
            "round": number, "drawn": sum(drawn.values()), "kept": len(kept),
            "rationalized": sum(1 for rec in kept if rec.get("rationalized")),
            "problems_solved": len(ids), "new_problems_solved": len(ids - solved),
            "kept_share": FilterStats.read(rl.filter.stats).kept_share if rl.filter.stats.exists() else None,
            "adapter": str(rl.adapter.folder.relative_to(layout.root)) if rl.adapter.folder.exists() else None,
        }
        solved |= ids
        if rl.eval_after.report.exists():
            scores = {r.key: r.after for r in metric_rows(EvalReport.read(rl.eval_after.report).metrics,
                                                           sections=("accuracy",))}
            head = scores["pass@1"]
            row.update(accuracy=head.value, low=head.low, high=head.high,
                       scores={k: {"value": s.value, "low": s.low, "high": s.high} for k, s in scores.items()})
        rows.append(row)
    return rows


def write_summary(layout: RunLayout, rounds: int, restart: str | None = None, generator: str | None = None,
                  method: str | None = None) -> Path:
    """loop.json: the per-round rows, the best round (its adapter is the run's adapter) and how the rounds
    were made (restart, generator), so the report says what it shows."""
    rows = round_rows(layout, rounds)
    scored = [row for row in rows if row.get("accuracy") is not None]
    best = max(scored, key=lambda row: (row["accuracy"], -row["round"])) if scored else None
    summary = LoopSummary(rounds=rows, best_round=best["round"] if best else None,
                          adapter=best["adapter"] if best else None, restart=restart, generator=generator,
                          method=method)
    path = summary.write(layout.loop_summary)
    if best:
        log.info("loop: best round %d (held-out pass@1 %.1f%%): the run's adapter is %s",
                 best["round"], 100 * best["accuracy"], best["adapter"])
    return path
