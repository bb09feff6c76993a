"""Options of `distill teacher serve`: the built-in offline teacher on 127.0.0.1.

Usage:
    distill teacher serve port=8765 dialect=deepseek mistake_rate=0.15
    distill teacher serve port=0 latency=1.0 fault_rates="{'429': 0.05, '500': 0.02}"
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import check_bounds, option
from distill.errors import ConfigError


@dataclass
class ServeConfig:
    """The built-in offline teacher: an OpenAI-compatible server on 127.0.0.1 for trying the pipeline."""

    host: str = option("127.0.0.1", "address to bind (loopback only: 127.0.0.1, localhost or ::1)")
    port: int = option(8765, "port to listen on (0: any free port; the URL is printed on stdout)")
    model: str = option("distill-offline-teacher", "model name the server reports")
    dialect: str = option(
        "deepseek", "where reasoning is returned: deepseek | sglang | vllm | together | ollama | openrouter"
                    " | think | think_open | hidden")
    mistake_rate: float = option(0.15, "share of traces with a deliberate mistake in a step or the answer")
    latency: float = option(0.0, "seconds added to every response")
    seed: int = option(0, "seed for the mistakes and random faults, so runs are reproducible")
    keepalive: float | None = option(
        None, "while a response waits, send keep-alives every N seconds (SSE comments; blank lines"
              " before a non-streamed body, as DeepSeek does)")
    fault_rates: dict[str, float] = option(
        {}, "random faults per request, e.g. {'429': 0.05, '500': 0.02, drop: 0.01}"
            " (429 quota 400 401 402 500 503 drop malformed hang truncate empty stream_error slow_stream)")
    ratelimit_requests: int | None = option(None, "send x-ratelimit-*-requests headers for this per-minute limit")
    ratelimit_tokens: int | None = option(None, "send x-ratelimit-*-tokens headers for this per-minute limit")
    ratelimit_enforce: bool = option(False, "answer 429 with Retry-After beyond the x-ratelimit limits")

    def __post_init__(self) -> None:
        check_bounds(self, {"port": "[0, 65535]", "mistake_rate": "[0, 1]", "latency": ">= 0", "keepalive": "> 0",
                            "ratelimit_requests": ">= 1", "ratelimit_tokens": ">= 1"})
        for name, rate in self.fault_rates.items():
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
                raise ConfigError(f"fault_rates.{name} must be a share in [0, 1], got {rate!r}")
