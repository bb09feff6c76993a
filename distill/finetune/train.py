"""The finetune stage: render + lint the data, then a LoRA training loop written out on accelerate.

Usage:
    from distill.finetune.train import run
    adapter_dir = run(load_config(FinetuneConfig, "finetune/smollm2-135m.yaml", ["data=kept.jsonl"]))
    # several processes: accelerate launch -m distill finetune data=kept.jsonl ...

One process, one GPU or DDP under ``accelerate launch``: the loop is the same. Batches are
padding-free packed rows (see packing.py) in a seeded order that is a pure function of
(seed, epoch), which makes ``resume=true`` replay an interrupted run exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from distill.layout import AdapterFiles
from distill.errors import InputError
from distill.finetune.budget import TrainBudget
from distill.finetune.build import accelerator, adamw, build_model, cosine
from distill.finetune.checkpoint import resume_or_clear, save_checkpoint, trim_log
from distill.finetune.config import FinetuneConfig
from distill.examples import (
    Encoded,
    collate,
    encode_samples,
    plan_batches,
    read_samples,
    split_heldout,
)
from distill.finetune.init_adapter import load_init_adapter
from distill.finetune.lint import lint, show_report
from distill.finetune.outputs import peak_memory, write_outputs
from distill.hardware import use_bf16 as resolve_bf16
from distill.progress import progress_bar
from distill.records import JsonlAppender
from distill.student import load_tokenizer, resolve_student

log = logging.getLogger(__name__)


def run(cfg: FinetuneConfig) -> Path:
    """Lint the data, train, write the adapter folder; returns it (``lint_only``: the lint report).

    ``cfg`` has been checked by :func:`distill.finetune.run` (options, data, paths, init_adapter).
    """
    from accelerate.utils import set_seed

    started = time.time()
    out = Path(cfg.out)
    use_bf16 = resolve_bf16(cfg.bf16)  # auto: a bf16 GPU, or a CPU with AVX-512 BF16 / AMX
    acc = accelerator(use_bf16)
    set_seed(cfg.seed)
    student_path = resolve_student(cfg.student)
    tokenizer, gen_cfg = load_tokenizer(student_path, cfg.chat_template)
    encoded, counts = _prepare_data(cfg, tokenizer, gen_cfg, acc.is_main_process, out)
    if cfg.lint_only:
        return AdapterFiles(out).lint
    train_idx, held_idx = split_heldout(len(encoded.examples), cfg.eval_fraction, cfg.seed)
    counts.update(train_examples=len(train_idx), eval_examples=len(held_idx))
    model = build_model(student_path, cfg, use_bf16 and torch.cuda.is_available(), autocast_bf16=use_bf16)
    started_from = load_init_adapter(model, cfg) if cfg.init_adapter else None
    optimizer = adamw(model, cfg)
    plan = _Plan(encoded, train_idx, cfg, acc.num_processes, tokenizer.pad_token_id)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(plan.total_steps, cfg))
    model, optimizer = acc.prepare(model, optimizer)
    training = _Training(model, optimizer, scheduler, acc, plan, held_idx, cfg, out,
                         start_sha=(started_from or {}).get("sha256"))
    resumed = resume_or_clear(AdapterFiles(out).checkpoints, cfg.resume, training.start_sha, model, optimizer,
                              scheduler, acc)
    training.start, training.spent = int(resumed["step"]), float(resumed.get("train_seconds", 0.0))
    if cfg.eval_problems and acc.is_main_process:  # verified dev accuracy: one rank answers, the others wait
        from distill.finetune.devscore import DevScorer

        training.scorer = DevScorer.load(cfg, student_path, tokenizer, out)
    metrics = _train_loop(training)
    metrics.update(wall_time_s=round(time.time() - started, 2), bf16=use_bf16, **peak_memory())
    if training.scorer is not None:
        metrics["checkpoint"] = training.scorer.keep(acc.unwrap_model(model), metrics["steps"], cfg.keep_best)
    if acc.is_main_process:
        write_outputs(acc.unwrap_model(model), tokenizer, gen_cfg, cfg, out, student_path, counts, metrics,
                       started_from)
    acc.wait_for_everyone()
    acc.end_training()
    return out


def _prepare_data(cfg: FinetuneConfig, tokenizer: Any, gen_cfg: Any, is_main: bool, out: Path) -> tuple[Encoded, dict]:
    """Read, render and lint; raise when the lint finds errors (unless strict_lint=false)."""
    samples, dropped = read_samples(cfg.data, cfg.system_prompt, "{reasoning}" in cfg.reasoning_format)
    encoded = encode_samples(samples, tokenizer, cfg.reasoning_format, cfg.max_length, cfg.overlong, gen_cfg)
    dropped.update(encoded.dropped)
    n_records = len(samples) + sum(v for k, v in dropped.items() if k not in encoded.dropped)
    report = lint(encoded, tokenizer, gen_cfg, cfg.max_length, cfg.overlong, n_records, dropped)
    if is_main:
        show_report(report)
        out.mkdir(parents=True, exist_ok=True)
        (AdapterFiles(out).lint).write_text(report.text(), encoding="utf-8")
    if report.errors and (cfg.strict_lint or not encoded.examples):
        more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise InputError(f"lint: {report.errors[0]}{more}; full report in {out / 'lint.txt'}"
                         + ("; strict_lint=false trains anyway" if encoded.examples else ""), path=cfg.data)
    counts = {"records": n_records, "examples": len(encoded.examples), "dropped": dict(dropped),
              "truncated": encoded.truncated, "over_max_length": encoded.overlong,
              "lint_errors": report.errors, "lint_warnings": report.warnings}
    return encoded, counts


class _Plan:
    """Which examples each rank trains on at each step: an endless, seeded stream of micro-batches."""

    def __init__(self, encoded: Encoded, train_idx: list[int], cfg: FinetuneConfig, world: int, pad: int):
        # (train_idx is never empty: _prepare_data refuses data with no example, split_heldout keeps one)
        self.encoded, self.idx, self.cfg, self.world, self.pad = encoded, train_idx, cfg, world, pad
        self.lengths = [len(encoded.examples[i].input_ids) for i in train_idx]
        self.per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
        self.per_step = cfg.grad_accum * world
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.per_epoch / self.per_step))
        self._epochs: dict[int, list[list[int]]] = {}

    def micro_batch(self, m: int) -> list[Any]:
        epoch, i = divmod(m, self.per_epoch)
        if epoch not in self._epochs:
            self._epochs = {epoch: plan_batches(self.lengths, self.cfg.batch_size, self.cfg.seed, epoch)}
        return [self.encoded.examples[self.idx[j]] for j in self._epochs[epoch][i]]

    def step_batches(self, step: int, rank: int) -> tuple[list[list[Any]], int]:
        """This rank's micro-batches for ``step`` and the trained-token count of the whole step."""
        first = step * self.per_step
        window = [self.micro_batch(first + k) for k in range(self.per_step)]
        tokens = sum(len(ex.completion_ids) for batch in window for ex in batch)
        return window[rank::self.world], tokens

    def epoch_of(self, step: int) -> float:
        return round(step * self.per_step / self.per_epoch, 3)


@dataclass
class _Training:
    """One training run as the loop sees it: what is trained, how, on what, and where it starts."""

    model: Any
    optimizer: Any
    scheduler: Any
    acc: Any  # the accelerate.Accelerator: device, ranks, autocast
    plan: _Plan
    held_idx: list[int]  # examples for the held-out loss
    cfg: FinetuneConfig
    out: Path
    start: int = 0  # the step a resumed run continues from
    spent: float = 0.0  # training seconds a resumed run had already used (max_train_seconds counts them)
    start_sha: str | None = None  # the init adapter's weights (checkpoints say which start they continue)
    scorer: Any = None  # DevScorer on the main rank when eval_problems is set


def _batch_loss(model: Any, batch: dict, acc: Any) -> torch.Tensor:
    """Summed cross-entropy over the trained tokens of one micro-batch."""
    batch = {k: v.to(acc.device) if k != "cu_seq_lens_q" else v for k, v in batch.items()}
    targets, labels = batch.pop("targets", None), batch.pop("labels", None)
    with acc.autocast():
        logits = model(**batch, use_cache=False).logits
    if targets is not None:
        return F.cross_entropy(logits[0].float(), targets, reduction="sum")
    logits, labels = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum")


def _train_loop(training: _Training) -> dict:
    """Steps ``start..total``: accumulate, clip, step; log, eval and checkpoint on schedule."""
    model, acc, plan, cfg = training.model, training.acc, training.plan, training.cfg
    files = AdapterFiles(training.out)
    if acc.is_main_process:
        trim_log(files.loss_log, training.start)
    appender = JsonlAppender(files.loss_log) if acc.is_main_process else None
    best, last, eval_loss, trained, done = math.inf, math.nan, None, 0, training.start
    clock = time.perf_counter()
    budget = TrainBudget(cfg.max_train_seconds, cfg.train_clock, spent=training.spent)
    model.train()
    bar = progress_bar(plan.total_steps, "finetune", "step", cfg.progress and acc.is_main_process,
                       initial=training.start)
    for step in range(training.start, plan.total_steps):
        batches, step_tokens = plan.step_batches(step, acc.process_index)
        local_sum = torch.zeros((), device=acc.device)
        for k, examples in enumerate(batches):
            is_last = k == len(batches) - 1
            ctx = acc.no_sync(model) if not is_last else contextlib.nullcontext()
            with ctx:
                loss_sum = _batch_loss(model, collate(examples, cfg.packing, plan.pad), acc)
                # DDP averages gradients over ranks: scale so the step's gradient is the mean over
                # every trained token of the whole step, however tokens fall across micro-batches.
                acc.backward(loss_sum * acc.num_processes / step_tokens)
            local_sum += loss_sum.detach()
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        training.optimizer.step()
        training.scheduler.step()
        training.optimizer.zero_grad(set_to_none=True)
        last = acc.reduce(local_sum, reduction="sum").item() / step_tokens
        best = min(best, last)
        trained += step_tokens
        done = step + 1
        elapsed = time.perf_counter() - clock
        lr = training.scheduler.get_last_lr()[0]
        bar.update(1)
        bar.set_postfix(loss=f"{last:.4f}", lr=f"{lr:.2e}", tok_s=f"{trained / max(elapsed, 1e-9):.0f}")
        row = {"step": done, "epoch": plan.epoch_of(done), "loss": round(last, 6), "lr": lr,
               "tokens": trained, "tokens_per_s": round(trained / max(elapsed, 1e-9), 1)}
        is_out_of_time = _out_of_time(budget, acc)
        is_last = done == plan.total_steps or is_out_of_time
        if (cfg.eval_steps and done % cfg.eval_steps == 0) or is_last:
            if training.held_idx:
                eval_loss = _eval_loss(training)
                row["eval_loss"] = round(eval_loss, 6)
            if cfg.eval_problems:
                paused = time.perf_counter()
                with budget.paused():
                    if training.scorer is not None:
                        row.update(training.scorer.score(acc.unwrap_model(model), done))
                    acc.wait_for_everyone()
                clock += time.perf_counter() - paused  # tokens/s counts training time, not dev generation
        if appender and (done % max(1, cfg.log_steps) == 0 or is_last or "eval_loss" in row
                         or "dev_pass@1" in row):
            appender.write(row)
        if cfg.save_steps and done % cfg.save_steps == 0 and not is_last:
            save_checkpoint(files.checkpoints, done, model, training.optimizer, training.scheduler, acc,
                            cfg.save_total_limit, {"loss": last, "init_adapter": training.start_sha,
                                                   "train_seconds": budget.spent()})
        if is_out_of_time:
            log.info("finetune: max_train_seconds=%s reached after step %d of %d", cfg.max_train_seconds, done,
                     plan.total_steps)
            break
    bar.close()
    if appender:
        appender.close()
    elapsed = time.perf_counter() - clock
    return {"steps": done,
            "planned_steps": plan.total_steps, "resumed_from_step": training.start, "final_loss": last, "best_loss": best,
            "eval_loss": eval_loss, "trained_tokens_this_run": trained,
            "trained_tokens_per_s": round(trained / max(elapsed, 1e-9), 1)}


def _out_of_time(budget: TrainBudget, acc: Any) -> bool:
    """max_train_seconds reached; every rank stops at the same step (the slowest rank's clock decides)."""
    if not budget.limit:
        return False
    late = torch.tensor(float(budget.is_spent()), device=acc.device)
    return bool(acc.reduce(late, reduction="sum").item() > 0)


@torch.no_grad()
def _eval_loss(training: _Training) -> float:
    """Mean loss per trained token over the held-out examples (sharded across ranks)."""
    model, acc, batch_size = training.model, training.acc, training.cfg.batch_size
    model.eval()
    mine = training.held_idx[acc.process_index::acc.num_processes]
    total = torch.zeros(2, device=acc.device)
    for i in range(0, len(mine), batch_size):
        examples = [training.plan.encoded.examples[j] for j in mine[i:i + batch_size]]
        total[0] += _batch_loss(model, collate(examples, training.cfg.packing, training.plan.pad), acc)
        total[1] += sum(len(ex.completion_ids) for ex in examples)
    model.train()
    total = acc.reduce(total, reduction="sum")
    return (total[0] / total[1].clamp(min=1)).item()
