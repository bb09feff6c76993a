"""Decoding that drops finished rows: the same greedy tokens as `model.generate`, a working nucleus, seeds."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from distill.decode.regroup import generate_regrouped


@pytest.fixture(scope="module")
def model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=64, max_position_embeddings=256,
                         pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
                         initializer_range=0.6)  # large weights: greedy rows wander instead of repeating a token
    return LlamaForCausalLM(config).eval()


def _prompts(n: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(5)
    return [torch.randint(3, 64, (int(length),), generator=gen).tolist()
            for length in torch.randint(2, 12, (n,), generator=gen)]


def _hf_generate(model, prompts, eos_ids, budget):
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=budget, do_sample=False,
                             eos_token_id=eos_ids, pad_token_id=0)
    rows = out[:, width:].tolist()
    return [row[:next((k + 1 for k, t in enumerate(row) if t in eos_ids), len(row))] for row in rows]


def _ending_tokens(model, prompts):
    """A token the greedy rows first write at many different steps: as EOS, rows end at different times."""
    free = _hf_generate(model, prompts, [63], 24)  # 63: only a stand-in, so every row runs the full budget

    def spread(token):
        return len({row.index(token) for row in free if token in row})

    return [max({t for row in free for t in row} - {63}, key=spread)]


def test_greedy_rows_are_the_tokens_generate_writes_and_rows_end_at_different_steps(model):
    prompts = _prompts(12)
    eos = _ending_tokens(model, prompts)
    mine = generate_regrouped(model, prompts, eos, 0, 24)
    assert mine == _hf_generate(model, prompts, eos, 24)
    lengths = {len(row) for row in mine}
    assert len(lengths) > 2, lengths  # the case this exists for: rows that end early leave the batch
    assert all(row[-1] in eos or len(row) == 24 for row in mine)


def test_a_tiny_nucleus_is_greedy_and_sampling_repeats_by_seed(model):
    prompts = _prompts(6)
    greedy = generate_regrouped(model, prompts, [1], 0, 10)
    assert generate_regrouped(model, prompts, [1], 0, 10, temperature=1.0, top_p=1e-6, seed=4) == greedy
    a = generate_regrouped(model, prompts, [1], 0, 10, temperature=1.5, top_p=1.0, seed=4)
    assert a == generate_regrouped(model, prompts, [1], 0, 10, temperature=1.5, top_p=1.0, seed=4)
    assert a != generate_regrouped(model, prompts, [1], 0, 10, temperature=1.5, top_p=1.0, seed=5)
    assert a != greedy


def test_the_nucleus_keeps_only_the_tokens_reaching_top_p():
    from distill.decode.regroup import _pick

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    drawn = Counter(_pick(logits, 1.0, 0.7, gen).item() for _ in range(400))
    assert set(drawn) == {0, 1}  # 0.5 + 0.3 reaches 0.7; 2 and 3 are outside the nucleus
    assert 0.5 < drawn[0] / 400 < 0.75  # renormalised 0.5 / 0.8 = 0.625
