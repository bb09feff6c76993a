"""Training examples: kept traces or chat records read, rendered as the student is trained, and batched.

Usage:
    samples, dropped = read_samples("kept.jsonl")
    encoded = encode_samples(samples, tokenizer, fmt, max_length=4096, overlong="drop")
    batches = plan_batches([len(e.input_ids) for e in encoded.examples], batch_size=8, seed=0, epoch=0)

Two record shapes are read: a kept trace (``messages`` sent to the teacher + ``reasoning`` +
``content``) and a chat record whose ``messages`` end with the assistant turn (its reasoning in
``reasoning_content``/``reasoning``, or already inline). The student's prompt is the last user
message the teacher got; earlier turns of a chat record stay as context, and only the final
assistant turn carries loss.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import InputError
from distill.render import Rendered, build_messages, render_example, stop_token_ids
from distill.records import read_jsonl


@dataclass
class Sample:
    """One example before tokenization, with the file line it came from."""

    line: int
    prompt_messages: list[dict]
    reasoning: str | None
    content: str


@dataclass
class Encoded:
    """Rendered examples that fit, plus what was dropped or cut and why."""

    examples: list[Rendered]
    lines: list[int]
    dropped: Counter = field(default_factory=Counter)
    truncated: int = 0
    overlong: int = 0
    longest: int = 0


def read_samples(path: str | Path, system_prompt: str | None = None,
                 require_reasoning: bool = True) -> tuple[list[Sample], Counter]:
    """Samples from a JSONL file and the count of records dropped per reason."""
    samples: list[Sample] = []
    dropped: Counter = Counter()
    first_bad: dict[str, int] = {}
    total = 0
    for line, rec in read_jsonl(path):
        total += 1
        sample, reason = sample_of(rec, line, path, system_prompt, require_reasoning)
        if sample is None:
            dropped[reason] += 1
            first_bad.setdefault(reason, line)
            continue
        samples.append(sample)
    if total == 0:
        raise InputError("no records: the training data is empty", path=path)
    if not samples:
        reason, line = next(iter(first_bad.items()))
        hint = {"no_reasoning": "records have no reasoning (reasoning is null or empty): nothing to distil"}
        raise InputError(f"no usable record; {dict(dropped)} ({hint.get(reason, reason)})",
                         path=path, line=line, field="reasoning" if reason == "no_reasoning" else None)
    return samples, dropped


def sample_of(rec: dict, line: int, path: str | Path, system_prompt: str | None = None,
              require_reasoning: bool = True) -> tuple[Sample | None, str]:
    """One record as :func:`read_samples` reads it: the sample, or None and why it is dropped."""
    sample, reason = _to_sample(rec, line, path, system_prompt)
    if sample is not None and require_reasoning and not sample.reasoning and "</think>" not in sample.content:
        return None, "no_reasoning"
    return sample, reason


def _to_sample(rec: dict, line: int, path: str | Path, system_prompt: str | None) -> tuple[Sample | None, str]:
    if rec.get("error"):
        return None, "teacher_error"
    verdict = rec.get("verdict")
    if isinstance(verdict, dict) and verdict.get("correct") is False:
        return None, "verdict_wrong"
    messages = rec.get("messages")
    if not isinstance(messages, list) or not messages:
        if isinstance(rec.get("question"), str):  # a trace without the sent messages
            messages = [{"role": "user", "content": rec["question"]}]
        else:
            raise InputError("expected a 'messages' list (or a 'question')", path=path, line=line, field="messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg or not isinstance(msg.get("content"), str):
            raise InputError(f"message {i} needs 'role' and string 'content'", path=path, line=line,
                             field="messages")
    if messages[-1]["role"] == "assistant":  # chat-messages record
        turn = messages[-1]
        reasoning = turn.get("reasoning_content") or turn.get("reasoning")
        context, content = messages[:-1], turn["content"]
    else:  # kept trace: the reply is in reasoning + content
        reasoning, content = rec.get("reasoning"), rec.get("content")
        context = messages
    if not isinstance(content, str) or not content.strip():
        return None, "no_content"
    user = [m for m in context if m["role"] == "user"]
    if not user:
        raise InputError("no user message", path=path, line=line, field="messages")
    if messages[-1]["role"] == "assistant":
        prompt = [{"role": m["role"], "content": m["content"]} for m in context]
        if system_prompt and prompt[0]["role"] != "system":
            prompt.insert(0, {"role": "system", "content": system_prompt})
    else:
        prompt = build_messages(user[-1]["content"], system_prompt)
    return Sample(line, prompt, reasoning if isinstance(reasoning, str) else None, content), ""


def encode_samples(samples: list[Sample], tokenizer: Any, fmt: str, max_length: int,
                   overlong: str = "drop", generation_config: Any = None) -> Encoded:
    """Render and tokenize every sample; drop or cut the ones longer than ``max_length``."""
    stops = stop_token_ids(tokenizer, generation_config)
    out = Encoded([], [])
    for sample in samples:
        ex = render_example(tokenizer, sample.prompt_messages, sample.reasoning, sample.content, fmt, stops)
        n = len(ex.input_ids)
        out.longest = max(out.longest, n)
        if n > max_length:
            out.overlong += 1
            if overlong == "drop" or len(ex.prompt_ids) >= max_length:
                out.dropped["too_long"] += 1
                continue
            # Cut the end of the completion: the example keeps its start, loses its EOS.
            ex.completion_ids = ex.completion_ids[: max_length - len(ex.prompt_ids)]
            ex.problems.append("truncated")
            out.truncated += 1
        out.examples.append(ex)
        out.lines.append(sample.line)
    return out


def split_heldout(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for training and for held-out eval loss (at least one of each when asked)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = min(n - 1, max(1, round(n * fraction))) if fraction > 0 and n > 1 else 0
    return sorted(order[k:]), sorted(order[:k])


def plan_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, window: int = 64) -> list[list[int]]:
    """Micro-batches of example indices, similar lengths together, in a seeded random order.

    Shuffle, sort within windows of ``window`` batches by length, cut into batches, shuffle the
    batches: padded batches waste little, packed rows have similar attention cost, and the order
    is a pure function of (seed, epoch), which is what makes resuming exact.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[Rendered], packing: bool, pad_id: int) -> dict[str, Any]:
    """Tensors for one micro-batch: one packed row, or padded rows with an attention mask.

    Packed: position ids restart per example, ``cu_seq_lens_q`` marks the boundaries, and only
    the positions that predict a trained token get logits (``logits_to_keep``), so neither
    prompt positions nor padding cost a vocabulary projection.
    """
    import torch

    if packing:
        ids: list[int] = []
        pos: list[int] = []
        keep: list[int] = []
        targets: list[int] = []
        cuts = [0]
        for ex in examples:
            start, p, c = len(ids), len(ex.prompt_ids), len(ex.completion_ids)
            ids += ex.input_ids
            pos += range(p + c)
            keep += range(start + p - 1, start + p + c - 1)  # position t predicts token t + 1
            targets += ex.completion_ids
            cuts.append(len(ids))
        return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([pos]),
                "cu_seq_lens_q": torch.tensor(cuts, dtype=torch.int32),
                "logits_to_keep": torch.tensor(keep), "targets": torch.tensor(targets)}
    width = max(len(ex.input_ids) for ex in examples)
    ids = [ex.input_ids + [pad_id] * (width - len(ex.input_ids)) for ex in examples]
    labels = [ex.labels + [-100] * (width - len(ex.input_ids)) for ex in examples]
    mask = [[1] * len(ex.input_ids) + [0] * (width - len(ex.input_ids)) for ex in examples]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
