"""Failure is visible to scripts (issue #13 §4): samples left failed exit 5 with a last line saying
how many and why; endpoints that cannot work are refused before the first request; an empty
problems file is an error; eval against an endpoint that always fails writes no report and fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from distill.config import load_config
from distill.errors import ConfigError, InputError, SamplesFailed, TeacherFatalError
from distill.evaluate.config import EvalConfig
from distill.generate.config import GenerateConfig
from distill.generate.resume import scan_traces
from faulty_teacher import FaultyTeacher
from hostile_helpers import snapshot
from records_factory import write_problems

N = 3


def _gen(tmp_path, base_url, *overrides):
    return load_config(GenerateConfig, None, [
        f"problems={tmp_path / 'p.jsonl'}", f"base_url={base_url}", "model=m", f"out={tmp_path / 't.jsonl'}",
        "progress=false", "max_attempts=2", "backoff_base=0.01", "backoff_max=0.02", "concurrency=2",
        "request_timeout=1", *overrides])


@pytest.mark.parametrize("fault,kind", [
    ("500", "http_500"), ("503", "http_503"), ("429", "http_429"), ("400", "http_400"), ("drop", None),
    ("malformed", None), ("empty", None), ("stream_error", None), ("hang", None),
])
def test_every_failing_teacher_mode_leaves_samples_failed_and_says_so(tmp_path, fault, kind):
    from distill.generate import run

    write_problems(tmp_path / "p.jsonl", N)
    with FaultyTeacher(dialect="deepseek") as srv:
        srv.add_fault(fault, count=1000, retry_after=0)
        with pytest.raises(SamplesFailed, match=rf"{N} of {N} samples failed \((\w+) x{N}\)") as info:
            run(_gen(tmp_path, srv.base_url))
    if kind:
        assert f"({kind} x{N})" in str(info.value)
    assert SamplesFailed.exit_code == 5
    state = scan_traces(tmp_path / "t.jsonl")
    assert len(state.failed) == N and not state.done  # written with their error, retried next run


def test_unreachable_host_leaves_samples_failed(tmp_path):
    from distill.generate import run

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_problems(tmp_path / "p.jsonl", N)
    with pytest.raises(SamplesFailed, match=rf"{N} of {N} samples failed"):
        run(_gen(tmp_path, f"http://127.0.0.1:{port}/v1"))


@pytest.mark.parametrize("override,message", [
    ("base_url=htp//127.0.0.1:8000", "base_url must be an http(s):// URL"),
    ("base_url=not a url", "base_url must be an http(s):// URL"),
    ("base_url=http://127.0.0.1:99999/v1", "base_url must be an http(s):// URL"),
    ("request_timeout=-1", "request_timeout must be > 0, got -1"),
    ("request_timeout=0", "request_timeout must be > 0"),
])
def test_an_endpoint_that_cannot_work_is_refused_before_any_request(tmp_path, override, message):
    write_problems(tmp_path / "p.jsonl", N)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _gen(tmp_path, "http://127.0.0.1:1/v1", override)


def test_401_stays_exit_3(tmp_path):
    from distill.generate import run

    write_problems(tmp_path / "p.jsonl", N)
    with FaultyTeacher() as srv:
        srv.add_fault("401", count=1000)
        with pytest.raises(TeacherFatalError):
            run(_gen(tmp_path, srv.base_url))


def test_empty_problems_file_is_an_error_and_writes_nothing(tmp_path):
    from distill.generate import run

    (tmp_path / "p.jsonl").write_text("\n")
    before = snapshot(tmp_path)
    with FaultyTeacher() as srv:
        with pytest.raises(InputError, match="no problems") as info:
            run(_gen(tmp_path, srv.base_url))
        assert srv.stats.requests == 0
    assert info.value.field == "problems" and "p.jsonl" in str(info.value)
    assert snapshot(tmp_path) == before


def test_cli_exit_code_and_last_line_when_samples_fail(tmp_path):
    write_problems(tmp_path / "p.jsonl", N)
    with FaultyTeacher() as srv:
        srv.add_fault("500", count=1000)
        proc = subprocess.run([sys.executable, "-m", "distill", "generate", f"problems={tmp_path / 'p.jsonl'}",
                               f"base_url={srv.base_url}", "model=m", f"out={tmp_path / 't.jsonl'}", "max_attempts=1"],
                              capture_output=True, text=True, timeout=120, env=dict(os.environ, DISTILL_PROGRESS="0"))
    assert proc.returncode == 5, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("distill generate: error: 3 of 3 samples failed (http_500 x3)") and "re-run" in last
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def _eval_cfg(tmp_path, srv):
    (tmp_path / "e.jsonl").write_text("".join(json.dumps({"id": f"e{i}", "question": f"{i}+1?", "answer": str(i + 1)})
                                              + "\n" for i in range(4)))
    return load_config(EvalConfig, None, [f"problems={tmp_path / 'e.jsonl'}", "backend=api",
                                          f"api.base_url={srv.base_url}", "api.model=m", "api.max_attempts=1",
                                          f"out={tmp_path / 'ev'}", "progress=false"])


def test_eval_api_against_an_always_failing_endpoint_fails_without_a_report(tmp_path):
    from distill.evaluate import run

    with FaultyTeacher() as srv:
        srv.add_fault("500", count=1000)
        with pytest.raises(SamplesFailed, match=r"all 4 answers failed \(http_500 x4\); no report written"):
            run(_eval_cfg(tmp_path, srv))
    assert not (tmp_path / "ev" / "report.json").exists()


def test_eval_api_401_is_one_line_without_task_noise(tmp_path):
    (tmp_path / "e.jsonl").write_text("".join(json.dumps({"id": f"e{i}", "question": f"{i}+1?", "answer": "1"}) + "\n"
                                              for i in range(8)))
    with FaultyTeacher(latency=0.05) as srv:
        srv.add_fault("401", count=1000)
        proc = subprocess.run([sys.executable, "-m", "distill", "eval", f"problems={tmp_path / 'e.jsonl'}",
                               "backend=api", f"api.base_url={srv.base_url}", "api.model=m", "api.concurrency=8",
                               f"out={tmp_path / 'ev'}"], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, DISTILL_PROGRESS="0"))
    assert proc.returncode == 3, proc.stderr
    assert "Task exception was never retrieved" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("distill eval: error: teacher at")
