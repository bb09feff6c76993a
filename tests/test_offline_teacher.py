"""The offline teacher: right traces, deliberate mistakes that are really there, disjoint splits."""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction
from pathlib import Path

import pytest

from distill.soundness import false_steps
from distill.offline import families as offline, sets as offline_sets

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "{question}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
CLAIM = re.compile(r"^(?:[A-Za-z -]+: )?(-?[\d. +*/-]+?) (=|<|>) (-?[\d. +*/-]+)$")


def boxed(content: str) -> str:
    """The last \\boxed{...} of a content string (the offline teacher never nests braces)."""
    found = re.findall(r"\\boxed\{([^{}]*)\}", content)
    assert found, content
    assert content.endswith(f"\\boxed{{{found[-1]}}}"), content
    return found[-1]


def value(expr: str) -> Fraction:
    """Exact value of a +-*/ expression of decimals, by precedence (no eval of text)."""
    terms = re.findall(r"-?\d+(?:\.\d+)?|[-+*/]", expr)  # "-3" is a number, "- 3" an operation
    nums, ops = [Fraction(terms[0])], []
    for op, num in zip(terms[1::2], terms[2::2]):
        if op in "*/":
            nums[-1] = nums[-1] * Fraction(num) if op == "*" else nums[-1] / Fraction(num)
        else:
            nums.append(Fraction(num))
            ops.append(op)
    total = nums[0]
    for op, num in zip(ops, nums[1:]):
        total = total + num if op == "+" else total - num
    return total


def false_claims(reasoning: str) -> list[str]:
    """Lines stating an arithmetic equality or comparison that is false."""
    bad = []
    for line in reasoning.splitlines():
        match = CLAIM.match(line.strip())
        if not match:
            continue
        left, rel, right = value(match.group(1)), match.group(2), value(match.group(3))
        if not {"=": left == right, "<": left < right, ">": left > right}[rel]:
            bad.append(line)
    return bad


def is_right(content: str, problem: dict) -> bool:
    """Checked with the project verifier when it decides, else by exact value of the box."""
    try:
        from distill.verify import check

        verdict = check(content, problem["answer"], problem["kind"])
        if verdict.correct is not None:
            return verdict.correct
    except ImportError:
        pass
    return Fraction(boxed(content)) == Fraction(problem["answer"])


def ask(problem: dict, mistake_rate: float, seed: int = 0) -> tuple[str, str]:
    messages = [{"role": "user", "content": PROMPT.format(question=problem["question"])}]
    answer = offline.respond(messages, random.Random(seed), mistake_rate)
    assert answer is not None, problem["question"]
    return answer


@pytest.mark.parametrize("family", offline.FAMILIES)
@pytest.mark.parametrize("split", offline.SPLITS)
def test_solver_is_right_and_sound_without_mistakes(family: str, split: str) -> None:
    for i, problem in enumerate(offline.make_problems(family, 60, seed=3, split=split)):
        reasoning, content = ask(problem, 0.0, seed=i)
        assert is_right(content, problem), (problem, reasoning, content)
        assert boxed(content) == problem["answer"]
        assert not false_claims(reasoning), (problem["question"], reasoning)
        assert not false_steps(reasoning, problem), (problem["question"], reasoning)
        assert len(reasoning.split()) < 120  # short, regular traces for a 135M student


@pytest.mark.parametrize("family", offline.FAMILIES)
def test_every_trace_has_a_mistake_at_rate_one(family: str) -> None:
    kinds = set()
    for i, problem in enumerate(offline.make_problems(family, 80, seed=5)):
        reasoning, content = ask(problem, 1.0, seed=i)
        wrong, bad = not is_right(content, problem), false_claims(reasoning) or false_steps(reasoning, problem)
        assert wrong or bad, (problem["question"], reasoning, content)
        kinds.add("answer" if wrong else "step")
    # every family gives the step checks real work: right answers over false steps
    assert kinds == {"answer", "step"}


@pytest.mark.parametrize("family", offline.FAMILIES)
def test_step_slips_keep_the_answer_and_are_caught_by_the_soundness_checks(family: str) -> None:
    for i, problem in enumerate(offline.make_problems(family, 60, seed=6)):
        slipped, content = offline.solve(problem["question"], "step", random.Random(i))
        if slipped.startswith("Compare"):
            continue  # a decimal with nothing to pad: the slip goes into the answer instead
        assert boxed(content) == problem["answer"], slipped
        assert false_steps(slipped, problem), slipped


def test_false_steps_are_caught_by_the_filters_step_check() -> None:
    from distill import arithmetic as steps

    for i, problem in enumerate(offline.make_problems("arithmetic", 60, seed=6)):
        right, _ = offline.solve(problem["question"])
        slipped, content = offline.solve(problem["question"], "step", random.Random(i))
        assert not steps.false_claims(right), right
        assert steps.false_claims(slipped) and boxed(content) == problem["answer"], slipped


def test_mistake_rate_is_respected_roughly() -> None:
    problems = offline_sets.make_mixed(240, seed=1)
    wrong = sum(not is_right(ask(p, 0.3, seed=i)[1], p) or bool(false_claims(ask(p, 0.3, seed=i)[0]))
                for i, p in enumerate(problems))
    assert 0.2 * len(problems) < wrong < 0.4 * len(problems)


def test_trace_styles() -> None:
    positions, _ = offline.solve("Which is greater, 9.11 or 9.8?", style="positions")
    assert "Tenths: 9.11 has 1, 9.80 has 8, 1 < 8" in positions
    assert "3. r -> 1" in offline.solve("How many r's are in strawberry?", style="positions")[0]
    assert "Tenths: 1 < 8" in offline.solve("Which is greater, 9.11 or 9.8?")[0]  # plain is the default
    # compact: padded, then compared whole; numbered letters as in positions
    assert offline.solve("Which is smaller, 9.11 or 9.8?", style="compact") == (
        "9.8 = 9.80\n9.11 < 9.80\nSo 9.11 is the smaller.", "The answer is \\boxed{9.11}")
    assert offline.solve("Which is greater, 12.84 or 12.87?", style="compact")[0].startswith("12.87 > 12.84\n")
    assert "3. r -> 1" in offline.solve("How many r's are in strawberry?", style="compact")[0]
    with pytest.raises(ValueError, match="unknown trace style"):
        offline.solve("Compute 1 + 2.", style="fancy")


def test_the_mixed_style_varies_the_shape_by_sample_and_repeats_by_seed() -> None:
    for p in offline_sets.make_mixed(6, seed=3):  # every family, arithmetic (one written style) included
        messages = [{"role": "user", "content": p["question"]}]
        shapes = {offline.respond(messages, random.Random(f"0:{i}:q"), 0.0, "mixed")[0] for i in range(8)}
        assert len(shapes) >= 2, p["question"]
        again = offline.respond(messages, random.Random("0:1:q"), 0.0, "mixed")
        assert again == offline.respond(messages, random.Random("0:1:q"), 0.0, "mixed")
        assert is_right(again[1], p)  # every shape is right
    assert offline.reshape("2 * 3 = 6\nNow: 1 + 6\n1 + 6 = 7", is_wordy=True, is_terse=True) == (
        f"2 * 3 = 6\n{offline.FILLER}\n1 + 6 = 7\n{offline.FILLER}")
    wordy = offline.reshape(offline.solve("How many r's are in strawberry?", style="compact")[0], True, False)
    assert "\n1. s\n2. t\n3. r -> 1\n" in wordy and wordy.count(offline.FILLER) == 3  # the spelling stays whole


def test_the_seed_examples_of_the_field() -> None:
    cases = {"How many r's are in strawberry?": "3", "Which is greater, 9.11 or 9.8?": "9.8",
             "Compute 12 + 7 * 3.": "33", "Which is smaller, 9.11 or 9.8?": "9.11"}
    for question, answer in cases.items():
        reasoning, content = offline.solve(question)
        assert boxed(content) == answer, reasoning
    assert "9.8 = 9.80" in offline.solve("Which is greater, 9.11 or 9.8?")[0]
    assert "7 * 3 = 21" in offline.solve("Compute 12 + 7 * 3.")[0]
    assert boxed(offline.solve("Which is greater, 0.1234567 or 0.12345678?")[1]) == "0.12345678"
    assert offline.solve("Which is greater, 3.5 or 3.50?") is None  # no answer to give
    assert offline.solve("Compute 7 / 0 + 1.") is None


def test_unknown_questions_get_none() -> None:
    rng = random.Random(0)
    for text in ("What is the capital of France?", "Prove that sqrt(2) is irrational.", ""):
        assert offline.respond([{"role": "user", "content": text}], rng, 0.0) is None
    assert offline.respond([{"role": "system", "content": "Compute 1 + 2 * 3."}], rng, 0.0) is None
    assert offline.respond([], rng, 0.0) is None


def test_question_is_found_in_the_last_user_message_whatever_the_template() -> None:
    rng = random.Random(0)
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "How many r's are in strawberry?"},
                {"role": "assistant", "content": "\\boxed{3}"},
                {"role": "user", "content": [{"type": "text", "text": "Problem: Compute 2 + 3 * 4.\nThink."}]}]
    reasoning, content = offline.respond(messages, rng, 0.0)
    assert boxed(content) == "14" and "3 * 4 = 12" in reasoning


def test_train_and_eval_never_overlap() -> None:
    for family in offline.FAMILIES:
        train = [p for seed in range(3) for p in offline.make_problems(family, 400, seed=seed)]
        held = [p for seed in range(3) for p in offline.make_problems(family, 100, seed=seed, split="eval")]
        dev = [p for seed in range(3) for p in offline.make_problems(family, 100, seed=seed, split="dev")]
        keys = [{p["split_key"] for p in s} for s in (train, held, dev)]
        assert keys[0].isdisjoint(keys[1]) and keys[0].isdisjoint(keys[2]) and keys[1].isdisjoint(keys[2])
        assert {p["split_key"] for p in train}.isdisjoint({p["split_key"] for p in held})
        assert {p["question"] for p in train}.isdisjoint({p["question"] for p in held})
        assert all(offline.split_of(p["split_key"]) == p["split"] for p in train + held + dev)
    # a held-out word is never asked about in training, with any letter
    words = {p["split_key"] for p in offline.make_problems("letter_count", 200, 0, "eval")}
    asked = {p["question"].rsplit(" ", 1)[1].rstrip("?") for p in offline.make_problems("letter_count", 800, 9)}
    assert words and asked and asked.isdisjoint(words)


def test_problems_are_reproducible_by_seed_and_distinct() -> None:
    for family in offline.FAMILIES:
        first = offline.make_problems(family, 50, seed=7)
        assert first == offline.make_problems(family, 50, seed=7)
        assert first != offline.make_problems(family, 50, seed=8)
        assert len({p["id"] for p in first}) == len({p["question"] for p in first}) == 50
        for p in first:
            assert set(p) >= {"id", "question", "answer", "kind", "source"} and p["kind"] == "math"
    mixed = offline_sets.make_mixed(10, seed=0)
    assert [p["family"] for p in mixed[:3]] == list(offline.FAMILIES) and len(mixed) == 10
    with pytest.raises(ValueError, match="unknown family"):
        offline.make_problems("sudoku", 1, 0)


def test_responses_are_reproducible_by_rng_seed() -> None:
    problems = offline_sets.make_mixed(30, seed=2)
    assert [ask(p, 0.5, seed=i) for i, p in enumerate(problems)] == \
        [ask(p, 0.5, seed=i) for i, p in enumerate(problems)]


def test_bundled_datasets_match_the_generators() -> None:
    folder = ROOT / "datasets"
    assert not list(folder.rglob("*.py"))
    assert (folder / "README.md").is_file()
    bundled = {path.name: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
               for path in folder.glob("*.jsonl")}
    assert bundled["offline-eval.jsonl"] == offline_sets.default_eval_problems()
    train_keys = {p["split_key"] for p in offline_sets.default_train_problems()}
    assert train_keys.isdisjoint(p["split_key"] for p in bundled["offline-eval.jsonl"])
    assert bundled["offline-train.jsonl"] == offline_sets.default_train_problems()
    assert bundled["offline-dev.jsonl"] == offline_sets.default_dev_problems()


def test_source_specs() -> None:
    assert offline_sets.from_spec("offline:eval") == offline_sets.default_eval_problems()
    assert offline_sets.from_spec("offline:train?n=9&seed=4") == offline_sets.make_mixed(9, 4, "train")
    assert offline_sets.from_spec("offline:eval:arithmetic?n=5") == offline.make_problems("arithmetic", 5, 0, "eval")
    assert offline_sets.from_spec("offline:dev") == offline_sets.default_dev_problems()
    assert offline_sets.from_spec("data/x.jsonl") is None
    # mix= weights the families; the problems two mixes share are the same ones
    mixed = offline_sets.from_spec("offline:train?n=12&mix=arithmetic:2,letter_count:1")
    assert [p["family"] for p in mixed].count("arithmetic") == 8 and len(mixed) == 12
    assert {p["family"] for p in mixed} == {"arithmetic", "letter_count"}
    assert [p for p in mixed if p["family"] == "letter_count"] == offline.make_problems("letter_count", 4, 0)
    assert offline_sets.from_spec("offline:train?n=9&mix=letter_count:1,decimal_compare:1,arithmetic:1") == \
        offline_sets.make_mixed(9, 0, "train")
    for bad in ("offline:test", "offline:train:sudoku", "offline:train?size=3", "offline:train?mix=sudoku:1",
                "offline:train?mix=arithmetic:0", "offline:train?mix=arithmetic", "offline:train:arithmetic?mix=arithmetic:1",
                "offline:train?mix=arithmetic:1,arithmetic:2", "offline:train?n=ten", "offline:eval?seed=-1"):
        with pytest.raises(ValueError, match="bad offline source"):
            offline_sets.from_spec(bad)


@pytest.mark.parametrize("dialect", ["deepseek", "think"])
def test_served_through_the_real_client_code_path(dialect: str) -> None:
    from distill.teacher import client as client_mod
    from distill.teacher import server
    from distill.teacher.config import TeacherConfig

    problems = offline_sets.make_mixed(6, seed=4)
    batch = [[{"role": "user", "content": PROMPT.format(question=p["question"])}] for p in problems]
    with server.TeacherServer(dialect=dialect, mistake_rate=0.0) as srv:
        client = client_mod.TeacherClient(TeacherConfig(model="test-teacher", base_url=srv.base_url,
                                                        request_timeout=10.0))
        completions = client.complete_many(batch)
    for problem, c in zip(problems, completions):
        assert c.error is None and is_right(c.content, problem), (problem, c.content)
        assert c.reasoning == offline.solve(problem["question"])[0]


@pytest.mark.parametrize("style", ["positions", "compact"])
def test_the_server_writes_traces_in_the_style_it_was_given(style: str) -> None:
    from distill.teacher import client as client_mod
    from distill.teacher import server
    from distill.teacher.config import TeacherConfig

    problems = offline_sets.make_mixed(3, seed=4)
    batch = [[{"role": "user", "content": p["question"]}] for p in problems]  # the bare question, as the default
    with server.TeacherServer(mistake_rate=0.0, style=style) as srv:
        client = client_mod.TeacherClient(TeacherConfig(model="test-teacher", base_url=srv.base_url,
                                                        request_timeout=10.0))
        completions = client.complete_many(batch)
    for problem, c in zip(problems, completions):
        assert c.reasoning == offline.solve(problem["question"], style=style)[0]
        if problem["family"] != "arithmetic":  # written the same in every style
            assert c.reasoning != offline.solve(problem["question"], style="plain")[0]
        if problem["family"] != "arithmetic":  # arithmetic is written the same way in both styles
            assert c.reasoning != offline.solve(problem["question"])[0]
