"""The training time budget (``max_train_seconds``), read on a wall clock or on this process's CPU clock.

Usage:
    budget = TrainBudget(cfg.max_train_seconds, cfg.train_clock, spent=state.get("train_seconds", 0.0))
    with budget.paused():   # dev scoring is not training
        score()
    is_out_of_time = budget.is_spent()   # after each optimizer step

Runs compared "at equal CPU time" (the ablation arms) are unfair on a wall clock when other jobs share the
machine: an arm that ran beside a test suite trained half as much. The ``cpu`` clock counts the CPU
seconds this process used, over its torch threads, so it reads like wall seconds on idle cores and is
not shortchanged on busy ones. On a GPU, ``wall`` is the meaningful clock.
The seconds already spent travel in each checkpoint, so a resumed run does not start its clock again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Literal

TrainClock = Literal["wall", "cpu"]


def _cpu_seconds_per_thread() -> float:
    import torch

    return time.process_time() / max(1, torch.get_num_threads())


_CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": _cpu_seconds_per_thread}


class TrainBudget:
    """Seconds of training spent so far on one clock, dev scoring excluded; ``limit`` None or 0: no budget."""

    def __init__(self, limit: float | None, clock: TrainClock = "wall", spent: float = 0.0) -> None:
        self.limit, self.clock = limit, clock
        self._read = _CLOCKS[clock]
        self._origin = self._read() - spent

    def spent(self) -> float:
        return self._read() - self._origin

    def is_spent(self) -> bool:
        return bool(self.limit) and self.spent() >= self.limit

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """What runs inside is not counted (dev generation and scoring)."""
        began = self._read()
        try:
            yield
        finally:
            self._origin += self._read() - began
