"""Options of `distill eval`: the problems, the model scored (student, adapter or endpoint), sampling, output.

Usage:
    cfg = load_config(EvalConfig, None, ["problems=rg:chain_sum", "student=smollm2", "adapter=out/adapter"])
    cfg = load_config(EvalConfig, None, ["benchmark=aime24", "student=smollm2"])   # the field's protocol

Sampling keys left unset (null) take the benchmark's protocol (distill.benchmarks) when
``benchmark=`` is given, else eval's quick defaults (one greedy answer, 1,024 tokens); after
construction they always hold a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from distill.benchmarks import GENERIC_SAMPLING, parse_dates, protocol_for
from distill.config import check_bounds, option, section
from distill.errors import ConfigError
from distill.sources import SourceConfig
from distill.teacher.config import TeacherConfig


@dataclass
class EvalApiConfig(TeacherConfig):
    """The OpenAI-compatible endpoint scored by backend=api (a teacher, or a student served by vLLM)."""

    model: str = option("student", "model name as the endpoint knows it")
    base_url: str | list[str] = option("http://127.0.0.1:8000/v1", "endpoint URL (or a list of replicas)")
    api_key_env: str | None = option(None, "NAME of the environment variable holding the API key (never the key)")
    temperature: float | None = option(None, "sampling temperature (null: the top-level temperature)")
    top_p: float | None = option(None, "nucleus sampling (null: the top-level top_p)")
    max_tokens: int = option(0, "output budget per request (0: the top-level max_new_tokens)")
    concurrency: int = option(16, "requests in flight at most")


@dataclass
class EvalConfig(SourceConfig):
    """Score a model on problems with the same verifier the filter uses; before/after when asked."""

    split: str = option("test", "Hub dataset split")
    benchmark: str | None = option(
        None, "a standard benchmark, loaded from the Hub and scored by the field's protocol: aime24 | aime25 | "
              "math500 | gpqa-diamond | livecodebench | gsm8k (instead of problems=)")
    benchmark_dates: str | None = option(
        None, "livecodebench: keep problems dated FROM..TO (YYYY-MM-DD..YYYY-MM-DD, TO excluded; null: the "
              "protocol's 2024-08-01..2025-02-01); pick a window after the model's training cutoff")
    student: str | None = option(
        None, "student: alias (smollm2), Hub name, local folder or .gguf file (null with adapter=: its own base)")
    adapter: str | None = option(None, "LoRA adapter folder (from distill finetune) applied to the student")
    backend: Literal["local", "api", "vllm"] = option(
        "local", "local (transformers), api (OpenAI-compatible endpoint, see api.*) or vllm (if installed)")
    api: EvalApiConfig = section(EvalApiConfig, "the endpoint scored by backend=api")
    out: str = option("eval", "output folder (report.json, outputs.jsonl, config.yaml); re-running resumes it")
    compare: str | None = option(None, "a previous eval folder to compare against (before/after table)")
    compare_base: bool = option(False, "with adapter=: also score the student without it (in out/base) and compare")
    samples: int | None = option(
        None, "answers drawn per problem: avg@n (pass@1) is their mean, pass@k reported (null: the benchmark's, else 1)")
    max_new_tokens: int | None = option(
        None, "generation budget per answer, reasoning included (null: the benchmark's, else 1024)")
    temperature: float | None = option(
        None, "0 = greedy; above 0 samples with this temperature (null: the benchmark's, else 0)")
    top_p: float | None = option(None, "nucleus sampling when temperature > 0 (null: the benchmark's, else 1.0)")
    sampling_seed: int = option(0, "seed for sampled generation")
    prompt_template: str | None = option(
        None, "user message; {question} is the problem (null: the benchmark's; else as the adapter was trained, "
              "else generate's default)")
    system_prompt: str | None = option(None, "system message (null: as the adapter was trained, else none)")
    batch_size: int = option(16, "local backend: prompts generated together (left padding, KV cache)")
    dtype: str = option("auto", "local backend: auto (bf16 where the hardware has it) | float32 | bfloat16 | float16")
    chance_problems: str | None = option(
        None, "training problems: the chance rate per family is always giving their most common answer"
              " (null: the offline default's training set, for the offline families)")
    confidence: float = option(0.95, "confidence level of the intervals in comparisons")
    bootstrap: int = option(2000, "paired bootstrap resamples for the difference's interval")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        self._fill_sampling()
        if self.samples < 1:
            raise ConfigError(f"samples must be >= 1, got {self.samples}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.compare_base and not self.adapter:
            raise ConfigError("compare_base=true needs adapter= (it scores the student with and without it)")
        if self.prompt_template is not None and "{question}" not in self.prompt_template:
            raise ConfigError("prompt_template must contain {question}")
        self.validate_source()
        check_bounds(self, {"temperature": ">= 0", "top_p": "(0, 1]", "bootstrap": ">= 1"})
        if self.backend == "api":
            try:
                self.api.validate()
            except ConfigError as exc:
                raise ConfigError(f"api.{exc}") from None
        if self.compare and self.out and Path(self.compare).resolve() == Path(self.out).resolve():
            raise ConfigError("compare= names the folder this eval writes (out=); compare against another eval")

    def _fill_sampling(self) -> None:
        """Unset sampling keys from the benchmark's protocol, else eval's quick defaults."""
        if self.benchmark is not None:
            if self.problems:
                raise ConfigError("give benchmark= or problems=, not both (a benchmark names its own problems)")
            protocol = protocol_for(self.benchmark)
            if self.benchmark_dates is not None:
                if protocol.dates is None:
                    raise ConfigError(f"benchmark_dates= applies to a dated benchmark (livecodebench), not {protocol.name}")
                parse_dates(self.benchmark_dates)
            defaults = protocol.sampling()
        else:
            defaults = GENERIC_SAMPLING
        for key, value in defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
