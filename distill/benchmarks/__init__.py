"""The standard reasoning benchmarks and the protocol the field scores each by, in one table.

Usage:
    from distill.benchmarks import PROTOCOLS, protocol_for
    p = protocol_for("aime24")        # ConfigError naming the known ones otherwise
    p.samples, p.temperature, p.top_p, p.max_new_tokens, p.prompt_template, p.dataset
    p.sampling()                      # {"samples": 64, "temperature": 0.6, ...}: what EvalConfig fills in

`distill eval benchmark=NAME` reads its problems from the Hub by the set's usual id
(distill.benchmarks.hub) and, for every sampling key left unset, takes this table's value; a key
set to another value is an override and the report lists it. The README's benchmark table is
checked against this one by a test, so the two cannot drift.

Where the numbers come from: DeepSeek-R1 (arXiv 2501.12948, section 3.1 and its model card):
temperature 0.6, top_p 0.95, 32,768 tokens, no system prompt, math prompts ending "Please reason
step by step, and put your final answer within \\boxed{}.", pass@1 averaged over k samples
(k = 4 to 64 by set size). GPQA's prompt is simple-evals' (the one open-r1 uses); LiveCodeBench's
is the LiveCodeBench runner's, on lighteval's parquet copy (config v4_v5) cut to DeepSeek-R1's
window 2024-08-01 to 2025-01-31 with 16 samples (LiveCodeBench PR #71, which reproduces R1-Distill's
figures that way; lighteval's ``codegen_pass@1:16``). Answer parsing is distill's verifier
(distill.verify.check_record), the one the filter uses: its agreement with math-verify on
published outputs is what bench/reproduce_benchmark.py measures.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from distill.errors import ConfigError

__all__ = ["Protocol", "PROTOCOLS", "protocol_for", "parse_dates", "GENERIC_SAMPLING", "SAMPLING_KEYS"]

MATH_PROMPT = "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
GPQA_PROMPT = ("Answer the following multiple choice question. The last line of your response should be of the "
               "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by "
               "step before answering.\n\n{question}")
LCB_PROMPT = ("You will be given a question (problem specification) and will generate a correct Python program "
              "that matches the specification and passes all tests.\n\n{question}")
SAMPLING_KEYS = ("samples", "temperature", "top_p", "max_new_tokens", "prompt_template")
# What `distill eval` uses without a benchmark (its own quick defaults: one greedy answer, short budget).
GENERIC_SAMPLING = {"samples": 1, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 1024}


@dataclass(frozen=True)
class Protocol:
    """One benchmark: where its problems live and how the field samples and scores them."""

    name: str
    dataset: str  # Hub id
    config: str | None
    split: str
    task_id: str  # the Hub's eval-results task id
    kind: str  # distill's answer kind (distill.artifacts.KINDS)
    samples: int  # n: answers per problem; avg@n is their mean
    max_new_tokens: int
    prompt_template: str
    answer_format: str
    licence: str
    temperature: float = 0.6
    top_p: float = 0.95
    gated: bool = False
    questions_public: bool = True  # False: the set's terms ask that its questions not be published in plain text
    dates: tuple[str, str] | None = None  # keep problems dated in [from, to) (LiveCodeBench)

    def sampling(self) -> dict:
        """The keys EvalConfig takes from the protocol when they are left unset."""
        return {"samples": self.samples, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "prompt_template": self.prompt_template}

    def access_hint(self) -> str:
        """One line: how to get a gated set."""
        return (f"{self.dataset} is gated: accept its terms at https://huggingface.co/datasets/{self.dataset} "
                "while logged in, then set HF_TOKEN (or run `hf auth login`)")


_BUDGET = 32768
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("aime24", "HuggingFaceH4/aime_2024", None, "train", "aime_2024", "math", 64, _BUDGET, MATH_PROMPT,
             "\\boxed{} integer 0-999", "not stated on the card (problems by the MAA)"),
    Protocol("aime25", "yentinglin/aime_2025", None, "train", "aime_2025", "math", 64, _BUDGET, MATH_PROMPT,
             "\\boxed{} integer 0-999",
             "none on the card at revision 1bdb867 (MIT not confirmed); problems by the MAA"),
    Protocol("math500", "HuggingFaceH4/MATH-500", None, "test", "math_500", "math", 4, _BUDGET, MATH_PROMPT,
             "\\boxed{} expression, equal up to equivalence",
             "none on the card; MIT by its source, openai/prm800k's MATH split (MATH is MIT)"),
    Protocol("gpqa-diamond", "Idavidrein/gpqa", "gpqa_diamond", "train", "gpqa_diamond", "choice", 8, _BUDGET,
             GPQA_PROMPT, "'Answer: LETTER', four options shuffled per question (seeded by its id)",
             "CC-BY-4.0 (gated; do not publish the questions in plain text)", gated=True, questions_public=False),
    Protocol("livecodebench", "lighteval/code_generation_lite", "v4_v5", "test", "livecodebench_v4_v5", "code", 16,
             _BUDGET, LCB_PROMPT, "a fenced python block, run on the public and private tests in the sandbox",
             "'cc' on the card, no CC licence named (LiveCodeBench's code is MIT); "
             "problems from LeetCode, AtCoder, Codeforces",
             dates=("2024-08-01", "2025-02-01")),
    Protocol("gsm8k", "openai/gsm8k", "main", "test", "gsm8k", "gsm8k", 1, _BUDGET, MATH_PROMPT,
             "\\boxed{} number (the gold is the text after ####)", "MIT"),
)}


def protocol_for(name: str) -> Protocol:
    """The protocol of ``name``; ConfigError with a suggestion for an unknown one."""
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    close = difflib.get_close_matches(name, list(PROTOCOLS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown benchmark {name!r}{hint}; known: {', '.join(PROTOCOLS)}")


def parse_dates(text: str) -> tuple[str, str]:
    """``"2024-08-01..2025-02-01"`` -> ``("2024-08-01", "2025-02-01")`` (from included, to excluded)."""
    match = re.fullmatch(r"\s*(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})\s*", str(text))
    if not match or match.group(1) >= match.group(2):
        raise ConfigError(f"benchmark_dates must be FROM..TO as YYYY-MM-DD..YYYY-MM-DD with FROM before TO, got {text!r}")
    return match.group(1), match.group(2)
