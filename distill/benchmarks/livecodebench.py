"""LiveCodeBench rows -> a prompt and the tests distill's sandbox runs (stdin/stdout cases or asserts).

Usage:
    from distill.benchmarks.livecodebench import problem_text, sandbox_tests, in_window
    tests = sandbox_tests(row)        # JSON stdin/stdout cases, or Python asserts on Solution().<func_name>
    in_window(row, ("2024-08-01", "2025-02-01"))

``public_test_cases`` is a JSON list of ``{"input", "output", "testtype"}``; ``private_test_cases``
is the same list, either as JSON or (newer releases) as base64 of zlib of a pickled JSON string;
either field that is not a list of objects with string input and output is an InputError naming it.
That pickle is read by an unpickler that refuses every global, so only plain strings come out: a
dataset file can never run code here. ``testtype`` ``stdin`` cases go to the sandbox as they are;
``functional`` ones (LeetCode) become asserts calling ``Solution().<metadata.func_name>`` with the
JSON arguments one per input line, compared with the JSON output, as LiveCodeBench's runner does.
``func_name`` is pasted into those asserts, so it must be a plain Python name (not a keyword, not a
dunder): ``'__class__ or _solution.f'`` would make every test pass for any ``class Solution``.
"""

from __future__ import annotations

import base64
import io
import json
import keyword
import pickle
import zlib
from typing import Any

from distill.errors import InputError

__all__ = ["problem_text", "sandbox_tests", "in_window", "private_cases"]

_WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose your "
                 "code within delimiters.")
_STDIN = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
          "the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program "
          "runs, it reads the inputs, runs the algorithm and writes output to STDOUT.")
_MAX_DECODED = 256 << 20  # a compressed field that inflates past this is refused, not read into memory


def problem_text(row: dict) -> str:
    """The question and its format instruction, as LiveCodeBench's code-generation prompt lays them out."""
    starter = str(row.get("starter_code") or "").strip()
    text = f"### Question:\n{str(row.get('question_content') or '').strip()}\n\n"
    if starter:
        text += f"### Format: {_WITH_STARTER}\n```python\n{starter}\n```\n\n"
    else:
        text += f"### Format: {_STDIN}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)"


class _StringsOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _checked(cases: Any, name: str, where: str) -> list[dict]:
    """``cases`` if it is a list of objects with string ``input`` and ``output``, else InputError naming the field."""
    if not isinstance(cases, list):
        raise InputError(f"{where}: {name} must be a JSON list of test cases, got {type(cases).__name__}", field=name)
    for i, case in enumerate(cases):
        if not (isinstance(case, dict) and isinstance(case.get("input"), str) and isinstance(case.get("output"), str)):
            raise InputError(f"{where}: {name}[{i}] must be an object with string input and output", field=name)
    return cases


def private_cases(raw: str | None, where: str = "") -> list[dict]:
    """The private test cases of a row (JSON, or base64 + zlib + pickled JSON text), checked like the public ones."""
    if not raw:
        return []
    try:
        return _checked(json.loads(raw), "private_test_cases", where)
    except (json.JSONDecodeError, TypeError):
        pass
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(base64.b64decode(str(raw).encode("utf-8")), _MAX_DECODED)
        if inflater.unconsumed_tail:
            raise ValueError(f"decompressed private tests exceed {_MAX_DECODED >> 20} MB")
        text = _StringsOnly(io.BytesIO(data)).load()
        cases = json.loads(text if isinstance(text, str) else "")
    except (ValueError, zlib.error, pickle.UnpicklingError, EOFError) as exc:
        raise InputError(f"{where}: unreadable private_test_cases ({exc})"[:200], field="private_test_cases") from None
    return _checked(cases, "private_test_cases", where)


def _functional(cases: list[dict], func: str, where: str) -> str:
    lines = ["_solution = Solution()"]
    for case in cases:
        try:
            args = [json.loads(line) for line in str(case["input"]).split("\n") if line.strip()]
            expected = json.loads(str(case["output"]))
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: a functional test case is not JSON ({exc})"[:200],
                             field="public_test_cases") from None
        lines.append(f"assert _solution.{func}(*{args!r}) == {expected!r}")
    return "\n".join(lines) + "\n"


def _func_name(row: dict, where: str) -> str:
    """metadata.func_name, checked to be a plain name: it becomes code in the asserts."""
    try:
        meta = json.loads(row.get("metadata") or "{}")
    except json.JSONDecodeError:
        meta = None
    func = meta.get("func_name") if isinstance(meta, dict) else None
    if not func:
        raise InputError(f"{where}: functional tests but no metadata.func_name", field="metadata")
    if not (isinstance(func, str) and func.isidentifier()) or keyword.iskeyword(func) or func.startswith("__"):
        raise InputError(f"{where}: metadata.func_name {func!r} is not a plain Python name"[:200], field="metadata")
    return func


def sandbox_tests(row: dict, where: str = "") -> str:
    """The gold "answer" of a code Problem: sandbox tests covering the public and private cases."""
    try:
        public = _checked(json.loads(row.get("public_test_cases") or "[]"), "public_test_cases", where)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: public_test_cases is not JSON ({exc.msg})", field="public_test_cases") from None
    cases = public + private_cases(row.get("private_test_cases"), where)
    if not cases:
        raise InputError(f"{where}: no test cases", field="public_test_cases")
    if any(c.get("testtype") == "functional" for c in cases):
        return _functional(cases, _func_name(row, where), where)
    return json.dumps([{"input": c["input"], "output": c["output"]} for c in cases])


def in_window(row: dict, dates: tuple[str, str] | None) -> bool:
    """Whether the row's contest_date falls in [from, to) (no window: every row)."""
    if dates is None:
        return True
    day = str(row.get("contest_date") or "")[:10]
    return bool(day) and dates[0] <= day < dates[1]
