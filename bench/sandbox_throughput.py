"""Checks per second of the code sandbox, against a bare interpreter start measured alternately.

Usage:
    .venv/bin/python bench/sandbox_throughput.py [N_PER_ROUND] [ROUNDS]      # defaults: 20, 3
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/sandbox_throughput.py   # another version

Only the public ``run_tests`` is used, so the same script times any version of the sandbox. Each
round times N checks of each workload and N bare ``python -I -S -c pass`` starts (the anchor)
one after the other; the median over rounds is printed as checks/s and as the anchor's time
divided by the check's time (1.0 = a check costs one bare interpreter start).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from distill.verify.sandbox import run_tests

ADD = "def add(a, b):\n    return a + b\n"
WORKLOADS = {
    "2 asserts, right": (ADD, "assert add(2, 3) == 5\nassert add(-1, 1) == 0"),
    "2 asserts, wrong": (ADD.replace("+", "-"), "assert add(2, 3) == 5\nassert add(-1, 1) == 0"),
    "200 calls in a loop": (ADD, "for i in range(200):\n    assert add(i, 1) == i + 1"),
    "3 stdin/stdout cases": ("print(int(input()) * 2)",
                             '[{"input": "1", "output": "2"}, {"input": "2", "output": "4"}, {"input": "3", "output": "6"}]'),
}


def timed(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def main(n: int = 20, rounds: int = 3) -> None:
    python = sys.executable
    anchor = lambda: subprocess.run([python, "-I", "-S", "-c", "pass"], check=True)  # noqa: E731
    run_tests(ADD, "assert add(1, 1) == 2")  # probe the isolation layers once, outside the timing
    for name, (program, tests) in WORKLOADS.items():
        assert run_tests(program, tests).passed == ("wrong" not in name), name
        checks, anchors = [], []
        for _ in range(rounds):
            anchors.append(timed(anchor, n))
            checks.append(timed(lambda: run_tests(program, tests), n))
        check_s, anchor_s = statistics.median(checks), statistics.median(anchors)
        print(f"{name:24s} {1 / check_s:7.1f} checks/s   {check_s * 1000:6.1f} ms   "
              f"anchor {anchor_s * 1000:5.1f} ms   check = {check_s / anchor_s:4.2f} x anchor")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
