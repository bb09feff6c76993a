"""Code answers: take the program from the last fenced block and run the gold tests in the sandbox.

Usage:
    from distill.verify.code import extract_program, check_code
    extract_program("Here:\\n```python\\ndef f(x):\\n    return x\\n```")   # ("def f(x):\\n    return x\\n", "ok")
    check_code(response, "assert f(2) == 2")                                # runs distill.verify.sandbox

The only I/O in distill.verify: the sandboxed run (separate processes, temp dir, limits); see
distill/verify/sandbox.py for the isolation it provides. A sandbox that cannot run at all (its
module fails to import, its harness files or interpreter are missing) raises SandboxUnavailable,
which stops the filter with one line: it is never turned into undecided verdicts.
"""

from __future__ import annotations

import re

from distill.errors import DistillError
from distill.verify.verdict import Verdict

FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
OPEN_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*[\w+#.-]*[^\n]*$", re.MULTILINE)
NOT_PYTHON = {"bash", "sh", "shell", "console", "text", "txt", "json", "output", "plaintext"}
SANDBOX_REASONS = {"passed": True, "failed": False, "timeout": False, "memory": False,
                   "crashed": False, "forbidden": False}


class SandboxUnavailable(DistillError, RuntimeError):
    """The code sandbox cannot run on this machine; every code verdict would be a guess."""


def extract_program(response: str | None) -> tuple[str | None, str]:
    """The last fenced program (skipping shell/output blocks) and a status word."""
    if response is None or not response.strip():
        return None, "empty"
    blocks = [(m.start(), m.group(2).lower(), m.group(3)) for m in FENCE_RE.finditer(response)]
    fences = OPEN_FENCE_RE.findall(response)
    if len(fences) % 2 == 1:  # an opening fence never closed: the program was cut off
        return None, "truncated"
    programs = [body for _, lang, body in blocks if lang not in NOT_PYTHON and body.strip()]
    if programs:
        return programs[-1], "ok"
    if not fences and looks_like_python(response):
        return response, "ok"
    return None, "no_answer"


def looks_like_python(text: str) -> bool:
    """An unfenced response that is itself a whole program (some teachers omit the fence)."""
    if not re.search(r"^(?:def |class |import |from \w+ import |print\()", text, re.MULTILINE):
        return False
    try:
        compile(text, "<response>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def check_code(response: str | None, gold: str, timeout: float = 5.0) -> Verdict:
    """Run the gold tests against the extracted program; the sandbox reason becomes the verdict's."""
    if gold is None or not str(gold).strip():
        return Verdict(None, None, "unparseable_gold")
    program, status = extract_program(response)
    if program is None:
        correct = None if status == "no_answer" else False
        return Verdict(correct, None, status)
    try:
        from distill.verify.sandbox import run_tests
    except ImportError as exc:
        raise SandboxUnavailable(f"the code sandbox cannot be imported: {exc}") from exc
    result = run_tests(program, str(gold), timeout=timeout)
    if result.reason == "no_tests":
        return Verdict(None, program, "unparseable_gold")
    correct = SANDBOX_REASONS.get(result.reason, False) and bool(result.passed)
    reason = "correct" if correct else ("wrong_answer" if result.reason == "failed" else result.reason)
    return Verdict(correct, program, reason)
