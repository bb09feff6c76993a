"""Ablation: does filtering pay, does reasoning pay? The same student and budget trained three ways, scored alike.

Usage:
    distill run recipes/ablation-offline.yaml            # a pipeline recipe with  ablate: [answers_only, unfiltered, filtered]
    report = run_ablation(cfg, RunLayout(run_dir))       # after the pipeline's steps; returns ablation/report.json

Arms, each trained with the recipe's finetune section (same student, ``max_steps``, batch and
learning rate) and scored on the recipe's held-out eval problems with its eval section:

- ``answers_only``: the filtered traces with the reasoning left out (``reasoning_format: {content}``);
- ``unfiltered``: every trace the teacher returned (teacher mistakes included), no filter;
- ``filtered``: the filtered traces, reasoning included: the method. This arm is the run's own
  adapter and eval-after when the pipeline trained and scored them with the same settings.

Each arm is compared with ``filtered`` on the same problems: the arm's pass@1 minus filtered's,
with a paired bootstrap interval (:func:`distill.metrics.compare_outputs`). An arm whose
key (settings and data bytes) is unchanged is reused. Whatever the table says is reported,
including when it goes against the method.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

from distill.artifacts import AdapterRecord, EvalReport, is_failed, read_latest
from distill.layout import EvalFiles, RunLayout
from distill.config import to_dict
from distill.errors import ConfigError
from distill.records import file_sha256, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

ARMS = ("answers_only", "unfiltered", "filtered")
REFERENCE = "filtered"
LABELS = {"answers_only": "(a) answers only, no reasoning", "unfiltered": "(b) all traces, unfiltered",
          "filtered": "(c) filtered traces (the method)"}


def check_arms(arms: list[str], cfg) -> None:
    """Refuse unknown arms, and an ablation whose arms would not get the same budget."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ConfigError(f"ablate: unknown arm {unknown[0]!r} (arms are {', '.join(ARMS)})")
    if arms and cfg.finetune.max_steps is None:
        raise ConfigError("ablate: set finetune.max_steps, so every arm trains for the same number of steps "
                          "(epochs would give the unfiltered arm more steps)")
    if arms and not {"filter", "finetune", "eval"} <= set(cfg.stages):
        raise ConfigError("ablate: needs the filter, finetune and eval stages in stages=")


def run_ablation(cfg, layout: RunLayout) -> Path:
    """Train and score every arm of ``cfg.ablate`` not already current; write ablation/report.json."""
    folder = layout.root / "ablation"
    arms = [a for a in ARMS if a in cfg.ablate or a == REFERENCE]  # filtered is the reference, always scored
    results: dict[str, dict] = {}
    for arm in arms:
        results[arm] = _run_arm(cfg, layout, folder, arm)
    reference = _records(results[REFERENCE]["eval"])
    for arm, result in results.items():
        if arm != REFERENCE:
            result.update(_versus_reference(reference, _records(result["eval"]), result["metrics"], cfg.eval))
    report = {"schema": 1, "reference": REFERENCE, "max_steps": cfg.finetune.max_steps,
              "eval_problems": str(cfg.eval.problems), "arms": results,
              "note": "pass@1 and sound accuracy on the held-out eval problems; difference = arm minus filtered "
                      "on the same problems, paired bootstrap interval"}
    write_json_atomic(folder / "report.json", report)
    write_text_atomic(folder / "table.md", "\n".join(markdown_table(report)) + "\n")
    log.info("ablation:\n%s", "\n".join(markdown_table(report)))
    return folder / "report.json"


def _run_arm(cfg, layout: RunLayout, folder: Path, arm: str) -> dict:
    ft, ev = _arm_configs(cfg, layout, folder, arm)
    key = _arm_key(ft, ev)
    arm_dir = folder / arm
    key_file = arm_dir / "key.txt"
    report = EvalFiles(Path(ev.out)).report
    started = time.time()
    current = key_file.is_file() and key_file.read_text().strip() == key and report.is_file()
    if arm == REFERENCE and Path(ft.out) == layout.adapter.folder:
        current = True  # the pipeline's own steps trained and scored it, with these settings
    elif not current:
        from distill.evaluate.stage import run as evaluate
        from distill.finetune import run as finetune

        log.info("ablation arm %s: training on %s", arm, ft.data)
        arm_dir.mkdir(parents=True, exist_ok=True)
        if not (AdapterRecord.exists(ft.out) and key_file.is_file() and key_file.read_text().strip() == key):
            finetune(ft)
        write_text_atomic(key_file, key + "\n")
        evaluate(ev)
    record = AdapterRecord.read(ft.out)
    return {"label": LABELS[arm], "adapter": ft.out, "eval": ev.out, "data": ft.data,
            "reasoning_format": ft.reasoning_format, "train_examples": record.data.get("train_examples"),
            "steps": record.metrics.get("steps"), "train_seconds": record.metrics.get("wall_time_s"),
            "metrics": EvalReport.read(report).metrics.to_dict(), "reused": current,
            "seconds_this_run": round(time.time() - started, 1)}


def _arm_configs(cfg, layout: RunLayout, folder: Path, arm: str):
    """The finetune and eval configs of one arm: the recipe's, with the arm's data and folders."""
    if arm == REFERENCE and layout.eval_after.report.is_file() and AdapterRecord.exists(layout.adapter.folder):
        ft = dataclasses.replace(cfg.finetune, data=str(layout.kept), out=str(layout.adapter.folder))
        return ft, dataclasses.replace(cfg.eval, out=str(layout.eval_after.folder))
    data, fmt = str(layout.kept), cfg.finetune.reasoning_format
    if arm == "answers_only":
        data, fmt = str(_answers_only(layout, folder)), "{content}"
    elif arm == "unfiltered":
        data = str(_unfiltered(layout, folder))
    ft = dataclasses.replace(cfg.finetune, data=data, reasoning_format=fmt, out=str(folder / arm / "adapter"),
                             resume=True, progress=cfg.finetune.progress)
    # As eval-after: the adapter's record gives eval the prompt it was trained with.
    ev = dataclasses.replace(cfg.eval, out=str(folder / arm / "eval"), adapter=ft.out, compare=None,
                             compare_base=False)
    return ft, ev


def _unfiltered(layout: RunLayout, folder: Path) -> Path:
    """Every trace the teacher returned (last record per pair, failed requests left out), nothing filtered."""
    rows = [rec for rec in read_latest(layout.traces).values() if not is_failed(rec) and rec.get("content")]
    return _write_rows(folder / "unfiltered.jsonl", rows)


def _answers_only(layout: RunLayout, folder: Path) -> Path:
    """The filtered traces without their reasoning (the same examples as the filtered arm, answers alone)."""
    rows = [{**rec, "reasoning": None} for rec in read_latest(layout.kept).values()]
    return _write_rows(folder / "answers_only.jsonl", rows)


def _write_rows(path: Path, rows: list[dict]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def _arm_key(ft, ev) -> str:
    quiet = ("progress", "resume", "out")
    what = {"finetune": {k: v for k, v in to_dict(ft).items() if k not in quiet},
            "eval": {k: v for k, v in to_dict(ev).items() if k not in quiet},
            "data": file_sha256(ft.data)}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _records(eval_dir: str) -> list[dict]:
    return list(read_latest(EvalFiles(Path(eval_dir)).outputs).values())


def _versus_key(metric: str) -> str:
    """Where an arm keeps its paired comparison with filtered: vs_filtered (pass@1), vs_filtered_<metric>."""
    return "vs_filtered" if metric == "pass@1" else f"vs_filtered_{metric}"


def _versus_reference(reference: list[dict], records: list[dict], metrics: dict, ev) -> dict:
    """Each accuracy of the record the arm measured, compared with filtered on the same problems."""
    from distill.metrics import accuracy_specs, compare_outputs

    return {_versus_key(spec.key): compare_outputs(reference, records, ev.confidence, ev.bootstrap,
                                                   field=spec.sample_field)
            for _, spec in accuracy_specs() if metrics.get(spec.key) is not None}


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The ablation table: every accuracy per arm (Wilson interval) and its paired difference against filtered."""
    from distill.metrics import metric_rows, metrics_from_json

    arms = [report["arms"][a] for a in ARMS if a in report["arms"]]
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
    if arm["label"] == LABELS[REFERENCE]:
        return "reference"
    c = arm.get(key)
    if not c or c.get("difference") is None:
        return "-"
    return f"{100 * c['difference']:+.1f} pts [{100 * c['interval']['low']:+.1f}, {100 * c['interval']['high']:+.1f}]"


def markdown_table(report: dict) -> list[str]:
    """:func:`table_rows` as Markdown lines."""
    header, rows = table_rows(report)
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
