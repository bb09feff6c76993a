"""The verifier under hostile input: huge numbers, deep nesting, long texts, timeouts, purity."""

from __future__ import annotations

import time

import pytest

from distill.verify import check
from distill.verify.extract import final_answer
from distill.verify.guard import TimeLimit, time_limit
from distill.verify.latex import ParseError, parse_expr
from distill.verify.numbers import parse_number

PATHOLOGICAL = [
    r"\boxed{10^{10^{10}}}",
    r"\boxed{99999!}",
    r"\boxed{2^{2^{2^{2^{2^{2}}}}}}",
    r"\boxed{" + "(" * 300 + "1" + ")" * 300 + "}",
    r"\boxed{" + "+".join(["x"] * 500) + "}",
    r"\boxed{1e99999999}",
    r"\boxed{\frac{1}{0}}",
    "\\boxed{" * 2000,
    "9" * 20000,
    ("word " * 40000) + r"\boxed{3}",
]


@pytest.mark.parametrize("response", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_answers_finish_fast_and_are_never_correct_by_accident(response):
    start = time.perf_counter()
    verdict = check(response, "3" if response.endswith(r"\boxed{3}") else "1", "math")
    assert time.perf_counter() - start < 3.0
    assert verdict.correct is (True if response.endswith(r"\boxed{3}") else verdict.correct)
    if not response.endswith(r"\boxed{3}"):
        assert verdict.correct is not True


def test_parser_bounds_sizes():
    with pytest.raises(ParseError):
        parse_expr("10^{10^{10}}")
    with pytest.raises(ParseError):
        parse_expr("x" * 1000)
    assert parse_number("1e99999") is None


def test_time_limit_interrupts_a_busy_block():
    start = time.perf_counter()
    with pytest.raises(TimeLimit):
        with time_limit(0.2):
            while True:
                pass
    assert time.perf_counter() - start < 2.0


def test_time_limit_is_a_no_op_outside_the_main_thread():
    import threading

    result = []

    def work():
        with time_limit(0.01):
            time.sleep(0.05)
        result.append("done")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert result == ["done"]


def test_deterministic_across_calls():
    cases = [(r"\boxed{(x+1)^2}", "x^2+2x+1", "math"), ("#### 5", "5", "gsm8k"), ("(c)", "C", "choice")]
    first = [check(*c) for c in cases]
    assert all([check(*c) for c in cases] == first for _ in range(3))


def test_box_extraction_handles_nesting_and_truncation():
    assert final_answer(r"x \boxed{\frac{\sqrt{3}}{2}} y").answer == r"\frac{\sqrt{3}}{2}"
    assert final_answer(r"\boxed{1} then \boxed{\frac{3").status == "truncated"
    assert final_answer(r"\boxed 5").answer == "5"


def _io_tripwires(monkeypatch) -> list[str]:
    """Files, sockets, processes: each call is recorded, then refused (a verifier swallowing the error still shows)."""
    import builtins
    import io
    import os
    import socket
    import subprocess

    attempts: list[str] = []

    def refuse(name):
        def call(*args, **kwargs):
            attempts.append(name)
            raise PermissionError(f"the verifier called {name}")
        return call

    for module, names in ((builtins, ["open"]), (io, ["open"]), (socket, ["socket", "create_connection"]),
                          (subprocess, ["Popen", "run"]),
                          (os, ["open", "listdir", "scandir", "system", "fork", "posix_spawn", "execv", "urandom"])):
        for name in names:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    return attempts


def _clear_verify_caches() -> None:
    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith("distill.verify"):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def test_checking_answers_does_no_io_only_code_runs_the_sandbox(monkeypatch):
    """Every table case of every non-code kind, checked with files, sockets and processes refused: the
    same verdicts, nothing attempted. The sandbox (kind code) is the documented exception, and the
    tripwires catch it, so they would catch the rest."""
    from test_verify import CHOICE, EXACT, GSM8K, MATH

    cases = [(r, g, kind) for kind, rows in (("math", MATH), ("gsm8k", GSM8K), ("choice", CHOICE),
                                             ("exact", EXACT)) for r, g, *_ in rows]
    expected = [check(*case) for case in cases]  # imports (sympy...) load here, where files are allowed
    _clear_verify_caches()  # so the checked run computes, not looks up
    attempts = _io_tripwires(monkeypatch)
    assert [check(*case) for case in cases] == expected
    assert attempts == []
    from distill.verify.code import SandboxUnavailable

    try:
        with pytest.raises(SandboxUnavailable):  # refused its files, the sandbox says so (never a guessed verdict)
            check("```python\ndef f(x):\n    return x\n```", "assert f(2) == 2", "code")
    finally:  # the walls measured under the tripwires are cached: later tests must measure them again
        monkeypatch.undo()
        _clear_verify_caches()
    assert attempts, "the tripwires did not see the sandbox start its program"


def test_a_check_over_its_time_budget_is_undecided_not_wrong(monkeypatch):
    from distill.verify import checker

    monkeypatch.setattr(checker, "CHECK_SECONDS", 0.01)
    verdict = check(("step " * 200000) + r"\boxed{3}", "3", "math")
    assert (verdict.correct, verdict.reason) == (None, "timeout")
    monkeypatch.undo()
    assert check(r"\boxed{3}", "3", "math").correct is True
