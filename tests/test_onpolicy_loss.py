"""The on-policy losses against a hand-computed full-vocabulary reverse KL on a tiny vocabulary.

Usage:
    .venv/bin/python -m pytest tests/test_onpolicy_loss.py -q
"""

from __future__ import annotations

import pytest
import torch

from distill.onpolicy.loss import sampled_reverse_kl, topk_reverse_kl

V, T = 7, 5


def fixed_batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(2, T, V, generator=gen) * 1.5
    teacher = torch.log_softmax(torch.randn(2, T, V, generator=gen) * 1.5, dim=-1)
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[0, :2] = False  # prompt positions
    mask[1, 4] = False  # a placeholder position
    return student, teacher, mask


def full_reverse_kl(student_logits, teacher_logp, mask):
    """sum_v p_s(v) (log p_s(v) - log p_t(v)), averaged over the masked positions, written out."""
    total, count = 0.0, 0
    for b in range(student_logits.shape[0]):
        for t in range(student_logits.shape[1]):
            if not mask[b, t]:
                continue
            logp = torch.log_softmax(student_logits[b, t], -1)
            total = total + sum(logp[v].exp() * (logp[v] - teacher_logp[b, t, v]) for v in range(V))
            count += 1
    return total / count


def test_topk_with_k_equal_to_the_vocabulary_is_the_full_reverse_kl():
    student, teacher, mask = fixed_batch()
    ids = torch.arange(V).expand(2, T, V)
    out = topk_reverse_kl(student, ids, teacher, mask)
    expected = full_reverse_kl(student, teacher, mask)
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert out.tokens.item() == mask.sum().item() == 7
    # the order of the teacher's ids does not matter
    perm = torch.randperm(V, generator=torch.Generator().manual_seed(3))
    shuffled = topk_reverse_kl(student, ids[..., perm], teacher[..., perm], mask)
    assert shuffled.loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_topk_gradient_matches_the_full_kl_gradient():
    student, teacher, mask = fixed_batch(1)
    a = student.clone().requires_grad_(True)
    b = student.clone().requires_grad_(True)
    topk_reverse_kl(a, torch.arange(V).expand(2, T, V), teacher, mask).loss.backward()
    full_reverse_kl(b, teacher, mask).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)
    assert a.grad[~mask].abs().max() == 0  # masked positions carry no gradient


def test_topk_renormalises_on_the_teacher_support_and_the_tail_bucket_keeps_the_rest():
    student, teacher, mask = fixed_batch(2)
    k = 3
    top_logp, top_ids = teacher.topk(k, dim=-1)
    s = torch.log_softmax(student, -1).gather(-1, top_ids)
    sr, tr = torch.log_softmax(s, -1), torch.log_softmax(top_logp, -1)
    expected = ((sr.exp() * (sr - tr)).sum(-1)[mask]).mean()
    assert topk_reverse_kl(student, top_ids, top_logp, mask).loss.item() == pytest.approx(expected.item(), abs=1e-6)
    s_rest = torch.log1p(-s.exp().sum(-1, keepdim=True))
    t_rest = torch.log1p(-top_logp.exp().sum(-1, keepdim=True))
    st, tt = torch.cat([s, s_rest], -1), torch.cat([top_logp, t_rest], -1)
    expected_tail = ((st.exp() * (st - tt)).sum(-1)[mask]).mean()
    got = topk_reverse_kl(student, top_ids, top_logp, mask, tail=True).loss.item()
    assert got == pytest.approx(expected_tail.item(), abs=1e-5)


def test_padded_topk_slots_are_ignored():
    student, teacher, mask = fixed_batch(4)
    top_logp, top_ids = teacher.topk(3, dim=-1)
    padded_ids = torch.cat([top_ids, torch.zeros_like(top_ids[..., :2])], -1)
    padded_logp = torch.cat([top_logp, torch.full_like(top_logp[..., :2], -9999.0)], -1)
    slots = torch.cat([torch.ones_like(top_ids, dtype=torch.bool), torch.zeros_like(top_ids[..., :2], dtype=torch.bool)], -1)
    plain = topk_reverse_kl(student, top_ids, top_logp, mask).loss
    padded = topk_reverse_kl(student, padded_ids, padded_logp, mask, top_mask=slots).loss
    assert torch.isfinite(padded) and padded.item() == pytest.approx(plain.item(), abs=1e-6)


def test_sampled_estimator_in_expectation_is_the_full_reverse_kl_and_its_gradient():
    """Weight every possible sampled token by its student probability: the expectation, exactly."""
    student, teacher, mask = fixed_batch(5)
    logits = student.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, -1)  # [2, T, V]
    # rows = (batch, vocab) pairs: row (b, y) "sampled" token y at every position of sequence b
    s_lp = logp.permute(0, 2, 1).reshape(2 * V, T)
    t_lp = teacher.permute(0, 2, 1).reshape(2 * V, T)
    weight = logp.detach().exp().permute(0, 2, 1).reshape(2 * V, T) * mask.repeat_interleave(V, 0)
    out = sampled_reverse_kl(s_lp, t_lp, weight)
    expected_logits = student.clone().requires_grad_(True)
    expected = full_reverse_kl(expected_logits, teacher, mask)
    expected.backward()
    out.loss.backward()
    assert out.reverse_kl.item() == pytest.approx(expected.item(), abs=1e-6)
    assert torch.allclose(logits.grad, expected_logits.grad, atol=1e-6)


def test_sampled_estimator_on_real_samples_converges_to_the_kl():
    student, teacher, mask = fixed_batch(6)
    logp = torch.log_softmax(student[0, 3], -1)
    draws = torch.multinomial(logp.exp(), 20000, replacement=True, generator=torch.Generator().manual_seed(0))
    out = sampled_reverse_kl(logp[draws][None], teacher[0, 3][draws][None], torch.ones(1, len(draws)))
    exact = (logp.exp() * (logp - teacher[0, 3])).sum()
    assert out.reverse_kl.item() == pytest.approx(exact.item(), abs=0.05)


def test_advantage_is_detached_and_masked_positions_do_not_move_the_student():
    s = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    t = torch.tensor([[-0.5, -3.0, -9.0]])
    m = torch.tensor([[1, 1, 0]])
    out = sampled_reverse_kl(s, t, m)
    out.loss.backward()
    # d/ds of -(t - s).detach() * s / 2 = -(t - s) / 2 where masked in, 0 where out
    assert s.grad[0].tolist() == pytest.approx([-0.25, 0.5, 0.0])
    assert out.reverse_kl.item() == pytest.approx(((-1 + 0.5) + (-2 + 3)) / 2)
