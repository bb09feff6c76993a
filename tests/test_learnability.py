"""Learnability scores equal a hand computation on the student's logits, count only trained tokens, and
select deterministically; another student's scores are refused; `distill rank-teachers` runs end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill.errors import InputError
from distill.examples import sample_of
from distill.learnability.config import ScoringConfig
from distill.learnability.selection import Scored, select
from distill.learnability.store import aggregate, card_lines, card_student
from distill.render import build_messages, render_example
from distill.student import load_tokenizer
from filter_helpers import GOOD, read, run_filter, trace
from records_factory import write_traces
from tiny_student import make_tiny_student

ROOT = Path(__file__).resolve().parents[1]
REASONING = "First add 2 and 3.\n2 + 3 = 5.\nSo the answer is 5."


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("students")
    return make_tiny_student(root / "a", seed=0), make_tiny_student(root / "b", seed=1)


def _scorer(path: Path, window: int = 1):
    from distill.learnability.scorer import Scorer

    return Scorer.load(ScoringConfig(student=str(path), window=window, bf16="false"))


def _hand_logprobs(model, ids: list[int], start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(token t) for t >= start, and the full logits rows that predict them: a plain forward."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    rows = logits[start - 1:len(ids) - 1]
    targets = torch.tensor(ids[start:])
    return rows.log_softmax(-1).gather(1, targets[:, None])[:, 0], rows


def _hand_steps(tokenizer, completion: list[int]) -> list[tuple[int, int]]:
    """Steps by hand: cut after each token holding a newline once the step has text."""
    spans, start, text = [], 0, ""
    for i, tok in enumerate(completion):
        piece = tokenizer.decode([tok])
        if "\n" in piece and not piece.strip() and not text.strip() and spans:
            spans[-1] = (spans[-1][0], i + 1)
            start = i + 1
            continue
        text += piece
        if "\n" in piece and text.strip():
            spans.append((start, i + 1))
            start, text = i + 1, ""
    if start < len(completion):
        spans.append((start, len(completion))) if text.strip() else spans.__setitem__(-1, (spans[-1][0], len(completion)))
    return spans


def test_scores_equal_a_hand_computation(students):
    from transformers import AutoModelForCausalLM

    scorer = _scorer(students[0], window=1)
    rec = {"id": "p", "sample": 0, "messages": [{"role": "user", "content": "What is 2+3?"}],
           "reasoning": REASONING, "content": "\\boxed{5}"}
    encoded = scorer.encode([sample_of(rec, 1, "t.jsonl")[0]])
    got = scorer.score(encoded.examples)[0]

    tok = scorer.tokenizer
    ex = render_example(tok, build_messages("What is 2+3?"), REASONING, "\\boxed{5}")
    model = AutoModelForCausalLM.from_pretrained(students[0], dtype=torch.float32).eval()
    logp, rows = _hand_logprobs(model, ex.input_ids, len(ex.prompt_ids))
    target_logits = rows.gather(1, torch.tensor(ex.completion_ids)[:, None])
    ranks = torch.clamp(1 + (rows > target_logits).sum(-1), max=100).double()
    surprisal = -logp.double()
    assert got["tokens"] == len(ex.completion_ids)
    assert got["rsr"] == pytest.approx(float(ranks.sum() / surprisal.sum()), rel=1e-4)
    assert got["mean_rank"] == pytest.approx(float(ranks.mean()), rel=1e-6)
    assert got["mean_surprisal"] == pytest.approx(float(surprisal.mean()), rel=1e-4)

    spans = _hand_steps(tok, ex.completion_ids)
    assert got["steps"] == len(spans) == 6  # <think>, three reasoning lines, </think>, the answer + turn end
    steps = []
    for k, (a, b) in enumerate(spans):  # window 1: the prompt and the one step before
        context = ex.prompt_ids + ex.completion_ids[spans[max(0, k - 1)][0]:a]
        ids = context + ex.completion_ids[a:b]
        steps.append(float(_hand_logprobs(model, ids, len(context))[0].double().mean()))
    assert got["local_naturalness"] == pytest.approx(sum(steps) / len(steps), rel=1e-4)


def test_only_trained_tokens_count(students):
    scorer = _scorer(students[0])
    short = {"messages": [{"role": "user", "content": "2+3?"}], "reasoning": REASONING, "content": "\\boxed{5}"}
    long = dict(short, messages=[{"role": "user", "content": "Please compute two plus three, step by step. " * 5}])
    encoded = scorer.encode([sample_of(short, 1, "t")[0], sample_of(long, 2, "t")[0]])
    a, b = scorer.score(encoded.examples)
    assert len(encoded.examples[0].prompt_ids) < len(encoded.examples[1].prompt_ids)
    # The same completion is scored: as many tokens whatever the prompt, and only those.
    assert a["tokens"] == b["tokens"] == len(encoded.examples[0].completion_ids)


def test_selection_is_deterministic_and_follows_the_rules():
    cands = [Scored(i, f"p{i % 3}", i // 3, tokens=10 + 10 * i, value=float((7 * i) % 5)) for i in range(12)]
    first = select(cands, per_problem=2, top_share=0.75, long_share=0.25, long_tokens=None)
    assert select(list(reversed(cands)), per_problem=2, top_share=0.75, long_share=0.25) == first
    per = select(cands, per_problem=2)
    for p in ("p0", "p1", "p2"):
        group = [c for c in cands if c.problem == p]
        kept = sorted(c.value for c in group if c.index not in per)
        assert kept == sorted(c.value for c in group)[-2:]  # the two best of each problem
    top = select(cands, top_share=0.5)
    assert len(top) == 6 and min(c.value for c in cands if c.index not in top) >= max(
        c.value for c in cands if c.index in top)
    mix = select(cands, long_share=0.25, long_tokens=60)  # 6 long (tokens > 60), 6 short: keep 2 long : 6 short
    kept = [c for c in cands if c.index not in mix]
    assert sum(c.tokens > 60 for c in kept) == 2 and sum(c.tokens <= 60 for c in kept) == 6
    assert set(mix.values()) == {"mix_ratio"}


def test_unscored_traces_sort_last_and_teachers_aggregate_as_the_reference():
    cands = [Scored(0, "p", 0, 5, None), Scored(1, "p", 1, 5, -9.0)]
    assert select(cands, per_problem=1) == {0: "less_learnable"}
    fields = [{"rsr": 3.0, "mean_rank": 6.0, "mean_surprisal": 2.0, "local_naturalness": -1.0, "tokens": 10},
              {"rsr": 1.0, "mean_rank": 2.0, "mean_surprisal": 2.0, "local_naturalness": -3.0, "tokens": 30}]
    agg = aggregate(fields)
    assert agg["rsr"] == pytest.approx(4.0 / 2.0)  # mean of mean ranks over mean of mean surprisals
    assert agg["local_naturalness"] == -2.0 and agg["mean_tokens"] == 20


def _three_per_problem(path: Path) -> Path:
    variants = [GOOD, GOOD.replace(". ", ".\nNext, "), "Let me think.\n" + GOOD.replace(", so", ".\nSo")]
    records = [trace(f"p{p}", s, reasoning=v) for p in range(3) for s, v in enumerate(variants)]
    return write_traces(path, records)


def test_filter_keeps_the_most_learnable_per_problem_and_writes_the_scores(students, tmp_path, monkeypatch):
    import distill.learnability.scorer as scorer

    _three_per_problem(tmp_path / "traces.jsonl")
    opts = ["dedup.near=false", "per_problem.max=1", "per_problem.policy=learnable", "learnability.enabled=true",
            f"learnability.student={students[0]}", "learnability.bf16=false"]
    loads = []
    monkeypatch.setattr(scorer, "load_tokenizer", lambda *a: loads.append(a) or load_tokenizer(*a))
    stats, kept, rejected = run_filter(tmp_path, opts)
    assert len(loads) == 1  # the readiness check's tokenizer is the one scoring uses
    assert len(kept) == 3 and stats["learnability"]["scored"] == 9
    for rec in kept:
        others = [r for r in rejected if r["id"] == rec["id"]]
        assert {r["verdict"]["reason"] for r in others} == {"less_learnable"}
        assert rec["learnability"]["rsr"] < min(r["learnability"]["rsr"] for r in others)
        assert rec["learnability"]["for"] == stats["learnability"]["key"]
    lines = card_lines(card_student(r) for r in kept)
    assert "learnability" in lines[2] and str(students[0]) in lines[2]
    again, kept_again, _ = run_filter(tmp_path, opts)  # the per-line cache: nothing is scored twice
    assert (again["learnability"]["scored"], again["learnability"]["reused"]) == (0, 9) and kept_again == kept

    # Re-filtering the kept file for the same student reuses its scores; for another student it is refused.
    write_traces(tmp_path / "again.jsonl", kept)
    stats2, kept2, _ = run_filter(tmp_path, opts, traces="again.jsonl", out="again/kept.jsonl")
    assert stats2["learnability"]["reused"] == 3 and stats2["learnability"]["scored"] == 0
    assert [r["learnability"] for r in kept2] == [r["learnability"] for r in kept]
    other = [o.replace(str(students[0]), str(students[1])) for o in opts]
    with pytest.raises(InputError, match="scored for student"):
        run_filter(tmp_path, other, traces="again.jsonl", out="other/kept.jsonl")


def test_filter_without_learnability_imports_no_torch(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace("p1", 0)])
    code = ("import sys; from filter_helpers import run_filter; from pathlib import Path; "
            f"run_filter(Path({str(tmp_path)!r}), ['workers=1']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "tests",
                         env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_rank_teachers_runs_end_to_end(students, tmp_path):
    a = write_traces(tmp_path / "a.jsonl", [trace(f"p{i}", 0) for i in range(3)])
    b = write_traces(tmp_path / "b.jsonl", [trace(f"p{i}", 0, reasoning=GOOD.replace(". ", ".\n") + "\nDone.")
                                            for i in range(4)])
    cmd = [sys.executable, "-m", "distill", "rank-teachers", f"student={students[0]}", f"traces={a},{b}",
           f"out={tmp_path / 'rank.json'}", "bf16=false", "progress=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "rank.json").read_text())
    assert report["problems"] == 3 and [f["overall"]["scored"] for f in report["files"]] == [3, 3]
    rsr = {f["file"]: f["overall"]["rsr"] for f in report["files"]}
    assert report["pick"]["overall"] == min(rsr, key=rsr.get)
    assert f"pick: {report['pick']['overall']}" in out.stdout and "a.jsonl" in out.stdout
    assert all(math.isfinite(v) for v in rsr.values())

    # A file scored for another student is refused, with its file and line.
    scored_b = [dict(r, learnability={"for": "0" * 16, "student": "someone-else"}) for r in read(b)]
    write_traces(tmp_path / "b2.jsonl", scored_b)
    cmd[5] = f"traces={a},{tmp_path / 'b2.jsonl'}"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2 and "b2.jsonl:1" in out.stderr and "scored for student 'someone-else'" in out.stderr


def test_dataset_card_names_the_student_the_scores_are_for():
    from distill.publish.cards import dataset_card

    row = {"id": "p", "sample": 0, "learnability": {"for": "k" * 16, "student": "smollm2",
                                                    "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "rsr": 2.0}}
    facts = {"teacher": {}, "usage": {}, "stats": {}}
    data = {"kind": "traces", "learnability_students": [card_student(row)]}
    card = dataset_card({**facts, "data": data}, "me/traces", "mit", 1, ["id", "sample", "learnability"], [])
    assert "computed for the student HuggingFaceTB/SmolLM2-135M-Instruct (scoring key kkkk" in card
    assert card_student({"id": "p"}) is None
    assert "## Learnability scores" not in dataset_card({**facts, "data": {"kind": "traces"}}, "me/t", "mit", 1,
                                                        ["id"], [])


def test_a_run_scores_for_its_own_student_rendered_as_finetune_trains(tmp_path):
    from distill.pipeline.config import load_pipeline
    from distill.pipeline.wiring import plan

    cfg = load_pipeline(None, ["student=tests-student", "filter.learnability.enabled=true", "filter.per_problem.max=2",
                               "filter.per_problem.policy=learnable", "filter.learnability.long_share=0.2",
                               "finetune.system_prompt=Be brief.", "finetune.max_length=300"])
    learn = next(s for s in plan(cfg, tmp_path) if s.name == "filter").cfg.learnability
    assert (learn.student, learn.system_prompt, learn.max_length, learn.long_share) == (
        "tests-student", "Be brief.", 300, 0.2)
    off = next(s for s in plan(load_pipeline(None, []), tmp_path) if s.name == "filter")
    assert not off.cfg.learnability.enabled and "student" not in off.inputs  # runs without it keep their keys


def test_local_naturalness_can_be_left_out_and_changes_the_key(students):
    from distill.learnability.scorer import Scorer

    rec = {"messages": [{"role": "user", "content": "2+3?"}], "reasoning": REASONING, "content": "\\boxed{5}"}
    full = _scorer(students[0])
    lean = Scorer.load(ScoringConfig(student=str(students[0]), window=1, bf16="false", local_naturalness=False))
    a = full.score(full.encode([sample_of(rec, 1, "t")[0]]).examples)[0]
    b = lean.score(lean.encode([sample_of(rec, 1, "t")[0]]).examples)[0]
    assert b["local_naturalness"] is None and b["rsr"] == pytest.approx(a["rsr"]) and lean.key != full.key


def test_a_run_recipe_scores_and_selects_in_its_filter_stage(students, tmp_path):
    import yaml

    from distill.cli import main
    from pipeline_fixtures import recipe_tree, write_offline_problems as write_problems

    train, held_out = write_problems(tmp_path, 6, 3)
    tree = recipe_tree(students[0], train, held_out, stages=["generate", "filter"])
    tree["generate"]["samples"] = 2
    tree["filter"].update(per_problem={"max": 1, "policy": "learnable"}, dedup={"near": False},
                          learnability={"enabled": True, "bf16": "false"})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tree))
    assert main(["run", str(tmp_path / "r.yaml"), f"run_dir={tmp_path / 'run'}"]) == 0
    kept = read(tmp_path / "run" / "kept.jsonl")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert kept and len({r["id"] for r in kept}) == len(kept)  # one per problem
    assert {r["learnability"]["student"] for r in kept} == {str(students[0])}
    assert stats["learnability"]["for"]["max_length"] == tree["finetune"]["max_length"]


def test_a_mix_with_one_kind_missing_is_not_applied():
    same = [Scored(i, f"p{i}", 0, 100, -float(i)) for i in range(5)]  # no trace is long (the median bound)
    notes: list[str] = []
    assert select(same, long_share=0.2, notes=notes) == {} and "no trace is long" in notes[0]
    assert select(same, long_share=0.2, long_tokens=500) == {}  # a bound above every trace
    assert select(same, long_share=0.0, long_tokens=50) == {}  # only long traces, none short to keep
    assert select(same, long_share=0.0, long_tokens=500) == {}  # all short: the mix keeps them all, no note
    notes.clear()
    select(same, long_share=1.0, long_tokens=500, notes=notes)
    assert "no trace is long" in notes[0]


def test_filter_with_equal_length_traces_keeps_them_and_notes_the_skipped_mix(students, tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace(f"p{i}", 0) for i in range(4)])
    opts = ["learnability.enabled=true", f"learnability.student={students[0]}", "learnability.bf16=false",
            "learnability.long_share=0.2"]
    stats, kept, _ = run_filter(tmp_path, opts)
    assert len(kept) == 4 and "no trace is long" in stats["learnability"]["mix_skipped"]


def test_a_selection_that_drops_every_trace_stops_the_filter(students, tmp_path, monkeypatch):
    import distill.learnability.filtering as filtering
    from distill.errors import DistillError

    write_traces(tmp_path / "traces.jsonl", [trace(f"p{i}", 0) for i in range(2)])
    monkeypatch.setattr(filtering, "select", lambda cands, *a, **k: {c.index: "below_top_share" for c in cands})
    opts = ["learnability.enabled=true", f"learnability.student={students[0]}", "learnability.bf16=false"]
    with pytest.raises(DistillError, match="dropped all 2 traces") as err:
        run_filter(tmp_path, opts)
    assert "\n" not in str(err.value) and not (tmp_path / "out" / "kept.jsonl").exists()


def test_the_key_covers_the_scoring_code_and_the_precision(students, monkeypatch):
    import distill.code_key as code_key

    fp32 = _scorer(students[0]).key
    from distill.learnability.scorer import Scorer

    bf16 = Scorer.load(ScoringConfig(student=str(students[0]), window=1, bf16="true"))
    assert bf16.key != fp32 and bf16.identity["precision"] == "bf16"
    read = code_key.read_file  # scores.py computes RSR and naturalness: another version, another key
    monkeypatch.setattr(code_key, "read_file", lambda p: read(p) + (b"#" if p.name == "scores.py" else b""))
    assert _scorer(students[0]).key != fp32


def test_a_bad_student_stops_the_filter_before_anything_is_measured(students, tmp_path, monkeypatch):
    import shutil

    import distill.filter.stage as stage
    from distill.errors import ConfigError

    write_traces(tmp_path / "traces.jsonl", [trace("p1", 0)])
    monkeypatch.setattr(stage, "measure_all", lambda *a: pytest.fail("measured (and judged) before the student"))
    with pytest.raises(InputError, match="no such student folder"):
        run_filter(tmp_path, ["learnability.enabled=true", f"learnability.student={tmp_path / 'typo'}"])
    empty = tmp_path / "no-weights"  # a folder that looks like a model but has no weights to key by
    shutil.copytree(students[0], empty, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    with pytest.raises(ConfigError, match="no weight files"):
        run_filter(tmp_path, ["learnability.enabled=true", f"learnability.student={empty}"])
