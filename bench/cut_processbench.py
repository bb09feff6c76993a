"""Cut the labelled real-output set (bench/data/processbench/) from ProcessBench and the gold answers.

Usage:
    .venv/bin/python bench/cut_processbench.py PROCESSBENCH_DIR GOLD_DIR [--out bench/data/processbench]

PROCESSBENCH_DIR holds gsm8k.json, math.json, olympiadbench.json (QwenLM/ProcessBench at commit
606615c^, where the data still sat in the repository); GOLD_DIR holds gsm8k.jsonl (question,
answer "... #### N"), math.jsonl (the 5,000 MATH test problems with "answer") and
olympiadbench.jsonl (question, final_answer list). A ProcessBench solution is joined back to its
gold by its problem text (whitespace collapsed); problems that do not match are left out.
The split is by problem (sha256 of the problem text): the same problem never sits in both parts.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from pathlib import Path

HOLDOUT_SHARE = 0.5


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def gold_tables(gold_dir: Path) -> dict[str, dict[str, str]]:
    """Problem text -> gold answer, per ProcessBench split."""
    gsm = {collapse(x["question"]): x["answer"].rsplit("####", 1)[1].strip() for x in load_jsonl(gold_dir / "gsm8k.jsonl")}
    math = {collapse(x["problem"]): x["answer"] for x in load_jsonl(gold_dir / "math.jsonl")}
    olympiad = {}
    for x in load_jsonl(gold_dir / "olympiadbench.jsonl"):
        # Golds are lists of TeX snippets ("$69$,$84$"); the checker takes TeX without delimiters.
        answers = [a.replace("$", "").strip() for a in x["final_answer"]]
        olympiad[collapse(x["question"])] = ", ".join(answers)
    return {"gsm8k": gsm, "math": math, "olympiadbench": olympiad}


def split_of(problem: str) -> str:
    digest = hashlib.sha256(collapse(problem).encode()).digest()
    return "holdout" if digest[0] < 256 * HOLDOUT_SHARE else "dev"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processbench", type=Path)
    parser.add_argument("golds", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "processbench")
    args = parser.parse_args()
    tables = gold_tables(args.golds)
    parts: dict[str, list[dict]] = {"dev": [], "holdout": []}
    for name, table in tables.items():
        for item in json.loads((args.processbench / f"{name}.json").read_text(encoding="utf-8")):
            gold = table.get(collapse(item["problem"]))
            if gold is None:
                continue
            case = {
                "id": f"pb-{item['id']}", "source": name, "generator": item["generator"],
                "kind": "gsm8k" if name == "gsm8k" else "math", "gold": gold,
                "expected": item["final_answer_correct"], "response": "\n\n".join(item["steps"]),
            }
            parts[split_of(item["problem"])].append(case)
    args.out.mkdir(parents=True, exist_ok=True)
    for split, cases in parts.items():
        with gzip.open(args.out / f"{split}.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
            for case in cases:
                f.write(json.dumps({**case, "split": split}, ensure_ascii=False) + "\n")
        print(f"{split}: {len(cases)} cases, {sum(not c['expected'] for c in cases)} expected false")


if __name__ == "__main__":
    main()
