"""Dispatch a check to its kind (placeholder until the full checkers land).

Usage:
    from distill.verify.checker import check
"""

from __future__ import annotations

from distill.verify.verdict import Verdict

KINDS_CHECKED = ("math", "gsm8k", "choice", "exact", "code")


def check(response: str, gold: str, kind: str) -> Verdict:
    """Check ``response`` against ``gold`` for ``kind``."""
    if kind not in KINDS_CHECKED:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS_CHECKED)})")
    return Verdict(None, None, "unchecked")
