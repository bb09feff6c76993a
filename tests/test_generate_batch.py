"""`distill generate mode=batch` against a loopback batch API: same records as online, half price, waves,
expiry, failures, per-request errors, a kill at each step, the cost cap, until_correct, dry run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from batch_server import COMPLETION_TOKENS, BatchServer
from distill.artifacts import read_latest
from distill.config import load_config
from distill.errors import BudgetExceeded, ConfigError, DistillError, SamplesFailed, TeacherFatalError
from distill.generate import batch_waves
from distill.generate.batch import run as run_batch
from distill.generate.config import GenerateConfig
from distill.generate.stage import TRACE_KEYS, run
from distill.records import read_jsonl
from distill.teacher.batch_client import ApiBatches
from distill.teacher.server import TeacherServer

N = 10
PRICES = "prices={input: 1.0, output: 2.0}"


def respond(prompt):
    return "Step one. Step two.", "The answer is \\boxed{7}."


def write_problems(path: Path, n: int = N) -> None:
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Question number {i}?", "answer": "7"}) + "\n"
                            for i in range(n)))


def config(tmp_path, srv, *extra, out="traces.jsonl") -> GenerateConfig:
    write_problems(tmp_path / "p.jsonl")
    return load_config(GenerateConfig, None, [
        f"problems={tmp_path / 'p.jsonl'}", f"base_url={srv.base_url}", "model=test-teacher", "api_key_env=null",
        f"out={tmp_path / out}", "mode=batch", "batch.poll_interval=0.01", "batch.poll_max=0.05", "progress=false",
        "backoff_base=0.01", PRICES, *extra])


def answered_once(srv, n=N, samples=1) -> bool:
    return sum(srv.answered.values()) == n * samples and set(srv.answered.values()) == {samples}


def good(out: Path) -> dict:
    return {k: r for k, r in read_latest(out).items() if not r.get("error")}


def ledger(tmp_path) -> list[dict]:
    return [e for _, e in read_jsonl(tmp_path / "traces.batches.jsonl")]


def test_batch_records_match_online_and_cost_half(tmp_path):
    with BatchServer(respond) as srv:
        out = run(config(tmp_path, srv, "samples=2"))
    records = [r for _, r in read_jsonl(out)]
    assert len(records) == 2 * N and len(good(out)) == 2 * N and answered_once(srv, samples=2)
    with TeacherServer(dialect="deepseek", responder=lambda m, r: respond(None)) as online:
        cfg = config(tmp_path, online, "mode=online", out="online.jsonl")
        online_record = next(r for _, r in read_jsonl(run(cfg)))
    assert set(records[0]) == set(online_record) == set(TRACE_KEYS)
    first = records[0]
    assert first["reasoning"] == "Step one. Step two." and first["content"].endswith("\\boxed{7}.")
    body = first["messages"][-1]["content"]
    expected = (len(body) // 4 * 1.0 + COMPLETION_TOKENS * 2.0) / 1e6 * 0.5  # batch discount: half
    assert first["cost_usd"] == pytest.approx(expected, rel=1e-6)
    assert first["messages"] == online_record["messages"] and first["max_tokens"] == online_record["max_tokens"]


def test_requests_split_at_the_limits_and_slow_batches_are_polled(tmp_path):
    with BatchServer(respond, polls=6) as srv:
        run(config(tmp_path, srv, "samples=2", "batch.max_requests=8"))
    assert [b["request_counts"]["total"] for b in srv.batches.values()] == [8, 8, 4]
    assert srv.uploads == 3 and answered_once(srv, samples=2)
    assert srv.status_checks >= 3 * 8  # validating, 6 in progress, finalizing, completed for each
    lines = (tmp_path / "traces.batches" / "p0001.in.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"custom_id", "method", "url", "body"} and first["url"] == "/v1/chat/completions"
    assert first["body"]["model"] == "test-teacher" and "stream" not in first["body"]


def test_byte_limit_splits_too(tmp_path):
    with BatchServer(respond) as srv:
        run(config(tmp_path, srv, "batch.max_bytes=1024"))
    sizes = [p.stat().st_size for p in sorted((tmp_path / "traces.batches").glob("*.in.jsonl"))]
    assert len(sizes) > 1 and max(sizes) <= 1024 and answered_once(srv)


def test_partial_errors_are_retried_in_the_next_wave(tmp_path):
    with BatchServer(respond) as srv:
        srv.errors["number 3?"] = [500, 429]
        out = run(config(tmp_path, srv, "max_attempts=3"))
    assert len(good(out)) == N and answered_once(srv)
    assert read_latest(out)[("q3", 0)]["attempts"] == 3
    assert len(srv.batches) == 3  # one wave, then one per retry of the failing request


def test_errors_left_after_max_attempts_exit_5_and_a_rerun_retries(tmp_path):
    with BatchServer(respond) as srv:
        srv.errors["number 3?"] = [500, 500]
        srv.errors["number 4?"] = [400]  # not retryable: written as failed at once
        cfg = config(tmp_path, srv, "max_attempts=2")
        with pytest.raises(SamplesFailed, match="2 of"):
            run(cfg)
        failed = {k: r["error"]["type"] for k, r in read_latest(cfg.out).items() if r.get("error")}
        assert failed == {("q3", 0): "http_500", ("q4", 0): "http_400"}
        run(cfg)
    assert len(good(Path(cfg.out))) == N and answered_once(srv)


@pytest.mark.parametrize("fate", ["expired", "failed", "cancelled"])
def test_expired_failed_and_cancelled_batches_are_resubmitted(tmp_path, fate):
    with BatchServer(respond, polls=1) as srv:
        srv.fates = [fate]
        out = run(config(tmp_path, srv))
    assert len(good(out)) == N and answered_once(srv)
    assert [b["status"] for b in srv.batches.values()] == [fate, "completed"]
    merged = [e for e in ledger(tmp_path) if e["event"] == "merged"]
    assert [e["status"] for e in merged] == [fate, "completed"]
    half = 0 if fate == "failed" else N // 2
    assert [e["written"] for e in merged] == [half, N - half]


class Killed(BaseException):
    """What a SIGKILL does to the run, raised where the test wants it (not an Exception: nothing catches it)."""


class KillingBackend(ApiBatches):
    """The real API client, killed once at a chosen step."""

    def __init__(self, srv, step):
        super().__init__(srv.base_url, "EMPTY")
        self.step = step

    def upload(self, path):
        if self.step == "before_upload":
            raise Killed
        return super().upload(path)

    def create(self, file_id, window, metadata):
        if self.step == "before_create":
            raise Killed
        info = super().create(file_id, window, metadata)
        if self.step == "after_create":  # the batch exists at the provider, the ledger does not know it yet
            raise Killed
        return info

    def download(self, file_id, dest):
        if self.step == "before_download":
            raise Killed
        super().download(file_id, dest)


@pytest.mark.parametrize("step", ["before_create", "after_create", "before_download"])
def test_a_kill_at_each_step_resumes_without_paying_twice(tmp_path, step):
    with BatchServer(respond, polls=2) as srv:
        cfg = config(tmp_path, srv, "batch.max_requests=4")
        with pytest.raises(Killed):
            run_batch(cfg, backend=KillingBackend(srv, step))
        run(cfg)
        assert srv.uploads == 3 and len(srv.batches) == 3  # one per file: none uploaded or made twice
    assert len(good(Path(cfg.out))) == N and answered_once(srv)
    assert len(list(read_jsonl(cfg.out))) == N


def test_a_create_whose_answer_is_lost_is_found_not_made_again(tmp_path):
    with BatchServer(respond) as srv:
        srv.lose_creates = 1
        out = run(config(tmp_path, srv))
    assert len(srv.batches) == 1 and answered_once(srv) and len(good(out)) == N


def test_an_output_that_cannot_be_downloaded_stops_the_run_and_a_rerun_collects_it(tmp_path):
    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv)
        srv.hide_files = 1
        with pytest.raises(DistillError, match="could not download"):
            run(cfg)
        assert not Path(cfg.out).exists() or not list(read_jsonl(cfg.out))
        run(cfg)
    assert len(srv.batches) == 1 and answered_once(srv) and len(good(Path(cfg.out))) == N


def test_a_batch_whose_status_cannot_be_read_is_never_sent_again(tmp_path):
    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv)
        srv.hide_batches = 1
        with pytest.raises(DistillError, match="cannot get its status"):
            run(cfg)
        run(cfg)
    assert len(srv.batches) == 1 and answered_once(srv) and len(good(Path(cfg.out))) == N


def test_an_online_run_refuses_a_file_with_batches_still_open(tmp_path):
    with BatchServer(respond, polls=2) as srv:
        cfg = config(tmp_path, srv)
        with pytest.raises(Killed):
            run_batch(cfg, backend=KillingBackend(srv, "before_download"))
        cfg.mode = "online"
        with pytest.raises(ConfigError, match="mode=batch"):
            run(cfg)


def test_a_kill_mid_merge_writes_each_pair_once(tmp_path, monkeypatch):
    real, calls = batch_waves.sample_record, Counter()

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Killed
        return real(*args, **kwargs)

    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv)
        monkeypatch.setattr(batch_waves, "sample_record", dying)
        with pytest.raises(Killed):
            run(cfg)
        monkeypatch.setattr(batch_waves, "sample_record", real)
        assert len(list(read_jsonl(cfg.out))) == 3
        run(cfg)
    assert len(list(read_jsonl(cfg.out))) == N and len(good(Path(cfg.out))) == N
    assert len(srv.batches) == 1 and answered_once(srv)


def test_cost_cap_admits_what_fits_and_a_rerun_with_more_finishes(tmp_path):
    with BatchServer(respond) as srv:
        # A request's worst case: ((2*22+16) * $1 + 200 * $2) / 1M, halved = $0.00023; each costs $0.000111.
        cfg = config(tmp_path, srv, "max_tokens=200", "max_cost_usd=0.0008")
        with pytest.raises(BudgetExceeded, match="batch prices"):
            run(cfg)
        spent = sum(r["cost_usd"] for _, r in read_jsonl(cfg.out))
        assert 0.0008 - 0.00023 < spent <= 0.0008  # spent down to less than one request's worst case
        assert sum(b["request_counts"]["total"] for b in srv.batches.values()) == 6 and len(srv.batches) > 1
        assert len(list(read_jsonl(cfg.out))) == 6
        cfg.max_cost_usd = 1.0
        run(cfg)
    assert len(good(Path(cfg.out))) == N and answered_once(srv)


def test_dry_run_prints_requests_files_and_cost_and_sends_nothing(tmp_path, capsys):
    with BatchServer(respond) as srv:
        run(config(tmp_path, srv, "dry_run=true", "samples=3", "batch.max_requests=4"))
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "requests" in text and "| files" in text.replace("│", "|") and "estimated cost" in text
    assert " 8 " in text.replace("│", " ")  # 30 requests in files of 4
    assert srv.uploads == 0 and not (tmp_path / "traces.jsonl").exists()
    assert not (tmp_path / "traces.batches.jsonl").exists()


def test_a_refused_key_exits_3(tmp_path):
    with BatchServer(respond) as srv:
        srv.refuse = 401
        with pytest.raises(TeacherFatalError, match="refused"):
            run(config(tmp_path, srv))


def test_until_correct_and_rationalize_run_as_waves(tmp_path):
    def stubborn(prompt):  # even questions: right at once; odd: wrong until hinted
        i = int(prompt.split("number ")[1].split("?")[0])
        right = i % 2 == 0 or "Hint" in prompt
        return "Thinking.", f"\\boxed{{{7 if right else 8}}}"

    with BatchServer(stubborn) as srv:
        out = run(config(tmp_path, srv, "until_correct=1", "max_samples=3", "rationalize=true"))
    summary = json.loads((tmp_path / "traces.summary.json").read_text())
    assert summary["reached_k"] == N // 2 and summary["rationalized"] == N // 2
    totals = [b["request_counts"]["total"] for b in srv.batches.values()]
    assert totals == [N, N // 2, N // 2, N // 2]  # first wave, two more tries for the odd ones, then hinted
    hinted = [r for _, r in read_jsonl(out) if r.get("rationalized")]
    assert len(hinted) == N // 2 and all("Hint" not in r["messages"][-1]["content"] for r in hinted)


def test_truncated_answers_are_sent_again_with_more_tokens_in_the_next_wave(tmp_path):
    with BatchServer(respond) as srv:
        srv.needs_tokens = 300
        out = run(config(tmp_path, srv, "max_tokens=100", "on_truncated=retry", "max_tokens_ceiling=1000"))
    lines = [r for _, r in read_jsonl(out)]
    assert [r["max_tokens"] for r in lines if r["id"] == "q0"] == [100, 200, 400]
    assert all(r["truncated"] for r in lines if r["max_tokens"] < 400)
    latest = read_latest(out)
    assert len(latest) == N and all(r["max_tokens"] == 400 and not r["truncated"] for r in latest.values())
    assert len(srv.batches) == 3


def test_until_correct_resumes_after_a_kill_without_asking_twice(tmp_path):
    def stubborn(prompt):
        i = int(prompt.split("number ")[1].split("?")[0])
        return "Thinking.", f"\\boxed{{{7 if i % 2 == 0 or 'Hint' in prompt else 8}}}"

    with BatchServer(stubborn) as srv:
        cfg = config(tmp_path, srv, "until_correct=1", "max_samples=3", "rationalize=true")
        with pytest.raises(Killed):
            run_batch(cfg, backend=KillingBackend(srv, "before_download"))
        run(cfg)
    summary = json.loads((tmp_path / "traces.summary.json").read_text())
    assert summary["reached_k"] == N // 2 and summary["rationalized"] == N // 2
    assert [b["request_counts"]["total"] for b in srv.batches.values()] == [N, N // 2, N // 2, N // 2]
    assert sum(srv.answered.values()) == N + 3 * (N // 2)  # nothing asked twice


def test_a_problem_dropped_before_its_batch_is_merged_keeps_its_paid_answer_aside(tmp_path, caplog):
    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv)
        with pytest.raises(Killed):
            run_batch(cfg, backend=KillingBackend(srv, "before_download"))
        problems = Path(cfg.problems)
        problems.write_text("".join(x + "\n" for x in problems.read_text().splitlines() if '"q3"' not in x))
        run(cfg)  # was: KeyError 'q3', the merge left half done, and the same on every re-run
    assert sorted(k[0] for k in good(Path(cfg.out))) == sorted(f"q{i}" for i in range(N) if i != 3)
    assert len(srv.batches) == 1 and answered_once(srv)  # nothing paid twice
    kept = [line for _, line in read_jsonl(tmp_path / "traces.batches" / "p0001.orphaned.jsonl")]
    assert [line["custom_id"] for line in kept] == ["0:32768:s:q3"] and kept[0]["response"]["status_code"] == 200
    assert "q3" in caplog.text and "p.jsonl" in caplog.text


def test_an_oversized_request_is_refused_before_any_file_is_prepared(tmp_path):
    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv, "batch.max_requests=2", "batch.max_bytes=2000")
        rows = Path(cfg.problems).read_text().splitlines()
        rows[7] = json.dumps({"id": "q7", "question": "x" * 5000, "answer": "7"})
        Path(cfg.problems).write_text("\n".join(rows) + "\n")
        with pytest.raises(ConfigError, match="'0:32768:s:q7' alone"):
            run(cfg)
        assert srv.uploads == 0
    assert not (tmp_path / "traces.batches.jsonl").exists() and not (tmp_path / "traces.batches").exists()


def test_an_online_run_drops_files_that_were_only_prepared(tmp_path):
    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv, "batch.max_requests=4")
        with pytest.raises(Killed):
            run_batch(cfg, backend=KillingBackend(srv, "before_upload"))
        assert [e["event"] for e in ledger(tmp_path)] == ["prepared"] * 3  # nothing uploaded, nothing paid
    with TeacherServer(dialect="deepseek", responder=lambda m, r: respond(None)) as online:
        cfg.mode, cfg.base_url = "online", online.base_url
        run(cfg)  # was: "has 3 batch file(s) still open ... re-run with mode=batch"
    assert len(good(Path(cfg.out))) == N
    assert [e["event"] for e in ledger(tmp_path)] == ["prepared"] * 3 + ["dropped"] * 3
    assert not list((tmp_path / "traces.batches").glob("*.in.jsonl"))
    with BatchServer(respond) as srv:  # a later batch run does not send the dropped files
        cfg.mode, cfg.base_url = "batch", srv.base_url
        run(cfg)
        assert srv.uploads == 0


def test_a_callers_client_gives_the_batch_its_endpoint_and_prices(tmp_path):
    from distill.teacher.client import TeacherClient

    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv)
        client = TeacherClient(cfg, prices={"input": 10.0, "cached_input": 10.0, "output": 20.0})
        cfg.base_url = "http://127.0.0.1:9/v1"  # only the client knows the server
        out = run(cfg, client=client)  # was: the client ignored, cfg's prices and endpoint used
    first = next(r for _, r in read_jsonl(out))
    body = first["messages"][-1]["content"]
    assert first["cost_usd"] == pytest.approx((len(body) // 4 * 10.0 + COMPLETION_TOKENS * 20.0) / 1e6 * 0.5)
    assert len(good(out)) == N and answered_once(srv)


def test_a_client_with_the_local_backend_is_refused(tmp_path):
    from distill.teacher.client import TeacherClient

    with BatchServer(respond) as srv:
        cfg = config(tmp_path, srv, "batch.backend=local")
        with pytest.raises(ConfigError, match="batch.backend=local"):
            run(cfg, client=TeacherClient(cfg))


def test_a_lost_create_that_cannot_be_looked_up_stops_instead_of_creating_again(tmp_path):
    with BatchServer(respond) as srv:
        srv.lose_creates, srv.no_list = 1, True  # the provider made it, but has no list to find it by
        cfg = config(tmp_path, srv)
        with pytest.raises(DistillError, match="file-1") as err:
            run(cfg)  # was: merged as batch_failed, and the next wave made (and paid for) a second batch
        assert len(srv.batches) == 1 and "\n" not in str(err.value)
        hint = json.loads(str(err.value).split("add the line ")[1].split(" to ")[0].replace("<its id>", "batch_2"))
        with (tmp_path / "traces.batches.jsonl").open("a") as led:  # what the error tells the user to do
            led.write(json.dumps(hint) + "\n")
        run(cfg)
    assert len(srv.batches) == 1 and answered_once(srv) and len(good(Path(cfg.out))) == N


def test_a_kill_after_create_on_a_provider_without_a_batch_list_stops_instead_of_creating_again(tmp_path):
    with BatchServer(respond) as srv:
        srv.no_list = True  # GET /v1/batches is a 404: a batch made before the kill cannot be found by its file
        cfg = config(tmp_path, srv)
        with pytest.raises(Killed):
            run_batch(cfg, backend=KillingBackend(srv, "after_create"))
        with pytest.raises(DistillError, match="file-1"):
            run(cfg)  # was: a second batch created (and paid for) for the same file
        assert len(srv.batches) == 1
        with (tmp_path / "traces.batches.jsonl").open("a") as led:  # the error's first line: the batch was made
            led.write(json.dumps({"event": "created", "part": "p0001", "batch_id": next(iter(srv.batches))}) + "\n")
        run(cfg)
    assert len(srv.batches) == 1 and answered_once(srv) and len(good(Path(cfg.out))) == N


def test_a_kill_before_create_without_a_batch_list_resumes_once_told_none_was_made(tmp_path):
    with BatchServer(respond) as srv:
        srv.no_list = True
        cfg = config(tmp_path, srv)
        with pytest.raises(Killed):
            run_batch(cfg, backend=KillingBackend(srv, "before_create"))
        with pytest.raises(DistillError) as err:
            run(cfg)  # the ledger cannot tell a kill just before the request from one just after
        none = json.loads(str(err.value).split("if none was, add the line ")[1].split(" and re-run")[0])
        with (tmp_path / "traces.batches.jsonl").open("a") as led:
            led.write(json.dumps(none) + "\n")
        run(cfg)
    assert len(srv.batches) == 1 and answered_once(srv) and len(good(Path(cfg.out))) == N
