"""The verifier under hostile input: huge numbers, deep nesting, long texts, timeouts, purity."""

from __future__ import annotations

import ast
import time
from pathlib import Path

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


def test_verify_package_does_no_io():
    """Pure by construction: no module in distill/verify except the sandbox bridge touches files,
    sockets, subprocesses or the clock-dependent random state."""
    banned = {"open", "socket", "subprocess", "requests", "httpx", "urllib", "random", "os"}
    package = Path(__file__).resolve().parents[1] / "distill" / "verify"
    for path in package.glob("*.py"):
        if path.name in ("sandbox.py", "sandbox_child.py", "sandbox_judge.py", "sandbox_prelude.py", "confine.py", "code.py"):  # runs programs
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        imports = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                   for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
        assert not (names | imports) & banned, (path.name, (names | imports) & banned)


def test_a_check_over_its_time_budget_is_undecided_not_wrong(monkeypatch):
    from distill.verify import checker

    monkeypatch.setattr(checker, "CHECK_SECONDS", 0.01)
    verdict = check(("step " * 200000) + r"\boxed{3}", "3", "math")
    assert (verdict.correct, verdict.reason) == (None, "timeout")
    monkeypatch.undo()
    assert check(r"\boxed{3}", "3", "math").correct is True
