"""mode=batch end to end: the CLI killed with SIGKILL mid-batch then resumed, `vllm run-batch` as a local
backend (a fake script of the same shape), and the pure request/result line helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from batch_server import BatchServer
from distill.artifacts import read_latest
from distill.config import load_config
from distill.errors import SamplesFailed
from distill.generate.batch_files import BatchRequest, completion_of, is_retryable, request_line, split_parts
from distill.generate.config import GenerateConfig
from distill.generate.stage import run
from distill.records import read_jsonl

N = 12


def respond(prompt):
    return "Step one.", "\\boxed{7}"


def write_problems(path: Path, n: int = N) -> None:
    path.write_text("".join(json.dumps({"id": f"q:{i}", "question": f"Question number {i}?", "answer": "7"}) + "\n"
                            for i in range(n)))


def wait_for(predicate, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    raise AssertionError("no progress")


def events(path: Path) -> list[str]:
    return [e["event"] for _, e in read_jsonl(path)] if path.exists() else []


@pytest.mark.slow  # two CLI start-ups
def test_sigkill_while_polling_then_resume_pays_each_request_once(tmp_path):
    write_problems(tmp_path / "p.jsonl")
    out, led = tmp_path / "traces.jsonl", tmp_path / "traces.batches.jsonl"
    with BatchServer(respond, polls=40) as srv:  # slow: the kill lands while batches are in progress
        cmd = [sys.executable, "-m", "distill", "generate", f"problems={tmp_path / 'p.jsonl'}", "mode=batch",
               f"base_url={srv.base_url}", "model=test-teacher", "api_key_env=null", f"out={out}",
               "batch.max_requests=5", "batch.poll_interval=0.02", "batch.poll_max=0.02"]
        env = dict(os.environ, DISTILL_PROGRESS="0")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: events(led).count("created") == 3 and srv.status_checks > 3, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert not out.exists() and len(srv.batches) == 3
        srv.polls = 1
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert len(srv.batches) == 3 and srv.uploads == 3  # nothing submitted twice ...
    assert sum(srv.answered.values()) == N and set(srv.answered.values()) == {1}  # ... nor paid twice
    assert sorted(k[0] for k in read_latest(out)) == sorted(f"q:{i}" for i in range(N))


FAKE_VLLM = textwrap.dedent('''
    """Stands in for `vllm run-batch -i IN -o OUT --model M`: same files, vLLM's output lines."""
    import json, sys, pathlib, time
    args = sys.argv[1:]
    src, dst, model = args[args.index("-i") + 1], args[args.index("-o") + 1], args[args.index("--model") + 1]
    home = pathlib.Path(dst).parent.parent
    with open(home / "runs.txt", "a") as runs:  # the files run side by side: append, never rewrite
        runs.write("x")
    while (home / "hold").exists():  # a slow run: busy until the test lets it go
        time.sleep(0.05)
    if "FAIL_FIRST" in model:
        try:
            open(home / "failed-once", "x").close()  # exactly one run (whichever is first) fails
            sys.exit("CUDA out of memory (pretend)")
        except FileExistsError:
            pass
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            req = json.loads(line)
            prompt = req["body"]["messages"][-1]["content"]
            if "number 2?" in prompt:
                row = {"id": "vllm-x", "custom_id": req["custom_id"], "error": "prompt too long",
                       "response": {"status_code": 400, "request_id": "vllm-x", "body": None}}
            else:
                body = {"id": "c", "object": "chat.completion", "model": req["body"]["model"],
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "reasoning": "Local thought.", "content": "\\\\boxed{7}"}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
                row = {"id": "vllm-x", "custom_id": req["custom_id"], "error": None,
                       "response": {"status_code": 200, "request_id": "vllm-x", "body": body}}
            out.write(json.dumps(row) + "\\n")
''')


@pytest.mark.parametrize("model", ["local-model", "local-FAIL_FIRST"])
def test_local_backend_runs_the_command_per_file(tmp_path, model):
    write_problems(tmp_path / "p.jsonl")
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    command = json.dumps([sys.executable, str(script), "-i", "{input}", "-o", "{output}", "--model", "{model}"])
    cfg = load_config(GenerateConfig, None, [
        f"problems={tmp_path / 'p.jsonl'}", f"model={model}", f"out={tmp_path / 'traces.jsonl'}", "mode=batch",
        "batch.backend=local", f"batch.command={command}", "batch.poll_interval=0.02", "batch.max_requests=5",
        "max_cost_usd=0", "progress=false"])  # own GPUs: free, so a zero cap still runs
    with pytest.raises(SamplesFailed, match="1 of"):
        run(cfg)
    latest = read_latest(cfg.out)
    assert latest[("q:2", 0)]["error"] == {"type": "http_400", "message": "prompt too long"}
    ok = [r for r in latest.values() if not r["error"]]
    assert len(ok) == N - 1 and all(r["reasoning"] == "Local thought." and r["cost_usd"] == 0 for r in ok)
    runs = len((tmp_path / "runs.txt").read_text())
    assert runs == (4 if "FAIL" in model else 3)  # three files; a failed run is run again
    assert not list((tmp_path / "traces.batches").glob("*.out.jsonl"))  # merged, then removed (no answer kept twice)
    assert len(list((tmp_path / "traces.batches").glob("*.in.jsonl"))) == (4 if "FAIL" in model else 3)


def test_a_local_run_left_by_a_killed_distill_is_adopted_not_started_again(tmp_path):
    write_problems(tmp_path / "p.jsonl")
    script, hold, runs = tmp_path / "fake_vllm.py", tmp_path / "hold", tmp_path / "runs.txt"
    script.write_text(FAKE_VLLM)
    hold.touch()
    command = json.dumps([sys.executable, str(script), "-i", "{input}", "-o", "{output}", "--model", "{model}"])
    args = [f"problems={tmp_path / 'p.jsonl'}", "model=local-model", f"out={tmp_path / 'traces.jsonl'}", "mode=batch",
            "batch.backend=local", f"batch.command={command}", "batch.poll_interval=0.02", "batch.poll_max=0.05",
            "progress=false"]
    proc = subprocess.Popen([sys.executable, "-m", "distill", "generate", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, DISTILL_PROGRESS="0"))
    wait_for(runs.exists, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert hold.exists()  # so the run distill started is still busy: the re-run finds it alive
    releaser = threading.Timer(1.0, hold.unlink)  # finishes while the re-run waits for it
    releaser.start()
    try:
        with pytest.raises(SamplesFailed, match="1 of"):  # the fake fails "number 2?"
            run(load_config(GenerateConfig, None, args))
    finally:
        releaser.cancel()
        hold.unlink(missing_ok=True)  # never leave the fake run spinning
    assert runs.read_text() == "x"  # was "xx": the killed run's file was started a second time
    assert len([r for r in read_latest(tmp_path / "traces.jsonl").values() if not r["error"]]) == N - 1


def test_custom_id_names_the_pair_and_survives_colons():
    req = BatchRequest("gsm8k:train:17", 3, 4096, True)
    assert BatchRequest.parse(req.custom_id) == req
    with pytest.raises(ValueError):
        BatchRequest.parse("request-1")


def test_request_line_merges_extra_body_and_drops_streaming():
    params = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9, "stream": True,
              "stream_options": {"include_usage": True}, "extra_body": {"chat_template_kwargs": {"x": 1}}}
    line = request_line(BatchRequest("p", 0, 9), params)
    assert line["body"] == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9,
                            "chat_template_kwargs": {"x": 1}}
    assert line["method"] == "POST" and line["url"] == "/v1/chat/completions" and line["custom_id"] == "0:9:s:p"


def test_split_parts_respects_both_limits():
    lines = [{"custom_id": str(i), "body": {"x": "y" * 50}} for i in range(10)]
    assert [len(p) for p in split_parts(lines, max_requests=4, max_bytes=10**6)] == [4, 4, 2]
    by_bytes = list(split_parts(lines, max_requests=100, max_bytes=200))
    assert all(sum(map(len, p)) <= 200 for p in by_bytes) and sum(map(len, by_bytes)) == 10
    with pytest.raises(ValueError, match="alone"):
        list(split_parts(lines, max_requests=100, max_bytes=20))


def test_result_lines_become_completions_or_errors():
    prices = {"input": 1.0, "cached_input": 1.0, "output": 1.0}
    body = {"model": "m", "choices": [{"finish_reason": "length", "message": {"content": "<think>r"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 90}}
    c = completion_of({"response": {"status_code": 200, "body": body}}, prices, [])
    assert (c.reasoning, c.content, c.truncated, c.error) == ("r", "", True, None) and c.cost_usd == 1e-4
    expired = completion_of({"response": None, "error": {"code": "batch_expired", "message": "late"}}, prices, [])
    assert expired.error == {"type": "batch_expired", "message": "late"} and is_retryable(expired.error)
    bad = completion_of({"response": {"status_code": 400, "body": {"error": {"message": "no"}}}}, prices, [])
    assert bad.error == {"type": "http_400", "message": "no"} and not is_retryable(bad.error)
    assert is_retryable(completion_of(None, prices, [], "batch_cancelled").error)
    empty = {"response": {"status_code": 200, "body": {"choices": [{"finish_reason": "stop", "message": {}}]}}}
    assert completion_of(empty, prices, []).error["type"] == "malformed"
