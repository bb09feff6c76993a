"""The loopback teacher server, checked through the real openai SDK: dialects, faults, counters.

Usage:
    .venv/bin/python -m pytest tests/test_teacher_server.py -q
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx2 as httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from distill.errors import ConfigError
from distill.teacher.server import TeacherServer
from faulty_teacher import FaultyTeacher

QUESTION = "Describe the zebra xyzzy plover in one word"  # unknown to the offline teacher
MESSAGES = [{"role": "user", "content": QUESTION}]
RAW_FIELDS = {
    "deepseek": {"reasoning_content"}, "sglang": {"reasoning_content"}, "vllm": {"reasoning"},
    "together": {"reasoning"}, "ollama": {"reasoning"}, "openrouter": {"reasoning", "reasoning_details"},
    "think": set(), "think_open": set(), "hidden": set(),
}


@pytest.fixture(scope="module")
def server():
    with FaultyTeacher(dialect="deepseek", model="test-teacher") as srv:
        yield srv


@pytest.fixture()
def srv(server):
    server.clear_faults()
    server.set_latency(0.0)
    server.set_dialect("deepseek")
    server.set_ratelimit_headers(None)
    server.stats.reset()
    yield server
    server.clear_faults()


def client(srv, timeout: float = 30.0) -> OpenAI:
    return OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0,
                  timeout=httpx.Timeout(timeout, connect=2.0))


def ask(srv, **kw):
    return client(srv, kw.pop("timeout", 30.0)).chat.completions.create(model="test-teacher", messages=MESSAGES, **kw)


def collect_stream(srv, **kw) -> tuple[list, dict, str]:
    """Streamed chunks, the concatenated raw reasoning fields, and the content."""
    chunks = list(ask(srv, stream=True, **kw))
    extra: dict = {}
    content = ""
    for chunk in chunks:
        for choice in chunk.choices:
            for key, value in (choice.delta.model_extra or {}).items():
                if isinstance(value, str):
                    extra[key] = extra.get(key, "") + value
            content += choice.delta.content or ""
    return chunks, extra, content


# ---------------------------------------------------------------- dialects


@pytest.mark.parametrize("dialect", sorted(RAW_FIELDS))
def test_dialect_non_streaming_fields(srv, dialect):
    srv.set_dialect(dialect)
    resp = ask(srv)
    msg = resp.choices[0].message
    extra = {k for k, v in (msg.model_extra or {}).items() if v is not None}
    assert extra == RAW_FIELDS[dialect]
    assert resp.usage.completion_tokens_details.reasoning_tokens > 0
    assert resp.usage.prompt_tokens > 0 and resp.usage.prompt_tokens_details.cached_tokens == 0
    assert resp.choices[0].finish_reason == "stop"
    if dialect == "think":
        assert msg.content.startswith("<think>\n") and "</think>" in msg.content
    elif dialect == "think_open":
        assert "<think>" not in msg.content and "</think>" in msg.content
    else:
        assert "<think>" not in msg.content and msg.content.endswith("\\boxed{42}.")
    if RAW_FIELDS[dialect]:
        reasoning = msg.model_extra["reasoning_content" if "reasoning_content" in extra else "reasoning"]
        assert QUESTION in reasoning
    if dialect == "openrouter":
        assert msg.model_extra["reasoning_details"][0]["type"] == "reasoning.text"


@pytest.mark.parametrize("dialect", sorted(RAW_FIELDS))
def test_dialect_streaming_matches_non_streaming(srv, dialect):
    srv.set_dialect(dialect)
    whole = ask(srv).choices[0].message
    chunks, extra, content = collect_stream(srv, stream_options={"include_usage": True})
    assert content == whole.content
    for key in RAW_FIELDS[dialect] - {"reasoning_details"}:
        assert extra[key] == whole.model_extra[key]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert len(chunks) > (3 if dialect == "hidden" else 4)  # really streamed in pieces


def test_openrouter_stream_sends_processing_comments(srv):
    srv.set_dialect("openrouter")
    with httpx.Client() as http:
        with http.stream("POST", srv.base_url + "/chat/completions",
                         json={"model": "m", "messages": MESSAGES, "stream": True}) as resp:
            text = "".join(resp.iter_text())
    assert text.startswith(": OPENROUTER PROCESSING\n\n")
    assert text.rstrip().endswith("data: [DONE]")


def test_async_client_and_models_list(srv):
    async def main():
        async with AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as aclient:
            models = await aclient.models.list()
            resp = await aclient.chat.completions.create(model="test-teacher", messages=MESSAGES)
            return [m.id for m in models.data], resp

    ids, resp = asyncio.run(main())
    assert ids == ["test-teacher"] and resp.model == "test-teacher"
    assert resp.choices[0].message.model_extra["reasoning_content"]


def test_max_tokens_cuts_like_a_real_provider(srv):
    resp = ask(srv, max_tokens=5)
    assert resp.choices[0].finish_reason == "length"
    assert resp.choices[0].message.content == ""  # the cap hit inside the reasoning
    assert resp.usage.completion_tokens == 5 == resp.usage.completion_tokens_details.reasoning_tokens
    srv.set_dialect("think")
    content = ask(srv, max_tokens=5).choices[0].message.content
    assert content.startswith("<think>\n") and "</think>" not in content


# ---------------------------------------------------------------- faults


def expect_error(exc_type, status=None):
    def check(call):
        with pytest.raises(exc_type) as info:
            call()
        if status is not None:
            assert info.value.status_code == status
        return info.value
    return check


FAULT_CASES = {
    "429": (openai.RateLimitError, 429), "quota": (openai.RateLimitError, 429),
    "500": (openai.InternalServerError, 500), "503": (openai.InternalServerError, 503),
    "401": (openai.AuthenticationError, 401), "402": (openai.APIStatusError, 402),
    "400": (openai.BadRequestError, 400),
    "drop": (openai.APIConnectionError, None), "malformed": (json.JSONDecodeError, None),
    "hang": (openai.APITimeoutError, None),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", sorted(FAULT_CASES))
def test_fault_raises_the_sdk_exception(srv, kind, stream):
    exc_type, status = FAULT_CASES[kind]
    srv.add_fault(kind, count=1)
    with pytest.raises(exc_type) as info:
        resp = ask(srv, stream=stream, timeout=0.5)
        if stream:
            list(resp)
    if status is not None:
        assert info.value.status_code == status
        body = info.value.body
        assert set(body) >= {"message", "type", "code"}  # the SDK unwraps {"error": {...}}
        assert "sk-test" not in json.dumps(body)
    assert srv.stats.faults[kind] == 1
    # one request consumed the fault; the next one is served normally
    assert ask(srv).choices[0].finish_reason == "stop"
    assert srv.stats.requests == 2 and srv.stats.ok == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_truncate_fault(srv, stream):
    srv.add_fault("truncate")
    if stream:
        chunks, _, content = collect_stream(srv)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        resp = ask(srv)
        content, finish = resp.choices[0].message.content, resp.choices[0].finish_reason
    assert finish == "length" and "\\boxed{42}." not in content and content


def test_empty_fault(srv):
    srv.add_fault("empty", count=2)
    with pytest.raises(json.JSONDecodeError):
        ask(srv)
    chunks, _, content = collect_stream(srv)
    assert chunks == [] and content == ""
    assert srv.stats.by_status[200] == 2


def test_stream_error_fault(srv):
    srv.add_fault("stream_error", count=2)
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(ask(srv, stream=True))
    with httpx.Client() as http:  # OpenRouter style: 200 with the error in the body
        resp = http.post(srv.base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert resp.status_code == 200 and resp.json()["error"]["code"] == 502


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_slow_stream_keepalives_beat_a_short_read_timeout(srv, stream):
    srv.add_fault("slow_stream", gap=1.2, interval=0.2)
    started = time.monotonic()
    if stream:
        _, extra, content = collect_stream(srv, timeout=0.6)
        assert extra["reasoning_content"]
    else:
        content = ask(srv, timeout=0.6).choices[0].message.content
    assert content.endswith("\\boxed{42}.")
    assert time.monotonic() - started >= 1.2


def test_fault_match_limits_it_to_one_prompt(srv):
    srv.add_fault("500", count=5, match="poison")
    assert ask(srv).choices[0].finish_reason == "stop"
    with pytest.raises(openai.InternalServerError):
        client(srv).chat.completions.create(model="m", messages=[{"role": "user", "content": "a poison pill"}])
    assert srv.stats.by_status == {200: 1, 500: 1}


def test_hang_releases_when_the_client_gives_up(srv):
    srv.add_fault("hang")
    with pytest.raises(openai.APITimeoutError):
        ask(srv, timeout=0.3)
    deadline = time.monotonic() + 10
    while srv.stats.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.stats.in_flight == 0
    assert ask(srv).choices[0].finish_reason == "stop"


def test_random_fault_rates_are_seeded():
    def statuses():
        with FaultyTeacher(seed=3, fault_rates={"500": 0.5}, responder=lambda m, r: ("r", "c")) as srv:
            seen, c = [], client(srv)
            for _ in range(20):
                try:
                    c.chat.completions.create(model="m", messages=MESSAGES)
                    seen.append(200)
                except openai.InternalServerError:
                    seen.append(500)
            return seen

    first = statuses()
    assert first == statuses() and 3 < first.count(500) < 17


# ---------------------------------------------------------------- counters, latency, headers


def test_counters_prompts_and_bodies(srv):
    c = client(srv)
    for q in ["q1", "q2", "q1"]:
        c.chat.completions.create(model="m", messages=[{"role": "system", "content": "be brief"},
                                                       {"role": "user", "content": q}],
                                  temperature=0.6, extra_body={"thinking": {"type": "enabled"}})
    assert srv.stats.requests == 3 and srv.stats.ok == 3
    assert srv.stats.prompts == {"q1": 2, "q2": 1}
    assert srv.stats.bodies[0]["thinking"] == {"type": "enabled"} and srv.stats.bodies[0]["temperature"] == 0.6
    assert srv.stats.by_status == {200: 3}
    assert srv.stats.connections == 1  # HTTP keep-alive: one connection for all three
    srv.stats.reset()
    assert srv.stats.requests == 0 and not srv.stats.bodies and not srv.stats.prompts


@pytest.mark.parametrize("keep", [False, True])
def test_distills_own_server_keeps_request_bodies_only_when_asked(keep):
    # The pipeline's offline teacher and `distill teacher serve` answer thousands of requests: counters only.
    options = {"keep_bodies": True} if keep else {}
    with TeacherServer(dialect="deepseek", **options) as own:
        for q in ["q1", "q2"]:
            client(own).chat.completions.create(model="m", messages=[{"role": "user", "content": q}])
    assert own.stats.requests == 2 and own.stats.prompts == {"q1": 1, "q2": 1}
    assert [b["messages"][-1]["content"] for b in own.stats.bodies] == (["q1", "q2"] if keep else [])


def test_max_in_flight_and_latency_are_measured_by_the_server(srv):
    srv.set_latency(0.3)

    async def main():
        async with AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as aclient:
            sem = asyncio.Semaphore(7)

            async def one(i):
                async with sem:
                    return await aclient.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": f"q{i}"}])

            started = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(21)))
            return time.monotonic() - started

    elapsed = asyncio.run(main())
    assert srv.stats.max_in_flight == 7 and srv.stats.requests == 21
    assert elapsed >= 0.9  # three waves of 0.3 s


def test_ratelimit_headers(srv):
    srv.set_ratelimit_headers(requests=10, tokens=100000)
    c = client(srv)
    raw = c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    raw2 = c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.headers["x-ratelimit-limit-requests"] == "10"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) == 9
    assert int(raw2.headers["x-ratelimit-remaining-requests"]) == 8
    assert int(raw2.headers["x-ratelimit-remaining-tokens"]) < 100000
    assert raw2.headers["x-ratelimit-reset-requests"].endswith("s")
    srv.set_ratelimit_headers(None)
    raw3 = c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert not [h for h in raw3.headers if h.startswith("x-ratelimit")]


def test_ratelimit_enforced(srv):
    srv.set_ratelimit_headers(requests=2, enforce=True)
    ask(srv)
    ask(srv)
    with pytest.raises(openai.RateLimitError) as info:
        ask(srv)
    assert 50 < float(info.value.response.headers["retry-after"]) <= 60


# ---------------------------------------------------------------- responder, config, CLI


def test_default_responder_is_deterministic_per_seed():
    def answers(seed):
        with FaultyTeacher(seed=seed) as srv:
            return [ask(srv).choices[0].message.model_extra["reasoning_content"] for _ in range(2)]

    assert answers(1) == answers(1)


def test_custom_responder_and_no_reasoning():
    seen = []

    def responder(messages, request):
        seen.append((messages[-1]["content"], request.get("temperature")))
        return None, "plain answer"

    with FaultyTeacher(dialect="deepseek", responder=responder) as srv:
        msg = ask(srv, temperature=0.3).choices[0].message
    assert msg.content == "plain answer" and not msg.model_extra
    assert seen == [(QUESTION, 0.3)]


def test_bad_settings_fail_clearly():
    with pytest.raises(ConfigError, match="dialect"):
        FaultyTeacher(dialect="klingon")
    with pytest.raises(ConfigError, match="loopback"):
        FaultyTeacher(host="0.0.0.0")
    with FaultyTeacher() as srv:
        with pytest.raises(ConfigError, match="fault"):
            srv.add_fault("meteor")
        with httpx.Client() as http:
            bad = http.post(srv.base_url + "/chat/completions", content=b"{nope")
            missing = http.get(srv.base_url + "/nowhere")
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert missing.status_code == 404 and "message" in missing.json()["error"]


def test_serve_subprocess_prints_url_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "DISTILL_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "distill", "teacher", "serve", "port=0", "dialect=vllm",
                             "model=offline-x"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:") and line.rstrip().endswith("/v1")
        base_url = line.split()[1]
        resp = OpenAI(base_url=base_url, api_key="k", max_retries=0).chat.completions.create(
            model="offline-x", messages=MESSAGES)
        assert resp.model == "offline-x" and resp.choices[0].message.model_extra["reasoning"]
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, proc.stderr.read()


def test_keepalive_option_beats_a_short_read_timeout():
    with FaultyTeacher(latency=0.8, keepalive=0.1) as srv:
        content = ask(srv, timeout=0.4).choices[0].message.content
        _, extra, streamed = collect_stream(srv, timeout=0.4)
    assert content == streamed and content.endswith("\\boxed{42}.") and extra["reasoning_content"]
