"""`distill run`: the whole pipeline (generate -> filter -> finetune -> eval -> publish) in one run folder.

Usage:
    from distill.pipeline import run
    from distill.pipeline.config import load_pipeline
    run_dir = run(load_pipeline(None, ["name=demo"]))     # the embedded offline default
"""

from __future__ import annotations

from pathlib import Path

from distill.pipeline.config import PipelineConfig


def run(cfg: PipelineConfig) -> Path:
    """Run every stage of ``cfg`` that is not current; returns the run folder. Heavy imports happen here."""
    from distill.pipeline.runner import run as _run

    return _run(cfg)
