"""The STaR loop in `distill run` on the tiny student: two rounds end to end, per-round folders and loop.json,
reuse on a re-run, and bad loop settings failing before anything is sent."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.config import load_config
from distill.errors import ConfigError
from distill.pipeline.config import PipelineConfig
from distill.teacher.server import TeacherServer
from pipeline_fixtures import recipe_tree, states, write_offline_problems, write_recipe
from tiny_student import make_tiny_student

N_TRAIN, N_EVAL = 8, 4
LOOP = {"rounds": 2, "generator": "student", "patience": 2, "max_new_tokens": 24}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    train, held_out = write_offline_problems(folder, N_TRAIN, N_EVAL)
    return {"student": make_tiny_student(folder / "student"), "train": train, "eval": held_out}


def _run(recipe, run_dir, *overrides) -> int:
    return main(["run", str(recipe), f"run_dir={run_dir}", *overrides])


def test_two_rounds_end_to_end_then_reused(tmp_path, assets):
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.25, seed=1) as teacher:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"],
                              base_url=teacher.base_url, loop=LOOP,
                              generate={"samples": 1, "rationalize": True}, eval_before=False)
        run_dir = tmp_path / "run"
        assert _run(recipe, run_dir) == 0
        teacher_requests = teacher.stats.requests
        round2 = run_dir / "round-2"
        for name in ("traces.jsonl", "kept.jsonl", "train.jsonl", "adapter/adapter_model.safetensors",
                     "eval-after/report.json"):
            assert (round2 / name).exists(), name
        traces = [json.loads(line) for line in (round2 / "traces.jsonl").read_text().splitlines()]
        assert traces and all(t["model"] == "student-round-1" for t in traces)
        # the round-2 training set is the union: every round-1 kept trace is in it, tagged with its round
        union = [json.loads(line) for line in (round2 / "train.jsonl").read_text().splitlines()]
        kept1 = (run_dir / "kept.jsonl").read_text().splitlines()
        assert sum(1 for r in union if r["round"] == 1) == len(kept1) > 0
        summary = json.loads((run_dir / "loop.json").read_text())
        assert [row["round"] for row in summary["rounds"]] == [1, 2]
        assert all(0 <= row["accuracy"] <= 1 and row["low"] <= row["accuracy"] <= row["high"]
                   for row in summary["rounds"])
        assert summary["best_round"] in (1, 2) and summary["adapter"]
        report = (run_dir / "report.md").read_text()
        assert "## Rounds" in report and "fresh LoRA from the base model (restart=base)" in report
        # restart=base (the default): round 2 is a fresh LoRA, not round 1's adapter continued
        assert json.loads((round2 / "adapter" / "distill.json").read_text())["init_adapter"] is None
        first = states(round2)
        assert set(first) == {"generate", "filter", "finetune", "eval-after"}

        # Same command again: every step of both rounds is reused; the teacher hears nothing new.
        assert _run(recipe, run_dir) == 0
        assert teacher.stats.requests == teacher_requests
        second = states(round2)
        assert all(second[n]["finished_at"] == first[n]["finished_at"] and second[n].get("reused_at")
                   for n in first)


@pytest.mark.parametrize("loop, says", [
    ({"rounds": 0}, "loop.rounds must be >= 1"),
    ({"round": 2}, "loop.round"),
    ({"rounds": 2, "patience": 0}, "loop.patience must be >= 1"),
    ({"rounds": 2, "restart": "resume"}, "restart"),
    ({"rounds": 2, "temperature": 0}, "loop.temperature must be > 0"),
])
def test_bad_loop_settings_fail_before_anything_is_sent(tmp_path, assets, loop, says):
    tree = recipe_tree(assets["student"], assets["train"], assets["eval"], base_url="http://127.0.0.1:9/v1",
                       loop=loop)
    with pytest.raises(ConfigError, match=says):
        load_config(PipelineConfig, None, [f"{k}={json.dumps(v)}" for k, v in _flat(tree)])


def test_a_loop_needs_every_stage_and_a_student(tmp_path, assets):
    tree = recipe_tree(assets["student"], assets["train"], assets["eval"], loop={"rounds": 2},
                       stages=["generate", "filter", "finetune"])
    with pytest.raises(ConfigError, match="stages must include eval"):
        load_config(PipelineConfig, None, [f"{k}={json.dumps(v)}" for k, v in _flat(tree)])
    tree = recipe_tree(assets["student"], assets["train"], assets["eval"], loop={"rounds": 2},
                       finetune={"student": ""})
    tree.pop("student")
    with pytest.raises(ConfigError, match="loop.generator=student: no student"):
        load_config(PipelineConfig, None, [f"{k}={json.dumps(v)}" for k, v in _flat(tree)])


def _flat(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@pytest.mark.slow  # two `distill run` subprocesses (~20 s)
@pytest.mark.parametrize("restart", ["base", "continue"])
def test_kill_mid_round_two_then_rerun_repeats_nothing_finished(tmp_path, assets, restart):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, DISTILL_PROGRESS="0", PYTHONPATH=str(root))
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.25, seed=1) as teacher:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"],
                              base_url=teacher.base_url, loop={**LOOP, "restart": restart}, eval_before=False,
                              finetune={"max_steps": 40, "save_steps": 3, "batch_size": 1})
        run_dir = tmp_path / "run"
        cmd = [sys.executable, "-m", "distill", "run", str(recipe), f"run_dir={run_dir}"]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        checkpoints = run_dir / "round-2" / "adapter" / "checkpoints"
        deadline = time.time() + 240
        while not (checkpoints.is_dir() and any(not p.name.startswith(".") for p in checkpoints.iterdir())):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "round 2's training never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        requests = teacher.stats.requests
        student_traces = (run_dir / "round-2" / "traces.jsonl").read_bytes()
        before = states(run_dir / "round-2")
        assert before["generate"]["status"] == "done" and before["finetune"]["status"] == "running"

        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert teacher.stats.requests == requests  # round 1's generate reused: no teacher request
    after = states(run_dir / "round-2")
    assert after["generate"]["finished_at"] == before["generate"]["finished_at"]
    assert after["filter"]["finished_at"] == before["filter"]["finished_at"]
    assert (run_dir / "round-2" / "traces.jsonl").read_bytes() == student_traces  # the student was not asked again
    steps = [json.loads(x)["step"] for x in (run_dir / "round-2" / "adapter" / "loss.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)) and max(steps) == 40  # training resumed, no step twice
    assert json.loads((run_dir / "loop.json").read_text())["best_round"] in (1, 2)
    started = json.loads((run_dir / "round-2" / "adapter" / "distill.json").read_text())["init_adapter"]
    assert (started or {}).get("path") == (str(run_dir / "adapter") if restart == "continue" else None)
    for name, state in states(run_dir).items():
        assert state.get("reused_at"), name  # round 1 untouched


@pytest.mark.parametrize("scores, patience, stops", [
    ([0.2, 0.3], 1, False),        # rose: go on
    ([0.3, 0.3], 1, True),         # equal is not a rise
    ([0.3, 0.2], 1, True),
    ([0.3, 0.2], 2, False),        # one flat round allowed
    ([0.3, 0.2, 0.25], 2, True),
    ([0.1, 0.4, 0.2], 2, False),   # best was round 2, one round ago
])
def test_patience_stops_when_held_out_accuracy_has_not_risen(tmp_path, scores, patience, stops):
    from distill.artifacts import EvalReport, LoopSummary
    from distill.layout import RunLayout
    from distill.pipeline.loop import _should_stop, write_summary

    layout = RunLayout(tmp_path)
    for number, score in enumerate(scores, 1):
        rl = layout.round(number)
        rl.eval_after.folder.mkdir(parents=True)
        EvalReport(eval_key="k", model={}, settings={}, run={}, created_at="t",
                   metrics={"pass@1": score, "pass@1_interval": {"low": 0.0, "high": 1.0}}).write(rl.eval_after.report)
        rl.traces.write_text("")
    assert _should_stop(layout, len(scores), patience) is stops
    best = LoopSummary.read(write_summary(layout, len(scores))).best_round
    assert best == scores.index(max(scores)) + 1  # the earliest round with the best accuracy
