"""`distill run` checks everything it can before the first request of the first stage is sent.

Usage:
    preflight(cfg)                  # PipelineConfig: every listed stage's config, paths and problems
    check_run_outputs(steps, inputs)   # nothing the pipeline writes in its run folder is one of your inputs

Each stage validates its own options when its config is built; this re-runs those checks (the
pipeline fills in paths and the student after building) and adds what only the whole recipe
knows: files and folders named by later stages exist, eval's problems parse, a Hub token is
there for publish. So `finetune.lora.r=0` or a missing `eval.problems` file fails in a second,
not after the teacher has been paid for every trace.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, InputError
from distill.paths import check_outputs

_LOCAL_PREFIXES = (".", "/", "~")
_LOCAL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".gguf", ".jinja", ".yaml", ".yml")


def _looks_local(spec: Any) -> bool:
    """A path the user meant as a file or folder here (not a Hub id, alias, rg: or offline: spec)."""
    return isinstance(spec, str) and ":" not in spec.split("/")[0] and (
        spec.startswith(_LOCAL_PREFIXES) or spec.endswith(_LOCAL_SUFFIXES) or spec.count("/") > 1)


def _check_source(spec: Any, key: str) -> None:
    """A named local file must exist; an ``offline:`` spec must name a set that can be made."""
    if _looks_local(spec) and not Path(spec).expanduser().exists():
        raise InputError("not found (checked before any stage runs)", path=spec, field=key)
    if isinstance(spec, str) and spec.startswith("offline:"):  # made in code: a bad spec is known now
        from distill.offline.sets import from_spec

        try:
            from_spec(spec)
        except ValueError as exc:
            raise InputError(str(exc), path=spec, field=key) from None


def preflight(cfg: Any) -> None:
    """Raise ConfigError / InputError for the first problem in any listed stage; send and write nothing."""
    stages = list(cfg.stages)
    for stage in stages:
        section = getattr(cfg, stage)
        check = getattr(section, "validate", None) or getattr(section, "__post_init__", None)
        if callable(check) and stage != "publish":  # publish is checked once the pipeline wires its paths
            try:
                check()
            except ConfigError as exc:
                raise ConfigError(f"{stage}.{exc}") from None
    if "generate" in stages:
        _check_source(cfg.generate.problems, "generate.problems")
    if "filter" in stages:
        for spec in cfg.filter.decontam.problems:
            _check_source(spec, "filter.decontam.problems")
        _check_source(cfg.filter.checks.tokenizer, "filter.checks.tokenizer")
    if "finetune" in stages:
        _check_source(cfg.finetune.student, "finetune.student")
        if cfg.finetune.chat_template not in (None, "chatml"):
            _check_source(cfg.finetune.chat_template, "finetune.chat_template")
        _check_dev_problems(cfg)
        if cfg.finetune.init_adapter:  # an adapter of this student with these lora settings, or nothing runs
            from distill.finetune.init_adapter import check_init_adapter

            check_init_adapter(cfg.finetune, key="finetune.init_adapter")
        onpolicy = getattr(cfg, "onpolicy", None)  # its model teacher, when a step or an ablation arm serves it
        if onpolicy is not None and ((onpolicy.enabled and onpolicy.teacher == "model")
                                     or "onpolicy_model" in getattr(cfg, "ablate", [])):
            _check_source(onpolicy.teacher_model, "onpolicy.teacher_model")
            _check_source(onpolicy.teacher_adapter, "onpolicy.teacher_adapter")
    if "eval" in stages:
        _check_eval_problems(cfg.eval)
        if getattr(cfg, "guard_problems", None):
            _check_eval_problems(dataclasses.replace(cfg.eval, problems=cfg.guard_problems), "guard_problems")
    loop = getattr(cfg, "loop", None)
    if loop is not None and loop.rounds > 1 and loop.generator == "endpoint":
        from distill.pipeline.lora_endpoint import LoraEndpoint

        LoraEndpoint.from_loop(loop).probe()  # the key is set, the server answers and can load adapters
    if "publish" in stages and not getattr(cfg.publish, "dry_run", True):
        from huggingface_hub import get_token

        if get_token() is None:
            raise ConfigError("publish: no Hugging Face token (set HF_TOKEN or run `hf auth login`), "
                              "or set publish.dry_run=true; checked before any stage runs")


def _check_dev_problems(cfg: Any) -> None:
    """finetune.eval_problems chooses the kept step: the held-out set there would make its figure in-sample."""
    dev = cfg.finetune.eval_problems
    if not dev:
        return
    _check_source(dev, "finetune.eval_problems")
    held = cfg.eval.problems
    same = dev == held or (isinstance(held, str) and _looks_local(dev) and Path(dev).expanduser().exists()
                           and Path(held).expanduser().exists()
                           and Path(dev).expanduser().resolve() == Path(held).expanduser().resolve())
    if same and "eval" in cfg.stages:
        raise ConfigError(f"finetune.eval_problems is the held-out eval set ({dev}): choosing the kept step on it "
                          "makes the held-out accuracy in-sample; give a separate dev split")


def _check_eval_problems(eval_cfg: Any, field: str = "eval.problems") -> None:
    """Read eval's problems now (files: all of them; reasoning-gym: the task name), so a typo costs nothing."""
    spec = eval_cfg.problems
    if not isinstance(spec, str):
        return
    if spec.startswith("offline:"):  # made in code: only the spec itself can be wrong
        _check_source(spec, field)
        return
    local = Path(spec).expanduser()
    if not (spec.startswith("rg:") or local.exists() or _looks_local(spec)):
        return  # a Hub dataset: checked when eval loads it (it may need the network)
    from distill.sources import iter_problems

    probe = dataclasses.replace(eval_cfg, limit=1) if spec.startswith("rg:") else eval_cfg
    if not sum(1 for _ in iter_problems(probe)):  # every problem parsed: a bad line fails here, located
        raise InputError("no problems to evaluate (the file is empty)", path=spec, field=field)


def check_run_outputs(steps: list, inputs: dict[str, Any]) -> None:
    """No file or folder a step writes in the run folder is one of the recipe's own inputs."""
    outputs: dict[str, Path] = {}
    for step in steps:
        for path in step.outputs:
            outputs[f"{step.name} output {path.name}"] = path
    folders = {name: None for name, path in outputs.items() if not path.suffix}
    check_outputs("run", inputs=inputs, outputs=outputs, folders=folders, probe=False)
