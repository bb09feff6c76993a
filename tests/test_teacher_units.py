"""Pure parts of the teacher client: capture, retry policy, rate limiting, pricing, request quirks."""

from __future__ import annotations

import asyncio
import json
import random
import time

import httpx2
import openai
import pytest

from distill.errors import ConfigError
from distill.teacher.capture import StreamCapture, from_message, split_think
from distill.teacher.config import TeacherConfig
from distill.teacher.dialects import build_params, clean_messages, detect_provider
from distill.teacher.pricing import cost_usd, resolve_prices
from distill.teacher.ratelimit import Limiter, TokenBucket, parse_duration
from distill.teacher.retry import MalformedResponse, backoff_delay, classify


@pytest.mark.parametrize("text, expected", [
    ("<think>r</think> a", ("r", "a")),
    ("<think>\nstep 1\nstep 2\n</think>\n\nThe answer is 4.", ("step 1\nstep 2", "The answer is 4.")),
    ("r</think> a", ("r", "a")),                      # opening tag in the prompt (R1 templates)
    ("<think>cut off mid", ("cut off mid", "")),      # truncated inside the reasoning
    ("just an answer", (None, "just an answer")),
    ("", (None, "")),
    ("  <THINK>x</THINK>y", ("x", "y")),
])
def test_split_think(text, expected):
    assert split_think(text) == expected


def test_from_message_reads_every_dialect():
    assert from_message({"content": "a", "reasoning_content": "r"}) == ("r", "a")
    assert from_message({"content": "a", "reasoning": "r"}) == ("r", "a")
    assert from_message({"content": "a", "reasoning_details": [{"type": "reasoning.text", "text": "r"}]}) == ("r", "a")
    assert from_message({"content": "<think>r</think>a"}) == ("r", "a")
    assert from_message({"content": "a"}) == (None, "a")           # hidden reasoning
    assert from_message({"content": None, "reasoning": "r"}) == ("r", None)  # vLLM, cut in reasoning


def test_stream_capture_joins_deltas_and_think_tags():
    cap = StreamCapture()
    for delta in [{"role": "assistant", "content": None, "reasoning_content": ""},
                  {"content": None, "reasoning_content": "step "}, {"content": None, "reasoning_content": "one"},
                  {"content": "ans"}, {"content": "wer"}]:
        cap.add(delta)
    assert cap.result() == ("step one", "answer")
    cap = StreamCapture()
    for piece in ["<thi", "nk>abc</th", "ink>", " done"]:
        cap.add({"content": piece})
    assert cap.result() == ("abc", "done")


def _status_error(status: int, body: dict | None = None, headers: dict | None = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    client = openai.OpenAI(api_key="k", base_url="http://x/v1")
    return client._make_status_error("err", body=body or {}, response=response)


@pytest.mark.parametrize("status, action", [(401, "fatal"), (402, "fatal"), (400, "fail"), (404, "fail"),
                                            (422, "fail"), (408, "retry"), (409, "retry"), (429, "retry"),
                                            (500, "retry"), (502, "retry"), (503, "retry")])
def test_classify_status(status, action):
    assert classify(_status_error(status)).action == action


def test_classify_quota_429_is_fatal_and_retry_after_is_read():
    quota = _status_error(429, {"error": {"type": "insufficient_quota", "code": "insufficient_quota"}})
    assert classify(quota).action == "fatal"
    rate = classify(_status_error(429, {"error": {"code": "rate_limit_exceeded"}}, {"retry-after": "3"}))
    assert (rate.action, rate.retry_after, rate.overload) == ("retry", 3.0, True)
    assert classify(_status_error(503, headers={"retry-after-ms": "250"})).retry_after == 0.25


def test_classify_transport_and_body_errors():
    request = httpx2.Request("POST", "http://x")
    assert classify(openai.APITimeoutError(request)).action == "retry"
    assert classify(openai.APIConnectionError(request=request)).action == "retry"
    assert classify(json.JSONDecodeError("x", "", 0)).kind == "malformed"  # what the SDK raises
    assert classify(MalformedResponse("empty")).action == "retry"
    assert classify(openai.APIError("stream broke", request, body=None)).action == "retry"
    assert classify(ValueError("bug")).action == "fail"


def test_backoff_grows_with_jitter_and_honours_retry_after():
    rng = random.Random(0)
    delays = [backoff_delay(a, base=1.0, cap=8.0, rng=rng) for a in range(1, 7)]
    assert 0.5 <= delays[0] <= 1.0 and 4.0 <= delays[-1] <= 8.0
    assert backoff_delay(1, base=1.0, cap=8.0, retry_after=30.0, rng=rng) >= 30.0  # beyond the cap


def test_parse_duration():
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("12ms") == pytest.approx(0.012)
    assert parse_duration("1.5") == 1.5
    assert parse_duration("1h2m3s") == 3723.0
    assert parse_duration("") is None


def test_token_bucket_rate():
    bucket = TokenBucket(per_minute=600)  # 10 a second, burst 60
    bucket.take(bucket.capacity)
    assert bucket.wait_time(1) == pytest.approx(0.1, rel=0.2)


def test_limiter_caps_concurrency_and_rpm():
    async def scenario():
        limiter = Limiter(concurrency=3, rpm=600, adaptive=False)  # burst 60, then 10 a second
        limiter.requests.take(limiter.requests.capacity - 5)
        peak = 0

        async def one():
            nonlocal peak
            async with limiter.slot():
                peak = max(peak, limiter.in_flight)
                await asyncio.sleep(0.01)

        start = time.monotonic()
        await asyncio.gather(*(one() for _ in range(10)))
        return peak, time.monotonic() - start

    peak, elapsed = asyncio.run(scenario())
    assert peak == 3
    assert elapsed >= 0.4  # 5 from the burst, 5 more at 10/s


def test_limiter_adapts_and_learns_headers():
    limiter = Limiter(concurrency=64, adaptive=True)
    limiter.on_overload()
    assert int(limiter.limit) == 32
    limiter.on_overload()  # same burst: counted once
    assert int(limiter.limit) == 32
    for _ in range(200):
        limiter.on_success()
    assert 32 < limiter.limit <= 64
    limiter.observe_headers({"x-ratelimit-limit-requests": "120", "x-ratelimit-remaining-requests": "0",
                             "x-ratelimit-reset-requests": "2s"})
    assert limiter.requests is not None and limiter.requests.rate == pytest.approx(2.0)
    assert limiter.paused_until - time.monotonic() == pytest.approx(2.0, abs=0.2)


def test_prices_and_cost():
    prices = resolve_prices("deepseek-reasoner", {}, "https://api.deepseek.com")
    usage = {"prompt_tokens": 1_000_000, "cached_tokens": 500_000, "completion_tokens": 1_000_000}
    assert cost_usd(usage, prices) == pytest.approx(0.5 * 0.28 + 0.5 * 0.028 + 0.42)
    assert resolve_prices("x", {"input": 1, "output": 2}, None)["cached_input"] == 1.0
    assert resolve_prices("my-model", {}, "http://127.0.0.1:8000/v1")["output"] == 0.0
    assert resolve_prices("my-model", {}, "https://example.com/v1") is None
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_prices("x", {"inptu": 1, "output": 2}, None)


def test_provider_quirks():
    msgs = clean_messages([{"role": "user", "content": "q"},
                           {"role": "assistant", "content": "a", "reasoning_content": "secret"}])
    assert "reasoning_content" not in msgs[1]
    ds = TeacherConfig(model="deepseek-reasoner", base_url="https://api.deepseek.com")
    params = build_params(ds, detect_provider("auto", ds.base_url, ds.model), msgs, 1000)
    assert "temperature" not in params and "top_p" not in params and params["max_tokens"] == 1000
    oa = TeacherConfig(model="o3-mini", base_url="https://api.openai.com/v1", stream=True)
    params = build_params(oa, detect_provider("auto", oa.base_url, oa.model), msgs, 1000)
    assert params["max_completion_tokens"] == 1000 and "max_tokens" not in params and "temperature" not in params
    assert params["stream_options"] == {"include_usage": True}
    vl = TeacherConfig(model="Qwen/QwQ-32B", base_url="http://10.0.0.2:8000/v1",
                       extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    params = build_params(vl, detect_provider("auto", vl.base_url, vl.model), msgs, 1000)
    assert params["temperature"] == 0.6 and params["extra_body"] == {"chat_template_kwargs": {"enable_thinking": True}}
    assert detect_provider("auto", "https://openrouter.ai/api/v1", "x") == "openrouter"
    assert detect_provider("auto", "http://localhost:11434/v1", "qwen3") == "ollama"


def test_a_price_table_without_a_cached_price_charges_cached_tokens_as_input():
    """TeacherClient(cfg, prices={"input": .., "output": ..}), as generate's usage block shows, must not crash."""
    from distill.teacher.pricing import cost_usd

    usage = {"prompt_tokens": 1000, "cached_tokens": 400, "completion_tokens": 500}
    assert cost_usd(usage, {"input": 2.0, "output": 8.0}) == (1000 * 2.0 + 500 * 8.0) / 1e6
