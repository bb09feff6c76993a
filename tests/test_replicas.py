"""One generate run across several teacher replicas: least busy first, limits per replica, a failing replica
taken out, probed after its cooldown and put back; the routing rules themselves on a fake clock."""

from __future__ import annotations

import asyncio
import json

import pytest

from distill.artifacts import read_latest
from distill.config import load_config
from distill.generate.config import GenerateConfig
from distill.generate.stage import run
from distill.records import read_jsonl
from distill.teacher.replicas import Replicas
from distill.teacher.server import TeacherServer
from faulty_teacher import FaultyTeacher

N = 40


def respond(messages, request):
    return "Step one.", "The answer is \\boxed{7}."


def generate(tmp_path, urls, *extra):
    (tmp_path / "p.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "question": f"Question number {i}?", "answer": "7"}) + "\n" for i in range(N)))
    cfg = load_config(GenerateConfig, None, [
        f"problems={tmp_path / 'p.jsonl'}", f"base_url=[{', '.join(urls)}]", "model=test-teacher",
        "api_key_env=null", f"out={tmp_path / 'traces.jsonl'}", "concurrency=8", "backoff_base=0.05",
        "max_attempts=3", "progress=false", *extra])
    return run(cfg)


def test_a_failing_replica_is_taken_out_and_the_others_carry_the_run(tmp_path):
    with TeacherServer(dialect="vllm", responder=respond, latency=0.03) as a, \
            TeacherServer(dialect="sglang", responder=respond, latency=0.03) as b, \
            TeacherServer(dialect="vllm", responder=respond, latency=0.03) as c, \
            FaultyTeacher(dialect="vllm", responder=respond) as bad:
        bad.add_fault("500", count=10**6)
        out = generate(tmp_path, [a.base_url, b.base_url, bad.base_url, c.base_url], "replica_failures=2",
                       "replica_cooldown=600", "replica_concurrency=2")
        served = [s.stats.requests for s in (a, b, c)]
        peaks = [s.stats.max_in_flight for s in (a, b, c)]
        bad_requests = bad.stats.requests
    records = [r for _, r in read_jsonl(out)]
    assert len(records) == N and all(r["error"] is None for r in records)  # one traces file, every pair good
    assert len(read_latest(out)) == N
    assert bad_requests <= 4  # the failures that tripped it (two, plus what was in flight then), then nothing
    assert sum(served) == N and min(served) >= 8  # least busy first: the three share the work
    assert max(peaks) <= 2  # replica_concurrency


def test_a_replica_that_recovers_is_put_back_after_its_cooldown(tmp_path):
    with TeacherServer(dialect="vllm", responder=respond, latency=0.05) as good, \
            FaultyTeacher(dialect="vllm", responder=respond, latency=0.05) as flaky:
        flaky.add_fault("drop", count=2)  # cut mid-body twice, then well again
        out = generate(tmp_path, [flaky.base_url, good.base_url], "replica_failures=2", "replica_cooldown=0.2",
                       "concurrency=2", "replica_concurrency=1")
        recovered = flaky.stats.ok
    assert all(r["error"] is None for _, r in read_jsonl(out)) and len(read_latest(out)) == N
    assert recovered >= 5  # back in rotation after 0.2 s, sharing the rest of the run


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


async def _fail(replicas, exc, avoid=None):
    avoid = set() if avoid is None else avoid
    with pytest.raises(type(exc)):
        async with replicas.use(avoid) as index:
            raise exc
    return index


def test_routing_rules_on_a_fake_clock():
    async def scenario():
        clock = Clock()
        replicas = Replicas(["a", "b", "c"], per_replica=2, failures=2, cooldown=10.0, clock=clock)
        assert await _fail(replicas, ValueError("bad request")) is not None  # the request's fault: not counted
        assert all(r.streak == 0 for r in replicas.replicas)
        avoid: set[int] = set()
        first = await _fail(replicas, ConnectionError("refused"), avoid)
        assert avoid == {first} and replicas.pick(avoid) != first  # the sample's retry goes elsewhere
        replicas.replicas[first].streak = 1
        await _fail(replicas, ConnectionError("refused"), {0, 1, 2} - {first})  # the only choice left: first
        assert replicas.replicas[first].out_until == 110.0
        assert all(replicas.pick() != first for _ in range(6)) and replicas.has_other({first})
        clock.now = 111.0  # cooldown over: one probe at a time
        async with replicas.use({0, 1, 2} - {first}) as probe:
            assert probe == first and replicas.pick({0, 1, 2} - {first}) != first
        assert replicas.replicas[first].streak == 0 and replicas.replicas[first].trips == 1
        held = [replicas.use(set()) for _ in range(6)]  # per_replica=2: six places, then none
        for cm in held:
            await cm.__aenter__()
        assert replicas.pick() is None
        for cm in held:
            await cm.__aexit__(None, None, None)
        assert replicas.summary()[first]["taken_out"] == 1

    asyncio.run(scenario())


def test_a_replica_failing_again_stays_out_twice_as_long():
    async def scenario():
        clock = Clock()
        replicas = Replicas(["a", "b"], failures=1, cooldown=10.0, clock=clock)
        await _fail(replicas, ConnectionError("x"), {1})
        assert replicas.replicas[0].out_until == 110.0
        clock.now = 111.0
        await _fail(replicas, TimeoutError("probe"), {1})
        assert replicas.replicas[0].out_until == 131.0

    asyncio.run(scenario())


def test_a_single_url_is_never_taken_out():
    async def scenario():
        replicas = Replicas(["only"], failures=1, cooldown=10.0, clock=Clock())
        for _ in range(3):
            await _fail(replicas, ConnectionError("x"))
        assert replicas.pick() == 0

    asyncio.run(scenario())
