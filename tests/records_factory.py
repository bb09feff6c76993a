"""Problem and trace records for tests, built with distill.artifacts' field names, and their files.

Usage:
    from records_factory import problem, problems, trace, write_problems, write_records, write_traces
    write_problems(tmp_path / "p.jsonl", 3, source="unit")        # q0..q2: "Question number i?", answer 7
    write_traces(tmp_path / "traces.jsonl", [trace(problem(1)), trace(problem(1), 1, content=None)])
    write_traces(tmp_path / "kept.jsonl")                         # three valid traces, contents unimportant
    write_records(path, rows, mode="a")                            # any records, one JSON object a line

Every test that needs a problem or trace file builds it here, so a field renamed in
:mod:`distill.artifacts` fails here, once, instead of silently in a dozen hand-written dicts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from distill.artifacts import SCHEMA, Problem, Trace

_TRACE_FIELDS = set(Trace.__annotations__)  # a TypedDict's annotations include its base's (Problem)


def problem(i: int = 0, **fields) -> Problem:
    """Problem ``q<i>``: "Question number i?" with answer 7 (what the tests' teachers answer); fields override."""
    return {"id": f"q{i}", "question": f"Question number {i}?", "answer": "7", **fields}


def problems(n: int, **fields) -> list[Problem]:
    return [problem(i, **fields) for i in range(n)]


def trace(answered: Problem | int = 0, /, sample: int = 0, **fields) -> Trace:
    """A successful teacher answer to ``answered`` (a problem, or the index of :func:`problem`) in generate's
    format: the answer boxed in the content. ``fields`` override or add (``source=`` is the problem's field)."""
    source = problem(answered) if isinstance(answered, int) else answered
    record = {"schema": SCHEMA, "kind": "math", **source, "sample": sample,
              "messages": [{"role": "user", "content": source["question"]}],
              "reasoning": f"Work through it step by step: the question asks {source['question']!r}. " * 2,
              "content": f"The answer is \\boxed{{{source['answer']}}}.", "finish_reason": "stop", "truncated": False,
              "model": "teacher", "usage": {"prompt_tokens": 20, "completion_tokens": 80, "reasoning_tokens": 60,
                                            "cached_tokens": 0},
              "cost_usd": 0.0, "latency_s": 0.1, "attempts": 1, "error": None, "created_at": "2026-11-21T00:00:00Z"}
    unknown = set(record) - set(source) - _TRACE_FIELDS  # the factory's own fields; a problem's extras ride along
    assert not unknown, f"distill.artifacts.Trace has no field {sorted(unknown)}: update records_factory"
    record.update(fields)
    return record


def write_records(path: str | Path, records: Iterable[dict], mode: str = "w") -> Path:
    """One JSON object a line (``mode="a"`` appends, as a resumed stage does)."""
    path = Path(path)
    with path.open(mode, encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def write_problems(path: str | Path, n: int = 4, **fields) -> Path:
    return write_records(path, problems(n, **fields))


def write_traces(path: str | Path, records: Iterable[dict] | None = None, mode: str = "w") -> Path:
    """``records``, or three valid traces of :func:`problem` 0-2 when the contents do not matter."""
    return write_records(path, records if records is not None else [trace(i) for i in range(3)], mode)
