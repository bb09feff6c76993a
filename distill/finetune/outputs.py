"""What a finetune run leaves beside its adapter: distill.json, loss.png, versions, peak memory.

Usage:
    record = run_record(cfg, data_path, counts, metrics)
    write_json_atomic(out / "distill.json", record)
    plot_loss(out / "loss.jsonl", out / "loss.png")
"""

from __future__ import annotations

import json
import resource
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from distill.config import to_dict
from distill.records import file_sha256

LIBRARIES = ("distill", "torch", "transformers", "peft", "accelerate", "tokenizers")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape the result."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process (and peak GPU memory when on a GPU), in MiB."""
    import torch

    out = {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run_record(cfg: Any, base_model: str, counts: dict, metrics: dict) -> dict:
    """The run's provenance: base model, data hash, counts, hyper-parameters, versions, metrics."""
    return {
        "schema": 1,
        "stage": "finetune",
        "base_model": base_model,
        "student": cfg.student,
        "data": {"path": str(cfg.data), "sha256": file_sha256(cfg.data), **counts},
        "hyperparameters": to_dict(cfg),
        "versions": library_versions(),
        "metrics": metrics,
    }


def plot_loss(log: Path, png: Path) -> Path | None:
    """Draw train (and eval) loss against step; None when there is nothing to draw."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval", linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per trained token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png.with_name(f".{png.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)
    return png
