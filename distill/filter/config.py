"""Options of `distill filter`: which checks drop a trace, dedup, decontamination, per-problem cap, judge, learnability.

Usage:
    cfg = load_config(FilterConfig, "filter.yaml", ["traces=traces.jsonl", "per_problem.max=4"])
    distill filter traces=traces.jsonl out=kept.jsonl checks.max_tokens=16000 judge.enabled=true
    distill filter traces=traces.jsonl out=kept.jsonl engine=ray ray_address=ray://head:10001
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

from distill.config import check_bounds, option, section
from distill.errors import ConfigError
from distill.learnability.config import LearnabilityConfig
from distill.teacher.config import TeacherConfig


@dataclass
class ChecksConfig:
    """Per-trace quality checks; each failing check is a named reason in rejected.jsonl and stats."""

    errors: bool = option(True, "error: drop records the teacher failed on (an error field is set)")
    truncated: bool = option(True, "truncated: drop traces cut by the token budget (finish_reason=length);"
                                   " off, the answer check still counts a cut answer wrong")
    answer: bool = option(True, "wrong_answer etc.: keep only traces whose final answer is verified correct")
    keep_undecided: bool = option(
        False, "keep traces whose answer nobody could decide (verifier correct=null, no judge verdict)")
    reasoning: Literal["auto", "require", "ignore"] = option(
        "auto", "missing_reasoning: auto = drop hidden reasoning (billed, no text) and answers without"
                " worked steps; require = the reasoning field must be non-empty; ignore")
    min_reasoning_words: int = option(20, "auto/require: fewer words of reasoning than this counts as missing")
    min_tokens: int = option(0, "too_short: drop traces (reasoning + answer) shorter than this many tokens")
    max_tokens: int | None = option(None, "too_long: drop traces longer than this many tokens (null: no bound)")
    tokenizer: str | None = option(
        None, "local tokenizer folder (e.g. the student's) for length bounds; null: a fast estimate")
    repetition: bool = option(True, "repetition: drop looping or rambling traces (repeated word n-grams)")
    repeat_ngram: int = option(10, "repetition: n-gram length in words")
    max_repeat_share: float = option(0.5, "repetition: drop when more than this share of n-grams are repeats")
    max_ngram_count: int = option(12, "repetition: drop when one n-gram occurs more often than this (a loop)")
    max_other_script: float | None = option(
        0.02, "language_mix: drop when more than this share of letters are in a non-Latin script"
              " (CJK, Cyrillic, Arabic...) in an English trace; null: off")
    hint_leak: bool = option(
        True, "hint_leak: drop rationalized traces (asked with the answer as a hint) whose text shows it:"
              " mentions the hint or a given answer, or states the answer before any work")
    bad_step: bool = option(True, "bad_step: drop traces stating false arithmetic (17 * 23 = 381), exact check")
    max_bad_steps: int = option(0, "bad_step: tolerate this many false claims per trace")
    sound: bool = option(True, "unsound_step: drop traces with a false comparison (7 > 9) or a step their"
                               " problem family's check refutes (a misspelt word, a wrong padding)")


@dataclass
class DedupConfig:
    """Duplicates among one problem's traces (the lowest sample index survives)."""

    exact: bool = option(True, "duplicate: drop a trace whose normalised text equals an earlier one")
    near: bool = option(True, "duplicate: drop a trace too similar to an earlier one (MinHash Jaccard)")
    threshold: float = option(0.85, "near: word-shingle Jaccard similarity at or above which it is a duplicate")
    shingle: int = option(5, "near: shingle length in words")
    sketch: int = option(64, "near: bottom-k MinHash sketch size (larger: more exact, more memory)")


@dataclass
class DecontamConfig:
    """Drop traces whose question overlaps an evaluation problem (word n-grams)."""

    problems: list[str] = option(
        [], "evaluation problems: JSONL files or any distill source (rg:task, Hub name); empty: off")
    ngram: int = option(8, "n-gram length in words (questions shorter than this must match whole)")
    min_overlap: int = option(1, "contaminated when at least this many question n-grams occur in an eval problem")
    question_field: str = option("question", "field holding the question in plain JSONL eval files")


@dataclass
class PerProblemConfig:
    """How many traces of one problem survive, and which."""

    max: int | None = option(None, "max_per_problem: keep at most this many traces per problem (null: all)")
    policy: Literal["all", "first", "shortest", "random", "learnable"] = option(
        "all", "which to keep when over max: all | first (lowest sample) | shortest (tokens) | random |"
               " learnable (best learnability.by score for learnability.student; needs learnability.enabled)")
    seed: int = option(0, "seed for policy=random (deterministic per problem)")


@dataclass
class JudgeConfig(TeacherConfig):
    """An LLM judge for answers the rule verifier cannot decide (same keys as the teacher)."""

    enabled: bool = option(False, "ask the judge about traces whose verifier verdict is correct=null")
    audit_share: float = option(
        0.0, "also judge this share of rule-decided traces (only to measure agreement; rule verdict kept)")
    audit_seed: int = option(0, "seed for choosing audited traces")
    temperature: float | None = option(0.0, "judge sampling temperature")
    max_tokens: int = option(4096, "output budget per judge request")
    concurrency: int = option(16, "judge requests in flight at most")
    batch: int = option(64, "judge requests per batch (results are cached after each batch)")


@dataclass
class FilterConfig:
    """Keep traces whose final answer is verified correct and whose reasoning passes the checks."""

    traces: str = option("traces.jsonl", "input traces (the generate stage's output)")
    out: str = option("kept.jsonl", "kept traces; rejected.jsonl, stats.json and the plot go beside it")
    rejected: str | None = option(None, "rejected traces with their reason (default: rejected.jsonl beside out)")
    stats: str | None = option(None, "stats JSON (default: stats.json beside out)")
    engine: Literal["local", "ray"] = option(
        "local", "where the per-trace checks run: local (processes on this machine) | ray (actors on a Ray"
                 " cluster, pip install 'distill[ray]'); same verdicts and outputs either way")
    ray_address: str | None = option(
        None, "engine=ray: a running cluster (auto | ray://head:10001 | host:6379); null: RAY_ADDRESS if set,"
              " else start Ray on this machine for the run")
    workers: int = option(0, "processes (engine=ray: actors) for the per-trace checks (0: one per CPU core"
                             " of this machine, or of the Ray cluster)")
    chunksize: int = option(200, "traces per task sent to a worker")
    cache: bool = option(True, "remember per-trace results so a re-run only checks new traces")
    plot: bool = option(True, "write the funnel plot (filter_funnel.png) beside stats.json")
    progress: bool = option(True, "show a progress bar and the summary tables")
    checks: ChecksConfig = section(ChecksConfig, "per-trace quality checks")
    dedup: DedupConfig = section(DedupConfig, "exact and near duplicates among a problem's traces")
    decontam: DecontamConfig = section(DecontamConfig, "decontamination against evaluation problems")
    per_problem: PerProblemConfig = section(PerProblemConfig, "at most K traces per problem")
    judge: JudgeConfig = section(JudgeConfig, "optional LLM judge for undecidable answers")
    learnability: LearnabilityConfig = section(
        LearnabilityConfig, "score surviving traces by the student (RSR, local naturalness) and select by it")

    def __post_init__(self) -> None:
        if self.workers < 0 or self.chunksize < 1:
            raise ConfigError("workers must be >= 0 and chunksize >= 1")
        self._check_engine()
        if self.per_problem.policy != "all" and not self.per_problem.max:
            raise ConfigError(f"per_problem.policy={self.per_problem.policy} needs per_problem.max")
        if self.per_problem.policy == "learnable" and not self.learnability.enabled:
            raise ConfigError("per_problem.policy=learnable needs learnability.enabled=true (and learnability.student)")
        if not 0.0 <= self.judge.audit_share <= 1.0:
            raise ConfigError("judge.audit_share must be between 0 and 1")
        if not 0.0 < self.dedup.threshold <= 1.0:
            raise ConfigError("dedup.threshold must be in (0, 1]")
        if self.checks.repeat_ngram < 2 or self.dedup.shingle < 1 or self.decontam.ngram < 1:
            raise ConfigError("n-gram lengths must be positive (checks.repeat_ngram >= 2)")
        check_bounds(self, {
            "checks.min_reasoning_words": ">= 0", "checks.min_tokens": ">= 0", "checks.max_tokens": ">= 1",
            "checks.max_repeat_share": "[0, 1]", "checks.max_ngram_count": ">= 1", "checks.max_other_script": "[0, 1]",
            "checks.max_bad_steps": ">= 0", "dedup.sketch": ">= 1", "decontam.min_overlap": ">= 1",
            "per_problem.max": ">= 1", "judge.batch": ">= 1"})
        if self.judge.enabled:
            try:
                self.judge.validate()
            except ConfigError as exc:
                raise ConfigError(f"judge.{exc}") from None

    def _check_engine(self) -> None:
        # Checked when the config loads, so `distill run` stops before generate when Ray is missing.
        address = self.ray_address
        if address is not None and self.engine != "ray":
            raise ConfigError(f"ray_address={address} is set but engine={self.engine}: add engine=ray")
        if address is not None and address not in ("auto", "local") and ":" not in address:
            raise ConfigError(f"ray_address={address}: expected auto, ray://HOST:10001 or HOST:6379")
        if self.engine == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError("engine=ray needs Ray, which is not installed: pip install 'distill[ray]'")
