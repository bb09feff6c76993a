"""`distill publish`: the adapter and the kept traces to the Hugging Face Hub, with cards from the run records.

Usage:
    from distill.publish import run
    run(load_config(PublishConfig, None, ["adapter=out/adapter", "repo_id=me/name", "dry_run=true"]))
"""

from __future__ import annotations

from pathlib import Path

from distill.publish.config import PublishConfig


def run(cfg: PublishConfig, **edges) -> Path | str:
    """Publish ``cfg``; returns the staging folder (dry run) or the repo URL(s). Heavy imports happen here."""
    from distill.publish.stage import run as _run

    return _run(cfg, **edges)
