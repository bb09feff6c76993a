"""Collect the facts a card states from the run records: distill.json, stats.json, report.json, traces.

Usage:
    from distill.publish.provenance import gather
    facts = gather(cfg)     # plain dict: base model, hyper-parameters, teacher, sampling, funnel, tokens, cost, eval

Nothing here is typed by hand: every number comes from a file a stage wrote. Endpoints are
reduced to their host name; API keys are never read (only the NAME of their variable exists
in configs, and it is dropped here too).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import urlparse

import yaml

from distill.generate.resume import iter_good_traces, pair_key, record_cost
from distill.records import file_sha256, read_jsonl

log = logging.getLogger(__name__)
HUB_NAMES = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
_SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "samples", "on_truncated", "system_prompt",
                  "prompt_template", "extra_body")


def _json(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable (%s); the card leaves it out", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _yaml(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def hub_base_model(refs: list[str | None], override: str | None) -> str | None:
    """The base model as a Hub id (for the card's metadata), or None when only a local path is known."""
    if override:
        return override
    for ref in refs:
        if not ref:
            continue
        if ref in HUB_NAMES:
            return HUB_NAMES[ref]
        if ref.count("/") == 1 and not Path(ref).exists() and not ref.startswith((".", "/", "~")):
            return ref
    return None


def _first_existing(*paths: Path | None) -> Path | None:
    return next((p for p in paths if p is not None and p.is_file()), None)


def _teacher(gen_cfg: dict, records: list[dict]) -> dict:
    urls = gen_cfg.get("base_url")
    urls = urls if isinstance(urls, list) else [urls] if urls else []
    models = sorted({r.get("model") for r in records if r.get("model")})
    return {"model": gen_cfg.get("model") or (models[0] if models else None), "served_as": models,
            "endpoint_hosts": sorted({urlparse(u).hostname for u in urls if u and urlparse(u).hostname}),
            "provider": gen_cfg.get("provider"),
            "sampling": {k: gen_cfg[k] for k in _SAMPLING_KEYS if k in gen_cfg and gen_cfg[k] not in (None, {}, "")}}


def _usage(records: list[dict]) -> dict:
    total = {"requests": len(records), "prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0,
             "cost_usd": 0.0}
    for r in records:
        for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens"):
            total[k] += int((r.get("usage") or {}).get(k) or 0)
        total["cost_usd"] += float(r.get("cost_usd") or 0.0)
    total["cost_usd"] = round(total["cost_usd"], 4)
    return total


def _records(path: Path | None) -> list[dict]:
    """Every line (the spend counts failed attempts too), typed, or one line naming the bad field."""
    if path is None or not path.is_file():
        return []
    records = []
    for line, rec in read_jsonl(path):
        pair_key(rec, path, line)
        record_cost(rec, path, line)
        records.append(rec)
    return records


def _pairs(path: Path | None) -> list[dict]:
    """The last good record of each (id, sample): a file appended twice publishes each pair once."""
    return list(iter_good_traces(path)) if path is not None and path.is_file() else []


def public_name(value):
    """A local file is named by its file name only: the card should not publish someone's folder layout."""
    if isinstance(value, str) and (value.startswith(("/", "~", ".")) or Path(value).exists()):
        return Path(value).name
    return value


def _find_traces(kept: Path | None) -> Path | None:
    """generate's output: named by the filter's resolved config (``traces=``), else traces.jsonl beside."""
    if kept is None:
        return None
    traces = _yaml(kept.with_name("filter.config.yaml")).get("traces")
    candidates = [Path(traces) if traces else None, (kept.parent / traces) if traces else None,
                  kept.with_name("traces.jsonl")]
    return _first_existing(*candidates)


def gather(cfg) -> dict:
    """Everything the cards say, from the files ``cfg`` points at (missing records are simply left out)."""
    adapter = Path(cfg.adapter) if cfg.adapter else None
    record = _json(adapter / "distill.json") if adapter else {}
    adapter_cfg = _json(adapter / "adapter_config.json") if adapter else {}
    data_path = Path(cfg.dataset) if cfg.dataset else None
    if data_path is None and isinstance(record.get("data"), dict) and record["data"].get("path"):
        candidate = Path(record["data"]["path"])
        data_path = candidate if candidate.is_file() else None
    folder = data_path.parent if data_path else None
    stats_path = Path(cfg.stats) if cfg.stats else _first_existing(folder / "stats.json" if folder else None)
    traces_path = Path(cfg.traces) if cfg.traces else _find_traces(data_path)
    gen_path = Path(cfg.generate_config) if cfg.generate_config else _first_existing(
        traces_path.with_name(traces_path.name.rsplit(".", 1)[0] + ".config.yaml") if traces_path else None)
    kept = _pairs(data_path)
    all_traces = _records(traces_path) or kept + _records(folder / "rejected.jsonl" if folder else None)
    gen_cfg = _yaml(gen_path)
    gen_cfg.pop("api_key_env", None)
    eval_dir = Path(cfg.eval) if cfg.eval else None
    report = _json(eval_dir / "report.json") if eval_dir else {}
    base_refs = [record.get("student"), record.get("base_model"), adapter_cfg.get("base_model_name_or_path")]
    return {
        "base_model": hub_base_model(base_refs, cfg.base_model),
        "base_model_recorded": public_name(adapter_cfg.get("base_model_name_or_path") or record.get("base_model")),
        "adapter_config": adapter_cfg, "finetune": record,
        "dataset_file": str(data_path) if data_path else None,
        "dataset_sha256": file_sha256(data_path) if data_path else None,
        "kept": kept, "stats": _json(stats_path), "teacher": _teacher(gen_cfg, all_traces or kept),
        "problems_source": {k: public_name(gen_cfg.get(k)) for k in ("problems", "hf_config", "split") if gen_cfg.get(k)},
        "usage": _usage(all_traces), "usage_scope": "all traces" if all_traces else "kept traces",
        "eval": report,
    }
