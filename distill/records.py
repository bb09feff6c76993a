"""Record files: JSONL (via jsonlines) read with located errors, crash-safe appends, torn-tail repair.

Usage:
    code_digest("distill.arithmetic", "distill.verify")   # changes when that code changes
    for line_no, rec in read_jsonl("traces.jsonl"):
        ...
    with JsonlAppender("traces.jsonl") as out:   # repairs a torn last line first
        out.write({"schema": 1, "id": "p1", "sample": 0})

The records themselves (their fields, versions and files) are defined in :mod:`distill.artifacts`;
this module only moves bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonlines

from distill.errors import InputError


def read_jsonl(path: str | Path, *, skip_torn_tail: bool = True) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)``; a malformed line raises :class:`InputError` naming it.

    A last line without its newline is what a killed writer leaves behind; it is skipped
    (``skip_torn_tail``) rather than reported, since :class:`JsonlAppender` repairs it.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", path=path) from None
    with handle:
        size = handle.seek(0, os.SEEK_END)
        is_torn = size > 0 and handle.seek(size - 1) >= 0 and handle.read(1) != b"\n"
        handle.seek(0)
        where = [0]  # the line the reader is on (jsonlines numbers errors, not records)

        def lines() -> Iterator[bytes]:
            for raw in handle:
                where[0] += 1
                yield raw

        reader = jsonlines.Reader(lines())
        while True:
            try:
                record = reader.read(allow_none=True, skip_empty=True)
            except EOFError:
                return
            except jsonlines.InvalidLineError as exc:
                if is_torn and skip_torn_tail and handle.tell() == size:  # the last line, still being written
                    return
                raise InputError(f"malformed JSON ({exc.__cause__ or exc})", path=path, line=exc.lineno) from None
            if not isinstance(record, dict):
                raise InputError("expected a JSON object", path=path, line=where[0])
            yield where[0], record


def repair_torn_tail(path: str | Path) -> int:
    """Cut an unfinished last line (left by a kill mid-write); return the bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # Walk back to the last newline; everything after it is a partial record.
        pos, chunk = size, 65536
        while pos > 0:
            start = max(0, pos - chunk)
            handle.seek(start)
            block = handle.read(pos - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                handle.truncate(keep)
                return size - keep
            pos = start
        handle.truncate(0)
        return size


class JsonlAppender:
    """Append-only JSONL writer (jsonlines): one ``write`` is one whole line, flushed to the OS at once.

    A flushed line survives the process being killed (even SIGKILL); ``fsync=True`` also
    survives a power cut, at a cost per record.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = repair_torn_tail(self.path)
        self._fsync = fsync
        self._handle = self.path.open("a", encoding="utf-8")
        self._writer = jsonlines.Writer(self._handle, flush=True, dumps=_compact)

    def write(self, record: dict[str, Any]) -> None:
        self._writer.write(record)
        if self._fsync:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _compact(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text through a temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON through a temp file and rename, so readers never see half a file."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (provenance and stage-reuse keys)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_digest(*modules: str) -> str:
    """Hex digest of the source of ``modules`` (dotted names; a package means all its .py files).

    Cache keys of results that code decides (a verdict, a measure) include it, so editing that
    code re-measures instead of serving a stale result: no hand-bumped version constant to forget.
    """
    import importlib.util

    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no module {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations else [origin]
        for path in files:
            digest.update(f"{name}:{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def stable_id(text: str, prefix: str = "p") -> str:
    """An id derived from the question text: the same text gives the same id on any machine."""
    return f"{prefix}-{hashlib.sha256(text.strip().encode('utf-8')).hexdigest()[:12]}"
