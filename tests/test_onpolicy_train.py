"""`distill finetune method=on_policy` on a tiny student: self teacher, endpoint teacher, refusals.

Usage:
    .venv/bin/python -m pytest tests/test_onpolicy_train.py -q
"""

from __future__ import annotations

import json

import pytest
import torch

from distill.config import load_config
from distill.errors import ConfigError
from distill.finetune import run
from distill.finetune.config import FinetuneConfig
from distill.teacher.logprobs import TeacherLogprobError
from distill.teacher.model_server import ModelScorer, ModelTeacherServer
from finetune_fixtures import write_kept_traces as write_traces
from logprob_servers import BigramLM, ScoringServer
from tiny_student import make_tiny_student


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("onpolicy")
    return {"student": make_tiny_student(root / "student"), "teacher": make_tiny_student(root / "teacher", seed=1),
            "data": write_traces(root / "kept.jsonl", n=6, max_terms=3)}


def config(tiny, out, *extra: str) -> FinetuneConfig:
    return load_config(FinetuneConfig, None, [
        f"data={tiny['data']}", f"student={tiny['student']}", f"out={out}", "method=on_policy", "max_steps=2",
        "batch_size=2", "onpolicy.max_new_tokens=10", "learning_rate=0.01", "progress=false", "lora.r=4",
        *extra])


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]


def lora_b_norm(out) -> float:
    from safetensors.torch import load_file

    weights = load_file(out / "adapter_model.safetensors")
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


@pytest.mark.parametrize("loss", ["sampled", "topk"])
def test_self_teacher_trains_and_writes_an_adapter(tiny, tmp_path, loss):
    out = run(config(tiny, tmp_path / "adapter", f"onpolicy.loss={loss}", "onpolicy.top_k=16"))
    log = rows(out)
    assert [r["step"] for r in log] == [1, 2]
    assert all(r["tokens"] > 0 and r["attempt_tokens"] >= r["tokens"] and r["placeholders"] == 0 for r in log)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    record = json.loads((out / "distill.json").read_text())
    assert record["metrics"]["method"] == "on_policy" and record["hyperparameters"]["onpolicy"]["loss"] == loss
    assert lora_b_norm(out) > 0  # LoRA B starts at zero: a step moved it


@pytest.mark.parametrize("loss", ["sampled", "topk"])
def test_endpoint_teacher_scores_every_attempt(tiny, tmp_path, loss):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scorer = ModelScorer(AutoModelForCausalLM.from_pretrained(tiny["teacher"]).eval(),
                         AutoTokenizer.from_pretrained(tiny["teacher"]), max_logprobs=8)
    with ModelTeacherServer(scorer, model="tiny-teacher") as srv:
        out = run(config(tiny, tmp_path / "adapter", "onpolicy.teacher=endpoint", f"onpolicy.base_url={srv.base_url}",
                         f"onpolicy.loss={loss}", "onpolicy.top_k=8"))
        requests = srv.stats.requests
    assert requests == 1 + 2 * 2  # the tokenizer probe, then one scoring request per attempt
    log = rows(out)
    assert len(log) == 2 and all(r["tokens"] > 0 and r["placeholders"] == 0 for r in log)
    assert lora_b_norm(out) > 0


def test_endpoint_placeholders_are_masked_and_logged(tiny, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["student"])
    lm = BigramLM(len(tokenizer), seed=2)
    placeholders = {i: 0.0 for i in range(0, 400, 3)}  # every third position of any sequence
    with ScoringServer("sglang", lm, tokenizer, placeholders=placeholders) as srv:
        out = run(config(tiny, tmp_path / "adapter", "onpolicy.teacher=endpoint", f"onpolicy.base_url={srv.base_url}",
                         "onpolicy.server=sglang", "max_steps=1"))
    row = rows(out)[0]
    assert row["placeholders"] > 0 and row["tokens"] + row["placeholders"] == row["attempt_tokens"]
    assert json.loads((out / "distill.json").read_text())["metrics"]["placeholders_masked"] == row["placeholders"]


def test_a_teacher_that_returns_only_placeholders_stops_the_run_instead_of_training_nothing(tiny, tmp_path):
    """Every position a placeholder: no token is scored, so a step would leave the adapter at zero and exit 0."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["student"])
    placeholders = {i: 0.0 for i in range(5000)}
    with ScoringServer("sglang", BigramLM(len(tokenizer), seed=2), tokenizer, placeholders=placeholders) as srv:
        with pytest.raises(TeacherLogprobError, match="scored none of the student's"):
            run(config(tiny, tmp_path / "adapter", "onpolicy.teacher=endpoint", f"onpolicy.base_url={srv.base_url}",
                       "onpolicy.server=sglang", "max_steps=2"))
    assert not (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_a_teacher_with_another_tokenizer_is_refused_before_any_step(tiny, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny["student"])
    byte_ids = lambda text: [b + 3 for b in text.encode()]  # noqa: E731
    with ScoringServer("vllm", BigramLM(len(tokenizer)), tokenizer, tokenize=byte_ids) as srv:
        with pytest.raises(TeacherLogprobError, match="tokenizer differs"):
            run(config(tiny, tmp_path / "adapter", "onpolicy.teacher=endpoint", f"onpolicy.base_url={srv.base_url}"))
        assert srv.requests == 1
    assert not (tmp_path / "adapter" / "loss.jsonl").exists()


def test_on_policy_options_it_cannot_honour_are_refused(tiny, tmp_path):
    with pytest.raises(ConfigError, match="onpolicy.base_url is required"):
        config(tiny, tmp_path / "a", "onpolicy.teacher=endpoint")
    with pytest.raises(ConfigError, match="eval_fraction is not supported with method=on_policy"):
        config(tiny, tmp_path / "a", "eval_fraction=0.25")


def probe_kl(model, teacher, tokenizer) -> float:
    """Full-vocabulary reverse KL on fixed text the run never trains on."""
    from distill.onpolicy.forward import completion_logits

    prompts = [tokenizer("Compute 1 + 2.")["input_ids"], tokenizer("Compute 3 + 4 + 5.")["input_ids"]]
    texts = [tokenizer(" The answer is 3 step by step")["input_ids"], tokenizer(" First 3 + 4 = 7 then 12")["input_ids"]]
    with torch.no_grad():
        s, _, mask = completion_logits(model, prompts, texts, 0)
        t, _, _ = completion_logits(teacher, prompts, texts, 0)
    s, t = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
    return float((s.exp() * (s - t)).sum(-1)[mask].mean())


@pytest.mark.parametrize("loss", ["sampled", "topk"])
def test_on_policy_distillation_pulls_the_student_toward_the_teacher(tiny, tmp_path, loss):
    """The teacher is the student plus a rank-1 change per MLP that LoRA can learn: the KL must fall."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.student import load_student

    tokenizer = AutoTokenizer.from_pretrained(tiny["student"])
    teacher = AutoModelForCausalLM.from_pretrained(tiny["student"]).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in teacher.model.layers:
            w = layer.mlp.down_proj.weight
            w.add_(torch.randn(w.shape[0], 1, generator=gen) @ torch.randn(1, w.shape[1], generator=gen) * 3.0)
    before = probe_kl(AutoModelForCausalLM.from_pretrained(tiny["student"]).eval(), teacher, tokenizer)
    with ModelTeacherServer(ModelScorer(teacher, tokenizer, max_logprobs=-1)) as srv:
        out = run(config(tiny, tmp_path / "adapter", "onpolicy.teacher=endpoint", f"onpolicy.base_url={srv.base_url}",
                         f"onpolicy.loss={loss}", "onpolicy.top_k=64", "max_steps=16", "batch_size=4",
                         "onpolicy.max_new_tokens=16", "warmup_ratio=0"))
    after = probe_kl(load_student(tiny["student"], adapter=out)[0], teacher, tokenizer)
    assert after < 0.6 * before, (before, after)


def test_a_model_teacher_over_http_is_served_on_loopback_for_the_run(tiny, tmp_path, monkeypatch):
    import urllib.request

    from distill.teacher import model_server

    servers: list = []
    make = model_server.model_server
    monkeypatch.setattr(model_server, "model_server", lambda *a, **k: servers.append(make(*a, **k)) or servers[-1])
    out = run(config(tiny, tmp_path / "adapter", "onpolicy.teacher=model", f"onpolicy.teacher_model={tiny['teacher']}",
                     "onpolicy.loss=topk", "onpolicy.top_k=8", "onpolicy.over_http=true"))
    assert len(servers) == 1 and servers[0].base_url.startswith("http://127.0.0.1:")
    assert servers[0].stats.requests == 1 + 2 * 2  # the tokenizer probe, then one request per attempt
    assert all(r["tokens"] > 0 for r in rows(out)) and lora_b_norm(out) > 0
    with pytest.raises(OSError):  # the server lived for the training only
        urllib.request.urlopen(servers[0].base_url + "/models", timeout=2)
    with pytest.raises(ConfigError, match="onpolicy.teacher_model is required"):
        config(tiny, tmp_path / "b", "onpolicy.teacher=model")


@pytest.mark.parametrize("loss", ["sampled", "topk"])
def test_a_local_model_teacher_scores_as_the_same_model_served_over_http(tiny, tmp_path, loss):
    """In this process (batched, no server) or over HTTP as a vLLM teacher: the same attempts, the same loss."""
    args = ("onpolicy.teacher=model", f"onpolicy.teacher_model={tiny['teacher']}", f"onpolicy.loss={loss}",
            "onpolicy.top_k=8", "max_steps=1", "lora.dropout=0")
    local = rows(run(config(tiny, tmp_path / "local", *args)))[0]
    served = rows(run(config(tiny, tmp_path / "http", *args, "onpolicy.over_http=true")))[0]
    assert local["attempt_tokens"] == served["attempt_tokens"] and local["tokens"] == served["tokens"] > 0
    assert local["reverse_kl"] == pytest.approx(served["reverse_kl"], abs=1e-4)
    assert local["loss"] == pytest.approx(served["loss"], abs=1e-4)
