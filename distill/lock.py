"""Exclusive locks on an output (a traces file, a run folder) that name the process holding them.

Usage:
    with exclusive_lock(Path("traces.jsonl")):       # takes .traces.jsonl.lock beside it
        ...                                          # a second process fails at once
    with exclusive_lock(run_dir, lock_file=run_dir / ".lock"):
        ...

Two `distill generate` runs appending to one file would both send (and pay for) every request.
``flock`` is released by the kernel when the holder dies, even on SIGKILL, so a crashed run never
leaves a stale lock behind; the lock file itself stays (it only names the last holder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from distill.errors import OutputLocked


def lock_path(target: Path) -> Path:
    """``dir/traces.jsonl`` -> ``dir/.traces.jsonl.lock`` (hidden, so folder hashes skip it)."""
    return target.with_name(f".{target.name}.lock")


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300],
            "since": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())}


def _describe(raw: str) -> str:
    try:
        who = json.loads(raw)
        return f"pid {who['pid']} on {who['host']} since {who['since']} UTC: {who['command']}"
    except (ValueError, KeyError, TypeError):
        return "a process that is just starting (holder not yet recorded)"


@contextlib.contextmanager
def exclusive_lock(target: str | Path, lock_file: str | Path | None = None) -> Iterator[Path]:
    """Hold an exclusive lock for ``target`` for the ``with`` block; raise :class:`OutputLocked` if taken."""
    target = Path(target)
    # Beside the resolved file, so ./t.jsonl, an absolute path and a symlink to it share one lock.
    path = Path(lock_file) if lock_file is not None else lock_path(target.expanduser().resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            raise OutputLocked(f"{target}: in use by another distill process ({holder}); wait for it to "
                               "finish or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
