"""Stage bookkeeping in a run folder: a key per stage (its config + its inputs' bytes) to decide reuse.

Usage:
    ledger = Ledger(run_dir)
    key = stage_key(cfg_dict, inputs={"traces": run_dir / "traces.jsonl"})
    if ledger.is_current("filter", key, outputs=[kept]):
        ...                                   # reuse
    ledger.switch("filter", key, outputs=[kept])   # outputs of another key moved aside (or restored)
    if not ledger.is_current("filter", key, outputs=[kept]):
        ledger.start("filter", key, outputs=[kept]); ...; ledger.finish("filter", complete=True)

A stage is reused only when its state file says it finished with the same key and its outputs
still exist. A stage that was interrupted (state ``running``, same key) is simply run again: the
stages resume their own partial outputs, so nothing here deletes them. When the key changed, the
old outputs are moved aside to ``.superseded/`` (never deleted) so the stage starts clean, and are
moved back if that key is asked for again. :func:`distill.pipeline.steps.run_step` applies this
to every step: the run's, each STaR round's (``round-<r>/.state``), each ablation arm's
(``ablation/<arm>/.state``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from distill.layout import RunLayout
from distill.records import file_sha256, write_json_atomic

log = logging.getLogger(__name__)

# Folders inside an output folder that are scratch (checkpoints), not part of its content.
_SCRATCH = ("checkpoints", "checkpoint", ".tmp")


_BIG = 256 << 20  # model weights: identified by size and mtime, not read on every run


def content_hash(path: Path) -> str | None:
    """SHA-256 of a file, or of a folder's files (names and bytes, scratch folders left out); None if absent."""
    if path.is_file():
        return _file_digest(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = item.relative_to(path)
        if rel.parts[0] in _SCRATCH or rel.parts[0].startswith("checkpoint") or item.name.startswith("."):
            continue
        digest.update(f"{rel.as_posix()}\0{_file_digest(item)}\0".encode())
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    stat = path.stat()
    if stat.st_size > _BIG:
        return f"size={stat.st_size}:mtime={stat.st_mtime_ns}"
    return file_sha256(path)


def stage_key(config: dict[str, Any], inputs: dict[str, Path | None] | None = None) -> str:
    """A short digest of what determines a stage's output: its resolved config and its inputs' bytes."""
    payload = {
        "config": config,
        "inputs": {name: (content_hash(p) if p is not None else None) for name, p in (inputs or {}).items()},
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Ledger:
    """The state files of one folder whose steps it records (``.state/<stage>.json``): the run, a round, an arm."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.dir = RunLayout(self.run_dir).state
        self.superseded = RunLayout(self.run_dir).superseded

    def read(self, stage: str) -> dict[str, Any] | None:
        path = self.dir / f"{stage}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def all(self) -> dict[str, dict[str, Any]]:
        """Every stage's state, by stage name (for the report)."""
        if not self.dir.is_dir():
            return {}
        return {p.stem: s for p in sorted(self.dir.glob("*.json")) if (s := self.read(p.stem)) is not None}

    def is_current(self, stage: str, key: str, outputs: list[Path]) -> bool:
        state = self.read(stage)
        return (state is not None and state.get("key") == key and state.get("status") == "done"
                and all(p.exists() for p in outputs))

    def switch(self, stage: str, lineage: str, outputs: list[Path], fresh: bool = False) -> None:
        """Before running ``stage``: move aside outputs of another lineage (or all of them with ``fresh``)
        and bring back those of ``lineage`` if an earlier run made them.

        The lineage is the stage key, except where a stage can extend its output: generate's lineage
        leaves out how many problems and samples, so asking for more keeps what was paid for.
        """
        previous = self.read(stage)
        if previous is None or (_lineage(previous) == lineage and not fresh):
            return
        self._set_aside(stage, previous, outputs)
        (self.dir / f"{stage}.json").unlink(missing_ok=True)
        if not fresh:
            self._restore(stage, lineage, outputs)

    def start(self, stage: str, key: str, outputs: list[Path], lineage: str | None = None) -> dict[str, Any]:
        """Record that ``stage`` runs with ``key`` (a second attempt after an interruption resumes)."""
        previous = self.read(stage)
        if previous and previous.get("key") != key:
            previous = None
        state = {
            "stage": stage, "key": key, "lineage": lineage or key, "status": "running",
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # Time spent in earlier, interrupted attempts of the same work still counts.
            "seconds": float(previous.get("seconds", 0.0)) if previous and previous.get("status") != "done" else 0.0,
            "attempts": int(previous.get("attempts", 0)) + 1 if previous and previous.get("status") != "done" else 1,
            "outputs": [self._rel(p) for p in outputs],
            "_t0": time.time(),
        }
        self._write(stage, state)
        return state

    def finish(self, stage: str, complete: bool = True, **extra: Any) -> dict[str, Any]:
        """Mark ``stage`` done (reusable) or partial (run again next time, e.g. failed samples to retry)."""
        state = self.read(stage) or {"stage": stage}
        state["seconds"] = round(float(state.get("seconds", 0.0)) + time.time() - state.pop("_t0", time.time()), 3)
        state["status"] = "done" if complete else "partial"
        state["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        state.update(extra)
        self._write(stage, state)
        return state

    def mark_reused(self, stage: str) -> None:
        state = self.read(stage)
        if state is not None:
            state["reused_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self._write(stage, state)

    def _set_aside(self, stage: str, state: dict[str, Any], outputs: list[Path]) -> None:
        folder = self.superseded / f"{stage}-{_lineage(state)}"
        moved = False
        for path in outputs:
            if path.exists():
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / path.name
                if target.exists():
                    _remove(target)  # an older copy of the same key's output
                shutil.move(str(path), str(target))
                moved = True
        if moved:
            write_json_atomic(folder / "state.json", state)
            log.info("%s: settings or inputs changed; previous output kept in %s", stage, folder)

    def _restore(self, stage: str, lineage: str, outputs: list[Path]) -> None:
        folder = self.superseded / f"{stage}-{lineage}"
        saved = folder / "state.json"
        if not saved.is_file():
            return
        for path in outputs:
            if (folder / path.name).exists() and not path.exists():
                shutil.move(str(folder / path.name), str(path))
        self._write(stage, json.loads(saved.read_text(encoding="utf-8")))
        saved.unlink()
        log.info("%s: restored the output made earlier with these settings", stage)

    def _write(self, stage: str, state: dict[str, Any]) -> None:
        write_json_atomic(self.dir / f"{stage}.json", state)

    def _rel(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            return str(path)


def _lineage(state: dict[str, Any]) -> str | None:
    return state.get("lineage") or state.get("key")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
