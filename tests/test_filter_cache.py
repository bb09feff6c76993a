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
    """A copy of the package, run as `python -m distill filter`; one line of arithmetic.py is then edited."""
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
    steps = pkg / "distill" / "arithmetic.py"
    steps.write_text(steps.read_text() + "\n# a changed check\n")
    assert measured() == N
    # offline/checks.py takes its question patterns from offline/families.py: a hand-kept module list missed it.
    families = pkg / "distill" / "offline" / "families.py"
    families.write_text(families.read_text() + "\n# a changed question pattern\n")
    assert measured() == N


def _key(cfg=None) -> str:
    from distill.config import load_config
    from distill.filter import FilterConfig
    from distill.filter.stage import measure_key

    return measure_key(cfg or load_config(FilterConfig, None, []), None)


def test_one_changed_byte_of_any_module_the_measure_code_imports_changes_the_key(monkeypatch):
    """Every file of the import closure is in the key, the offline families and the lazily imported checkers too."""
    from distill import code_key

    closure = code_key.code_closure("distill.filter.measure")
    assert {"distill.offline.families", "distill.offline.checks", "distill.soundness",
            "distill.verify.checker", "distill.verify.choice", "distill.verify.record",
            "distill.verify.sandbox_child"} <= set(closure)  # the last three: function-local or read by path
    root = Path(distill.__file__).parent
    before = _key()
    for name in closure:
        edited = code_key.module_file(name, root)
        monkeypatch.setattr(code_key, "read_file", lambda p, e=edited: p.read_bytes() + (b" " if p == e else b""))
        assert _key() != before, name
    monkeypatch.undo()
    assert _key() == before


def test_the_closure_follows_new_and_moved_modules_and_function_local_imports(tmp_path):
    """A module moved to a new package, reached only by an import inside a function, is found from the source."""
    from distill.code_key import closure_digest, code_closure

    root = tmp_path / "distill"
    shutil.copytree(Path(distill.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "tasks").mkdir()
    (root / "tasks" / "__init__.py").write_text('"""Offline problem families."""\n')
    (root / "offline" / "families.py").rename(root / "tasks" / "families.py")
    checks = root / "offline" / "checks.py"
    checks.write_text(checks.read_text().replace("distill.offline.families import", "distill.tasks.families import"))
    assert "distill.tasks.families" in code_closure("distill.filter.measure", root)
    assert "distill.offline.families" not in code_closure("distill.filter.measure", root)
    measure = root / "filter" / "measure.py"
    measure.write_text(measure.read_text() + "\n\ndef later():\n    from distill.filter import brand_new\n")
    (root / "filter" / "brand_new.py").write_text("X = 1\n")
    before = closure_digest("distill.filter.measure", root)
    (root / "filter" / "brand_new.py").write_text("X = 2\n")
    assert closure_digest("distill.filter.measure", root) != before
