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
with a paired bootstrap interval (:func:`distill.estimates.compare_outputs`), and so is every other
accuracy of the metrics record (sound...). An arm is a finetune and an eval step
(:func:`distill.pipeline.wiring.plan_arm`) run through the same ledger as the run's own steps: one
whose key (settings and data bytes) is unchanged is reused. Whatever the table says is reported,
including when it goes against the method.

The continued arms ask what to do after SFT, at equal CPU time: each starts from the run's SFT
adapter (``filtered``) and trains on the kept traces' problems for the ``onpolicy`` section's
``max_steps`` / ``max_train_seconds`` and learning rate: ``sft_continued`` (more SFT),
``onpolicy_self`` (on-policy, the student shown the verified trace scores its own answers),
``onpolicy_model`` (on-policy, ``onpolicy.teacher_model`` as the teacher). Their difference
against ``filtered`` is what the extra training bought.

The pick arms ask which of a problem's verified traces to train on: each runs the recipe's filter
again on the run's traces (``ablation/<arm>/kept.jsonl``) with ``per_problem.policy`` the arm's
(``pick_shortest``, ``pick_random``, ``pick_first``, ``pick_learnable``) and the same
``per_problem.max``, then trains and scores as the other arms. The run's own policy is the reference.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from distill.artifacts import AblationReport, AdapterRecord, EvalReport, is_failed, read_latest
from distill.layout import EvalFiles, RunLayout
from distill.pipeline.config import ARMS, CONTINUED, PICKS, PipelineConfig
from distill.pipeline.steps import Step, run_step
from distill.pipeline.wiring import plan_arm, plan_continued_arm, plan_pick_arm
from distill.records import write_text_atomic

log = logging.getLogger(__name__)

REFERENCE = "filtered"
LABELS = {"answers_only": "(a) answers only, no reasoning", "unfiltered": "(b) all traces, unfiltered",
          "filtered": "(c) filtered traces (the method)",
          "sft_continued": "(d) (c) + more SFT on the same traces", "onpolicy_self": "(e) (c) + on-policy, self teacher",
          "onpolicy_model": "(f) (c) + on-policy, model teacher", "pick_shortest": "(g) per problem: the shortest",
          "pick_random": "(h) per problem: at random", "pick_first": "(i) per problem: the first sample",
          "pick_learnable": "(j) per problem: the most learnable"}


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
    for arm, result in results.items():
        if arm != REFERENCE:
            result.update(_versus_reference(reference, _records(result["eval"]), result["metrics"], cfg.eval))
    report = AblationReport(
        reference=REFERENCE, max_steps=cfg.finetune.max_steps, eval_problems=str(cfg.eval.problems),
        arms=results,
        note="every accuracy on the held-out eval problems; difference = arm minus filtered on the same "
             "problems, paired bootstrap interval")
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
        picked: list[Step] = []
        if arm in CONTINUED:  # from the run's SFT adapter, each for the onpolicy section's steps and seconds
            train, scored = plan_continued_arm(cfg, layout.root, arm)
        elif arm in PICKS:  # the run's filter again, keeping per problem by another policy
            *picked, train, scored = plan_pick_arm(cfg, layout.root, arm)
        else:
            data, fmt = _arm_data(cfg, layout, arm)
            train, scored = plan_arm(cfg, layout.root, arm, data, fmt)
        reused = all([run_step(step).reused for step in picked])
        log.info("ablation arm %s: training on %s", arm, train.cfg.data)
        reused = run_step(train).reused and reused
        reused = run_step(scored).reused and reused
    record = AdapterRecord.read(train.cfg.out)
    report = EvalFiles(Path(scored.cfg.out)).report
    return {"label": LABELS[arm], "adapter": train.cfg.out, "eval": scored.cfg.out, "data": train.cfg.data,
            "reasoning_format": train.cfg.reasoning_format, "train_examples": record.data.get("train_examples"),
            "steps": record.metrics.get("steps"), "train_seconds": record.metrics.get("wall_time_s"),
            "metrics": EvalReport.read(report).metrics.to_dict(), "reused": reused,
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


def _versus_key(metric: str) -> str:
    """Where an arm keeps its paired comparison with filtered: vs_filtered (pass@1), vs_filtered_<metric>."""
    return "vs_filtered" if metric == "pass@1" else f"vs_filtered_{metric}"


def _versus_reference(reference: list[dict], records: list[dict], metrics: dict, ev) -> dict:
    """Each accuracy of the record the arm measured, compared with filtered on the same problems: over all
    problems, and per family (``by_family``: family -> the same keys) where the problems name one."""
    from distill.estimates import compare_outputs
    from distill.metrics import accuracy_specs

    def versus(ref: list[dict], recs: list[dict]) -> dict:
        return {_versus_key(spec.key): compare_outputs(ref, recs, ev.confidence, ev.bootstrap, field=spec.sample_field)
                for _, spec in accuracy_specs() if metrics.get(spec.key) is not None}

    families = sorted({r["family"] for r in reference if r.get("family")})
    by_family = {f: versus([r for r in reference if r.get("family") == f], [r for r in records if r.get("family") == f])
                 for f in families}
    return {**versus(reference, records), **({"by_family": by_family} if by_family else {})}


def table_rows(report: AblationReport) -> tuple[list[str], list[list[str]]]:
    """The ablation table: every accuracy per arm (Wilson interval) and its paired difference against filtered."""
    from distill.metrics import metric_rows, metrics_from_json

    arms = [report.arms[a] for a in ARMS if a in report.arms]
    accuracies = [metric_rows(metrics_from_json(a["metrics"]), sections=("accuracy",)) for a in arms]
    keys = list(dict.fromkeys(r.key for rows in accuracies for r in rows))
    header = ["arm", "train examples", "steps"]
    header += [h for k in keys for h in (f"{k} [95% CI]", f"{k} vs filtered (paired 95% CI)")]
    table = []
    for arm, rows in zip(arms, accuracies):
        mine = {r.key: r for r in rows}
        cells = [c for k in keys for c in (mine[k].text() if k in mine else "n/a", _versus(arm, _versus_key(k)))]
        table.append([arm["label"], str(arm["train_examples"]), str(arm["steps"]), *cells])
    return header, table


def _versus(arm: dict, key: str) -> str:
    if arm.get("label") == LABELS[REFERENCE]:
        return "reference"
    c = arm.get(key)
    if not c or c.get("difference") is None:
        return "-"
    return f"{100 * c['difference']:+.1f} pts [{100 * c['interval']['low']:+.1f}, {100 * c['interval']['high']:+.1f}]"


def family_rows(report: AblationReport) -> tuple[list[str], list[list[str]]]:
    """Per family, each arm's paired difference against filtered (pass@1 and sound, paired 95% CI)."""
    arms = [report.arms[a] for a in ARMS if a in report.arms and report.arms[a].get("by_family")]
    header = ["arm", "family", "pass@1 vs filtered", "sound vs filtered", "problems"]
    rows = [[arm["label"], family, _versus(versus, "vs_filtered"), _versus(versus, "vs_filtered_sound"),
             str(versus.get("vs_filtered", {}).get("paired_problems", "-"))]
            for arm in arms for family, versus in arm["by_family"].items()]
    return header, rows


def markdown_table(report: AblationReport) -> list[str]:
    """:func:`table_rows` (and :func:`family_rows` where there are families) as Markdown lines."""
    lines = []
    for header, rows in (table_rows(report), family_rows(report)):
        if rows:
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines[1:]
