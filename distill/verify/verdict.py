"""The Verdict record every answer check returns.

Usage:
    from distill.verify.verdict import Verdict
    Verdict(True, "72", "correct")
"""

from __future__ import annotations

from typing import NamedTuple


class Verdict(NamedTuple):
    """Outcome of one answer check.

    ``correct`` is True / False, or None when it cannot be decided (unparseable gold, code
    sandbox unavailable). ``reason`` is one machine-readable word the filter stats count.
    """

    correct: bool | None
    extracted: str | None
    reason: str

    def as_dict(self) -> dict:
        """The JSON shape stored in kept/rejected records."""
        return {"correct": self.correct, "extracted": self.extracted, "reason": self.reason}
