"""Render chat turns for the student exactly as finetune trains them and eval prompts them (pure text).

Usage:
    from distill.render import build_messages, render_prompt, encode_prompt, render_example
    prompt = render_prompt(tokenizer, "What is 2+3?")           # with the generation prompt
    ids = encode_prompt(tokenizer, "What is 2+3?")              # the token ids eval should feed
    ex = render_example(tokenizer, build_messages("What is 2+3?"), "2+3=5", "\\boxed{5}")
    ex.input_ids, ex.labels                                     # -100 outside the assistant turn

The prompt is the template rendered with ``add_generation_prompt=True`` and tokenized without
extra special tokens (templates carry their own BOS), so training sees the very token ids eval
and inference will feed. The completion is what follows in the full conversation, cut right
after the token that ends the assistant turn; loss falls on the completion only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The user turn when a recipe names no template (DeepSeek-R1's recommended instruction).
DEFAULT_PROMPT = "{question}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
DEFAULT_FORMAT = "<think>\n{reasoning}\n</think>\n\n{content}"
_REASONING_KEYS = ("reasoning_content", "thinking")


@dataclass
class Rendered:
    """One training example: token ids, labels and what the lint needs to judge it."""

    prompt_ids: list[int]
    completion_ids: list[int]
    prompt_text: str
    completion_text: str
    problems: list[str] = field(default_factory=list)  # machine words: reasoning_dropped, no_turn_end, ...

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids

    @property
    def labels(self) -> list[int]:
        return [-100] * len(self.prompt_ids) + list(self.completion_ids)


def build_messages(question_or_user_message: str, system_prompt: str | None = None) -> list[dict]:
    """The student's prompt turns: an optional system message, then the user message."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": question_or_user_message}]


def render_prompt(tokenizer: Any, user_message: str, system_prompt: str | None = None) -> str:
    """The prompt text with the generation prompt, exactly as finetune trained it."""
    return _apply(tokenizer, build_messages(user_message, system_prompt), add_generation_prompt=True)


def encode_prompt(tokenizer: Any, user_message: str, system_prompt: str | None = None) -> list[int]:
    """Token ids of :func:`render_prompt` (no extra BOS: the template already has its own)."""
    return tokenizer(render_prompt(tokenizer, user_message, system_prompt), add_special_tokens=False)["input_ids"]


def format_assistant(reasoning: str | None, content: str, fmt: str = DEFAULT_FORMAT) -> str:
    """``<think>\\n{reasoning}\\n</think>\\n\\n{content}`` (or ``fmt``); the content alone without reasoning."""
    if not reasoning:
        return content
    return fmt.replace("{reasoning}", reasoning).replace("{content}", content)


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> set[int]:
    """Ids generation stops on: the tokenizer's EOS and the generation config's EOS list."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    eos = getattr(generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return ids


def render_example(tokenizer: Any, prompt_messages: list[dict], reasoning: str | None, content: str,
                   fmt: str = DEFAULT_FORMAT, stop_ids: set[int] | None = None) -> Rendered:
    """Render prompt + assistant turn; the completion ends with the token that closes the turn.

    Templates that place reasoning themselves (a ``reasoning_content`` or ``thinking`` field, as
    Qwen3's does) get it in that field; others get it inside the content through ``fmt``.
    """
    reasoning = (reasoning or "").strip() or None
    content = (content or "").strip()
    stop_ids = stop_ids if stop_ids is not None else stop_token_ids(tokenizer)
    template = tokenizer.chat_template or ""
    key = next((k for k in _REASONING_KEYS if k in template), None)
    if key and reasoning:
        turn = {"role": "assistant", "content": content, key: reasoning}
    else:
        turn = {"role": "assistant", "content": format_assistant(reasoning, content, fmt)}
    prompt = _apply(tokenizer, prompt_messages, add_generation_prompt=True)
    full = _apply(tokenizer, prompt_messages + [turn], add_generation_prompt=False)
    problems: list[str] = []
    if not full.startswith(prompt):
        problems.append("prompt_mismatch")  # the template renders the prompt differently once answered
        prompt = _common_prefix(prompt, full)
    completion = full[len(prompt):]
    if reasoning and reasoning not in completion:
        problems.append("reasoning_dropped")
    end = completion.rfind(content) + len(content) if content and content in completion else -1
    if end < 0:
        problems.append("content_dropped")
        end = len(completion.rstrip())
    body, tail = completion[:end], completion[end:]
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    tail_ids = encode(tail)
    turn_end = next((t for t in tail_ids if tokenizer.decode([t]).strip()), None)
    if turn_end is None:
        problems.append("no_turn_end")
        turn_end = tokenizer.eos_token_id
    elif turn_end not in stop_ids:
        problems.append("turn_end_not_eos")
    prompt_ids = encode(prompt)
    completion_ids = encode(body) + [turn_end]
    return Rendered(prompt_ids, completion_ids, prompt, body + tokenizer.decode([turn_end]), problems)


def _apply(tokenizer: Any, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
