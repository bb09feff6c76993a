"""Verified accuracy during finetune: score a dev problem set at each eval step, keep the best step's adapter.

Usage:
    scorer = DevScorer.load(cfg, student_path, tokenizer, out)   # cfg.eval_problems set; main process only
    row.update(scorer.score(peft_model, step))                     # {"dev_pass@1": 0.4, ...} beside the loss
    scorer.restore_best(peft_model)                                # the best step's weights back in the model
    record.metrics["checkpoint"] = scorer.keep(peft_model, last_step, cfg.keep_best)   # restore (or not) + summary
    record.metrics["checkpoint"] = scorer.summary(last_step)       # which step was kept, and why

Loss is not the target; verified accuracy is. At each eval step the adapter as it is is saved,
merged into a copy of the base weights and made to answer the dev problems greedily, in batches,
by :class:`distill.decode.backends.LocalBackend`, and scored by the same verifier as ``distill
eval`` (:func:`distill.scoring.score`). The step ranked by sound accuracy where the
metrics have it (the soundness module), else by pass@1; ties keep the earlier step (fewer steps
for the same score). The dev set must not be the held-out test set: choosing on it would make
the held-out figure in-sample.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from distill.layout import AdapterFiles
from distill.records import JsonlAppender, write_json_atomic

log = logging.getLogger(__name__)

BEST = "dev-best"  # folder in out/checkpoints: the best step's adapter and best.json


class DevScorer:
    """Greedy batched answers to the dev problems, verified; remembers the best step seen."""

    def __init__(self, backend: Any, problems: list[dict], prompt_template: str, source: str, out: Path):
        self.backend, self.problems, self.out = backend, problems, out
        self.prompt_template, self.source = prompt_template, source
        self.best_dir = AdapterFiles(out).checkpoints / BEST
        self.best: dict | None = None
        self.scored = 0
        if (self.best_dir / "best.json").is_file():  # a resumed run continues the comparison
            self.best = json.loads((self.best_dir / "best.json").read_text(encoding="utf-8"))

    @classmethod
    def load(cls, cfg: Any, student_path: Path, tokenizer: Any, out: Path) -> DevScorer:
        """Read the dev problems and load a second, frozen copy of the base for generation."""
        import torch

        from distill.decode.backends import DecodeOptions, LocalBackend
        from distill.finetune.outputs import trained_prompt_template
        from distill.render import DEFAULT_PROMPT
        from distill.sources import SourceConfig, load_problems
        from distill.student import load_student

        decoding = DecodeOptions(student=str(student_path), max_new_tokens=cfg.eval_max_new_tokens,
                                 batch_size=cfg.eval_batch_size, system_prompt=cfg.system_prompt)
        problems = load_problems(SourceConfig(problems=cfg.eval_problems, split="test", limit=cfg.eval_limit))
        if not problems:
            from distill.errors import InputError

            raise InputError("no dev problems to score", path=cfg.eval_problems, field="eval_problems")
        base, _ = load_student(str(student_path), adapter=None,
                               dtype=cfg_dtype(torch))
        # The backend sets left padding on its tokenizer: a copy, so training's tokenizer is untouched.
        backend = LocalBackend(base, copy.deepcopy(tokenizer), decoding)
        log.info("dev: %d problems from %s scored with the verifier at each eval step", len(problems),
                 cfg.eval_problems)
        return cls(backend, problems, trained_prompt_template(cfg.data) or DEFAULT_PROMPT, str(cfg.eval_problems), out)

    def score(self, model: Any, step: int) -> dict[str, float]:
        """Save the adapter as it is at ``step``, answer and verify the dev set; keep it when best."""
        from distill.decode.backends import Job
        from distill.estimates import summarise
        from distill.metrics import metric_rows
        from distill.scoring import score

        current = AdapterFiles(self.out).checkpoints / f".dev-step-{step}"
        shutil.rmtree(current, ignore_errors=True)
        model.save_pretrained(current)
        was_training = model.training
        self.backend.apply_adapter(str(current))
        records: list[dict] = []
        jobs = [Job(p, 0, self.prompt_template.format(question=p["question"])) for p in self.problems]
        self.backend.run(jobs, lambda job, ans: records.append(
            score(job, ans, "dev", str(job.problem.get("source") or "dev"))))
        self.backend.model = None  # the merged copy is not needed until the next eval step
        if was_training:
            model.train()
        with JsonlAppender(AdapterFiles(self.out).dev_outputs) as sink:  # every answer, to read what was chosen
            for rec in records:
                sink.write({**rec, "step": step})
        metrics = summarise(records)
        self.scored += 1
        row = {f"dev_{r.key}": round(r.after.value, 6) for r in metric_rows(metrics, sections=("accuracy",))}
        by = "sound" if "dev_sound" in row else "pass@1"
        value = row[f"dev_{by}"]
        if self.best is None or value > self.best["value"]:
            shutil.rmtree(self.best_dir, ignore_errors=True)
            current.rename(self.best_dir)
            self.best = {"step": step, "by": by, "value": value, **row}
            write_json_atomic(self.best_dir / "best.json", self.best)
        else:
            shutil.rmtree(current, ignore_errors=True)
        log.info("dev step %d: %s (best: step %d, %s %.3f)", step,
                 ", ".join(f"{k} {v:.3f}" for k, v in row.items()), self.best["step"], by, self.best["value"])
        return row

    def restore_best(self, model: Any) -> int | None:
        """Load the best step's adapter weights into ``model``; returns that step (None: nothing scored)."""
        if self.best is None:
            return None
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = self.best_dir / "adapter_model.safetensors"
        set_peft_model_state_dict(model, load_file(str(weights)))
        return int(self.best["step"])

    def keep(self, model: Any, last_step: int, keep_best: bool) -> dict:
        """End of training: restore the best step's adapter (``keep_best``); say which step was kept, and why."""
        if not keep_best:
            return {**self.summary(last_step), "kept_step": last_step, "by": "last step (keep_best=false)"}
        kept = self.restore_best(model)
        if kept is not None and kept != last_step:
            log.info("keeping the adapter of step %d (best dev %s), not the last step's", kept, self.best["by"])
        return self.summary(last_step)

    def summary(self, last_step: int) -> dict:
        """For the AdapterRecord: which step is saved and by which dev metric."""
        if self.best is None:
            return {"kept_step": last_step, "by": "last step", "dev_problems": len(self.problems)}
        note = None if self.best["by"] == "sound" else \
            "sound accuracy not available in this distill: chosen by pass@1"
        return {"kept_step": self.best["step"], "last_step": last_step, "by": f"dev {self.best['by']}",
                "dev_value": self.best["value"], "dev_problems": len(self.problems),
                "dev_source": self.source, "note": note}


def cfg_dtype(torch: Any) -> str:
    """The base for dev generation loads as eval's does: float32 on a CPU (merge at full precision)."""
    return "auto" if torch.cuda.is_available() else "float32"
