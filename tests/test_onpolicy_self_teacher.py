"""The self teacher: the student's logprobs of its own attempt with and without privileged context.

Usage:
    .venv/bin/python -m pytest tests/test_onpolicy_self_teacher.py -q
"""

from __future__ import annotations

import pytest
import torch

from distill.onpolicy.forward import completion_logits, token_logprobs
from distill.onpolicy.loss import sampled_reverse_kl, topk_reverse_kl
from distill.onpolicy.self_teacher import privileged_message, self_teacher_scores
from distill.render import encode_prompt
from tiny_student import make_tiny_student


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = make_tiny_student(tmp_path_factory.mktemp("tiny") / "student")
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def alone(model, ids: list[int], start: int) -> torch.Tensor:
    """Logprobs of ids[start:] from one unpadded forward pass of that sequence alone."""
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return torch.tensor([float(logp[i - 1, ids[i]]) for i in range(start, len(ids))])


def test_privileged_and_plain_logprobs_align_token_by_token(student):
    model, tokenizer = student
    problems = ["Compute 12 + 7 * 3.", "Which is greater, 9.11 or 9.8?"]
    solutions = ["7 * 3 = 21, 12 + 21 = 33. \\boxed{33}", "9.80 > 9.11, so 9.8. \\boxed{9.8}"]
    attempts = [tokenizer("The answer is 33.")["input_ids"], tokenizer("9.11 is greater")["input_ids"][:3]]
    scores = self_teacher_scores(model, tokenizer, problems, solutions, attempts)
    assert scores.mask.tolist() == [[True] * len(attempts[0]), [True] * 3 + [False] * (len(attempts[0]) - 3)]
    for b, (problem, solution, attempt) in enumerate(zip(problems, solutions, attempts)):
        n = len(attempt)
        plain = encode_prompt(tokenizer, problem)
        rich = encode_prompt(tokenizer, privileged_message(problem, solution))
        assert solution in tokenizer.decode(rich) and solution not in tokenizer.decode(plain)
        assert torch.allclose(scores.student_logp[b, :n].detach(), alone(model, plain + attempt, len(plain)), atol=1e-5)
        assert torch.allclose(scores.teacher_logp[b, :n], alone(model, rich + attempt, len(rich)), atol=1e-5)
        assert scores.ids[b, :n].tolist() == attempt
    assert not torch.allclose(scores.teacher_logp[0], scores.student_logp[0].detach())  # the context matters


def test_only_the_plain_side_gets_gradients_and_the_losses_accept_the_scores(student):
    model, tokenizer = student
    attempt = tokenizer("The answer is 33.")["input_ids"]
    scores = self_teacher_scores(model, tokenizer, ["Compute 12 + 7 * 3."], ["\\boxed{33}"], [attempt])
    assert scores.teacher_logp.requires_grad is False and scores.teacher_logits.requires_grad is False
    sampled = sampled_reverse_kl(scores.student_logp, scores.teacher_logp, scores.mask)
    vocab = scores.student_logits.shape[-1]
    ids = torch.arange(vocab).expand(*scores.ids.shape, vocab)
    exact = topk_reverse_kl(scores.student_logits, ids, torch.log_softmax(scores.teacher_logits.float(), -1),
                            scores.mask)
    assert exact.loss.item() > 0
    model.zero_grad()
    sampled.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_completion_logits_pad_short_rows_without_moving_long_ones(student):
    model, tokenizer = student
    prompts = [[5, 6, 7, 8], [9, 10]]
    completions = [[11, 12], [13, 14, 15, 16]]
    with torch.no_grad():
        logits, ids, mask = completion_logits(model, prompts, completions, tokenizer.pad_token_id)
    logp = token_logprobs(logits, ids)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]
    assert torch.allclose(logp[0, :2], alone(model, prompts[0] + completions[0], 4), atol=1e-5)
    assert torch.allclose(logp[1], alone(model, prompts[1] + completions[1], 2), atol=1e-5)
