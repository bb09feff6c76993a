"""Runs the pipeline's steps in one run folder, reusing each stage's output while its key is unchanged.

Usage:
    run_dir = run(load_pipeline(None, ["name=demo"]))    # what `distill run name=demo` does

For each step in order: compute its key (resolved config + the bytes of its inputs); if the
ledger says it finished with that key and its outputs exist, reuse it; otherwise run the stage
(which resumes its own partial output after an interruption). Since a step's key includes its
inputs' bytes, a changed stage re-runs itself and whatever its output feeds, and nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from distill.config import save_resolved
from distill.errors import ConfigError, DistillError, SamplesFailed
from distill.lock import exclusive_lock
from distill.pipeline.config import OfflineTeacherConfig, PipelineConfig
from distill.pipeline.state import Ledger
from distill.pipeline.wiring import Step, materialize_sources, plan, step_key, step_lineage
from distill.preflight import check_run_outputs, preflight
from distill.records import read_jsonl

log = logging.getLogger(__name__)


def run(cfg: PipelineConfig) -> Path:
    """Run every step of ``cfg`` that is not current; write the summary and report; return the run folder."""
    preflight(cfg)  # every stage's options and named files, before anything is written or sent
    run_dir = cfg.folder.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(run_dir, lock_file=run_dir / ".lock"):  # one `distill run` per run folder
        return _run(cfg, run_dir)


def _run(cfg: PipelineConfig, run_dir: Path) -> Path:
    save_resolved(cfg, run_dir / "recipe.yaml")
    steps = plan(materialize_sources(cfg, run_dir), run_dir)
    _check_inputs(steps, run_dir)
    check_run_outputs(steps, _recipe_inputs(cfg))
    left_failed: list[str] = []
    ledger = Ledger(run_dir)
    t0 = time.time()
    log.info("distill run: %d steps in %s", len(steps), run_dir)
    with contextlib.ExitStack() as stack:
        teacher_url: list[str] = []
        for index, step in enumerate(steps, 1):
            _banner(index, len(steps), step)
            if step.section == "generate" and cfg.teacher == "offline" and not teacher_url:
                # Started only when generate has work to do: a fully reused run sends nothing.
                if not _is_current(ledger, step, run_dir, cfg):
                    teacher_url.append(stack.enter_context(offline_teacher(cfg.offline_teacher)))
            if step.section == "generate" and teacher_url:
                _point_at(step, cfg.offline_teacher, teacher_url[0])
            if getattr(step.cfg, "dry_run", False) and step.section == "generate":
                # An estimate, not a stage: nothing is recorded and nothing after it can run.
                importlib.import_module(step.module).run(step.cfg)
                log.info("distill run: generate.dry_run=true, so the pipeline stops here")
                return run_dir
            failed = _run_step(step, ledger, run_dir, fresh=step.section in cfg.force)
            if failed:
                left_failed.append(f"{step.name}: {failed} samples failed")
    log.info("distill run: finished in %.1f s", time.time() - t0)
    from distill.pipeline.summary import collect, show_summary

    figures = collect(run_dir)
    show_summary(figures)
    if cfg.report:
        from distill.pipeline.report import write_report

        md, html = write_report(run_dir, figures)
        log.info("report: %s (and %s)", md, html.name)
    if left_failed:  # the run finished on what came back; a script must still see that some did not
        raise SamplesFailed(f"{'; '.join(left_failed)} (see the error field in traces.jsonl); "
                            "`distill run` again retries them")
    return run_dir


def _recipe_inputs(cfg: PipelineConfig) -> dict[str, object]:
    """The files and folders the recipe names (the pipeline's own paths are outputs, not inputs)."""
    get = getattr
    return {"generate.problems": get(cfg.generate, "problems", None), "eval.problems": get(cfg.eval, "problems", None),
            "filter.decontam.problems": list(get(get(cfg.filter, "decontam", None), "problems", []) or []),
            "finetune.student": get(cfg.finetune, "student", None),
            "finetune.chat_template": get(cfg.finetune, "chat_template", None)}


def _run_step(step: Step, ledger: Ledger, run_dir: Path, fresh: bool) -> int:
    key, lineage = step_key(step, run_dir), step_lineage(step, run_dir)
    ledger.switch(step.name, lineage, step.outputs, fresh=fresh)
    if not fresh and ledger.is_current(step.name, key, step.outputs):
        ledger.mark_reused(step.name)
        log.info("%s: reused (settings and inputs unchanged, key %s)", step.name, key)
        return 0
    previous = ledger.read(step.name)
    if previous and previous.get("key") == key and previous.get("status") != "done":
        log.info("%s: resuming the previous attempt", step.name)
    ledger.start(step.name, key, step.outputs, lineage=lineage)
    module = importlib.import_module(step.module)
    try:
        module.run(step.cfg)
    except SamplesFailed:
        if step.section != "generate":
            raise
        # Generate's failed samples are counted below: the pipeline goes on with what came back.
    good, failed = _count_traces(step)
    ledger.finish(step.name, complete=not failed)
    if failed and not good:
        raise SamplesFailed(f"{step.name}: every sample failed (see the error field in {step.main}); "
                           "check the teacher settings, then run again to retry them")
    if failed:
        log.warning("%s: %d samples failed; they are retried on the next `distill run`", step.name, failed)
    return failed


def _is_current(ledger: Ledger, step: Step, run_dir: Path, cfg: PipelineConfig) -> bool:
    if step.section in cfg.force:
        return False
    return ledger.is_current(step.name, step_key(step, run_dir), step.outputs)


def _count_traces(step: Step) -> tuple[int, int]:
    """Generate's (good, failed) samples, the last record of a pair winning; (1, 0) for other stages."""
    if step.section != "generate" or not step.main.exists():
        return 1, 0
    last = {(rec.get("id"), rec.get("sample")): _is_failure(rec.get("error")) for _, rec in read_jsonl(step.main)}
    failed = sum(last.values())
    return len(last) - failed, failed


def _is_failure(error: object) -> bool:
    # A trace dropped as truncated (on_truncated=drop) is settled, not failed: it is never re-asked.
    return bool(error) and not (isinstance(error, dict) and error.get("type") == "truncated")


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
    import distill.teacher.offline  # noqa: F401  (slow import done here, not inside the server's start-up wait)
    from distill.teacher.server import TeacherServer

    server = TeacherServer(dialect=cfg.dialect, latency=cfg.latency, model=cfg.model,
                           mistake_rate=cfg.mistake_rate, seed=cfg.seed)
    with server:
        if not server.port:
            raise DistillError("the built-in offline teacher did not start listening (machine overloaded?); run again")
        log.info("teacher: the built-in offline teacher at %s (for trying the pipeline; "
                 "use a generate/*.yaml recipe for a real one)", server.base_url)
        yield server.base_url


def _point_at(step: Step, teacher: OfflineTeacherConfig, url: str) -> None:
    """Send generate to the offline teacher through the same OpenAI-compatible client as a real one."""
    step.cfg.base_url = url
    step.cfg.model = teacher.model
    step.cfg.provider = "offline"
    step.cfg.api_key_env = None
