"""A tiny random Llama with a tokenizer trained here (ChatML, EOS <|im_end|>): the benches' ``--student tiny``.

Usage:
    from tiny_model import make_tiny_student            # a bench script's own folder is on sys.path
    path = make_tiny_student(tmp / "student", hidden_size=256, layers=4)

The benches' side of what tests/tiny_student.py is for the tests: benches and tests do not import
each other, so each side builds its own. Same recipe (byte-level BPE of ~320 tokens on a small
built-in corpus, seed 0), so the figures the README cites for ``--student tiny`` stay comparable.
Nothing is downloaded.
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


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    extra = ["<think>", "</think>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                                                  "<|pad|>", *extra],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|pad|>", unk_token="<|endoftext|>", additional_special_tokens=extra)


def make_tiny_student(path: str | Path, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a tiny random Llama + tokenizer + ChatML template to ``path`` and return it."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = _tokenizer()
    tokenizer.chat_template = CHATML
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
        num_key_value_heads=2, intermediate_size=hidden_size * 2, max_position_embeddings=2048,
        tie_word_embeddings=True, **ids))
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
