"""Stage 1, `distill generate`: reasoning traces from any OpenAI-compatible teacher.

Usage:
    from distill.generate import run
    run(load_config(GenerateConfig, "generate/deepseek-r1.yaml"))
"""

from __future__ import annotations

from pathlib import Path

from distill.generate.config import GenerateConfig


def run(cfg: GenerateConfig, **edges) -> Path:
    """Generate traces for ``cfg``; returns the traces file. Heavy imports happen here, not at import."""
    from distill.generate.stage import run as _run

    return _run(cfg, **edges)
