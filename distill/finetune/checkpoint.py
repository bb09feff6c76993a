"""Training checkpoints: trainable weights, optimizer, scheduler, every rank's RNG, the step.

Usage:
    save_checkpoint(out / "checkpoints", step, model, optimizer, scheduler, accelerator, keep=2)
    path = latest_checkpoint(out / "checkpoints")
    step = load_checkpoint(path, model, optimizer, scheduler, rank=accelerator.process_index)
    start = resume_or_clear(out / "checkpoints", cfg.resume, start_sha, model, optimizer, scheduler, accelerator)["step"]
    trim_log(out / "loss.jsonl", start)   # a resumed run rewrites the lines after its checkpoint

The data order is a pure function of (seed, epoch), so the step number is the data position:
a resumed run replays exactly the batches, dropout masks and updates an uninterrupted run
would have. A checkpoint folder appears whole (written under a temp name, then renamed).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from distill.records import write_text_atomic

log = logging.getLogger(__name__)

PREFIX = "step-"


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The parameters being trained (LoRA weights and any modules_to_save), detached copies."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def save_checkpoint(root: Path, step: int, model: Any, optimizer: Any, scheduler: Any, accelerator: Any,
                    keep: int = 2, extra: dict | None = None) -> Path:
    """Write ``root/step-N`` (all ranks call this; rank 0 writes the shared parts)."""
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".{final.name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(trainable_state(accelerator.unwrap_model(model)), tmp / "trainable.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **(extra or {})}, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(root.glob(f"{PREFIX}*"))[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    found = sorted(p for p in root.glob(f"{PREFIX}*") if (p / "state.json").is_file()) if root.is_dir() else []
    return found[-1] if found else None


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, rank: int) -> dict:
    """Restore a checkpoint into live objects; returns its state (``step`` and extras)."""
    weights = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = path / f"rng-{rank}.pt"
    if rng.is_file():  # resuming with another world size keeps each rank's fresh seed instead
        _set_rng_state(torch.load(rng, weights_only=False))
    return json.loads((path / "state.json").read_text())


def resume_or_clear(root: Path, resume: bool, start_sha: str | None, model: Any, optimizer: Any, scheduler: Any,
                    accelerator: Any) -> dict:
    """resume=true: load the latest checkpoint of this same start and return its state (``step``, ``train_seconds``
    and extras); otherwise clear ``root`` and return ``{"step": 0}``.

    ``start_sha``: the init adapter's weights (None: a fresh LoRA); a checkpoint of another start is not resumed.
    """
    from distill.finetune.init_adapter import resumable

    checkpoint = resumable(latest_checkpoint(root) if resume else None, start_sha)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, scheduler,
                                accelerator.process_index)
        log.info("resuming from %s (step %d)", checkpoint, state["step"])
        return state
    if accelerator.is_main_process:
        shutil.rmtree(root, ignore_errors=True)
    return {"step": 0}


def trim_log(path: Path, step: int) -> None:
    """Keep only the loss lines up to ``step`` (a resumed run rewrites what came after)."""
    if not path.is_file():
        return
    if step == 0:
        path.unlink()
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    write_text_atomic(path, "".join(line + "\n" for line in keep))
