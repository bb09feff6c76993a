"""The pipeline's plan: each step's stage config with its paths inside the run folder, its inputs and outputs.

Usage:
    steps = plan(cfg, run_dir)          # [Step("generate", ...), Step("filter", ...), ...]
    key = step_key(steps[0], run_dir)    # what decides whether its output can be reused

Pure apart from reading the input files' bytes for the keys: no stage runs here. A stage config
field the pipeline would set but the stage does not have is skipped (logged), so the pipeline
keeps working while a stage's options evolve.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.config import to_dict
from distill.errors import ConfigError
from distill.pipeline.config import PipelineConfig
from distill.pipeline.state import stage_key
from distill.records import write_text_atomic

log = logging.getLogger(__name__)

# Options that change how fast or how visibly a stage works, never what it writes.
_NO_EFFECT = frozenset({
    "progress", "concurrency", "rpm", "tpm", "adaptive", "request_timeout", "max_attempts", "backoff_base",
    "backoff_max", "fsync", "resume", "workers", "num_workers", "save_steps", "logging_steps", "log_every",
    "stream",
})
# Generate can extend its output: more problems or samples keep the traces already paid for; and
# where the same model is reached (another replica, another key variable) does not change a trace.
_EXTENDS = frozenset({"limit", "samples", "max_cost_usd", "est_completion_tokens", "base_url", "api_key_env"})
# With the built-in teacher these are set per run (a free port), so they stand for the teacher's settings.
_TEACHER_ENDPOINT = ("base_url", "api_key_env", "provider", "model")

MODULES = {"generate": "distill.generate", "filter": "distill.filter", "finetune": "distill.finetune",
           "eval": "distill.evaluate", "publish": "distill.publish"}


@dataclass
class Step:
    """One stage run: ``name`` is its state name (eval runs twice: eval-before, eval-after)."""

    name: str
    section: str
    cfg: Any
    main: Path
    outputs: list[Path]
    inputs: dict[str, Path | None] = field(default_factory=dict)
    extra_key: dict[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return MODULES[self.section]


def plan(cfg: PipelineConfig, run_dir: Path) -> list[Step]:
    """The steps ``cfg.stages`` asks for, in pipeline order, each with its config wired into ``run_dir``."""
    run_dir = Path(run_dir).resolve()
    traces, kept, adapter = run_dir / "traces.jsonl", run_dir / "kept.jsonl", run_dir / "adapter"
    before, after = run_dir / "eval-before", run_dir / "eval-after"
    steps: list[Step] = []
    wanted = set(cfg.stages)

    if "generate" in wanted:
        gen = _wired(cfg.generate, "generate", out=str(traces))
        extra = {"teacher": "offline", "offline_teacher": to_dict(cfg.offline_teacher)} if cfg.teacher == "offline" else {}
        # The resolved config travels with the traces (set aside and restored together): generate
        # refuses traces whose config names another teacher or sampling.
        steps.append(Step("generate", "generate", gen, traces, [traces, run_dir / "traces.config.yaml"],
                          inputs={"problems": _local(getattr(gen, "problems", None))}, extra_key=extra))
    if "filter" in wanted:
        flt = _wired(cfg.filter, "filter", traces=str(traces), out=str(kept), rejected=None, stats=None)
        eval_problems = _local(getattr(cfg.eval, "problems", None))
        decontam = getattr(flt, "decontam", None)
        if eval_problems is not None and decontam is not None and not decontam.problems:
            # Held-out problems never reach training, whatever the recipe forgot to say.
            decontam.problems = [str(eval_problems)]
        steps.append(Step("filter", "filter", flt, kept,
                          [kept, run_dir / "rejected.jsonl", run_dir / "stats.json"], inputs={"traces": traces}))
    if "finetune" in wanted:
        ft = _wired(cfg.finetune, "finetune", data=str(kept), out=str(adapter), resume=True)
        steps.append(Step("finetune", "finetune", ft, adapter, [adapter],
                          inputs={"data": kept, "student": _local(getattr(ft, "student", None))}))
    if "eval" in wanted:
        steps.extend(_eval_steps(cfg, adapter, before, after, with_adapter="finetune" in wanted or adapter.exists()))
    if "publish" in wanted:
        pub = _wired(cfg.publish, "publish", out=str(run_dir / "publish"), stats=str(run_dir / "stats.json"),
                     traces=str(traces), eval=str(after) if "eval" in wanted else None,
                     adapter=str(adapter) if getattr(cfg.publish, "repo_id", None) else None,
                     dataset=str(kept) if getattr(cfg.publish, "dataset_repo_id", None) else None)
        if callable(getattr(pub, "check", None)):
            try:
                pub.check()
            except ConfigError as exc:
                raise ConfigError(f"publish: {exc} (the pipeline sets adapter= and dataset= itself)") from None
        steps.append(Step("publish", "publish", pub, run_dir / "publish", [run_dir / "publish"],
                          inputs={"adapter": adapter, "kept": kept, "eval": after / "report.json"}))
    return steps


def materialize_sources(cfg: PipelineConfig, run_dir: Path) -> PipelineConfig:
    """A copy of ``cfg`` whose ``offline:...`` problem specs are written to JSONL files in the run folder.

    The offline families are made in code (any working directory, an installed wheel); as files
    they reach every stage through the ordinary file source, and their bytes enter the stage keys.
    """
    cfg = copy.deepcopy(cfg)
    for part in (cfg.generate, cfg.eval):
        spec = getattr(part, "problems", None)
        if isinstance(spec, str) and spec.startswith("offline:"):
            part.problems = str(_write_offline(spec, Path(run_dir)))
    decontam = getattr(cfg.filter, "decontam", None)
    if decontam is not None:
        decontam.problems = [str(_write_offline(s, Path(run_dir))) if s.startswith("offline:") else s
                             for s in decontam.problems]
    return cfg


def _write_offline(spec: str, run_dir: Path) -> Path:
    import hashlib
    import json

    from distill.teacher import offline

    try:
        problems = offline.from_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"problems: {exc}") from None
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in problems)
    slug = "".join(c if c.isalnum() else "-" for c in spec[len("offline:"):]).strip("-")
    path = Path(run_dir) / "problems" / f"offline-{slug}-{hashlib.sha256(spec.encode()).hexdigest()[:6]}.jsonl"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def _eval_steps(cfg: PipelineConfig, adapter: Path, before: Path, after: Path, with_adapter: bool) -> list[Step]:
    problems = _local(getattr(cfg.eval, "problems", None))
    student = _local(getattr(cfg.eval, "student", None))
    steps = []
    if cfg.eval_before:
        ev = _wired(cfg.eval, "eval", out=str(before), adapter=None, compare=None, compare_base=False)
        steps.append(Step("eval-before", "eval", ev, before, [before], inputs={"problems": problems, "student": student}))
    if with_adapter:
        compare = str(before) if cfg.eval_before else None
        ev = _wired(cfg.eval, "eval", out=str(after), adapter=str(adapter), compare=compare, compare_base=False)
        steps.append(Step("eval-after", "eval", ev, after, [after], inputs={
            "problems": problems, "student": student, "adapter": adapter,
            "before": before / "report.json" if cfg.eval_before else None}))
    return steps


def step_key(step: Step, run_dir: Path) -> str:
    """The digest of the step's resolved config (run-folder paths made relative) and its inputs' bytes."""
    return stage_key(_key_config(step, run_dir), step.inputs)


def step_lineage(step: Step, run_dir: Path) -> str:
    """What must match for a stage's earlier output to be continued rather than set aside.

    Other stages: their key. Generate: its key without the options that only extend its output.
    """
    if step.section != "generate":
        return step_key(step, run_dir)
    # Nor the problem file's bytes: traces are keyed by problem id, so a grown file extends them.
    config = {k: v for k, v in _key_config(step, run_dir).items() if k not in _EXTENDS}
    return stage_key(config)


def _key_config(step: Step, run_dir: Path) -> dict[str, Any]:
    data = {k: v for k, v in to_dict(step.cfg).items() if k not in _NO_EFFECT}
    if step.extra_key.get("teacher") == "offline":
        for name in _TEACHER_ENDPOINT:
            data.pop(name, None)
    data.update(step.extra_key)
    return _relative(data, str(Path(run_dir).resolve()))


def _relative(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items() if k not in _NO_EFFECT}
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    if isinstance(value, str) and value.startswith(root):
        return "<run>" + value[len(root):]
    return value


def _wired(section_cfg: Any, section: str, **paths: Any) -> Any:
    """A copy of a stage config with the pipeline's paths set (fields the stage lacks are skipped)."""
    cfg = copy.deepcopy(section_cfg)
    names = {f.name for f in dataclasses.fields(cfg)}
    for name, value in paths.items():
        if name in names:
            setattr(cfg, name, value)
        elif value not in (None, False):
            log.debug("%s: no option %r to wire (skipped)", section, name)
    return cfg


def _set_if_unset(cfg: Any, candidates: tuple[str, ...], value: Any) -> None:
    """Set the first of ``candidates`` the stage has, unless the recipe already set it."""
    names = {f.name for f in dataclasses.fields(cfg)}
    for name in candidates:
        if name in names:
            if getattr(cfg, name) in (None, "", []):
                setattr(cfg, name, value)
            return


def _local(spec: str | None) -> Path | None:
    """A local file or folder named by a source/student option (Hub names and aliases: None)."""
    if not spec or not isinstance(spec, str):
        return None
    path = Path(spec)
    return path.resolve() if path.exists() else None
