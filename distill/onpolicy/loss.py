"""Per-token reverse KL (student || teacher) for on-policy distillation, two estimators.

Usage:
    from distill.onpolicy.loss import sampled_reverse_kl, topk_reverse_kl
    out = sampled_reverse_kl(student_logp, teacher_logp, mask)             # [B, T] each
    out = topk_reverse_kl(student_logits, top_ids, top_logp, mask, top_mask)  # [B, T, V], [B, T, K] ...
    out.loss.backward(); out.reverse_kl, out.tokens                          # what to log

``sampled_reverse_kl`` is the Tinker / Thinking Machines recipe: the tokens were sampled from the
student, so ``advantage = log p_teacher(y) - log p_student(y)`` (detached) is a per-token reward
and ``-advantage * log p_student(y)`` a policy-gradient surrogate. Its gradient is, in
expectation over the student's own samples, the gradient of the per-position reverse KL
(E[grad log p] = 0 removes the rest); it needs only the teacher's logprob of the sampled token.
``topk_reverse_kl`` computes the KL exactly on the teacher's top-k support (both distributions
renormalised there, or with ``tail=True`` the rest of the mass as one extra bucket); with k =
vocabulary size it is the full reverse KL. Masks: 0 on prompt, padding and placeholder positions
(``distill.teacher.logprobs.TeacherScores.valid``); float weights are allowed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

_TINY = 1e-12


class LossOutput(NamedTuple):
    loss: Any  # scalar tensor to call backward() on
    reverse_kl: Any  # detached per-token mean reverse KL estimate (what to log)
    tokens: Any  # detached weight of the positions that counted (sum of the mask)


def sampled_reverse_kl(student_logp: Any, teacher_logp: Any, mask: Any) -> LossOutput:
    """Policy-gradient surrogate on sampled tokens: loss = -mean(stopgrad(t - s) * s) over the mask."""
    weight = mask.to(student_logp.dtype)
    total = weight.sum()
    count = total.clamp(min=_TINY)
    advantage = (teacher_logp.to(student_logp.dtype) - student_logp).detach()
    loss = -(advantage * student_logp * weight).sum() / count
    kl = (-advantage * weight).sum() / count  # log p_s - log p_t: an unbiased estimate of the KL
    return LossOutput(loss, kl.detach(), total.detach())


def topk_reverse_kl(student_logits: Any, top_ids: Any, top_logp: Any, mask: Any, top_mask: Any = None,
                    tail: bool = False) -> LossOutput:
    """KL(student || teacher) on the teacher's top-k ids at each position, averaged over the mask.

    ``top_ids``/``top_logp``: ``[B, T, K]`` teacher ids and logprobs; ``top_mask`` marks real slots
    (a position with fewer than K entries is padded). Renormalised by default; ``tail=True`` keeps
    both distributions unnormalised on the k ids and adds the remaining mass as one bucket.
    """
    import torch

    slots = torch.ones_like(top_logp, dtype=torch.bool) if top_mask is None else top_mask.bool()
    student = torch.log_softmax(student_logits.float(), dim=-1).gather(-1, top_ids.long())
    teacher = top_logp.float().masked_fill(~slots, float("-inf"))
    student = student.masked_fill(~slots, float("-inf"))
    if tail:
        student = torch.cat([student, _rest(student)], dim=-1)
        teacher = torch.cat([teacher, _rest(teacher)], dim=-1)
        slots = torch.cat([slots, slots.new_ones(slots.shape[:-1] + (1,))], dim=-1)
    else:
        student = torch.log_softmax(student, dim=-1)
        teacher = torch.log_softmax(teacher, dim=-1)
    terms = torch.where(slots, student.exp() * (student - teacher), torch.zeros_like(student))
    per_position = terms.sum(-1)
    weight = mask.to(per_position.dtype)
    has_slot = slots.any(-1).to(per_position.dtype)  # a position with no real slot carries no loss
    weight = weight * has_slot
    total = weight.sum()
    loss = (per_position * weight).sum() / total.clamp(min=_TINY)
    return LossOutput(loss, loss.detach(), total.detach())


def _rest(logp: Any) -> Any:
    """log(1 - sum(exp(logp))) over the last axis, kept finite: the mass outside the k ids."""
    import torch

    mass = torch.logsumexp(logp, dim=-1, keepdim=True).exp()
    return torch.log((1.0 - mass).clamp(min=_TINY))
