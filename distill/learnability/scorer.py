"""Score traces with the student: render them as finetune does, one packed forward pass per batch (torch).

Usage:
    identify(cfg)                                    # resolve the student and its key only (no weights loaded)
    scorer = Scorer.load(cfg)                        # cfg: a ScoringConfig (student, rendering, settings)
    encoded = scorer.encode(samples)                 # finetune's own render + length rule
    scores = scorer.score(encoded.examples)          # one dict per example (see scores.trace_scores)
    scorer.key, scorer.identity                      # what the scores were computed for

The examples are the ones finetune would build from the same records (``distill.examples``:
same chat template fallback, reasoning format, system prompt, max length rule), batched as
finetune's packed rows (``collate(..., packing=True)``): logits are computed only at positions
that predict a trained token, so prompt tokens are never scored. Local naturalness needs each
later step read again after a short window; the first ``window + 1`` steps see exactly their
full-pass context, so their values are taken from the full pass instead of recomputed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from distill.code_key import closure_digest
from distill.errors import ConfigError
from distill.examples import Encoded, Sample, collate, encode_samples
from distill.hardware import use_bf16
from distill.learnability.config import ScoringConfig
from distill.learnability.scores import step_spans, token_stats, trace_scores
from distill.progress import progress_bar
from distill.records import file_sha256
from distill.render import Rendered
from distill.student import hub_id, load_tokenizer, resolve_student

log = logging.getLogger(__name__)
STEPS = "newline"  # how steps are cut (recorded in the key: another rule gives other values)
Identified = tuple[Path, Any, Any, dict, bool]  # identify's answer: folder, tokenizer, generation config, identity, bf16


class Scorer:
    """A loaded student plus the settings its scores depend on."""

    def __init__(self, cfg: ScoringConfig, model: Any, tokenizer: Any, gen_cfg: Any, identity: dict,
                 bf16: bool, progress: bool = False):
        self.cfg, self.model, self.tokenizer, self.gen_cfg = cfg, model, tokenizer, gen_cfg
        self.identity, self.bf16, self.progress = identity, bf16, progress
        # The key is what the student is (its bytes), not what it was called: an alias and the folder
        # it resolves to give the same key.
        named = {k: v for k, v in identity.items() if k not in ("student", "hub_id")}
        self.key = hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:16]
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, cfg: ScoringConfig, progress: bool = False, identified: Identified | None = None) -> Scorer:
        """Resolve and load the student (packed attention, eval mode) and compute its key; ``identified``:
        :func:`identify`'s answer for ``cfg`` when the caller has it (the tokenizer is not read again)."""
        from transformers import AutoModelForCausalLM

        from distill.packing import use_packed_attention

        path, tokenizer, gen_cfg, identity, bf16 = identified or identify(cfg)
        cuda = torch.cuda.is_available()
        # As finetune: bf16 weights on a bf16 GPU, else float32 weights under bf16 autocast.
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 and cuda else torch.float32)
        use_packed_attention(model)
        model.eval().to("cuda" if cuda else "cpu")
        return cls(cfg, model, tokenizer, gen_cfg, identity, bf16, progress)

    def encode(self, samples: list[Sample]) -> Encoded:
        """finetune's rendering of ``samples``; examples over max_length are dropped or cut as there."""
        return encode_samples(samples, self.tokenizer, self.cfg.reasoning_format, self.cfg.max_length,
                              self.cfg.overlong, self.gen_cfg)

    def score(self, examples: list[Rendered]) -> list[dict]:
        """The scores of each example, in order."""
        full = self.token_values(examples, desc="score")
        spans = [step_spans(ex.completion_ids, self.tokenizer) if self.cfg.local_naturalness else []
                 for ex in examples]
        later = self._windowed(examples, spans)
        out = []
        for i, (nll, rank) in enumerate(full):
            steps = []
            for k, (a, b) in enumerate(spans[i]):
                part = nll[a:b] if k <= self.cfg.window else later[(i, k)]
                steps.append(-float(part.double().mean()))
            out.append(trace_scores(nll, rank, steps))
        return out

    def token_values(self, examples: list[Rendered], desc: str = "") -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(surprisal, clipped rank) of every trained token of each example, in order."""
        results: list[Any] = [None] * len(examples)
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
        batches = _by_tokens(order, [len(ex.input_ids) for ex in examples], self.cfg.batch_tokens)
        with progress_bar(len(examples), desc, "trace", self.progress and bool(desc)) as bar:
            for batch in batches:
                for i, value in zip(batch, self._forward([examples[i] for i in batch])):
                    results[i] = value
                bar.update(len(batch))
        return results

    @torch.no_grad()
    def _forward(self, examples: list[Rendered]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batch = collate(examples, packing=True, pad_id=self.tokenizer.pad_token_id)
        targets = batch.pop("targets")
        batch = {k: v.to(self.device) if k != "cu_seq_lens_q" else v for k, v in batch.items()}
        with self._autocast():
            logits = self.model(**batch, use_cache=False).logits[0]
        nll, rank = token_stats(logits, targets, self.cfg.rank_clip)
        sizes = [len(ex.completion_ids) for ex in examples]
        return list(zip(nll.split(sizes), rank.split(sizes)))

    def _windowed(self, examples: list[Rendered], spans: list[list[tuple[int, int]]]) -> dict:
        """(example, step) -> surprisals of that step read after the prompt and ``window`` steps only."""
        w = self.cfg.window
        jobs, parts = [], []
        for i, ex in enumerate(examples):
            for k in range(w + 1, len(spans[i])):
                a, b = spans[i][k]
                context = ex.prompt_ids + ex.completion_ids[spans[i][k - w][0]:a]
                parts.append(Rendered(context, ex.completion_ids[a:b], "", ""))
                jobs.append((i, k))
        values = self.token_values(parts, desc="steps" if parts else "")
        return {job: nll for job, (nll, _) in zip(jobs, values)}

    def _autocast(self) -> Any:
        if self.bf16 and self.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def identify(cfg: ScoringConfig) -> Identified:
    """Resolve the student and compute what its key needs, weights read but not loaded (cheap: a
    bad student fails here, before a caller pays for anything): (folder, tokenizer, generation
    config, identity, bf16)."""
    if not cfg.student:
        raise ConfigError("no student to score for: set learnability.student (or student=)")
    path = resolve_student(cfg.student)
    tokenizer, gen_cfg = load_tokenizer(path, cfg.chat_template)
    bf16 = use_bf16(cfg.bf16)
    return path, tokenizer, gen_cfg, scoring_identity(cfg, path, tokenizer, bf16), bf16


def scoring_identity(cfg: ScoringConfig, path: Path, tokenizer: Any, bf16: bool) -> dict:
    """Everything a score depends on: the weights' bytes, the vocabulary, the template, the settings, the
    precision and the scoring code (every distill module this one can import: distill.code_key)."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode()
    return {
        "student": str(cfg.student), "hub_id": hub_id(cfg.student), "weights": weights_digest(path),
        "vocab": hashlib.sha256(vocab).hexdigest()[:16],
        "chat_template": hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()[:16],
        "eos": tokenizer.eos_token, "reasoning_format": cfg.reasoning_format, "system_prompt": cfg.system_prompt,
        "max_length": cfg.max_length, "overlong": cfg.overlong, "rank_clip": cfg.rank_clip,
        "local_naturalness": cfg.local_naturalness, "window": cfg.window, "steps": STEPS,
        "precision": "bf16" if bf16 else "fp32", "code": closure_digest(__name__)[:16],
    }


def weights_digest(path: Path) -> str:
    """SHA-256 over the folder's weight files (so two folders of the same weights agree)."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        raise ConfigError(f"{path}: no weight files (*.safetensors, *.bin) to identify the student by")
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(_file_digest(str(file), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def _by_tokens(order: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive groups of ``order`` whose lengths sum to at most ``budget`` (at least one each)."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + lengths[i] > budget:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        batches.append(current)
    return batches
