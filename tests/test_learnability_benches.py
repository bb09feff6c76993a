"""The learnability benches run end to end at a tiny size: the speed bench prints its ratios against the plain
forward, the correlation harness trains every teacher and prints the rho table (slow: subprocesses, training)."""

from __future__ import annotations

import re

import pytest
from bench_runner import run_bench


@pytest.mark.slow
def test_speed_bench_anchors_on_the_plain_forward_and_extrapolates():
    out = run_bench("learnability_speed.py", "--student", "tiny", "--traces", "8", "--repeats", "1")
    assert re.search(r"plain model\(\.\.\.\) forward \(anchor\)\s+[\d.]+\s+\d+\s+1\.00x", out), out
    assert re.search(r"distill full score \(\+ local nat\.\)\s+[\d.]+\s+\d+\s+[\d.]+x", out), out
    assert re.search(r"10,000 such traces \(mean \d+ tokens\): full score [\d.]+ min", out), out


@pytest.mark.slow
def test_correlation_harness_trains_each_teacher_and_prints_rho(tmp_path):
    out = run_bench("learnability_correlation.py", "--student", "tiny", "--problems", "16", "--steps", "1", "--dev", "3",
                 "--max-new-tokens", "4", "--eval-batch", "3", "--teachers", "compact,plain,compact+filler",
                 "--out", str(tmp_path))
    rows = [line for line in out.splitlines() if line.startswith(("compact ", "plain ", "compact+filler "))]
    assert len(rows) == 3, out
    assert all((tmp_path / t / "adapter" / "adapter_config.json").is_file() for t in ("compact", "plain"))
    assert re.search(r"^  rsr\s+vs dev sound\s+(n/a|[+-]\d\.\d\d)", out, re.M), out
