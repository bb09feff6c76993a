"""Eval helpers without a model: base-model matching, the trained system prompt, config checks, light imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distill.config import load_config
from distill.errors import ConfigError, InputError
from distill.adapters import check_adapter_base, read_base, same_model
from distill.evaluate.config import EvalConfig
from distill.evaluate.stage import as_trained


def _adapter(path, base, record=None):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    if record is not None:
        (path / "distill.json").write_text(json.dumps(record))
    return path


def test_same_model_by_name_path_and_copy(tmp_path):
    a = tmp_path / "a" / "SmolLM2-135M-Instruct"
    a.mkdir(parents=True)
    (a / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (a / "model.safetensors").write_bytes(b"w" * 100)
    b = tmp_path / "copy"
    b.mkdir()
    (b / "config.json").write_text(json.dumps({"hidden_size": 8, "_name_or_path": "x"}))
    (b / "model.safetensors").write_bytes(b"w" * 100)
    c = tmp_path / "other"
    c.mkdir()
    (c / "config.json").write_text(json.dumps({"hidden_size": 8}))
    (c / "model.safetensors").write_bytes(b"v" * 100)  # same shapes, other weights
    assert same_model(str(a), str(a) + "/")
    assert same_model(str(a), str(b))
    assert not same_model(str(a), str(c))
    assert same_model("HuggingFaceTB/SmolLM2-135M-Instruct", str(a))
    assert same_model("huggingfacetb/smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert not same_model("Qwen/Qwen2.5-0.5B", "HuggingFaceTB/SmolLM2-135M-Instruct")


def _record(folder, **fields):
    from distill.artifacts import AdapterRecord

    values = dict(student="Qwen/Qwen2.5-0.5B", base_model="Qwen/Qwen2.5-0.5B", base_path="/gone/student",
                  base_weights=None, prompt_template="Q: {question}", system_prompt=None, reasoning_format="{content}",
                  chat_template=None, data={}, hyperparameters={})
    values.update(fields)
    AdapterRecord(**values).write(folder)


def test_adapter_base_check_reads_the_record_else_the_peft_config(tmp_path):
    ad = _adapter(tmp_path / "ad", "/gone/student")
    _record(ad)
    assert read_base(ad).refs == ["Qwen/Qwen2.5-0.5B", "/gone/student", "Qwen/Qwen2.5-0.5B"]
    check_adapter_base(ad, "Qwen/Qwen2.5-0.5B")
    with pytest.raises(InputError, match="trained on 'Qwen/Qwen2.5-0.5B'.*student='meta-llama/Llama-3.2-1B'"):
        check_adapter_base(ad, "meta-llama/Llama-3.2-1B")
    foreign = _adapter(tmp_path / "foreign", "meta-llama/Llama-3.2-1B")  # a PEFT adapter made elsewhere
    check_adapter_base(foreign, "meta-llama/Llama-3.2-1B")
    with pytest.raises(InputError, match="trained on 'meta-llama/Llama-3.2-1B'"):
        check_adapter_base(foreign, "Qwen/Qwen2.5-0.5B")
    with pytest.raises(InputError, match="no adapter_config.json"):
        read_base(tmp_path)


def test_an_adapter_record_of_another_schema_is_refused_by_name(tmp_path):
    ad = _adapter(tmp_path / "ad", "s", {"schema": 1, "student": "s", "hyperparameters": {}})
    with pytest.raises(InputError, match=r"distill.json.*schema version 1, this distill reads version 2"):
        read_base(ad)


def test_prompt_comes_from_the_adapter_record_unless_given(tmp_path):
    ad = _adapter(tmp_path / "ad", "s")
    _record(ad, prompt_template="Q: {question}", system_prompt="Think first.")
    cfg = as_trained(load_config(EvalConfig, None, ["problems=p.jsonl", "student=s", f"adapter={ad}"]))
    assert (cfg.prompt_template, cfg.system_prompt) == ("Q: {question}", "Think first.")
    given = as_trained(load_config(EvalConfig, None, ["problems=p.jsonl", "student=s", f"adapter={ad}",
                                                      "system_prompt=Mine", "prompt_template=A {question}"]))
    assert (given.prompt_template, given.system_prompt) == ("A {question}", "Mine")
    bare = as_trained(load_config(EvalConfig, None, ["problems=p.jsonl", "student=s"]))
    from distill.render import DEFAULT_PROMPT

    assert (bare.prompt_template, bare.system_prompt) == (DEFAULT_PROMPT, None)


@pytest.mark.parametrize("args,message", [
    (["samples=0"], "samples"), (["compare_base=true"], "adapter"), (["prompt_template=no slot"], "question"),
    (["backend=vlm"], "backend"),
])
def test_bad_options_fail_clearly(args, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EvalConfig, None, ["problems=p.jsonl", *args])


def test_config_modules_stay_light():
    code = ("import sys, distill.evaluate, distill.evaluate.config, distill.publish, distill.publish.config;"
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'huggingface_hub', 'datasets')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
