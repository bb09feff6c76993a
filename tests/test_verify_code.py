"""Code answers: program extraction (pure) and the check through the sandbox when it is present."""

from __future__ import annotations

import pytest

from distill.verify import check
from distill.verify.code import extract_program

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"


@pytest.mark.parametrize(
    "response,program,status",
    [
        (f"Here:\n```python\n{ADD}```", ADD, "ok"),
        (f"```python\ndef add(a, b):\n    return a * b\n```\nFixed:\n```py\n{ADD}```", ADD, "ok"),
        (f"```python\n{ADD}```\nRun:\n```bash\npython add.py\n```", ADD, "ok"),  # shell block skipped
        (f"~~~python\n{ADD}~~~", ADD, "ok"),
        ("```python\ndef add(a, b):\n    return a +", None, "truncated"),
        (ADD, ADD, "ok"),  # unfenced, but a whole program
        ("I am not sure how to do this.", None, "no_answer"),
        ("", None, "empty"),
    ],
)
def test_extract_program(response, program, status):
    assert extract_program(response) == (program, status)


def test_code_without_tests_is_undecidable():
    assert check(f"```python\n{ADD}```", "  ", "code").reason == "unparseable_gold"
    assert check(f"```python\n{ADD}```", "  ", "code").correct is None


def test_truncated_and_missing_programs_are_never_correct():
    assert check("```python\ndef add(a, b):\n    return a +", ADD_TESTS, "code").correct is False
    assert check("no code here", ADD_TESTS, "code").correct is None


def test_program_runs_against_the_tests():
    assert check(f"```python\n{ADD}```", ADD_TESTS, "code").correct is True
    wrong = check("```python\ndef add(a, b):\n    return a - b\n```", ADD_TESTS, "code")
    assert (wrong.correct, wrong.reason) == (False, "wrong_answer")
    looping = check("```python\ndef add(a, b):\n    while True:\n        pass\n```", ADD_TESTS, "code", code_timeout=1.0)
    assert looping.correct is False
