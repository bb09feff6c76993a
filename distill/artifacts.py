"""The hand-off between stages: the records each stage writes and the next one reads, and their files.

Usage:
    from distill.artifacts import AblationReport, AdapterRecord, EvalReport, FilterStats, LoopSummary, Spend, read_latest
    from distill.layout import RunLayout
    layout = RunLayout(Path("runs/default"))
    layout.traces, layout.kept, layout.adapter.record, layout.eval_after.report   # every file of a run
    latest = read_latest(layout.traces)            # {(id, sample): record}, the last record of a pair wins
    last = last_of_repeated(array("Q", map(pair_hash, records)))  # the same rule streamed: is_latest(rec, i, last)
    spend = Spend()                                # tokens and cost of every line, superseded attempts too
    winners = latest_per_pair(spend.counting(read_records(layout.traces)))  # one read: the winners and the spend
    record = AdapterRecord.read(layout.adapter.folder)   # how the adapter was trained, schema checked
    report = EvalReport.read(layout.eval_after.report)
    stats = FilterStats.read(layout.filter.stats)
    rounds = LoopSummary.read(layout.loop_summary).rounds        # a STaR run's rounds
    arms = AblationReport.read(layout.ablation.report).arms       # an ablation's arms

Two kinds of record cross a stage boundary. Lines of JSONL files, one per (problem, sample),
are typed as ``TypedDict`` (Problem, Trace, KeptVerdict): they stay plain dicts on the hot paths
(the filter rewrites millions of them byte for byte). Whole-file JSON records (AdapterRecord,
FilterStats, EvalReport, LoopSummary, AblationReport) are dataclasses read and written only here. Every record carries
``schema``; a file of another version is refused with an error naming it and what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from distill.errors import InputError
from distill.metrics import Metrics, metrics_from_json
from distill.records import read_jsonl, write_json_atomic

SCHEMA = 1  # JSONL line records (problems, traces, eval outputs)
ADAPTER_SCHEMA = 2  # 2: records the prompt it was trained with and the base weights' provenance
STATS_SCHEMA = 1
REPORT_SCHEMA = 1
LOOP_SCHEMA = 1
ABLATION_SCHEMA = 1
KINDS = ("math", "gsm8k", "choice", "exact", "code")  # the answer kinds the verifier knows
PROBLEM_REQUIRED = ("id", "question", "answer", "kind")
TRACE_REQUIRED = ("id", "sample", "question", "answer", "kind")

T = TypeVar("T")
PairKey = tuple[str, int]


# ---------------------------------------------------------------- line records (JSONL)


class Problem(TypedDict, total=False):
    """One problem: what generate asks and eval scores. Extra fields ride along into traces."""

    id: str
    question: str
    answer: str
    kind: str  # one of KINDS
    source: str
    options: list[str]


class KeptVerdict(TypedDict, total=False):
    """The ``verdict`` field filter adds to a trace: distill.verify's Verdict, plus who decided (rule or judge)."""

    correct: bool | None
    extracted: str | None
    reason: str  # "correct" when kept; the drop reason otherwise
    by: str  # "rule" or "judge"
    detail: Any
    judge: dict
    audit: bool
    rule: dict


class Trace(Problem, total=False):
    """One teacher answer to one (problem id, sample): what was sent, what came back, its cost."""

    schema: int
    sample: int
    prompt_template: str  # the user message is prompt_template.format(question=question)
    system_prompt: str | None
    messages: list[dict]
    reasoning: str | None
    content: str | None
    finish_reason: str | None
    truncated: bool
    max_tokens: int
    model: str | None
    usage: dict
    cost_usd: float
    latency_s: float
    attempts: int
    error: dict | None  # a failed request; a later record of the same pair supersedes it
    created_at: str
    rationalized: bool  # asked with the answer as a hint; ``messages`` stay the unhinted prompt
    hint: str  # the hint text that was added (hint_template without the question)
    verdict: KeptVerdict  # written by filter into kept.jsonl / rejected.jsonl


def check_schema(record: dict, path: str | Path, line: int | None = None, expected: int = SCHEMA,
                 what: str = "record") -> None:
    """Refuse a record written by another schema version (a record without one is taken as current)."""
    found = record.get("schema", expected)
    if found != expected:
        raise InputError(f"{what} of schema version {found!r}, this distill reads version {expected}; "
                         "re-run the stage that wrote it with this distill", path=path, line=line, field="schema")


def read_records(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line, record)`` of a JSONL record file, each checked for its schema version."""
    for line, record in read_jsonl(path):
        check_schema(record, path, line)
        yield line, record


def pair_key(record: dict, path: str | Path | None = None, line: int | None = None) -> PairKey:
    """The (problem id, sample) a record answers; the unit of resume and of 'last record wins'.

    A mistyped id or sample (a hand-edited or foreign file) is an InputError naming the line, never
    a silent ``"None"`` key.
    """
    ident, sample = record.get("id"), record.get("sample", 0)
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        raise InputError(f"id must be a string, got {type(ident).__name__}", path=path, line=line, field="id")
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 0:
        raise InputError(f"sample must be a non-negative integer, got {sample!r}"[:120], path=path, line=line,
                         field="sample")
    return str(ident), sample


def record_cost(record: dict, path: str | Path | None = None, line: int | None = None) -> float:
    """What a trace record cost (``cost_usd``), its accounting fields type-checked with the line named."""
    usage = record.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise InputError(f"usage must be an object, got {type(usage).__name__}", path=path, line=line, field="usage")
    cost = record.get("cost_usd")
    if cost is None:
        return 0.0
    if not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost < 0:
        raise InputError(f"cost_usd must be a non-negative number, got {cost!r}"[:120], path=path, line=line,
                         field="cost_usd")
    return float(cost)


@dataclass
class Spend:
    """What a traces file's lines cost: every line was paid for, a failed attempt that a retry superseded too."""

    responses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, record: dict, path: str | Path | None = None, line: int | None = None) -> None:
        self.cost_usd += record_cost(record, path, line)  # (type-checks usage too)
        usage = record.get("usage") or {}
        for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
            count = usage.get(name) or 0
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise InputError(f"{name} must be a non-negative integer, got {count!r}"[:120], path=path, line=line,
                                 field=f"usage.{name}")
            setattr(self, name, getattr(self, name) + count)
        self.responses += 1

    def counting(self, records: Iterable[tuple[int, dict]], path: str | Path | None = None
                 ) -> Iterator[tuple[int, dict]]:
        """Pass ``(line, record)`` through, adding each: one read both totals a file and finds its winners."""
        for line, record in records:
            self.add(record, path, line)
            yield line, record


def latest_per_pair(records: Iterable[tuple[int, dict]],
                    keep: Callable[[int, dict], T] = lambda line, rec: rec,
                    path: str | Path | None = None) -> dict[PairKey, T]:
    """The rule every reader of an append-only record file follows: the last record of a pair wins.

    A file may hold a failed attempt and, from a later run, its retry (or a truncated trace and
    its longer retry). ``keep(line, record)`` picks what to remember of the winner (the record,
    its line number, a flag), so a caller can hold keys rather than texts. The mapping's order
    follows the winning lines.
    """
    latest: dict[PairKey, T] = {}
    for line, record in records:
        key = pair_key(record, path, line)
        latest.pop(key, None)
        latest[key] = keep(line, record)
    return latest


def read_latest(path: str | Path, keep: Callable[[int, dict], T] = lambda line, rec: rec) -> dict[PairKey, T]:
    """:func:`latest_per_pair` over a record file (empty when the file does not exist)."""
    if not Path(path).exists():
        return {}
    return latest_per_pair(read_records(path), keep, path)


def pair_hash(record: dict) -> int:
    """A record's (id, sample) as a 64-bit hash: what a reader of millions of lines holds instead of its key."""
    ident, sample = record.get("id"), record.get("sample", 0)
    digest = hashlib.blake2b(f"{ident}\0{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def last_of_repeated(hashes: array) -> dict[int, int]:
    """:func:`latest_per_pair` without the records: of a file's :func:`pair_hash` es in line order, each
    repeated pair's last index. A reader then streams the file again and keeps record ``i`` when
    :func:`is_latest`; it holds 8 bytes a record (the hashes) and an entry per repeated pair."""
    import numpy as np

    if not hashes:
        return {}
    values, counts = np.unique(np.frombuffer(hashes, dtype=np.uint64), return_counts=True)
    repeated = set(values[counts > 1].tolist())
    last: dict[int, int] = {}
    for i, h in enumerate(hashes):
        if h in repeated:
            last[h] = i
    return last


def is_latest(record: dict, index: int, superseded: dict[int, int]) -> bool:
    """Record ``index`` of a file is the last of its pair (``superseded``: :func:`last_of_repeated`)."""
    return superseded.get(pair_hash(record), index) == index


def is_failed(record: dict) -> bool:
    """A failed request, retried by the next run; a trace dropped as truncated is settled, not failed."""
    error = record.get("error")
    return bool(error) and not (isinstance(error, dict) and error.get("type") == "truncated")


# ---------------------------------------------------------------- file records (JSON)


def _read_json(path: Path, expected: int, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no {what} here", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable {what} ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object ({what})", path=path)
    if "schema" not in data:
        raise InputError(f"{what} without a schema version (written before distill recorded one); re-run the "
                         "stage that wrote it", path=path, field="schema")
    check_schema(data, path, expected=expected, what=what)
    return data


def _build(cls: type[T], data: dict, path: Path, what: str) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    required = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name in required:
        if name not in data:
            raise InputError(f"{what} lacks a field", path=path, field=name)
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class BaseWeights:
    """Where the student's base weights came from when they are not the Hub checkpoint itself."""

    file: str  # e.g. SmolLM2-135M-Instruct.Q4_1.gguf
    quantisation: str | None  # e.g. Q4_1: the weights trained on were de-quantised from it
    sha256: str | None
    dtype: str | None = None  # what they were de-quantised to


@dataclass
class AdapterRecord:
    """adapter/distill.json: what eval needs to prompt the student exactly as it was trained."""

    student: str  # as the user named it (alias, Hub id, folder, .gguf)
    base_model: str | None  # the base as a Hub id (None when only a local folder is known)
    base_path: str  # the folder the base weights were loaded from
    base_weights: BaseWeights | None  # provenance when the weights were converted (GGUF)
    prompt_template: str  # user message = prompt_template.format(question=...)
    system_prompt: str | None
    reasoning_format: str
    chat_template: str | None  # the Jinja template rendered with (also saved in the tokenizer)
    data: dict  # path, sha256, examples and drop counts
    hyperparameters: dict
    versions: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # wall_time_s, train_loss, ...
    # The adapter training started from (path, sha256 of its weights, fingerprint of what was
    # loaded); None: a fresh LoRA from the base model.
    init_adapter: dict | None = None
    schema: int = ADAPTER_SCHEMA
    stage: str = "finetune"

    FILE = "distill.json"

    def write(self, folder: str | Path) -> Path:
        return write_json_atomic(Path(folder) / self.FILE, dataclasses.asdict(self))

    @classmethod
    def read(cls, folder: str | Path) -> AdapterRecord:
        path = Path(folder) / cls.FILE
        data = _read_json(path, ADAPTER_SCHEMA, "adapter record")
        record = _build(cls, data, path, "adapter record")
        if isinstance(record.base_weights, dict):
            record.base_weights = _build(BaseWeights, record.base_weights, path, "adapter record base_weights")
        return record

    @classmethod
    def exists(cls, folder: str | Path) -> bool:
        return (Path(folder) / cls.FILE).is_file()


@dataclass
class FilterStats:
    """stats.json of the filter: the funnel and what was read and written."""

    inputs: dict  # {"traces": path}: where the kept traces came from
    traces: dict  # lines, unique, superseded, measured_now, from_cache
    kept: int
    rejected: int
    kept_share: float
    funnel: list[dict]  # [{"step", "dropped", "left", "tokens_dropped"}, ...] in check order
    tokens: dict = field(default_factory=dict)
    verifier: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)
    per_source: dict = field(default_factory=dict)
    judge: dict = field(default_factory=dict)
    bad_step: dict = field(default_factory=dict)
    unsound_step: dict = field(default_factory=dict)  # false comparisons and family step checks
    throughput: dict = field(default_factory=dict)
    written: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # {"kept": path, "sha256": of that file}: which data these stats are of
    cache: dict = field(default_factory=dict)
    learnability: dict = field(default_factory=dict)  # the student scores were computed for, what selection dropped
    plot: str | None = None  # the funnel plot's file name, beside stats.json
    schema: int = STATS_SCHEMA

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, path: str | Path) -> FilterStats:
        path = Path(path)
        return _build(cls, _read_json(path, STATS_SCHEMA, "filter stats"), path, "filter stats")


@dataclass
class EvalReport:
    """report.json of an eval. ``metrics`` is the typed record of :mod:`distill.metrics` (pass@1,
    sound, pass@k, shares, breakdowns, intervals), stored as its JSON form; given as a dict, it is
    read into the record."""

    eval_key: str
    model: dict
    settings: dict
    metrics: Metrics
    run: dict
    created_at: str
    cost_usd: float | None = None
    compare: dict | None = None
    schema: int = REPORT_SCHEMA

    def __post_init__(self) -> None:
        if isinstance(self.metrics, dict):
            self.metrics = metrics_from_json(self.metrics)

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["metrics"] = self.metrics.to_dict()  # the record's JSON keys ("pass@1"), not its field names
        if data["compare"] is None:
            del data["compare"]
        return data

    def write(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())

    @property
    def pass_at_1(self) -> float:
        return self.metrics.pass_at_1.value

    @classmethod
    def read(cls, path: str | Path) -> EvalReport:
        path = Path(path)
        try:
            report = _build(cls, _read_json(path, REPORT_SCHEMA, "eval report"), path, "eval report")
        except (TypeError, ValueError) as exc:
            raise InputError(f"eval report with malformed metrics ({exc})"[:200], path=path, field="metrics") from None
        if report.metrics.pass_at_1 is None:
            raise InputError("eval report without pass@1", path=path, field="metrics")
        return report


@dataclass
class LoopSummary:
    """loop.json of a STaR run: a row per finished round, the best round, and how the rounds were made."""

    # Per round: round, drawn, kept, rationalized, problems_solved, new_problems_solved, kept_share,
    # adapter (relative to the run folder), and once scored accuracy, low, high (held-out pass@1).
    rounds: list[dict]
    best_round: int | None
    adapter: str | None  # the best round's adapter, relative to the run folder: the run's adapter
    restart: str | None = None  # loop.restart: base | continue
    generator: str | None = None  # loop.generator: student | endpoint
    method: str | None = None  # loop.method: sft | on_policy (None: written before it existed, sft)
    schema: int = LOOP_SCHEMA

    def write(self, path: str | Path) -> Path:
        return write_json_atomic(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: str | Path) -> LoopSummary:
        path = Path(path)
        return _build(cls, _read_json(path, LOOP_SCHEMA, "loop summary"), path, "loop summary")


@dataclass
class AblationReport:
    """ablation/report.json: each arm trained with the same budget, scored and compared with the reference."""

    reference: str  # the arm the others are compared with (filtered: the method)
    max_steps: int
    eval_problems: str
    # Per arm: label, adapter, eval, data, reasoning_format, train_examples, steps, train_seconds,
    # metrics (pass@1 and its interval, sound, breakdowns), reused, seconds_this_run, and for the
    # other arms vs_filtered (and vs_filtered_sound): the paired difference with its interval.
    arms: dict[str, dict]
    note: str
    schema: int = ABLATION_SCHEMA

    def write(self, path: str | Path) -> Path:
        return write_json_atomic(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: str | Path) -> AblationReport:
        path = Path(path)
        return _build(cls, _read_json(path, ABLATION_SCHEMA, "ablation report"), path, "ablation report")
