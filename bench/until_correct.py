"""Requests spent per solved problem: a fixed grid of samples against sampling until correct, same teacher.

Usage:
    .venv/bin/python bench/until_correct.py                      # 120 offline problems, mistake rates 0.15 and 0.5
    .venv/bin/python bench/until_correct.py --problems 300 --ceiling 8

The anchor, measured in the same run on the same problems and the same loopback offline teacher
(seeded mistakes): ``samples=N`` for every problem. Against it: ``until_correct=1 max_samples=N``
(stop a problem at its first verified-correct trace). Printed per mistake rate: requests sent,
problems with at least one correct trace, and requests per solved problem, with the ratio to the
anchor. In-sample (one problem set, one seed); figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections import defaultdict
from pathlib import Path

from distill.artifacts import read_latest
from distill.generate.adaptive import is_correct
from distill.generate.config import GenerateConfig
from distill.generate.stage import run
from distill.offline import sets as offline_sets
from distill.teacher.server import TeacherServer


def solved(path: Path) -> tuple[int, int]:
    """(requests in the file, problems with a verified-correct trace)."""
    records = list(read_latest(path).values())
    good = defaultdict(bool)
    for rec in records:
        good[rec["id"]] |= bool(is_correct(rec))
    return len(records), sum(good.values())


def one(problems: Path, folder: Path, rate: float, **options) -> tuple[int, int]:
    with TeacherServer(dialect="deepseek", model="t", mistake_rate=rate, seed=0) as srv:
        out = folder / f"traces-{rate}-{'-'.join(f'{k}{v}' for k, v in options.items())}.jsonl"
        run(GenerateConfig(problems=str(problems), base_url=srv.base_url, model="t", provider="offline",
                           api_key_env=None, out=str(out), progress=False, concurrency=16, max_tokens=512, **options))
    return solved(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--problems", type=int, default=120)
    parser.add_argument("--ceiling", type=int, default=4)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.15, 0.5])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        problems = folder / "p.jsonl"
        import json
        problems.write_text("".join(json.dumps(p) + "\n" for p in offline_sets.make_mixed(args.problems, 0, split="train")))
        print(f"{args.problems} offline problems, ceiling N={args.ceiling}; in-sample, one seed")
        print(f"{'mistake rate':>12} {'policy':>28} {'requests':>9} {'solved':>7} {'req/solved':>11} {'ratio':>6}")
        for rate in args.rates:
            grid = one(problems, folder, rate, samples=args.ceiling)
            until = one(problems, folder, rate, samples=1, until_correct=1, max_samples=args.ceiling)
            anchor = grid[0] / max(grid[1], 1)
            for name, (sent, ok) in ((f"samples={args.ceiling} (anchor)", grid),
                                     (f"until_correct=1 max_samples={args.ceiling}", until)):
                per = sent / max(ok, 1)
                print(f"{rate:>12} {name:>28} {sent:>9} {ok:>7} {per:>11.2f} {per / anchor:>6.2f}")


if __name__ == "__main__":
    main()
