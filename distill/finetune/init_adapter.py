"""Start a finetune from a saved LoRA adapter (its weights trainable) instead of a fresh one.

Usage:
    check_init_adapter(cfg)                 # before anything loads: a LoRA adapter folder, of this student, same LoRA
    start = load_init_adapter(model, cfg)   # the freshly built peft model takes the adapter's weights
    lora_fingerprint(state_dict)            # digest of LoRA tensors: what training started from, comparable
    checkpoint = resumable(checkpoint, start["sha256"])   # None when it continues another start

`distill finetune init_adapter=runs/x/adapter` (and the STaR loop's ``restart=continue``).
Why load into a freshly built peft model rather than ``PeftModel.from_pretrained(is_trainable=True)``:
the model is then built exactly as a fresh run builds it (packing, float32 adapter sums, target
modules), so the weights are the only difference between the two starts; and comparing tensor
names and shapes refuses an adapter of another rank or other target modules in one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from distill.adapters import ADAPTER_CONFIG, check_adapter_base
from distill.errors import ConfigError, InputError
from distill.records import file_sha256

log = logging.getLogger(__name__)

__all__ = ["check_init_adapter", "load_init_adapter", "lora_fingerprint", "resumable", "ADAPTER_CONFIG",
           "ADAPTER_WEIGHTS"]

ADAPTER_WEIGHTS = "adapter_model.safetensors"
FIELD = "init_adapter"
# LoRA settings that change what the saved tensors mean (the scale or the module set). Dropout is
# left out on purpose: it shapes training, not the weights, so a continued run may change it.
_SAME = (("r", "r"), ("alpha", "lora_alpha"), ("use_rslora", "use_rslora"), ("use_dora", "use_dora"))


def check_init_adapter(cfg: Any, key: str = FIELD) -> None:
    """Raise unless ``cfg.init_adapter`` is a LoRA adapter folder trained from ``cfg.student`` with ``cfg.lora``.

    Reads two small JSON files, loads no model: preflight runs it before anything is sent.
    """
    folder = Path(cfg.init_adapter).expanduser()
    if not folder.is_dir():
        raise InputError("no such adapter folder", path=folder, field=key)
    if getattr(cfg, "out", None) and Path(cfg.out).expanduser().resolve() == folder.resolve():
        raise ConfigError(f"{key}: {folder} is also out=, so training would overwrite the adapter it starts "
                          "from; write to another folder")
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (folder / name).is_file():
            raise InputError(f"not a LoRA adapter folder (no {name})", path=folder, field=key)
    saved = _read_json(folder / ADAPTER_CONFIG, key)
    if saved.get("peft_type", "LORA") != "LORA":
        raise InputError(f"a {saved.get('peft_type')} adapter, not LoRA", path=folder, field=key)
    check_adapter_base(folder, cfg.student, field=key)
    for ours, theirs in _SAME:
        mine, its = getattr(cfg.lora, ours), saved.get(theirs, False if ours.startswith("use_") else None)
        if mine != its:
            raise ConfigError(f"{key}: {folder} was trained with lora.{ours}={its!r}, this run has "
                              f"lora.{ours}={mine!r}; set lora.{ours}={its!r} to continue from it")
    targets = cfg.lora.target_modules
    if targets != ["all-linear"] and sorted(targets) != sorted(saved.get("target_modules") or []):
        raise ConfigError(f"{key}: {folder} adapts {sorted(saved.get('target_modules') or [])}, this run's "
                          f"lora.target_modules is {targets}")
    if sorted(cfg.lora.modules_to_save) != sorted(saved.get("modules_to_save") or []):
        raise ConfigError(f"{key}: {folder} saves modules {saved.get('modules_to_save') or []}, this run's "
                          f"lora.modules_to_save is {cfg.lora.modules_to_save}")


def load_init_adapter(model: Any, cfg: Any) -> dict[str, Any]:
    """Copy the adapter's tensors into ``model`` (a fresh peft model); return where training started from."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(cfg.init_adapter).expanduser().resolve()
    saved = load_file(str(folder / ADAPTER_WEIGHTS))
    fresh = get_peft_model_state_dict(model)
    missing = sorted(set(fresh) - set(saved))
    extra = sorted(set(saved) - set(fresh))
    shapes = [k for k in fresh if k in saved and tuple(saved[k].shape) != tuple(fresh[k].shape)]
    if missing or extra or shapes:
        what = (f"lacks {missing[0]}" if missing else f"has {extra[0]}, which this run does not train" if extra
                else f"{shapes[0]} is {tuple(saved[shapes[0]].shape)}, this run's is {tuple(fresh[shapes[0]].shape)}")
        raise ConfigError(f"{FIELD}: {folder} does not fit this run's lora settings ({what}; "
                          f"{len(missing) + len(extra) + len(shapes)} tensor(s) differ)")
    set_peft_model_state_dict(model, saved)
    log.info("starting from the adapter %s, not a fresh LoRA", folder)
    return {"path": str(folder), "sha256": file_sha256(folder / ADAPTER_WEIGHTS),
            "loaded_fingerprint": lora_fingerprint(get_peft_model_state_dict(model))}


def resumable(checkpoint: Path | None, start_sha: str | None) -> Path | None:
    """``checkpoint``, unless it continues another init adapter than this run's (then training starts over).

    Checkpoints record the sha256 of the weights their run started from (None: a fresh LoRA).
    """
    if checkpoint is not None and json.loads((checkpoint / "state.json").read_text()).get("init_adapter") != start_sha:
        log.warning("%s continues another init_adapter than this run's: starting over", checkpoint)
        return None
    return checkpoint


def lora_fingerprint(tensors: dict[str, Any]) -> str:
    """SHA-256 over names, shapes and float32 bytes, sorted by name: equal iff the values are equal."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().float().cpu().contiguous()
        digest.update(f"{name}\0{tuple(value.shape)}\0".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def _read_json(path: Path, key: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable ({exc})", path=path, field=key) from None
    if not isinstance(data, dict):
        raise InputError("not a JSON object", path=path, field=key)
    return data

