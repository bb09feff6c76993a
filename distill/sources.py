"""Problem sources -> Problem records: local files, Hugging Face datasets, reasoning-gym generators.

Usage:
    problems = load_problems(SourceConfig(problems="data.jsonl"))   # or any config with its fields; validated
    for p in iter_problems(cfg): ...     # streaming: one record at a time (100k-line files)

``problems=`` is a JSONL/JSON/CSV/Parquet file, a ``save_to_disk`` folder, a Hub dataset name
(``hf_config``, ``split``), or ``rg:<task>`` (``reasoning_gym.create_dataset(task, size=limit,
seed=seed)``). Field names map through ``question_field`` / ``answer_field`` / ``id_field``;
GSM8K answers ending in ``#### N`` become ``N`` (the full solution is kept as ``solution``);
missing ids are derived from the question text. Bad input raises :class:`InputError` naming the
file, line and field: malformed lines, missing/empty question or answer, duplicate ids.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.config import check_bounds, option
from distill.errors import ConfigError, InputError
from distill.artifacts import KINDS, Problem
from distill.records import read_jsonl, stable_id

FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
RowIter = Iterator[tuple[str, int | None, str, dict]]  # (path, line or None, where, raw row)


@dataclass
class SourceConfig:
    """Where problems come from and how their fields are named (shared with `distill eval`)."""

    problems: str | None = option(
        None, "JSONL/JSON/CSV/Parquet file, save_to_disk folder, Hub dataset name, or rg:<reasoning-gym task>")
    hf_config: str | None = option(None, "Hub dataset config name (e.g. main for openai/gsm8k)")
    split: str = option("train", "Hub dataset split")
    limit: int | None = option(None, "use at most this many problems (reasoning-gym: how many to make)")
    seed: int = option(0, "seed for reasoning-gym problems")
    question_field: str = option("question", "source field holding the question")
    answer_field: str = option("answer", "source field holding the reference answer")
    id_field: str = option("id", "source field holding a stable id (derived from the question if absent)")
    kind: str = option("math", "answer kind when the source has none: math | gsm8k | choice | exact | code")

    def validate_source(self) -> None:
        check_bounds(self, {"limit": ">= 1"})
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


def load_problems(cfg: Any) -> list[Problem]:
    """All problems of ``cfg.problems`` as validated Problem records."""
    return list(iter_problems(cfg))


def iter_problems(cfg: Any) -> Iterator[Problem]:
    """Validated Problem records one at a time (only the ids seen so far are held in memory)."""
    seen: dict[str, str] = {}
    limit = cfg.limit
    count = 0
    for path, line, where, row in _rows(cfg):
        if limit is not None and count >= limit:
            return
        problem = to_problem(row, cfg, path, line, where)
        if problem["id"] in seen:
            raise InputError(f"duplicate id {problem['id']!r}{_at(where, line)} (first seen at {seen[problem['id']]})",
                             path=path, line=line, field=cfg.id_field)
        seen[problem["id"]] = where
        count += 1
        yield problem


def to_problem(row: dict, cfg: Any, path: str, line: int | None, where: str = "") -> dict:
    """Map one source row to a Problem record, or raise InputError locating the bad field."""
    if not isinstance(row, dict):
        raise InputError(f"expected an object, got {type(row).__name__}", path=path, line=line)
    question = _text(row.get(cfg.question_field))
    if not question:
        what = "missing" if cfg.question_field not in row else "empty"
        raise InputError(f"{what} question{_at(where, line)}{_fields_hint(row)}", path=path, line=line,
                         field=cfg.question_field)
    raw_answer = row.get(cfg.answer_field)
    if isinstance(raw_answer, (list, dict, bool)):  # a list would become its JSON text and verify as nothing
        raise InputError(f"answer must be text or a number, got {_type_word(raw_answer)}{_at(where, line)}",
                         path=path, line=line, field=cfg.answer_field)
    raw_id = row.get(cfg.id_field)
    if cfg.id_field in row and (raw_id is None or isinstance(raw_id, (list, dict, bool, float))):
        if not (isinstance(raw_id, float) and raw_id.is_integer()):
            raise InputError(f"id must be a string or an integer, got {_type_word(raw_id)}{_at(where, line)}",
                             path=path, line=line, field=cfg.id_field)
    answer = _text(raw_answer)
    if not answer:
        what = "missing" if cfg.answer_field not in row else "empty"
        raise InputError(f"{what} answer{_at(where, line)}{_fields_hint(row)}", path=path, line=line,
                         field=cfg.answer_field)
    mapped = {cfg.question_field, cfg.answer_field, cfg.id_field}
    extra = {k: _jsonable(v) for k, v in row.items() if k not in mapped and k not in ("question", "answer", "id")}
    ident = _text(row.get(cfg.id_field)) or stable_id(question)
    kind = str(row.get("kind") or cfg.kind)
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})", path=path, line=line,
                         field="kind")
    final = _GSM8K_FINAL.search(answer)
    if final and kind != "code":
        extra.setdefault("solution", answer)
        answer = final.group(1).replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", final.group(1)) \
            else final.group(1)
    return {"id": ident, "question": question, "answer": answer, "kind": kind, **extra}


def _type_word(value: Any) -> str:
    return {list: "a list", dict: "an object", bool: "a boolean", float: "a fractional number"}.get(
        type(value), "null" if value is None else type(value).__name__)


def _at(where: str, line: int | None) -> str:
    return f" ({where})" if line is None and where else ""


def _fields_hint(row: dict) -> str:
    keys = ", ".join(list(row)[:8])
    return f"; the record has fields: {keys} (map them with question_field=/answer_field=)" if keys else ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy / pyarrow scalars and arrays
        return _jsonable(value.tolist())
    return str(value)


# ---------------------------------------------------------------- readers


def _rows(cfg: Any) -> RowIter:
    spec = cfg.problems
    if not spec:
        raise ConfigError("problems: give a file, a dataset name, rg:<reasoning-gym task> or offline:train|eval")
    spec = str(spec)
    if spec.startswith("rg:"):
        return _reasoning_gym(spec[3:], cfg)
    if spec.startswith("offline:"):
        return _offline_tasks(spec, cfg)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _saved_dataset(path, cfg)
    if path.suffix.lower() in FILE_SUFFIXES or path.exists() or spec.startswith((".", "/", "~")):
        return _local_file(path)
    return _hub_dataset(spec, cfg)


def _offline_tasks(spec: str, cfg: Any) -> RowIter:
    """The built-in offline teacher's task sets (``offline:train``, ``offline:eval:arithmetic?n=50``)."""
    from distill.offline.sets import from_spec

    try:
        problems = from_spec(spec)
    except ValueError as exc:
        raise InputError(str(exc), path=spec) from None
    for i, problem in enumerate(problems):
        # Offline problems carry the Problem names; map them onto the configured field names.
        row = {**problem, cfg.id_field: problem["id"], cfg.question_field: problem["question"],
               cfg.answer_field: problem["answer"]}
        yield spec, None, f"item {i}", row


def _local_file(path: Path) -> RowIter:
    if not path.exists():
        raise InputError("file not found", path=path)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise InputError("cannot read file", path=path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return ((str(path), line, f"line {line}", rec) for line, rec in read_jsonl(path, skip_torn_tail=False))
    if suffix == ".json":
        return _json_file(path)
    if suffix == ".csv":
        return _csv_file(path)
    if suffix == ".parquet":
        return _parquet_file(path)
    raise InputError(f"unknown file type {suffix!r} (expected {', '.join(FILE_SUFFIXES)})", path=path)


def _json_file(path: Path) -> RowIter:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    if isinstance(data, dict):  # {"data": [...]} / {"train": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else data
    if not isinstance(data, list):
        raise InputError("expected a JSON list of objects (or JSONL, one object a line)", path=path)
    return ((str(path), None, f"item {i}", row) for i, row in enumerate(data, 1))


def _csv_file(path: Path) -> RowIter:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield str(path), reader.line_num, f"line {reader.line_num}", row
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", path=path) from None


def _parquet_file(path: Path) -> RowIter:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(f"not a readable Parquet file ({exc})", path=path) from None
    index = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            index += 1
            yield str(path), None, f"row {index}", row


def _saved_dataset(path: Path, cfg: Any) -> RowIter:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - not a save_to_disk folder
        raise InputError(f"not a dataset folder saved with save_to_disk ({exc})", path=path) from None
    if isinstance(ds, datasets.DatasetDict):
        if cfg.split not in ds:
            raise InputError(f"unknown split {cfg.split!r} (available: {', '.join(ds)})", path=path, field="split")
        ds = ds[cfg.split]
    return ((str(path), None, f"row {i}", row) for i, row in enumerate(ds, 1))


def _hub_dataset(name: str, cfg: Any) -> RowIter:
    import datasets

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        ds = datasets.load_dataset(name, cfg.hf_config, split=cfg.split)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise InputError(f"unknown split {cfg.split!r} of dataset {name!r} ({exc})", path=name,
                             field="split") from None
        raise InputError(_hub_message(name, exc, offline), path=name) from None
    except Exception as exc:  # noqa: BLE001 - hub/network/cache errors all mean "cannot load"
        raise InputError(_hub_message(name, exc, offline), path=name) from None
    return ((name, None, f"row {i}", row) for i, row in enumerate(ds, 1))


def _hub_message(name: str, exc: Exception, offline: bool) -> str:
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    if offline:
        return (f"not a local file and not a cached Hub dataset (HF_HUB_OFFLINE=1, so the Hub was not "
                f"asked): {first}")
    return f"cannot load Hub dataset {name!r} (unknown name, config or no access): {first}"


def _reasoning_gym(task: str, cfg: Any) -> RowIter:
    import reasoning_gym

    size = cfg.limit or 100
    try:
        ds = reasoning_gym.create_dataset(task, size=size, seed=cfg.seed)
    except (ValueError, KeyError) as exc:
        raise InputError(f"unknown reasoning-gym task ({exc})", path=f"rg:{task}") from None
    for i, item in enumerate(ds):
        # Generated rows always use reasoning-gym's names, whatever the *_field options say.
        row = {cfg.id_field: f"rg-{task}-{cfg.seed}-{i:05d}", cfg.question_field: item["question"],
               cfg.answer_field: item["answer"], "source": f"reasoning_gym/{task}",
               "metadata": item.get("metadata", {})}
        yield f"rg:{task}", None, f"item {i}", row
