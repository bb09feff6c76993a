"""Run a bench script the way a user would (its own process, one thread) and return what it printed.

Usage:
    from bench_runner import run_bench
    out = run_bench("finetune_vs_trl.py", "--steps", "2")   # stdout; a non-zero exit fails the test

Tests of benches check that a printed ratio is the quotient of the printed numbers, never a threshold on speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> str:
    """stdout of ``bench/<script> args``, run from the repository root with OMP_NUM_THREADS=1."""
    env = dict(os.environ, OMP_NUM_THREADS="1", DISTILL_PROGRESS="0", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
