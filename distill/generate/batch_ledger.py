"""The batch ledger beside a traces file: every request file and batch id, so a killed run resumes without paying twice.

Usage:
    from distill.generate.batch_ledger import Ledger
    ledger = Ledger(generate_batches_path("traces.jsonl"))
    part = ledger.prepare([b'{"custom_id": ...}\\n'], reserved_usd=0.12)   # writes traces.batches/p0001.in.jsonl
    ledger.record(part, "uploaded", file_id="file-abc")
    ledger.record(part, "creating")                       # a create is about to be sent: it may make a batch
    ledger.record(part, "created", batch_id="batch_abc")
    ledger.record(part, "merging", records_before=120)     # the traces file's record count before the merge
    ledger.record(part, "merged", status="completed", written=100)
    ledger.open_parts()                                   # parts not merged yet: what a resumed run finishes
    refuse_open_batches("traces.jsonl")       # an online run would pay for those pairs again (under the lock)

One JSON line per step, appended and fsynced before the next step starts, so after a kill the
ledger says exactly how far each part got: prepared (upload it), uploaded (no create was sent:
create one), creating (a create was sent and its answer never recorded: find the batch it made, and
where the provider has no batch list to look in, stop rather than create a second), created (poll it), merging (merge again, skipping the pairs the
traces file already got after ``records_before``), merged (done), or dropped (an online run took
over a file that was only prepared: never uploaded, so never paid for).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from distill.errors import ConfigError, InputError
from distill.records import JsonlAppender, read_jsonl

STEPS = ("prepared", "uploaded", "creating", "created", "merging", "merged", "dropped")

__all__ = ["Ledger", "Part", "STEPS", "refuse_open_batches"]


@dataclass
class Part:
    """One request file and, once submitted, its batch."""

    name: str
    requests: int
    reserved_usd: float = 0.0
    file_id: str | None = None
    batch_id: str | None = None
    records_before: int | None = None
    status: str | None = None
    is_creating: bool = False  # a create was sent; whether it made a batch is not recorded
    is_merged: bool = False


class Ledger:
    """Replays ``path`` on open; each :meth:`record` appends one step and updates the part."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.folder = self.path.with_name(self.path.name.rsplit(".", 1)[0])
        self.parts: dict[str, Part] = {}
        if self.path.exists():
            for line, event in read_jsonl(self.path):
                self._apply(event, line)

    def _apply(self, event: dict, line: int | None = None) -> None:
        step, name = event.get("event"), event.get("part")
        if step not in STEPS or not isinstance(name, str):
            raise InputError(f"not a batch ledger step: {str(event)[:80]}", path=self.path, line=line, field="event")
        if step == "prepared":
            self.parts.setdefault(name, Part(name, int(event["requests"]), float(event.get("reserved_usd") or 0.0)))
            return
        part = self.parts.get(name)
        if part is None:
            raise InputError(f"step {step!r} for part {name!r} that was never prepared", path=self.path, line=line,
                             field="part")
        part.file_id = event.get("file_id", part.file_id)
        part.batch_id = event.get("batch_id", part.batch_id)
        part.status = event.get("status", part.status)
        if step == "merging":
            part.records_before = int(event["records_before"])
        if step in ("uploaded", "creating"):  # the last word on whether a create went out
            part.is_creating = step == "creating"
        part.is_merged = part.is_merged or step in ("merged", "dropped")  # closed: nothing left to collect

    def input_path(self, part: Part) -> Path:
        return self.folder / f"{part.name}.in.jsonl"

    def result_path(self, part: Part, kind: str) -> Path:
        """Where a part's downloaded ``out`` or ``err`` file goes."""
        return self.folder / f"{part.name}.{kind}.jsonl"

    def open_parts(self) -> list[Part]:
        return [p for p in self.parts.values() if not p.is_merged]

    def prepare(self, lines: list[bytes], reserved_usd: float) -> Part:
        """Write a request file (whole or not at all), then the step that names it."""
        part = Part(f"p{len(self.parts) + 1:04d}", len(lines), reserved_usd)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.input_path(part)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        self.record(part, "prepared", requests=part.requests, reserved_usd=round(reserved_usd, 8))
        return part

    def record(self, part: Part, step: str, **fields: object) -> None:
        """Append one step (fsynced: the next step may spend money on the strength of it)."""
        event = {"event": step, "part": part.name, **fields}
        with JsonlAppender(self.path, fsync=True) as out:
            out.write(event)
        if step == "prepared":
            self.parts[part.name] = part
        self._apply(json.loads(json.dumps(event)))


def refuse_open_batches(traces: str | Path) -> None:
    """ConfigError when ``traces`` has batches not yet merged: an online run would request (and pay for) them again.
    Files only prepared (never uploaded: nothing can be running or paid) are dropped instead, so a later batch
    run does not send pairs the online run wrote. Call it holding the traces file's lock."""
    from distill.layout import generate_batches_path

    path = generate_batches_path(traces)
    if not path.exists():
        return
    ledger = Ledger(path)
    for part in ledger.open_parts():
        if part.file_id is None:
            ledger.record(part, "dropped")
            ledger.input_path(part).unlink(missing_ok=True)
    open_parts = ledger.open_parts()
    if open_parts:
        raise ConfigError(f"{traces} has {len(open_parts)} batch file(s) still open ({path}); re-run with mode=batch "
                          "to collect them (an online run would pay for those requests again)")
