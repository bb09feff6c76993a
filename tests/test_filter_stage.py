"""`distill filter` as a stage: incremental re-runs, last record wins, per-problem cap, dedup,
decontamination, bad input, and the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from filter_helpers import GOOD, read, reasons, run_filter, trace
from records_factory import write_traces

from distill.errors import InputError

VARIANTS = [GOOD, GOOD.replace("Natalia", "She"),  # near duplicate of the first
            "In April 48 clips were sold. May was half of that: 48 / 2 = 24. The total is 48 + 24 = 72, so 72 clips.",
            "April gives 48. Half of 48 is 24 because 24 + 24 = 48. Adding both months, 48 + 24 = 72 clips in all.",
            "We add April's 48 to May's 24 (48 / 2 = 24); 48 + 24 = 72 and nothing else is sold, giving 72 clips."]


def _mixed(n_problems: int, first: int = 0) -> list[dict]:
    recs = []
    for p in range(first, first + n_problems):
        for s, text in enumerate(VARIANTS):
            wrong = (p + s) % 4 == 3
            recs.append(trace(f"p{p}", s, reasoning=text + f" (problem {p})",
                              content="So \\boxed{71}" if wrong else "So \\boxed{72}", source=f"src{p % 2}"))
    return recs


def _outputs(out_dir):
    stats = json.loads((out_dir / "stats.json").read_text())
    return read(out_dir / "kept.jsonl"), read(out_dir / "rejected.jsonl"), stats


def test_incremental_rerun_equals_one_full_run(tmp_path):
    recs = _mixed(6)
    opts = ["per_problem.max=2", "per_problem.policy=shortest"]
    write_traces(tmp_path / "traces.jsonl", recs[:13])  # a problem split across the two runs
    first, _, _ = run_filter(tmp_path, opts)
    write_traces(tmp_path / "traces.jsonl", recs[13:], mode="a")
    stats, kept, rejected = run_filter(tmp_path, opts)
    assert stats["traces"]["measured_now"] == len(recs) - 13 and stats["traces"]["from_cache"] == 13
    full_stats, full_kept, full_rejected = run_filter(tmp_path, opts, out="full/kept.jsonl")
    assert full_stats["traces"]["measured_now"] == len(recs)
    assert kept == full_kept and rejected == full_rejected
    assert stats["funnel"] == full_stats["funnel"] and stats["problems"] == full_stats["problems"]
    assert len(kept) + len(rejected) == len(recs)
    assert {r["verdict"]["reason"] for r in rejected} >= {"wrong_answer", "duplicate", "max_per_problem"}


def test_last_record_per_sample_wins(tmp_path):
    error = trace("p1", 0, reasoning=None, content=None, error={"type": "http_500", "message": "boom"})
    write_traces(tmp_path / "traces.jsonl", [error, trace("p2", 0)])
    _, kept, rejected = run_filter(tmp_path)
    assert reasons(rejected) == {("p1", 0): "error"}
    write_traces(tmp_path / "traces.jsonl", [trace("p1", 0)], mode="a")  # the retry succeeded
    stats, kept, rejected = run_filter(tmp_path)
    assert [(r["id"], r["sample"]) for r in kept] == [("p2", 0), ("p1", 0)] and rejected == []
    assert stats["traces"]["superseded"] == 1 and stats["traces"]["measured_now"] == 1


@pytest.mark.parametrize("policy,expected", [("first", [0, 2]), ("shortest", [3, 4]), ("all", [0, 2, 3, 4])])
def test_per_problem_policies(tmp_path, policy, expected):
    texts = [GOOD + " Extra words make this one longer than the rest by a fair margin indeed, truly.",
             GOOD + " Extra words make this one longer than the rest by a fair margin indeed, truly!",  # dup
             VARIANTS[2] + " And a few more words for good measure here.", VARIANTS[3], VARIANTS[4]]
    write_traces(tmp_path / "traces.jsonl", [trace("p", s, reasoning=t) for s, t in enumerate(texts)])
    opts = [f"per_problem.policy={policy}"] + (["per_problem.max=2"] if policy != "all" else [])
    _, kept, rejected = run_filter(tmp_path, opts)
    assert sorted(r["sample"] for r in kept) == expected
    assert reasons(rejected)[("p", 1)] == "duplicate"


def test_random_policy_is_seeded(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace("p", s, reasoning=t) for s, t in enumerate(VARIANTS[2:])])
    picks = {seed: [r["sample"] for r in run_filter(tmp_path, ["per_problem.policy=random", "per_problem.max=1",
                                                               f"per_problem.seed={seed}"])[1]]
             for seed in range(6)}
    assert all(len(p) == 1 for p in picks.values()) and len({p[0] for p in picks.values()}) > 1
    again = run_filter(tmp_path, ["per_problem.policy=random", "per_problem.max=1", "per_problem.seed=3"])[1]
    assert [r["sample"] for r in again] == picks[3]


def test_near_duplicates_only_within_a_problem(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace("a", 0), trace("b", 0), trace("a", 1, reasoning=VARIANTS[1])])
    _, kept, rejected = run_filter(tmp_path)
    assert [(r["id"], r["sample"]) for r in kept] == [("a", 0), ("b", 0)]
    assert reasons(rejected) == {("a", 1): "duplicate"}
    _, kept, _ = run_filter(tmp_path, ["dedup.near=false"])
    assert len(kept) == 3


def test_decontamination_against_eval_file(tmp_path):
    eval_file = tmp_path / "eval.jsonl"
    question = "Natalia sold clips to 48 of her friends (p2). How many in total?"
    eval_file.write_text(json.dumps({"problem": question}) + "\n")
    write_traces(tmp_path / "traces.jsonl", [trace("p1"), trace("p2"),
                                             trace("p3", question="A train leaves at noon going 60 km/h. When?")])
    opts = [f"decontam.problems=[{eval_file}]", "decontam.question_field=problem", "decontam.ngram=13"]
    _, kept, rejected = run_filter(tmp_path, opts)
    assert reasons(rejected) == {("p2", 0): "contaminated"}
    assert {r["id"] for r in kept} == {"p1", "p3"}


@pytest.mark.parametrize("line,expected", [
    ('{"id": "p9", "sample": 0, "question": "q", "answer": "1", "kind": "gsm8k"', "traces.jsonl:2: malformed JSON"),
    ('{"id": "p9", "sample": 0, "question": "q", "kind": "gsm8k"}', "traces.jsonl:2 (field 'answer'): missing"),
    ('{"id": "p9", "sample": 0, "question": "q", "answer": "1", "kind": "poetry"}',
     "traces.jsonl:2 (field 'kind'): unknown kind 'poetry'"),
    ('[1, 2]', "traces.jsonl:2: expected a JSON object"),
])
def test_bad_input_names_the_line_and_writes_nothing(tmp_path, line, expected):
    path = write_traces(tmp_path / "traces.jsonl", [trace("p1")])
    with path.open("a") as f:
        f.write(line + "\n")
        f.write(json.dumps(trace("p3")) + "\n")
    with pytest.raises(InputError) as err:
        run_filter(tmp_path)
    assert expected in str(err.value)
    assert not (tmp_path / "out").exists()


def test_torn_last_line_is_skipped(tmp_path):
    path = write_traces(tmp_path / "traces.jsonl", [trace("p1")])
    with path.open("a") as f:
        f.write('{"id": "p2", "sample": 0, "quest')  # a writer killed mid-line
    _, kept, _ = run_filter(tmp_path)
    assert [r["id"] for r in kept] == ["p1"]


def test_cli_end_to_end(tmp_path, repo_root):
    write_traces(tmp_path / "traces.jsonl", _mixed(3))
    recipe = tmp_path / "filter.yaml"
    recipe.write_text("checks:\n  max_tokens: 4000\nper_problem:\n  max: 2\n  policy: first\n")
    env = dict(os.environ, DISTILL_PROGRESS="0")
    proc = subprocess.run([sys.executable, "-m", "distill", "filter", str(recipe), "traces=traces.jsonl",
                           "out=run/kept.jsonl"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "run/kept.jsonl"
    assert "filter funnel" in proc.stderr and "max_per_problem" in proc.stderr
    out = tmp_path / "run"
    kept, rejected, stats = _outputs(out)
    assert len(kept) + len(rejected) == 15 and len(kept) <= 6
    assert (out / "filter_funnel.png").read_bytes()[:4] == b"\x89PNG"
    assert "max_tokens: 4000" in (out / "filter.config.yaml").read_text()
    assert stats["kept"] == len(kept) and stats["problems"]["count"] == 3
    bad = subprocess.run([sys.executable, "-m", "distill", "filter", "traces=missing.jsonl", "out=x/kept.jsonl"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing.jsonl" in bad.stderr and "Traceback" not in bad.stderr


def test_two_worker_processes_match_one(tmp_path):
    # Large enough (> 256 KB) that the stage starts a process pool instead of working in-process.
    filler = "".join(f" Remark {k}: nothing changes the count of {k} clips." for k in range(40))
    recs = [dict(r, reasoning=r["reasoning"] + filler) for r in _mixed(30)]
    write_traces(tmp_path / "traces.jsonl", recs)
    assert (tmp_path / "traces.jsonl").stat().st_size > 256 * 1024
    one = run_filter(tmp_path, ["workers=1", "chunksize=7"], out="one/kept.jsonl")
    two = run_filter(tmp_path, ["workers=2", "chunksize=7"], out="two/kept.jsonl")
    assert one[1] == two[1] and one[2] == two[2] and one[0]["funnel"] == two[0]["funnel"]
    assert len(one[1]) > 0 and len(one[2]) > 0
