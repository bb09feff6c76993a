"""Stage 3, `distill finetune`: LoRA-distil kept traces into a small student.

Usage:
    from distill.finetune import run
    adapter_dir = run(load_config(FinetuneConfig, "finetune/smollm2-135m.yaml", ["data=kept.jsonl"]))
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import InputError
from distill.finetune.config import FinetuneConfig
from distill.paths import check_outputs
from distill.student import distill_home

__all__ = ["FinetuneConfig", "run"]


def run(cfg: FinetuneConfig) -> Path:
    """Check everything, lint, then train; returns the adapter folder. Heavy imports happen here, not at import."""
    cfg.validate()
    if not cfg.data or not Path(cfg.data).is_file():
        raise InputError("training data not found (give data=kept.jsonl from distill filter)", path=cfg.data,
                         field="data")
    # The adapter folder gets tokenizer and config files: never the student's own folder, nor over the data.
    check_outputs("finetune", inputs={"data": cfg.data, "student": cfg.student, "chat_template": cfg.chat_template},
                  outputs={"out": cfg.out}, folders={"out": None})
    cache = (distill_home() / "students").resolve()
    if Path(cfg.out).expanduser().resolve().is_relative_to(cache):  # where aliases and .gguf students are kept
        raise InputError(f"is inside distill's student cache ({cache}); the adapter would write over a student",
                         path=cfg.out, field="out")
    if cfg.init_adapter:  # an adapter of this student with these lora settings: one line, not a peft traceback
        from distill.finetune.init_adapter import check_init_adapter

        check_init_adapter(cfg)
    if cfg.method == "on_policy":  # the student samples, a teacher scores (distill.finetune.onpolicy)
        from distill.finetune.onpolicy import run as _run_on_policy

        return _run_on_policy(cfg)
    from distill.finetune.train import run as _run

    return _run(cfg)
