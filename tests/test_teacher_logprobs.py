"""The logprob teacher against vLLM- and SGLang-shaped servers and the built-in model server.

Usage:
    .venv/bin/python -m pytest tests/test_teacher_logprobs.py -q
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill.teacher.logprobs import LogprobTeacher, TeacherLogprobError, check_same_tokenizer
from distill.teacher.model_server import ModelScorer, ModelTeacherServer
from logprob_servers import BigramLM, ScoringServer
from tiny_student import make_tiny_student

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = make_tiny_student(tmp_path_factory.mktemp("tiny") / "student")
    return path, AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def lm(student):
    return BigramLM(len(student[2]), seed=1)


def sequence(n: int, vocab: int, seed: int = 0) -> list[int]:
    return torch.randint(5, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def teacher_for(srv: ScoringServer, **kw) -> LogprobTeacher:
    return LogprobTeacher(srv.base_url, server=srv.dialect, backoff=0.0, **kw)


@pytest.mark.parametrize("dialect", ["vllm", "sglang"])
def test_scores_are_the_servers_logprobs_position_by_position(dialect, student, lm):
    tokenizer = student[2]
    seqs = [sequence(30, len(tokenizer), s) for s in range(3)]
    starts = [10, 1, 29]
    with ScoringServer(dialect, lm, tokenizer) as srv, teacher_for(srv, top_k=5) as teacher:
        scores = teacher.score(seqs, starts)
        body = srv.bodies[0]
    if dialect == "vllm":
        assert body["prompt_logprobs"] == 5 and body["max_tokens"] == 1 and body["model"] == "bigram"
    else:
        assert body["top_logprobs_num"] == 5 and body["sampling_params"]["max_new_tokens"] == 0
        assert sorted(b["logprob_start_len"] for b in srv.bodies) == [0, 9, 28]
    for ids, start, got in zip(seqs, starts, scores):
        assert len(got.logprobs) == len(got.top) == len(got.valid) == len(ids) - start
        for t, i in enumerate(range(start, len(ids))):
            row = lm.row(ids[i - 1])
            assert got.logprobs[t] == pytest.approx(float(row[ids[i]]), abs=1e-6)
            assert list(got.top[t]) == row.topk(5).indices.tolist()
        assert all(got.valid) and got.placeholders == 0


def test_vllm_capped_k_is_refused_in_one_line_naming_max_logprobs(student, lm):
    with ScoringServer("vllm", lm, student[2], max_logprobs=20) as srv:
        with teacher_for(srv, top_k=32) as teacher, pytest.raises(TeacherLogprobError) as err:
            teacher.score([sequence(8, 300)], [1])
        assert srv.requests == 1  # a 400 is not retried
        with teacher_for(srv, top_k=20) as teacher:
            assert len(teacher.score([sequence(8, 300)], [1])[0].top[0]) == 20
    message = str(err.value)
    assert "\n" not in message and "top_k=32" in message and "--max-logprobs 32" in message
    assert "allows at most 20 logprobs" in message


def test_prefix_cached_positions_are_refused_not_zeroed(student, lm):
    ids = sequence(30, len(student[2]))
    with ScoringServer("vllm", lm, student[2], cached=16) as srv, teacher_for(srv) as teacher:
        with pytest.raises(TeacherLogprobError) as err:
            teacher.score([ids], [10])
        scored = teacher.score([ids], [16])[0]  # the completion lies past the cached block: all there
    assert "6 of 20 completion positions (first at token 10)" in str(err.value)
    assert "--no-enable-prefix-caching" in str(err.value)
    assert all(scored.valid) and len(scored.logprobs) == 14


@pytest.mark.parametrize("dialect", ["vllm", "sglang"])
def test_placeholders_are_masked_and_counted(dialect, student, lm):
    ids = sequence(20, len(student[2]))
    with ScoringServer(dialect, lm, student[2], placeholders={12: 0.0, 15: -9999.0}) as srv, \
            teacher_for(srv, top_k=4) as teacher:
        got = teacher.score([ids], [10])[0]
    assert got.placeholders == 2
    assert [i + 10 for i, ok in enumerate(got.valid) if not ok] == [12, 15]
    assert got.logprobs[2] == got.logprobs[5] == 0.0 and got.top[2] == got.top[5] == {}
    assert got.logprobs[0] == pytest.approx(float(lm.row(ids[9])[ids[10]]), abs=1e-6)


@pytest.mark.parametrize("dialect", ["vllm", "sglang"])
def test_a_teacher_with_another_tokenizer_is_refused_before_any_step(dialect, student, lm):
    tokenizer = student[2]
    byte_ids = lambda text: [b + 3 for b in text.encode()]  # noqa: E731: a byte-level stranger
    with ScoringServer(dialect, lm, tokenizer) as srv, teacher_for(srv) as teacher:
        check_same_tokenizer(teacher, tokenizer)  # the same vocabulary passes
    with ScoringServer(dialect, lm, tokenizer, tokenize=byte_ids) as srv, teacher_for(srv) as teacher:
        with pytest.raises(TeacherLogprobError) as err:
            check_same_tokenizer(teacher, tokenizer)
        assert srv.requests == 1  # one probe, nothing scored
    message = str(err.value)
    assert "\n" not in message and "tokenizer differs" in message and "first difference at token 0" in message


def test_an_older_vllm_without_prompt_token_ids_is_still_checked(student, lm):
    tokenizer = student[2]
    with ScoringServer("vllm", lm, tokenizer, token_ids=False) as srv, teacher_for(srv) as teacher:
        ids = teacher.tokenize("Compute 12 + 7 * 3.")
        check_same_tokenizer(teacher, tokenizer)
    assert ids[0] == -1 and ids[1:] == tokenizer("Compute 12 + 7 * 3.")["input_ids"][1:]
    shifted = lambda text: [(t + 1) % len(tokenizer) for t in tokenizer(text)["input_ids"]]  # noqa: E731: other ids
    with ScoringServer("vllm", lm, tokenizer, token_ids=False, tokenize=shifted) as srv, teacher_for(srv) as teacher:
        with pytest.raises(TeacherLogprobError, match="first difference at token 1"):
            check_same_tokenizer(teacher, tokenizer)


def test_a_teacher_failing_every_request_gives_up_after_max_attempts(student, lm):
    with ScoringServer("sglang", lm, student[2], fail=True) as srv, teacher_for(srv, max_attempts=3) as teacher:
        with pytest.raises(TeacherLogprobError) as err:
            teacher.score([sequence(8, 300)], [2])
        assert srv.requests == 3
    assert "no answer after 3 attempts (HTTP 500: engine crashed)" in str(err.value)


# ---------------------------------------------------------------- the built-in model teacher


def test_model_server_logprobs_equal_a_direct_forward_pass(student):
    _, model, tokenizer = student
    ids = sequence(40, len(tokenizer), seed=7)
    with torch.no_grad():
        direct = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    with ModelTeacherServer(ModelScorer(model, tokenizer, max_logprobs=20), model="tiny") as srv, \
            LogprobTeacher(srv.base_url, server="vllm", top_k=8) as teacher:
        check_same_tokenizer(teacher, tokenizer)
        got = teacher.score([ids], [5])[0]
        capped = LogprobTeacher(srv.base_url, server="vllm", top_k=21)
        with pytest.raises(TeacherLogprobError, match="--max-logprobs 21"):
            capped.score([ids], [5])
        capped.close()
    expected = torch.tensor([float(direct[i - 1, ids[i]]) for i in range(5, len(ids))])
    assert torch.allclose(torch.tensor(got.logprobs), expected, atol=1e-4)
    for t, i in enumerate(range(5, len(ids))):
        values, top_ids = direct[i - 1].topk(8)
        assert list(got.top[t]) == top_ids.tolist()
        assert torch.allclose(torch.tensor(list(got.top[t].values())), values, atol=1e-4)
    assert all(got.valid)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "distill", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_cli_teacher_score_fails_in_one_line_when_every_request_fails(student, lm):
    with ScoringServer("vllm", lm, student[2], fail=True) as srv:
        done = cli("teacher", "score", f"base_url={srv.base_url}", f"student={student[0]}", "max_attempts=2")
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distill teacher score: error: vllm teacher at")
    assert "no answer after 2 attempts (HTTP 500: engine crashed)" in lines[0]


def test_cli_teacher_serve_a_model_then_score_it(student):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "distill", "teacher", "serve", f"teacher_model={student[0]}",
                             "port=0", "max_logprobs=8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:"), proc.stderr.read() if not line else line
        url = line.split()[1]
        ok = cli("teacher", "score", f"base_url={url}", f"student={student[0]}", "top_k=8")
        with LogprobTeacher(url, top_k=9) as teacher, pytest.raises(TeacherLogprobError, match="--max-logprobs 9"):
            teacher.score([[5, 6, 7]], [1])
    finally:
        proc.terminate()
        proc.wait(30)
    assert ok.returncode == 0, ok.stderr
    assert "teacher ok: same tokenizer" in ok.stdout and "0 placeholders masked, top-k 8..8 of 8" in ok.stdout
