"""The labelled benchmark set (bench/verify_cases.jsonl) as a regression test.

Every case in it was seen while the verifier was built (the holdout split after its first,
frozen scoring), so this asserts what is honest for an in-sample set: no regressions at all,
and above all no false positive (a wrong trace kept). Code cases need the sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.verify import check

CASES_FILE = Path(__file__).resolve().parents[1] / "bench" / "verify_cases.jsonl"


def load_cases() -> list[dict]:
    return [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_set_is_big_and_balanced_enough():
    cases = load_cases()
    assert len(cases) >= 300
    assert {c["kind"] for c in cases} == {"math", "gsm8k", "choice", "exact", "code"}
    assert 0.35 <= sum(not c["expected"] for c in cases) / len(cases) <= 0.5
    assert len({c["id"] for c in cases}) == len(cases)


def test_no_false_positive_and_no_regression_on_the_labelled_set():
    wrong = []
    for case in load_cases():
        if case["kind"] == "code":
            continue
        verdict = check(case["response"], case["gold"], case["kind"])
        if (verdict.correct is True) != case["expected"]:
            wrong.append((case["id"], case["shape"], case["expected"], verdict))
    assert not wrong, wrong


def test_code_cases_through_the_sandbox():
    wrong = []
    for case in load_cases():
        if case["kind"] != "code":
            continue
        verdict = check(case["response"], case["gold"], "code", code_timeout=1.0)
        if (verdict.correct is True) != case["expected"]:
            wrong.append((case["id"], case["shape"], verdict))
    assert not wrong, wrong
