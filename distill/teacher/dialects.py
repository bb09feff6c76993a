"""What to send each provider: dialect detection, sampling-parameter quirks, clean message lists.

Usage:
    provider = detect_provider("auto", "https://api.deepseek.com", "deepseek-reasoner")   # "deepseek"
    params = build_params(cfg, provider, clean_messages(messages), max_tokens=32768)
    await client.chat.completions.create(**params)

Quirks: DeepSeek's thinking mode ignores temperature/top_p (and legacy R1 rejects logprobs), so
they are not sent; OpenAI reasoning models (o1/o3/o4, gpt-5) take ``max_completion_tokens`` and
reject a non-default temperature; nothing ever sends ``reasoning_content`` back (legacy DeepSeek
returns 400 for it). ``extra_body`` passes provider-specific fields through unchanged.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

_HOSTS = (("deepseek.com", "deepseek"), ("openai.com", "openai"), ("openrouter.ai", "openrouter"),
          ("together", "together"), ("fireworks.ai", "generic"), ("groq.com", "generic"))
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)
_ALLOWED_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


def detect_provider(provider: str, base_url: str, model: str) -> str:
    """The dialect to speak: the configured one, else guessed from the URL and model name."""
    if provider != "auto":
        return provider
    host = (urlparse(base_url).hostname or "").lower()
    for needle, name in _HOSTS:
        if needle in host:
            return name
    if urlparse(base_url).port == 11434:
        return "ollama"
    if _OPENAI_REASONING.match(model.rsplit("/", 1)[-1]):
        return "openai"
    return "generic"


def is_openai_reasoning(model: str) -> bool:
    """o1/o3/o4-mini/gpt-5...: hidden reasoning, ``max_completion_tokens``, default temperature only."""
    return bool(_OPENAI_REASONING.match(model.rsplit("/", 1)[-1]))


def _deepseek_thinking(model: str, extra_body: dict[str, Any]) -> bool:
    thinking = extra_body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "disabled":
        return False
    return "chat" not in model or isinstance(thinking, dict)


def clean_messages(messages: list[dict]) -> list[dict]:
    """Only the standard message keys: a previous turn's reasoning is never sent back."""
    return [{k: v for k, v in m.items() if k in _ALLOWED_KEYS} for m in messages]


def build_params(cfg: Any, provider: str, messages: list[dict], max_tokens: int) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create`` (``extra_body`` included)."""
    params: dict[str, Any] = {"model": cfg.model, "messages": messages}
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p}
    if provider == "openai" and is_openai_reasoning(cfg.model):
        params["max_completion_tokens"] = max_tokens
        sampling = {}
    elif provider == "deepseek" and _deepseek_thinking(cfg.model, cfg.extra_body or {}):
        params["max_tokens"] = max_tokens
        sampling = {}  # accepted and ignored in thinking mode: sending them only misleads the record
    else:
        params["max_tokens"] = max_tokens
    params.update({k: v for k, v in sampling.items() if v is not None})
    if cfg.stream:
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    if cfg.extra_body:
        params["extra_body"] = dict(cfg.extra_body)
    return params


def estimate_tokens(messages: list[dict]) -> int:
    """Prompt size in tokens, roughly (4 characters a token), for the tpm bucket before sending."""
    return sum(len(str(m.get("content") or "")) for m in messages) // 4 + 4 * len(messages)
