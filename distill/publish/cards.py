"""Model and dataset cards written from the run records (see provenance.gather), never typed by hand.

Usage:
    from distill.publish.cards import model_card, dataset_card
    text = model_card(facts, repo_id="me/smollm2-distill", dataset_repo_id="me/traces", license="apache-2.0",
                      tags=[])
    text = dataset_card(facts, repo_id="me/traces", license="apache-2.0", rows=812, columns=["id", "question"],
                        tags=[])

Both start with YAML metadata the Hub reads (base_model, library_name: peft, pipeline_tag, tags,
datasets, license, model-index with the eval results; for datasets: configs, task_categories,
size_categories), then say how the artefact was made, with every figure taken from a record.
"""

from __future__ import annotations

import json
from typing import Any

from huggingface_hub import DatasetCardData, EvalResult, ModelCardData

from distill.evaluate.metrics import FAMILY_HEADER, family_rows
from distill.generate.config import DEFAULT_PROMPT
from distill.learnability.store import card_lines
from distill.publish.provenance import public_name

TAGS = ["distill", "reasoning", "distillation", "lora", "peft"]


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}%"


def _flat(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((prefix + key, value))
    return rows


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _eval_results(facts: dict, model_name: str) -> list[EvalResult]:
    report = facts.get("eval") or {}
    metrics = report.get("metrics") or {}
    if not metrics:
        return []
    source = str(public_name((report.get("settings") or {}).get("problems")) or "eval problems")
    common = dict(task_type="text-generation", task_name="reasoning", dataset_type=source, dataset_name=source,
                  dataset_split=(report.get("settings") or {}).get("split"))
    results = [EvalResult(metric_type="pass@1", metric_name="pass@1 (base + adapter)",
                          metric_value=round(100 * metrics["pass@1"], 2), **common)]
    compare = report.get("compare") or {}
    if compare.get("before") is not None:
        results.append(EvalResult(metric_type="pass@1", metric_name="pass@1 (base model, same problems)",
                                  metric_value=round(100 * compare["before"], 2), **common))
    return results


def _how_made(facts: dict) -> list[str]:
    teacher, usage, stats = facts["teacher"], facts["usage"], facts["stats"]
    lines = ["## How it was made", ""]
    if teacher.get("model"):
        hosts = ", ".join(teacher["endpoint_hosts"]) or "unknown host"
        lines.append(f"- **Teacher**: `{teacher['model']}` at {hosts}" +
                     (f" (provider: {teacher['provider']})" if teacher.get("provider") else ""))
    if teacher.get("sampling"):
        lines.append("- **Sampling**: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in teacher["sampling"].items()
                                                    if k not in ("prompt_template", "system_prompt")))
    if facts.get("problems_source"):
        lines.append("- **Problems**: " + ", ".join(f"{k}={v}" for k, v in facts["problems_source"].items()))
    if usage["requests"]:
        lines.append(f"- **Teacher usage** ({facts['usage_scope']}): {usage['requests']} responses, "
                     f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens "
                     f"({usage['reasoning_tokens']:,} reasoning), cost ${usage['cost_usd']:.4f}")
    if stats:
        lines.append(f"- **Verifier and filters**: kept {stats.get('kept')} of "
                     f"{(stats.get('kept') or 0) + (stats.get('rejected') or 0)} traces ({_pct(stats.get('kept_share'))})")
        if stats.get("funnel"):
            lines += ["", "Acceptance funnel (from the filter's stats.json):", "",
                      _table([(s["step"], s["dropped"], s["left"]) for s in stats["funnel"]],
                             ("step", "dropped", "left"))]
        if stats.get("verifier"):
            lines += ["", "Verifier verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["verifier"].items()))]
    return lines + [""]


def _eval_section(facts: dict) -> list[str]:
    report = facts.get("eval") or {}
    m = report.get("metrics")
    if not m:
        return ["## Evaluation", "", "No eval report was given (`distill publish eval=DIR`).", ""]
    s = report.get("settings") or {}
    lines = ["## Evaluation", "", f"`distill eval` on `{public_name(s.get('problems'))}` ({m['problems']} problems, "
             f"{s.get('samples', 1)} sample(s) each, max_new_tokens={s.get('max_new_tokens')}, "
             f"temperature={s.get('temperature')}), scored with the same verifier as the filter.", ""]
    c = report.get("compare")
    if c and c.get("difference") is not None:
        ci = c["interval"]
        lines += [_table([("pass@1", _pct(c["before"]), _pct(c["after"]),
                           f"{100 * c['difference']:+.1f} pts [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}]")],
                         ("metric", "base", "base + adapter",
                          f"difference ({int(100 * ci['confidence'])}% {ci['method']} CI)")), ""]
    families = family_rows((c or {}).get("by_family_before"), m.get("by_family"))
    if families:
        lines += ["Per problem family: pass@1, and sound accuracy (correct, and every checkable step of the "
                  "model's reasoning true), with 95% Wilson intervals; chance is always giving the family's "
                  "most common training answer.", "", _table([tuple(r) for r in families], tuple(FAMILY_HEADER)), ""]
    rows = [("pass@1", _pct(m["pass@1"])), ("sound", _pct(m.get("sound")))]
    rows += [(k, _pct(v)) for k, v in m.get("pass@k", {}).items() if k != "pass@1"]
    rows += [("with a final answer", _pct(m["answered"])), ("truncated", _pct(m["truncated"])),
             ("mean reasoning tokens", f"{m['mean_reasoning_tokens']:.0f}")]
    return lines + [_table(rows, ("base + adapter", "value")), ""]


def _base_weights(facts: dict) -> list[str]:
    """Say so when the weights trained on are not the named Hub checkpoint (a de-quantised GGUF)."""
    w = facts.get("base_weights")
    if not w:
        return []
    quant = f"{w['quantisation']}-quantised " if w.get("quantisation") else ""
    base = facts.get("base_model") or "the base model"
    return [f"**Base weights**: the adapter was trained on weights de-quantised from the {quant}GGUF file "
            f"`{w['file']}` (sha256 `{w.get('sha256')}`) to {w.get('dtype') or 'float'}, not on the `{base}` "
            "checkpoint itself. Applied to that checkpoint it behaves close to, but not exactly as, it did in "
            "training and in the evaluation below.", ""]


def _usage_snippet(facts: dict, repo_id: str, merged: bool = False) -> list[str]:
    record = facts.get("finetune") or {}
    system = record.get("system_prompt")
    prompt = record.get("prompt_template") or DEFAULT_PROMPT
    base = facts.get("base_model") or facts.get("base_model_recorded") or "BASE_MODEL"
    messages = ('[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT.format(question=question)}]'
                if system else '[{"role": "user", "content": PROMPT.format(question=question)}]')
    return ["## Usage", "", "The student is prompted exactly as it was trained: the user message template "
            "and system prompt below, in the chat template saved with the tokenizer.", "",
            "```python", *([] if merged else ["from peft import PeftModel"]),
            "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            *([f"model = AutoModelForCausalLM.from_pretrained({repo_id!r})"] if merged else [
                f"base = AutoModelForCausalLM.from_pretrained({base!r})",
                f"model = PeftModel.from_pretrained(base, {repo_id!r})"]),
            f"tokenizer = AutoTokenizer.from_pretrained({repo_id!r})",
            f"PROMPT = {prompt!r}", *([f"SYSTEM = {system!r}"] if system else []),
            'question = "A farmer has 17 sheep and buys 5 more. How many sheep does he have?"',
            f"messages = {messages}",
            "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", "
            "return_dict=True)",
            "out = model.generate(**inputs, max_new_tokens=1024)",
            "print(tokenizer.decode(out[0, inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))",
            "```", "", "Or score it: `distill eval problems=... student=BASE adapter=DIR`.", ""]


def model_card(facts: dict, repo_id: str, dataset_repo_id: str | None, license: str, tags: list[str],
               merged_from: str | None = None) -> str:
    """README.md for the adapter repo (or, with ``merged_from``, for the merged full model)."""
    name = repo_id.split("/")[-1]
    data = ModelCardData(base_model=facts.get("base_model"), library_name="transformers" if merged_from else "peft",
                         pipeline_tag="text-generation",
                         tags=list(dict.fromkeys(TAGS + list(tags))), datasets=[dataset_repo_id] if dataset_repo_id else None,
                         license=license, model_name=name, eval_results=_eval_results(facts, name) or None)
    record = facts.get("finetune") or {}
    hp = record.get("hyperparameters") or {}
    data_info = record.get("data") or {}
    base = facts.get("base_model") or facts.get("base_model_recorded")
    what = f"`{base}` with the LoRA adapter [`{merged_from}`](https://huggingface.co/{merged_from}) merged in" \
        if merged_from else f"A LoRA adapter for `{base}`"
    body = [f"# {name}", "", f"{what}, distilled from a reasoning teacher with "
            "distill: teacher traces, verified final answers only, LoRA fine-tuning.", ""]
    body += _base_weights(facts)
    if dataset_repo_id:
        body += [f"Training data: [`{dataset_repo_id}`](https://huggingface.co/datasets/{dataset_repo_id}).", ""]
    body += _how_made(facts) + _eval_section(facts)
    if facts.get("gate"):  # the regression gate's comparison, stated whether it passed or not
        body += ["## Regression check", "", *[f"- {line}" for line in facts["gate"]], ""]
    if hp:
        skip = ("data", "out", "progress", "resume", "dry_run")
        body += ["## Training", "", f"{data_info.get('examples', data_info.get('train', '?'))} training examples "
                 f"(data sha256 `{str(data_info.get('sha256', ''))[:16]}`).", "",
                 _table([(k, json.dumps(v)) for k, v in _flat(hp) if k.split(".")[0] not in skip],
                        ("hyper-parameter", "value")), ""]
        if record.get("metrics"):
            body += ["Training metrics: " + ", ".join(f"{k}={v}" for k, v in _flat(record["metrics"])), ""]
        if record.get("versions"):
            body += ["Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v), ""]
    body += _usage_snippet(facts, repo_id, merged=merged_from is not None)
    body += ["## Limitations", "",
             "- A small student imitates its teacher's reasoning style on the training distribution; expect "
             "lower accuracy off that distribution and on long problems.",
             "- Only traces whose final answer the rule verifier confirmed were kept: the reasoning itself is not "
             "verified and can contain wrong steps that reach a right answer.",
             "- The eval above uses the problems named there; it says nothing about safety or other tasks.",
             "- Respect the licences and terms of the base model, the teacher's API and the problem source.", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def dataset_card(facts: dict, repo_id: str, license: str, rows: int, columns: list[str], tags: list[str]) -> str:
    """README.md for the trace dataset repo."""
    data = DatasetCardData(license=license, task_categories=["text-generation"], size_categories=_size_category(rows),
                           tags=list(dict.fromkeys(["distill", "reasoning", "synthetic", "distillation"] + list(tags))),
                           pretty_name=repo_id.split("/")[-1],
                           configs=[{"config_name": "default", "data_files": [{"split": "train",
                                                                               "path": "data/train-*.parquet"}]}])
    body = [f"# {repo_id.split('/')[-1]}", "", f"{rows} reasoning traces from a teacher model, each with a final "
            "answer verified against the problem's reference answer, made with distill "
            "(generate -> filter).", ""]
    body += _how_made(facts)
    if facts.get("dataset_sha256"):
        body += [f"Source file sha256: `{facts['dataset_sha256']}`.", ""]
    body += ["## Schema", "", "One row per kept trace (problem id, sample index):", "",
             _table([(c, _COLUMN_HELP.get(c, "")) for c in columns], ("column", "meaning")), ""]
    body += card_lines(facts.get("kept") or [])
    body += ["## Load", "", "```python", "from datasets import load_dataset", "",
             f"ds = load_dataset({repo_id!r}, split=\"train\")",
             "print(ds[0][\"question\"], ds[0][\"reasoning\"], ds[0][\"content\"])", "```", "",
             "## Licence and limitations", "",
             f"Released under `{license}`. The problems keep their source's licence "
             f"({', '.join(f'{k}={v}' for k, v in facts.get('problems_source', {}).items()) or 'see the source'}); "
             "the traces are subject to the teacher provider's terms. Verified answers do not mean verified "
             "reasoning: steps may be wrong even where the final answer is right.", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


_COLUMN_HELP = {
    "id": "problem id", "sample": "sample index for this problem", "question": "the problem",
    "answer": "reference answer", "kind": "answer kind (math, gsm8k, choice, exact, code)",
    "messages": "exactly what was sent to the teacher", "reasoning": "the teacher's chain of thought",
    "content": "the teacher's final answer text", "finish_reason": "why generation stopped",
    "truncated": "cut by the token budget", "model": "model name the endpoint reported",
    "usage": "token counts", "cost_usd": "cost of this response", "verdict": "verifier verdict (correct, extracted, reason)",
    "source": "problem source",
    "learnability": "student-side scores (RSR, local naturalness, mean surprisal) and the student they are for",
}
