"""`distill eval`: score a student (base, base + adapter) or any OpenAI-compatible endpoint.

Usage:
    from distill.evaluate import run
    eval_dir = run(load_config(EvalConfig, None, ["problems=rg:chain_sum", "student=smollm2", "out=eval"]))
"""

from __future__ import annotations

from pathlib import Path

from distill.evaluate.config import EvalConfig


def run(cfg: EvalConfig, **edges) -> Path:
    """Evaluate ``cfg``; returns the eval folder. Heavy imports happen here, not at import."""
    from distill.evaluate.stage import run as _run

    return _run(cfg, **edges)
