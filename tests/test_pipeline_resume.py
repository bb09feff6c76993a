"""Killing `distill run` (SIGKILL) mid-generate and mid-finetune, then re-running, repeats no work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from distill.teacher.server import TeacherServer
from pipeline_fixtures import good_traces, states, write_offline_problems, write_recipe
from tiny_student import make_tiny_student

pytestmark = pytest.mark.slow  # each test runs `distill run` twice in subprocesses (~30 s)

ROOT = Path(__file__).resolve().parent.parent


def _start(recipe: Path, run_dir: Path, *overrides: str) -> subprocess.Popen:
    env = dict(os.environ, DISTILL_PROGRESS="0", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "distill", "run", str(recipe), f"run_dir={run_dir}", *overrides],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"distill run ended before the kill point (rc={proc.returncode}):\n{err[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the kill point was never reached")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def _finish(recipe: Path, run_dir: Path, *overrides: str) -> None:
    proc = _start(recipe, run_dir, *overrides)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]


@pytest.fixture()
def setup(tmp_path):
    train, held_out = write_offline_problems(tmp_path, n_train=16, n_eval=4)
    student = make_tiny_student(tmp_path / "student")
    return tmp_path, student, train, held_out


def test_kill_during_generate_then_rerun_requests_only_what_is_missing(setup):
    tmp_path, student, train, held_out = setup
    with TeacherServer(dialect="deepseek", latency=0.4, model="test-teacher", mistake_rate=0.2) as srv:
        recipe = write_recipe(tmp_path, student, train, held_out, base_url=srv.base_url,
                              generate={"concurrency": 2}, stages=["generate", "filter"])
        run_dir = tmp_path / "run"
        traces = run_dir / "traces.jsonl"
        proc = _start(recipe, run_dir)
        _wait_for(lambda: traces.exists() and len(good_traces(traces)) >= 5, proc)
        _kill(proc)
        done_before = set(good_traces(traces))
        first_requests = srv.stats.requests
        assert 5 <= len(done_before) < 16
        assert states(run_dir)["generate"]["status"] == "running"  # interrupted, not done

        srv.set_latency(0.0)
        _finish(recipe, run_dir)

    pairs = good_traces(traces)
    assert len(pairs) == len(set(pairs)) == 16  # exactly one good record per (id, sample)
    # The second run asked only for the samples the first had not written.
    assert srv.stats.requests - first_requests == 16 - len(done_before)
    assert first_requests <= len(done_before) + 2  # at most the requests in flight were lost
    by_prompt = Counter(srv.stats.prompts)
    assert max(by_prompt.values()) <= 2 and sum(by_prompt.values()) == srv.stats.requests
    state = states(run_dir)["generate"]
    assert state["status"] == "done" and state["attempts"] == 2
    kept = [json.loads(x) for x in (run_dir / "kept.jsonl").read_text().splitlines()]
    assert len({(k["id"], k["sample"]) for k in kept}) == len(kept)


def test_kill_during_finetune_then_rerun_resumes_without_duplicates(setup):
    tmp_path, student, train, held_out = setup
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.2) as srv:
        recipe = write_recipe(tmp_path, student, train, held_out, base_url=srv.base_url,
                              finetune={"max_steps": 40, "save_steps": 3, "batch_size": 1},
                              stages=["generate", "filter", "finetune"])
        run_dir = tmp_path / "run"
        checkpoints = run_dir / "adapter" / "checkpoints"
        proc = _start(recipe, run_dir)
        _wait_for(lambda: checkpoints.is_dir() and any(not p.name.startswith(".") for p in checkpoints.iterdir()),
                  proc, timeout=180)
        _kill(proc)
        requests = srv.stats.requests
        kept_before = (run_dir / "kept.jsonl").read_bytes()
        assert states(run_dir)["finetune"]["status"] == "running"

        _finish(recipe, run_dir)
        assert srv.stats.requests == requests  # generate was reused: no teacher request at all

    ledger = states(run_dir)
    assert ledger["generate"].get("reused_at") and ledger["filter"].get("reused_at")
    assert (run_dir / "kept.jsonl").read_bytes() == kept_before  # training data not rewritten or grown
    record = json.loads((run_dir / "adapter" / "distill.json").read_text())
    assert record["data"]["records"] == len(kept_before.splitlines())
    steps = [json.loads(x)["step"] for x in (run_dir / "adapter" / "loss.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps)), "a resumed run logged some steps twice"
    assert max(steps) == 40 and ledger["finetune"]["attempts"] == 2 and ledger["finetune"]["status"] == "done"
