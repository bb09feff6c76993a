"""Padding-free packed attention on any device: causal attention per packed example, no mask.

Usage:
    from distill.packing import PACKED, use_packed_attention
    use_packed_attention(model)                     # registers and switches the attention function
    model(input_ids=row, position_ids=pos, cu_seq_lens_q=cu, use_cache=False)

Several examples concatenated in one row would attend to each other under plain causal
attention. transformers can build a block-diagonal mask from restarting position ids, but that
mask is dense (L x L for the whole row) and forces SDPA's masked path: attention then costs the
square of the row length. Here each example runs its own ``is_causal`` SDPA call on its slice
(what flash-attention's varlen kernel does on a GPU), so no attention crosses examples and none
is spent on pairs that would be masked anyway.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface

PACKED = "distill_packed"


def packed_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """SDPA per example of a packed row; plain SDPA when not given ``cu_seq_lens_q`` (generation)."""
    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None or query.shape[0] != 1 or attention_mask is not None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    cuts = bounds.tolist() if isinstance(bounds, torch.Tensor) else list(bounds)
    sizes = [b - a for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    if sum(sizes) != query.shape[2]:
        raise ValueError(f"cu_seq_lens_q covers {sum(sizes)} positions of a packed row of {query.shape[2]}")
    # torch.split, not one slice per example: each slice's backward fills a zero tensor the size of
    # the whole row and copies into it (840 a step on SmolLM2 at batch 8); split's backward is one
    # concatenation. GQA heads are shared inside SDPA, not copied by repeat_kv. (Same gradients; the
    # step-time gain was within noise on a loaded 2-core machine.)
    parts = [
        F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True,
                                       enable_gqa=groups > 1)
        for q, k, v in zip(query.split(sizes, dim=2), key.split(sizes, dim=2), value.split(sizes, dim=2))
    ]
    out = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
    return out.transpose(1, 2).contiguous(), None


def _no_mask(*args: Any, **kwargs: Any) -> None:
    # Without cu_seq_lens (generation with padding) a mask is still needed: build the SDPA one.
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, **kwargs) if kwargs.get("attention_mask") is not None else None


AttentionInterface.register(PACKED, packed_attention)
AttentionMaskInterface.register(PACKED, _no_mask)


def use_packed_attention(model: Any) -> None:
    """Switch ``model`` (a transformers model, or its PEFT/DDP wrapper's base) to packed attention."""
    model.set_attn_implementation(PACKED)


def cu_seq_lens(lengths: list[int]) -> torch.Tensor:
    """Cumulative boundaries ``[0, l0, l0+l1, ...]`` of the examples in a packed row."""
    out = [0]
    for n in lengths:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.int32)
