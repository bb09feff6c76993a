"""Waves of batches: what the traces file still needs, sent as request files, polled, merged back.

Usage:
    from distill.generate.batch_waves import Waves
    waves = Waves(cfg, out, backend, prices, provider, state, stats, sampler=None, scrub=str)
    waves.run()         # finishes the ledger's open parts, then one wave after another until nothing is left

A wave is every request the file still needs (the fixed grid's missing pairs; under
``until_correct``/``rationalize`` what :class:`~distill.generate.until_correct.CorrectTally` asks for),
cut into files at ``batch.max_requests`` / ``batch.max_bytes`` and admitted under ``max_cost_usd``
at each request's worst case at batch prices. Results are written with the online path's record
builder (:func:`distill.generate.stage.sample_record`). What comes back retryable (429/5xx, an
expired, failed or cancelled batch, an empty body) or truncated under ``on_truncated=retry`` goes
into the next wave, up to ``max_attempts`` sends per sample; other errors are written as failed.
A result whose problem id left the source between runs is kept in ``pNNNN.orphaned.jsonl``, with a warning.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from distill.artifacts import is_failed, latest_per_pair, pair_key, read_records
from distill.errors import DistillError, TeacherFatalError
from distill.generate.batch_files import BatchRequest, completion_of, encode_line, is_retryable, request_line, \
    split_parts, worst_request_cost
from distill.generate.batch_ledger import Ledger, Part
from distill.generate.config import GenerateConfig
from distill.generate.progress import RunStats
from distill.generate.resume import TraceState, is_complete
from distill.generate.stage import build_messages, hint_messages, sample_record
from distill.layout import generate_batches_path
from distill.progress import progress_bar
from distill.records import JsonlAppender, read_jsonl
from distill.sources import iter_problems
from distill.teacher import retry as retry_policy
from distill.teacher.batch_client import BatchBackend, BatchInfo
from distill.teacher.dialects import build_params, clean_messages

log = logging.getLogger(__name__)
_UNKNOWN = object()  # a lookup the provider could not answer (not the same as "no such batch")

__all__ = ["Waves"]


class Waves:
    """One generate run in batch mode over one traces file (the caller holds its lock)."""

    def __init__(self, cfg: GenerateConfig, out: Path, backend: BatchBackend, prices: dict | None, provider: str,
                 state: TraceState, stats: RunStats, sampler: Any = None, scrub: Callable[[str], str] = str):
        self.cfg, self.out, self.backend, self.prices, self.provider = cfg, out, backend, prices, provider
        self.stats, self.sampler, self.scrub = stats, sampler, scrub
        self.ledger = Ledger(generate_batches_path(out))
        self.done = set(state.done)
        self.records = state.lines  # the traces file's record count (a merge notes where it started)
        self.tokens = _escalations(out, cfg)  # pair -> max_tokens for a truncated answer's next send
        self.attempts: Counter = Counter()
        self.given_up: set[tuple[str, int]] = set()
        self.resend: list[BatchRequest] = []  # under until_correct: in flight in the tally, sent again
        self.deferred = 0  # requests of this wave left for the next one by the cost cap
        self.last_failure: str | None = None  # how the last failed backend call failed: "fail" or "retry"

    # ------------------------------------------------------------ waves

    def run(self) -> None:
        self.check_sizes()
        self.drain(previous=True)
        while self.stats.stop_reason is None:
            self.deferred = 0
            if not self.submit(self.admit(self.next_wave())):
                if self.deferred:  # something is still needed, and not even one request fits under the cap
                    self.stats.stop_reason = "budget"
                return
            self.drain(previous=False)

    def check_sizes(self) -> None:
        """ConfigError before any file is prepared when a request this run may send could not fit in a file
        (found mid-wave instead, the files cut before it would be left prepared and the run stopped half way)."""
        cfg = self.cfg
        last = max(cfg.samples, cfg.max_samples or 0) + (cfg.rationalize_samples if cfg.rationalize else 0) - 1
        tokens = max(cfg.max_tokens, cfg.max_tokens_ceiling if cfg.on_truncated == "retry" else 0)
        for problem in iter_problems(cfg):
            for hinted in (False, True) if cfg.rationalize else (False,):
                encode_line(self.line(problem, BatchRequest(str(problem["id"]), last, tokens, hinted)),
                            cfg.batch.max_bytes)

    def next_wave(self) -> Iterator[tuple[dict, BatchRequest]]:
        """Requests the file still needs, in source order (streamed: one pass over the problems)."""
        resend: dict[str, list[BatchRequest]] = {}
        for req in self.resend:
            resend.setdefault(req.problem_id, []).append(req)
        self.resend = []
        for problem in iter_problems(self.cfg):
            pid = str(problem["id"])
            yield from ((problem, req) for req in resend.pop(pid, []))
            if self.sampler is not None:
                pairs = self.sampler.tally.next_samples(pid)
            else:
                pairs = [(s, False) for s in range(self.cfg.samples)
                         if (pid, s) not in self.done and (pid, s) not in self.given_up]
            for s, hinted in pairs:
                yield problem, BatchRequest(pid, s, self.tokens.get((pid, s), self.cfg.max_tokens), hinted)

    def admit(self, wave: Iterable[tuple[dict, BatchRequest]]) -> Iterator[tuple[dict, BatchRequest, float]]:
        """The requests that fit under ``max_cost_usd`` at their worst case, with it; the rest wait a wave."""
        cap, held = self.cfg.max_cost_usd, 0.0
        room = None if cap is None else cap - self.stats.prior_cost - self.stats.cost
        for problem, req in wave:
            worst = worst_request_cost(self.prices, self._sent(problem, req), req.max_tokens)
            if room is None or held + worst <= room:
                held += worst
                yield problem, req, worst
                continue
            self.deferred += 1
            self.stats.next_estimate = max(self.stats.next_estimate, worst)
            if self.sampler is not None:
                self.resend.append(req)  # still in flight in the tally

    def _sent(self, problem: dict, req: BatchRequest) -> list[dict]:
        return hint_messages(self.cfg, problem) if req.is_hinted else build_messages(self.cfg, problem)

    def line(self, problem: dict, req: BatchRequest) -> dict:
        """The batch line of a request: the body the online client would send."""
        return request_line(req, build_params(self.cfg, self.provider, clean_messages(self._sent(problem, req)),
                                              req.max_tokens))

    def submit(self, admitted: Iterable[tuple[dict, BatchRequest, float]]) -> int:
        """Write the admitted requests as request files, one part at a time (submitted by :meth:`drain`)."""
        worst: dict[str, float] = {}  # only the part being filled: memory follows the file, not the wave

        def lines() -> Iterator[dict]:
            for problem, req, cost in admitted:
                worst[req.custom_id] = cost
                self.attempts[(req.problem_id, req.sample)] += 1
                yield self.line(problem, req)

        sent = 0
        for part in split_parts(lines(), self.cfg.batch.max_requests, self.cfg.batch.max_bytes):
            ids = [json.loads(line)["custom_id"] for line in part]
            self.ledger.prepare(part, sum(worst.pop(i) for i in ids))
            sent += len(part)
        return sent

    # ------------------------------------------------------------ batches

    def drain(self, previous: bool) -> None:
        """Submit, poll and merge every open part; ``previous``: they were left by a killed run."""
        parts = self.ledger.open_parts()
        if not parts:
            return
        if previous:
            log.info("resuming %d batch file(s) left by an earlier run (%s)", len(parts), self.ledger.path)
            for part in parts:
                for req in self._requests(part):
                    self.attempts[(req.problem_id, req.sample)] += 1
        bar = progress_bar(sum(p.requests for p in parts), desc="batch", unit="req", enabled=self.cfg.progress)
        try:
            waiting = {p.name: p for p in parts if self._start(p)}
            seen: dict[str, tuple] = {}
            delay = self.cfg.batch.poll_interval
            while waiting:
                changed = False
                for name, part in list(waiting.items()):
                    info = self._call(self.backend.retrieve, part.batch_id)
                    if info is None:  # never guess "failed": sending its requests again would pay for them twice
                        raise DistillError(f"batch {name} ({part.batch_id}): cannot get its status; it may still be "
                                           f"running at the provider. Re-run the same command to collect it")
                    now = (info.status, info.completed, info.failed)
                    if seen.get(name) != now:
                        seen[name], changed = now, True
                        log.info("batch %s (%s): %s, %d of %d done, %d failed", name, info.id, info.status,
                                 info.completed, part.requests, info.failed)
                    if info.is_done:
                        self.merge(part, info, previous)
                        del waiting[name]
                bar.n = sum(p.requests for p in parts if p.is_merged) + sum(
                    s[1] + s[2] for n, s in seen.items() if n in waiting)
                bar.set_postfix_str(f"cost=${self.stats.cost:.4f} batches={len(waiting)}", refresh=True)
                if waiting:
                    delay = self.cfg.batch.poll_interval if changed else min(self.cfg.batch.poll_max, delay * 1.5)
                    time.sleep(delay)
        finally:
            bar.close()

    def _start(self, part: Part) -> bool:
        """Upload and create as the ledger needs; False when the part ended (merged as failed) instead."""
        if part.batch_id is not None:
            return True
        was_uploaded = part.file_id is not None
        if not was_uploaded:
            file_id = self._call(self.backend.upload, self.ledger.input_path(part))
            if file_id is None:
                self.merge(part, BatchInfo("", "failed", errors=["upload refused"]), previous=False)
                return False
            self.ledger.record(part, "uploaded", file_id=file_id)
        # A kill between create and its ledger line left a batch we would pay for twice: adopt it, and
        # where the provider keeps no batch list to find it in, stop and say so (_lookup).
        if part.is_creating:
            info = self._lookup(part)
        else:  # (a ledger written before "creating" was: look as far as the provider can say)
            info = self._call(self.backend.find, part.file_id) if was_uploaded else None
        if info is None:
            self.ledger.record(part, "creating")
            info = self._create(part)
            if info is None:
                self.merge(part, BatchInfo("", "failed", errors=["create refused"]), previous=False)
                return False
        else:
            log.info("batch %s: found %s already made from %s", part.name, info.id, part.file_id)
        self.ledger.record(part, "created", batch_id=info.id)
        return True

    def _create(self, part: Part) -> BatchInfo | None:
        """Make the part's batch, or find the one a create whose answer was lost made; None when refused for
        good. A create that went unanswered is looked up before any retry (and once more after the last one);
        :meth:`_lookup` stops the run when the provider cannot say, rather than pay for a second batch."""
        info = self._call(self.backend.create, part.file_id, self.cfg.batch.completion_window,
                          {"distill_part": part.name, "distill_out": self.out.name}, recheck=lambda: self._lookup(part))
        if info is None and self.last_failure != "fail":  # the final attempt went unanswered: it may have made it
            info = self._lookup(part)
        return info

    def _lookup(self, part: Part) -> BatchInfo | None:
        """The batch made from the part's file, None when there is none; DistillError when the provider cannot
        be asked (no batch list, or it keeps failing) after a create that may have made one."""
        info = self._call(self.backend.find, part.file_id, failed=_UNKNOWN)
        if info is _UNKNOWN:
            created = json.dumps({"event": "created", "part": part.name, "batch_id": "<its id>"})
            none = json.dumps({"event": "uploaded", "part": part.name, "file_id": part.file_id})
            raise DistillError(f"batch {part.name}: a create for input file {part.file_id} got no answer (or the run "
                               "was stopped before it did) and the provider's batch list cannot be read to see "
                               "whether it made one, so creating again could pay twice. Check the provider's batches "
                               f"for input file {part.file_id}: if one was made, add the line {created} to "
                               f"{self.ledger.path} and re-run to collect it; if none was, add the line {none} "
                               "and re-run to create it")
        return info

    def _call(self, fn: Callable, *args: Any, recheck: Callable[[], Any] | None = None, failed: Any = None) -> Any:
        """A backend call with the online client's retry policy; ``failed`` (None) when the provider refused it
        for good or every attempt failed (``last_failure`` says which: "fail" or "retry").
        ``recheck`` runs before each retry and, when it finds the call's effect, its result is returned."""
        self.last_failure = None
        for attempt in range(1, self.cfg.max_attempts + 1):
            try:
                found = recheck() if recheck is not None and attempt > 1 else None
                return found if found is not None else fn(*args)
            except (KeyboardInterrupt, DistillError):  # a 401/402 (TeacherFatalError), or a recheck that stopped
                raise
            except Exception as exc:  # noqa: BLE001 - classified like an online request's failure
                decision = retry_policy.classify(exc)
                message = self.scrub(f"{type(exc).__name__}: {exc}")[:300]
                if decision.action == "fatal":
                    raise TeacherFatalError(f"batch API refused ({message}); fix it and re-run to resume. "
                                            "Everything received is kept.") from None
                if decision.action == "fail" or attempt == self.cfg.max_attempts:
                    log.warning("%s failed: %s", getattr(fn, "__name__", "batch call"), message)
                    self.last_failure = decision.action
                    return failed
                time.sleep(retry_policy.backoff_delay(attempt, self.cfg.backoff_base, self.cfg.backoff_max,
                                                      decision.retry_after))
        return failed

    # ------------------------------------------------------------ merge

    def _requests(self, part: Part) -> list[BatchRequest]:
        return [BatchRequest.parse(line["custom_id"]) for _, line in read_jsonl(self.ledger.input_path(part))]

    def _results(self, part: Part, info: BatchInfo):
        """``(custom_id, line)`` from the output file, then the error file (streamed, never held whole)."""
        for kind, file_id in (("out", info.output_file_id), ("err", info.error_file_id)):
            if not file_id:
                continue
            dest = self.ledger.result_path(part, kind)
            if self._call(self.backend.download, file_id, dest) is None and not dest.exists():
                # Sending these requests again would pay for them twice: stop, and let a re-run download.
                raise DistillError(f"batch {part.name} ({info.id}): could not download its {kind} file {file_id}; "
                                   f"re-run the same command to try again ({self.ledger.path} remembers it)")
            for _, line in read_jsonl(dest):
                if isinstance(line.get("custom_id"), str):
                    yield line["custom_id"], line

    def merge(self, part: Part, info: BatchInfo, previous: bool) -> None:
        """Append one record per request of ``part`` (once, even across a kill mid-merge)."""
        requests = {req.custom_id: req for req in self._requests(part)}
        if part.records_before is None:
            self.ledger.record(part, "merging", records_before=self.records, status=info.status)
        written_before = self._written_since(part.records_before or 0)
        problems = {str(p["id"]): p for p in iter_problems(self.cfg) if str(p["id"]) in
                    {r.problem_id for r in requests.values()}}
        missing = f"batch_{info.status}" if info.status != "completed" else "batch_incomplete"
        written = 0
        with JsonlAppender(self.out, fsync=self.cfg.fsync) as writer, _Orphans(self.ledger, part) as orphans:
            for custom_id, line in self._results(part, info):
                req = requests.pop(custom_id, None)
                if req is not None and req.problem_id not in problems:
                    orphans.keep(req, line)
                elif req is not None:
                    written += self._settle(writer, problems[req.problem_id], req, line, missing, previous,
                                            written_before)
            for req in requests.values():  # no result came back: the batch expired, failed or was cancelled
                if req.problem_id in problems:
                    written += self._settle(writer, problems[req.problem_id], req, None, missing, previous,
                                            written_before, "; ".join(info.errors))
        orphans.warn(self.cfg.problems)
        self.ledger.record(part, "merged", status=info.status, written=written)
        for kind in ("out", "err"):  # their records are in the traces file now: do not keep every answer twice
            self.ledger.result_path(part, kind).unlink(missing_ok=True)

    def _written_since(self, records_before: int) -> set[tuple[str, int]]:
        if records_before >= self.records or not self.out.exists():
            return set()
        return {pair_key(rec) for i, (_, rec) in enumerate(read_records(self.out)) if i >= records_before}

    def _settle(self, writer: JsonlAppender, problem: dict, req: BatchRequest, line: dict | None, missing: str,
                previous: bool, written_before: set, note: str = "") -> int:
        """Write (or hold for the next wave) one request's result; the number of records written."""
        pair = (req.problem_id, req.sample)
        if pair in written_before:
            return 0
        result = completion_of(line, self.prices, self._sent(problem, req), missing)
        result.model = result.model or self.cfg.model
        result.attempts = max(1, self.attempts[pair])
        if result.error and note:
            result.error["message"] = self.scrub(f"{result.error['message']}: {note}")[:500]
        if result.error and is_retryable(result.error) and self.attempts[pair] < self.cfg.max_attempts:
            self._again(req, previous)
            return 0
        record = sample_record(self.cfg, problem, req.sample, result, req.max_tokens, req.is_hinted)
        writer.write(record)
        self.records += 1
        self.stats.add(record)
        if is_complete(record, self.cfg.on_truncated, self.cfg.max_tokens_ceiling):
            self.done.add(pair)
            if self.sampler is not None:
                self.sampler.tally.seen(record, was_in_flight=not previous)
        elif record.get("truncated"):  # on_truncated=retry, under the ceiling: ask again with more room
            self.tokens[pair] = min(self.cfg.max_tokens_ceiling, int(req.max_tokens * self.cfg.truncation_factor))
            self._again(BatchRequest(req.problem_id, req.sample, self.tokens[pair], req.is_hinted), previous)
        else:
            self.given_up.add(pair)
            if self.sampler is not None and not previous:
                self.sampler.tally.seen(record, was_in_flight=True)
        return 1

    def _again(self, req: BatchRequest, previous: bool) -> None:
        # The fixed grid finds every unsettled pair by itself; the tally only knows what it handed out, and a
        # killed run's part was not handed out by this run's tally (it asks that index again on its own).
        if self.sampler is not None and not previous:
            self.resend.append(req)


class _Orphans:
    """Result lines of a part whose problem id is no longer in the source (the file changed between runs):
    paid for but not writable as traces (no question or answer), so kept whole in ``pNNNN.orphaned.jsonl``."""

    def __init__(self, ledger: Ledger, part: Part):
        self.path = ledger.result_path(part, "orphaned")
        self.ids: list[str] = []
        self._writer: JsonlAppender | None = None

    def __enter__(self) -> _Orphans:
        self.path.unlink(missing_ok=True)  # a merge killed half way is done again whole
        return self

    def keep(self, req: BatchRequest, line: dict) -> None:
        if self._writer is None:
            self._writer = JsonlAppender(self.path, fsync=True)
        self._writer.write(line)
        if req.problem_id not in self.ids:
            self.ids.append(req.problem_id)

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    def warn(self, problems: str) -> None:
        if self.ids:
            shown = ", ".join(self.ids[:10]) + (f" and {len(self.ids) - 10} more" if len(self.ids) > 10 else "")
            log.warning("problem id(s) %s are no longer in %s: their answers (paid for) are kept in %s, not in the "
                        "traces file", shown, problems, self.path)


def _escalations(out: Path, cfg: GenerateConfig) -> dict[tuple[str, int], int]:
    """Pairs whose last answer was truncated under ``on_truncated=retry``: the budget of their next send."""
    if cfg.on_truncated != "retry" or not out.exists():
        return {}
    last = latest_per_pair(read_records(out), keep=lambda _line, rec: None if is_failed(rec) or not rec.get(
        "truncated") else int(rec.get("max_tokens") or cfg.max_tokens), path=out)
    return {pair: min(cfg.max_tokens_ceiling, int(m * cfg.truncation_factor)) for pair, m in last.items()
            if m is not None and m < cfg.max_tokens_ceiling}
