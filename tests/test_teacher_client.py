"""TeacherClient against the loopback teacher server: every dialect, every fault, limits, replicas."""

from __future__ import annotations

import asyncio
import time

import pytest

from distill.errors import TeacherFatalError
from distill.teacher.client import TeacherClient
from distill.teacher.config import TeacherConfig
from faulty_teacher import FaultyTeacher

REASONING = "First add 2 and 3. That gives 5."
CONTENT = "The answer is \\boxed{5}."
MESSAGES = [{"role": "user", "content": "What is 2+3?"}]


def respond(messages, request):
    return REASONING, CONTENT


def make_client(srv, **kw) -> TeacherClient:
    opts = dict(model="test-teacher", base_url=srv.base_url, backoff_base=0.02, backoff_max=0.2,
                request_timeout=5.0)
    opts.update(kw)
    return TeacherClient(TeacherConfig(**opts))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("dialect", ["deepseek", "sglang", "vllm", "together", "ollama", "openrouter", "think",
                                     "think_open", "hidden"])
def test_every_dialect_is_captured(dialect, stream):
    with FaultyTeacher(dialect=dialect, responder=respond) as srv:
        c = make_client(srv, stream=stream).complete_many([MESSAGES])[0]
    assert c.error is None and c.content == CONTENT and c.finish_reason == "stop" and not c.truncated
    assert c.reasoning == (None if dialect == "hidden" else REASONING)
    assert c.usage["completion_tokens"] > 0 and c.usage["reasoning_tokens"] > 0  # hidden: count only
    assert c.attempts == 1 and c.model == "test-teacher"


FAULTS = ["429", "500", "503", "drop", "malformed", "hang", "empty", "stream_error", "slow_stream"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_is_survived(fault, stream):
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault(fault, count=2, retry_after=0.1, gap=1.5, interval=0.2)
        # slow_stream: 1.5 s of keep-alives against a 1 s read timeout must not fail the request
        client = make_client(srv, stream=stream, request_timeout=1.0)
        results = client.complete_many([MESSAGES, MESSAGES])
        requests = srv.stats.requests
    assert [r.content for r in results] == [CONTENT, CONTENT]
    assert all(r.reasoning == REASONING and r.error is None for r in results)
    expected = 2 if fault == "slow_stream" else 4  # each faulted request retried once
    assert requests == expected
    if fault != "slow_stream":
        assert sum(r.attempts for r in results) == 4


def test_truncation_is_flagged_not_retried():
    with FaultyTeacher(dialect="vllm", responder=respond) as srv:
        srv.add_fault("truncate", count=1)
        c = make_client(srv).complete_many([MESSAGES])[0]
        assert srv.stats.requests == 1
    assert c.truncated and c.finish_reason == "length" and c.error is None


def test_exhausted_attempts_give_an_error_record_not_an_exception():
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault("500", count=10)
        c = make_client(srv, max_attempts=3).complete_many([MESSAGES])[0]
        assert srv.stats.requests == 3
    assert c.error["type"] == "http_500" and c.attempts == 3 and c.content is None


def test_bad_request_is_not_retried():
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault("400", count=1)
        c = make_client(srv).complete_many([MESSAGES])[0]
        assert srv.stats.requests == 1
    assert c.error["type"] == "http_400"


@pytest.mark.parametrize("fault", ["401", "402", "quota"])
def test_auth_and_balance_stop_with_a_clean_message(fault, monkeypatch):
    secret = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("DISTILL_TEST_KEY", secret)
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault(fault, count=5)
        client = make_client(srv, api_key_env="DISTILL_TEST_KEY")
        with pytest.raises(TeacherFatalError) as info:
            client.complete_many([MESSAGES])
        assert srv.stats.requests == 1  # not retried
    assert secret not in str(info.value)
    if fault == "401":
        assert "DISTILL_TEST_KEY" in str(info.value)  # says where the key comes from, not what it is


def test_key_is_scrubbed_from_text(monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_KEY", "sk-live-abcdefghijklmnop1234")
    client = TeacherClient(TeacherConfig(model="m", base_url="https://api.example.com/v1",
                                         api_key_env="DISTILL_TEST_KEY"))
    assert "abcdefghijklmnop" not in client.scrub("bad key sk-live-abcdefghijklmnop1234 given")
    assert "zzzzzzzzzzzzzzzz" not in client.scrub("Incorrect API key provided: sk-proj-zzzzzzzzzzzzzzzz")


def test_missing_key_for_a_remote_endpoint_is_a_config_error(monkeypatch):
    from distill.errors import ConfigError
    monkeypatch.delenv("DISTILL_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="DISTILL_NO_SUCH_KEY"):
        TeacherClient(TeacherConfig(model="m", base_url="https://api.example.com/v1", api_key_env="DISTILL_NO_SUCH_KEY"))


def test_concurrency_cap_is_never_exceeded():
    with FaultyTeacher(dialect="deepseek", responder=respond, latency=0.05) as srv:
        results = make_client(srv, concurrency=5).complete_many([MESSAGES] * 40)
        peak = srv.stats.max_in_flight
    assert all(r.ok for r in results)
    assert peak == 5  # reached, never passed (the server's own count)


@pytest.mark.parametrize("fault,status", [("429", 429), ("503", 503)])
def test_the_client_waits_as_long_as_retry_after_says(fault, status):
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault(fault, count=1, retry_after=0.8)
        client = make_client(srv)  # its own backoff is 0.02-0.2 s: only the header can make it wait 0.8 s
        started = time.monotonic()
        result = client.complete_many([MESSAGES])[0]
        waited = time.monotonic() - started
        statuses = dict(srv.stats.by_status)
    assert result.ok and result.attempts == 2 and statuses == {status: 1, 200: 1}
    assert 0.8 <= waited < 10, waited


def test_adaptive_concurrency_backs_off_on_429():
    with FaultyTeacher(dialect="deepseek", responder=respond, latency=0.02) as srv:
        srv.add_fault("429", count=3, retry_after=0.05)
        client = make_client(srv, concurrency=16)
        results = client.complete_many([MESSAGES] * 8)
    assert all(r.ok for r in results)
    assert client.limiter.limit < 16


def test_rate_limits_are_learnt_from_headers():
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.set_ratelimit_headers(requests=120, tokens=100000)
        client = make_client(srv)
        assert all(r.ok for r in client.complete_many([MESSAGES] * 3))
    assert client.limiter.requests.rate == pytest.approx(2.0)
    assert client.limiter.tokens.rate == pytest.approx(100000 / 60)


def test_rpm_paces_requests():
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        client = make_client(srv, rpm=600)  # 10/s after a 6 s burst (60)
        client.limiter.requests.take(client.limiter.requests.capacity)  # burst used up
        import time
        start = time.monotonic()
        client.complete_many([MESSAGES] * 5)
        assert time.monotonic() - start >= 0.4


def test_replicas_share_the_load():
    with FaultyTeacher(dialect="deepseek", responder=respond, latency=0.02) as a, \
            FaultyTeacher(dialect="vllm", responder=respond, latency=0.02) as b:
        client = make_client(a, base_url=[a.base_url, b.base_url], concurrency=8)
        results = client.complete_many([MESSAGES] * 20)
        counts = (a.stats.requests, b.stats.requests)
    assert all(r.ok and r.reasoning == REASONING for r in results)
    assert sum(counts) == 20 and min(counts) >= 6


def test_what_is_sent_extra_body_and_no_reasoning_back():
    history = [{"role": "user", "content": "q1"},
               {"role": "assistant", "content": "a1", "reasoning_content": "secret thoughts"},
               {"role": "user", "content": "What is 2+3?"}]
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        client = make_client(srv, extra_body={"thinking": {"type": "enabled"}}, provider="deepseek")
        client.complete_many([history], max_tokens=777)
        body = srv.stats.bodies[0]
    assert body["thinking"] == {"type": "enabled"} and body["max_tokens"] == 777
    assert "temperature" not in body and "top_p" not in body  # DeepSeek thinking mode ignores them
    assert all("reasoning_content" not in m for m in body["messages"])


def test_client_works_across_event_loops():
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        client = make_client(srv)

        async def twice():
            first = await client.complete(MESSAGES)
            await client.aclose()
            return first

        assert asyncio.run(twice()).ok
        assert client.complete_many([MESSAGES])[0].ok  # a new loop: pools rebuilt


def test_openai_reasoning_models_get_max_completion_tokens_and_no_temperature():
    with FaultyTeacher(dialect="openai", responder=respond, model="o3-mini") as srv:
        c = make_client(srv, model="o3-mini", provider="openai").complete_many([MESSAGES], max_tokens=900)[0]
        body = srv.stats.bodies[0]
    assert body["max_completion_tokens"] == 900 and "max_tokens" not in body
    assert "temperature" not in body and "top_p" not in body
    assert c.ok and c.reasoning is None and c.usage["reasoning_tokens"] > 0  # hidden: the count only
