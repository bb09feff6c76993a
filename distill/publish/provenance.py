"""Collect the facts a card states from the run records (AdapterRecord, FilterStats, EvalReport, traces).

Usage:
    from distill.publish.provenance import gather
    facts = gather(cfg)     # plain dict: base model and weights, hyper-parameters, teacher, funnel, tokens, cost, eval

Nothing here is typed by hand and no file name is guessed: every number comes from a record a
stage wrote, read through :mod:`distill.artifacts`, and each record names the next one (the
adapter record its data, the filter stats its traces, generate's config sits beside its
traces). Endpoints are reduced to their host name; API keys are never read (only the NAME of
their variable exists in configs, and it is dropped here too).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from urllib.parse import urlparse

import yaml

from distill.artifacts import AdapterRecord, EvalReport, FilterStats, is_failed, pair_key, read_latest, read_records, record_cost
from distill.layout import EvalFiles, FilterFiles, generate_config_path
from distill.records import file_sha256
from distill.student import hub_id

log = logging.getLogger(__name__)
_SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "samples", "on_truncated", "system_prompt",
                  "prompt_template", "extra_body")


def _json(path: Path) -> dict:
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
    for line, rec in read_records(path):
        pair_key(rec, path, line)
        record_cost(rec, path, line)
        records.append(rec)
    return records


def _pairs(path: Path | None) -> list[dict]:
    """The last record of each (id, sample) when it is good: a file appended twice publishes each pair once."""
    if path is None or not path.is_file():
        return []
    return [rec for rec in read_latest(path).values() if not is_failed(rec)]


def public_name(value):
    """A local file is named by its file name only: the card should not publish someone's folder layout."""
    if isinstance(value, str) and (value.startswith(("/", "~", ".")) or Path(value).exists()):
        return Path(value).name
    return value


def gather(cfg) -> dict:
    """Everything the cards say, from the records ``cfg`` points at (a record not given is left out)."""
    adapter = Path(cfg.adapter) if cfg.adapter else None
    record = AdapterRecord.read(adapter) if adapter and AdapterRecord.exists(adapter) else None
    adapter_cfg = _json(adapter / "adapter_config.json") if adapter and (adapter / "adapter_config.json").is_file() \
        else {}
    data_path = Path(cfg.dataset) if cfg.dataset else Path(record.data["path"]) if record else None
    stats_path = Path(cfg.stats) if cfg.stats else FilterFiles.beside(data_path).stats if data_path else None
    stats = FilterStats.read(stats_path) if stats_path and stats_path.is_file() else None
    traces_path = Path(cfg.traces) if cfg.traces else Path(stats.inputs["traces"]) if stats else None
    gen_path = Path(cfg.generate_config) if cfg.generate_config else \
        generate_config_path(traces_path) if traces_path else None
    kept = _pairs(data_path)
    all_traces = _records(traces_path)
    gen_cfg = _yaml(gen_path)
    gen_cfg.pop("api_key_env", None)
    report_path = EvalFiles(Path(cfg.eval)).report if cfg.eval else None
    report = EvalReport.read(report_path).to_dict() if report_path and report_path.is_file() else {}
    recorded = adapter_cfg.get("base_model_name_or_path")
    return {
        "base_model": cfg.base_model or (record.base_model if record else hub_id(recorded or "")),
        "base_model_recorded": public_name(record.base_path if record else recorded),
        "base_weights": dataclasses.asdict(record.base_weights) if record and record.base_weights else None,
        "adapter_config": adapter_cfg, "finetune": dataclasses.asdict(record) if record else {},
        "dataset_file": str(data_path) if data_path else None,
        "dataset_sha256": file_sha256(data_path) if data_path and data_path.is_file() else None,
        "kept": kept, "stats": stats.to_dict() if stats else {}, "teacher": _teacher(gen_cfg, all_traces or kept),
        "problems_source": {k: public_name(gen_cfg.get(k)) for k in ("problems", "hf_config", "split") if gen_cfg.get(k)},
        "usage": _usage(all_traces or kept), "usage_scope": "all traces" if all_traces else "kept traces",
        "eval": report,
    }
