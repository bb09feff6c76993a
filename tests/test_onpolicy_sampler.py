"""The merged sampler: after the adapter moves, its logits are the peft model's, and refreshing never drifts.

Usage:
    .venv/bin/python -m pytest tests/test_onpolicy_sampler.py -q
"""

from __future__ import annotations

import pytest
import torch

from distill.onpolicy.sampler import MergedSampler
from tiny_student import make_tiny_student


@pytest.fixture()
def peft_model(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(make_tiny_student(tmp_path / "s"))
    return get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0)).eval()


def _move_adapter(model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def test_refreshed_copy_computes_what_the_peft_model_computes(peft_model):
    sampler = MergedSampler(peft_model)
    ids = torch.tensor([[5, 17, 9, 30, 41, 7]])
    for seed in range(3):  # the adapter moves as training would move it; the copy follows after each refresh
        _move_adapter(peft_model, seed)
        sampler.refresh()
        with torch.no_grad():
            want, got = peft_model(input_ids=ids).logits, sampler.model(input_ids=ids).logits
        assert torch.allclose(want, got, atol=1e-5), (want - got).abs().max()
    _move_adapter(peft_model, 99)
    with torch.no_grad():  # the adapter back to zero: the copy is the base again, bit for bit (no drift)
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.zero_()
    sampler.refresh()
    from peft.tuners.lora import LoraLayer

    weights = dict(sampler.model.named_parameters())
    layers = [(n, m) for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)]
    assert layers
    for name, layer in layers:
        merged = weights[name.removeprefix("base_model.model.") + ".weight"]
        assert torch.equal(merged, layer.get_base_layer().weight), name


def test_dora_and_modules_to_save_are_sampled_through_peft():
    from distill.finetune.config import LoraConfig

    assert MergedSampler.fits(LoraConfig()) and not MergedSampler.fits(LoraConfig(use_dora=True))
    assert not MergedSampler.fits(LoraConfig(modules_to_save=["lm_head"]))
