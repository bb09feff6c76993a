"""Batched decoding that drops finished answers from the batch (and its KV cache) as it runs.

Usage:
    rows = generate_regrouped(model, prompt_ids, eos_ids, pad_id, max_new_tokens=192)          # greedy
    rows = generate_regrouped(model, prompt_ids, eos_ids, pad_id, 192, temperature=0.8, top_p=0.95, seed=3)
    # rows[i]: the new token ids of prompt i, through its first end-of-turn token (or max_new_tokens long)

Why: ``model.generate`` keeps every row of a batch until the longest one ends, so a batch of 150
answers of 40 to 180 tokens pays for 150 x 180 token slots. Here a row that has ended leaves the
batch and its cache rows are dropped (``Cache.batch_select_indices``), so each step costs only the
rows still writing. Re-feeding the unfinished rows to a new ``generate`` would not do: on a CPU a
prefill token costs as much as a decoded one. Greedy rows are the argmax at each step, as
``generate`` picks them (up to float noise from a changing batch shape); sampling is temperature
then nucleus (top-p), seeded. Measured against ``model.generate`` in bench/regroup_throughput.py.
"""

from __future__ import annotations

from typing import Any

__all__ = ["generate_regrouped"]


def generate_regrouped(model: Any, prompt_ids: list[list[int]], eos_ids: list[int], pad_id: int,
                       max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                       seed: int = 0) -> list[list[int]]:
    """New token ids per prompt (through the first EOS, or ``max_new_tokens`` long), in prompt order."""
    import torch

    if not prompt_ids:
        return []
    device = model.device
    width = max(len(p) for p in prompt_ids)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompt_ids], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=device)
    eos = torch.tensor(sorted(set(eos_ids)), device=device)
    generator = torch.Generator(device=device).manual_seed(seed) if temperature > 0 else None
    written: list[list[int]] = [[] for _ in prompt_ids]
    rows = torch.arange(len(prompt_ids), device=device)  # which prompt each batch row is
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache, cache_kw = _new_cache(model)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                   **{cache_kw: cache}).logits[:, -1, :]
    for step in range(max_new_tokens):
        token = _pick(logits.float(), temperature, top_p, generator)
        for row, t in zip(rows.tolist(), token.tolist()):
            written[row].append(t)
        ended = torch.isin(token, eos)
        if step == max_new_tokens - 1 or ended.all():
            break
        if ended.any():  # the ended rows leave the batch and the cache
            keep = (~ended).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, token, mask = rows[keep], token[keep], mask[keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=-1)
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=mask.sum(-1, keepdim=True) - 1,
                       use_cache=True, **{cache_kw: cache}).logits[:, -1, :]
    return written


def _new_cache(model: Any) -> tuple[Any, str]:
    """An empty KV cache the model fills in place, and the keyword its forward takes it by
    (``cache`` in recent transformers 5.x, ``past_key_values`` before)."""
    import inspect

    from transformers import DynamicCache

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper takes **kwargs
    keyword = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
    try:
        return DynamicCache(config=model.config), keyword
    except TypeError:  # transformers versions whose DynamicCache takes no config
        return DynamicCache(), keyword


def _pick(logits: Any, temperature: float, top_p: float, generator: Any) -> Any:
    """Greedy at temperature 0, else a draw from the temperature-scaled nucleus of mass ``top_p``."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
