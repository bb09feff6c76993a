"""`distill finetune` on tiny real models: masks, packing, lint, training, reload, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_fixtures import write_kept_traces
from safetensors.torch import load_file
from tiny_student import make_tiny_student

from distill.config import load_config
from distill.errors import InputError
from distill.finetune import FinetuneConfig, run
from distill.render import build_messages, encode_prompt, render_example
from distill.student import prepare_tokenizer

torch.set_num_threads(1)  # tiny models: threads only add contention on a shared 2-core box

R1_DISTILL = (  # DeepSeek-R1-Distill style: assistant content loses everything up to </think>
    "{% for m in messages %}{% set c = m['content'] %}{% if m['role'] == 'assistant' %}"
    "{% set c = c.split('</think>')[-1] %}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + c + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN3_STYLE = (  # places reasoning itself from a reasoning_content field
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}"
    "{% if m['role'] == 'assistant' and m['reasoning_content'] %}"
    "{{ '<think>\n' + m['reasoning_content'] + '\n</think>\n\n' }}{% endif %}"
    "{{ m['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_tiny_student(tmp_path_factory.mktemp("student") / "s")


def _cfg(data, student, out, *extra):
    return load_config(FinetuneConfig, None, [f"data={data}", f"student={student}", f"out={out}", "progress=false",
                                              "batch_size=4", "lora.r=8", *extra])


def _tokenizer(path):
    from transformers import AutoTokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(path))


def test_labels_are_masked_exactly_outside_the_assistant_turn(student):
    tok = _tokenizer(student)
    ex = render_example(tok, build_messages("What is 2+3?"), "2 + 3 = 5", "\\boxed{5}")
    assert ex.problems == []
    n_prompt = len(ex.prompt_ids)
    assert ex.prompt_ids == encode_prompt(tok, "What is 2+3?")  # training prompt == inference prompt
    assert ex.labels[:n_prompt] == [-100] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:] and all(t != -100 for t in ex.labels[n_prompt:])
    assert tok.decode(ex.input_ids[:n_prompt]).endswith("<|im_start|>assistant\n")
    assert tok.decode(ex.completion_ids) == "<think>\n2 + 3 = 5\n</think>\n\n\\boxed{5}<|im_end|>"
    assert ex.completion_ids[-1] == tok.eos_token_id


def test_qwen3_style_template_places_the_reasoning_itself(tmp_path):
    path = make_tiny_student(tmp_path / "q3", arch="qwen2", chat_template=QWEN3_STYLE)
    ex = render_example(_tokenizer(path), build_messages("Q?"), "think hard", "A.")
    assert ex.problems == []
    assert ex.completion_text == "<think>\nthink hard\n</think>\n\nA.<|im_end|>"


def test_no_template_gets_chatml_with_matching_eos(tmp_path):
    tok = _tokenizer(make_tiny_student(tmp_path / "nt", chat_template=None))
    ex = render_example(tok, build_messages("Q?"), "r", "a")
    assert ex.problems == [] and ex.completion_ids[-1] == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")


def test_packed_rows_do_not_attend_across_examples(student):
    from transformers import AutoModelForCausalLM

    from distill.examples import collate
    from distill.packing import use_packed_attention

    tok = _tokenizer(student)
    exs = [render_example(tok, build_messages(q), r, "ok") for q, r in [("1+1?", "two"), ("Compute 7 * 8.", "56")]]
    model = AutoModelForCausalLM.from_pretrained(student).eval()
    alone = [model(torch.tensor([ex.input_ids])).logits[0] for ex in exs]
    use_packed_attention(model)
    batch = collate(exs, packing=True, pad_id=0)
    targets = batch.pop("targets")
    packed = model(**batch, use_cache=False).logits[0]
    expected = torch.cat([a[len(ex.prompt_ids) - 1:-1] for a, ex in zip(alone, exs)])
    assert packed.shape == expected.shape and torch.allclose(packed, expected, atol=1e-5)
    assert targets.tolist() == [t for ex in exs for t in ex.completion_ids]


def test_overfitting_a_few_examples_lowers_the_loss_and_the_adapter_reloads(student, tmp_path):
    from distill.student import load_student

    data = write_kept_traces(tmp_path / "kept.jsonl", n=4, min_terms=2, max_terms=3)
    # A random tiny model's logits are too small for LoRA alone to move much: train lm_head too
    # (which also exercises modules_to_save).
    out = run(_cfg(data, student, tmp_path / "out", "max_steps=40", "learning_rate=1e-2", "lora.dropout=0",
                   "warmup_ratio=0", "merge=true", "lora.modules_to_save=[lm_head]"))
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"], (rows[0], rows[-1])
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "config.yaml", "loss.png",
                 "distill.json", "merged/config.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "distill.json").read_text())
    assert record["data"]["examples"] == 4 and len(record["data"]["sha256"]) == 64
    assert record["metrics"]["final_loss"] == pytest.approx(rows[-1]["loss"], rel=1e-4)
    assert record["versions"]["peft"] and record["metrics"]["peak_rss_mib"] > 0
    model, tok = load_student(student, adapter=out)
    base, _ = load_student(student)
    rec = json.loads(data.read_text().splitlines()[0])
    ex = render_example(tok, build_messages(rec["messages"][0]["content"]), rec["reasoning"], rec["content"])
    ids, first = torch.tensor([ex.input_ids]), len(ex.prompt_ids)

    def completion_loss(m):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(m(ids).logits[0, first - 1:-1], ids[0, first:]).item()

    assert completion_loss(model) < 0.5 * completion_loss(base)  # the reloaded adapter is the trained one
    reply = model.generate(ids[:, :first], max_new_tokens=8, do_sample=False)[0, first:]
    assert len(reply) > 0


def interrupt_before(monkeypatch, step: int) -> None:
    """Ctrl-C as training is about to run ``step`` (0-based), pressed from outside the loop, as a user would."""
    from distill.finetune import train

    batches = train._Plan.step_batches

    def step_batches(plan, at, rank):
        if at == step:
            raise KeyboardInterrupt
        return batches(plan, at, rank)

    monkeypatch.setattr(train._Plan, "step_batches", step_batches)


def test_resume_after_interruption_gives_the_same_adapter(student, tmp_path, monkeypatch):
    data = write_kept_traces(tmp_path / "kept.jsonl", n=12)
    args = ("max_steps=6", "save_steps=2", "learning_rate=1e-2", "grad_accum=2", "batch_size=2")
    full = run(_cfg(data, student, tmp_path / "full", *args))
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        interrupt_before(patch, 5)
        run(_cfg(data, student, tmp_path / "cut", *args))
    assert [json.loads(line)["step"] for line in (tmp_path / "cut" / "loss.jsonl").read_text().splitlines()] \
        == [1, 2, 3, 4, 5]  # step 5 ran after the last checkpoint (4): resuming must drop its line
    assert (tmp_path / "cut" / "checkpoints" / "step-00000004").is_dir()
    resumed = run(_cfg(data, student, tmp_path / "cut", *args, "resume=true"))
    a, b = load_file(full / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((resumed / "distill.json").read_text())["metrics"]["resumed_from_step"] == 4
    steps = [json.loads(line)["step"] for line in (resumed / "loss.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_held_out_eval_loss_is_logged(student, tmp_path):
    data = write_kept_traces(tmp_path / "kept.jsonl", n=8)
    out = run(_cfg(data, student, tmp_path / "out", "max_steps=2", "eval_fraction=0.25", "eval_steps=1"))
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [1, 2]
    record = json.loads((out / "distill.json").read_text())
    assert record["data"]["eval_examples"] == 2 and record["data"]["train_examples"] == 6
    assert record["metrics"]["eval_loss"] == pytest.approx(rows[-1]["eval_loss"], rel=1e-4)


def test_lint_catches_a_template_that_drops_the_reasoning(tmp_path):
    path = make_tiny_student(tmp_path / "r1", chat_template=R1_DISTILL)
    data = write_kept_traces(tmp_path / "kept.jsonl", n=3)
    with pytest.raises(InputError, match="reasoning_dropped: 3 of 3"):
        run(_cfg(data, path, tmp_path / "out", "lint_only=true"))
    assert "reasoning_dropped" in (tmp_path / "out" / "lint.txt").read_text()
    fixed = run(_cfg(data, path, tmp_path / "out", "lint_only=true", "chat_template=chatml"))
    assert "ERROR" not in fixed.read_text() and "⟦" in fixed.read_text()


def test_lint_catches_a_mismatched_eos(tmp_path):
    from transformers import AutoTokenizer

    path = make_tiny_student(tmp_path / "eos")
    tok = AutoTokenizer.from_pretrained(path)
    tok.eos_token = "<|endoftext|>"  # template still ends turns with <|im_end|>
    tok.save_pretrained(path)
    (path / "generation_config.json").write_text(json.dumps({"eos_token_id": tok.eos_token_id}))
    data = write_kept_traces(tmp_path / "kept.jsonl", n=3)
    with pytest.raises(InputError, match="turn_end_not_eos|eos_mismatch"):
        run(_cfg(data, path, tmp_path / "out", "lint_only=true"))


def test_lint_counts_overlong_examples_and_applies_the_policy(student, tmp_path):
    data = write_kept_traces(tmp_path / "kept.jsonl", n=10, min_terms=2, max_terms=12)
    report = run(_cfg(data, student, tmp_path / "a", "lint_only=true", "max_length=170")).read_text()
    dropped = int(report.split("too_long=")[1].split()[0].rstrip(","))
    assert 0 < dropped < 10 and f"over max_length=170: {dropped} (drop" in report
    report = run(_cfg(data, student, tmp_path / "b", "lint_only=true", "max_length=170", "overlong=truncate"))
    text = report.read_text()
    assert f"truncated: {dropped} of 10" in text and "too_long" not in text


def test_chat_messages_records_train_on_the_last_assistant_turn(student, tmp_path):
    data = tmp_path / "chat.jsonl"
    rec = {"messages": [{"role": "user", "content": "1+1?"},
                        {"role": "assistant", "content": "2", "reasoning_content": "one and one"}]}
    data.write_text(json.dumps(rec) + "\n")
    text = run(_cfg(data, student, tmp_path / "out", "lint_only=true")).read_text()
    assert "⟦<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n⟧<think>\none and one\n</think>\n\n2<|im_end|>" in text


def test_bad_input_gives_a_clear_error(student, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        run(_cfg(empty, student, tmp_path / "o1"))
    no_reasoning = tmp_path / "nr.jsonl"
    rec = json.loads(write_kept_traces(tmp_path / "k.jsonl", n=1).read_text())
    rec["reasoning"] = None
    no_reasoning.write_text(json.dumps(rec) + "\n")
    with pytest.raises(InputError, match=r"nr.jsonl:1 \(field 'reasoning'\).*no reasoning"):
        run(_cfg(no_reasoning, student, tmp_path / "o2"))
    with pytest.raises(InputError, match="no such student"):
        run(_cfg(tmp_path / "k.jsonl", tmp_path / "missing-model", tmp_path / "o3"))
    with pytest.raises(InputError, match="not in the Hugging Face cache"):
        run(_cfg(tmp_path / "k.jsonl", "nobody/no-such-model", tmp_path / "o4"))
