"""Options of `distill teacher serve`: the built-in offline teacher on 127.0.0.1.

Usage:
    distill teacher serve port=8765 dialect=deepseek mistake_rate=0.15
    distill teacher serve port=0 latency=1.0 keepalive=0.5
    distill teacher serve teacher_model=smollm2 adapter=runs/x/adapter max_logprobs=64
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import check_bounds, option
from distill.offline.families import TraceStyle


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
    style: TraceStyle = option(
        "plain", "how traces are written: plain (one letter a line) | positions (numbered letters, digits"
                 " read beside their numbers) | compact (numbered letters, decimals padded, then compared"
                 " answer first) | mixed (each response one of those, some wordy: samples differ); see"
                 " distill.offline.families.STYLES")
    latency: float = option(0.0, "seconds added to every response")
    seed: int = option(0, "seed for the mistakes, so runs are reproducible")
    keepalive: float | None = option(
        None, "while a response waits, send keep-alives every N seconds (SSE comments; blank lines"
              " before a non-streamed body, as DeepSeek does)")

    teacher_model: str | None = option(
        None, "serve this local model instead (folder, alias smollm2, Hub id) to score text for on-policy"
              " distillation: vLLM's /v1/completions with prompt_logprobs")
    adapter: str | None = option(None, "with teacher_model: a LoRA adapter folder applied on top")
    max_logprobs: int = option(20, "with teacher_model: largest prompt_logprobs k accepted, as vLLM's"
                                   " --max-logprobs (-1: the whole vocabulary)")

    def __post_init__(self) -> None:
        check_bounds(self, {"port": "[0, 65535]", "mistake_rate": "[0, 1]", "latency": ">= 0", "keepalive": "> 0",
                            "max_logprobs": ">= -1"})
