"""Score someone's published per-sample outputs on a benchmark with distill's protocol and verifier, and with
math-verify, beside the figure they published: does distill's scoring reproduce the number?

Usage:
    .venv/bin/python bench/reproduce_benchmark.py --case all            # the committed cases (bench/data/reproduce/)
    .venv/bin/python bench/reproduce_benchmark.py --case tora-70b --limit 50 --show 5
    .venv/bin/python bench/reproduce_benchmark.py --benchmark math500 --outputs PATH.jsonl[.gz] --published 83.9 \
        [--rows HUB_ROWS.jsonl --question-field problem] [--gold-field answer --response-field response \
        --id-field id --label-field is_correct]

Outputs: one line per problem, or per generation; a response field holding a list is n samples of that problem.
Fields may be dotted (``175b_verification.solution``). The gold is the benchmark's own row mapped by
distill.benchmarks.rows.to_problem (``--rows``: the set in its Hub schema, joined to the outputs by question
text), else ``--gold-field``. Each sample is scored as `distill eval benchmark=NAME` scores it: the response's
``<think>`` block split off (distill.teacher.capture.split_think), distill.verify.check_record with the
benchmark's answer kind, and avg@n with its standard error and pass@k by distill.estimates.summarise. The same
samples are scored by math-verify (``verify(parse(f"${gold}$"), parse(content))``, as open-r1 uses it), and,
when the source graded each sample (``--label-field``), against that grade. Prints both scores, the published
figure, the gap in standard errors, and the disagreements counted (``--show N`` prints N of them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.benchmarks import protocol_for  # noqa: E402
from distill.benchmarks.rows import to_problem  # noqa: E402
from distill.estimates import summarise  # noqa: E402
from distill.teacher.capture import split_think  # noqa: E402
from distill.verify import check_record  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "reproduce"


@dataclass(frozen=True)
class Case:
    """One published set of outputs and the figure its authors published for it."""

    benchmark: str
    outputs: str  # file under bench/data/reproduce/
    response_field: str
    published: float | None  # percent; None: the source published per-sample grades only
    source: str
    rows: str | None = "gsm8k-test.jsonl.gz"
    question_field: str = "question"
    label_field: str | None = None
    label_rule: str = "bool"  # how the label field becomes the source's grade (see source_grade)


_TORA = "microsoft/ToRA@213c1c9 src/outputs/llm-agents/{}/gsm8k/test_tora_-1_seed0_t0.0_s0_e1319.jsonl (MIT)"
_GSM = "openai/grade-school-math@3101c7d grade_school_math/data/example_model_solutions.jsonl (MIT)"
CASES: dict[str, Case] = {
    **{name: Case("gsm8k", f"{name}-gsm8k.jsonl.gz", "code", figure, _TORA.format(f"{name}-v1.0"),
                  label_field="pred", label_rule="numeric")
       for name, figure in (("tora-70b", 84.3), ("tora-code-34b", 80.7))},
    **{f"gpt3-{size}-{how}": Case("gsm8k", "gpt3-gsm8k.jsonl.gz", f"{size}_{how}.solution", None, _GSM,
                                  label_field=f"{size}_{how}.is_correct")
       for size in ("6b", "175b") for how in ("finetuning", "verification")},
}


def read_lines(path: Path) -> Iterator[dict]:
    """JSON lines of a .jsonl or .jsonl.gz file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def field(row: dict, dotted: str) -> Any:
    """``row["a"]["b"]`` for ``"a.b"``; None where a part is missing."""
    value = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def problems_by_question(benchmark: str, rows_path: Path | None) -> dict[str, dict]:
    """The benchmark's Problem records (the pack's mapping of its Hub rows), keyed by collapsed question text."""
    if rows_path is None:
        return {}
    return {_collapse(p["question"]): p for p in
            (to_problem(benchmark, row, i) for i, row in enumerate(read_lines(rows_path)))}


def math_verify(gold: str, content: str) -> bool:
    """math-verify's verdict, as open-r1 calls it; an exception counts as not verified."""
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(content)))
    except Exception:  # noqa: BLE001 - math-verify raises on odd input
        return False


def source_grade(label: Any, gold: str, rule: str) -> bool | None:
    """The source's own verdict on a sample. ``bool``: the label is that verdict. ``numeric``: the label is the
    answer the source extracted, graded as ToRA's math_equal grades two numbers (equal within a relative 1e-4,
    or equal to the gold divided or multiplied by 100: its percentage leniency)."""
    if label is None or rule == "bool":
        return None if label is None else bool(label)
    try:
        value, target = (float(str(x).replace(",", "")) for x in (label, gold))
    except ValueError:
        return str(label).strip() == str(gold).strip()
    return any(math.isclose(value, t, rel_tol=1e-4) for t in (target / 100, target, target * 100))


def samples(rows: Iterator[dict], args: argparse.Namespace, problems: dict[str, dict]) -> Iterator[dict]:
    """One dict per sample: id, gold, kind, response, and the source's own grade (None without one)."""
    kind = protocol_for(args.benchmark).kind
    for line, row in enumerate(rows):
        if problems:
            question = _collapse(field(row, args.question_field) or "")
            if question not in problems:
                raise SystemExit(f"outputs line {line + 1}: its question is not in --rows")
            ident, gold = problems[question]["id"], problems[question]["answer"]
        else:
            ident, gold = str(field(row, args.id_field)), str(field(row, args.gold_field))
        responses, labels = field(row, args.response_field), field(row, args.label_field) if args.label_field else None
        responses = responses if isinstance(responses, list) else [responses]
        labels = labels if isinstance(labels, list) else [labels] * len(responses)
        for response, label in zip(responses, labels):
            yield {"id": ident, "gold": gold, "kind": kind, "response": str(response or ""),
                   "label": source_grade(label, gold, args.label_rule)}


def grade(sample: dict) -> dict:
    """The sample with distill's verdict (as eval records it) and math-verify's."""
    _, content = split_think(sample["response"])
    verdict = check_record({"answer": sample["gold"], "kind": sample["kind"], "content": content})
    theirs = math_verify(sample["gold"], content) if sample["kind"] in ("math", "gsm8k") else None
    return {**sample, "content": content, "correct": verdict.correct, "extracted": verdict.extracted,
            "reason": verdict.reason, "math_verify": theirs}


def score(graded: list[dict]) -> dict:
    """avg@n, its standard error and pass@k by distill and by math-verify; disagreements counted."""
    ours = summarise([{"id": g["id"], "correct": g["correct"], "extracted": g["extracted"], "reason": g["reason"]}
                      for g in graded])
    theirs = summarise([{"id": g["id"], "correct": g["math_verify"] is True} for g in graded])
    labelled = [g for g in graded if g["label"] is not None]
    return {
        "problems": ours.problems, "samples": ours.samples,
        "hits": {"distill": sum(g["correct"] is True for g in graded),
                 "math-verify": sum(g["math_verify"] is True for g in graded),
                 "source labels": sum(bool(g["label"]) for g in labelled)},
        "distill": (ours.avg_at_n, ours.avg_at_n_stderr), "pass@k": ours.pass_at_k,
        "math-verify": (theirs.avg_at_n, theirs.avg_at_n_stderr),
        "source labels": sum(bool(g["label"]) for g in labelled) / len(labelled) if labelled else None,
        "distill vs math-verify": [g for g in graded if (g["correct"] is True) != (g["math_verify"] is True)],
        "distill vs source labels": [g for g in labelled if (g["correct"] is True) != bool(g["label"])],
    }


def report(name: str, result: dict, published: float | None, show: int) -> str:
    """The printed block of one case."""
    mean, stderr = result["distill"]
    lines = [f"{name}: {result['problems']} problems, {result['samples']} samples"]
    for who in ("distill", "math-verify"):
        m, se = result[who]
        lines.append(f"  {who:12s} avg@n {100 * (m or 0):.1f}" + (f" ± {100 * se:.1f}" if se is not None else "")
                     + f" ({result['hits'][who]} of {result['samples']} samples correct)")
    if len(result["pass@k"]) > 1:
        lines.append("  distill      " + ", ".join(f"{k} {100 * v:.1f}" for k, v in result["pass@k"].items()))
    if result["source labels"] is not None:
        lines.append(f"  source's own per-sample grades {100 * result['source labels']:.1f} "
                     f"({result['hits']['source labels']} correct)")
    if published is not None:
        gap = 100 * (mean or 0) - published
        within = f" = {gap / (100 * stderr):+.2f} standard errors" if stderr else ""
        lines.append(f"  published    {published:.1f} (distill {gap:+.1f} points{within})")
    for what in ("distill vs math-verify", "distill vs source labels"):
        cases = result[what]
        if what.endswith("labels") and result["source labels"] is None:
            continue
        lines.append(f"  {what}: {len(cases)} samples disagree")
        for g in cases[:show]:
            tail = g["content"][-160:].replace("\n", " ")
            lines.append(f"    {g['id']} gold {g['gold']!r}: distill {g['correct']} ({g['reason']}, "
                         f"{g['extracted']!r}), math-verify {g['math_verify']}, source {g['label']}: ...{tail}")
    return "\n".join(lines)


def case_args(case: Case) -> argparse.Namespace:
    """A committed case as the arguments a user would give."""
    return argparse.Namespace(benchmark=case.benchmark, outputs=DATA / case.outputs,
                              rows=DATA / case.rows if case.rows else None, question_field=case.question_field,
                              response_field=case.response_field, label_field=case.label_field,
                              label_rule=case.label_rule,
                              id_field="id", gold_field="answer", published=case.published)


def run(args: argparse.Namespace, limit: int | None = None) -> dict:
    """Score one set of outputs (the first ``limit`` lines when given)."""
    problems = problems_by_question(args.benchmark, args.rows)
    rows = (row for i, row in enumerate(read_lines(args.outputs)) if limit is None or i < limit)
    return score([grade(s) for s in samples(rows, args, problems)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help=f"a committed case: {', '.join(CASES)}, or all")
    ap.add_argument("--benchmark")
    ap.add_argument("--outputs", type=Path)
    ap.add_argument("--published", type=float, help="the published figure, in percent")
    ap.add_argument("--rows", type=Path, help="the benchmark's rows in their Hub schema, giving the gold by question")
    ap.add_argument("--question-field", default="question")
    ap.add_argument("--id-field", default="id")
    ap.add_argument("--gold-field", default="answer")
    ap.add_argument("--response-field", default="response")
    ap.add_argument("--label-field", help="the source's own per-sample grade (true/false), or its extracted answer")
    ap.add_argument("--label-rule", choices=("bool", "numeric"), default="bool",
                    help="numeric: the label field is the source's answer, graded as ToRA grades numbers")
    ap.add_argument("--limit", type=int, help="score only the first LIMIT lines of the outputs")
    ap.add_argument("--show", type=int, default=0, help="print this many disagreements of each kind")
    args = ap.parse_args()
    if args.case:
        names = list(CASES) if args.case == "all" else [args.case]
        todo = [(n, case_args(CASES[n]), CASES[n].source) for n in names]
    elif args.benchmark and args.outputs:
        todo = [(args.benchmark, args, str(args.outputs))]
    else:
        ap.error("give --case, or --benchmark and --outputs")
    for name, case, source in todo:
        print(f"# {source}")
        print(report(name, run(case, args.limit), case.published, args.show))


if __name__ == "__main__":
    main()
