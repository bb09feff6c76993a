"""Score someone's published per-sample outputs on a benchmark with distill's protocol and verifier, and with
math-verify, beside the figure they published: does distill's scoring reproduce the number?

Usage:
    .venv/bin/python bench/reproduce_benchmark.py --benchmark math500 --outputs PATH.jsonl --published 83.9 \
        [--gold-field answer --response-field response --id-field id] [--problems PATH.jsonl]

PATH.jsonl: one generation per line (several lines per problem for n samples), with the problem's id,
its gold answer (or --problems, a file of Problem records, to take the gold from by id) and the full
response. Third-party outputs are read from the path, never copied into this repository. Prints avg@n
with its standard error by distill.verify.check_record (the protocol's answer kind, responses with
reasoning split off the way eval splits them) and by math-verify (parse(f"${gold}$") against
parse(response), as open-r1 uses it), the agreement of the two per sample, and the published figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.benchmarks import protocol_for  # noqa: E402
from distill.estimates import avg_at_n  # noqa: E402
from distill.teacher.capture import split_think  # noqa: E402
from distill.verify import check_record  # noqa: E402


def _math_verify(gold: str, response: str) -> bool:
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(response)))
    except Exception:  # noqa: BLE001 - math-verify raises on odd input; count as not verified
        return False


def _golds(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {str(r["id"]): str(r["answer"]) for r in rows}


def score(outputs: Path, kind: str, fields: argparse.Namespace, golds: dict[str, str]) -> dict:
    """avg@n and its standard error by distill's verifier and by math-verify, and their per-sample agreement."""
    groups = {"distill": defaultdict(lambda: {"n": 0, "hits": {"correct": 0}}),
              "math-verify": defaultdict(lambda: {"n": 0, "hits": {"correct": 0}})}
    agree = total = 0
    for line in outputs.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        ident = str(row[fields.id_field])
        gold = golds.get(ident, str(row.get(fields.gold_field, "")))
        response = str(row.get(fields.response_field) or "")
        _, content = split_think(response)
        ours = check_record({"answer": gold, "kind": kind, "content": content}).correct is True
        theirs = _math_verify(gold, content) if kind in ("math", "gsm8k") else ours
        for name, hit in (("distill", ours), ("math-verify", theirs)):
            groups[name][ident]["n"] += 1
            groups[name][ident]["hits"]["correct"] += hit
        agree += ours == theirs
        total += 1
    out = {name: avg_at_n(g.values()) for name, g in groups.items()}
    return {"samples": total, "problems": len(groups["distill"]), "agreement": agree / total if total else None, **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", required=True)
    ap.add_argument("--outputs", required=True, type=Path)
    ap.add_argument("--published", type=float, help="the published figure, in percent")
    ap.add_argument("--problems", help="Problem records (id, answer) giving the gold by id")
    ap.add_argument("--id-field", default="id")
    ap.add_argument("--gold-field", default="answer")
    ap.add_argument("--response-field", default="response")
    args = ap.parse_args()
    protocol = protocol_for(args.benchmark)
    result = score(args.outputs, protocol.kind, args, _golds(args.problems))
    print(f"{args.benchmark}: {result['problems']} problems, {result['samples']} samples")
    for name in ("distill", "math-verify"):
        mean, stderr = result[name]
        se = f" ± {100 * stderr:.1f}" if stderr is not None else ""
        print(f"  {name:12s} avg@n {100 * (mean or 0):.1f}{se}")
    print(f"  per-sample agreement {100 * (result['agreement'] or 0):.1f}%")
    if args.published is not None:
        print(f"  published    {args.published:.1f}")


if __name__ == "__main__":
    main()
