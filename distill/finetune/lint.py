"""The template and token lint run before training: catch silent data bugs, show one example.

Usage:
    report = lint(encoded, tokenizer, generation_config, max_length=4096, overlong="drop", n_records=120,
                  dropped=Counter())
    show_report(report)          # table + one decoded example, masked part marked, to stderr
    if report.errors: raise InputError(...)

Checks every rendered example: the reasoning survives the chat template and sits inside the
assistant turn; the loss mask is non-empty; the turn ends with a token generation stops on
(tokenizer EOS, generation config and template agree); how many examples exceed max_length
and what the policy did with them.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from distill.examples import Encoded
from distill.progress import show_table

# problem word -> (is it an error, what it means for the user)
PROBLEMS = {
    "reasoning_dropped": (True, "the chat template removed the reasoning from the assistant turn "
                                "(set chat_template=chatml or give a template that keeps it)"),
    "content_dropped": (True, "the answer text is not in the rendered assistant turn"),
    "prompt_mismatch": (True, "the template renders the prompt differently once the answer follows "
                              "(inference would see other tokens than training)"),
    "no_turn_end": (True, "the assistant turn ends without any end-of-turn token"),
    "turn_end_not_eos": (True, "the assistant turn ends with a token generation does not stop on "
                               "(tokenizer EOS / generation_config.eos_token_id disagree with the template)"),
    "empty_mask": (True, "nothing to learn: the assistant part is empty"),
    "truncated": (False, "cut at max_length: learns no EOS for these (overlong=truncate)"),
}


@dataclass
class LintReport:
    """What the lint found: counts, errors that stop training, warnings, one example to show."""

    rows: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    example: str = ""

    def text(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.rows]
        lines += [f"ERROR {e}" for e in self.errors] + [f"warning {w}" for w in self.warnings]
        return "\n".join(lines + ["", self.example]) + "\n"


def lint(encoded: Encoded, tokenizer: Any, generation_config: Any, max_length: int, overlong: str,
         n_records: int, dropped: Counter) -> LintReport:
    """Judge the rendered examples; see :data:`PROBLEMS` for what each finding means."""
    report = LintReport()
    found: Counter = Counter()
    first: dict[str, int] = {}
    for ex, line in zip(encoded.examples, encoded.lines):
        problems = list(ex.problems) + ([] if any(t != -100 for t in ex.labels) else ["empty_mask"])
        for word in problems:
            found[word] += 1
            first.setdefault(word, line)
    trained = sum(len(ex.completion_ids) for ex in encoded.examples)
    total = sum(len(ex.input_ids) for ex in encoded.examples)
    report.rows = [
        ("records", n_records),
        ("examples", len(encoded.examples)),
        ("dropped", ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())) or "0"),
        (f"over max_length={max_length}", f"{encoded.overlong} ({overlong}; longest {encoded.longest})"),
        ("tokens / trained tokens", f"{total} / {trained} ({trained / max(total, 1):.0%} with loss)"),
        ("eos", _eos_summary(tokenizer, generation_config)),
    ]
    for word, count in sorted(found.items()):
        is_error, meaning = PROBLEMS[word]
        msg = f"{word}: {count} of {len(encoded.examples)} examples (first at line {first[word]}): {meaning}"
        (report.errors if is_error else report.warnings).append(msg)
    if not encoded.examples:
        report.errors.append(f"no example left to train on (dropped: {dict(dropped)})")
    report.errors += _eos_agreement(encoded, tokenizer, generation_config)
    if encoded.examples:
        report.example = show_example(tokenizer, encoded.examples[0], encoded.lines[0])
    return report


def _eos_agreement(encoded: Encoded, tokenizer: Any, generation_config: Any) -> list[str]:
    """The token ending assistant turns must be the tokenizer EOS and in the generation config's EOS."""
    ends = Counter(ex.completion_ids[-1] for ex in encoded.examples if "truncated" not in ex.problems)
    gen = getattr(generation_config, "eos_token_id", None)
    gen_ids = set(gen if isinstance(gen, list) else [gen]) if gen is not None else None
    errors = []
    for end, count in ends.items():
        name = tokenizer.convert_ids_to_tokens(end)
        if end != tokenizer.eos_token_id:
            errors.append(f"eos_mismatch: {count} assistant turns end with {name!r} but the tokenizer EOS is "
                          f"{tokenizer.eos_token!r}; generation would not stop where training taught it to")
        elif gen_ids is not None and end not in gen_ids:
            errors.append(f"eos_mismatch: the turn-end token {name!r} (id {end}) is not in "
                          f"generation_config.eos_token_id={gen}; generation would run past the answer")
    return errors


def _eos_summary(tokenizer: Any, generation_config: Any) -> str:
    gen = getattr(generation_config, "eos_token_id", None)
    return f"tokenizer {tokenizer.eos_token!r} (id {tokenizer.eos_token_id}); generation_config {gen}"


def show_example(tokenizer: Any, ex: Any, line: int) -> str:
    """One example decoded, the no-loss part inside ⟦ ⟧, so a person can see what is learned."""
    masked = tokenizer.decode(ex.prompt_ids)
    learned = tokenizer.decode(ex.completion_ids)
    head = (f"--- example from line {line}: {len(ex.input_ids)} tokens, {len(ex.completion_ids)} with loss; "
            "⟦...⟧ = masked (no loss), the rest is trained ---")
    return f"{head}\n⟦{masked}⟧{learned}\n--- end of example ---"


def show_report(report: LintReport) -> None:
    """Print the lint table, its findings and the example to stderr."""
    rows = list(report.rows) + [("ERROR", e) for e in report.errors] + [("warning", w) for w in report.warnings]
    show_table("finetune lint", rows)
    print(report.example, file=sys.stderr)
