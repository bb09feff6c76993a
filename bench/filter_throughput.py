"""Throughput of the whole `distill filter` stage on synthetic gsm8k/math traces, 1 vs 2 workers (and on Ray).

Usage:
    .venv/bin/python bench/filter_throughput.py [N_TRACES] [RUNS]         # defaults: 20000 traces, 3 runs
    .venv/bin/python bench/filter_throughput.py 20000 3 --ray             # also engine=ray, 2 actors

Builds N traces (4 samples per problem, ~1.5 KB of step-by-step reasoning each, a realistic mix of
wrong answers, false steps, truncations, duplicates and loops), then times `distill.filter.run`
end to end (read, verify, checks, dedup, write, stats; no cache, no plot) and prints the median
traces/s for workers=1 and workers=2 and their ratio. With --ray, two more rows: engine=ray with
Ray started (and stopped) by the run, and engine=ray joining a Ray already running in this process
(its actors still start and import the verifier per run). Ray's workers are not this process's
children, so their CPU time is not counted (n/a). Ray runs its workers at nice 15, which on a shared
machine starves them behind everything else; the bench sets RAY_worker_niceness=0 so that they run
at the priority the local pool's workers have.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from distill.config import load_config
from distill.filter import FilterConfig, measure, run

NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis", "Tina", "Mark"]
ITEMS = ["clips", "apples", "books", "stamps", "marbles", "cookies", "pencils", "shells"]


def gsm8k_trace(rng: random.Random, pid: str, sample: int) -> dict:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(12, 99), rng.randint(2, 9), rng.randint(3, 40)
    total = a * b + c
    steps = [f"{name} starts with {a} {item} per box and has {b} boxes.",
             f"So the boxes hold {a} * {b} = {a * b} {item}.",
             f"Then {name} finds {c} more {item}, so {a * b} + {c} = {total}."]
    for k in range(rng.randint(6, 10)):  # re-checking, as reasoning models do
        x, y = rng.randint(2, 60), rng.randint(2, 60)
        steps.append(rng.choice([
            f"Let me double-check step {k}: {x} + {y} = {x + y}, which is consistent with the count.",
            f"Another way to see it: {x} * {y} = {x * y}, and dividing back gives {x * y} / {y} = {x}.",
            f"Wait, I should verify that the {item} were not counted twice in box {k}; they were not.",
            f"Checking the subtraction: {x + y} - {y} = {x}, good, nothing is missing here.",
        ]))
    answer = total
    if rng.random() < 0.1:
        steps[1] = f"So the boxes hold {a} * {b} = {a * b + 10} {item}."  # a false step, right answer
    if rng.random() < 0.15:
        answer = total + rng.randint(1, 5)  # a wrong final answer
    rec = _base(pid, sample, "gsm8k", f"{name} has {b} boxes of {a} {item} and finds {c} more. How many?",
                str(total), " ".join(steps), f"The answer is \\boxed{{{answer}}}.")
    return rec


def math_trace(rng: random.Random, pid: str, sample: int) -> dict:
    p, q, r, s = rng.randint(1, 9), rng.randint(2, 12), rng.randint(1, 9), rng.randint(2, 12)
    from fractions import Fraction

    total = Fraction(p, q) + Fraction(r, s)
    steps = [f"We need \\frac{{{p}}}{{{q}}} + \\frac{{{r}}}{{{s}}}.",
             f"The common denominator is {q} * {s} = {q * s}.",
             f"So the sum is ({p} * {s} + {r} * {q}) / {q * s} = {p * s + r * q}/{q * s}."]
    for k in range(rng.randint(5, 9)):
        x, y = rng.randint(2, 30), rng.randint(2, 30)
        steps.append(f"Sanity check {k}: {x}/{y} + {y}/{x} = {Fraction(x, y) + Fraction(y, x)} in lowest terms, "
                     f"and simplifying fractions never changes their value, so the reduction is safe.")
    answer = f"\\frac{{{total.numerator}}}{{{total.denominator}}}" if total.denominator > 1 else str(total)
    if rng.random() < 0.15:
        answer = f"\\frac{{{total.numerator + 1}}}{{{total.denominator}}}"
    return _base(pid, sample, "math", f"Compute {p}/{q} + {r}/{s} in lowest terms.", str(total),
                 "\n".join(steps), f"Therefore the answer is $\\boxed{{{answer}}}$.")


def _base(pid, sample, kind, question, gold, reasoning, content) -> dict:
    return {"schema": 1, "id": pid, "sample": sample, "question": question, "answer": gold, "kind": kind,
            "source": kind, "messages": [{"role": "user", "content": question}], "reasoning": reasoning,
            "content": content, "finish_reason": "stop", "truncated": False, "model": "synthetic-teacher",
            "usage": {"prompt_tokens": 40, "completion_tokens": len(reasoning) // 4, "reasoning_tokens": 0,
                      "cached_tokens": 0}, "cost_usd": 0.0, "latency_s": 1.0, "attempts": 1, "error": None,
            "created_at": "2026-11-21T00:00:00Z"}


def build(path: Path, n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    size = 0
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            pid, sample = f"q{i // 4:05d}", i % 4
            make = gsm8k_trace if (i // 4) % 2 == 0 else math_trace
            rec = make(random.Random(f"{seed}:{pid}:{sample % 3}"), pid, sample)  # sample 3 repeats sample 0
            if rng.random() < 0.03:
                rec.update(finish_reason="length", truncated=True)
            if rng.random() < 0.02:
                rec["reasoning"] += " Wait, let me check again." * 60
            line = json.dumps(rec) + "\n"
            size += len(line)
            f.write(line)
    return size


def time_run(traces: Path, workers: int, runs: int, options: tuple[str, ...] = ()) -> tuple[float, float, int]:
    """Median wall seconds and CPU seconds (this process + finished workers) of the whole stage."""
    walls, cpus, kept = [], [], 0
    for i in range(runs):
        out = traces.parent / f"w{workers}-{'-'.join(options)}-{i}" / "kept.jsonl"
        cfg = load_config(FilterConfig, None, [f"traces={traces}", f"out={out}", f"workers={workers}",
                                               "cache=false", "plot=false", "progress=false", *options])
        cpu0, wall0 = _cpu(), time.perf_counter()
        run(cfg)
        walls.append(time.perf_counter() - wall0)
        cpus.append(_cpu() - cpu0)
        kept = sum(1 for _ in out.open())
    return statistics.median(walls), statistics.median(cpus), kept


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--ray"]
    n = int(args[0]) if args else 20000
    runs = int(args[1]) if len(args) > 1 else 3
    measure.import_verifier()  # sympy's import (~2 s) is paid once per process, not per run
    with tempfile.TemporaryDirectory() as tmp:
        traces = Path(tmp) / "traces.jsonl"
        size = build(traces, n)
        print(f"{n} synthetic traces (gsm8k + math, 4 samples/problem), {size / n / 1024:.1f} KB each, "
              f"median of {runs} runs, whole stage")
        load = os.getloadavg()[0]
        print(f"load average before: {load:.1f} on {os.cpu_count()} cores (a shared machine slows the wall clock)")
        print(f"{'workers':>8} {'wall s':>8} {'traces/s':>9} {'vs 1':>6} {'CPU s':>7} {'CPU ms/trace':>13} "
              f"{'traces/s per idle core':>23} {'kept':>7}")
        base = None
        for workers in (1, 2):
            seconds, cpu, kept = time_run(traces, workers, runs)
            base = base or seconds
            print(f"{workers:>8} {seconds:>8.2f} {n / seconds:>9.0f} {base / seconds:>5.2f}x {cpu:>7.2f} "
                  f"{1000 * cpu / n:>13.3f} {n / cpu:>23.0f} {kept:>7}")
        if "--ray" in sys.argv:
            for label, seconds, kept in ray_rows(traces, runs):
                print(f"{label:>8} {seconds:>8.2f} {n / seconds:>9.0f} {base / seconds:>5.2f}x {'n/a':>7} "
                      f"{'n/a':>13} {'n/a':>23} {kept:>7}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


def ray_rows(traces: Path, runs: int) -> list[tuple[str, float, int]]:
    """engine=ray with 2 actors: Ray started by each run, then a Ray this process started once beforehand."""
    import logging

    os.environ.setdefault("RAY_worker_niceness", "0")  # read by the raylet each run starts
    import ray

    rows = []
    seconds, _, kept = time_run(traces, 2, runs, ("engine=ray",))
    rows.append(("ray new", seconds, kept))
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        seconds, _, kept = time_run(traces, 2, runs, ("engine=ray",))
        rows.append(("ray up", seconds, kept))
    finally:
        ray.shutdown()
    return rows


if __name__ == "__main__":
    main()
