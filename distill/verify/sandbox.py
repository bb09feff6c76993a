"""Run an untrusted candidate program against its tests; the verdict comes from a process it cannot reach.

Usage:
    from distill.verify.sandbox import run_tests
    res = run_tests("def add(a, b):\\n    return a + b\\n", "assert add(2, 3) == 5")
    res.passed, res.reason, res.detail          # (True, "passed", "")
    run_tests("print(int(input()) * 2)", '[{"input": "4", "output": "8"}]').passed   # True

``tests`` is Python test code (top-level asserts and/or ``test_*`` functions, e.g. HumanEval's
``def check(candidate): ...`` then ``check(f)``) or a JSON list of ``{"input": stdin, "output":
expected stdout}`` cases.

Two processes for Python tests, each confined by distill.verify.confine (own uid, pid and network
namespaces and a private read-only root where this machine allows; the candidate also under a
seccomp filter, see sandbox_child.py): the *candidate* runs the program and answers calls; the
*judge* runs the tests, in which every name the program defines is a stand-in that asks the
candidate and gets plain data back (tagged JSON: None, bool, int, float, str, bytes, complex, list,
tuple, set, dict; no NaN, nothing over 8 MB). Every comparison happens in the judge, which never
runs the program's code, so nothing the program patches (json, builtins, __eq__, the harness, the
audit hook) changes how its answers are judged, and nothing there holds a secret to steal.
For stdin/stdout cases the candidate only receives the inputs; this process compares the outputs.

Limits of the split (a test that needs them fails, never passes wrongly): arguments cross by value,
so a test that checks a list the function mutated in place sees the list unchanged; a function
of the tests cannot be passed into the program; the program's module-level values are read once,
after it ran; a non-plain result (an instance, a generator) is a reference that equals only
itself, has no truth value, and can be called, read or iterated; each call is a round trip
(~0.1-0.2 ms), so tests making 100,000s of calls can hit the timeout.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from distill.verify import confine
from distill.verify.code import SandboxUnavailable
from distill.verify.confine import Jail

log = logging.getLogger(__name__)

REASONS = ("passed", "failed", "timeout", "memory", "crashed", "forbidden", "no_tests")
MAX_OUTPUT = 32 << 20  # the candidate's report of stdin/stdout cases


@dataclass
class SandboxResult:
    passed: bool
    reason: str  # one of REASONS
    detail: str = ""  # which test failed, or a short tail of stderr
    duration_s: float = 0.0


def _harness(name: str) -> str:
    path = Path(__file__).parent / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SandboxUnavailable(f"the code sandbox cannot start: {path}: {exc.strerror}") from exc


# The two sides' code lives in files of their own (never imported here) so each stays readable.
_CANDIDATE = _harness("sandbox_prelude.py") + _harness("sandbox_child.py")
_JUDGE = _harness("sandbox_prelude.py") + _harness("sandbox_judge.py")


@lru_cache(maxsize=1)
def isolation() -> dict:
    """The OS walls confine measured, plus ``seccomp``: whether the candidate's syscall filter holds here."""
    layers = dict(confine.isolation())
    layers["seccomp"] = False
    if not layers.get("python"):
        return layers
    base = Path(tempfile.mkdtemp(prefix="distill-probe-"))
    jail = Jail(base, layers)
    report = _private_file(base)
    try:
        proc = jail.start("candidate", _argv(jail, _CANDIDATE, "probe", -1, report), pass_fds=(report,))
        jail.wait(proc, time.monotonic() + 10.0)
        layers["seccomp"] = json.loads(_read_private(report, 1000) or b"{}").get("seccomp") is True
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.debug("sandbox: seccomp probe failed: %s", exc)
    finally:
        jail.close()
        shutil.rmtree(base, ignore_errors=True)
    return layers


def ensure_available() -> dict:
    """The isolation layers, or SandboxUnavailable when no interpreter for the sandbox can start."""
    layers = isolation()
    if not layers.get("python"):
        raise SandboxUnavailable(f"the code sandbox cannot start: no usable Python interpreter ({layers.get('python')})")
    return layers


def run_tests(program: str, tests: str, timeout: float = 5.0, memory_mb: int = 512) -> SandboxResult:
    """Run ``program`` against ``tests`` in confined processes; never raises for anything the program does."""
    started = time.monotonic()
    mode, cases = _test_mode(tests)
    if mode is None:
        return SandboxResult(False, "no_tests", "no test cases given")
    layers = ensure_available()
    base = Path(tempfile.mkdtemp(prefix="distill-sandbox-"))
    jail = Jail(base, layers, cpu_s=timeout, memory_mb=memory_mb)
    deadline = started + timeout
    try:
        if mode == "stdio":
            result = _run_stdio(jail, program, cases, deadline)
        else:
            result = _run_calls(jail, program, tests, deadline)
    except (OSError, subprocess.SubprocessError) as exc:  # nothing the program did: it never started
        raise SandboxUnavailable(f"the code sandbox cannot start {layers['python']}: {exc}") from exc
    finally:
        jail.close()
        shutil.rmtree(base, ignore_errors=True)
    if result is None:
        result = SandboxResult(False, "timeout", f"no result within {timeout:g} s (process group killed)")
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _test_mode(tests: str | None) -> tuple[str | None, list]:
    text = (tests or "").strip()
    if not text:
        return None, []
    if text.startswith("["):
        try:
            cases = json.loads(text)
        except ValueError:
            cases = None  # maybe a Python list literal as test code
        if cases is not None:
            ok = isinstance(cases, list) and all(isinstance(c, dict) and "input" in c and "output" in c for c in cases)
            return ("stdio", cases) if ok and cases else (None, [])
    try:
        compile(text, "<tests>", "exec")  # compiling runs nothing; unparseable tests are no tests
    except (SyntaxError, ValueError):
        return None, []
    return "calls", []


def _argv(jail: Jail, code: str, *args: int | str) -> list[str]:
    return [jail.layers["python"], "-I", "-S", "-X", "utf8", "-c", code, *map(str, args)]


def _private_file(base: Path) -> int:
    """A file no path leads to: only the process we hand the descriptor to can write it."""
    try:
        return os.open(base, os.O_TMPFILE | os.O_RDWR, 0o600)
    except (AttributeError, OSError):
        path = base / ".report"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        path.unlink()
        return fd


def _read_private(fd: int, limit: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, limit + 1)
    os.close(fd)
    return data


def _run_calls(jail: Jail, program: str, tests: str, deadline: float) -> SandboxResult | None:
    to_candidate = os.pipe()
    to_judge = os.pipe()
    report = _private_file(jail.base)
    try:
        candidate = jail.start("candidate", _argv(jail, _CANDIDATE, "calls", to_candidate[0], to_judge[1]),
                               pass_fds=(to_candidate[0], to_judge[1]),
                               stdin=json.dumps({"program": program, "inputs": []}).encode())
        # Sharing our uid, the candidate could otherwise ptrace the judge or open its fds through /proc.
        undumpable = 0 if jail.layers.get("uid") else 1
        judge = jail.start("judge", _argv(jail, _JUDGE, to_judge[0], to_candidate[1], report, undumpable),
                           pass_fds=(to_judge[0], to_candidate[1], report),
                           stdin=json.dumps({"tests": tests, "program": program}).encode())
    finally:
        for fd in (*to_candidate, *to_judge):
            os.close(fd)  # only the two children hold the pipes, so one's exit is the other's EOF
    code = jail.wait(judge, deadline)
    verdict = _read_private(report, 1 << 16)
    if code is None:
        return None
    try:
        found = json.loads(verdict)
        result = SandboxResult(bool(found["passed"]), found["reason"], str(found["detail"])[:500])
    except (ValueError, KeyError, TypeError):
        tail = jail.output("judge", 300, "err").strip()
        return SandboxResult(False, "crashed", f"the judge failed: exit status {code}; {tail}".strip("; "))
    if result.reason == "crashed" and result.detail == "the program stopped answering":
        jail.wait(candidate, min(deadline, time.monotonic() + 1.0))  # dying: let it exit on its own
        jail.close()  # its status says why
        return _candidate_death(jail, candidate, result)
    return result


def _candidate_death(jail: Jail, proc, fallback: SandboxResult) -> SandboxResult:
    stderr = jail.output("candidate", 300, "err").strip()
    code = proc.returncode
    if code is not None and code < 0:
        sig = signal.Signals(-code)
        reason = {signal.SIGXCPU: "timeout", signal.SIGKILL: "timeout", signal.SIGXFSZ: "forbidden"}.get(sig, "crashed")
        return SandboxResult(False, reason, f"killed by {sig.name}; {stderr}".strip("; "))
    if "MemoryError" in stderr:
        return SandboxResult(False, "memory", stderr)
    if code:
        return SandboxResult(False, "crashed", f"exit status {code}; {stderr}".strip("; "))
    return fallback


def _run_stdio(jail: Jail, program: str, cases: list, deadline: float) -> SandboxResult | None:
    report = _private_file(jail.base)
    job = {"program": program, "inputs": [str(case["input"]) for case in cases]}  # never the outputs
    candidate = jail.start("candidate", _argv(jail, _CANDIDATE, "stdio", -1, report), pass_fds=(report,),
                           stdin=json.dumps(job).encode())
    code = jail.wait(candidate, deadline)
    data = _read_private(report, MAX_OUTPUT)
    if code is None:
        return None
    lines = data.split(b"\n")[:-1] if len(data) <= MAX_OUTPUT else []
    for i, case in enumerate(cases, 1):
        if i > len(lines):
            died = _candidate_death(jail, candidate, SandboxResult(False, "crashed", f"exit status {code}"))
            return SandboxResult(False, died.reason, f"case {i}: {died.detail}")
        got = _case_report(lines[i - 1])
        if got is None:
            return SandboxResult(False, "crashed", f"case {i}: the program wrote a malformed report")
        if "load" in got:
            return SandboxResult(False, got["load"][0], got["load"][1])
        if got.get("forbidden"):
            return SandboxResult(False, "forbidden", f"case {i}: {got['forbidden']}")
        if got["error"] is not None:
            reason = "memory" if got["error"] == "MemoryError" else (
                "forbidden" if "File too large" in got["error"] else "crashed")
            return SandboxResult(False, reason, f"case {i}: {got['error']}")
        if _norm(got["out"]) != _norm(str(case["output"])):
            return SandboxResult(False, "failed",
                                 f"case {i}: expected {_short(case['output'])!r}, got {_short(got['out'])!r}")
    return SandboxResult(True, "passed", "")


def _case_report(line: bytes) -> dict | None:
    """One case's line, checked field by field: the candidate wrote it, so nothing else is trusted."""
    try:
        got = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if type(got) is not dict:
        return None
    if "load" in got:
        load = got["load"]
        ok = type(load) is list and len(load) == 2 and load[0] in ("crashed", "memory", "forbidden") \
            and type(load[1]) is str
        return {"load": [load[0], load[1][:400]]} if ok else None
    if type(got.get("out")) is not str or type(got.get("error")) not in (str, type(None)):
        return None
    if type(got.get("forbidden")) not in (str, type(None)):
        return None
    return got


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _short(text) -> str:
    text = str(text)
    return text if len(text) <= 80 else text[:77] + "..."
