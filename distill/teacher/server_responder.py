"""What the loopback teacher answers by default: the offline teacher, else a generic trace.

Usage:
    responder = DefaultResponder(seed=0, mistake_rate=0.15, style="positions")
    reasoning, content = responder(messages, request)
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

from distill.teacher import server_wire as wire

if TYPE_CHECKING:  # the offline teacher itself loads on first use
    from distill.offline.families import TraceStyle

Responder = Callable[[list, dict], "tuple[str | None, str]"]


class DefaultResponder:
    """The offline teacher when it recognises the question, else generic reasoning + \\boxed{42}.

    Each (prompt, occurrence) gets its own seeded RNG, so samples differ yet runs repeat.
    """

    def __init__(self, seed: int = 0, mistake_rate: float = 0.0, style: TraceStyle = "plain") -> None:
        self.seed, self.mistake_rate, self.style = seed, mistake_rate, style
        self.seen: Counter = Counter()
        self._offline: Any = None

    def __call__(self, messages: list, request: dict) -> tuple[str | None, str]:
        prompt = wire.last_user_text(messages)
        index = self.seen[prompt]
        self.seen[prompt] += 1
        rng = random.Random(f"{self.seed}:{index}:{prompt}")
        respond = self._load_offline()
        if respond is not None:
            answer = respond(messages, rng, self.mistake_rate, style=self.style)
            if answer is not None:
                return answer
        return wire.generic_answer(prompt)

    def preload(self) -> None:
        """Import the offline teacher now (it may take seconds), not on the first request."""
        self._load_offline()

    def _load_offline(self) -> Any:
        if self._offline is None:
            try:  # written by another part of the project; absent in early checkouts
                from distill.offline import families as offline
                self._offline = getattr(offline, "respond", False)
            except ImportError:
                self._offline = False
        return self._offline or None
