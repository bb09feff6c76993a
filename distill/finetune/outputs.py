"""What a finetune run leaves beside its adapter: distill.json (an AdapterRecord), loss.png, versions.

Usage:
    record = adapter_record(cfg, student_path, tokenizer.chat_template, counts, metrics)
    record.write(out)                                  # out/distill.json
    plot_loss(out / "loss.jsonl", out / "loss.png")
    write_outputs(model, tokenizer, gen_cfg, cfg, out, student_path, counts, metrics)   # all of the above + weights
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from distill.artifacts import AdapterRecord, BaseWeights, read_records
from distill.config import save_resolved, to_dict
from distill.layout import AdapterFiles
from distill.records import file_sha256
from distill.student import base_weights, hub_id

log = logging.getLogger(__name__)

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


def trained_prompt_template(data: str | Path) -> str | None:
    """The user-message template the training data was generated with (its traces record it).

    Chat records whose user turn is the bare question were prompted with ``{question}``; data
    that says neither gives None (eval then warns and uses its own template). A file mixing
    templates (a generate run resumed with another one) records the most common, with a warning.
    """
    seen: Counter = Counter()
    for _, rec in read_records(data):
        if isinstance(rec.get("prompt_template"), str):
            seen[rec["prompt_template"]] += 1
        elif isinstance(rec.get("question"), str) and any(
                m.get("role") == "user" and m.get("content") == rec["question"]
                for m in rec.get("messages") or [] if isinstance(m, dict)):
            seen["{question}"] += 1
    if len(seen) > 1:
        log.warning("%s mixes %d prompt templates; eval will prompt with the most common one", data, len(seen))
    return seen.most_common(1)[0][0] if seen else None


def adapter_record(cfg: Any, student_path: Path, chat_template: str | None, counts: dict,
                   metrics: dict) -> AdapterRecord:
    """The run's provenance: base model and weights, the prompt trained with, data, settings, metrics."""
    weights = base_weights(student_path)
    return AdapterRecord(
        student=cfg.student, base_model=hub_id(cfg.student), base_path=str(student_path),
        base_weights=BaseWeights(**weights) if weights else None,
        prompt_template=trained_prompt_template(cfg.data), system_prompt=cfg.system_prompt,
        reasoning_format=cfg.reasoning_format, chat_template=chat_template,
        data={"path": str(cfg.data), "sha256": file_sha256(cfg.data), **counts},
        hyperparameters=_used_settings(cfg), versions=library_versions(), metrics=metrics)


def _used_settings(cfg: Any) -> dict:
    """The config as trained with; the on-policy section only when that method ran (cards list every setting)."""
    settings = to_dict(cfg)
    if settings.get("method", "sft") != "on_policy":
        settings.pop("onpolicy", None)
    return settings


def plot_loss(log: Path, png: Path) -> Path | None:
    """loss.png from loss.jsonl (:func:`distill.plots.loss`); None when there is nothing to draw."""
    from distill import plots

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    return plots.loss(rows, png)


def write_outputs(model: Any, tokenizer: Any, gen_cfg: Any, cfg: Any, out: Path, student_path: Path,
                   counts: dict, metrics: dict, started_from: dict | None = None) -> None:
    """Adapter, tokenizer, generation config, resolved config, distill.json, loss.png (+ merged)."""
    record = adapter_record(cfg, student_path, tokenizer.chat_template, counts, metrics)
    record.init_adapter = started_from
    # Converted (GGUF) weights are not the Hub checkpoint: point at the folder actually trained on.
    is_hub = record.base_model is not None and record.base_weights is None
    model.peft_config["default"].base_model_name_or_path = record.base_model if is_hub else record.base_path
    model.base_model.model.set_attn_implementation("sdpa")  # the saved model must not need distill to load
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if gen_cfg is not None:
        from distill.student import generation_config_for

        generation_config_for(gen_cfg, tokenizer, type(gen_cfg)).save_pretrained(tmp)
    for item in tmp.iterdir():  # each file appears whole; a crash leaves at worst an older file
        item.replace(out / item.name)
    tmp.rmdir()
    save_resolved(cfg, AdapterFiles(out).config)
    plot_loss(AdapterFiles(out).loss_log, AdapterFiles(out).loss_plot)
    if cfg.merge:
        write_merged(model, tokenizer, AdapterFiles(out).merged)
    record.write(out)
    shutil.rmtree(AdapterFiles(out).checkpoints, ignore_errors=True)


def write_merged(model: Any, tokenizer: Any, dest: Path) -> None:
    """The adapter merged into the base weights, saved whole at ``dest`` (written under a temp name)."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged = model.merge_and_unload()
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
