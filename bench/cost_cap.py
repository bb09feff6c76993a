"""How much of a `max_cost_usd` budget `distill generate` spends, against the loopback teacher.

Usage:
    .venv/bin/python bench/cost_cap.py              # caps worth 10, 100, 400 requests x concurrency 1, 16, 64
    .venv/bin/python bench/cost_cap.py --varied     # answers of 1x to 4x the length (a real teacher varies)
    .venv/bin/python bench/cost_cap.py --latency 0.05

The anchor, measured in the same run: the price of one request (a probe), so a cap "worth N" is
(N + 0.5) x that price. Printed per cell: requests bought / N and spend / cap. The cap counts a
request in flight at its worst case (prompt x 2 + max_tokens=64 of output, ~3 requests here), so
spend / cap must stay <= 1 and the budget left must be under one worst case. With ``--varied``
the price is the mean over a probe of 40 requests. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from distill.errors import BudgetExceeded
from distill.generate.config import GenerateConfig
from distill.generate.stage import run
from distill.records import read_jsonl
from distill.teacher.server import TeacherServer

PRICES = {"input": 1.0, "output": 2.0}


def respond(messages, request):
    return "Add the two numbers, one step at a time.", "The answer is \\boxed{7}."


def respond_varied(messages, request):
    text = messages[-1]["content"]
    repeat = 1 + int(text.split("number ")[1][:4]) % 4  # 1x..4x, fixed per question
    return " ".join(["Add the two numbers, one step at a time."] * repeat), "The answer is \\boxed{7}."


def generate(url: str, problems: Path, out: Path, concurrency: int, cap: float | None,
             limit: int | None = None) -> float:
    cfg = GenerateConfig(problems=str(problems), base_url=url, model="m", out=str(out), progress=False, prices=PRICES,
                         max_tokens=64, concurrency=concurrency, max_cost_usd=cap, limit=limit)
    try:
        run(cfg)
    except BudgetExceeded:
        pass
    return sum(r["cost_usd"] for _, r in read_jsonl(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--varied", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    responder = respond_varied if args.varied else respond
    with tempfile.TemporaryDirectory() as tmp, TeacherServer(responder=responder, latency=args.latency) as srv:
        root = Path(tmp)
        problems = root / "p.jsonl"
        problems.write_text("".join(json.dumps({"id": f"q{i:04d}", "question": f"Question number {i:04d}?",
                                                "answer": "7"}) + "\n" for i in range(1000)))
        probe = 40 if args.varied else 1
        price = generate(srv.base_url, problems, root / "probe.jsonl", 1, None, limit=probe) / probe
        print(f"one request (mean of {probe}): ${price:.8f} (loopback teacher, latency {args.latency}s; machine shared, figures "
              "are counts, not times)")
        print(f"{'worth N':>8} {'concurrency':>11} {'bought':>7} {'bought/N':>9} {'spend/cap':>10}")
        for worth in (10, 100, 400):
            for concurrency in (1, 16, 64):
                out = root / f"t-{worth}-{concurrency}.jsonl"
                cap = (worth + 0.5) * price
                before = srv.stats.requests
                spent = generate(srv.base_url, problems, out, concurrency, cap)
                bought = srv.stats.requests - before
                print(f"{worth:>8} {concurrency:>11} {bought:>7} {bought / worth:>9.2f} {spent / cap:>10.3f}")


if __name__ == "__main__":
    main()
