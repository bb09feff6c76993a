"""Stage configs: dataclasses filled from a YAML recipe plus dotted ``key=value`` overrides.

Usage:
    cfg = load_config(GenerateConfig, "generate/deepseek-r1.yaml", ["samples=4", "rpm=60"])
    save_resolved(cfg, out_dir / "config.yaml")

Every stage declares one dataclass whose fields are made with :func:`option` (a default and a
one-line meaning, which become ``--help``) or :func:`section` (a nested dataclass, reached with
dotted keys such as ``lora.r=32``). Unknown keys fail with a suggestion; values are checked
against the field's type, so a typo never silently becomes a default.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from distill.errors import ConfigError
from distill.records import write_text_atomic

__all__ = [
    "ConfigError", "option", "section", "load_config", "build_config", "parse_overrides",
    "to_dict", "save_resolved", "describe", "config_hash", "check_bounds",
]


def option(default: Any, help: str) -> Any:
    """A config field with a default and a one-line meaning shown by ``--help``."""
    if isinstance(default, (list, dict)):
        frozen = copy.deepcopy(default)
        return dataclasses.field(default_factory=lambda: copy.deepcopy(frozen), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def section(cls: type, help: str) -> Any:
    """A nested config (e.g. ``lora``), reached with dotted keys (``lora.r=32``)."""
    return dataclasses.field(default_factory=cls, metadata={"help": help})


def check_bounds(cfg: Any, rules: dict[str, str]) -> None:
    """Raise ConfigError for the first value outside its range; null values pass (they mean "off").

    ``rules`` maps dotted keys to a comparison (``">= 1"``, ``"> 0"``) or an interval (``"[0, 1)"``),
    written the way the error states it: ``lora.r must be >= 1, got 0``.
    """
    for key, rule in rules.items():
        value: Any = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value is None:
            continue
        if not _within(value, rule.replace(" ", "")):
            raise ConfigError(f"{key} must be {'in ' if rule[0] in '[(' else ''}{rule}, got {value!r}")


def _within(value: float, rule: str) -> bool:
    if rule[0] in "[(":
        low, high = (float(x) for x in rule[1:-1].split(","))
        above = value >= low if rule[0] == "[" else value > low
        below = value <= high if rule[-1] == "]" else value < high
        return above and below
    op = rule.rstrip("0123456789.-e")
    bound = float(rule[len(op):])
    return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[op]


# ---------------------------------------------------------------- loading


def load_config(cls: type, recipe: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()):
    """Defaults of ``cls``, then the recipe file, then command-line ``key=value`` overrides."""
    tree: dict = {}
    base_dir = Path.cwd()
    if recipe is not None:
        tree = _read_recipe(Path(recipe))
        base_dir = Path(recipe).resolve().parent
    for key, value in parse_overrides(overrides).items():
        _set_dotted(tree, key, value)
    return build_config(cls, tree, source=str(recipe) if recipe else "command line", base_dir=base_dir)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["lora.r=32", "base_url=[a, b]"]`` -> ``{"lora.r": 32, "base_url": ["a", "b"]}``.

    Values are read as YAML scalars or flow collections, so numbers, booleans, lists and
    mappings can be given inline; anything YAML cannot read stays a plain string.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"command line: expected key=value, got {item!r}")
        parsed[key] = _parse_value(raw)
    return parsed


def _parse_value(raw: str) -> Any:
    if raw == "":
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    # YAML turns "a: b" into a mapping and "#x" into None; a user who typed that meant text.
    if isinstance(value, dict) and not raw.lstrip().startswith("{"):
        return raw
    if value is None and raw.strip().lower() not in ("null", "none", "~"):
        return raw
    return value


def _read_recipe(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text recipe (byte {exc.start} is not UTF-8); give a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of keys to values")
    return tree


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {} if child is None or not isinstance(child, str) else {"__recipe__": child}
            node[part] = child
        node = child
    node[parts[-1]] = value


def build_config(cls: type, tree: dict, source: str = "config", base_dir: Path | None = None, prefix: str = ""):
    """Build ``cls`` from a nested mapping, checking every key and value."""
    base_dir = base_dir or Path.cwd()
    tree = dict(tree)
    if "__recipe__" in tree:  # a section given as a file path, then refined by overrides
        included = _read_recipe(_resolve(tree.pop("__recipe__"), base_dir))
        tree = _merge(included, tree)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in tree if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(f"{source}: unknown key {prefix + key!r}{_suggest(cls, prefix, key)}")
    kwargs = {}
    for name, value in tree.items():
        tp = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(tp):
            if isinstance(value, str):  # `generate: generate/deepseek-r1.yaml`
                sub_path = _resolve(value, base_dir)
                kwargs[name] = build_config(tp, _read_recipe(sub_path), str(sub_path), sub_path.parent, key + ".")
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key!r} is a section; give it a mapping or a recipe path")
            kwargs[name] = build_config(tp, value, source, base_dir, key + ".")
        else:
            kwargs[name] = _coerce(value, tp, key, source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a check of the section's own: name the key as the user wrote it
        raise ConfigError(f"{source}: {prefix}{exc}") from None


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() or p.exists() else base_dir / p


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _suggest(cls: type, prefix: str, key: str) -> str:
    keys = [k for k, *_ in describe(cls, prefix)]
    wanted = prefix + key
    match = difflib.get_close_matches(wanted, keys, n=1, cutoff=0.6)
    if not match:  # a right name in the wrong section: "r" -> "lora.r"
        match = [k for k in keys if k.rsplit(".", 1)[-1] == key][:1]
    return f" (did you mean {match[0]!r}?)" if match else ""


# ---------------------------------------------------------------- types


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    try:
        return _coerce_to(value, tp)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key}: expected {_type_name(tp)}, got {value!r}") from None


def _coerce_to(value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in sorted((a for a in args if a is not type(None)), key=_union_order):
            try:
                return _coerce_to(value, arg)
            except (TypeError, ValueError):
                continue
        raise ValueError(value)
    if origin is Literal:
        if value in args:
            return value
        # YAML reads `off`/`no`/`on` as booleans; a user who wrote `policy=off` meant the word.
        lowered = {True: ("true", "on", "yes"), False: ("false", "off", "no")}.get(value, (str(value).lower(),))
        for arg in args:
            if str(arg).lower() in lowered:
                return arg
        raise ValueError(value)
    if origin in (list, tuple):
        items = value if isinstance(value, (list, tuple)) else [value]
        inner = args[0] if args else Any
        return [_coerce_to(v, inner) for v in items]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise TypeError(value)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ValueError(value)
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError(value)
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list, bool)) or value is None:
            raise TypeError(value)
        return str(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise TypeError(value)


def _union_order(tp: Any) -> int:
    # Try the most specific reading first: a bare "3" for `int | str` is the int 3.
    order = {bool: 0, int: 1, float: 2}
    return order.get(tp, 3 if typing.get_origin(tp) is None else 4)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(str(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


# ---------------------------------------------------------------- output


def to_dict(cfg: Any) -> dict:
    """The config as plain data (what is saved and hashed)."""
    return dataclasses.asdict(cfg)


def save_resolved(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML beside a stage's output, so a run can be repeated."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
    return write_text_atomic(path, f"# resolved config ({type(cfg).__name__}); re-run with: distill ... {Path(path).name}\n{text}")


def config_hash(cfg: Any, ignore: tuple[str, ...] = ()) -> str:
    """A short, stable digest of a config (minus keys that do not change results)."""
    data = to_dict(cfg)
    for key in ignore:
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every option as ``(dotted key, type, default, meaning)``, for ``--help`` and suggestions."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, key + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append((key, _type_name(tp), default, f.metadata.get("help", "")))
    return rows
