"""Counters of one `distill generate` run: the budget check, the progress-bar line, the plan and summary.

Usage:
    stats = RunStats(problems=100, pending=400, resumed=0)
    held = await stats.reserve(max_cost_usd, worst_case_usd)   # None: the budget says stop
    stats.settle(held, record)                                  # after the request: its real cost
    stats.refresh_bar(bar)
    show_summary(stats, out)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.artifacts import Spend
from distill.progress import human_count, show_table

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    problems: int = 0
    pending: int = 0
    resumed: int = 0
    done: int = 0  # records written this run (good or failed)
    failed: int = 0
    truncated: int = 0
    spend: Spend = field(default_factory=Spend)  # what this run's records cost, summed as every reader sums it
    prior_cost: float = 0.0  # spent by earlier runs on the same output
    in_flight: int = 0
    reserved: float = 0.0
    max_seen: float = 0.0  # the dearest sample this run
    next_estimate: float = 0.0  # the most the next request could cost (what the cap counts)
    failures: dict = field(default_factory=dict)  # error type -> samples
    stop_reason: str | None = None
    fatal: Exception | None = None
    tasks: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _shown: float = 0.0
    _settled: asyncio.Event | None = None

    async def reserve(self, max_cost: float | None, worst: float) -> float | None:
        """Admit one more request, counting each request in flight at ``worst`` (the most it could cost).

        When spent + in flight + ``worst`` would pass ``max_cost``, wait for requests in flight to
        settle at their real cost and look again; None only when nothing is in flight and the next
        request alone could pass the cap. So the cap is never exceeded, and it is spent down to
        less than one request's worst case.
        """
        while True:
            self.next_estimate = worst
            if max_cost is None or self.prior_cost + self.cost + self.reserved + worst <= max_cost:
                self.in_flight += 1
                self.reserved += worst
                return worst
            if self.in_flight == 0:
                return None
            if self._settled is None:
                self._settled = asyncio.Event()
            await self._settled.wait()

    def settle(self, held: float, record: dict | None) -> None:
        """One request finished: its real cost replaces its reservation, in one step (no window to overspend)."""
        if record is not None:
            self.add(record)
        self.in_flight -= 1
        self.reserved = max(0.0, self.reserved - held)
        if self._settled is not None:  # wake the workers waiting for room under the cap
            self._settled.set()
            self._settled = None

    def add(self, record: dict) -> None:
        self.done += 1
        error = record.get("error")
        kind = str((error.get("type") if isinstance(error, dict) else None) or "error")
        if error and kind != "truncated":  # dropped as truncated is settled (never re-asked), not failed
            self.failed += 1
            self.failures[kind] = self.failures.get(kind, 0) + 1
        self.truncated += bool(record.get("truncated"))
        self.spend.add(record)
        self.max_seen = max(self.max_seen, record.get("cost_usd") or 0.0)

    @property
    def cost(self) -> float:
        """USD this run spent so far (earlier runs' spend is ``prior_cost``)."""
        return self.spend.cost_usd

    def failure_summary(self) -> str:
        """``http_500 x3, connection x2``: why samples failed, commonest first."""
        return ", ".join(f"{k} x{n}" for k, n in sorted(self.failures.items(), key=lambda kv: -kv[1]))

    def refresh_bar(self, bar: Any) -> None:
        now = time.monotonic()
        if now - self._shown < 0.5 and self.done < self.pending:
            return
        self._shown = now
        bar.set_postfix_str(f"tok={human_count(self.spend.prompt_tokens + self.spend.completion_tokens)} "
                            f"cost=${self.cost:.4f} failed={self.failed} inflight={self.in_flight}",
                            refresh=False)


def show_plan(cfg: Any, problems: int, resumed: int, pending: int, prompt_tokens: int,
              estimate: float | None) -> None:
    """One log line for a real run; a table for ``dry_run``."""
    cost = "unknown (no price for this model)" if estimate is None else f"${estimate:.4f}"
    if not cfg.dry_run:
        log.info("generate: %d problems x %d samples; %d done already, %d to request (est. %s) -> %s",
                 problems, cfg.samples, resumed, pending, cost, cfg.out)
        return
    per_problem = cfg.samples if cfg.until_correct is None else f"{cfg.samples} first, up to {cfg.max_samples} (worst case counted)"
    if cfg.rationalize:
        per_problem = f"{per_problem} + {cfg.rationalize_samples} hinted if unsolved"
    show_table("generate (dry run: nothing sent)", [
        ("problems", problems), ("samples per problem", per_problem), ("already done", resumed),
        ("requests to send", pending), ("prompt tokens (est.)", human_count(prompt_tokens)),
        ("completion tokens (est.)", human_count(pending * cfg.est_completion_tokens)),
        ("estimated cost", cost), ("model", cfg.model), ("output", cfg.out),
    ])


def show_summary(stats: RunStats, out: Path, tally: dict | None = None) -> None:
    """The end-of-run table; ``tally``: sample-until-correct figures over the whole file (see adaptive)."""
    wall = time.monotonic() - stats.started
    rows = [
        ("problems", stats.problems), ("resumed (already done)", stats.resumed),
        ("requested this run", stats.done), ("succeeded", stats.done - stats.failed),
        ("failed (retried next run)", stats.failed), ("truncated", stats.truncated),
        ("not sent", stats.pending - stats.done),
        ("prompt tokens", human_count(stats.spend.prompt_tokens)),
        ("cached tokens", human_count(stats.spend.cached_tokens)),
        ("completion tokens", human_count(stats.spend.completion_tokens)),
        ("reasoning tokens", human_count(stats.spend.reasoning_tokens)),
        ("cost", f"${stats.cost:.4f}" + (f" (file total ${stats.cost + stats.prior_cost:.4f})"
                                          if stats.prior_cost else "")), ("wall time", f"{wall:.1f}s"),
        ("throughput", f"{stats.done / wall:.2f} req/s" if wall > 0 else "-"),
        ("output", str(out)),
    ]
    if stats.stop_reason:
        rows.insert(0, ("stopped", stats.stop_reason))
    if tally:
        rows[-1:-1] = [(f"until correct: {label}", tally[key]) for key, label in TALLY_ROWS if key in tally]
    show_table("generate", rows)


TALLY_ROWS = (("reached_k", "problems that reached k"), ("partly_solved", "problems short of k"),
              ("rationalized", "solved only by rationalization"), ("unsolved", "unsolved"),
              ("samples_per_solved", "samples per solved problem"), ("rationalizations", "hinted requests"))
