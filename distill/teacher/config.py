"""Settings shared by everything that talks to a teacher: generate, the filter's judge, eval's api backend.

Usage:
    class GenerateConfig(SourceConfig, TeacherConfig): ...   # model=, base_url=, rpm= at top level
    judge: JudgeConfig = section(JudgeConfig, "the judge")  # inside FilterConfig: judge.model=, judge.base_url=
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

from distill.config import check_bounds, option
from distill.errors import ConfigError

Provider = Literal["auto", "deepseek", "openai", "openrouter", "vllm", "sglang", "together", "ollama",
                   "offline", "generic"]


@dataclass
class TeacherConfig:
    """Where the teacher is, how to sample it, and how hard to push it."""

    model: str = option("deepseek-reasoner", "teacher model name as the endpoint knows it")
    base_url: str | list[str] = option(
        "https://api.deepseek.com", "endpoint URL, or a list of URLs to spread load over replicas")
    api_key_env: str | None = option(
        "DEEPSEEK_API_KEY", "NAME of the environment variable holding the API key (never the key)")
    provider: Provider = option("auto", "API dialect; auto guesses from base_url and model")
    system_prompt: str | None = option(None, "optional system message sent before each problem")
    temperature: float | None = option(0.6, "sampling temperature (not sent where the provider ignores it)")
    top_p: float | None = option(0.95, "nucleus sampling (not sent where the provider ignores it)")
    max_tokens: int = option(32768, "output budget per request, reasoning included on most providers")
    extra_body: dict[str, Any] = option({}, "extra request fields passed through as-is (e.g. thinking, reasoning)")
    stream: bool = option(False, "stream responses (tolerates keep-alives and long waits)")
    request_timeout: float = option(1800.0, "seconds to wait for one response before retrying")
    concurrency: int = option(64, "requests in flight at most")
    rpm: int | None = option(None, "requests per minute cap (null: from x-ratelimit headers or unlimited)")
    tpm: int | None = option(None, "tokens per minute cap (null: from x-ratelimit headers or unlimited)")
    adaptive: bool = option(True, "lower concurrency on 429s and empty bodies, recover slowly")
    replica_concurrency: int | None = option(
        None, "with a list of base_url: requests in flight per replica at most (null: only `concurrency` bounds)")
    replica_failures: int = option(
        3, "with a list of base_url: failures in a row (connection, timeout, 5xx) that take a replica out")
    replica_cooldown: float = option(
        30.0, "seconds a replica stays out before one probe request (doubles each time it fails again)")
    max_attempts: int = option(6, "attempts per sample before it is written with its error")
    backoff_base: float = option(1.0, "first retry delay in seconds (doubles, with jitter)")
    backoff_max: float = option(60.0, "longest retry delay in seconds (Retry-After is honoured beyond it)")
    prices: dict[str, Any] = option(
        {}, "USD per 1M tokens, e.g. {input: 0.28, output: 0.42, cached_input: 0.028}; default: built-in table")


    def validate(self) -> None:
        """Ranges and a well-formed endpoint, checked before the first request."""
        urls = self.base_url if isinstance(self.base_url, list) else [self.base_url]
        for url in urls:
            check_base_url(url)
        check_bounds(self, {"max_tokens": ">= 0", "request_timeout": "> 0", "concurrency": ">= 1",
                            "max_attempts": ">= 1", "rpm": ">= 1", "replica_concurrency": ">= 1",
                            "replica_failures": ">= 1", "replica_cooldown": ">= 0", "tpm": ">= 1", "backoff_base": ">= 0",
                            "backoff_max": ">= 0", "temperature": "[0, 2]", "top_p": "(0, 1]"})
        bad = [k for k, v in self.prices.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0]
        if bad:
            raise ConfigError(f"prices.{bad[0]} must be a non-negative number (USD per 1M tokens), "
                              f"got {self.prices[bad[0]]!r}")


def check_base_url(url: Any) -> None:
    """``http(s)://host[:port][/path]`` or ConfigError: a typo here would fail every request."""
    try:
        parts = urlparse(url) if isinstance(url, str) else None
        port = parts.port if parts else None  # raises ValueError when out of range
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base_url must be an http(s):// URL with a host, got {url!r}")
    del port
