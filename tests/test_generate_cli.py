"""`distill generate` as a real subprocess: SIGKILL mid-run then resume, Ctrl-C, bad input exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from distill.artifacts import read_latest
from distill.records import read_jsonl
from distill.teacher.server import TeacherServer
from records_factory import write_problems

N = 40


def respond(messages, request):
    return "Step one. Step two.", "The answer is \\boxed{7}."


def command(tmp_path, srv, *extra):
    return [sys.executable, "-m", "distill", "generate", f"problems={tmp_path / 'p.jsonl'}",
            f"base_url={srv.base_url}", "model=test-teacher", f"out={tmp_path / 'traces.jsonl'}",
            "concurrency=4", "backoff_base=0.05", *extra]


def env():
    return dict(os.environ, DISTILL_PROGRESS="0")


def wait_for_lines(path, n, proc, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, "generate finished before it could be interrupted"
        time.sleep(0.02)
    raise AssertionError("no progress")


@pytest.mark.slow  # two CLI start-ups (the openai import alone is 1-3 s): ~8 s idle, more on a busy box
def test_sigkill_mid_run_then_resume_gives_one_good_record_per_pair(tmp_path):
    write_problems(tmp_path / "p.jsonl", N)
    out = tmp_path / "traces.jsonl"
    with TeacherServer(dialect="deepseek", responder=respond, latency=0.1) as srv:
        proc = subprocess.Popen(command(tmp_path, srv), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for_lines(out, 8, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        done_before = {r["id"] for _, r in read_jsonl(out)}
        assert 8 <= len(done_before) < N
        done = subprocess.run(command(tmp_path, srv), env=env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(out)
        prompts = Counter({p.split("\n")[0]: n for p, n in srv.stats.prompts.items()})
    good = good_traces(out)
    assert sorted(r["id"] for r in good) == sorted(f"q{i}" for i in range(N))
    assert all(r["error"] is None for _, r in read_jsonl(out))
    # A pair finished before the kill was never requested again (the server's own count) ...
    assert all(prompts[f"Question number {i[1:]}?"] == 1 for i in done_before)
    # ... and at most the 4 requests in flight at the kill were sent twice.
    assert sum(prompts.values()) <= N + 4


@pytest.mark.slow
def test_ctrl_c_stops_gracefully_and_resumes(tmp_path):
    write_problems(tmp_path / "p.jsonl", N)
    out = tmp_path / "traces.jsonl"
    with TeacherServer(dialect="deepseek", responder=respond, latency=0.1) as srv:
        proc = subprocess.Popen(command(tmp_path, srv), env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        wait_for_lines(out, 4, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130, stderr
        assert "Ctrl-C" in stderr and "Traceback" not in stderr
        received = srv.stats.ok
        written = [r for _, r in read_jsonl(out)]
        assert out.read_bytes().endswith(b"\n") and len(written) < N
        assert len(written) == received  # requests in flight were finished and written, not lost
        done = subprocess.run(command(tmp_path, srv), env=env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert srv.stats.requests == N  # nothing asked twice
    assert len(good_traces(out)) == N


def test_bad_input_exit_code_and_one_line_error(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "q2", '
                                      '"answer": "2"}\n')
    with TeacherServer(dialect="deepseek", responder=respond) as srv:
        res = subprocess.run(command(tmp_path, srv), env=env(), capture_output=True, text=True, timeout=60)
        assert srv.stats.requests == 0
    assert res.returncode == 2
    assert "p.jsonl:2 (field 'id'): duplicate id 'a'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "traces.jsonl").exists()


def good_traces(path):
    """What filter and finetune read: the last record of each pair, when it is not a failure."""
    return [rec for rec in read_latest(path).values() if not rec.get("error")]
