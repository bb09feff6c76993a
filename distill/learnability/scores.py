"""The learnability scores of one trace from the student's logits on its trained tokens (torch).

Usage:
    nll, rank = token_stats(logits, targets, rank_clip=100)     # per trained token
    trace = trace_scores(nll, rank, step_logprobs)               # {"rsr", "mean_rank", "mean_surprisal", ...}
    spans = step_spans(completion_ids, tokenizer)                # [(start, end), ...] one per reasoning step

Definitions, each as its source states it:

- **Rank-Surprisal Ratio** (Rank-Surprisal Ratio, arXiv 2601.14249; reference code
  UmeanNever/RankSurprisalRatio ``rsr_cal.py``): for each response token, surprisal is
  ``logsumexp(logits) - logit(token)`` (the NLL, computed in float32) and rank is ``1 + #{vocab
  entries whose logit is strictly greater than the token's}``, clipped at ``r = 100``. A trace's
  RSR is ``sum(clipped ranks) / max(sum(surprisals), 1e-12)``, i.e. mean rank over mean surprisal;
  lower is more suitable (informative tokens the student nonetheless ranks high). A dataset's RSR
  is the mean of per-trace mean ranks over the mean of per-trace mean surprisals (paper App. A.8),
  see :func:`distill.learnability.store.aggregate`.
- **Local naturalness** (arXiv 2510.03988): the student's log-probability of each reasoning step
  conditioned only on a small local window, averaged over steps. Here a step is a line of the
  trained completion (split at newline tokens, so every trained token belongs to exactly one
  step), the window is the chat-template prompt plus the ``window`` previous steps, and a step's
  value is its mean token log-probability; higher is more natural. (The paper's steps are
  sentence-like units; its window length is a setting, recorded with the scores.)
- **Mean surprisal**: the mean NLL of the trained tokens given the whole prompt and trace, the
  negative of "global naturalness" in arXiv 2510.03988; lower is more natural.

Which tokens count: exactly the tokens finetune trains on (the completion after the prompt, up
to and including the token that ends the turn). The reference RSR code scans the assistant span
and stops before the end marker, so it counts one token fewer per trace.
"""

from __future__ import annotations

from typing import Any

import torch

EPS = 1e-12  # the reference code's floor on the summed surprisal
ROWS = 512  # logits rows turned to float32 at a time (a 49k vocabulary: 100 MB per chunk)


@torch.no_grad()
def token_stats(logits: torch.Tensor, targets: torch.Tensor, rank_clip: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Surprisal (NLL, nats) and clipped rank of each target under ``logits`` ``[N, V]``, float32 math."""
    nll, rank = [], []
    for start in range(0, logits.shape[0], ROWS):
        chunk = logits[start:start + ROWS].float()
        tgt = targets[start:start + ROWS].to(chunk.device)
        picked = chunk.gather(1, tgt[:, None])
        nll.append(torch.logsumexp(chunk, dim=-1) - picked[:, 0])
        rank.append((1 + (chunk > picked).sum(dim=-1)).clamp(max=rank_clip))
    if not nll:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    return torch.cat(nll).cpu(), torch.cat(rank).cpu()


def trace_scores(nll: torch.Tensor, rank: torch.Tensor, step_logprobs: list[float]) -> dict[str, Any]:
    """RSR, mean rank, mean surprisal and local naturalness of one trace from its per-token values."""
    n = int(nll.numel())
    total_nll = float(nll.double().sum())
    total_rank = float(rank.double().sum())
    return {
        "rsr": total_rank / max(total_nll, EPS),
        "mean_rank": total_rank / n,
        "mean_surprisal": total_nll / n,
        "local_naturalness": sum(step_logprobs) / len(step_logprobs) if step_logprobs else None,
        "tokens": n,
        "steps": len(step_logprobs),
    }


def step_spans(completion_ids: list[int], tokenizer: Any) -> list[tuple[int, int]]:
    """Half-open token spans of the completion's steps: a step ends after a token holding a newline.

    A span of whitespace alone (a blank line) joins the step before it, so no step is empty; the
    last step holds the rest, the turn-end token included.
    """
    spans: list[tuple[int, int]] = []
    start, has_text = 0, False
    for i, token in enumerate(completion_ids):
        text = tokenizer.decode([token])
        if "\n" in text and not text.strip() and not has_text and spans:
            spans[-1] = (spans[-1][0], i + 1)  # a blank line: part of the step before
            start = i + 1
            continue
        has_text = has_text or bool(text.strip())
        if "\n" in text and has_text:
            spans.append((start, i + 1))
            start, has_text = i + 1, False
    if start < len(completion_ids):
        if has_text or not spans:
            spans.append((start, len(completion_ids)))
        else:
            spans[-1] = (spans[-1][0], len(completion_ids))
    return spans
