"""The student as its own teacher: shown a verified solution, it scores its own unprompted attempt.

Usage:
    from distill.onpolicy.self_teacher import self_teacher_scores, privileged_message
    scores = self_teacher_scores(model, tokenizer, problems, solutions, attempts)
    scores.teacher_logp, scores.student_logp, scores.mask        # [B, T], aligned token by token
    scores = score_attempts(model, plain_ids, privileged_ids, attempts, pad_id)   # prompts already encoded
    scores = score_attempts(model, plain_ids, plain_ids, attempts, pad_id, teacher=teacher_model)   # a local teacher
    out = sampled_reverse_kl(scores.student_logp, scores.teacher_logp, scores.mask)

On-policy self-distillation (SDFT, OPSD): the same weights read the problem twice, once plain
(the student, with gradients) and once with privileged context, the verified trace or the gold
answer (the teacher, without gradients). The attempt's tokens are scored under both prompts; the
per-token gap is the reward of ``distill.onpolicy.loss``. No teacher endpoint is needed, and the
vocabulary is the student's by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill.onpolicy.forward import completion_logits, token_logprobs
from distill.render import encode_prompt

PRIVILEGED = ("{problem}\n\nA verified solution, for reference (write your own reasoning and answer):\n"
              "{solution}")


@dataclass
class SelfScores:
    """Per attempt token: the privileged (teacher) and plain (student) logprobs, and their logits."""

    teacher_logp: Any  # [B, T], no gradient
    student_logp: Any  # [B, T], with gradient when called with grad enabled
    mask: Any  # [B, T] bool, False on padding
    teacher_logits: Any  # [B, T, V], no gradient: the exact KL needs no top-k
    student_logits: Any  # [B, T, V]
    ids: Any  # [B, T] the attempt's tokens (padded)


def privileged_message(problem: str, solution: str, template: str = PRIVILEGED) -> str:
    """The user turn the teacher side reads: the problem followed by its verified solution."""
    return template.format(problem=problem, solution=solution)


def self_teacher_scores(model: Any, tokenizer: Any, problems: list[str], solutions: list[str],
                        attempts: list[list[int]], system_prompt: str | None = None,
                        template: str = PRIVILEGED) -> SelfScores:
    """Score each attempt (token ids of the student's answer) under the privileged and the plain prompt."""
    if not len(problems) == len(solutions) == len(attempts):
        raise ValueError("one solution and one attempt per problem")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    plain = [encode_prompt(tokenizer, p, system_prompt) for p in problems]
    rich = [encode_prompt(tokenizer, privileged_message(p, s, template), system_prompt)
            for p, s in zip(problems, solutions)]
    return score_attempts(model, plain, rich, attempts, pad)


def score_attempts(model: Any, plain: list[list[int]], rich: list[list[int]], attempts: list[list[int]],
                   pad_id: int, teacher: Any = None) -> SelfScores:
    """The attempts scored after the privileged prompts (no gradient, no dropout) and after the plain ones.

    ``teacher``: another model sharing the vocabulary reads ``rich`` instead of ``model`` (a local model
    teacher, given the plain prompts as ``rich``); None: the student is its own teacher.
    """
    import torch

    reader = model if teacher is None else teacher
    training = reader.training
    reader.eval()  # the teacher is the policy itself (or a fixed model), not a dropout-perturbed copy
    try:
        with torch.no_grad():
            teacher_logits, ids, mask = completion_logits(reader, rich, attempts, pad_id)
    finally:
        reader.train(training)
    student_logits, _, _ = completion_logits(model, plain, attempts, pad_id)
    return SelfScores(token_logprobs(teacher_logits, ids), token_logprobs(student_logits, ids), mask,
                      teacher_logits, student_logits, ids)
