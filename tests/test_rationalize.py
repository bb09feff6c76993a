"""Rationalization end to end: hinted traces pass through generate -> filter -> finetune rendering without the
hint; the filter's hint_leak check drops traces that reveal it, keeps clean ones, and counts it in the funnel."""

from __future__ import annotations

import json

import pytest

from distill.examples import encode_samples, read_samples
from distill.generate.config import GenerateConfig
from distill.generate.stage import run as generate
from distill.render import DEFAULT_FORMAT
from faulty_teacher import FaultyTeacher
from filter_helpers import run_filter, trace
from records_factory import write_traces

CLEAN = ("Natalia sold 48 clips in April and half as many in May, so 48 / 2 = 24 in May. "
         "Adding both months gives 48 + 24 = 72 clips, which is the total asked for.")
LEAKS = {
    "told": "We are told the answer is 72, so let us check it: 48 / 2 = 24 and 48 + 24 = 72 clips in all here.",
    "hint": "The hint says 72. Half of 48 is 48 / 2 = 24, and 48 + 24 = 72, which matches the total asked.",
    "backwards": "Working backwards from the given answer: 72 - 48 = 24, and 24 is half of 48, so it holds.",
    "copied": "Hint: the correct answer is 72. Indeed 48 / 2 = 24 and then 48 + 24 = 72 clips in total.",
    "first": "72 clips. Because she sold 48 in April and 48 / 2 = 24 in May, and 48 + 24 = 72 in total.",
}


def hinted(pid, reasoning):
    return trace(pid, 0, reasoning=reasoning, rationalized=True, hint="Hint: the correct answer is 72.")


def test_hint_leak_drops_leaking_rationalized_traces_and_keeps_clean_ones(tmp_path):
    records = [hinted(f"leak-{name}", text) for name, text in LEAKS.items()]
    records += [hinted("clean", CLEAN), trace("unhinted", 0, reasoning=LEAKS["told"])]  # only rationalized ones
    write_traces(tmp_path / "traces.jsonl", records)
    stats, kept, rejected = run_filter(tmp_path)
    assert {r["id"] for r in kept} == {"clean", "unhinted"}
    assert {r["id"] for r in rejected} == {f"leak-{name}" for name in LEAKS}
    assert all(r["verdict"]["reason"] == "hint_leak" for r in rejected)
    assert {s["step"]: s["dropped"] for s in stats["funnel"]}["hint_leak"] == len(LEAKS)
    # off: the leaking traces are kept (the check, not something else, dropped them)
    _, kept_off, _ = run_filter(tmp_path, ["checks.hint_leak=false"], out="off/kept.jsonl")
    assert len(kept_off) == len(records)


def test_changing_the_hint_leak_option_is_not_served_from_the_cache(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [hinted("leak", LEAKS["told"])])
    _, kept, _ = run_filter(tmp_path, ["checks.hint_leak=false"])
    assert len(kept) == 1
    _, kept, rejected = run_filter(tmp_path)
    assert not kept and rejected[0]["verdict"]["reason"] == "hint_leak"


def test_a_rationalized_trace_trains_without_its_hint(tmp_path):
    from tiny_student import train_tokenizer

    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "q", "question": "Natalia sold 48 clips in April and half"
                                                  " as many in May. How many in total?", "answer": "72",
                                                  "kind": "gsm8k"}) + "\n")

    def respond(messages, request):  # wrong until hinted, then a clean worked solution
        hinted_prompt = "Hint:" in messages[-1]["content"]
        return CLEAN, "\\boxed{72}" if hinted_prompt else "\\boxed{70}"

    with FaultyTeacher(responder=respond) as srv:
        out = generate(GenerateConfig(problems=str(tmp_path / "p.jsonl"), base_url=srv.base_url, model="t",
                                      out=str(tmp_path / "traces.jsonl"), progress=False, until_correct=1,
                                      max_samples=2, rationalize=True, request_timeout=5.0))
        assert any("Hint: the correct answer is 72." in b["messages"][-1]["content"] for b in srv.stats.bodies)
    stats, kept, _ = run_filter(tmp_path, traces=out.name)
    assert len(kept) == 1 and kept[0]["rationalized"] is True
    samples, _ = read_samples(tmp_path / "out" / "kept.jsonl")
    tok = train_tokenizer()
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    encoded = encode_samples(samples, tok, DEFAULT_FORMAT, max_length=4096)
    text = encoded.examples[0].prompt_text + encoded.examples[0].completion_text
    assert "How many in total?" in text and "48 + 24 = 72" in text
    assert "Hint" not in text and "correct answer is" not in text


@pytest.mark.parametrize("text", list(LEAKS.values()))
def test_every_leak_shape_is_caught_by_the_pure_check(text):
    from distill.filter.hint_leak import hint_leak

    assert hint_leak(text, "72", "Natalia sold 48 clips. How many in total?", "Hint: the correct answer is 72.")
    assert hint_leak(CLEAN, "72", "Natalia sold 48 clips. How many in total?", "Hint: the correct answer is 72.") is None


def test_a_clean_trace_that_ends_like_the_hint_is_kept():
    from distill.filter.hint_leak import hint_leak

    clean = "Half of 48 is 48 / 2 = 24, and 48 + 24 = 72. So the correct answer is 72."
    hint = "Hint: the correct answer is 72."
    assert hint_leak(clean, "72", "Natalia sold 48 clips. How many in total?", hint) is None
    copied = "Hint: the correct answer is 72. Half of 48 is 48 / 2 = 24, and 48 + 24 = 72."
    assert hint_leak(copied, "72", "Natalia sold 48 clips. How many in total?", hint) == "copies the hint into the trace"
