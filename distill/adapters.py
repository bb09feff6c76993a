"""An adapter folder's base model and student, and the one rule for whether two model references match.

Usage:
    from distill.adapters import check_adapter_base, read_base, same_model
    base = read_base("out/adapter")    # what distill.json (else adapter_config.json) says it was trained on
    base.refs, base.hub_id             # ["smollm2", "/…/students/ab12…", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    base.is_for("smollm2")             # True; None when the adapter names no base at all
    check_adapter_base("out/adapter", "smollm2", field="adapter")   # InputError when it is another model's
    same_model("org-a/Model", "org-b/Model")                        # False: Hub ids are compared whole

An adapter applied to another base loads without complaint when the shapes happen to match and
produces garbage, so eval, finetune's init_adapter and publish all refuse a mismatch, by this one
rule. distill's record (:class:`distill.artifacts.AdapterRecord`) names the base as given, as a
folder and as a Hub id; a PEFT adapter made elsewhere has only adapter_config.json's
``base_model_name_or_path``. Two Hub ids match when equal (case aside; an alias stands for its
Hub id); two local folders when they are the same folder or copies (config.json and weight
samples); a local folder and a Hub id when the folder's config names that id, else when the
folder bears the id's model name (a download saved as ``models/SmolLM2-135M-Instruct``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from distill.artifacts import AdapterRecord
from distill.errors import InputError
from distill.student import ALIASES, hub_id

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class AdapterBase:
    """What an adapter folder says it was trained on."""

    record: AdapterRecord | None  # distill.json, when distill trained it
    config: dict = field(default_factory=dict)  # adapter_config.json ({} when absent)

    @property
    def peft_base(self) -> str | None:
        """adapter_config.json's ``base_model_name_or_path`` (a Hub id or the folder trained from)."""
        base = self.config.get("base_model_name_or_path")
        return base if isinstance(base, str) and base else None

    @property
    def refs(self) -> list[str]:
        """Every name the adapter gives its base: the record's (student as named, folder, Hub id), else peft's."""
        if self.record is not None:
            return [ref for ref in (self.record.student, self.record.base_path, self.record.base_model) if ref]
        return [self.peft_base] if self.peft_base else []

    @property
    def hub_id(self) -> str | None:
        """The base as a Hub id; None when only a local folder is known."""
        if self.record is not None:
            return self.record.base_model
        return hub_id(self.peft_base) if self.peft_base else None

    @property
    def local(self) -> str | None:
        """The base as recorded locally: the folder trained from (or peft's name when that is all there is)."""
        return self.record.base_path if self.record is not None else self.peft_base

    def is_for(self, model: str) -> bool | None:
        """Does ``model`` name this adapter's base? None when the adapter names no base."""
        refs = self.refs
        return any(same_model(ref, model) for ref in refs) if refs else None


def read_base(folder: str | Path) -> AdapterBase:
    """Read an adapter folder's distill.json and adapter_config.json; InputError when it has neither."""
    folder = Path(folder)
    config_path = folder / ADAPTER_CONFIG
    record = AdapterRecord.read(folder) if AdapterRecord.exists(folder) else None
    if record is None and not config_path.is_file():
        raise InputError(f"not an adapter folder (no {ADAPTER_CONFIG})", path=folder)
    return AdapterBase(record, _read_json(config_path) if config_path.is_file() else {})


def check_adapter_base(adapter: str | Path, student: str, field: str | None = None) -> None:
    """Raise :class:`InputError` when the adapter names its base and ``student`` is not it."""
    base = read_base(adapter)
    fits = base.is_for(student)
    if fits is None:
        log.warning("%s records no base model; cannot check it matches %s", adapter, student)
    elif not fits:
        raise InputError(f"an adapter of another student: trained on {base.refs[0]!r}, not on student={student!r}; "
                         "pass the matching student= (an adapter on another base model produces garbage)",
                         path=adapter, field=field)


def same_model(a: str, b: str) -> bool:
    """Do two references (alias, Hub id, folder, .gguf) name the same model?"""
    if _clean(a) == _clean(b):
        return True
    hub_a, hub_b = _hub(a), _hub(b)
    if hub_a and hub_b:
        return hub_a == hub_b
    path_a, path_b = _local_path(a), _local_path(b)
    if path_a is not None and path_b is not None:
        return path_a == path_b or _fingerprint(path_a) == _fingerprint(path_b) != None  # noqa: E711 (None: unknown)
    if hub_a or hub_b:  # a Hub id against a folder (present, or only its recorded path)
        folder = (path_b or Path(_clean(b))) if hub_a else (path_a or Path(_clean(a)))
        return _folder_is(folder, hub_a or hub_b)
    return False  # two folders, not both here and not the same path: nothing says they match


def _clean(ref: str) -> str:
    return str(ref).strip().rstrip("/")


def _hub(ref: str) -> str | None:
    """The Hub id ``ref`` names (an alias's model), lower-cased; None for a local file or folder."""
    name = hub_id(_clean(ref))
    return name.lower() if name else None


def _local_path(ref: str) -> Path | None:
    """The resolved local folder for ``ref`` if it is (or resolves without network to) one."""
    path = Path(os.path.expanduser(_clean(ref)))
    if path.exists():
        return path.resolve()
    if _clean(ref) in ALIASES or ref.endswith(".gguf"):
        try:
            from distill.student import resolve_student

            return Path(resolve_student(_clean(ref))).resolve()
        except Exception as exc:  # noqa: BLE001 (an unresolvable alias compares by its Hub id)
            log.debug("could not resolve %s: %s", ref, exc)
    return None


def _folder_is(path: Path, hub: str) -> bool:
    """Does the folder hold the Hub model ``hub``: as its config records, else by the folder's name."""
    config = path / "config.json"
    recorded = _read_json(config).get("_name_or_path") if config.is_file() else None
    if isinstance(recorded, str) and recorded.count("/") == 1 and not Path(recorded).is_absolute():
        return recorded.lower() == hub  # the config names its model whole: trust it over the folder name
    return path.name.lower() == hub.rsplit("/", 1)[-1]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable JSON ({exc})", path=path) from None
    return data if isinstance(data, dict) else {}


def _fingerprint(path: Path) -> tuple | None:
    """config.json (minus bookkeeping keys) and weight samples: equal for two copies of a model."""
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
