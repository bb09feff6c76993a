"""Collect the facts a card states from the run records (AdapterRecord, FilterStats, EvalReport, traces).

Usage:
    from distill.publish.provenance import gather
    facts = gather(cfg)     # plain dict: base model and weights, hyper-parameters, teacher, funnel, tokens, cost, eval

Nothing here is typed by hand and no file name is guessed: every number comes from a record a
stage wrote, read through :mod:`distill.artifacts`, and each record names the next one (the
adapter record its data, the filter stats its traces, generate's config sits beside its
traces). Endpoints are reduced to their host name; API keys are never read (only the NAME of
their variable exists in configs, and it is dropped here too).

What is not recorded is left out, never filled in: finetune also trains on plain chat records
(``messages``, no ids), and data like that says nothing of a teacher, a verifier or a cost, so
the facts say "chat" and carry none. A stats.json is the funnel of the data only when it is the
filter's record of that very file (the kept file's sha256 it records; for stats written before
the filter recorded it, the data must be kept traces, as many as the stats counted).
"""

from __future__ import annotations

import dataclasses
import logging
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from distill.adapters import read_base
from distill.artifacts import (AdapterRecord, EvalReport, FilterStats, Spend, last_of_repeated, pair_hash,
                               pair_key, read_records)
from distill.errors import InputError
from distill.layout import EvalFiles, FilterFiles, generate_config_path
from distill.learnability.store import card_student
from distill.publish.shards import is_published
from distill.records import file_sha256

log = logging.getLogger(__name__)
_SAMPLING_KEYS = ("temperature", "top_p", "max_tokens", "samples", "on_truncated", "system_prompt",
                  "prompt_template", "extra_body")


def _yaml(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _teacher(gen_cfg: dict, models: list[str]) -> dict:
    urls = gen_cfg.get("base_url")
    urls = urls if isinstance(urls, list) else [urls] if urls else []
    return {"model": gen_cfg.get("model") or (models[0] if models else None), "served_as": models,
            "endpoint_hosts": sorted({urlparse(u).hostname for u in urls if u and urlparse(u).hostname}),
            "provider": gen_cfg.get("provider"),
            "sampling": {k: gen_cfg[k] for k in _SAMPLING_KEYS if k in gen_cfg and gen_cfg[k] not in (None, {}, "")}}


@dataclass
class TrainingData:
    """The data file an adapter was trained on (or ``dataset=`` names), as far as its own records say.

    Counted as the file is read, never held: a million kept traces are a few counters, the key
    hashes of one pass (8 bytes a record) and the handful of model and student names they carry."""

    path: Path | None
    rows: int = 0  # traces: the last good record of each pair; chat: every one
    verified: int = 0  # rows whose verdict says their answer was checked correct
    is_traces: bool = False  # generate/filter records (every line has an id); else plain chat records
    sha256: str | None = None
    spend: Spend = field(default_factory=Spend)  # of the rows (traces only)
    models: set[str] = field(default_factory=set)  # the names the rows were served as (traces only)
    students: set[str] = field(default_factory=set)  # whom their learnability scores are for (traces only)

    @property
    def is_verified(self) -> bool:
        """Every row carries a verdict saying its answer was checked correct (the filter's kept file)."""
        return bool(self.rows) and self.verified == self.rows

    def add(self, rec: dict, line: int) -> None:
        """Count one row (one that is published: the caller leaves superseded and failed records out)."""
        self.rows += 1
        self.verified += (rec.get("verdict") or {}).get("correct") is True
        if self.is_traces:
            self.spend.add(rec, self.path, line)
            if rec.get("model"):
                self.models.add(rec["model"])
            if student := card_student(rec):
                self.students.add(student)

    def facts(self) -> dict:
        kind = None if self.path is None or not self.sha256 else "traces" if self.is_traces else "chat"
        return {"file": self.path.name if self.path else None, "kind": kind, "rows": self.rows,
                "is_verified": self.is_verified, "sha256": self.sha256,
                "learnability_students": sorted(self.students)}


def read_data(path: Path | None) -> TrainingData:
    """Trace records (every line with an id: last record of a pair wins, failed ones out), else chat records.

    Two passes, as distill.publish.shards reads the file: which record of each pair wins, then the count."""
    if path is None or not path.is_file():
        return TrainingData(path)
    hashes, with_id, bad_key = array("Q"), 0, None
    for line, rec in read_records(path):
        if rec.get("id") is not None:  # (a chat export may carry "id": null)
            with_id += 1
            try:
                pair_key(rec, path, line)
            except InputError as exc:  # an error only if the file turns out to be traces
                bad_key = bad_key or exc
        hashes.append(pair_hash(rec))
    is_traces = bool(hashes) and with_id == len(hashes)
    if is_traces and bad_key:
        raise bad_key
    if with_id and not is_traces:
        log.warning("%s mixes trace records (with id) and records without: described as plain chat data", path)
    superseded = last_of_repeated(hashes) if is_traces else {}
    del hashes
    data = TrainingData(path, is_traces=is_traces, sha256=file_sha256(path))
    for i, (line, rec) in enumerate(read_records(path)):
        if not is_traces or is_published(rec, i, superseded):
            data.add(rec, line)
    return data


def _stats_mismatch(stats: FilterStats, data: TrainingData) -> str | None:
    """Why ``stats`` are not the filter's record of ``data`` (None: they are, or there is no data to compare)."""
    if data.path is None:
        return None
    recorded = stats.outputs.get("sha256")
    if recorded:
        return None if recorded == data.sha256 else "it records another kept file (its sha256 differs)"
    # stats.json written before the filter recorded its output: the data must be its kept traces, all of them
    if not (data.is_traces and data.is_verified):
        return "the data is not a filter's kept traces"
    return None if stats.kept == data.rows else f"it counts {stats.kept} kept traces, the data has {data.rows}"


def filter_stats(named: str | None, data: TrainingData) -> FilterStats | None:
    """The filter's stats of ``data``: ``named``, else the stats.json beside it; None unless they are of that data."""
    path = Path(named) if named else FilterFiles.beside(data.path).stats if data.path else None
    if path is None or not path.is_file():
        return None
    try:
        stats = FilterStats.read(path)
    except InputError:
        if named:
            raise
        log.info("%s is not a filter stats record: the card leaves the funnel out", path)
        return None
    why = _stats_mismatch(stats, data)
    if why is None:
        return stats
    # Named or not (the pipeline names its own), the card then simply has no funnel: a warning, not a
    # refusal at the end of a run, when the stats were named and so expected to count.
    (log.warning if named else log.info)("%s is not the filter's record of %s (%s): the card leaves the funnel "
                                         "out", path, data.path, why)
    return None


def _traces(path: Path) -> tuple[Spend, list[str]]:
    """What every line of a traces file cost (failed attempts too) and the model names it was served as."""
    spend, models = Spend(), set()
    for line, rec in spend.counting(read_records(path), path):
        pair_key(rec, path, line)
        if rec.get("model"):
            models.add(rec["model"])
    return spend, sorted(models)


def public_name(value):
    """A local file is named by its file name only: the card should not publish someone's folder layout."""
    if isinstance(value, str) and (value.startswith(("/", "~", ".")) or Path(value).exists()):
        return Path(value).name
    return value


def _spend(traces_path: Path | None, data: TrainingData) -> tuple[dict | None, str | None, list[str]]:
    """(usage, its scope, served-as models): of the whole traces file, else of the kept traces, else unknown."""
    if traces_path is not None and traces_path.is_file():
        spend, models = _traces(traces_path)
        scope = "all traces"
    elif data.is_traces:
        spend, models = data.spend, sorted(data.models)
        scope = "kept traces"
    else:  # plain chat data: who wrote it and at what cost is not recorded
        return None, None, []
    usage = dataclasses.asdict(spend)
    usage["cost_usd"] = round(usage["cost_usd"], 4)
    return usage, scope, models


def _data_trained_on(cfg, record: AdapterRecord | None) -> TrainingData:
    """``dataset=``, else the file the adapter record names, unless it changed since (then its content is unknown)."""
    if cfg.dataset:
        return read_data(Path(cfg.dataset))
    path = (record.data or {}).get("path") if record else None
    if not path:
        return TrainingData(None)
    data = read_data(Path(path))
    trained = (record.data or {}).get("sha256")
    if data.sha256 and trained and data.sha256 != trained:
        log.warning("%s changed since the adapter was trained on it: the card leaves its contents out", path)
        return TrainingData(Path(path))
    return data


def gather(cfg) -> dict:
    """Everything the cards say, from the records ``cfg`` points at (a record not given is left out)."""
    base = read_base(cfg.adapter) if cfg.adapter else None
    record = base.record if base else None
    data = _data_trained_on(cfg, record)
    stats = filter_stats(cfg.stats, data)
    traces_path = Path(cfg.traces) if cfg.traces else \
        Path(stats.inputs["traces"]) if stats and stats.inputs.get("traces") else None
    gen_path = Path(cfg.generate_config) if cfg.generate_config else \
        generate_config_path(traces_path) if traces_path else None
    gen_cfg = _yaml(gen_path)
    gen_cfg.pop("api_key_env", None)
    usage, scope, models = _spend(traces_path, data)
    report_path = EvalFiles(Path(cfg.eval)).report if cfg.eval else None
    report = EvalReport.read(report_path).to_dict() if report_path and report_path.is_file() else {}
    return {
        "base_model": cfg.base_model or (base.hub_id if base else None),
        "base_model_recorded": public_name(base.local if base else None),
        "base_weights": dataclasses.asdict(record.base_weights) if record and record.base_weights else None,
        "adapter_config": base.config if base else {}, "finetune": dataclasses.asdict(record) if record else {},
        "data": data.facts(), "dataset_file": str(data.path) if data.path else None, "dataset_sha256": data.sha256,
        "stats": stats.to_dict() if stats else {}, "teacher": _teacher(gen_cfg, models),
        "problems_source": {k: public_name(gen_cfg.get(k)) for k in ("problems", "hf_config", "split") if gen_cfg.get(k)},
        "usage": usage, "usage_scope": scope, "eval": report,
    }
