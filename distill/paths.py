"""Output paths checked before anything is written: never an input, never a folder in a file's place.

Usage:
    check_outputs("filter", inputs={"traces": cfg.traces, "decontam.problems": eval_file},
                  outputs={"out": kept, "rejected": rejected, "stats": stats})
    check_outputs("finetune", inputs={"student": student_dir}, outputs={"out": out_dir},
                  folders={"out": None})        # a folder output: every input inside it is at risk

Paths are compared resolved (symlinks followed) and, when both exist, by inode (hard links), so
``rejected=traces.jsonl``, a symlink to the input or an input named like a default output
(``rejected.jsonl`` beside ``out``) are all refused with one line before a request is paid for.
Every output's folder is also probed for writing, so a read-only place fails here, not after
the work is done.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from distill.errors import InputError

PathLike = str | Path | None


def _resolved(path: PathLike) -> Path | None:
    if path is None or str(path) == "":
        return None
    return Path(path).expanduser().resolve()


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _first_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _probe_writable(path: Path, name: str, is_folder: bool) -> None:
    """Raise unless ``path`` (or the folder that will hold it) can be written."""
    if path.exists():
        if is_folder and not path.is_dir():
            raise InputError(f"is a file; this {name}= is a folder the stage writes into", path=path, field=name)
        if not is_folder and path.is_dir():
            raise InputError(f"is a folder; {name}= must name a file", path=path, field=name)
    base = _first_existing(path if is_folder else path.parent)
    if not base.is_dir():
        raise InputError(f"cannot create it: {base} is a file, not a folder", path=path, field=name)
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".distill-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write here ({exc.strerror or exc})", path=path, field=name) from None


def check_outputs(verb: str, inputs: Mapping[str, PathLike | Iterable[PathLike]], outputs: Mapping[str, PathLike],
                  folders: Mapping[str, Iterable[str] | None] | None = None, probe: bool = True) -> None:
    """Refuse (InputError naming the output) any output that is, or would write over, an input.

    ``folders`` names the outputs that are folders, each with the top-level entries the stage
    writes there (None: anything inside may be written, so no input may live inside it).
    """
    folders = dict(folders or {})
    ins: list[tuple[str, Path]] = []
    for name, value in inputs.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        ins += [(name, p) for p in map(_resolved, values) if p is not None and p.exists()]
    for out_name, raw in outputs.items():
        out = _resolved(raw)
        if out is None:
            continue
        is_folder = out_name in folders
        for in_name, inp in ins:
            if _same(out, inp) or (is_folder and _inside(inp, out, folders[out_name])):
                raise InputError(f"would overwrite the input {in_name}={inp} ({verb} never writes over its "
                                 "inputs); choose another path", path=raw, field=out_name)
        if probe:
            _probe_writable(out, out_name, is_folder)


def _inside(inp: Path, folder: Path, names: Iterable[str] | None) -> bool:
    try:
        rel = inp.relative_to(folder)
    except ValueError:
        return False
    if names is None:
        return True
    return bool(rel.parts) and rel.parts[0] in set(names)
