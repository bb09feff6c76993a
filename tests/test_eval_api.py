"""`distill eval backend=api` through the loopback teacher server: known accuracy, pass@k, resume, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from distill.config import load_config
from distill.errors import ConfigError, SamplesFailed
from distill.evaluate import run
from distill.evaluate.config import EvalConfig
from faulty_teacher import FaultyTeacher

RIGHT = {"q0", "q1", "q3"}  # the responder answers these correctly, the others wrong


def _problems(tmp_path, n=5):
    path = tmp_path / "problems.jsonl"
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "question": f"Problem q{i}: what is {i} + 10?",
                                "answer": str(i + 10), "kind": "math", "source": "even" if i % 2 == 0 else "odd"})
                    + "\n")
    return path


def knows_some(messages, request):
    text = messages[-1]["content"]
    pid = text.split(":")[0].split()[-1]
    value = int(pid[1:]) + 10 + (0 if pid in RIGHT else 1)
    return f"{pid} plus ten is {value}.", f"The answer is \\boxed{{{value}}}."


class HalfRight:
    """Per question, alternate right and wrong: k samples hold exactly k/2 right answers."""

    def __init__(self):
        self.seen = Counter()

    def __call__(self, messages, request):
        text = messages[-1]["content"]
        pid = text.split(":")[0].split()[-1]
        self.seen[pid] += 1
        value = int(pid[1:]) + 10 + self.seen[pid] % 2
        return "thinking", f"\\boxed{{{value}}}"


def _cfg(srv, tmp_path, *extra):
    return load_config(EvalConfig, None, [f"problems={_problems(tmp_path)}", "backend=api",
                                          f"api.base_url={srv.base_url}", "api.model=test-teacher",
                                          f"out={tmp_path / 'ev'}", "progress=false", "api.backoff_base=0.01",
                                          *extra])


def _report(tmp_path):
    return json.loads((tmp_path / "ev" / "report.json").read_text())


def test_api_accuracy_is_known_and_rerun_sends_nothing(tmp_path):
    with FaultyTeacher(dialect="deepseek", responder=knows_some) as srv:
        run(_cfg(srv, tmp_path))
        assert srv.stats.requests == 5
        m = _report(tmp_path)["metrics"]
        assert m["pass@1"] == pytest.approx(3 / 5) and m["answered"] == 1.0
        assert m["by_source"] == {"even": {"problems": 3, "pass@1": pytest.approx(1 / 3)},
                                  "odd": {"problems": 2, "pass@1": 1.0}}
        assert m["mean_reasoning_tokens"] > 0
        rec = json.loads((tmp_path / "ev" / "outputs.jsonl").read_text().splitlines()[0])
        assert rec["reasoning"].endswith("plus ten is " + rec["extracted"] + ".")
        run(_cfg(srv, tmp_path))
        assert srv.stats.requests == 5  # everything was done: nothing re-sent
        report = _report(tmp_path)
        assert report["model"] == {"backend": "api", "model": "test-teacher", "endpoint_host": "127.0.0.1"}


def test_pass_at_k_over_samples(tmp_path):
    with FaultyTeacher(dialect="think", responder=HalfRight()) as srv:
        run(_cfg(srv, tmp_path, "samples=4", "temperature=0.7"))
    m = _report(tmp_path)["metrics"]
    assert m["samples"] == 20
    assert m["pass@1"] == pytest.approx(0.5)
    assert m["pass@k"] == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(5 / 6), "pass@4": 1.0}


def test_failed_requests_are_recorded_then_retried(tmp_path):
    with FaultyTeacher(dialect="vllm", responder=knows_some) as srv:
        srv.add_fault("500", count=2)
        with pytest.raises(SamplesFailed, match=r"2 of 5 answers failed \(http_500 x2\)"):  # exit 5
            run(_cfg(srv, tmp_path, "api.max_attempts=1", "api.concurrency=1"))
        first = _report(tmp_path)["metrics"]
        assert first["errors"] == 2 and first["problems"] == 3
        run(_cfg(srv, tmp_path, "api.max_attempts=1", "api.concurrency=1"))
        assert srv.stats.requests == 7  # only the two failures were asked again
        m = _report(tmp_path)["metrics"]
        assert m["errors"] == 0 and m["problems"] == 5 and m["pass@1"] == pytest.approx(3 / 5)


def test_api_backend_refuses_an_adapter(tmp_path):
    with FaultyTeacher() as srv, pytest.raises(ConfigError, match="adapter"):
        run(_cfg(srv, tmp_path, f"adapter={tmp_path}"))


def test_cli_eval_against_the_loopback_server(tmp_path):
    with FaultyTeacher(dialect="openrouter", responder=knows_some) as srv:
        env = {**os.environ, "DISTILL_PROGRESS": "0"}
        proc = subprocess.run([sys.executable, "-m", "distill", "eval", f"problems={_problems(tmp_path)}",
                               "backend=api", f"api.base_url={srv.base_url}", "api.model=test-teacher",
                               f"out={tmp_path / 'ev'}"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ev")
    assert "pass@1" in proc.stderr and "60.0%" in proc.stderr
    assert _report(tmp_path)["metrics"]["pass@1"] == pytest.approx(0.6)


def test_the_api_backend_pulls_jobs_as_it_answers():
    """A fixed pool of workers, never a task per job: a million jobs are neither held nor queued on the limiter."""
    import asyncio

    from distill.decode.backends import ApiBackend, Job
    from distill.teacher.client import Completion

    pulled, most_tasks = [0], [0]

    class Instant:
        async def complete(self, messages, max_tokens, sample):
            await asyncio.sleep(0)
            most_tasks[0] = max(most_tasks[0], len(asyncio.all_tasks()))
            return Completion(reasoning="r", content="\\boxed{1}")

    def jobs():
        for i in range(400):
            pulled[0] += 1
            yield Job({"id": f"q{i}", "question": "?"}, 0, "?")

    cfg = load_config(EvalConfig, None, ["problems=x.jsonl", "backend=api", "api.concurrency=8"])
    answered = []
    ApiBackend(cfg, client=Instant()).run(jobs(), lambda job, answer: answered.append(pulled[0] - len(answered)))
    assert len(answered) == 400 and max(answered) <= 8 + 1  # jobs pulled ahead of the answers: the pool's size
    assert most_tasks[0] <= 8 + 1  # the workers and the loop's main task


def test_an_eval_report_is_one_pass_that_holds_no_answers(tmp_path):
    """The report reads outputs.jsonl a line at a time: ten times the answers, a small tally more per problem."""
    import tracemalloc

    from distill.estimates import summarise
    from distill.evaluate.stage import Answers

    def outputs(n):
        path = tmp_path / f"out{n}" / "outputs.jsonl"
        path.parent.mkdir()
        rows = [{"id": f"q{i // 4}", "sample": i % 4, "eval_key": "k", "correct": i % 3 == 0, "sound": i % 3 == 0,
                 "reasoning": "x" * 2000, "kind": "math", "source": "s"} for i in range(n)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    def peak(path):
        tracemalloc.start()
        try:
            metrics = summarise(Answers(path, "k").latest())
            return tracemalloc.get_traced_memory()[1], metrics
        finally:
            tracemalloc.stop()

    small, large = outputs(400), outputs(4000)
    peak(small)  # first-call imports are not answers
    (low, m_small), (high, m_large) = peak(small), peak(large)
    assert (m_small.samples, m_large.samples, m_large.problems) == (400, 4000, 1000)
    per_answer = (high - low) / 3600
    assert per_answer < 300, f"{per_answer:.0f} bytes an answer: answers are held again"  # one is over 2 KB
