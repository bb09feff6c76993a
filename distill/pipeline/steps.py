"""A step of a run (one stage with its resolved config) and the one rule that reuses it or runs it.

Usage:
    steps = plan(cfg, run_dir)             # distill.pipeline.wiring: a round's steps, configs complete
    key = step_key(steps[0])               # its keyed settings and its inputs' bytes
    outcome = run_step(steps[0])           # reused if its folder's ledger says done with this key, else run

The run's steps, every STaR round's and every ablation arm's go through :func:`run_step` and the
ledger of the folder they write in (:class:`distill.pipeline.state.Ledger`). A step's config is
complete when it is planned: its keyed settings are taken then and compared again before the key
is made and before the stage runs, so a config changed after it was keyed is refused, never run
under a key that does not describe it. The one value filled in at run time is the URL of a
teacher the pipeline starts itself (a free port, :attr:`Step.serve`): it is not keyed, and the
stage gets it on its own copy of the config.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from distill import evaluate, finetune, generate, publish
from distill import filter as filter_stage
from distill.artifacts import is_failed, read_latest
from distill.config import to_dict
from distill.errors import DistillError, SamplesFailed
from distill.pipeline.state import Ledger, stage_key

log = logging.getLogger(__name__)

# Each section's stage: the packages' run(), which import their heavy parts (torch) only when called.
STAGES: dict[str, Callable[[Any], Any]] = {
    "generate": generate.run, "filter": filter_stage.run, "finetune": finetune.run, "eval": evaluate.run,
    "publish": publish.run}

# Options that change how fast or how visibly a stage works, never what it writes.
_NO_EFFECT = frozenset({
    "progress", "concurrency", "rpm", "tpm", "adaptive", "request_timeout", "max_attempts", "backoff_base",
    "backoff_max", "fsync", "resume", "workers", "save_steps", "stream", "chunksize", "batch",
    "engine", "ray_address",  # the filter's checks on Ray give the local run's bytes
})
# Generate can extend its output: more problems or samples keep the traces already paid for; and
# where the same model is reached (another replica, another key variable) does not change a trace.
_EXTENDS = frozenset({"limit", "samples", "max_cost_usd", "est_completion_tokens", "base_url", "api_key_env",
                      "until_correct", "max_samples", "rationalize", "rationalize_samples"})
# A teacher the pipeline starts itself is reached at a free port: its settings stand for it (extra_key).
_TEACHER_ENDPOINT = ("base_url", "api_key_env", "provider", "model")

Serve = Callable[[], AbstractContextManager[str | None]]


@dataclass(frozen=True)
class Step:
    """One stage run in ``root`` (whose ledger records it): ``name`` is its ledger name (eval-before, ...)."""

    name: str
    section: str  # which stage runs: a key of STAGES
    cfg: Any  # the stage's config, complete: every path, the teacher's model and provider
    root: Path
    outputs: tuple[Path, ...]  # the first is its main output
    inputs: Mapping[str, Path | None] = field(default_factory=dict)  # their bytes are keyed
    extra_key: Mapping[str, Any] = field(default_factory=dict)  # keyed settings outside cfg
    # Starts what the stage talks to while it runs (a teacher, an endpoint loading an adapter);
    # yields the teacher's URL when the pipeline picked its port, else None.
    serve: Serve | None = None
    # Writes an input made from earlier steps' outputs (a round's training union) before keying.
    prepare: Callable[[], Any] | None = None
    settings: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))  # read-only, as the step
        object.__setattr__(self, "extra_key", MappingProxyType(copy.deepcopy(dict(self.extra_key))))
        object.__setattr__(self, "settings", _settings(self))

    @property
    def main(self) -> Path:
        return self.outputs[0]

    @property
    def stage(self) -> Callable[[Any], Any]:
        return STAGES[self.section]


@dataclass(frozen=True)
class Outcome:
    """What :func:`run_step` did: reused the step, or ran it (and how many generate samples failed)."""

    reused: bool
    failed: int = 0


def step_key(step: Step) -> str:
    """The digest of the step's keyed settings (run-folder paths made relative) and its inputs' bytes."""
    _check_unchanged(step)
    return stage_key(step.settings, dict(step.inputs))


def step_lineage(step: Step) -> str:
    """What must match for a stage's earlier output to be continued rather than set aside.

    Other stages: their key. Generate: its key without the options that only extend its output,
    nor the problem file's bytes (traces are keyed by problem id, so a grown file extends them).
    """
    if step.section != "generate":
        return step_key(step)
    _check_unchanged(step)
    return stage_key({k: v for k, v in step.settings.items() if k not in _EXTENDS})


def run_step(step: Step, fresh: bool = False) -> Outcome:
    """Reuse ``step`` when its ledger says it finished with its key and its outputs exist, else run it.

    ``fresh``: run it even so (its earlier output is set aside). A generate that left some samples
    failed is recorded partial and its count returned: the next run retries them.
    """
    if step.prepare is not None:
        step.prepare()
    ledger = Ledger(step.root)
    key, lineage = step_key(step), step_lineage(step)
    ledger.switch(step.name, lineage, list(step.outputs), fresh=fresh)
    if not fresh and ledger.is_current(step.name, key, list(step.outputs)):
        ledger.mark_reused(step.name)
        log.info("%s: reused (settings and inputs unchanged, key %s)", step.name, key)
        return Outcome(reused=True)
    previous = ledger.read(step.name)
    if previous and previous.get("key") == key and previous.get("status") != "done":
        log.info("%s: resuming the previous attempt", step.name)
    ledger.start(step.name, key, list(step.outputs), lineage=lineage)
    try:
        execute(step)
    except SamplesFailed:
        if step.section != "generate":
            raise
        # Generate's failed samples are counted below: the pipeline goes on with what came back.
    return Outcome(reused=False, failed=_record(step, ledger))


def execute(step: Step) -> Any:
    """Run the step's stage (nothing recorded): with what ``serve`` starts, on a copy of its config."""
    _check_unchanged(step)
    with contextlib.ExitStack() as running:
        url = running.enter_context(step.serve()) if step.serve is not None else None
        cfg = copy.deepcopy(step.cfg)  # whatever the stage does to its config stays out of the step
        if url is not None:
            if "base_url" in step.settings:
                raise DistillError(f"{step.name}: a started teacher's URL would change a keyed setting (a bug)")
            cfg = dataclasses.replace(cfg, base_url=url)
        return step.stage(cfg)


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


def _check_unchanged(step: Step) -> None:
    """Refuse a step whose config differs from the one it was planned (and keyed) with."""
    if _settings(step) != step.settings:
        now = _settings(step)
        changed = sorted(k for k in {*now, *step.settings} if now.get(k) != step.settings.get(k))
        raise DistillError(f"{step.name}: its config changed after it was planned and keyed ({', '.join(changed)});"
                           " a step's config is complete when planned (this is a bug in distill)")


def _settings(step: Step) -> dict[str, Any]:
    """The keyed part of a step: its config without what cannot change its output, plus ``extra_key``."""
    data = {k: v for k, v in to_dict(step.cfg).items() if k not in _NO_EFFECT}
    if data.get("max_train_seconds") is None:
        data.pop("train_clock", None)  # which clock reads the budget matters only when there is one
    if step.extra_key.get("teacher") == "offline":
        for name in _TEACHER_ENDPOINT:
            data.pop(name, None)
    data.update(copy.deepcopy(dict(step.extra_key)))
    return _relative(data, str(step.root))


def _relative(value: Any, root: str) -> Any:
    """Paths inside the run folder as ``<run>/...``, so a moved run folder keeps its keys."""
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items() if k not in _NO_EFFECT}
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root + os.sep)):
        return "<run>" + value[len(root):]
    return value
