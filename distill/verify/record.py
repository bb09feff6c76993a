"""check_record(record): the one verdict on a problem/trace-shaped record, for every stage.

Usage:
    from distill.verify import check_record
    check_record({"answer": "72", "kind": "gsm8k", "content": "So \\boxed{72}"})   # Verdict(True, "72", "correct")
    check_record({"answer": "B", "kind": "choice", "options": ["Rome", "Paris"], "content": "Paris"})

The filter (distill.filter.measure), sample-until-correct (distill.generate.adaptive) and eval
(distill.evaluate.stage) all judge a response with this function, so the trace the filter keeps,
the sample the sampler counts and the answer eval scores get the same verdict (the filter's
optional LLM judge may then overrule an undecided or audited rule verdict: that is the judge's
job, and the kept record says ``by: judge``). It reads
``answer`` (the gold), ``kind``, ``options``, ``content`` (the final answer text; reasoning is
never graded), ``truncated``, ``finish_reason`` and ``error``. The rules, in the order they apply:

1. A failed request (``error`` set) has no response: ``Verdict(None, None, "error")``.
2. A missing or unknown ``kind`` (not in distill.artifacts.KINDS), or ``content``, ``truncated`` (or
   a choice record's ``options``) of the wrong type, is bad input: :class:`InputError` naming the field
   (callers that read a file add its path and line). A kind is never guessed: grading a code
   problem as math gives confident wrong verdicts.
3. The checker runs on ``content`` (:func:`distill.verify.checker.check`). A ``choice`` record's
   ``options`` (a list in letter order or a {letter: text} dict) are passed, so an answer naming
   the option's text counts; other kinds ignore options. Any exception from the checker other
   than a DistillError is ``Verdict(None, None, "checker_error")`` (undecided, logged): one odd
   trace must not stop a run. A DistillError (SandboxUnavailable: the code sandbox cannot run
   here) propagates: every code verdict would be a guess, so the run stops.
4. A gold answer that cannot be parsed is skipped, whatever the response:
   ``Verdict(None, None, "unparseable_gold")`` (undecided, never counted wrong).
5. A truncated response (``truncated`` true or ``finish_reason == "length"``) never reached its
   final answer, and a box before the cut may be a draft: ``Verdict(False, extracted, "truncated")``,
   ``extracted`` being what the cut text stated, for reading (a cut answer with no content too:
   the cut is why it is empty).
6. Empty content (None or whitespace) states nothing: ``Verdict(False, None, "empty")``.
7. Otherwise the checker's verdict stands, including its undecided ``no_answer`` (correct None)
   when the text states no value it can read, which the filter drops and eval scores as not correct.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from distill.artifacts import KINDS
from distill.errors import DistillError, InputError
from distill.verify.verdict import Verdict

log = logging.getLogger(__name__)

__all__ = ["check_record", "record_problem", "is_truncated"]


def record_problem(record: Mapping) -> tuple[str, str] | None:
    """(message, field) when ``record`` cannot be judged at all (rule 2), else None."""
    kind = record.get("kind")
    if kind not in KINDS:
        return f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})", "kind"
    content = record.get("content")
    if content is not None and not isinstance(content, str):
        return "must be a string or null", "content"
    truncated = record.get("truncated")
    if truncated is not None and not isinstance(truncated, bool):  # "false" would be true: every answer wrong
        return "truncated must be true, false or null", "truncated"
    options = record.get("options")  # read for choice only: another kind's extra field is not ours to refuse
    if kind == "choice" and options is not None and not isinstance(options, (list, dict)):
        return "options must be a list of option texts or a {letter: text} object", "options"
    return None


def is_truncated(record: Mapping) -> bool:
    """Whether the response was cut by the token budget (generate and eval both record it)."""
    return bool(record.get("truncated")) or record.get("finish_reason") == "length"


def check_record(record: Mapping, *, code_timeout: float = 5.0) -> Verdict:
    """The verdict on ``record``'s response (see the module docstring for the rules, in order)."""
    if record.get("error"):
        return Verdict(None, None, "error")
    problem = record_problem(record)
    if problem:
        raise InputError(problem[0], field=problem[1])
    verdict = _checked(record, code_timeout)
    if verdict.reason in ("unparseable_gold", "checker_error"):
        return verdict
    if is_truncated(record):  # before "empty": a cut answer says why it is empty
        return Verdict(False, verdict.extracted, "truncated")
    if not (record.get("content") or "").strip():
        return Verdict(False, None, "empty")
    return verdict


def _checked(record: Mapping, code_timeout: float) -> Verdict:
    from distill.verify.checker import check

    kind = record["kind"]
    gold = record.get("answer")
    options = record.get("options") if kind == "choice" else None
    try:
        return check(record.get("content") or "", "" if gold is None else str(gold), kind, options=options or None,
                     code_timeout=code_timeout)
    except DistillError:
        raise
    except Exception as exc:  # noqa: BLE001 - one odd record must not stop a run (rule 3)
        log.warning("the verifier failed on a %s record (%s): %s", kind, record.get("id"), exc)
        return Verdict(None, None, "checker_error")
