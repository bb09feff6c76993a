"""Varied traces and filter configs whose outputs are pinned in tests/data/filter_golden.json.

Usage:
    from golden_filter import CASES, make_traces, summarize
    write_traces(path, make_traces(3000, seed=7))
    PYTHONPATH=. python tests/golden_filter.py      # rewrite the fixture (only after a deliberate change)

The fixture was written by the filter as it was before it streamed (all per-trace state in
memory; main at the merge of the streaming branch, with the one verdict already in), so the
streaming filter must give the same verdicts, kept/rejected bytes and funnel.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from filter_helpers import GOOD, trace  # noqa: E402
from records_factory import write_traces  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "filter_golden.json"
# Seconds, paths and what came from the cache differ between runs; everything else must not.
VOLATILE = ("throughput", "inputs", "cache", "outputs")  # outputs: a path; the kept bytes are compared

CASES = {
    "defaults": [],
    "shortest": ["per_problem.max=2", "per_problem.policy=shortest", "checks.min_tokens=30",
                 "checks.max_tokens=120", "decontam.problems=[{eval}]"],
    "random": ["per_problem.max=3", "per_problem.policy=random", "per_problem.seed=5", "dedup.near=false",
               "checks.keep_undecided=true"],
    "first": ["per_problem.max=1", "per_problem.policy=first", "checks.answer=false", "dedup.exact=false",
              "checks.max_other_script=null"],
    "judge": ["judge.enabled=true", "judge.model=j", "judge.provider=generic", "judge.audit_share=0.2",
              "judge.batch=16"],  # judge.base_url: a loopback server run_case starts
}

_WORDS = ("first we add the numbers then we check the total again carefully because a slip is easy "
          "so the count of clips is what we want and each step follows from the last one").split()


def _reasoning(rng: random.Random, pid: str) -> str:
    kind = rng.random()
    if kind < 0.45:
        return GOOD + " " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 60)))
    if kind < 0.55:
        return GOOD + " Also 17 * 23 = 381 here."
    if kind < 0.6:
        return GOOD + " Since 7 > 9 we go on."
    if kind < 0.67:
        return "Wait, let me check again. " * rng.randint(15, 30)
    if kind < 0.72:
        return GOOD + " 答案是七十二个夹子因为四十八加二十四" * rng.randint(1, 3)
    if kind < 0.78:
        return f"We are told the answer is 72 for {pid}, so " + GOOD
    return GOOD


def _one(rng: random.Random, pid, sample: int) -> dict:
    roll = rng.random()
    content = rng.choice(["So \\boxed{72}", "So \\boxed{72}", "So \\boxed{72}", "So \\boxed{71}",
                          "The answer is seventy-something", "\\boxed{72.0}", "", "\\boxed{x^2}"])
    extra: dict = {}
    if roll < 0.04:
        extra = {"error": {"type": "server", "message": "boom"}, "content": None, "reasoning": None}
    elif roll < 0.08:
        extra = {"finish_reason": "length", "truncated": True}
    elif roll < 0.11:
        extra = {"reasoning": None, "content": "\\boxed{72}"}
    elif roll < 0.16:
        extra = {"rationalized": True, "hint": "Hint: the correct answer is 72."}
    elif roll < 0.22:  # a gold answer the rule verifier cannot parse: undecided, the judge's case
        extra = {"answer": "a cat", "content": "\\boxed{a dog}"}
    if rng.random() < 0.1:
        extra["source"] = rng.choice(["rg:chain_sum", "hub:gsm", "local"])
    fields = {"reasoning": _reasoning(rng, str(pid)), "content": content,
              "usage": {"prompt_tokens": 20, "completion_tokens": rng.choice([0, 50, 80, 300]),
                        "reasoning_tokens": 10}}
    rec = trace(pid, sample, **{**fields, **extra})
    if pid == "contam" or (isinstance(pid, str) and pid.endswith("7")):
        rec["question"] = "A train leaves the station at noon and travels sixty miles per hour for three hours."
    return rec


def make_traces(n: int, seed: int = 7) -> list[dict]:
    """``n`` varied traces over ~n/6 problems, with exact and near duplicates and re-appended pairs."""
    rng = random.Random(seed)
    out: list[dict] = []
    problems = max(1, n // 6)
    while len(out) < n:
        p = rng.randrange(problems)
        pid = p if p % 11 == 0 else f"p{p}"  # some integer ids, as hand-made files have
        samples = rng.randint(1, 8)
        group = [_one(rng, pid, s) for s in range(samples)]
        for rec in group[1:]:
            twin = rng.random()
            if twin < 0.12:  # an exact duplicate of sample 0's text
                rec.update(reasoning=group[0]["reasoning"], content=group[0]["content"])
            elif twin < 0.2 and group[0]["reasoning"]:
                rec.update(reasoning=group[0]["reasoning"] + " ok", content=group[0]["content"])
        out.extend(group)
        if rng.random() < 0.08:  # a later run re-appends one pair (an error, then its retry)
            out.append(_one(rng, pid, rng.randrange(samples)))
    return out[:n]


def write_case_inputs(tmp: Path, n: int = 3000) -> None:
    write_traces(tmp / "traces.jsonl", make_traces(n))
    write_traces(tmp / "eval.jsonl", [{"question": "A train leaves the station at noon and travels sixty "
                                                   "miles per hour for three hours. How far?"}])


def overrides(case: str, tmp: Path) -> list[str]:
    return [o.replace("{eval}", str(tmp / "eval.jsonl")) for o in CASES[case]]


def judge_reply(messages: list, request: dict) -> tuple[None, str]:
    """The loopback judge: CORRECT, INCORRECT or nothing, from a hash of the request (deterministic per trace)."""
    h = hashlib.sha256(json.dumps(messages).encode()).digest()[0] % 3
    return None, ["so CORRECT", "so INCORRECT", "hmm"][h]


def summarize(folder: Path) -> dict:
    """What must not change: hashes of kept/rejected and stats.json without timing."""
    stats = json.loads((folder / "stats.json").read_text())
    for key in VOLATILE:
        stats.pop(key, None)
    for key in ("measured_now", "from_cache"):
        stats["traces"].pop(key)
    digest = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
              for name in ("kept.jsonl", "rejected.jsonl")}
    return {"files": digest, "stats": stats}


def run_case(tmp: Path, case: str, out: str | None = None, workers: int = 1) -> dict:
    from filter_helpers import run_filter

    from distill.teacher.server import TeacherServer

    out = out or f"{case}/kept.jsonl"
    options = [*overrides(case, tmp), f"workers={workers}", "chunksize=50"]
    if case != "judge":
        run_filter(tmp, options, out=out)
        return summarize((tmp / out).parent)
    with TeacherServer(dialect="vllm", responder=judge_reply, model="j") as judge:  # the endpoint the judge names
        run_filter(tmp, [*options, f"judge.base_url={judge.base_url}"], out=out)
    return summarize((tmp / out).parent)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_case_inputs(tmp)
        expected = {case: run_case(tmp, case) for case in CASES}
    FIXTURE.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print({c: (v["stats"]["kept"], v["stats"]["rejected"]) for c, v in expected.items()})
