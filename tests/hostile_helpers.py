"""Shared bits of the hostile-input tests: a snapshot of a folder tree (the records come from records_factory).

Usage:
    from hostile_helpers import snapshot
    before = snapshot(tmp_path); ...; assert snapshot(tmp_path) == before
"""

from __future__ import annotations

from pathlib import Path


def snapshot(root: Path, ignore_locks: bool = True) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under ``root``; lock files (``.*.lock``, ``.lock``) left out:
    they name the last holder and are never data."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        if ignore_locks and p.name.endswith(".lock") and p.name.startswith("."):
            continue
        out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out
