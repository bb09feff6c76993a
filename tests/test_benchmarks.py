"""The benchmark protocol table, each set's schema mapping, and `benchmark=` in eval's config. Pure, fast."""

from __future__ import annotations

import base64
import json
import pickle
import re
import zlib

import pytest

from benchmark_fixtures import ROWS
from distill.benchmarks import PROTOCOLS, protocol_for
from distill.benchmarks.livecodebench import private_cases, sandbox_tests
from distill.benchmarks.report import overrides, per_problem
from distill.benchmarks.rows import shuffled_options, to_problem
from distill.config import load_config
from distill.errors import ConfigError, InputError
from distill.evaluate.config import EvalConfig
from distill.verify import check_record
from test_readme import README


def _readme_table() -> dict[str, list[str]]:
    section = README.read_text(encoding="utf-8").split("### `distill eval benchmark=NAME`", 1)[1].split("\n### ", 1)[0]
    table = section.split("\n| benchmark ", 1)[1].split("\n\n", 1)[0]  # the first table (the reproduction's follows)
    rows = [line for line in table.splitlines()[1:] if line.startswith("| ")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split(" | ")] for r in rows)}


def test_the_readme_table_is_the_protocol_table():
    table = _readme_table()
    assert set(table) == set(PROTOCOLS)
    for name, p in PROTOCOLS.items():
        dataset = f"{p.dataset} ({p.config or '-'}, {p.split})"
        assert table[name] == [dataset, str(p.samples), str(p.max_new_tokens), p.answer_format, p.licence], name
        assert (p.temperature, p.top_p) == (0.6, 0.95)  # the sentence above the table
    assert "temperature 0.6, top_p 0.95" in README.read_text(encoding="utf-8")


def test_unset_keys_take_the_protocol_and_set_ones_are_overrides():
    cfg = load_config(EvalConfig, None, ["benchmark=aime24", "student=s"])
    p = protocol_for("aime24")
    assert (cfg.samples, cfg.temperature, cfg.top_p, cfg.max_new_tokens) == (64, 0.6, 0.95, 32768)
    assert cfg.prompt_template == p.prompt_template and overrides(cfg, p) == {}
    cfg = load_config(EvalConfig, None, ["benchmark=aime24", "student=s", "samples=1", "temperature=0"])
    assert overrides(cfg, p) == {"samples": {"protocol": 64, "used": 1}, "temperature": {"protocol": 0.6, "used": 0.0}}
    plain = load_config(EvalConfig, None, ["problems=x.jsonl", "student=s"])  # no benchmark: eval's quick defaults
    assert (plain.samples, plain.temperature, plain.top_p, plain.max_new_tokens) == (1, 0.0, 1.0, 1024)


def test_bad_benchmark_options_are_one_line():
    with pytest.raises(ConfigError, match="did you mean 'aime24'"):
        load_config(EvalConfig, None, ["benchmark=aime2024"])
    with pytest.raises(ConfigError, match="benchmark= or problems="):
        load_config(EvalConfig, None, ["benchmark=gsm8k", "problems=x.jsonl"])


@pytest.mark.parametrize("name", list(ROWS))
def test_each_sets_schema_maps_to_problems_the_verifier_reads(name):
    problems = [to_problem(name, row, i) for i, row in enumerate(ROWS[name])]
    for p in problems:
        assert p["kind"] == PROTOCOLS[name].kind and p["source"] == name and p["question"] and p["answer"]
        assert check_record({**p, "content": ""}).reason == "empty"  # a record the verifier accepts
    assert len({p["id"] for p in problems}) == len(problems)


def test_golds_are_the_sets_final_answers():
    assert [to_problem("aime24", r, i)["answer"] for i, r in enumerate(ROWS["aime24"])] == ["5", "33"]
    assert [to_problem("gsm8k", r, i)["answer"] for i, r in enumerate(ROWS["gsm8k"])] == ["7", "1000"]
    assert to_problem("math500", ROWS["math500"][0], 0)["answer"] == "\\frac{1}{2}"
    right = to_problem("gsm8k", ROWS["gsm8k"][1], 1)
    assert check_record({**right, "content": "So \\boxed{1000}."}).correct is True


def test_gpqa_options_are_shuffled_the_same_way_every_time():
    row = ROWS["gpqa-diamond"][0]
    p = to_problem("gpqa-diamond", row, 0)
    assert p == to_problem("gpqa-diamond", dict(row), 0)
    assert sorted(p["options"]) == sorted([row["Correct Answer"], *(row[f"Incorrect Answer {i}"] for i in (1, 2, 3))])
    assert p["options"]["ABCD".index(p["answer"])] == row["Correct Answer"]
    assert f"{p['answer']}) photon" in p["question"]
    golds = {shuffled_options("c", ["w1", "w2", "w3"], f"rec{i}")[1] for i in range(40)}
    assert golds == set("ABCD")  # the correct option is not always A
    assert check_record({**p, "content": f"Answer: {p['answer']}"}).correct is True
    wrong = "ABCD"[("ABCD".index(p["answer"]) + 1) % 4]
    assert check_record({**p, "content": f"Answer: {wrong}"}).correct is False


def test_livecodebench_tests_run_in_the_sandbox():
    stdin, functional = (to_problem("livecodebench", r, i) for i, r in enumerate(ROWS["livecodebench"][:2]))
    assert json.loads(stdin["answer"]) == [{"input": "3\n", "output": "6\n"}, {"input": "10\n", "output": "20\n"}]
    fence = "```"
    ok = check_record({**stdin, "content": f"{fence}python\nprint(2 * int(input()))\n{fence}"})
    bad = check_record({**stdin, "content": f"{fence}python\nprint(6)\n{fence}"})  # passes the public case only
    assert (ok.correct, bad.correct) == (True, False)
    add = "class Solution:\n    def add(self, a, b):\n        return a + b\n"
    assert check_record({**functional, "content": f"{fence}python\n{add}{fence}"}).correct is True
    assert check_record({**functional, "content": f"{fence}python\n{add.replace('a + b', '3')}{fence}"}).correct is False


def test_private_tests_never_unpickle_anything_but_text():
    evil = base64.b64encode(zlib.compress(pickle.dumps(print))).decode()
    with pytest.raises(InputError, match="refusing to load builtins.print"):
        private_cases(evil, "row 3")
    with pytest.raises(InputError, match="functional tests but no metadata.func_name"):
        sandbox_tests({**ROWS["livecodebench"][1], "metadata": "{}"}, "row 1")


def test_per_problem_rows_count_samples_correct_and_truncated():
    records = [{"id": "a", "correct": True, "truncated": False}, {"id": "a", "correct": False, "truncated": True},
               {"id": "b", "correct": None, "truncated": False}, {"id": "b", "error": {"type": "x"}}]
    assert per_problem(records) == [
        {"id": "a", "samples": 2, "correct": 1, "truncated": 1, "undecided": 0, "avg": 0.5},
        {"id": "b", "samples": 1, "correct": 0, "truncated": 0, "undecided": 1, "avg": 0.0}]


def test_every_protocol_prompt_formats():
    for p in PROTOCOLS.values():
        text = p.prompt_template.format(question="Q?")
        assert "Q?" in text and not re.search(r"\{question\}", text)
    assert protocol_for("aime24").prompt_template.format(question="Q").endswith("within \\boxed{}.")


def test_a_huge_code_gold_is_kept_in_outputs_as_its_digest():
    from distill.evaluate.stage import GOLD_KEPT, _small_gold

    tests = "x" * (GOLD_KEPT + 1)
    record = _small_gold({"gold": tests, "kind": "code"})
    assert record["gold"]["chars"] == GOLD_KEPT + 1 and len(record["gold"]["sha256"]) == 64
    assert _small_gold({"gold": "42"})["gold"] == "42"


def test_a_pipeline_recipe_can_evaluate_on_a_benchmark(tmp_path):
    from distill.pipeline.config import PipelineConfig, default_recipe
    from distill.pipeline.wiring import plan

    cfg = load_config(PipelineConfig, default_recipe(), ["eval.benchmark=math500", "eval.problems=null",
                                                         "eval.limit=5", "guard_problems=offline:dev?n=3"])
    evals = {s.name: s.cfg for s in plan(cfg, tmp_path) if s.section == "eval"}
    for name in ("eval-before", "eval-after"):
        assert (evals[name].benchmark, evals[name].problems, evals[name].samples) == ("math500", None, 4)
    assert (evals["guard-before"].benchmark, evals["guard-before"].problems) == (None, "offline:dev?n=3")


def test_livecodebench_dates_can_move_and_the_move_is_an_override():
    from distill.benchmarks.livecodebench import in_window

    p = protocol_for("livecodebench")
    assert [in_window(r, p.dates) for r in ROWS["livecodebench"]] == [True, True, False]
    cfg = load_config(EvalConfig, None, ["benchmark=livecodebench", "benchmark_dates=2023-01-01..2024-01-01"])
    assert overrides(cfg, p) == {"benchmark_dates": {"protocol": "2024-08-01..2025-02-01",
                                                     "used": "2023-01-01..2024-01-01"}}
    assert overrides(load_config(EvalConfig, None, ["benchmark=livecodebench",
                                                    "benchmark_dates=2024-08-01..2025-02-01"]), p) == {}
    with pytest.raises(ConfigError, match="FROM before TO"):
        load_config(EvalConfig, None, ["benchmark=livecodebench", "benchmark_dates=2025-01-01..2024-01-01"])
    with pytest.raises(ConfigError, match="not aime24"):
        load_config(EvalConfig, None, ["benchmark=aime24", "benchmark_dates=2023-01-01..2024-01-01"])


def test_the_reproduction_bench_scores_published_outputs_both_ways(tmp_path):
    import subprocess
    import sys

    root = README.parent
    rows = [("p1", "\\frac{1}{2}", "<think>half</think> So $\\boxed{\\frac{1}{2}}$."),
            ("p1", "\\frac{1}{2}", "<think>hm</think> So $\\boxed{0.5}$."),
            ("p2", "9", "<think>3*3</think> \\boxed{8}"), ("p2", "9", "<think>3*3</think> \\boxed{9}")]
    path = tmp_path / "outputs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "answer": g, "response": r}) + "\n" for i, g, r in rows))
    done = subprocess.run([sys.executable, str(root / "bench" / "reproduce_benchmark.py"), "--benchmark", "math500",
                           "--outputs", str(path), "--published", "83.9"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "2 problems, 4 samples" in done.stdout and "published    83.9" in done.stdout
    assert re.search(r"distill\s+avg@n 75.0 ± 25.0", done.stdout) and re.search(r"math-verify\s+avg@n 75.0", done.stdout)


@pytest.mark.parametrize("func", ["__class__ or _solution.f", "__init__", "class", "add(1) or add", "a.b", 7])
def test_a_func_name_that_is_not_a_plain_name_is_refused(func):
    # pasted into the asserts: '__class__ or _solution.f' made every test pass for any `class Solution`
    row = {**ROWS["livecodebench"][1], "metadata": json.dumps({"func_name": func})}
    with pytest.raises(InputError, match=r"livecodebench row 1 \(9001\): metadata.func_name") as caught:
        to_problem("livecodebench", row, 1)
    assert caught.value.field == "metadata"


@pytest.mark.parametrize("field, value, why", [
    ("private_test_cases", "5", " must be a JSON list of test cases, got int"),
    ("private_test_cases", '{"a": 1}', " must be a JSON list of test cases, got dict"),
    ("private_test_cases", '["x"]', r"\[0\] must be an object with string input and output"),
    ("public_test_cases", '{"a": 1}', " must be a JSON list of test cases, got dict"),
    ("public_test_cases", '[{"output": "6\\n", "testtype": "stdin"}]', r"\[0\] must be an object with string input"),
    ("public_test_cases", '[{"input": "3\\n", "output": 6, "testtype": "stdin"}]', r"\[0\] must be an object"),
])
def test_malformed_test_cases_are_one_line(field, value, why):
    row = {**ROWS["livecodebench"][0], field: value}
    with pytest.raises(InputError, match=rf"livecodebench row 0 \(abc900_a\): {field}{why}") as caught:
        to_problem("livecodebench", row, 0)
    assert caught.value.field == field
