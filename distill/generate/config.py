"""Options of `distill generate`: where problems come from, the teacher, budget and output.

Usage:
    cfg = load_config(GenerateConfig, "generate/deepseek-r1.yaml", ["samples=4"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill.config import check_bounds, option, section
from distill.errors import ConfigError
from distill.render import DEFAULT_PROMPT
from distill.sources import SourceConfig
from distill.teacher.config import TeacherConfig

DEFAULT_HINT = "{question}\n\nHint: the correct answer is {answer}."


@dataclass
class BatchConfig:
    """mode=batch: the same requests as files through a provider's batch API (half price) or `vllm run-batch`."""

    backend: Literal["api", "local"] = option(
        "api", "api: the endpoint's /v1/files + /v1/batches; local: run `command` on each request file")
    command: list[str] = option(
        ["vllm", "run-batch", "-i", "{input}", "-o", "{output}", "--model", "{model}"],
        "backend=local: the command run per request file; {input}, {output} and {model} are filled in")
    max_requests: int = option(50000, "requests per batch file at most (the provider's limit)")
    max_bytes: int = option(200_000_000, "bytes per batch file at most (the provider's limit)")
    completion_window: str = option("24h", "how long the provider may take (only 24h is offered today)")
    discount: float = option(0.5, "price factor of batch results (0.5: half the online price)")
    poll_interval: float = option(10.0, "seconds between the first status checks (grows while nothing changes)")
    poll_max: float = option(300.0, "longest wait between status checks, seconds")

    def __post_init__(self) -> None:
        check_bounds(self, {"max_requests": ">= 1", "max_bytes": ">= 1024", "discount": "[0, 1]",
                            "poll_interval": "> 0", "poll_max": "> 0"})
        if self.backend == "local" and not all(any(f in a for a in self.command) for f in ("{input}", "{output}")):
            raise ConfigError("batch.command: must contain {input} and {output} (the request and result files)")


@dataclass
class GenerateConfig(SourceConfig, TeacherConfig):
    """Ask a teacher to solve each problem step by step; one trace record per (problem id, sample)."""

    out: str = option("traces.jsonl", "output JSONL (append-only; re-running resumes it)")
    prompt_template: str = option(DEFAULT_PROMPT, "user message; {question} is replaced by the problem")
    samples: int = option(1, "traces drawn per problem, keyed by (id, sample index); with until_correct: the"
                             " first wave drawn for every problem before any is checked")
    until_correct: int | None = option(
        None, "keep drawing for a problem until it has this many distinct verified-correct traces (near-duplicates"
              " count once) or max_samples were drawn; the verifier runs as traces arrive. null: draw `samples`")
    max_samples: int | None = option(
        None, "until_correct: the ceiling of samples per problem (samples is the first wave); dry_run and the"
              " cost estimate assume every problem needs all of them")
    rationalize: bool = option(
        False, "ask problems with no correct sample after sampling again with the answer as a hint (STaR's"
               " rationalization); the trace keeps the unhinted messages, so it trains without the hint")
    hint_template: str = option(DEFAULT_HINT, "rationalize: the hinted user message; {question} and {answer}"
                                              " are replaced (prompt_template is not applied)")
    rationalize_samples: int = option(1, "rationalize: hinted requests per unsolved problem")
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
    mode: Literal["online", "batch"] = option(
        "online", "online: one request at a time; batch: request files through a batch API (see batch.*)")
    batch: BatchConfig = section(BatchConfig, "mode=batch: the batch API's limits, polling and price")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every option's range, the template and the endpoint: all before a request is sent."""
        TeacherConfig.validate(self)
        self.validate_source()
        check_bounds(self, {"samples": ">= 1", "until_correct": ">= 1", "max_samples": ">= 1",
                            "rationalize_samples": ">= 1", "max_tokens": ">= 1", "truncation_factor": "> 1",
                            "max_tokens_ceiling": ">= 1", "max_cost_usd": ">= 0", "est_completion_tokens": ">= 1"})
        try:
            self.prompt_template.format(question="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"prompt_template: only {{question}} may be used, literal braces doubled ({exc!r})") \
                from None
        self._validate_until_correct()

    def _validate_until_correct(self) -> None:
        if self.until_correct is not None:
            if self.max_samples is None:
                raise ConfigError("until_correct: set max_samples too (the ceiling of samples per problem)")
            if self.until_correct > self.max_samples:
                raise ConfigError(f"until_correct={self.until_correct} is more than max_samples={self.max_samples}:"
                                  " a problem could never reach it")
            if self.samples > self.max_samples:
                raise ConfigError(f"samples={self.samples} (the first wave) is more than max_samples="
                                  f"{self.max_samples} (the ceiling)")
        elif self.max_samples is not None:
            raise ConfigError("max_samples needs until_correct (without it every problem gets `samples`)")
        if "{answer}" not in self.hint_template or "{question}" not in self.hint_template:
            raise ConfigError("hint_template: must contain both {question} and {answer}")
        try:
            self.hint_template.format(question="x", answer="y")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"hint_template: only {{question}} and {{answer}} may be used, literal braces doubled"
                              f" ({exc!r})") from None

    @property
    def is_adaptive(self) -> bool:
        """Sampling decided per problem as verdicts arrive (until_correct or rationalize), not a fixed grid."""
        return self.until_correct is not None or self.rationalize
