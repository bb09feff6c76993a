"""Faults the loopback teacher injects: queued ones for tests, and random ones at given rates.

Usage:
    plan = FaultPlan(seed=0, rates={"429": 0.05})
    plan.add(Fault("500", count=2, match="strawberry"))
    fault = plan.take(prompt)        # the fault for this request, or None
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class Fault:
    kind: str
    count: int
    match: str | None = None
    opts: dict = field(default_factory=dict)


class FaultPlan:
    """Queued faults (consumed one per matching request), then seeded random ones by rate."""

    def __init__(self, seed: int = 0, rates: dict[str, float] | None = None) -> None:
        self.rates = dict(rates or {})
        self._rng = random.Random(seed)
        self._queued: list[Fault] = []
        self._lock = threading.Lock()  # tests add faults from their thread; the server takes them on its loop

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queued.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()

    def take(self, prompt: str) -> Fault | None:
        with self._lock:
            for fault in self._queued:
                if fault.count > 0 and (fault.match is None or fault.match in prompt):
                    fault.count -= 1
                    if fault.count == 0:
                        self._queued.remove(fault)
                    return fault
        for kind, rate in self.rates.items():
            if self._rng.random() < rate:
                return Fault(kind, 1, opts={"retry_after": 0.5} if kind in ("429", "503") else {})
        return None
