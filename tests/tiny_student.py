"""A tiny random causal LM with a tokenizer trained here and a ChatML template: a student for tests.

Usage:
    from tiny_student import make_tiny_student
    path = make_tiny_student(tmp_path / "student")            # Llama, ChatML, EOS <|im_end|>
    path = make_tiny_student(tmp_path / "q", arch="qwen2", chat_template=None)

Nothing is downloaded: the byte-level BPE tokenizer is trained in a second on a built-in corpus.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "How many r's are in strawberry? Let me spell it: s-t-r-a-w-b-e-r-r-y. There are 3.",
    "Which is greater, 9.11 or 9.8? Align the decimals: 9.11 and 9.80, so 9.8 is greater.",
    "Compute 12 + 7 * 3. First 7 * 3 = 21, then 12 + 21 = 33. The answer is \\boxed{33}.",
    "<think> step by step reasoning </think> final answer 0 1 2 3 4 5 6 7 8 9 + - * / = ( )",
    "user assistant system question answer reasoning think the a of is and to in",
]


def train_tokenizer(extra_tokens: tuple[str, ...] = ("<think>", "</think>")):
    """A byte-level BPE tokenizer (vocab ~300) with ChatML special tokens and a pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials + list(extra_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>",
        unk_token="<|endoftext|>", additional_special_tokens=list(extra_tokens) or None,
    )


def make_tiny_student(path: str | Path, arch: str = "llama", chat_template: str | None = CHATML,
                      seed: int = 0, hidden_size: int = 32, layers: int = 2) -> Path:
    """Save a tiny random model + tokenizer (+ chat template) to ``path`` and return it."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    tokenizer = train_tokenizer()
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
                  num_attention_heads=2, num_key_value_heads=2, intermediate_size=hidden_size * 2,
                  max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  tie_word_embeddings=True)
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(f"unknown arch {arch!r}")
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id,
                                               bos_token_id=tokenizer.bos_token_id)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
