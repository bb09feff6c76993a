"""`distill publish` against a loopback fake Hub: round trip (PEFT + datasets + cards), secret scan,
base-model guard, dry run. The client runs in subprocesses because huggingface_hub and datasets read
HF_ENDPOINT at import time and the test process is offline (conftest)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from distill.artifacts import AdapterRecord, BaseWeights, EvalReport, FilterStats
from distill.config import load_config
from distill.errors import InputError
from distill.publish import run
from distill.publish.config import PublishConfig
from fakehub import FakeHub
from tiny_student import make_tiny_student

FAKE_TOKEN = "hf_" + "f" * 34  # the fake ignores it; it must never end up in an uploaded file


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """A finished run's files: student, adapter (+distill.json), traces + config, kept + stats, eval report."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("run")
    student = make_tiny_student(root / "student")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(student),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = root / "adapter"
    model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(student).save_pretrained(adapter)
    AdapterRecord(
        student="smollm2", base_model="HuggingFaceTB/SmolLM2-135M-Instruct", base_path=str(student),
        base_weights=BaseWeights(file="SmolLM2-135M-Instruct.Q4_1.gguf", quantisation="Q4_1", sha256="cd" * 32,
                                 dtype="float32"),
        prompt_template="Q: {question}", system_prompt="Think first.", reasoning_format="{content}",
        chat_template=None, data={"path": str(root / "kept.jsonl"), "sha256": "ab" * 32, "examples": 3},
        hyperparameters={"lora": {"r": 4, "alpha": 8}, "lr": 2e-4, "epochs": 1.0},
        versions={"torch": "2.13.0"}, metrics={"final_loss": 1.23}).write(adapter)
    shutil.copytree(student, adapter / "merged")  # stands in for finetune merge=true output
    (adapter / "checkpoints").mkdir()
    (adapter / "checkpoints" / "optimizer.pt").write_bytes(b"x")
    traces = []
    for i in range(4):
        traces.append({"schema": 1, "id": f"p{i}", "sample": 0, "question": f"What is {i}+1?", "answer": str(i + 1),
                       "kind": "math", "messages": [{"role": "user", "content": f"What is {i}+1?"}],
                       "reasoning": f"{i} plus one is {i + 1}", "content": f"\\boxed{{{i + 1}}}",
                       "finish_reason": "stop", "truncated": False, "model": "deepseek-reasoner",
                       "usage": {"prompt_tokens": 10, "completion_tokens": 20, "reasoning_tokens": 12, "cached_tokens": 0},
                       "cost_usd": 0.001, "latency_s": 1.0, "attempts": 1, "error": None, "created_at": "2026-01-01"})
    (root / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
    (root / "traces.config.yaml").write_text(yaml.safe_dump({
        "model": "deepseek-reasoner", "base_url": "https://api.deepseek.com/v1", "api_key_env": "DEEPSEEK_API_KEY",
        "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768, "samples": 1, "problems": "rg:chain_sum"}))
    kept = [dict(t, verdict={"correct": True, "extracted": t["answer"], "reason": "correct"}) for t in traces[:3]]
    (root / "kept.jsonl").write_text("".join(json.dumps(k) + "\n" for k in kept))
    (root / "stats.json").write_text(json.dumps(FilterStats(
        inputs={"traces": str(root / "traces.jsonl")}, traces={"lines": 4, "unique": 4}, kept=3, rejected=1,
        kept_share=0.75, verifier={"correct": 3, "wrong_answer": 1},
        funnel=[{"step": "input", "dropped": 0, "left": 4}, {"step": "wrong_answer", "dropped": 1, "left": 3}]
    ).to_dict()))
    (root / "eval").mkdir()
    EvalReport(
        eval_key="k", model={"backend": "local"}, run={}, created_at="2026-01-01",
        settings={"problems": "rg:chain_sum", "samples": 1, "max_new_tokens": 64, "temperature": 0.0},
        metrics={"problems": 20, "pass@1": 0.45, "pass@k": {"pass@1": 0.45}, "answered": 0.9, "truncated": 0.05,
                 "mean_reasoning_tokens": 40.0},
        compare={"paired_problems": 20, "before": 0.2, "after": 0.45, "difference": 0.25,
                 "interval": {"low": 0.05, "high": 0.45, "method": "paired bootstrap", "confidence": 0.95}},
    ).write(root / "eval" / "report.json")
    return {"root": root, "student": student, "adapter": adapter}


def _args(records, tmp_path, *extra):
    r = records["root"]
    return [f"adapter={records['adapter']}", "repo_id=tester/tiny-distill", f"dataset={r / 'kept.jsonl'}",
            "dataset_repo_id=tester/tiny-traces", f"eval={r / 'eval'}", f"out={tmp_path / 'stage'}", *extra]


def _env(hub, tmp_path, token=True):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"), DISTILL_PROGRESS="0",
               HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = FAKE_TOKEN
    return env


def _publish(hub, tmp_path, args, token=True):
    return subprocess.run([sys.executable, "-m", "distill", "publish", *args], capture_output=True, text=True,
                          env=_env(hub, tmp_path, token), timeout=300)


LOADER = textwrap.dedent("""
    import json, sys
    from datasets import load_dataset
    from huggingface_hub import DatasetCard, ModelCard
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
    model = PeftModel.from_pretrained(base, "tester/tiny-distill")
    ds = load_dataset("tester/tiny-traces", split="train")
    mc, dc = ModelCard.load("tester/tiny-distill"), DatasetCard.load("tester/tiny-traces")
    print(json.dumps({"lora_r": model.peft_config["default"].r, "rows": len(ds), "columns": ds.column_names,
                      "first": ds[0]["reasoning"], "model_meta": mc.data.to_dict(), "dataset_meta": dc.data.to_dict(),
                      "model_text": mc.text, "dataset_text": dc.text}))
""")


@pytest.mark.slow
def test_round_trip_through_the_fake_hub(records, tmp_path):
    with FakeHub() as hub:
        proc = _publish(hub, tmp_path, _args(records, tmp_path))
        assert proc.returncode == 0, proc.stderr
        files = hub.files("model", "tester/tiny-distill")
        assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "distill.json"} <= set(files)
        assert not any("checkpoints" in p or p.endswith(".pt") for p in files)
        assert "data/train-00000-of-00001.parquet" in hub.files("dataset", "tester/tiny-traces")
        for repo in (("model", "tester/tiny-distill"), ("dataset", "tester/tiny-traces")):
            assert not any(FAKE_TOKEN.encode() in data for data in hub.files(*repo).values())
        loaded = subprocess.run([sys.executable, "-c", LOADER, str(records["student"])], capture_output=True,
                                text=True, env=_env(hub, tmp_path), timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    out = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert out["lora_r"] == 4 and out["rows"] == 3 and out["first"] == "0 plus one is 1"
    assert {"question", "reasoning", "content", "verdict", "messages"} <= set(out["columns"])
    meta = out["model_meta"]
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert meta["datasets"] == ["tester/tiny-traces"] and meta["license"] == "apache-2.0" and "distill" in meta["tags"]
    results = meta["model-index"][0]["results"]
    assert [m["value"] for r in results for m in r["metrics"]] == [45.0, 20.0]
    text = out["model_text"]
    assert "deepseek-reasoner" in text and "api.deepseek.com" in text and "DEEPSEEK_API_KEY" not in text
    assert "PeftModel.from_pretrained" in text and "+25.0 pts" in text and "wrong_answer" in text
    assert out["dataset_meta"]["configs"][0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "load_dataset('tester/tiny-traces'" in out["dataset_text"] and "$0.0040" in out["dataset_text"]


def test_dry_run_builds_everything_and_uploads_nothing(records, tmp_path):
    with FakeHub() as hub:
        proc = _publish(hub, tmp_path, _args(records, tmp_path, "dry_run=true", "merged_repo_id=tester/tiny-merged"),
                        token=False)
        assert proc.returncode == 0, proc.stderr
        assert hub.writes() == [] and hub.repos == {}
    assert "would upload (dry run)" in proc.stderr and "adapter_model.safetensors" in proc.stderr
    stage = tmp_path / "stage"
    card = (stage / "model" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "peft" and meta["model-index"][0]["name"] == "tiny-distill"
    # The card tells the truth about the base: de-quantised GGUF weights, and the prompt it was trained with.
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "de-quantised from the Q4_1-quantised GGUF file `SmolLM2-135M-Instruct.Q4_1.gguf`" in card
    assert "PROMPT = 'Q: {question}'" in card and "SYSTEM = 'Think first.'" in card
    assert not (stage / "model" / "merged").exists() and not (stage / "model" / "checkpoints").exists()
    merged = yaml.safe_load((stage / "merged" / "README.md").read_text().split("---")[1])
    assert merged["library_name"] == "transformers" and (stage / "merged" / "model.safetensors").is_file()
    assert (stage / "dataset" / "data" / "train-00000-of-00001.parquet").is_file()


def test_secret_scan_refuses_a_planted_key(records, tmp_path):
    leaky = shutil.copytree(records["adapter"], tmp_path / "leaky")
    note = {"note": "debug", "key": "sk-" + "Ab3dE5gH7jK9mN1pQ3rS5tU7"}
    (leaky / "notes.json").write_text(json.dumps(note))
    with FakeHub() as hub:
        proc = _publish(hub, tmp_path, ["adapter=" + str(leaky), "repo_id=tester/leak", f"out={tmp_path / 's'}"])
        assert proc.returncode == 2 and hub.writes() == []
    assert "notes.json" in proc.stderr and "refusing to upload" in proc.stderr
    assert note["key"] not in proc.stderr  # the secret itself is never echoed
    leaky_rows = tmp_path / "kept.jsonl"
    leaky_rows.write_text(json.dumps({"id": "a", "question": "q", "content": "my key is hf_" + "Zq8" * 11}) + "\n")
    with pytest.raises(InputError, match="parquet"):
        run(load_config(PublishConfig, None, [f"dataset={leaky_rows}", "dataset_repo_id=t/x", "dry_run=true",
                                              f"out={tmp_path / 's2'}"]))


def test_hashes_and_variable_names_are_not_secrets(records, tmp_path):
    out = run(load_config(PublishConfig, None, _args(records, tmp_path, "dry_run=true")))
    assert (out / "model" / "distill.json").is_file()  # holds a sha256; the card names DEEPSEEK hosts, no key


@pytest.mark.slow
def test_base_model_guard_refuses_then_force(records, tmp_path):
    other = shutil.copytree(records["adapter"], tmp_path / "other")
    config = json.loads((other / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "someone/another-base"
    (other / "adapter_config.json").write_text(json.dumps(config))
    (other / "distill.json").unlink()
    with FakeHub() as hub:
        first = _publish(hub, tmp_path, [f"adapter={records['adapter']}", "repo_id=tester/guarded", f"out={tmp_path / 'a'}"])
        assert first.returncode == 0, first.stderr
        commits = len(hub.writes())
        clash = _publish(hub, tmp_path, [f"adapter={other}", "repo_id=tester/guarded", f"out={tmp_path / 'b'}"])
        assert clash.returncode == 2 and "already holds an adapter trained on" in clash.stderr
        assert len(hub.writes()) == commits
        forced = _publish(hub, tmp_path, [f"adapter={other}", "repo_id=tester/guarded", f"out={tmp_path / 'c'}",
                                          "force=true", "revision=v2"])
        assert forced.returncode == 0, forced.stderr
        pushed = json.loads(hub.files("model", "tester/guarded", "v2")["adapter_config.json"])
        assert pushed["base_model_name_or_path"] == "someone/another-base"


def test_missing_token_is_a_clear_error(records, tmp_path):
    with FakeHub() as hub:
        proc = _publish(hub, tmp_path, [f"adapter={records['adapter']}", "repo_id=tester/x", f"out={tmp_path / 's'}"],
                        token=False)
        assert proc.returncode == 2 and "HF_TOKEN" in proc.stderr and hub.writes() == []


@pytest.mark.live
@pytest.mark.skipif(not (os.environ.get("HF_TOKEN") and os.environ.get("DISTILL_LIVE_HUB") == "1"),
                    reason="needs HF_TOKEN and DISTILL_LIVE_HUB=1 (talks to the real Hub)")
def test_live_hub_private_round_trip(records, tmp_path):  # pragma: no cover - opt-in
    from huggingface_hub import HfApi

    api = HfApi(endpoint="https://huggingface.co")
    user = api.whoami()["name"]
    repo = f"{user}/distill-live-test-{os.getpid()}"
    try:
        run(load_config(PublishConfig, None, [f"adapter={records['adapter']}", f"repo_id={repo}", "private=true",
                                              f"out={tmp_path / 's'}"]), api=api)
        assert "adapter_config.json" in api.list_repo_files(repo)
    finally:
        api.delete_repo(repo, missing_ok=True)
