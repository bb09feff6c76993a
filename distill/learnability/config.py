"""Options of learnability scoring: which student, rendered how, and what selection keeps (no torch).

Usage:
    cfg = LearnabilityConfig(enabled=True, student="smollm2", top_share=0.8, long_share=0.2)   # filter's section
    cfg = load_config(RankTeachersConfig, None, ["student=smollm2", "traces=a.jsonl,b.jsonl"])
    distill filter traces=t.jsonl learnability.enabled=true learnability.student=smollm2 per_problem.policy=learnable

The rendering keys mirror finetune's (same names, same defaults) because the tokens scored must be
the tokens trained; `distill run` copies them from its finetune section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill.config import check_bounds, option
from distill.errors import ConfigError
from distill.render import DEFAULT_FORMAT

Score = Literal["rsr", "local_naturalness", "mean_surprisal"]
# Which way each score points: RSR and surprisal are better low, naturalness (a log-probability) high.
LOWER_IS_BETTER = {"rsr": True, "mean_surprisal": True, "local_naturalness": False}


@dataclass
class ScoringConfig:
    """How the student reads a trace: the student, finetune's rendering, and the scores' settings."""

    student: str | None = option(None, "the student the traces are scored for (alias, folder, .gguf, Hub id)")
    chat_template: str | None = option(None, "as finetune: override the student's template (chatml or a .jinja file)")
    system_prompt: str | None = option(None, "as finetune: system message put before every user turn")
    reasoning_format: str = option(DEFAULT_FORMAT, "as finetune: the assistant turn; {reasoning} and {content}")
    max_length: int = option(4096, "as finetune: longest example in tokens")
    overlong: Literal["drop", "truncate"] = option("drop", "as finetune: examples over max_length dropped or cut")
    rank_clip: int = option(100, "RSR: token ranks are clipped at this value (the reference code's r=100)")
    local_naturalness: bool = option(
        True, "also compute local naturalness (re-reads each later step after a short window: ~3-4x the RSR pass)")
    window: int = option(2, "local naturalness: each step is read after the prompt and this many previous steps")
    batch_tokens: int = option(4096, "tokens per forward pass (packed rows; more: faster, more memory)")
    bf16: Literal["auto", "true", "false"] = option("auto", "bfloat16 autocast; auto: where the hardware has it")

    def check_scoring(self) -> None:
        """Ranges of the scoring keys (the loader prefixes the section)."""
        check_bounds(self, {"max_length": ">= 8", "rank_clip": ">= 1", "window": ">= 0", "batch_tokens": ">= 64"})
        if getattr(self, "by", None) == "local_naturalness" and not self.local_naturalness:
            raise ConfigError("by=local_naturalness needs local_naturalness=true")


@dataclass
class LearnabilityConfig(ScoringConfig):
    """Score every trace that passed the checks by the student that will train on it, then select."""

    enabled: bool = option(False, "score surviving traces with the student (loads torch; in distill run, student"
                                  " and rendering default to finetune's); needed by policy=learnable and the keys below")
    by: Score = option("rsr", "the score selection ranks by: rsr (low is better) | local_naturalness (high) |"
                              " mean_surprisal (low)")
    top_share: float = option(1.0, "keep this share of the surviving traces, the most learnable first (1: all)")
    long_share: float | None = option(
        None, "long:short mix: the share of long traces kept, e.g. 0.2 for long:short = 1:4 (LS-Mixture, Li et al.);"
              " null: off")
    long_tokens: int | None = option(
        None, "long_share: a trace with more trained tokens than this is long; null: the median of the survivors")

    def __post_init__(self) -> None:
        self.check_scoring()
        check_bounds(self, {"top_share": "(0, 1]", "long_share": "[0, 1]", "long_tokens": ">= 1"})
        if not self.enabled and (self.top_share < 1 or self.long_share is not None):
            raise ConfigError("top_share and long_share need enabled=true (a student to score for)")


@dataclass
class RankTeachersConfig(ScoringConfig):
    """Rank several teachers' traces by how learnable they are for one student, before any training."""

    traces: list[str] = option([], "traces files to compare (comma-separated or a list), one per teacher")
    student: str | None = option("smollm2", "the student the traces are scored for")
    by: Score = option("rsr", "the score that picks: rsr (low is better) | local_naturalness (high) | mean_surprisal (low)")
    problems: int | None = option(None, "score at most this many problems, drawn from those every file has")
    seed: int = option(0, "seed for drawing the shared problems")
    format: Literal["table", "json"] = option("table", "what is printed: a table, or the ranking as JSON")
    out: str | None = option(None, "also write the ranking as JSON here")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        self.traces = [p.strip() for item in self.traces for p in str(item).split(",") if p.strip()]
        self.check_scoring()
        check_bounds(self, {"problems": ">= 1"})
        if len(self.traces) < 1:
            raise ConfigError("traces= is required: the traces files to rank (a.jsonl,b.jsonl)")
        if not self.student:
            raise ConfigError("student= is required: the student the traces are scored for")

