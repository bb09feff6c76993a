"""bf16 where the hardware has it: CPU flag detection, the autocast training path, merged-adapter eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from finetune_fixtures import write_kept_traces
from tiny_student import make_tiny_student
from trained_tiny import make_answering_student, train_answer_adapter

from distill.config import load_config
from distill.hardware import Bf16Support, bf16_support, cpu_bf16, cpu_flags, use_bf16

torch.set_num_threads(1)

ZEN4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 vaes\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx512f amx_tile amx_int8 amx_bf16\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd sve bf16\n"


@pytest.mark.parametrize("cpuinfo, supported, reason", [
    (ZEN4, True, "avx512_bf16"),
    (SAPPHIRE, True, "amx_bf16"),
    (SKYLAKE, False, "without"),   # AVX-512 alone: PyTorch emulates bf16, slower than fp32
    (GRAVITON, False, "without"),  # ARM bf16 is not what oneDNN's fast path needs: stay on fp32
])
def test_cpu_bf16_follows_the_instruction_flags(cpuinfo, supported, reason):
    support = cpu_bf16(cpu_flags(cpuinfo))
    assert support.device == "cpu" and support.supported is supported and reason in support.reason


def test_without_cpuinfo_torch_capability_decides():
    assert cpu_bf16(set(), capability="AMX").supported
    assert not cpu_bf16(set(), capability="AVX512").supported
    assert cpu_flags("no flags line here") == set()


def test_this_machine_is_detected_from_its_own_cpuinfo():
    support = bf16_support()
    assert isinstance(support, Bf16Support)
    if not torch.cuda.is_available():
        flags = cpu_flags()
        assert support.supported == bool(flags & {"avx512_bf16", "amx_bf16"}), (support, sorted(flags)[:5])
    assert use_bf16("auto") is support.supported
    assert use_bf16("true") is True and use_bf16("false") is False


def test_bf16_autocast_runs_the_linear_layers_in_bf16_and_trains(tmp_path):
    """bf16=true: the matmuls run in bf16 (seen by a hook), the adapter stays float32, loss falls."""
    from distill.finetune import FinetuneConfig, run
    from distill.finetune import build, train as loop
    from distill.student import load_tokenizer
    from distill.examples import collate, encode_samples, read_samples
    from distill.render import DEFAULT_FORMAT

    student = make_tiny_student(tmp_path / "s")
    data = write_kept_traces(tmp_path / "kept.jsonl", n=8, min_terms=2, max_terms=4)
    cfg = load_config(FinetuneConfig, None, [f"data={data}", f"student={student}", f"out={tmp_path / 'o'}",
                                             "progress=false", "batch_size=4", "lora.r=8", "bf16=true"])
    model = build.build_model(Path(student), cfg, base_bf16=False, autocast_bf16=True)
    tok, gen = load_tokenizer(Path(student), cfg.chat_template)
    batch = collate(encode_samples(read_samples(data)[0], tok, DEFAULT_FORMAT, 512).examples[:4], True,
                    tok.pad_token_id)
    seen: list[torch.dtype] = []
    summed: list[torch.dtype] = []
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    q_proj.base_layer.register_forward_hook(lambda mod, args, out: seen.append(out.dtype), prepend=True)
    q_proj.register_forward_hook(lambda mod, args, out: summed.append(out.dtype))
    for is_bf16, expected in ((True, torch.bfloat16), (False, torch.float32), (True, torch.bfloat16)):
        acc = build.accelerator(is_bf16)  # a later run may change the precision in the same process
        loss = loop._batch_loss(model, dict(batch), acc)
        assert seen[-1] == expected and loss.dtype == torch.float32 and torch.isfinite(loss)
        assert summed[-1] == torch.float32  # the LoRA term is added in fp32, not rounded to bf16
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)

    out = run(load_config(FinetuneConfig, None, [
        f"data={data}", f"student={student}", f"out={tmp_path / 'bf16'}", "progress=false", "batch_size=4",
        "lora.r=8", "bf16=true", "max_steps=12", "learning_rate=1e-2", "warmup_ratio=0", "lora.dropout=0"]))
    record = json.loads((out / "distill.json").read_text())
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert record["metrics"]["bf16"] is True and record["hyperparameters"]["bf16"] == "true"
    assert rows[-1]["loss"] < rows[0]["loss"]


@pytest.fixture(scope="module")
def answering(tmp_path_factory):
    root = tmp_path_factory.mktemp("answering")
    questions = [f"What is {i} plus {i}? " * (1 + i % 3) for i in range(6)]
    student = make_answering_student(root / "student", answer="7", questions=questions)
    adapter = train_answer_adapter(student, root / "adapter", answer="8", questions=questions)
    return student, adapter, questions


def _backend(student, dtype: str, adapter=None):
    from distill.decode.backends import LocalBackend
    from distill.evaluate.config import EvalConfig

    cfg = load_config(EvalConfig, None, [f"student={student}", "problems=x", "max_new_tokens=24",
                                         "batch_size=4", f"dtype={dtype}", "progress=false"])
    return LocalBackend.load(cfg, adapter=str(adapter) if adapter else None)


def test_merged_adapter_generates_what_the_unmerged_peft_model_does(answering):
    from peft import PeftModel

    from distill.render import render_prompt
    from distill.render import DEFAULT_PROMPT

    student, adapter, questions = answering
    backend = _backend(student, "float32", adapter)
    assert not isinstance(backend.model, PeftModel)  # merged: plain linear layers, no LoRA per token
    assert not any("lora" in name for name, _ in backend.model.named_parameters())
    prompts = [render_prompt(backend.tokenizer, DEFAULT_PROMPT.format(question=q)) for q in questions]
    merged = [a.response for a in backend.generate(prompts)]

    unmerged = PeftModel.from_pretrained(backend.base, str(adapter)).eval()
    backend.model = unmerged
    assert [a.response for a in backend.generate(prompts)] == merged
    assert all(r.endswith("\\boxed{8}") for r in merged), merged[:2]

    # the base weights stayed as loaded: without the adapter the student still answers 7
    base = _backend(student, "float32")
    assert all(a.response.endswith("\\boxed{7}") for a in base.generate(prompts))


def test_bf16_eval_casts_a_copy_and_keeps_the_greedy_answers(answering):
    student, adapter, questions = answering
    from distill.render import render_prompt
    from distill.render import DEFAULT_PROMPT

    fp32, bf16 = _backend(student, "float32", adapter), _backend(student, "bfloat16", adapter)
    assert bf16.model.dtype == torch.bfloat16 and bf16.base.dtype == torch.float32  # merged in fp32, then cast
    prompts = [render_prompt(fp32.tokenizer, DEFAULT_PROMPT.format(question=q)) for q in questions]
    assert [a.content for a in bf16.generate(prompts)] == [a.content for a in fp32.generate(prompts)]
    auto = _backend(student, "auto")
    assert auto.model.dtype == (torch.bfloat16 if bf16_support().supported else torch.float32)


def test_eval_key_names_the_generation_dtype(monkeypatch):
    """bf16 changes greedy answers, so answers made in float32 and in bf16 never share an eval folder."""
    from distill import hardware
    from distill.config import load_config
    from distill.evaluate.config import EvalConfig
    from distill.evaluate.stage import eval_key

    def key(dtype):
        return eval_key(load_config(EvalConfig, None, ["problems=x.jsonl", "student=s", f"dtype={dtype}"]), None)

    assert key("float32") != key("bfloat16")
    monkeypatch.setattr(hardware, "use_bf16", lambda setting: True)
    assert key("auto") == key("bfloat16")  # auto is keyed by what it resolves to on this machine
    monkeypatch.setattr(hardware, "use_bf16", lambda setting: False)
    assert key("auto") != key("bfloat16")
