"""Sample until correct inside `distill generate`: the verifier runs as traces arrive and decides what to draw next.

Usage:
    distill generate problems=rg:chain_sum limit=50 samples=1 until_correct=2 max_samples=8 rationalize=true ...
    sampler = AdaptiveSampler(cfg, out)             # what is already in ``out`` is fed to the tally
    problems, worst_pending, prompt_tokens = sampler.plan()

One worker owns one problem at a time: it asks the :class:`~distill.generate.until_correct.CorrectTally`
what to draw (the first wave of ``samples``, then as many as the problem is short of
``until_correct``, never past ``max_samples``, then ``rationalize_samples`` hinted requests if none
was correct), draws them, judges each with :func:`distill.verify.check_record` (the verdict the
filter and eval give the same record: a cut or empty response is wrong, a choice answer may name
the option's text) and asks again. The cost cap, Ctrl-C, the lock and the
append-only file are generate's own (:mod:`distill.generate.stage`). On resume the file's settled
records are fed to the tally first, so a problem that has ``until_correct`` is never asked again;
failed records are not fed, so their sample index is asked again (as a fixed-grid re-run does).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from distill.artifacts import Trace, latest_per_pair, read_records
from distill.errors import InputError
from distill.layout import generate_summary_path
from distill.generate.config import GenerateConfig
from distill.generate.progress import RunStats
from distill.generate.resume import is_complete
from distill.generate.stage import _one_sample, build_messages, finish_queue, hint_messages, worst_cost, _put
from distill.generate.until_correct import CorrectTally, UntilCorrect
from distill.records import JsonlAppender
from distill.sources import iter_problems
from distill.teacher.client import TeacherClient
from distill.teacher.dialects import estimate_tokens

log = logging.getLogger(__name__)
_TALLY_FIELDS = ("id", "sample", "answer", "kind", "options", "content", "reasoning", "error", "truncated",
                 "rationalized")

__all__ = ["AdaptiveSampler", "policy_of", "is_correct"]


def policy_of(cfg: GenerateConfig) -> UntilCorrect:
    """The draw policy ``cfg`` asks for; rationalize alone means: draw ``samples``, then hint the unsolved."""
    k = cfg.until_correct or cfg.samples
    return UntilCorrect(k=k, max_samples=cfg.max_samples or cfg.samples, first_wave=cfg.samples,
                        rationalize=cfg.rationalize, rationalize_samples=cfg.rationalize_samples)


def is_correct(trace: Trace) -> bool | None:
    """The verdict's ``correct`` on a trace (:func:`distill.verify.check_record`, as the filter and eval)."""
    from distill.verify import check_record

    return check_record(trace).correct


class AdaptiveSampler:
    """The tally of one traces file plus the producer and worker that drive generate under it."""

    def __init__(self, cfg: GenerateConfig, out: Path):
        self.cfg, self.out = cfg, out
        self.tally = CorrectTally(policy_of(cfg), is_correct)
        if out.exists():
            settled = latest_per_pair(read_records(out), keep=lambda line, rec: _compact(rec, out, line), path=out)
            for record in settled.values():
                if is_complete(record, cfg.on_truncated, cfg.max_tokens_ceiling):
                    self.tally.seen(record)

    def _remaining(self, problem_id: str) -> tuple[int, int]:
        """(samples, hinted requests) a problem may still need at worst."""
        tally, policy = self.tally._get(problem_id), self.tally.policy
        if tally.correct + tally.rationalized_correct >= policy.k:
            return 0, 0
        hinted = policy.rationalize_samples - tally.rationalized if policy.rationalize and not tally.correct else 0
        return max(0, policy.max_samples - tally.drawn), max(0, hinted)

    def plan(self) -> tuple[int, int, int]:
        """Validate every problem (streaming); return (problems, worst-case requests, their prompt tokens)."""
        problems = pending = prompt_tokens = 0
        for problem in iter_problems(self.cfg):
            problems += 1
            samples, hinted = self._remaining(str(problem["id"]))
            pending += samples + hinted
            prompt_tokens += samples * estimate_tokens(build_messages(self.cfg, problem))
            if hinted:
                prompt_tokens += hinted * estimate_tokens(hint_messages(self.cfg, problem))
        return problems, pending, prompt_tokens

    async def produce(self, cfg: GenerateConfig, tally: CorrectTally, queue: asyncio.Queue, stop: asyncio.Event,
                      n_workers: int) -> None:
        for problem in iter_problems(cfg):
            if stop.is_set():
                break
            if any(self._remaining(str(problem["id"]))):
                await _put(queue, problem, stop)
        await finish_queue(queue, stop, n_workers)

    async def worker(self, cfg: GenerateConfig, client: TeacherClient, queue: asyncio.Queue, writer: JsonlAppender,
                     stats: RunStats, stop: asyncio.Event, bar: Any) -> None:
        while True:
            problem = await queue.get()
            if problem is None or stop.is_set():
                return
            while not stop.is_set():
                batch = self.tally.next_samples(str(problem["id"]))
                if not batch:
                    break
                for sample, is_hinted in batch:
                    if not await self._draw(cfg, client, problem, sample, is_hinted, writer, stats, stop):
                        return
                    bar.update(1)
                    stats.refresh_bar(bar)

    async def _draw(self, cfg: GenerateConfig, client: TeacherClient, problem: dict, sample: int, is_hinted: bool,
                    writer: JsonlAppender, stats: RunStats, stop: asyncio.Event) -> bool:
        """One request under the cost cap, written and counted; False when the run must stop."""
        sent = hint_messages(cfg, problem) if is_hinted else None
        held = await stats.reserve(cfg.max_cost_usd, worst_cost(cfg, client.prices, problem, stats.max_seen, sent))
        if held is None:
            stats.stop_reason = stats.stop_reason or "budget"
            stop.set()
            return False
        if stop.is_set():
            stats.settle(held, None)
            return False
        record = None
        try:
            record = await _one_sample(cfg, client, problem, sample, is_hinted)
            writer.write(record)
        except Exception as exc:  # TeacherFatalError (401/402) or a bug: stop cleanly, as generate does
            from distill.errors import TeacherFatalError

            record = None
            stats.fatal = stats.fatal or exc
            stats.stop_reason = "fatal" if isinstance(exc, TeacherFatalError) else "error"
            stop.set()
            if not isinstance(exc, TeacherFatalError):
                raise
            return False
        finally:
            stats.settle(held, record)
        self.tally.seen(record, was_in_flight=True)
        return True

    def finish(self, out: Path) -> dict:
        """Write the tally over the whole file beside it (the run report reads it) and return it."""
        summary = {"until_correct": self.cfg.until_correct, "max_samples": self.cfg.max_samples,
                   "first_wave": self.cfg.samples, "rationalize": self.cfg.rationalize, **self.tally.summary()}
        path = generate_summary_path(out)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(path)
        log.info("until correct: %s", summary)
        return summary


def _compact(record: dict, path: Path, line: int) -> dict:
    """The fields the tally and the resume rule read (drops usage, messages...); a record the verifier
    cannot judge (no kind, say) is refused here, naming its line, before anything is sent."""
    from distill.verify.record import record_problem

    problem = None if record.get("error") else record_problem(record)
    if problem:
        raise InputError(problem[0], path=path, line=line, field=problem[1])
    return {k: record.get(k) for k in _TALLY_FIELDS + ("max_tokens", "finish_reason") if k in record}
