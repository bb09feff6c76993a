"""Options of `distill teacher serve`: the built-in offline teacher on 127.0.0.1.

Usage:
    distill teacher serve port=8765 dialect=deepseek mistake_rate=0.15
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import option


@dataclass
class ServeConfig:
    """The built-in offline teacher: an OpenAI-compatible server on 127.0.0.1 for trying the pipeline."""

    host: str = option("127.0.0.1", "address to bind (loopback only by default)")
    port: int = option(8765, "port to listen on (0: any free port)")
    model: str = option("distill-offline-teacher", "model name the server reports")
    dialect: str = option("deepseek", "where reasoning is returned: deepseek | vllm | think | openrouter | hidden")
    mistake_rate: float = option(0.15, "share of traces with a deliberate mistake in a step or the answer")
    latency: float = option(0.0, "seconds added to every response")
    seed: int = option(0, "seed for the mistakes, so runs are reproducible")
