"""A sandbox that cannot run is an error that stops the filter with one line, never undecided verdicts.

Usage:
    .venv/bin/python -m pytest tests/test_sandbox_unavailable.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from filter_helpers import trace
from records_factory import write_traces

from distill.verify import check, sandbox
from distill.verify.code import SandboxUnavailable

PROGRAM = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "assert add(2, 3) == 5"


def test_a_sandbox_module_that_fails_to_import_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "distill.verify.sandbox", None)  # import now raises ImportError
    with pytest.raises(SandboxUnavailable, match="cannot be imported"):
        check(PROGRAM, TESTS, "code")


def test_a_missing_interpreter_raises(monkeypatch):
    layers = dict(sandbox.isolation(), python="/nonexistent/python3")
    monkeypatch.setattr(sandbox, "isolation", lambda: layers)
    with pytest.raises(SandboxUnavailable, match="/nonexistent/python3"):
        check(PROGRAM, TESTS, "code")
    monkeypatch.setattr(sandbox, "isolation", lambda: dict(layers, python=None))
    with pytest.raises(SandboxUnavailable, match="no usable Python"):
        sandbox.run_tests("x = 1", TESTS)


def test_a_missing_harness_file_raises():
    with pytest.raises(SandboxUnavailable, match="sandbox_gone.py"):
        sandbox._harness("sandbox_gone.py")


BROKEN_CLI = """
import sys
sys.modules["distill.verify.sandbox"] = None
from distill.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_filter_stops_with_one_line_and_writes_nothing(tmp_path):
    traces = write_traces(tmp_path / "traces.jsonl", [
        trace("c1", 0, content=PROGRAM, answer=TESTS, kind="code", reasoning="I add the two numbers. " * 5)])
    before = traces.read_bytes()
    out = tmp_path / "out" / "kept.jsonl"
    run = subprocess.run([sys.executable, "-c", BROKEN_CLI, "filter", f"traces={traces}", f"out={out}",
                          "progress=false", "plot=false", "checks.keep_undecided=true"],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip() and "WARNING" not in line]
    assert lines[-1].startswith("distill filter: error: the code sandbox cannot be imported"), run.stderr
    assert "Traceback" not in run.stderr
    assert not out.exists() and traces.read_bytes() == before
