"""Options of `distill finetune`: data, student, rendering, lint, LoRA and the training loop.

Usage:
    cfg = load_config(FinetuneConfig, "finetune/smollm2-135m.yaml", ["data=kept.jsonl", "lora.r=32"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from distill.config import check_bounds, option, section
from distill.errors import ConfigError
from distill.render import DEFAULT_FORMAT


@dataclass
class LoraConfig:
    """Low-rank adapters (peft)."""

    r: int = option(16, "adapter rank")
    alpha: int = option(32, "scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rslora)")
    dropout: float = option(0.05, "dropout on the adapter input")
    target_modules: list[str] = option(["all-linear"], "modules to adapt: all-linear or names (q_proj, ...)")
    use_rslora: bool = option(False, "rank-stabilised scaling alpha / sqrt(r) (better for high ranks)")
    use_dora: bool = option(False, "weight-decomposed LoRA (DoRA): slower, sometimes better")
    modules_to_save: list[str] = option([], "modules trained in full and saved with the adapter (e.g. lm_head)")


@dataclass
class OnPolicyConfig:
    """On-policy distillation (method=on_policy): the student samples answers, a teacher scores its tokens."""

    teacher: Literal["self", "endpoint", "model"] = option(
        "self", "self: the student, shown the verified trace, scores its own attempt (no server); endpoint: a"
                " vLLM/SGLang teacher sharing the student's tokenizer; model: teacher_model, loaded here and scoring"
                " batched in this process (or served on 127.0.0.1 with over_http)")
    teacher_model: str | None = option(
        None, "teacher=model: a model folder, Hub id or alias sharing the student's tokenizer (a bigger sibling)")
    teacher_adapter: str | None = option(None, "teacher=model: a LoRA adapter folder applied on top of teacher_model")
    over_http: bool = option(
        False, "teacher=model: serve it on 127.0.0.1 and score over HTTP as a vLLM teacher (what an endpoint costs)"
               " instead of in this process, batched")
    base_url: str | None = option(None, "endpoint teacher: vLLM's /v1 URL or SGLang's root")
    server: Literal["vllm", "sglang"] = option("vllm", "endpoint teacher: vllm (prompt_logprobs) | sglang (/generate)")
    model: str | None = option(None, "endpoint teacher: model name the server knows (null: the first it lists)")
    api_key_env: str | None = option(None, "endpoint teacher: NAME of the variable holding its API key, if any")
    loss: Literal["sampled", "topk"] = option(
        "sampled", "sampled: advantage = teacher - student logprob of each sampled token (Tinker recipe);"
                   " topk: exact KL on the teacher's top-k, renormalised")
    top_k: int = option(20, "teacher top-k per position for loss=topk (vLLM allows 20 unless --max-logprobs)")
    privileged: Literal["trace", "answer"] = option(
        "trace", "self teacher: what it is shown, the verified reasoning and answer or the answer alone")
    max_new_tokens: int = option(256, "longest student attempt in tokens")
    temperature: float = option(1.0, "sampling temperature of the attempts (1: they are the policy's own samples)")
    merged_sampling: bool = option(
        True, "sample the attempts from a merged copy of the weights refreshed each step (no LoRA per token;"
              " one more copy of the base in memory); false: through peft")
    timeout: float = option(300.0, "endpoint teacher: seconds to wait for one scoring answer")

    def check(self, prefix: str = "onpolicy.") -> None:
        """The teacher named is reachable as configured (a URL for endpoint, a model for model)."""
        if self.teacher == "endpoint" and not self.base_url:
            raise ConfigError(f"{prefix}base_url is required with {prefix}teacher=endpoint (a vLLM or SGLang server)")
        if self.teacher == "model" and not self.teacher_model:
            raise ConfigError(f"{prefix}teacher_model is required with {prefix}teacher=model (a model folder or"
                              " Hub id sharing the student's tokenizer)")


@dataclass
class FinetuneConfig:
    """LoRA-fine-tune a small student to reason (in its chat template) before it answers."""

    data: str | None = option(None, "kept traces (JSONL from distill filter) or a chat-messages JSONL")
    method: Literal["sft", "on_policy"] = option(
        "sft", "sft: learn the kept traces; on_policy: sample answers to their problems and move toward a teacher's"
               " logprobs of them (onpolicy.*)")
    onpolicy: OnPolicyConfig = section(OnPolicyConfig, "on-policy distillation settings (method=on_policy)")
    student: str = option("smollm2", "Hub model id, local folder, .gguf file, or the alias smollm2")
    out: str = option("adapter", "output folder: adapter, tokenizer, config, distill.json, loss log")
    system_prompt: str | None = option(None, "system message put before every user turn (eval uses it too)")
    reasoning_format: str = option(DEFAULT_FORMAT, "assistant turn; {reasoning} and {content} are filled in")
    chat_template: str | None = option(None, "override the student's template: chatml or a .jinja file")
    max_length: int = option(4096, "longest example in tokens (prompt + reasoning + answer + EOS)")
    overlong: Literal["drop", "truncate"] = option("drop", "examples over max_length: drop or cut the end")
    lint_only: bool = option(False, "render and lint the data, print the report, do not train")
    strict_lint: bool = option(True, "stop before training when the lint finds an error")
    lora: LoraConfig = section(LoraConfig, "LoRA adapter settings")
    init_adapter: str | None = option(
        None, "start from this LoRA adapter folder (its weights trainable) instead of a fresh LoRA; it must be an"
              " adapter of the same student with the same lora.* (dropout may differ); distill.json records it")
    learning_rate: float = option(2e-4, "peak AdamW learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay")
    warmup_ratio: float = option(0.05, "fraction of steps spent warming up linearly")
    min_lr_ratio: float = option(0.0, "cosine floor as a fraction of the peak learning rate")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 = off)")
    epochs: float = option(1.0, "passes over the data (ignored when max_steps is set)")
    max_steps: int | None = option(None, "optimizer steps to run (overrides epochs)")
    max_train_seconds: float | None = option(
        None, "also stop once this process has trained this long (dev scoring not counted): runs compared at equal"
              " CPU time; the schedule is still planned for max_steps")
    train_clock: Literal["wall", "cpu"] = option(
        "wall", "what max_train_seconds counts: wall seconds, or this process's CPU seconds over its torch threads"
                " (the same on idle cores; fair to each run when other jobs share the machine)")
    batch_size: int = option(8, "examples per micro-batch per device")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    packing: bool = option(True, "padding-free batches: examples packed in one row, no attention across them")
    gradient_checkpointing: bool = option(False, "recompute activations in backward (less memory, ~30% slower)")
    bf16: Literal["auto", "true", "false"] = option("auto", "bfloat16 autocast; auto: on a bf16 GPU or a CPU with AVX-512 BF16/AMX")
    seed: int = option(0, "seed for data order, adapter init and dropout")
    save_steps: int = option(0, "checkpoint every N optimizer steps (0 = only at the end)")
    save_total_limit: int = option(2, "checkpoints kept (oldest removed)")
    resume: bool = option(False, "continue from the latest checkpoint in out/checkpoints")
    eval_fraction: float = option(0.0, "fraction of examples held out for eval loss (0 = none)")
    eval_steps: int = option(0, "eval (loss, dev accuracy) every N steps (0 = only at the end)")
    eval_problems: str | None = option(
        None, "dev problems answered greedily and verified at each eval (pass@1 in loss.jsonl); never the test set")
    eval_limit: int | None = option(None, "score at most this many dev problems")
    eval_max_new_tokens: int = option(256, "generation budget per dev answer")
    eval_batch_size: int = option(16, "dev prompts generated together")
    keep_best: bool = option(True, "with eval_problems: save the adapter of the step with the best dev accuracy")
    log_steps: int = option(1, "write a loss.jsonl line every N steps")
    merge: bool = option(False, "also write the merged full model to out/merged")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Ranges and the format string, before any data is read or any model loaded."""
        check_bounds(self, {
            "lora.r": ">= 1", "lora.alpha": "> 0", "lora.dropout": "[0, 1)", "learning_rate": "> 0",
            "weight_decay": ">= 0", "warmup_ratio": "[0, 1]", "min_lr_ratio": "[0, 1]", "max_grad_norm": ">= 0",
            "epochs": "> 0", "max_steps": ">= 1", "batch_size": ">= 1", "grad_accum": ">= 1", "max_length": ">= 8",
            "save_steps": ">= 0", "save_total_limit": ">= 1", "eval_fraction": "[0, 1)", "eval_steps": ">= 0",
            "eval_limit": ">= 1", "eval_max_new_tokens": ">= 1", "eval_batch_size": ">= 1",
            "log_steps": ">= 1", "onpolicy.top_k": ">= 1", "onpolicy.max_new_tokens": ">= 1",
            "onpolicy.temperature": "> 0", "onpolicy.timeout": "> 0", "max_train_seconds": "> 0"})
        if self.method == "on_policy":
            self._validate_on_policy()
        if not self.lora.target_modules:
            raise ConfigError("lora.target_modules must name at least one module (or all-linear)")
        try:
            self.reasoning_format.format(reasoning="r", content="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"reasoning_format: only {{reasoning}} and {{content}} may be used ({exc!r})") from None
        if "{content}" not in self.reasoning_format:
            raise ConfigError("reasoning_format must contain {content} (the answer the student learns to give)")

    def _validate_on_policy(self) -> None:
        self.onpolicy.check()
        if self.eval_fraction:  # a held-out loss is SFT's measure; on-policy has no fixed targets to score
            raise ConfigError("eval_fraction is not supported with method=on_policy (score dev problems instead:"
                              " eval_problems=...)")
