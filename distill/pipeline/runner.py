"""Runs the pipeline's steps in one run folder, reusing each stage's output while its key is unchanged.

Usage:
    run_dir = run(load_pipeline(None, ["name=demo"]))    # what `distill run name=demo` does

Read top-down: plan the steps (distill.pipeline.wiring), then for each step: its key (resolved
config + the bytes of its inputs); reuse it if the ledger says it finished with that key and its
outputs exist; otherwise run the stage (which resumes its own partial output after an
interruption) and record the outcome. Since a step's key includes its inputs' bytes, a changed
stage re-runs itself and whatever its output feeds, and nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from distill.artifacts import is_failed, read_latest
from distill.layout import RunLayout
from distill.config import save_resolved
from distill.errors import ConfigError, DistillError, SamplesFailed
from distill.lock import exclusive_lock
from distill.pipeline.config import OfflineTeacherConfig, PipelineConfig
from distill.pipeline.state import Ledger
from distill.pipeline.wiring import Step, materialize_sources, plan, step_key, step_lineage
from distill.preflight import check_run_outputs, preflight

log = logging.getLogger(__name__)


def run(cfg: PipelineConfig) -> Path:
    """Run every step of ``cfg`` that is not current; write the summary and report; return the run folder."""
    preflight(cfg)  # every stage's options and named files, before anything is written or sent
    layout = RunLayout(cfg.folder.resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(layout.root, lock_file=layout.root / ".lock"):  # one `distill run` per run folder
        return _run(cfg, layout)


def _run(cfg: PipelineConfig, layout: RunLayout) -> Path:
    save_resolved(cfg, layout.recipe)
    wired = materialize_sources(cfg, layout.root)
    steps = plan(wired, layout.root)
    _check_inputs(steps, layout.root)
    check_run_outputs(steps, _recipe_inputs(cfg))
    ledger = Ledger(layout.root)
    left_failed: list[str] = []
    t0 = time.time()
    log.info("distill run: %d steps in %s", len(steps), layout.root)
    with contextlib.ExitStack() as teachers:
        for index, step in enumerate(steps, 1):
            _banner(index, len(steps), step)
            if step.section == "generate" and step.cfg.dry_run:  # an estimate: nothing recorded, nothing after it
                _start_teacher(step, cfg, teachers)
                importlib.import_module(step.module).run(step.cfg)
                log.info("distill run: generate.dry_run=true, so the pipeline stops here")
                return layout.root
            failed = run_step(step, layout.root, ledger, fresh=step.section in cfg.force,
                              start=lambda s: _start_teacher(s, cfg, teachers))
            if failed:
                left_failed.append(f"{step.name}: {failed} samples failed")
    if cfg.ablate:  # after the run's own steps: the filtered arm is its adapter and eval-after
        from distill.pipeline.ablation import run_ablation

        run_ablation(wired, layout)
    if cfg.loop.rounds > 1:
        from distill.pipeline.loop import run_loop

        left_failed += run_loop(cfg, layout, steps)
    log.info("distill run: finished in %.1f s", time.time() - t0)
    _summarise(cfg, layout)
    if left_failed:  # the run finished on what came back; a script must still see that some did not
        raise SamplesFailed(f"{'; '.join(left_failed)} (see the error field in {layout.traces.name}); "
                            "`distill run` again retries them")
    return layout.root


def run_step(step: Step, root: Path, ledger: Ledger, fresh: bool = False,
             start: Callable[[Step], None] = lambda step: None) -> int:
    """Reuse ``step`` when its key and outputs are current, else run it (``start`` first, e.g. a teacher);
    return the samples generate left failed. The loop's rounds run their steps through this too."""
    key, lineage = step_key(step, root), step_lineage(step, root)
    ledger.switch(step.name, lineage, step.outputs, fresh=fresh)
    if not fresh and ledger.is_current(step.name, key, step.outputs):
        ledger.mark_reused(step.name)
        log.info("%s: reused (settings and inputs unchanged, key %s)", step.name, key)
        return 0
    start(step)  # only when the step has work: a reused run sends nothing
    previous = ledger.read(step.name)
    if previous and previous.get("key") == key and previous.get("status") != "done":
        log.info("%s: resuming the previous attempt", step.name)
    ledger.start(step.name, key, step.outputs, lineage=lineage)
    try:
        importlib.import_module(step.module).run(step.cfg)
    except SamplesFailed:
        if step.section != "generate":
            raise
        # Generate's failed samples are counted below: the pipeline goes on with what came back.
    return _record(step, ledger)


def _recipe_inputs(cfg: PipelineConfig) -> dict[str, object]:
    """The files and folders the recipe names (the pipeline's own paths are outputs, not inputs)."""
    return {"generate.problems": cfg.generate.problems, "eval.problems": cfg.eval.problems,
            "guard_problems": cfg.guard_problems, "finetune.eval_problems": cfg.finetune.eval_problems,
            "filter.decontam.problems": list(cfg.filter.decontam.problems or []),
            "finetune.student": cfg.finetune.student, "finetune.chat_template": cfg.finetune.chat_template,
            "finetune.init_adapter": cfg.finetune.init_adapter}


def _start_teacher(step: Step, cfg: PipelineConfig, teachers: contextlib.ExitStack) -> None:
    """Point generate at the built-in offline teacher, through the same client as a real one."""
    if step.section != "generate" or cfg.teacher != "offline":
        return
    url = teachers.enter_context(offline_teacher(cfg.offline_teacher))
    step.cfg.base_url = url
    step.cfg.model = cfg.offline_teacher.model
    step.cfg.provider = "offline"
    step.cfg.api_key_env = None


def _record(step: Step, ledger: Ledger) -> int:
    """Mark the step done, or partial when generate has failed samples (retried next run); return those."""
    failed = good = 0
    if step.section == "generate" and step.main.exists():
        outcome = read_latest(step.main, keep=lambda _line, rec: is_failed(rec))
        failed = sum(outcome.values())
        good = len(outcome) - failed
    ledger.finish(step.name, complete=not failed)
    if failed and not good:
        raise SamplesFailed(f"{step.name}: every sample failed (see the error field in {step.main}); "
                            "check the teacher settings, then run again to retry them")
    if failed:
        log.warning("%s: %d samples failed; they are retried on the next `distill run`", step.name, failed)
    return failed


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


@contextlib.contextmanager
def offline_teacher(cfg: OfflineTeacherConfig) -> Iterator[str]:
    """The built-in offline teacher on 127.0.0.1 (a free port), for as long as generate needs it."""
    from distill.teacher.server import TeacherServer

    server = TeacherServer(dialect=cfg.dialect, latency=cfg.latency, model=cfg.model,
                           mistake_rate=cfg.mistake_rate, seed=cfg.seed, style=cfg.style)
    with server:
        if not server.port:
            raise DistillError("the built-in offline teacher did not start listening (machine overloaded?); run again")
        log.info("teacher: the built-in offline teacher at %s (for trying the pipeline; "
                 "use a generate/*.yaml recipe for a real one)", server.base_url)
        yield server.base_url
