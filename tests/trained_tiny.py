"""Tiny students that answer a known way: trained here in a second so eval accuracy is predictable.

Usage:
    from trained_tiny import make_answering_student, train_answer_adapter
    student = make_answering_student(tmp_path / "s", answer="7", questions=qs)  # reply ends \\boxed{7}
    adapter = train_answer_adapter(student, tmp_path / "a", answer="8")  # with the adapter: \\boxed{8}

A random tiny model emits noise, so accuracy would be 0 for any gold. Fitting it (or a LoRA
adapter) to always reply ``<think>\\nadd\\n</think>\\n\\n\\boxed{N}`` gives known answers: a
problem whose gold is N is right, every other is wrong.
"""

from __future__ import annotations

from pathlib import Path

from tiny_student import make_tiny_student

PROMPTS = ["What is 1+1?", "Add 2 and 3, then multiply by 4. What is the result?", "3*3?",
           "Compute 12 + 7 * 3 and explain each step carefully."]


def _batch(tokenizer, answer: str, questions: list[str], reasoning: str = "add"):
    import torch

    from distill.render import encode_prompt
    from distill.render import DEFAULT_PROMPT

    target = tokenizer(f"<think>\n{reasoning}\n</think>\n\n\\boxed{{{answer}}}", add_special_tokens=False).input_ids
    rows = [(encode_prompt(tokenizer, DEFAULT_PROMPT.format(question=q)), target + [tokenizer.eos_token_id])
            for q in questions]
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        ids[i, :n], labels[i, len(p):n], mask[i, :n] = torch.tensor(p + c), torch.tensor(c), 1
    return ids, mask, labels


def _fit(model, tokenizer, answer: str, steps: int, lr: float, questions: list[str] | None,
         reasoning: str = "add") -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 30k-parameter model: a second thread only adds contention on a busy CI box
    torch.manual_seed(0)
    ids, mask, labels = _batch(tokenizer, answer, list(questions or PROMPTS), reasoning)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    torch.set_num_threads(threads)


def make_answering_student(path: str | Path, answer: str = "7", seed: int = 0,
                           questions: list[str] | None = None, reasoning: str = "add", steps: int = 120) -> Path:
    """A tiny student (ChatML, EOS <|im_end|>) whose greedy reply to any question is
    ``<think>\\n{reasoning}\\n</think>`` then \\boxed{answer}."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = make_tiny_student(path, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    _fit(model, tokenizer, answer, steps=steps, lr=1e-2, questions=questions, reasoning=reasoning)
    model.save_pretrained(path)
    return Path(path)


def train_answer_adapter(student: str | Path, path: str | Path, answer: str = "8",
                         questions: list[str] | None = None) -> Path:
    """A LoRA adapter on ``student`` that makes it answer \\boxed{answer}; saved like finetune saves one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(student)
    model = AutoModelForCausalLM.from_pretrained(student)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0))
    _fit(model, tokenizer, answer, steps=100, lr=1e-2, questions=questions)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    from distill.artifacts import AdapterRecord
    from distill.render import DEFAULT_PROMPT
    from distill.render import DEFAULT_FORMAT

    AdapterRecord(student=str(student), base_model=None, base_path=str(Path(student).resolve()), base_weights=None,
                  prompt_template=DEFAULT_PROMPT, system_prompt=None, reasoning_format=DEFAULT_FORMAT,
                  chat_template=tokenizer.chat_template, data={"examples": len(questions or PROMPTS)},
                  hyperparameters={"lora": {"r": 16, "alpha": 32, "dropout": 0.0}, "steps": 100, "lr": 1e-2}
                  ).write(path)
    return Path(path)
