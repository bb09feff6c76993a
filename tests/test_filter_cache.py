"""The filter cache is never stale: a changed option or a changed line of the deciding code re-measures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from filter_helpers import run_filter, trace
from records_factory import write_traces

import distill

N = 6


def _traces(tmp_path):
    return write_traces(tmp_path / "traces.jsonl", [trace(f"p{i}") for i in range(N)])


def test_a_changed_check_option_re_measures(tmp_path):
    _traces(tmp_path)
    assert run_filter(tmp_path)[0]["traces"]["measured_now"] == N
    assert run_filter(tmp_path)[0]["traces"]["measured_now"] == 0  # unchanged: all from the cache
    stats, kept, rejected = run_filter(tmp_path, ["checks.min_tokens=500"])
    assert stats["traces"]["measured_now"] == N and not kept and len(rejected) == N


def test_a_changed_line_of_the_verdict_code_re_measures(tmp_path):
    """A copy of the package, run as `python -m distill filter`; one line of steps.py is then edited."""
    pkg = tmp_path / "pkg"
    shutil.copytree(Path(distill.__file__).parent, pkg / "distill", ignore=shutil.ignore_patterns("__pycache__"))
    _traces(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(pkg)}
    command = [sys.executable, "-m", "distill", "filter", f"traces={tmp_path / 'traces.jsonl'}",
               f"out={tmp_path / 'out' / 'kept.jsonl'}", "progress=false", "plot=false"]

    def measured() -> int:
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads((tmp_path / "out" / "stats.json").read_text())["traces"]["measured_now"]

    assert measured() == N
    assert measured() == 0
    steps = pkg / "distill" / "filter" / "steps.py"
    steps.write_text(steps.read_text() + "\n# a changed check\n")
    assert measured() == N
