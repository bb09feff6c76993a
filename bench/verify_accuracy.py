"""Accuracy and speed of distill.verify.check against math-verify: real labelled outputs and in-sample cases.

Usage:
    .venv/bin/python bench/verify_accuracy.py [--real-splits dev,holdout] [--runs 3]

Real labelled outputs (the headline): bench/data/processbench/, 2,386 solutions written by 12 open
models to GSM8K, MATH and OlympiadBench problems, with ProcessBench's published final-answer
labels (see its README). "dev" (1,219) was used while improving the verifier; "holdout" (1,167)
was scored once with the code frozen. Each is reported with the published labels and with the
reviewed ones (relabels.json: hand-checked disagreements, listed with reasons).

In-sample cases (a regression guard, not a headline): bench/verify_cases.jsonl. Splits: "dev" cases were written while the verifier was built; "holdout" and "holdout2" were
each written afterwards and scored once with the verifier frozen (first scores: holdout 60/62,
holdout2 39/40, no false positive in either); the misses were then fixed, so every split is
in-sample now and 100% on it says "no regression", not "generalises".
A case is accepted when the checker says correct=True (None, "undecidable", counts as not
accepted: a filter keeps only True). FP = accepted although expected false (a wrong trace kept),
FN = not accepted although expected true (a paid-for trace dropped).

math-verify 0.9, configured the way its README and open-r1 use it:
  math   gold: parse(f"${gold}$") (LaTeX + expression extraction); response: parse(response) with
         the defaults (LatexExtractionConfig() + ExprExtractionConfig(), boxed and "final answer is"
         anchors, then unanchored); verify(gold, pred).
  gsm8k  gold: parse(gold, [ExprExtractionConfig()]); response: parse(response,
         [LatexExtractionConfig(), ExprExtractionConfig()]).
  choice both: parse(x, [StringExtractionConfig(strings=("A","B","C","D","E"))]) (lowercase=True).
  exact  math-verify has no text kind; the nearest is StringExtractionConfig(strings=(gold,)).
  code   not applicable to math-verify (reported for distill only).
Speed: checks per second over the real cases (math and gsm8k), caches cleared before each run,
distill and math-verify alternating, median of runs, one process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.artifacts import KINDS  # noqa: E402
from distill.verify import check  # noqa: E402

REAL_DIR = Path(__file__).parent / "data" / "processbench"


def load_real(split: str, reviewed: bool) -> list[dict]:
    """One split of the real labelled set; ``reviewed`` applies relabels.json (labels and golds)."""
    with gzip.open(REAL_DIR / f"{split}.jsonl.gz", "rt", encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    if reviewed:
        fixes = {fix["id"]: fix for fix in json.loads((REAL_DIR / "relabels.json").read_text())["cases"]}
        cases = [
            {**c, **{k: v for k, v in fixes.get(c["id"], {}).items() if k in ("expected", "gold")}}
            for c in cases
            if not fixes.get(c["id"], {}).get("exclude")
        ]
    return cases


def math_verify_checker():
    """A check(response, gold, kind) -> bool | None built from math-verify's parse + verify."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    letters = StringExtractionConfig(strings=("A", "B", "C", "D", "E"))

    def mv_check(response: str, gold: str, kind: str) -> bool | None:
        if kind == "math":
            gold_parsed = parse(f"${gold}$")
            pred = parse(response)
        elif kind == "gsm8k":
            gold_parsed = parse(gold, [ExprExtractionConfig()])
            pred = parse(response, [LatexExtractionConfig(), ExprExtractionConfig()])
        elif kind == "choice":
            gold_parsed = parse(gold, [letters])
            pred = parse(response, [letters])
        elif kind == "exact":
            config = [StringExtractionConfig(strings=(gold,))]
            gold_parsed, pred = parse(gold, config), parse(response, config)
        else:
            return None
        if not gold_parsed:
            return None
        return verify(gold_parsed, pred)

    return mv_check


def score(cases: list[dict], checker) -> dict[str, dict[str, int]]:
    """Per kind: n, right, fp, fn."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "right": 0, "fp": 0, "fn": 0})
    for case in cases:
        verdict = checker(case["response"], case["gold"], case["kind"])
        if verdict == "n/a":
            continue
        accepted = verdict is True
        row = table[case["kind"]]
        row["n"] += 1
        row["right"] += accepted == case["expected"]
        row["fp"] += accepted and not case["expected"]
        row["fn"] += case["expected"] and not accepted
    return table


def print_table(results: dict[str, dict[str, dict[str, int]]]) -> None:
    names = list(results)
    print(f"{'kind':8} {'n':>4} " + " ".join(f"{name + ' acc':>16} {'FP':>4} {'FN':>4}" for name in names))
    for kind in (*KINDS, "no-code", "overall"):
        cells, n = [], 0
        for name in names:
            table = results[name]
            if kind == "overall":
                rows = list(table.values())
            elif kind == "no-code":  # the kinds both checkers handle
                rows = [row for k, row in table.items() if k != "code"]
            else:
                rows = [table[kind]] if kind in table else []
            total = {k: sum(r[k] for r in rows) for k in ("n", "right", "fp", "fn")}
            if kind in KINDS and not any(kind in t for t in results.values()):
                continue  # a kind this set does not have
            if kind == "no-code" and not any("code" in t for t in results.values()):
                continue
            if total["n"] == 0:
                cells.append(f"{'n/a':>16} {'':>4} {'':>4}")
                continue
            n = max(n, total["n"])
            cells.append(f"{total['right'] / total['n']:>16.1%} {total['fp']:>4} {total['fn']:>4}")
        if cells:
            print(f"{kind:8} {n:>4} " + " ".join(cells))


def speed(cases: list[dict], checker, runs: int, clear) -> float:
    """Median checks per second over ``cases``, caches cleared before each run."""
    rates = []
    for _ in range(runs):
        clear()
        start = time.perf_counter()
        for case in cases:
            checker(case["response"], case["gold"], case["kind"])
        rates.append(len(cases) / (time.perf_counter() - start))
    return statistics.median(rates)


def clear_distill_caches() -> None:
    from distill.verify import checker, text

    for cached in (checker.gold_math, checker.gold_number, text.gold_aliases, text.raw_golds):
        cached.cache_clear()


def report(title: str, cases: list[dict], ours, theirs) -> None:
    false_share = sum(not c["expected"] for c in cases) / len(cases)
    print(f"\n{title}: {len(cases)} cases, {false_share:.0%} expected-false")
    print_table({"distill": score(cases, ours), "math-verify": score(cases, theirs)})


def alternating_speed(cases: list[dict], ours, theirs, runs: int) -> tuple[float, float]:
    """Median checks/s of each, runs alternating so that load on the machine hits both alike."""
    rates: dict[str, list[float]] = {"ours": [], "theirs": []}
    for _ in range(runs):
        rates["ours"].append(speed(cases, ours, 1, clear_distill_caches))
        rates["theirs"].append(speed(cases, theirs, 1, lambda: None))
    return statistics.median(rates["ours"]), statistics.median(rates["theirs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=str(Path(__file__).with_name("verify_cases.jsonl")))
    parser.add_argument("--real-splits", default="dev,holdout", help="comma list of dev, holdout")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify logs every timeout and parse failure

    def ours(response, gold, kind):
        return check(response, gold, kind).correct

    mv = math_verify_checker()

    def theirs(response, gold, kind):
        return "n/a" if kind == "code" else mv(response, gold, kind)

    splits = [s for s in args.real_splits.split(",") if s]
    print("== Real model outputs, labels published by others (ProcessBench) ==")
    for split in splits:
        report(f"{split}, published labels", load_real(split, reviewed=False), ours, theirs)
        report(f"{split}, reviewed labels", load_real(split, reviewed=True), ours, theirs)
    real = [c for split in splits for c in load_real(split, reviewed=True)]
    ours_rate, theirs_rate = alternating_speed(real, ours, mv, args.runs)
    print(f"\nspeed on the real cases ({len(real)}, median of {args.runs} alternating runs, 1 core):")
    print(f"  distill      {ours_rate:9.0f} checks/s")
    print(f"  math-verify  {theirs_rate:9.0f} checks/s   (distill is {ours_rate / theirs_rate:.1f}x)")

    print("\n== In-sample cases written for this project (a regression guard, not a headline) ==")
    cases = [json.loads(line) for line in Path(args.cases).read_text(encoding="utf-8").splitlines() if line.strip()]
    report(args.cases, cases, ours, theirs)
    math_cases = [c for c in cases if c["kind"] == "math" and c["shape"] != "pathological"]
    ours_math, theirs_math = alternating_speed(math_cases, ours, mv, args.runs)
    print(f"\nspeed on in-sample math ({len(math_cases)} cases, pathological ones excluded, median of {args.runs}, 1 core):")
    print(f"  distill      {ours_math:9.0f} checks/s")
    print(f"  math-verify  {theirs_math:9.0f} checks/s   (distill is {ours_math / theirs_math:.1f}x)")


if __name__ == "__main__":
    main()
