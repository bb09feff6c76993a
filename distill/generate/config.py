"""Options of `distill generate`: where problems come from, the teacher, budget and output.

Usage:
    cfg = load_config(GenerateConfig, "generate/deepseek-r1.yaml", ["samples=4"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill.config import check_bounds, option
from distill.errors import ConfigError
from distill.artifacts import KINDS
from distill.teacher.config import TeacherConfig

DEFAULT_PROMPT = "{question}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


@dataclass
class SourceConfig:
    """Where problems come from and how their fields are named (shared with `distill eval`)."""

    problems: str | None = option(
        None, "JSONL/JSON/CSV/Parquet file, save_to_disk folder, Hub dataset name, or rg:<reasoning-gym task>")
    hf_config: str | None = option(None, "Hub dataset config name (e.g. main for openai/gsm8k)")
    split: str = option("train", "Hub dataset split")
    limit: int | None = option(None, "use at most this many problems (reasoning-gym: how many to make)")
    seed: int = option(0, "seed for reasoning-gym problems")
    question_field: str = option("question", "source field holding the question")
    answer_field: str = option("answer", "source field holding the reference answer")
    id_field: str = option("id", "source field holding a stable id (derived from the question if absent)")
    kind: str = option("math", "answer kind when the source has none: math | gsm8k | choice | exact | code")

    def validate_source(self) -> None:
        check_bounds(self, {"limit": ">= 1"})
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


@dataclass
class GenerateConfig(SourceConfig, TeacherConfig):
    """Ask a teacher to solve each problem step by step; one trace record per (problem id, sample)."""

    out: str = option("traces.jsonl", "output JSONL (append-only; re-running resumes it)")
    prompt_template: str = option(DEFAULT_PROMPT, "user message; {question} is replaced by the problem")
    samples: int = option(1, "traces drawn per problem, keyed by (id, sample index)")
    on_truncated: Literal["keep", "drop", "retry"] = option(
        "keep", "finish_reason=length: keep flagged, drop (record as error), or retry with more tokens")
    truncation_factor: float = option(2.0, "on_truncated=retry: multiply max_tokens by this each time")
    max_tokens_ceiling: int = option(131072, "on_truncated=retry: never ask for more than this")
    max_cost_usd: float | None = option(
        None, "stop sending new requests before the output file's total spend (all runs) would pass this")
    dry_run: bool = option(False, "print the request count and estimated cost, send nothing")
    est_completion_tokens: int = option(4000, "completion tokens per request assumed by the estimate")
    fsync: bool = option(False, "fsync after every record (survives power loss, not only crashes)")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every option's range, the template and the endpoint: all before a request is sent."""
        TeacherConfig.validate(self)
        self.validate_source()
        check_bounds(self, {"samples": ">= 1", "max_tokens": ">= 1", "truncation_factor": "> 1",
                            "max_tokens_ceiling": ">= 1", "max_cost_usd": ">= 0", "est_completion_tokens": ">= 1"})
        try:
            self.prompt_template.format(question="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"prompt_template: only {{question}} may be used, literal braces doubled ({exc!r})") \
                from None
