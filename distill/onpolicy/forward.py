"""The student's logits at the positions that predict each completion token, batched and aligned.

Usage:
    from distill.onpolicy.forward import completion_logits, token_logprobs
    logits, ids, mask = completion_logits(model, prompts, completions, pad_id)   # [B, T, V], [B, T], [B, T]
    logp = token_logprobs(logits, ids)                                            # [B, T]

Row b, column t is completion token t of sequence b: the logits come from the position before
it (``len(prompt) - 1 + t`` in prompt + completion). Sequences are right-padded; ``mask`` is
False on padding. Gradients flow unless the caller wraps the call in ``torch.no_grad()``.
"""

from __future__ import annotations

from typing import Any


def completion_logits(model: Any, prompts: list[list[int]], completions: list[list[int]],
                      pad_id: int) -> tuple[Any, Any, Any]:
    """``(logits [B, T, V], completion ids [B, T], mask [B, T])`` with T the longest completion."""
    import torch

    if len(prompts) != len(completions) or not prompts:
        raise ValueError("one completion per prompt, at least one")
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token: the first completion token is predicted from it")
    device = next(model.parameters()).device
    full = [p + c for p, c in zip(prompts, completions)]
    width = max(len(s) for s in full)
    steps = max(1, max(len(c) for c in completions))
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in full], device=device)
    attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in full], device=device)
    logits = model(input_ids=ids, attention_mask=attention).logits
    index = torch.tensor([[min(len(p) - 1 + t, width - 1) for t in range(steps)] for p in prompts], device=device)
    picked = logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))
    targets = torch.tensor([c + [pad_id] * (steps - len(c)) for c in completions], device=device)
    mask = torch.tensor([[t < len(c) for t in range(steps)] for c in completions], device=device)
    return picked, targets, mask


def token_logprobs(logits: Any, ids: Any) -> Any:
    """``log softmax(logits)[ids]`` per position, in float32."""
    import torch

    return torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[..., None].long()).squeeze(-1)
