"""Several replicas of one teacher (vLLM or SGLang servers): least busy first, a failing one taken out and tried later.

Usage:
    from distill.teacher.replicas import Replicas
    replicas = Replicas(["http://gpu1:8000/v1", "http://gpu2:8000/v1"], per_replica=32, failures=3, cooldown=30.0)
    async with replicas.use(avoid=set()) as index:    # waits for a healthy replica with room
        ...                                            # send to urls[index]; an exception counts against it
    replicas.summary()                                 # requests, failures and times taken out, per URL

Routing: the healthy replica with the fewest requests in flight (ties round-robin), never past
``per_replica`` in flight, preferring one this sample has not just failed on (``avoid``). A
replica whose last ``failures`` requests all failed for reasons of its own (connection refused or
cut, timeout, 5xx, malformed or empty body; not a 4xx or a 429, which are the request's or the
account's) is taken out for ``cooldown`` seconds, doubling each time it fails again (at most 16x);
then one probe request is let through, and a success puts it back. With a single URL nothing is
ever taken out (there is nowhere else to send): the client's own backoff rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from distill.teacher import retry as retry_policy

log = logging.getLogger(__name__)
_OWN_FAULTS = ("connection", "timeout", "malformed", "server_stopped", "stream_error")

__all__ = ["Replicas", "is_replica_fault"]


def is_replica_fault(exc: BaseException) -> bool:
    """Whether a failure says the replica is unwell (rather than the request or the account)."""
    kind = retry_policy.classify(exc).kind
    return kind in _OWN_FAULTS or (kind.startswith("http_5") and kind != "http_529")


@dataclass
class _Replica:
    url: str
    in_flight: int = 0
    requests: int = 0
    failed: int = 0
    streak: int = 0  # failures in a row
    trips: int = 0  # times taken out
    out_until: float = 0.0


class Replicas:
    """Load and health of each base URL; one instance per client (per event loop)."""

    def __init__(self, urls: list[str], per_replica: int | None = None, failures: int = 3, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.replicas = [_Replica(u) for u in urls]
        self.per_replica, self.failures, self.cooldown, self.clock = per_replica, failures, cooldown, clock
        self._turn = itertools.count()
        self._changed: asyncio.Condition | None = None

    def _room(self, r: _Replica, now: float) -> bool:
        if len(self.replicas) > 1 and r.out_until > now:
            return False
        limit = 1 if r.streak >= self.failures and len(self.replicas) > 1 else self.per_replica  # a probe: one
        return limit is None or r.in_flight < limit

    def pick(self, avoid: set[int] | frozenset[int] = frozenset()) -> int | None:
        """The least busy replica with room (not in ``avoid`` when another will do); None when none has room."""
        now, n = self.clock(), len(self.replicas)
        start = next(self._turn) % n
        order = [(start + i) % n for i in range(n)]
        ready = [i for i in order if self._room(self.replicas[i], now)]
        preferred = [i for i in ready if i not in avoid] or ready
        return min(preferred, key=lambda i: self.replicas[i].in_flight) if preferred else None

    async def _acquire(self, avoid: set[int]) -> int:
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            while (index := self.pick(avoid)) is None:
                back = [r.out_until for r in self.replicas if r.out_until > self.clock()]
                wait = max(0.01, min(back) - self.clock()) if back else None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
            replica = self.replicas[index]
            replica.in_flight += 1
            replica.requests += 1
        return index

    @contextlib.asynccontextmanager
    async def use(self, avoid: set[int]) -> AsyncIterator[int]:
        """Hold a place on a replica for one request; a failure of its own counts against it (and joins ``avoid``)."""
        index = await self._acquire(avoid)
        replica = self.replicas[index]
        try:
            yield index
        except Exception as exc:
            if is_replica_fault(exc):
                avoid.add(index)
                self._fault(replica, exc)
            raise
        else:
            if replica.streak >= self.failures and len(self.replicas) > 1:
                log.info("replica %s answers again: back in rotation", replica.url)
            replica.streak = 0
        finally:
            replica.in_flight -= 1
            await self._notify()

    def _fault(self, replica: _Replica, exc: BaseException) -> None:
        replica.failed += 1
        replica.streak += 1
        if replica.streak >= self.failures and len(self.replicas) > 1:
            pause = self.cooldown * min(16, 2 ** replica.trips)
            replica.trips += 1
            replica.out_until = self.clock() + pause
            log.warning("replica %s taken out after %d failures in a row (%s); trying it again in %.0fs",
                        replica.url, replica.streak, type(exc).__name__, pause)

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    def has_other(self, avoid: set[int]) -> bool:
        """Whether a healthy replica outside ``avoid`` exists (then a retry need not back off)."""
        now = self.clock()
        return any(i not in avoid and not (len(self.replicas) > 1 and r.out_until > now)
                   for i, r in enumerate(self.replicas))

    def summary(self) -> list[dict]:
        return [{"url": r.url, "requests": r.requests, "failed": r.failed, "taken_out": r.trips}
                for r in self.replicas]
