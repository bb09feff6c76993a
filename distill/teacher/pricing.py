"""Token prices and cost: a small built-in table for common teachers, overridable from the recipe.

Usage:
    prices = resolve_prices("deepseek-reasoner", cfg.prices, base_url)   # None: price unknown
    cost_usd(usage, prices)   # usage: prompt_tokens, completion_tokens, cached_tokens
    batch_prices(prices, 0.5)   # what the same tokens cost through a batch API

Prices are USD per 1M tokens: ``input`` (cache miss), ``cached_input`` (cache hit) and
``output`` (reasoning is billed as output everywhere). The table holds list prices at peak
rates as of late 2026 (DeepSeek halves them off-peak); re-check before budgeting, and set
``prices={input: .., output: .., cached_input: ..}`` in the recipe to override.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from distill.errors import ConfigError

# Longest matching prefix wins; keys are lower-case model-name prefixes.
BUILTIN_PRICES: dict[str, dict[str, float]] = {
    "deepseek-reasoner": {"input": 0.28, "cached_input": 0.028, "output": 0.42},
    "deepseek-chat": {"input": 0.28, "cached_input": 0.028, "output": 0.42},
    "deepseek-flash": {"input": 0.30, "cached_input": 0.006, "output": 1.20},
    "deepseek-v4-pro": {"input": 1.32, "cached_input": 0.044, "output": 3.96},
    "o1": {"input": 15.0, "cached_input": 7.5, "output": 60.0},
    "o3": {"input": 2.0, "cached_input": 0.5, "output": 8.0},
    "o3-mini": {"input": 1.1, "cached_input": 0.55, "output": 4.4},
    "o4-mini": {"input": 1.1, "cached_input": 0.275, "output": 4.4},
    "gpt-5": {"input": 1.25, "cached_input": 0.125, "output": 10.0},
    "gpt-5-mini": {"input": 0.25, "cached_input": 0.025, "output": 2.0},
    "gpt-5-nano": {"input": 0.05, "cached_input": 0.005, "output": 0.4},
}
BATCH_DISCOUNT = 0.5  # results within 24 hours at half price (OpenAI Batch API FAQ)
FREE = {"input": 0.0, "cached_input": 0.0, "output": 0.0}
_KEYS = ("input", "cached_input", "output")


def _is_local(base_url: str | list[str] | None) -> bool:
    urls = base_url if isinstance(base_url, list) else [base_url or ""]
    hosts = {urlparse(u).hostname or "" for u in urls}
    return bool(hosts) and all(h in ("127.0.0.1", "localhost", "::1", "0.0.0.0") for h in hosts)


def resolve_prices(model: str, override: dict[str, Any] | None, base_url: str | list[str] | None = None
                   ) -> dict[str, float] | None:
    """Prices for ``model``: the recipe's, else the built-in table, else free on loopback, else None."""
    if override:
        unknown = set(override) - set(_KEYS)
        if unknown:
            raise ConfigError(f"prices: unknown key {sorted(unknown)[0]!r} (expected {', '.join(_KEYS)})")
        if "input" not in override or "output" not in override:
            raise ConfigError("prices: give at least input and output (USD per 1M tokens)")
        prices = {k: float(v) for k, v in override.items()}
        prices.setdefault("cached_input", prices["input"])
        return prices
    name = model.lower().rsplit("/", 1)[-1]
    matches = [k for k in BUILTIN_PRICES if name.startswith(k)]
    if matches:
        return dict(BUILTIN_PRICES[max(matches, key=len)])
    if _is_local(base_url):
        return dict(FREE)
    return None


def batch_prices(prices: dict[str, float] | None, discount: float = BATCH_DISCOUNT) -> dict[str, float] | None:
    """``prices`` scaled by a batch API's discount (OpenAI and most others: half the online price)."""
    return None if prices is None else {k: v * discount for k, v in prices.items()}


def cost_usd(usage: dict[str, Any], prices: dict[str, float] | None) -> float:
    """USD for one response's usage; 0.0 when prices are unknown."""
    if not prices:
        return 0.0
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = min(int(usage.get("cached_tokens") or 0), prompt)
    completion = int(usage.get("completion_tokens") or 0)
    cached_price = prices.get("cached_input", prices["input"])  # a caller's own table may leave it out
    total = (prompt - cached) * prices["input"] + cached * cached_price + completion * prices["output"]
    return total / 1e6


def estimate_cost(requests: int, prompt_tokens: int, completion_tokens: int,
                  prices: dict[str, float] | None) -> float | None:
    """Upper-ish estimate for ``requests`` calls of the given average sizes (None: unknown price)."""
    if prices is None:
        return None
    return requests * cost_usd({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}, prices)
