"""Batch backends: an OpenAI-compatible batch API (files + batches) or `vllm run-batch` on this machine.

Usage:
    from distill.teacher.batch_client import ApiBatches, LocalBatches
    backend = ApiBatches(base_url="https://api.openai.com/v1", api_key=key)   # or ApiBatches.for_teacher(client)
    file_id = backend.upload(Path("p0001.in.jsonl"))
    info = backend.find(file_id) or backend.create(file_id, "24h", {"distill_part": "p0001"})
    info = backend.retrieve(info.id)          # status, counts, output and error file ids
    backend.download(info.output_file_id, Path("p0001.out.jsonl"))
    local = LocalBatches(["vllm", "run-batch", "-i", "{input}", "-o", "{output}", "--model", "{model}"], "m")

Both speak the same five calls, so :mod:`distill.generate.batch` drives either. ``find`` is what
makes a kill during ``create`` safe: the batch made for an uploaded file is looked up by its input
file id before a second one is made (and paid for). The local backend runs the command as a
subprocess per request file (no server, no upload) in its own session, so it outlives a kill or
Ctrl-C of distill; its "batch id" is the output path. Beside it, ``pNNNN.pid`` names the process
(pid and start time) and ``pNNNN.exit`` receives its exit code, so a retrieve of a run this process
did not start (a kill) waits for it while it lives, reads how it ended, and starts it again only
when neither tells (local tokens are free, but a second run would fight the first over its output).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import openai

from distill.teacher.client import TeacherClient

log = logging.getLogger(__name__)
TERMINAL = ("completed", "failed", "expired", "cancelled")
FIND_DEPTH = 1000

__all__ = ["BatchInfo", "BatchBackend", "ApiBatches", "LocalBatches", "TERMINAL"]


@dataclass
class BatchInfo:
    """A batch's state as its provider reports it."""

    id: str
    status: str
    input_file_id: str = ""
    completed: int = 0
    failed: int = 0
    total: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def is_done(self) -> bool:
        return self.status in TERMINAL


class BatchBackend(Protocol):
    """What the batch driver needs of a provider."""

    def upload(self, path: Path) -> str: ...
    def find(self, file_id: str) -> BatchInfo | None: ...
    def create(self, file_id: str, window: str, metadata: dict[str, str]) -> BatchInfo: ...
    def retrieve(self, batch_id: str) -> BatchInfo: ...
    def download(self, file_id: str, dest: Path) -> None: ...


def _info(batch: Any) -> BatchInfo:
    counts = batch.request_counts
    errors = [f"{e.code}: {e.message}" for e in (batch.errors.data or [])] if batch.errors else []
    return BatchInfo(id=batch.id, status=batch.status, input_file_id=batch.input_file_id,
                     completed=counts.completed if counts else 0, failed=counts.failed if counts else 0,
                     total=counts.total if counts else 0, output_file_id=batch.output_file_id,
                     error_file_id=batch.error_file_id, errors=errors)


class ApiBatches:
    """``/v1/files`` and ``/v1/batches`` through the openai SDK (its own retries cover brief outages)."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 600.0, max_retries: int = 4):
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    @classmethod
    def for_teacher(cls, teacher: TeacherClient) -> ApiBatches:
        """The batch API of the endpoint ``teacher`` talks to, with its key (resolved there, never printed)."""
        return cls(teacher.urls[0], teacher._key, timeout=teacher.cfg.request_timeout)

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            return self.client.files.create(file=(path.name, handle), purpose="batch").id

    def find(self, file_id: str) -> BatchInfo | None:
        """The newest batch made from ``file_id``, if any, among the account's ``FIND_DEPTH`` newest."""
        for seen, batch in enumerate(self.client.batches.list(limit=100)):
            if batch.input_file_id == file_id:
                return _info(batch)
            if seen >= FIND_DEPTH:  # a create lost to a kill is among the newest; do not page through years
                break
        return None

    def create(self, file_id: str, window: str, metadata: dict[str, str]) -> BatchInfo:
        # No SDK retry here: a create whose answer was lost may have made the batch (the caller looks first).
        return _info(self.client.with_options(max_retries=0).batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                                completion_window=window, metadata=metadata))  # type: ignore[arg-type]

    def retrieve(self, batch_id: str) -> BatchInfo:
        return _info(self.client.batches.retrieve(batch_id))

    def download(self, file_id: str, dest: Path) -> None:
        tmp = dest.with_name(dest.name + ".tmp")
        self.client.files.content(file_id).write_to_file(tmp)
        tmp.replace(dest)  # whole or absent: a kill mid-download leaves nothing that looks finished


class LocalBatches:
    """``vllm run-batch -i in.jsonl -o out.jsonl --model M`` (or any command of that shape) per file."""

    def __init__(self, command: list[str], model: str):
        self.command, self.model = list(command), model
        self._runs: dict[str, tuple[subprocess.Popen, Path]] = {}  # output path -> (process, its log)

    def upload(self, path: Path) -> str:
        return str(path)  # the command reads the file where it is

    def find(self, file_id: str) -> BatchInfo | None:
        return None  # nothing outlives this process but the output file, which retrieve() checks

    def create(self, file_id: str, window: str, metadata: dict[str, str]) -> BatchInfo:
        src = Path(file_id)
        out = src.with_name(src.name.replace(".in.jsonl", "") + ".out.jsonl")
        return self._start(src, out)

    def _start(self, src: Path, out: Path) -> BatchInfo:
        argv = [a.format(input=src, output=out, model=self.model) for a in self.command]
        if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
            raise FileNotFoundError(f"batch.command: {argv[0]!r} not found (install vLLM, or set batch.command)")
        log.info("running %s", " ".join(argv))
        pidfile, exitfile, logfile = (_beside(out, suffix) for suffix in (".pid", ".exit", ".log"))
        for stale in (out, exitfile, pidfile):
            stale.unlink(missing_ok=True)
        # sh writes the exit code to a file: a re-run after a kill is not the parent and cannot wait() for it.
        tmp = shlex.quote(f"{exitfile}.tmp")
        script = f'"$@"; code=$?; echo $code > {tmp} && mv {tmp} {shlex.quote(str(exitfile))}; exit $code'
        with logfile.open("wb") as log_handle:  # a file, not a pipe: vLLM logs enough to fill a pipe and stall
            proc = subprocess.Popen(["sh", "-c", script, "sh", *argv], stdout=log_handle, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own session: a Ctrl-C or kill of distill spares it
        pidfile.write_text(json.dumps({"pid": proc.pid, "started": _start_time(proc.pid)}))
        self._runs[str(out)] = (proc, logfile)
        return BatchInfo(id=str(out), status="in_progress", input_file_id=str(src))

    def _adopt(self, out: Path) -> BatchInfo | None:
        """A run a killed distill started: in progress while its process lives, else ended as its exit file says;
        None when there is neither (never started, or killed itself): then it is started again."""
        pidfile, exitfile = _beside(out, ".pid"), _beside(out, ".exit")
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            run = json.loads(pidfile.read_text())
            if _is_alive(int(run["pid"]), run["started"]):  # looked at first: it writes the exit file, then ends
                return BatchInfo(id=str(out), status="in_progress")
        with contextlib.suppress(OSError, ValueError):
            return self._ended(str(out), int(exitfile.read_text()), _beside(out, ".log"))
        return None

    def retrieve(self, batch_id: str) -> BatchInfo:
        if batch_id not in self._runs:  # started by a run that was killed: adopt it, else start it again
            adopted = self._adopt(Path(batch_id))
            if adopted is not None:
                return adopted
            return self._start(Path(batch_id.replace(".out.jsonl", ".in.jsonl")), Path(batch_id))
        proc, logfile = self._runs[batch_id]
        code = proc.poll()
        if code is None:
            return BatchInfo(id=batch_id, status="in_progress")
        return self._ended(batch_id, code, logfile)

    def _ended(self, batch_id: str, code: int, logfile: Path) -> BatchInfo:
        if code != 0 or not Path(batch_id).exists():
            tail = logfile.read_text(errors="replace")[-400:].strip() if logfile.exists() else ""
            return BatchInfo(id=batch_id, status="failed", errors=[f"exit {code}: {tail or 'no output file'}"])
        return BatchInfo(id=batch_id, status="completed", output_file_id=batch_id)

    def download(self, file_id: str, dest: Path) -> None:
        if Path(file_id).resolve() != dest.resolve():
            shutil.copyfile(file_id, dest)


def _beside(out: Path, suffix: str) -> Path:
    """``pNNNN.pid`` / ``.exit`` / ``.log`` beside ``pNNNN.out.jsonl``."""
    return out.with_name(out.name.replace(".out.jsonl", "") + suffix)


def _start_time(pid: int) -> int | None:
    """The process's start (clock ticks since boot, from /proc): with the pid, it tells a reused pid apart."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None  # no /proc (macOS): the pid alone


def _is_alive(pid: int, started: int | None) -> bool:
    """Whether ``pid`` still runs and is the process that started at ``started`` (a zombie is not running)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        if Path("/proc/self/stat").exists():
            return False  # /proc exists and has no such process
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # alive, another user's
        return True
    return fields[0] not in ("Z", "X") and (started is None or int(fields[19]) == started)
