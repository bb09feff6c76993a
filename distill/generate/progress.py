"""Counters of one `distill generate` run: the budget check, the progress-bar line, the plan and summary.

Usage:
    stats = RunStats(problems=100, pending=400, resumed=0)
    held = stats.reserve(max_cost_usd, prices, 4000, problem)   # None: the budget says stop
    stats.release(held)                                        # after the request, whatever happened
    stats.add(record)
    stats.refresh_bar(bar)
    show_summary(stats, out)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.progress import human_count, show_table
from distill.teacher.pricing import cost_usd

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    problems: int = 0
    pending: int = 0
    resumed: int = 0
    done: int = 0  # records written this run (good or failed)
    failed: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    prior_cost: float = 0.0  # spent by earlier runs on the same output
    in_flight: int = 0
    reserved: float = 0.0
    stop_reason: str | None = None
    fatal: Exception | None = None
    tasks: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _shown: float = 0.0

    def reserve(self, max_cost: float | None, prices: dict | None, est_completion: int, problem: dict
                ) -> float | None:
        """Admit one more request unless spent + in flight + its estimate would pass ``max_cost``."""
        if self.done - self.failed > 0:
            est = self.cost / max(self.done, 1)  # what requests have really cost so far
        else:
            est = cost_usd({"prompt_tokens": len(problem.get("question", "")) // 4 + 30,
                            "completion_tokens": est_completion}, prices)
        if max_cost is not None and self.prior_cost + self.cost + self.reserved + est > max_cost:
            return None
        self.in_flight += 1
        self.reserved += est
        return est

    def release(self, held: float) -> None:
        self.in_flight -= 1
        self.reserved = max(0.0, self.reserved - held)

    def add(self, record: dict) -> None:
        self.done += 1
        self.failed += bool(record.get("error"))
        self.truncated += bool(record.get("truncated"))
        usage = record.get("usage") or {}
        self.prompt_tokens += usage.get("prompt_tokens", 0)
        self.completion_tokens += usage.get("completion_tokens", 0)
        self.reasoning_tokens += usage.get("reasoning_tokens", 0)
        self.cached_tokens += usage.get("cached_tokens", 0)
        self.cost += record.get("cost_usd") or 0.0

    def refresh_bar(self, bar: Any) -> None:
        now = time.monotonic()
        if now - self._shown < 0.5 and self.done < self.pending:
            return
        self._shown = now
        bar.set_postfix_str(f"tok={human_count(self.prompt_tokens + self.completion_tokens)} "
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
    show_table("generate (dry run: nothing sent)", [
        ("problems", problems), ("samples per problem", cfg.samples), ("already done", resumed),
        ("requests to send", pending), ("prompt tokens (est.)", human_count(prompt_tokens)),
        ("completion tokens (est.)", human_count(pending * cfg.est_completion_tokens)),
        ("estimated cost", cost), ("model", cfg.model), ("output", cfg.out),
    ])


def show_summary(stats: RunStats, out: Path) -> None:
    wall = time.monotonic() - stats.started
    rows = [
        ("problems", stats.problems), ("resumed (already done)", stats.resumed),
        ("requested this run", stats.done), ("succeeded", stats.done - stats.failed),
        ("failed (retried next run)", stats.failed), ("truncated", stats.truncated),
        ("not sent", stats.pending - stats.done),
        ("prompt tokens", human_count(stats.prompt_tokens)), ("cached tokens", human_count(stats.cached_tokens)),
        ("completion tokens", human_count(stats.completion_tokens)),
        ("reasoning tokens", human_count(stats.reasoning_tokens)),
        ("cost", f"${stats.cost:.4f}" + (f" (file total ${stats.cost + stats.prior_cost:.4f})"
                                          if stats.prior_cost else "")), ("wall time", f"{wall:.1f}s"),
        ("throughput", f"{stats.done / wall:.2f} req/s" if wall > 0 else "-"),
        ("output", str(out)),
    ]
    if stats.stop_reason:
        rows.insert(0, ("stopped", stats.stop_reason))
    show_table("generate", rows)
