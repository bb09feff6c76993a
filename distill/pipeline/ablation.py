"""Ablation: does filtering pay, does reasoning pay? The same student and budget trained three ways, scored alike.

Usage:
    distill run recipes/ablation-offline.yaml            # a pipeline recipe with  ablate: [answers_only, unfiltered, filtered]
    report = run_ablation(wired, layout, steps)          # after the run's own steps; returns ablation/report.json

Arms, each trained with the recipe's finetune section (same student, ``max_steps``, batch and
learning rate) and scored on the recipe's held-out eval problems with its eval section:

- ``answers_only``: the filtered traces with the reasoning left out (``reasoning_format: {content}``);
- ``unfiltered``: every trace the teacher returned (teacher mistakes included), no filter;
- ``filtered``: the filtered traces, reasoning included: the method. This arm is the run's own
  adapter and eval-after, trained and scored with the same settings.

Each arm is compared with ``filtered`` on the same problems: the arm's pass@1 minus filtered's,
with a paired bootstrap interval (:func:`distill.evaluate.metrics.compare_outputs`). An arm is a
finetune and an eval step (:func:`distill.pipeline.wiring.plan_arm`) run through the same ledger
as the run's own steps: one whose key (settings and data bytes) is unchanged is reused. Whatever the table says is reported,
including when it goes against the method.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from distill.artifacts import AblationReport, AdapterRecord, EvalReport, is_failed, read_latest
from distill.layout import EvalFiles, RunLayout
from distill.pipeline.config import ARMS, PipelineConfig
from distill.pipeline.steps import Step, run_step
from distill.pipeline.wiring import plan_arm
from distill.records import write_text_atomic

log = logging.getLogger(__name__)

REFERENCE = "filtered"
LABELS = {"answers_only": "(a) answers only, no reasoning", "unfiltered": "(b) all traces, unfiltered",
          "filtered": "(c) filtered traces (the method)"}


def run_ablation(cfg: PipelineConfig, layout: RunLayout, own: list[Step]) -> Path:
    """Train and score every arm of ``cfg.ablate`` not already current; write ablation/report.json.

    ``cfg`` is the run's wired config and ``own`` the run's steps, already run: the filtered arm is
    their finetune and eval-after. The other arms are steps in ``ablation/<arm>/`` with a ledger there.
    """
    arms = [a for a in ARMS if a in cfg.ablate or a == REFERENCE]  # filtered is the reference, always scored
    results: dict[str, dict] = {}
    for arm in arms:
        results[arm] = _run_arm(cfg, layout, arm, own)
    reference = _records(results[REFERENCE]["eval"])
    from distill.evaluate.metrics import compare_outputs

    for arm, result in results.items():
        if arm != REFERENCE:
            records = _records(result["eval"])
            result["vs_filtered"] = compare_outputs(reference, records, cfg.eval.confidence, cfg.eval.bootstrap)
            if "sound" in result["metrics"]:
                result["vs_filtered_sound"] = compare_outputs(reference, records, cfg.eval.confidence,
                                                              cfg.eval.bootstrap, field="sound")
    report = AblationReport(
        reference=REFERENCE, max_steps=cfg.finetune.max_steps, eval_problems=str(cfg.eval.problems),
        arms={a: _public(r) for a, r in results.items()},
        note="pass@1 and sound accuracy on the held-out eval problems; difference = arm minus filtered "
             "on the same problems, paired bootstrap interval")
    path = report.write(layout.ablation.report)
    write_text_atomic(layout.ablation.table, "\n".join(markdown_table(report)) + "\n")
    log.info("ablation:\n%s", "\n".join(markdown_table(report)))
    return path


def _run_arm(cfg: PipelineConfig, layout: RunLayout, arm: str, own: list[Step]) -> dict:
    started = time.time()
    if arm == REFERENCE:  # the method: the run's own adapter and eval-after, trained and scored alike
        steps = {step.name: step for step in own}
        train, scored, reused = steps["finetune"], steps["eval-after"], True
    else:
        data, fmt = _arm_data(cfg, layout, arm)
        train, scored = plan_arm(cfg, layout.root, arm, data, fmt)
        log.info("ablation arm %s: training on %s", arm, data)
        reused = run_step(train).reused
        reused = run_step(scored).reused and reused
    record = AdapterRecord.read(train.cfg.out)
    report = EvalFiles(Path(scored.cfg.out)).report
    return {"label": LABELS[arm], "adapter": train.cfg.out, "eval": scored.cfg.out, "data": train.cfg.data,
            "reasoning_format": train.cfg.reasoning_format, "train_examples": record.data.get("train_examples"),
            "steps": record.metrics.get("steps"), "train_seconds": record.metrics.get("wall_time_s"),
            "metrics": EvalReport.read(report).metrics, "reused": reused,
            "seconds_this_run": round(time.time() - started, 1)}


def _arm_data(cfg: PipelineConfig, layout: RunLayout, arm: str) -> tuple[Path, str]:
    """An arm's training set (made from the run's traces) and how it renders the reasoning."""
    if arm == "answers_only":
        return _answers_only(layout), "{content}"
    return _unfiltered(layout), cfg.finetune.reasoning_format


def _unfiltered(layout: RunLayout) -> Path:
    """Every trace the teacher returned (last record per pair, failed requests left out), nothing filtered."""
    rows = [rec for rec in read_latest(layout.traces).values() if not is_failed(rec) and rec.get("content")]
    return _write_rows(layout.ablation.data("unfiltered"), rows)


def _answers_only(layout: RunLayout) -> Path:
    """The filtered traces without their reasoning (the same examples as the filtered arm, answers alone)."""
    rows = [{**rec, "reasoning": None} for rec in read_latest(layout.kept).values()]
    return _write_rows(layout.ablation.data("answers_only"), rows)


def _write_rows(path: Path, rows: list[dict]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def _records(eval_dir: str) -> list[dict]:
    return list(read_latest(EvalFiles(Path(eval_dir)).outputs).values())


def _public(result: dict) -> dict:
    m = result["metrics"]
    keep = {k: m[k] for k in ("problems", "pass@1", "pass@1_interval", "sound", "by_family", "by_source") if k in m}
    return {**{k: v for k, v in result.items() if k != "metrics"}, "metrics": keep}


def table_rows(report: AblationReport) -> tuple[list[str], list[list[str]]]:
    """The ablation table: pass@1 per arm (Wilson interval) and the paired difference against filtered."""
    header = ["arm", "train examples", "steps", "pass@1 [95% CI]", "pass@1 vs filtered (paired 95% CI)",
              "sound", "sound vs filtered"]
    rows = []
    for arm in ARMS:
        r = report.arms.get(arm)
        if r is None:
            continue
        m = r["metrics"]
        ci = m.get("pass@1_interval") or {}
        sound = f"{100 * m['sound']:.1f}%" if isinstance(m.get("sound"), (int, float)) else "n/a"
        rows.append([r["label"], str(r["train_examples"]), str(r["steps"]),
                     f"{100 * m['pass@1']:.1f}% [{100 * ci.get('low', 0):.1f}, {100 * ci.get('high', 1):.1f}]",
                     _versus(r, "vs_filtered"), sound, _versus(r, "vs_filtered_sound")])
    return header, rows


def _versus(arm: dict, key: str) -> str:
    if arm["label"] == LABELS[REFERENCE]:
        return "reference"
    c = arm.get(key)
    if not c or c.get("difference") is None:
        return "-"
    return f"{100 * c['difference']:+.1f} pts [{100 * c['interval']['low']:+.1f}, {100 * c['interval']['high']:+.1f}]"


def markdown_table(report: AblationReport) -> list[str]:
    """:func:`table_rows` as Markdown lines."""
    header, rows = table_rows(report)
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
