"""Per-trace work of `distill filter`, run in worker processes: parse, validate, verify, measure.

Usage:
    init_worker(cfg, eval_index)                       # once per process (the pool's initializer)
    measure_chunk([(line_no, raw_line_bytes), ...])    # -> [("ok", line_no, result) | ("bad", line_no, msg, field)]

A result is plain JSON (it is cached between runs): the trace's id and sample, the verifier's
verdict, the per-trace flags that failed in funnel order with a detail each, token counts, and
for traces that may be kept the dedup keys and false arithmetic claims. Thresholds are applied
here, so the cache key includes every per-trace option.
"""

from __future__ import annotations

import json
from typing import Any

from distill.filter import quality
from distill.filter.config import FilterConfig
from distill.filter.decontam import EvalIndex, overlap
from distill.minhash import sketch, text_digest
from distill.filter.hint_leak import hint_leak
from distill.arithmetic import false_claims
from distill.artifacts import TRACE_REQUIRED
from distill.soundness import false_steps
from distill.verify.record import is_truncated, record_problem


# Per-trace reasons in funnel order (the answer verdict's reasons come after them).
FLAG_ORDER = ("error", "truncated", "missing_reasoning", "too_short", "too_long", "repetition",
              "language_mix", "contaminated", "hint_leak")

_CFG: FilterConfig | None = None
_INDEX: EvalIndex | None = None
_TOKENIZER: Any = None
check_record: Any = None  # distill.verify.check_record, bound by import_verifier()


def init_worker(cfg: FilterConfig, index: EvalIndex | None) -> None:
    """Set the options this process measures with (pool initializer; also called in-process)."""
    global _CFG, _INDEX, _TOKENIZER
    _CFG, _INDEX, _TOKENIZER = cfg, index, None
    import_verifier()


def import_verifier() -> None:
    """Import the verifier (and sympy, ~2 s) once; called before forking so workers inherit it."""
    global check_record
    from distill.verify import check_record
    from distill.verify.checker import check  # noqa: F401 - the checker and sympy load here, before forking


def measure_chunk(items: list[tuple[int, bytes]]) -> list[tuple]:
    """Measure each raw line; a bad line gives ("bad", line_no, message, field) instead of a result."""
    out = []
    for line_no, raw in items:
        try:
            trace = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            out.append(("bad", line_no, f"malformed JSON ({exc})", None))
            continue
        problem = validate(trace)
        if problem:
            out.append(("bad", line_no, *problem))
            continue
        out.append(("ok", line_no, measure(trace)))
    return out


def validate(trace: Any) -> tuple[str, str | None] | None:
    """(message, field) when the record is not a usable trace, else None."""
    if not isinstance(trace, dict):
        return "expected a JSON object (a trace record)", None
    for name in TRACE_REQUIRED:
        if name not in trace:
            return "missing field (is this the generate stage's traces file?)", name
    if not isinstance(trace["id"], (str, int)) or isinstance(trace["id"], bool):
        return "id must be a string", "id"
    if not isinstance(trace["sample"], int) or isinstance(trace["sample"], bool):
        return "sample must be an integer", "sample"
    problem = record_problem(trace)  # what the verifier itself refuses (kind, content, options)
    if problem:
        return problem[0], problem[1]
    if trace.get("reasoning") is not None and not isinstance(trace["reasoning"], str):
        return "must be a string or null", "reasoning"
    if trace.get("usage") is not None and not isinstance(trace["usage"], dict):
        return "usage must be an object or null", "usage"
    cost = trace.get("cost_usd")
    if cost is not None and (not isinstance(cost, (int, float)) or isinstance(cost, bool)):
        return "cost_usd must be a number or null", "cost_usd"
    if not isinstance(trace["answer"], str):
        return "answer must be a string", "answer"
    return None


def measure(trace: dict) -> dict:
    """Everything the stage decides on for one trace (see module docstring)."""
    cfg = _CFG
    checks = cfg.checks
    reasoning = trace.get("reasoning") or ""
    content = trace.get("content") or ""
    full = f"{reasoning}\n{content}" if reasoning else content
    usage = trace.get("usage") if isinstance(trace.get("usage"), dict) else {}
    length = _length(full)
    result: dict[str, Any] = {
        "id": str(trace["id"]), "sample": trace["sample"], "source": _source(trace),
        "tokens": int(usage.get("completion_tokens") or 0) or length, "length": length,
        "has_content": bool(content.strip()), "flags": [],
    }
    result["verdict"] = check_record(trace).as_dict()  # the verdict sampler and eval give too
    error = trace.get("error")
    if error and checks.errors:
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        result["flags"].append(["error", str(message)[:200]])
        return result
    flags = result["flags"]
    words = full.lower().split()  # one split serves repetition, the digest and the sketch
    for reason, detail in _quality_flags(trace, full, words, length):
        flags.append([reason, detail])
    if not flags and (result["verdict"]["correct"] is not False or not checks.answer):
        # Only traces that may be kept pay for the step check and the dedup keys.
        if checks.bad_step:
            result["bad_steps"] = false_claims(full)
        if checks.sound:  # comparisons and the family's own steps (arithmetic is bad_step's)
            result["unsound_steps"] = false_steps(full, trace, arithmetic=False)
        if cfg.dedup.exact:
            result["digest"] = text_digest(words)
        if cfg.dedup.near:
            result["sig"] = sketch(words, cfg.dedup.shingle, cfg.dedup.sketch)
    return result


def _quality_flags(trace: dict, full: str, words: list[str], length: int):
    checks = _CFG.checks
    if checks.truncated and is_truncated(trace):
        yield "truncated", f"finish_reason={trace.get('finish_reason')}"
    missing = quality.is_reasoning_missing(trace, checks.reasoning, checks.min_reasoning_words)
    if missing:
        yield "missing_reasoning", missing
    if length < checks.min_tokens:
        yield "too_short", f"{length} tokens < {checks.min_tokens}"
    if checks.max_tokens is not None and length > checks.max_tokens:
        yield "too_long", f"{length} tokens > {checks.max_tokens}"
    if checks.repetition:
        share, top = quality.repetition(words, checks.repeat_ngram, checks.max_ngram_count)
        if share > checks.max_repeat_share or top > checks.max_ngram_count:
            yield "repetition", f"{share:.0%} repeated {checks.repeat_ngram}-grams, top one x{top}"
    if checks.max_other_script is not None:
        share = quality.other_script_share(full)
        if share > checks.max_other_script:
            yield "language_mix", f"{share:.1%} of letters in a non-Latin script"
    if _INDEX is not None and _INDEX.grams:
        hits = overlap(str(trace.get("question") or ""), _INDEX)
        if hits >= _CFG.decontam.min_overlap:
            yield "contaminated", f"{hits} question {_INDEX.n}-grams found in eval problems"
    if checks.hint_leak and trace.get("rationalized"):
        # A rationalized trace trains without its hint: one that reveals the hint teaches answers from nowhere.
        leak = hint_leak(trace.get("reasoning"), str(trace["answer"]), str(trace.get("question") or ""),
                         trace.get("hint") if isinstance(trace.get("hint"), str) else None, trace.get("content"))
        if leak:
            yield "hint_leak", leak


def _length(text: str) -> int:
    global _TOKENIZER
    name = _CFG.checks.tokenizer
    if not name:
        return quality.estimate_tokens(text)
    if _TOKENIZER is None:
        from transformers import AutoTokenizer

        _TOKENIZER = AutoTokenizer.from_pretrained(name)
    return len(_TOKENIZER(text, add_special_tokens=False)["input_ids"])


def _source(trace: dict) -> str:
    source = trace.get("source")
    if isinstance(source, str) and source:
        return source
    return f"{trace['kind']}"
