"""`distill finetune method=on_policy`: the student answers the problems, a teacher scores every token.

Usage:
    from distill.finetune.onpolicy import run
    adapter_dir = run(load_config(FinetuneConfig, None, ["data=kept.jsonl", "method=on_policy"]))
    distill finetune data=kept.jsonl method=on_policy init_adapter=runs/x/adapter eval_problems=offline:dev?n=32
    distill finetune data=kept.jsonl method=on_policy onpolicy.teacher=endpoint onpolicy.base_url=http://127.0.0.1:8000/v1

Each step: ``batch_size x grad_accum`` problems from the kept traces are answered by the current
student (sampled, batched decoding of ``distill.decode.regroup``); the teacher scores the
answer's tokens, either a vLLM/SGLang endpoint sharing the student's tokenizer (checked on a
probe before the first step) or the student itself shown the verified trace (the self teacher);
the student steps on the per-token reverse KL of ``distill.onpolicy.loss``. Placeholder
positions are masked and counted in loss.jsonl. Usually started from the SFT adapter
(``init_adapter``). As in ``distill finetune``: dev scoring by the verifier with keep-best
(``eval_problems``), checkpoints (``save_steps``, and after every dev score, so a resumed run
never scores a step twice) and ``resume=true``; each attempt is sampled with a seed of (seed,
step), so a resumed run replays the steps an uninterrupted one would have. One process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from distill.errors import ConfigError
from distill.examples import Sample, read_samples
from distill.finetune.budget import TrainBudget
from distill.finetune.build import accelerator, adamw, build_model, cosine
from distill.finetune.checkpoint import resume_or_clear, save_checkpoint, trim_log
from distill.finetune.config import FinetuneConfig
from distill.finetune.init_adapter import load_init_adapter
from distill.finetune.outputs import peak_memory, write_outputs
from distill.layout import AdapterFiles
from distill.onpolicy.forward import completion_logits, token_logprobs
from distill.onpolicy.loss import LossOutput, sampled_reverse_kl, topk_reverse_kl
from distill.onpolicy.sampler import MergedSampler
from distill.onpolicy.self_teacher import privileged_message, score_attempts
from distill.progress import progress_bar
from distill.records import JsonlAppender, read_jsonl
from distill.render import stop_token_ids
from distill.student import load_tokenizer, resolve_student

log = logging.getLogger(__name__)

_COUNTED = ("tokens", "placeholders", "attempt_tokens")  # summed over the run's loss.jsonl rows


@dataclasses.dataclass
class _Run:
    """One on-policy run as its loop sees it."""

    cfg: FinetuneConfig
    model: Any
    tokenizer: Any
    teacher: Any  # a LogprobTeacher (endpoint, or a model over HTTP), a frozen local model, or None (self teacher)
    samples: list[Sample]
    optimizer: Any
    scheduler: Any
    acc: Any  # the accelerate.Accelerator (one process): checkpoints are written through it
    total: int
    eos: list[int]
    start: int = 0
    spent: float = 0.0  # training seconds a resumed run had already used (max_train_seconds counts them)
    start_sha: str | None = None
    scorer: Any = None  # DevScorer when eval_problems is set
    sampler: Any = None  # MergedSampler: attempts drawn without LoRA per token (None: through peft)


def run(cfg: FinetuneConfig) -> Path:
    """Sample, score, step for every step; write the adapter folder and return it."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("method=on_policy runs in one process (no accelerate launch / torchrun yet)")
    started, out = time.time(), Path(cfg.out)
    torch.manual_seed(cfg.seed)
    student_path = resolve_student(cfg.student)
    tokenizer, gen_cfg = load_tokenizer(student_path, cfg.chat_template)
    samples, dropped = read_samples(cfg.data, cfg.system_prompt, require_reasoning=cfg.onpolicy.privileged == "trace")
    with contextlib.ExitStack() as running:  # the teacher (and a model teacher's server) for the training only
        teacher = _open_teacher(cfg, tokenizer, running)  # another vocabulary is refused here, before step 1
        model = build_model(student_path, dataclasses.replace(cfg, packing=False), base_bf16=False)
        started_from = load_init_adapter(model, cfg) if cfg.init_adapter else None
        optimizer = adamw(model, cfg)
        total = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(samples) / (cfg.batch_size * cfg.grad_accum)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine(total, cfg))
        out.mkdir(parents=True, exist_ok=True)
        training = _Run(cfg, model, tokenizer, teacher, samples, optimizer, scheduler, accelerator(False), total,
                        sorted(stop_token_ids(tokenizer, gen_cfg)), start_sha=(started_from or {}).get("sha256"))
        if cfg.onpolicy.merged_sampling and MergedSampler.fits(cfg.lora):
            training.sampler = MergedSampler(model)
        resumed = resume_or_clear(AdapterFiles(out).checkpoints, cfg.resume, training.start_sha, model, optimizer,
                                  scheduler, training.acc)
        training.start, training.spent = int(resumed["step"]), float(resumed.get("train_seconds", 0.0))
        if cfg.eval_problems:  # verified dev accuracy, scored and kept exactly as distill finetune does
            from distill.finetune.devscore import DevScorer

            training.scorer = DevScorer.load(cfg, student_path, tokenizer, out)
        metrics = _train(training, out)
    model.eval()
    if training.scorer is not None:
        metrics["checkpoint"] = training.scorer.keep(model, metrics["steps"], cfg.keep_best)
    metrics.update(wall_time_s=round(time.time() - started, 2), **peak_memory())
    counts = {"records": len(samples) + sum(dropped.values()), "examples": len(samples), "train_examples": len(samples),
              "dropped": dict(dropped)}
    write_outputs(model, tokenizer, gen_cfg, cfg, out, student_path, counts, metrics, started_from)
    return out


def _train(t: _Run, out: Path) -> dict:
    """Steps ``start..total``: sample, score, step; log every step, dev-score and checkpoint on schedule."""
    cfg, files = t.cfg, AdapterFiles(out)
    trim_log(files.loss_log, t.start)  # lines after the checkpoint belong to steps this run does again
    sums = {k: sum(r.get(k, 0) for _, r in read_jsonl(files.loss_log)) for k in _COUNTED} if t.start else \
        dict.fromkeys(_COUNTED, 0)
    trained, busy, row = 0, 0.0, {}
    budget = TrainBudget(cfg.max_train_seconds, cfg.train_clock, spent=t.spent)
    bar = progress_bar(t.total, "on-policy", "step", cfg.progress, initial=t.start)
    with JsonlAppender(files.loss_log) as appender:
        for step in range(t.start, t.total):
            clock = time.perf_counter()
            row = _step(t, step)
            busy += time.perf_counter() - clock  # tokens/s counts training, not dev generation
            trained += row["tokens"]
            for k in _COUNTED:
                sums[k] += row[k]
            done = step + 1
            row.update(tokens_total=sums["tokens"], tokens_per_s=round(trained / max(busy, 1e-9), 1))
            is_out_of_time = budget.is_spent()
            is_last = done == t.total or is_out_of_time
            is_scored = t.scorer is not None and ((cfg.eval_steps and done % cfg.eval_steps == 0) or is_last)
            if is_scored:
                with budget.paused():
                    row.update(t.scorer.score(t.model, done))
            appender.write(row)
            if cfg.save_steps and not is_last and (done % cfg.save_steps == 0 or is_scored):
                save_checkpoint(files.checkpoints, done, t.model, t.optimizer, t.scheduler, t.acc,
                                cfg.save_total_limit, {"loss": row["loss"], "init_adapter": t.start_sha,
                                                       "train_seconds": budget.spent()})
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", kl=f"{row['reverse_kl']:.4f}")
            if is_out_of_time:
                log.info("on-policy: max_train_seconds=%s reached after step %d of %d", cfg.max_train_seconds, done,
                         t.total)
                break
    bar.close()
    return {"method": "on_policy", "steps": row.get("step", t.start), "planned_steps": t.total,
            "resumed_from_step": t.start,
            "final_loss": row.get("loss"), "final_reverse_kl": row.get("reverse_kl"),
            "scored_tokens": sums["tokens"], "attempt_tokens": sums["attempt_tokens"],
            "placeholders_masked": sums["placeholders"], "trained_tokens_this_run": trained,
            "trained_tokens_per_s": round(trained / max(busy, 1e-9), 1)}


def _step(t: _Run, step: int) -> dict:
    """One optimizer step: every micro-batch sampled by the student, scored by the teacher, backpropagated."""
    from distill.decode.regroup import generate_regrouped

    cfg, pad = t.cfg, t.tokenizer.pad_token_id
    row: dict = {"step": step + 1}
    t.model.zero_grad(set_to_none=True)
    if t.sampler is not None:
        t.sampler.refresh()  # the policy as it is after the last step, merged
    policy = t.model if t.sampler is None else t.sampler.model
    for k, batch in enumerate(_micro_batches(t.samples, step, cfg)):
        prompts = [_encode(t.tokenizer, s.prompt_messages) for s in batch]
        t.model.eval()
        with torch.no_grad():
            attempts = generate_regrouped(policy, prompts, t.eos, pad, cfg.onpolicy.max_new_tokens,
                                          temperature=cfg.onpolicy.temperature,
                                          seed=cfg.seed * 100003 + step * 101 + k)
        t.model.train()
        out_k, placeholders = _loss(t.model, t.tokenizer, t.teacher, batch, prompts, attempts, cfg, pad)
        (out_k.loss / cfg.grad_accum).backward()
        _add(row, out_k, placeholders, attempts, cfg.grad_accum)
    if row["attempt_tokens"] and not row["tokens"]:  # nothing scored is nothing learned: never a silent no-op run
        from distill.teacher.logprobs import TeacherLogprobError

        raise TeacherLogprobError(f"on-policy step {step + 1}: the teacher scored none of the student's "
                                  f"{row['attempt_tokens']} tokens ({row['placeholders']} placeholder positions "
                                  "masked); check it with `distill teacher score`")
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), cfg.max_grad_norm)
    t.optimizer.step()
    t.scheduler.step()
    row["lr"] = t.scheduler.get_last_lr()[0]
    return row


def _micro_batches(samples: list[Sample], step: int, cfg: FinetuneConfig) -> list[list[Sample]]:
    """This step's problems: a seeded order per epoch, so a run repeats exactly."""
    per_step = cfg.batch_size * cfg.grad_accum
    picked = []
    for n in range(step * per_step, (step + 1) * per_step):
        epoch, i = divmod(n, len(samples))
        order = list(range(len(samples)))
        random.Random(cfg.seed * 7919 + epoch).shuffle(order)
        picked.append(samples[order[i]])
    return [picked[i:i + cfg.batch_size] for i in range(0, per_step, cfg.batch_size)]


def _encode(tokenizer: Any, messages: list[dict]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _open_teacher(cfg: FinetuneConfig, tokenizer: Any, running: contextlib.ExitStack) -> Any:
    """None for the self teacher; a frozen local model; or a client of the endpoint (or of teacher_model on 127.0.0.1)."""
    o = cfg.onpolicy
    if o.teacher == "self":
        return None
    from distill.teacher.logprobs import LogprobTeacher, check_same_tokenizer

    if o.teacher == "model" and not o.over_http:
        return _local_teacher(o, tokenizer)
    url, server = o.base_url, o.server
    if o.teacher == "model":
        from distill.teacher.model_server import served_model

        served = served_model(str(o.teacher_model), o.teacher_adapter, max_logprobs=max(20, o.top_k))
        url, server = running.enter_context(served), "vllm"
    key = os.environ.get(o.api_key_env) if o.api_key_env else None
    teacher = LogprobTeacher(url, server, o.model, o.top_k if o.loss == "topk" else 0, api_key=key, timeout=o.timeout)
    running.callback(teacher.close)
    check_same_tokenizer(teacher, tokenizer)
    return teacher


def _local_teacher(o: Any, tokenizer: Any) -> Any:
    """teacher_model (+ teacher_adapter) loaded in this process, frozen; refused unless it shares the vocabulary."""
    from distill.student import load_student

    teacher, its_tokenizer = load_student(str(o.teacher_model), adapter=o.teacher_adapter)
    if its_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"onpolicy.teacher_model: {o.teacher_model}'s tokenizer differs from the student's (on-policy"
                          " distillation compares logprobs token by token: the vocabularies must be the same)")
    if hasattr(teacher, "merge_and_unload"):  # an adapter: merged once, so no LoRA runs per scored token
        teacher = teacher.merge_and_unload()
    return teacher.eval().requires_grad_(False)


def _loss(model: Any, tokenizer: Any, teacher: Any, batch: list[Sample], prompts: list[list[int]],
          attempts: list[list[int]], cfg: FinetuneConfig, pad: int) -> tuple[LossOutput, int]:
    """The micro-batch's loss and how many placeholder positions were masked out of it."""
    o = cfg.onpolicy
    if teacher is None or isinstance(teacher, torch.nn.Module):  # the student shown the solution, or a local model
        rich = prompts if teacher is not None else [_encode(tokenizer, _privileged(s, o.privileged)) for s in batch]
        scores = score_attempts(model, prompts, rich, attempts, pad, teacher=teacher)
        if o.loss == "sampled":
            return sampled_reverse_kl(scores.student_logp, scores.teacher_logp, scores.mask), 0
        top_logp, top_ids = torch.log_softmax(scores.teacher_logits.float(), -1).topk(o.top_k, dim=-1)
        return topk_reverse_kl(scores.student_logits, top_ids, top_logp, scores.mask), 0
    scored = teacher.score([p + a for p, a in zip(prompts, attempts)], [len(p) for p in prompts])
    logits, ids, mask = completion_logits(model, prompts, attempts, pad)
    valid = torch.zeros_like(mask)
    teacher_logp = torch.zeros(mask.shape)
    for b, s in enumerate(scored):
        valid[b, :len(s.valid)] = torch.tensor(s.valid)
        teacher_logp[b, :len(s.logprobs)] = torch.tensor(s.logprobs)
    placeholders = sum(s.placeholders for s in scored)
    if o.loss == "sampled":
        return sampled_reverse_kl(token_logprobs(logits, ids), teacher_logp, mask & valid), placeholders
    top_ids, top_logp, slots = _pad_top(scored, mask.shape, o.top_k)
    return topk_reverse_kl(logits, top_ids, top_logp, mask & valid, slots), placeholders


def _privileged(sample: Sample, what: str) -> list[dict]:
    """The sample's prompt with the verified solution appended to its last user turn."""
    solution = sample.content if what == "answer" or not sample.reasoning else f"{sample.reasoning}\n\n{sample.content}"
    messages = [dict(m) for m in sample.prompt_messages]
    last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    messages[last]["content"] = privileged_message(str(messages[last]["content"]), solution)
    return messages


def _pad_top(scored: list, shape: tuple, k: int) -> tuple[Any, Any, Any]:
    ids = torch.zeros(*shape, k, dtype=torch.long)
    logp = torch.zeros(*shape, k)
    slots = torch.zeros(*shape, k, dtype=torch.bool)
    for b, s in enumerate(scored):
        for t, top in enumerate(s.top):
            n = min(k, len(top))
            ids[b, t, :n] = torch.tensor(list(top)[:n])
            logp[b, t, :n] = torch.tensor(list(top.values())[:n])
            slots[b, t, :n] = True
    return ids, logp, slots


def _add(row: dict, out: LossOutput, placeholders: int, attempts: list[list[int]], parts: int) -> None:
    row["loss"] = row.get("loss", 0.0) + out.loss.item() / parts
    row["reverse_kl"] = row.get("reverse_kl", 0.0) + out.reverse_kl.item() / parts
    row["tokens"] = row.get("tokens", 0) + int(out.tokens.item())
    row["placeholders"] = row.get("placeholders", 0) + placeholders
    row["attempt_tokens"] = row.get("attempt_tokens", 0) + sum(len(a) for a in attempts)
