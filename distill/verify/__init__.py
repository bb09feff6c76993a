"""Answer checking: is a model's final answer the gold answer? Pure functions, no I/O.

Usage:
    from distill.verify import check
    v = check("... so the answer is \\boxed{\\frac{1}{2}}", "0.5", "math")
    v.correct, v.extracted, v.reason      # (True, "\\frac{1}{2}", "correct")
    from distill.verify import check_record
    check_record(trace)                   # the verdict every stage uses on a record (distill.verify.record)

Kinds: math, gsm8k, choice, exact, code (code runs the gold tests in distill.verify.sandbox).
``check`` and ``check_record`` load lazily so importing distill.verify.sandbox does not pull in sympy.
"""

from __future__ import annotations

from distill.verify.verdict import Verdict

__all__ = ["Verdict", "check", "check_record"]


def __getattr__(name: str):
    if name == "check":
        from distill.verify.checker import check

        return check
    if name == "check_record":
        from distill.verify.record import check_record

        return check_record
    raise AttributeError(f"module 'distill.verify' has no attribute {name!r}")
