"""The cost cap spends the budget it is given (issue #13 §6), against the loopback teacher.

Each request in flight counts at the most it could cost (prompt + max_tokens); when those would
pass ``max_cost_usd``, workers wait for them to settle at their real cost and go on; sending
stops only when the next request alone could pass the cap, so the spend never exceeds it, even
when answers vary in length.
"""

from __future__ import annotations

import json

import pytest

from distill.errors import BudgetExceeded
from distill.generate.config import GenerateConfig
from distill.records import read_jsonl
from distill.teacher.server import TeacherServer

PRICES = {"input": 1.0, "output": 2.0}  # USD per 1M tokens: ~$0.00004 a request here


def _respond(messages, request):
    return "Add the two numbers, one step at a time.", "The answer is \\boxed{7}."


def _write(path, n):
    # Equal-length questions, so every request costs the same and "worth 100 requests" is exact.
    path.write_text("".join(json.dumps({"id": f"q{i:04d}", "question": f"Question number {i:04d}?", "answer": "7"})
                            + "\n" for i in range(n)))


def _cfg(tmp_path, srv, out, **kw):
    opts = dict(problems=str(tmp_path / "p.jsonl"), base_url=srv.base_url, model="m", out=str(out), progress=False,
                prices=PRICES, max_tokens=64, concurrency=16, request_timeout=10.0)
    opts.update(kw)
    return GenerateConfig(**opts)


def _one_request_cost(tmp_path, srv) -> float:
    from distill.generate import run

    run(_cfg(tmp_path, srv, tmp_path / "probe.jsonl", limit=1))
    (cost,) = [r["cost_usd"] for _, r in read_jsonl(tmp_path / "probe.jsonl")]
    return cost


@pytest.mark.parametrize("worth", [100, 7])
def test_a_cap_worth_n_requests_buys_about_n_and_never_more(tmp_path, worth):
    from distill.generate import run

    _write(tmp_path / "p.jsonl", 400)
    with TeacherServer(dialect="deepseek", responder=_respond, latency=0.01) as srv:
        price = _one_request_cost(tmp_path, srv)
        cap = (worth + 0.5) * price
        srv.stats.reset()
        with pytest.raises(BudgetExceeded, match="the next request could cost up to"):
            run(_cfg(tmp_path, srv, tmp_path / "t.jsonl", max_cost_usd=cap))
        sent = srv.stats.requests
    records = [r for _, r in read_jsonl(tmp_path / "t.jsonl")]
    spent = sum(r["cost_usd"] for r in records)
    assert len(records) == sent
    assert worth - 16 <= sent <= worth, (sent, worth)  # within one round of concurrency, never past the cap
    assert spent <= cap


def test_resuming_with_a_raised_cap_spends_only_the_difference(tmp_path):
    from distill.generate import run

    _write(tmp_path / "p.jsonl", 60)
    with TeacherServer(dialect="deepseek", responder=_respond) as srv:
        price = _one_request_cost(tmp_path, srv)
        with pytest.raises(BudgetExceeded):
            run(_cfg(tmp_path, srv, tmp_path / "t.jsonl", max_cost_usd=20.5 * price))
        first = srv.stats.requests - 1
        with pytest.raises(BudgetExceeded):  # the cap counts the whole file: 20 more, not 40
            run(_cfg(tmp_path, srv, tmp_path / "t.jsonl", max_cost_usd=40.5 * price))
        total = srv.stats.requests - 1
    assert 20 - 16 <= first <= 20 and 40 - 16 <= total <= 40
    assert sum(r["cost_usd"] for _, r in read_jsonl(tmp_path / "t.jsonl")) <= 40.5 * price


def _respond_varied(messages, request):
    repeat = 1 + int(messages[-1]["content"].split("number ")[1][:4]) % 4  # 1x..4x the text, fixed per question
    return " ".join(["Add the two numbers, one step at a time."] * repeat), "The answer is \\boxed{7}."


@pytest.mark.parametrize("worth,concurrency", [(10, 16), (60, 64)])
def test_answers_of_varied_length_never_pass_the_cap_and_leave_less_than_one_request(tmp_path, worth, concurrency):
    """An estimate from the answers seen so far would let cheap early answers admit dear later ones past
    the cap; counting requests in flight at their worst case cannot."""
    from distill.generate import run
    from distill.generate.stage import worst_cost
    from distill.teacher.pricing import resolve_prices

    _write(tmp_path / "p.jsonl", 400)
    with TeacherServer(dialect="deepseek", responder=_respond_varied, latency=0.01) as srv:
        price = _one_request_cost(tmp_path, srv)
        cap = (worth + 0.5) * price
        cfg = _cfg(tmp_path, srv, tmp_path / "t.jsonl", max_cost_usd=cap, concurrency=concurrency)
        with pytest.raises(BudgetExceeded):
            run(cfg)
    spent = sum(r["cost_usd"] for _, r in read_jsonl(tmp_path / "t.jsonl"))
    worst = worst_cost(cfg, resolve_prices("m", PRICES, cfg.base_url), {"question": "Question number 0000?"})
    assert spent <= cap
    assert cap - spent < worst  # stopped only when the next request alone could have passed the cap
