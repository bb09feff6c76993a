"""Stage 3, `distill finetune`: LoRA-distil kept traces into a small student.

Usage:
    from distill.finetune import run
    adapter_dir = run(load_config(FinetuneConfig, "finetune/smollm2-135m.yaml", ["data=kept.jsonl"]))
"""

from __future__ import annotations

from pathlib import Path

from distill.finetune.config import FinetuneConfig

__all__ = ["FinetuneConfig", "run"]


def run(cfg: FinetuneConfig, **edges) -> Path:
    """Lint, then train; returns the adapter folder. Heavy imports happen here, not at import."""
    from distill.finetune.train import run as _run

    return _run(cfg, **edges)
