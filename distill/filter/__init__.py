"""Stage 2, `distill filter`: keep traces whose answer is verified correct; say why the rest went.

Usage:
    from distill.filter import run
    run(load_config(FilterConfig, None, ["traces=traces.jsonl", "out=kept.jsonl"]))
"""

from __future__ import annotations

from pathlib import Path

from distill.filter.config import FilterConfig


def run(cfg: FilterConfig, **edges) -> Path:
    """Filter ``cfg.traces``; returns kept.jsonl. Heavy imports happen here, not at import."""
    from distill.filter.stage import run as _run

    return _run(cfg, **edges)
