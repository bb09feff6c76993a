"""Options of `distill run`: one recipe for the whole pipeline, a section per stage plus run-level options.

Usage:
    cfg = load_pipeline(None, ["finetune.lora.r=32"])          # the embedded offline default
    cfg = load_pipeline("recipes/gsm8k-deepseek-qwen2.5-1.5b.yaml", ["name=try2"])
    distill run [PIPELINE.yaml] [key=value ...]                 # same thing from the shell

Each stage section takes the stage's own keys (``generate.samples=4``, ``finetune.lora.r=32``) or
a path to a stage recipe (``generate: ../generate/deepseek-r1.yaml``). The paths between stages
(traces, kept, adapter, eval folders) are set by the pipeline inside the run folder, so a recipe
names only where the problems come from and where results go in the end. No torch here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from distill.config import check_bounds, load_config, option, section
from distill.errors import ConfigError
from distill.evaluate.config import EvalConfig
from distill.filter.config import FilterConfig
from distill.finetune.config import FinetuneConfig, OnPolicyConfig
from distill.generate.config import GenerateConfig
from distill.publish.config import PublishConfig
from distill.offline.families import TraceStyle

STAGES = ("generate", "filter", "finetune", "eval", "publish")
CONTINUED = ("sft_continued", "onpolicy_self", "onpolicy_model")  # from the run's SFT adapter, on the onpolicy budget
PICKS = ("pick_shortest", "pick_random", "pick_first", "pick_learnable")  # the run's filter with another per_problem.policy
ARMS = ("answers_only", "unfiltered", "filtered", *CONTINUED, *PICKS)  # the ablation's arms (distill.pipeline.ablation)
DEFAULT_RECIPE = "offline-default.yaml"


@dataclass
class PublishSection(PublishConfig):
    """The publish stage inside a run. The pipeline sets adapter= and dataset= itself, so publish's own
    checks run when the wiring builds the stage's PublishConfig (distill.pipeline.wiring), not here."""

    def __post_init__(self) -> None:
        pass


@dataclass
class OfflineTeacherConfig:
    """The built-in offline teacher started on 127.0.0.1 when ``teacher=offline``."""

    model: str = option("distill-offline-teacher", "model name the offline teacher reports")
    dialect: str = option("deepseek", "wire format of the reasoning: deepseek | vllm | think | openrouter | hidden")
    mistake_rate: float = option(0.15, "share of traces with a deliberate mistake, so the filter has work")
    style: TraceStyle = option(
        "plain", "how traces are written: plain (one letter a line) | positions (numbered letters, digits"
                 " read beside their numbers) | compact (numbered letters, decimals padded, then compared"
                 " answer first) | mixed (each response one of those, some wordy: samples differ); see"
                 " distill.offline.families.STYLES")
    latency: float = option(0.0, "seconds added to every response (to watch progress or test interrupts)")
    seed: int = option(0, "seed for the mistakes, so runs repeat")

    def __post_init__(self) -> None:
        check_bounds(self, {"mistake_rate": "[0, 1]", "latency": ">= 0"})


@dataclass
class OnPolicyStageConfig(OnPolicyConfig):
    """On-policy distillation after SFT: a second finetune step, method=on_policy, started from the SFT adapter.

    Its teacher and loss are the keys of ``distill finetune``'s ``onpolicy.*`` (teacher: self | endpoint |
    model); every other training setting is the finetune section's (student, LoRA, dev problems and
    keep-best, save_steps), except the few below. eval-after (and publish) then use its adapter.
    """

    enabled: bool = option(False, "plan finetune-onpolicy after finetune; eval-after scores its adapter")
    max_steps: int = option(20, "on-policy optimizer steps")
    learning_rate: float = option(1e-4, "peak AdamW learning rate of the on-policy steps (LoRA)")
    batch_size: int | None = option(None, "problems answered per micro-batch (null: finetune.batch_size)")
    warmup_ratio: float = option(0.0, "fraction of the on-policy steps spent warming up (the start is trained)")
    max_train_seconds: float | None = option(
        None, "also stop after this much training (the continued ablation arms: equal CPU time for each)")
    train_clock: Literal["wall", "cpu"] = option(
        "wall", "what max_train_seconds counts: wall seconds, or this process's CPU seconds over its torch threads"
                " (cpu: arms compared at equal CPU time stay equal when other jobs share the machine)")

    def __post_init__(self) -> None:
        # (the inherited onpolicy.* keys are checked by FinetuneConfig when the step is planned)
        check_bounds(self, {"max_steps": ">= 1", "learning_rate": "> 0", "batch_size": ">= 1", "warmup_ratio": "[0, 1]",
                            "max_train_seconds": "> 0"})
        if self.enabled:
            self.check(prefix="")  # the loader prefixes "onpolicy."


@dataclass
class LoopConfig:
    """STaR rounds: from round 2 the previous round's student samples the training problems itself."""

    rounds: int = option(1, "rounds of generate -> filter -> finetune -> eval; 1: the one-pass pipeline")
    generator: Literal["student", "endpoint"] = option(
        "student", "who samples from round 2. student: the previous round's student, local transformers behind a"
                   " loopback OpenAI-compatible server; endpoint: your server at loop.base_url (vLLM --enable-lora"
                   " with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or SGLang), told to load the previous round's"
                   " adapter before each round and asked for it by name. Generate and filter run unchanged")
    base_url: str | None = option(None, "generator=endpoint: the server's OpenAI-compatible URL, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = option(
        None, "generator=endpoint: NAME of the environment variable holding that server's key (never the key)")
    lora_api: Literal["vllm", "sglang"] = option(
        "vllm", "generator=endpoint: the load API; vllm: POST /v1/load_lora_adapter, sglang: POST /load_lora_adapter")
    server_run_dir: str | None = option(
        None, "generator=endpoint: the run folder as the server sees it (a container mount); null: the same path")
    restart: Literal["base", "continue"] = option(
        "base", "base: each round trains a fresh LoRA from the base model (or from finetune.init_adapter) on the"
                " union of kept traces so far (STaR's restart, no drift from earlier rounds' mistakes); continue:"
                " round r starts from round r-1's adapter (trainable, same lora.*) and trains on the same union")
    method: Literal["sft", "on_policy"] = option(
        "sft", "how rounds >= 2 train. sft: on the union of kept traces (restart decides the start); on_policy:"
               " on-policy distillation (the onpolicy section's settings, teacher self by default: the student shown"
               " a verified trace) from round r-1's adapter, on the problems of the union so far")
    patience: int = option(1, "stop when held-out accuracy has not risen for this many rounds")
    temperature: float = option(0.8, "the student's sampling temperature from round 2 (> 0: samples differ)")
    top_p: float = option(0.95, "the student's nucleus sampling from round 2")
    max_new_tokens: int | None = option(None, "the student's budget per sample from round 2 (null: generate.max_tokens)")

    def __post_init__(self) -> None:
        for key, value, ok, rule in (("rounds", self.rounds, self.rounds >= 1, ">= 1"),
                                     ("patience", self.patience, self.patience >= 1, ">= 1"),
                                     ("temperature", self.temperature, self.temperature > 0, "> 0"),
                                     ("top_p", self.top_p, 0 < self.top_p <= 1, "in (0, 1]"),
                                     ("max_new_tokens", self.max_new_tokens,
                                      self.max_new_tokens is None or self.max_new_tokens >= 1, ">= 1")):
            if not ok:
                raise ConfigError(f"{key} must be {rule}, got {value!r}")  # the loader prefixes "loop."
        if self.api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            # Never echo it: a value that is not a variable name may well be the key itself.
            raise ConfigError("api_key_env must be the NAME of an environment variable (letters, digits, _),"
                              " not the key; the value given is not shown")
        if self.generator == "endpoint":
            if not self.base_url:
                raise ConfigError("base_url is not set: loop.generator=endpoint needs the URL of the server"
                                  " that serves the student (e.g. http://127.0.0.1:8000/v1)")
            from distill.teacher.config import check_base_url

            check_base_url(self.base_url)


@dataclass
class PipelineConfig:
    """generate -> filter -> finetune -> eval (before and after) -> publish, in one run folder."""

    name: str = option("default", "run name; the run folder is runs/<name> unless run_dir is set")
    run_dir: str | None = option(None, "run folder (default: runs/<name> under the current directory)")
    stages: list[str] = option(
        ["generate", "filter", "finetune", "eval"],
        "stages to run, in pipeline order; add publish to upload (or stage it with publish.dry_run=true)")
    teacher: Literal["offline", "endpoint"] = option(
        "endpoint", "offline: start the built-in offline teacher on 127.0.0.1; endpoint: use generate.base_url")
    offline_teacher: OfflineTeacherConfig = section(OfflineTeacherConfig, "the built-in offline teacher")
    student: str | None = option(None, "student for finetune and eval (sets finetune.student and eval.student)")
    eval_before: bool = option(True, "also score the student without the adapter (eval-before/)")
    guard_problems: str | None = option(
        None, "general-skill problems outside the task, scored before and after (forgetting blocks publish)")
    ablate: list[str] = option(
        [], "ablation arms, same student and budget: answers_only, unfiltered, filtered, sft_continued, onpolicy_self,"
            " onpolicy_model, pick_shortest, pick_random, pick_first, pick_learnable (see distill.pipeline.ablation)")
    force: list[str] = option([], "stages to re-run even when their inputs and config are unchanged")
    report: bool = option(True, "write report.md and report.html (with plots) in the run folder")
    generate: GenerateConfig = section(GenerateConfig, "the generate stage (keys of distill generate, or a recipe path)")
    filter: FilterConfig = section(FilterConfig, "the filter stage (keys of distill filter, or a recipe path)")
    finetune: FinetuneConfig = section(FinetuneConfig, "the finetune stage (keys of distill finetune, or a recipe path)")
    eval: EvalConfig = section(EvalConfig, "the eval stage, run before and after finetuning (keys of distill eval)")
    publish: PublishSection = section(PublishSection, "the publish stage, when stages lists it (keys of distill publish)")
    onpolicy: OnPolicyStageConfig = section(
        OnPolicyStageConfig, "on-policy distillation after SFT (finetune-onpolicy from the SFT adapter), when enabled")
    loop: LoopConfig = section(LoopConfig, "STaR rounds (rounds=1: one pass); see docs in distill.pipeline.loop")

    def __post_init__(self) -> None:
        unknown = [s for s in [*self.stages, *self.force] if s not in STAGES]
        if unknown:
            raise ConfigError(f"stages: unknown stage {unknown[0]!r} (stages are {', '.join(STAGES)})")
        self._check_ablate()
        if self.student is not None:
            # One student for both, so eval scores the model that was trained.
            for part in (self.finetune, self.eval):
                part.student = self.student
        for stage in ("generate", "eval"):
            section = getattr(self, stage)
            if stage in self.stages and section.problems is None and not getattr(section, "benchmark", None):
                raise ConfigError(f"{stage}.problems is not set: name the problems in the recipe, or run "
                                  "`distill run` with no recipe for the embedded offline default")

        self._check_loop()
        if self.onpolicy.enabled and "finetune" not in self.stages:
            raise ConfigError("onpolicy.enabled: needs the finetune stage in stages= (it starts from SFT's adapter)")

    def _check_ablate(self) -> None:
        """Refuse unknown arms, and an ablation whose arms would not get the same budget."""
        unknown = [a for a in self.ablate if a not in ARMS]
        if unknown:
            raise ConfigError(f"ablate: unknown arm {unknown[0]!r} (arms are {', '.join(ARMS)})")
        if self.ablate and self.finetune.max_steps is None:
            raise ConfigError("ablate: set finetune.max_steps, so every arm trains for the same number of steps "
                              "(epochs would give the unfiltered arm more steps)")
        if self.ablate and not {"filter", "finetune", "eval"} <= set(self.stages):
            raise ConfigError("ablate: needs the filter, finetune and eval stages in stages=")
        if self.ablate and self.onpolicy.enabled:  # the filtered arm would be on-policy, the others SFT only
            raise ConfigError("ablate: not with onpolicy.enabled (the reference arm is SFT's adapter; compare"
                              " on-policy with the arms sft_continued, onpolicy_self, onpolicy_model)")
        picks = [a for a in self.ablate if a in PICKS]
        if picks and not self.filter.per_problem.max:  # with no cap every policy keeps everything: one arm
            raise ConfigError(f"ablate: the {picks[0]} arm needs filter.per_problem.max (the pick arms keep that many"
                              " traces per problem, chosen by another per_problem.policy than the run's)")
        same = f"pick_{self.filter.per_problem.policy}"
        if same in picks:
            raise ConfigError(f"ablate: {same} is the run's own per_problem.policy (the filtered arm); name the others")
        if "onpolicy_model" in self.ablate and not self.onpolicy.teacher_model:
            raise ConfigError("ablate: the onpolicy_model arm needs onpolicy.teacher_model (a model sharing the"
                              " student's tokenizer)")

    def _check_loop(self) -> None:
        if self.loop.rounds == 1:
            return
        if self.onpolicy.enabled:
            raise ConfigError("onpolicy.enabled with loop.rounds > 1: use loop.method=on_policy (rounds >= 2 train"
                              " on-policy with the self teacher)")
        if self.loop.method == "on_policy":
            self.onpolicy.check(prefix="onpolicy.")  # its teacher: self needs nothing, the others a URL or model
        missing = [s for s in ("generate", "filter", "finetune", "eval") if s not in self.stages]
        if missing:
            raise ConfigError(f"loop.rounds={self.loop.rounds}: stages must include {', '.join(missing)}"
                              " (every round generates, filters, trains and evaluates)")
        if "publish" in self.stages:
            raise ConfigError("loop.rounds > 1 with publish: publish the best round's adapter (named in loop.json)"
                              " with `distill publish` after the run")
        if self.loop.generator == "student" and not (self.student or self.finetune.student):
            raise ConfigError("loop.generator=student: no student; set student= (or finetune.student=)")

    @property
    def folder(self) -> Path:
        """The run folder: run_dir, or runs/<name>."""
        return Path(self.run_dir) if self.run_dir else Path("runs") / self.name


def default_recipe() -> Path:
    """The embedded offline default recipe (package data, found wherever distill is installed)."""
    ref = resources.files("distill.pipeline").joinpath(DEFAULT_RECIPE)
    path = Path(str(ref))
    if not path.is_file():
        raise ConfigError(f"the embedded recipe {DEFAULT_RECIPE} is missing from the installed package")
    return path


def load_pipeline(recipe: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """A recipe (or, with none, the embedded offline default) plus ``key=value`` overrides."""
    return load_config(PipelineConfig, recipe if recipe is not None else default_recipe(), overrides)

