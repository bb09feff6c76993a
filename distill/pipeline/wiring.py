"""The pipeline's plan: each step's stage config with its paths inside the run folder, its inputs and outputs.

Usage:
    steps = plan(cfg, run_dir)          # [Step("generate", ...), Step("filter", ...), ...]
    key = step_key(steps[0], run_dir)    # what decides whether its output can be reused

Pure apart from reading the input files' bytes for the keys: no stage runs here. Every path
comes from :class:`distill.artifacts.RunLayout`; setting a field a stage does not have fails.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.layout import RunLayout
from distill.config import to_dict
from distill.errors import ConfigError
from distill.pipeline.config import PipelineConfig
from distill.publish.config import PublishConfig
from distill.pipeline.state import stage_key
from distill.records import write_text_atomic

# Options that change how fast or how visibly a stage works, never what it writes.
_NO_EFFECT = frozenset({
    "progress", "concurrency", "rpm", "tpm", "adaptive", "request_timeout", "max_attempts", "backoff_base",
    "backoff_max", "fsync", "resume", "workers", "save_steps", "stream", "chunksize", "batch",
})
# Generate can extend its output: more problems or samples keep the traces already paid for; and
# where the same model is reached (another replica, another key variable) does not change a trace.
_EXTENDS = frozenset({"limit", "samples", "max_cost_usd", "est_completion_tokens", "base_url", "api_key_env",
                      "until_correct", "max_samples", "rationalize", "rationalize_samples"})
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
    run = RunLayout(Path(run_dir).resolve())
    wanted = set(cfg.stages)
    eval_problems = _local(cfg.eval.problems)
    steps: list[Step] = []
    if "generate" in wanted:
        gen = _wired(cfg.generate, out=str(run.traces))
        extra = {"teacher": "offline", "offline_teacher": to_dict(cfg.offline_teacher)} if cfg.teacher == "offline" else {}
        # The resolved config travels with the traces (set aside and restored together): generate
        # refuses traces whose config names another teacher or sampling.
        steps.append(Step("generate", "generate", gen, run.traces, [run.traces, run.generate_config],
                          inputs={"problems": _local(gen.problems)}, extra_key=extra))
    if "filter" in wanted:
        # Held-out problems never reach training, whatever the recipe forgot to say.
        decontam = cfg.filter.decontam.problems or ([str(eval_problems)] if eval_problems else [])
        flt = _wired(cfg.filter, traces=str(run.traces), out=str(run.kept), rejected=None, stats=None,
                     decontam=dataclasses.replace(cfg.filter.decontam, problems=decontam),
                     learnability=_learnability(cfg))
        steps.append(Step("filter", "filter", flt, run.kept, [run.kept, run.filter.rejected, run.filter.stats],
                          inputs={"traces": run.traces, **({"student": _local(flt.learnability.student)}
                                                           if flt.learnability.enabled else {})}))
    if "finetune" in wanted:
        ft = _wired(cfg.finetune, data=str(run.kept), out=str(run.adapter.folder), resume=True)
        steps.append(Step("finetune", "finetune", ft, run.adapter.folder, [run.adapter.folder],
                          inputs={"data": run.kept, "student": _local(ft.student), "dev": _local(ft.eval_problems),
                                  # the start's bytes, not its path: a retrained start re-runs finetune
                                  **({"init_adapter": _local(ft.init_adapter)} if ft.init_adapter else {})}))
    if "eval" in wanted:
        steps.extend(_eval_steps(cfg, run, with_adapter="finetune" in wanted or run.adapter.folder.exists()))
    if "publish" in wanted:
        paths = dict(out=str(run.publish), stats=str(run.filter.stats), traces=str(run.traces),
                     eval=str(run.eval_after.folder) if "eval" in wanted else None,
                     adapter=str(run.adapter.folder) if cfg.publish.repo_id else None,
                     dataset=str(run.kept) if cfg.publish.dataset_repo_id else None,
                     guard_eval=str(run.guard_after.folder) if cfg.guard_problems and "eval" in wanted else None)
        try:
            pub = PublishConfig(**{**_fields(cfg.publish), **paths})  # publish's own checks run here
        except ConfigError as exc:
            raise ConfigError(f"publish: {exc} (the pipeline sets adapter= and dataset= itself)") from None
        steps.append(Step("publish", "publish", pub, run.publish, [run.publish],
                          inputs={"adapter": run.adapter.folder, "kept": run.kept, "eval": run.eval_after.report}))
    return steps


def _learnability(cfg: PipelineConfig) -> Any:
    """Filter's learnability section scoring for the run's student, rendered as finetune will train it."""
    learn, ft = cfg.filter.learnability, cfg.finetune
    if not learn.enabled:
        return copy.deepcopy(learn)
    return dataclasses.replace(learn, student=learn.student or ft.student, chat_template=ft.chat_template,
                               system_prompt=ft.system_prompt, reasoning_format=ft.reasoning_format,
                               max_length=ft.max_length, overlong=ft.overlong)


def materialize_sources(cfg: PipelineConfig, run_dir: Path) -> PipelineConfig:
    """A copy of ``cfg`` whose ``offline:...`` problem specs are written to JSONL files in the run folder.

    The offline families are made in code (any working directory, an installed wheel); as files
    they reach every stage through the ordinary file source, and their bytes enter the stage keys.
    """
    cfg = copy.deepcopy(cfg)
    for part in (cfg.generate, cfg.eval):
        if isinstance(part.problems, str) and part.problems.startswith("offline:"):
            part.problems = str(_write_offline(part.problems, Path(run_dir)))
    cfg.filter.decontam.problems = [str(_write_offline(s, Path(run_dir))) if s.startswith("offline:") else s
                                    for s in cfg.filter.decontam.problems]
    return cfg


def _write_offline(spec: str, run_dir: Path) -> Path:
    import hashlib
    import json

    from distill.teacher.offline_sets import from_spec

    try:
        problems = from_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"problems: {exc}") from None
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in problems)
    slug = "".join(c if c.isalnum() else "-" for c in spec[len("offline:"):]).strip("-")
    path = RunLayout(Path(run_dir)).problems_dir / f"offline-{slug}-{hashlib.sha256(spec.encode()).hexdigest()[:6]}.jsonl"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def _eval_steps(cfg: PipelineConfig, run: RunLayout, with_adapter: bool) -> list[Step]:
    """eval-before scores the bare student prompted the way finetune will train it (generate's user
    template, finetune's system prompt); eval-after reads how the adapter was trained from its record."""
    problems, student = _local(cfg.eval.problems), _local(cfg.eval.student)
    before, after = run.eval_before, run.eval_after
    steps = []
    if cfg.eval_before:
        prompt = cfg.eval.prompt_template or cfg.generate.prompt_template
        system = cfg.eval.system_prompt if cfg.eval.system_prompt is not None else cfg.finetune.system_prompt
        ev = _wired(cfg.eval, out=str(before.folder), adapter=None, compare=None, compare_base=False,
                    prompt_template=prompt, system_prompt=system)
        steps.append(Step("eval-before", "eval", ev, before.folder, [before.folder],
                          inputs={"problems": problems, "student": student}))
    if with_adapter:
        compare = str(before.folder) if cfg.eval_before else None
        ev = _wired(cfg.eval, out=str(after.folder), adapter=str(run.adapter.folder), compare=compare,
                    compare_base=False)
        steps.append(Step("eval-after", "eval", ev, after.folder, [after.folder], inputs={
            "problems": problems, "student": student, "adapter": run.adapter.folder,
            "before": before.report if cfg.eval_before else None}))
    if cfg.guard_problems:
        steps.extend(_guard_steps(cfg, run, with_adapter))
    return steps


def _guard_steps(cfg: PipelineConfig, run: RunLayout, with_adapter: bool) -> list[Step]:
    """The guard problems scored like the held-out ones, before and after (always both: forgetting is a drop)."""
    problems, student = _local(cfg.guard_problems), _local(cfg.eval.student)
    before, after = run.guard_before, run.guard_after
    prompt = cfg.eval.prompt_template or cfg.generate.prompt_template
    system = cfg.eval.system_prompt if cfg.eval.system_prompt is not None else cfg.finetune.system_prompt
    ev = _wired(cfg.eval, problems=cfg.guard_problems, out=str(before.folder), adapter=None, compare=None,
                compare_base=False, prompt_template=prompt, system_prompt=system)
    steps = [Step("guard-before", "eval", ev, before.folder, [before.folder],
                  inputs={"problems": problems, "student": student})]
    if with_adapter:
        ev = _wired(cfg.eval, problems=cfg.guard_problems, out=str(after.folder), adapter=str(run.adapter.folder),
                    compare=str(before.folder), compare_base=False)
        steps.append(Step("guard-after", "eval", ev, after.folder, [after.folder], inputs={
            "problems": problems, "student": student, "adapter": run.adapter.folder, "before": before.report}))
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


def _wired(section_cfg: Any, **paths: Any) -> Any:
    """A copy of a stage config with the pipeline's paths set; a field the stage lacks is a TypeError
    (a renamed option must fail here, not be skipped), and the stage's own checks run again."""
    return dataclasses.replace(copy.deepcopy(section_cfg), **paths)


def _fields(cfg: Any) -> dict[str, Any]:
    return {f.name: copy.deepcopy(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _local(spec: str | None) -> Path | None:
    """A local file or folder named by a source/student option (Hub names and aliases: None)."""
    if not spec or not isinstance(spec, str):
        return None
    path = Path(spec)
    return path.resolve() if path.exists() else None
