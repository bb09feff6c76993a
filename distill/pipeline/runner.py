"""Runs the pipeline's steps in one run folder, reusing each stage's output while its key is unchanged.

Usage:
    run_dir = run(load_pipeline(None, ["name=demo"]))    # what `distill run name=demo` does

Read top-down: plan the steps (distill.pipeline.wiring), then for each step
(distill.pipeline.steps.run_step): its key (resolved config + the bytes of its inputs); reuse it
if the ledger says it finished with that key and its outputs exist; otherwise run the stage (which
resumes its own partial output after an interruption) and record the outcome. Since a step's key
includes its inputs' bytes, a changed stage re-runs itself and whatever its output feeds, and
nothing else. Then the ablation's arms and the STaR loop's rounds, as steps of their own through
the same rule.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from distill.config import save_resolved
from distill.errors import ConfigError, SamplesFailed
from distill.layout import RunLayout
from distill.lock import exclusive_lock
from distill.pipeline.ablation import run_ablation
from distill.pipeline.config import PipelineConfig
from distill.pipeline.loop import run_loop
from distill.pipeline.preflight import check_run_outputs, preflight
from distill.pipeline.steps import Step, execute, run_step
from distill.pipeline.wiring import materialize_sources, plan

log = logging.getLogger(__name__)


def run(cfg: PipelineConfig) -> Path:
    """Run every step of ``cfg`` that is not current; write the summary and report; return the run folder."""
    preflight(cfg)  # every stage's options and named files, before anything is written or sent
    layout = RunLayout(cfg.folder.resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(layout.root, lock_file=layout.lock):  # one `distill run` per run folder
        return _run(cfg, layout)


def _run(cfg: PipelineConfig, layout: RunLayout) -> Path:
    save_resolved(cfg, layout.recipe)
    wired = materialize_sources(cfg, layout.root)
    steps = plan(wired, layout.root)
    _check_inputs(steps, layout.root)
    check_run_outputs(steps, _recipe_inputs(cfg))
    left_failed: list[str] = []
    t0 = time.time()
    log.info("distill run: %d steps in %s", len(steps), layout.root)
    for index, step in enumerate(steps, 1):
        _banner(index, len(steps), step)
        if step.section == "generate" and step.cfg.dry_run:  # an estimate: nothing recorded, nothing after it
            execute(step)
            log.info("distill run: generate.dry_run=true, so the pipeline stops here")
            return layout.root
        failed = run_step(step, fresh=step.section in cfg.force).failed
        if failed:
            left_failed.append(f"{step.name}: {failed} samples failed")
    if cfg.ablate:  # after the run's own steps: the filtered arm is its adapter and eval-after
        run_ablation(wired, layout, steps)
    if cfg.loop.rounds > 1:
        left_failed += run_loop(wired, layout)
    log.info("distill run: finished in %.1f s", time.time() - t0)
    _summarise(cfg, layout)
    if left_failed:  # the run finished on what came back; a script must still see that some did not
        raise SamplesFailed(f"{'; '.join(left_failed)} (see the error field in {layout.traces.name}); "
                            "`distill run` again retries them")
    return layout.root


def _recipe_inputs(cfg: PipelineConfig) -> dict[str, object]:
    """The files and folders the recipe names (the pipeline's own paths are outputs, not inputs)."""
    return {"generate.problems": cfg.generate.problems, "eval.problems": cfg.eval.problems,
            "guard_problems": cfg.guard_problems, "finetune.eval_problems": cfg.finetune.eval_problems,
            "filter.decontam.problems": list(cfg.filter.decontam.problems or []),
            "finetune.student": cfg.finetune.student, "finetune.chat_template": cfg.finetune.chat_template,
            "finetune.init_adapter": cfg.finetune.init_adapter}


def _summarise(cfg: PipelineConfig, layout: RunLayout) -> None:
    from distill.pipeline.summary import collect, show_summary

    figures = collect(layout.root)
    _gate(cfg, layout, figures)
    show_summary(figures)
    if cfg.report:
        from distill.pipeline.report import write_report

        md, html = write_report(layout.root, figures)
        log.info("report: %s (and %s)", md, html.name)


def _gate(cfg: PipelineConfig, layout: RunLayout, figures) -> None:
    """Warn when the adapter made held-out accuracy worse or caused forgetting (publish refuses it)."""
    from distill.gate import judge_folders

    if not layout.eval_after.report.exists():
        return
    guard = layout.guard_after.folder if cfg.guard_problems else None
    verdict = judge_folders(layout.eval_after.folder, guard, cfg.publish.guard_max_drop, cfg.publish.allow_regression)
    figures.gate, figures.gate_failed = verdict.lines(), verdict.regressed or verdict.forgetting
    if figures.gate_failed:
        log.warning("regression check: %s", " ".join(verdict.lines()))


def _check_inputs(steps: list[Step], run_dir: Path) -> None:
    """A step whose input comes from a stage not in ``stages`` needs that input to exist already."""
    made: set[Path] = set()
    for step in steps:
        for name, path in step.inputs.items():
            inside = path is not None and run_dir in path.parents
            if inside and path not in made and not any(p in made for p in path.parents) and not path.exists():
                raise ConfigError(
                    f"stages: {step.name} needs {path.relative_to(run_dir)} ({name}), which no listed stage makes "
                    f"and which is not in {run_dir}; add the stage that makes it to stages=")
        made.update(step.outputs)


def _banner(index: int, total: int, step: Step) -> None:
    log.info("")
    log.info("━━ [%d/%d] %s %s", index, total, step.name, "━" * max(4, 60 - len(step.name)))
