"""Whether an adapter belongs on a student, and whether two model references name the same model.

Usage:
    from distill.evaluate.basemodel import check_adapter_base, same_model
    check_adapter_base("out/adapter", "smollm2")  # raises InputError if the adapter was trained on another model
    same_model("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct")   # True

An adapter applied to another base loads without complaint when the shapes happen to match and
produces garbage, so the mismatch is refused up front. The adapter's record
(:class:`distill.artifacts.AdapterRecord`) names its base as given, as a folder and as a Hub id;
a PEFT adapter made elsewhere has only adapter_config.json's ``base_model_name_or_path``.
References are compared robustly: the same folder by resolved path, two copies of a model by a
fingerprint of config.json and weight samples, a Hub name against a local folder of that name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from distill.artifacts import AdapterRecord
from distill.errors import InputError
from distill.student import ALIASES

log = logging.getLogger(__name__)


def adapter_bases(adapter: str | Path) -> list[str]:
    """The base-model references an adapter folder states: its record's, else adapter_config.json's."""
    folder = Path(adapter)
    if AdapterRecord.exists(folder):
        record = AdapterRecord.read(folder)
        return [ref for ref in (record.student, record.base_path, record.base_model) if ref]
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise InputError("not an adapter folder (no adapter_config.json)", path=folder)
    base = _read_json(config).get("base_model_name_or_path")
    return [base] if isinstance(base, str) and base else []


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable JSON ({exc})", path=path) from None
    return data if isinstance(data, dict) else {}


def check_adapter_base(adapter: str | Path, student: str) -> None:
    """Raise :class:`InputError` when the adapter names its base and ``student`` is not it."""
    bases = adapter_bases(adapter)
    if not bases:
        log.warning("%s records no base model; cannot check it matches %s", adapter, student)
        return
    if any(same_model(base, student) for base in bases):
        return
    raise InputError(f"this adapter was trained on {bases[0]!r}, not on student={student!r}; "
                     "pass the matching student= (an adapter on another base model produces garbage)",
                     path=adapter)


def same_model(a: str, b: str) -> bool:
    """Do two references (alias, Hub name, folder, .gguf) name the same model?"""
    if a == b:
        return True
    pa, pb = _local_path(a), _local_path(b)
    if pa is not None and pb is not None:
        return pa == pb or _fingerprint(pa) == _fingerprint(pb) != None  # noqa: E711 (None means unknown)
    names_a, names_b = _names(a, pa), _names(b, pb)
    return bool(names_a & names_b)


def _local_path(ref: str) -> Path | None:
    """The resolved local folder for ``ref`` if it is (or resolves without network to) one."""
    path = Path(os.path.expanduser(ref))
    if path.exists():
        return path.resolve()
    if ref in ALIASES or ref.endswith(".gguf"):
        try:
            from distill.student import resolve_student

            return Path(resolve_student(ref)).resolve()
        except Exception as exc:  # noqa: BLE001 (an unresolvable alias just compares by name)
            log.debug("could not resolve %s: %s", ref, exc)
    return None


def _names(ref: str, path: Path | None) -> set[str]:
    """Comparable names: a Hub id and its last part, lower-cased; aliases expanded."""
    key = ref.strip().rstrip("/").lower()
    alias = ALIASES.get(ref.strip())
    names = {key, alias.hub_id.lower() if alias else key}
    names |= {n.rsplit("/", 1)[-1] for n in list(names)}
    if path is not None:
        names.add(path.name.lower())
        recorded = _recorded_name(path)
        if recorded:
            names |= {recorded, recorded.rsplit("/", 1)[-1]}
    names.discard("")
    return names


def _recorded_name(path: Path) -> str | None:
    config = path / "config.json" if path.is_dir() else None
    if config is not None and config.is_file():
        name = _read_json(config).get("_name_or_path")
        if isinstance(name, str) and name and not Path(name).is_absolute():
            return name.lower()
    return None


def _fingerprint(path: Path) -> tuple | None:
    """config.json (minus bookkeeping keys) and the weight files' sizes: equal for two copies of a model."""
    config = path / "config.json" if path.is_dir() else None
    if config is None or not config.is_file():
        return None
    data = {k: v for k, v in _read_json(config).items() if k not in ("_name_or_path", "transformers_version")}
    files = sorted([*path.glob("*.safetensors"), *path.glob("*.bin")])
    return json.dumps(data, sort_keys=True, default=str), tuple((p.name, _sample_digest(p)) for p in files)


def _sample_digest(path: Path, probes: int = 8, width: int = 1 << 16) -> str:
    """Hash of a few slices spread over a weight file: two fine-tunes of one architecture have the
    same sizes, so sizes alone would call them equal; reading a few slices is cheap even for GBs."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        for i in range(probes):
            handle.seek(max(0, size - width) * i // max(1, probes - 1))
            digest.update(handle.read(width))
    return digest.hexdigest()
