"""Refuse to upload anything that looks like a secret: API keys, tokens, private keys. Pure scanning.

Usage:
    from distill.publish.secrets import scan_folder, scan_text
    scan_folder(Path("publish/model"))          # raises InputError naming the file and line
    scan_text("key: sk-...")                    # [(line, "OpenAI API key")]

Provider keys have recognisable prefixes (sk-, sk-or-v1-, hf_, AKIA...). A generic rule catches
``api_key = "..."`` style assignments of long random values. Hashes (hex digests, the sha256 in
distill.json), environment variable NAMES (``api_key_env: DEEPSEEK_API_KEY``) and placeholders are
not secrets and are not flagged. The secret itself is never printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from distill.errors import InputError

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("OpenRouter API key", re.compile(r"\bsk-or-v1-[0-9a-f]{48,}\b")),
    ("Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{20,}")),
    ("OpenAI/DeepSeek API key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("AWS secret access key", re.compile(r"(?i)aws_secret_access_key\W{0,5}[A-Za-z0-9/+=]{40}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("bearer token", re.compile(r"(?i)\bauthorization\W{0,5}bearer\s+[A-Za-z0-9_\-.=]{20,}")),
]
_GENERIC = re.compile(
    r"(?i)[\"']?\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token|password|passwd)\b"
    r"[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9_\-./+=]{20,})")
# What every match of a pattern contains (in the lower-cased text for the case-blind ones): a text
# holding none of it skips the pattern. Looking for a literal costs a few percent of running a
# pattern that starts at a word boundary, and publish scans every row of a million-trace dataset.
_LITERALS: dict[str, tuple[str, ...]] = {
    "OpenRouter API key": ("sk-or-v1-",), "Anthropic API key": ("sk-ant-",), "OpenAI/DeepSeek API key": ("sk-",),
    "Hugging Face token": ("hf_",), "AWS access key id": ("AKIA", "ASIA"),
    "AWS secret access key": ("aws_secret_access_key",),
    "GitHub token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), "Google API key": ("AIza",),
    "Slack token": ("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"), "private key": ("PRIVATE KEY-----",),
    "bearer token": ("authorization",),
}
_CASE_BLIND = {"AWS secret access key", "bearer token"}
_GENERIC_NEAR = re.compile(r"(?:key|secret|token|password|passwd)[\"']?\s*[:=]")  # on lower-cased text: _GENERIC's end
_HEX = re.compile(r"^(?:[0-9a-f]+|[0-9A-F]+)$")
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SAFETENSORS = ".safetensors"
MAX_TEXT_BYTES = 200 * 1024 * 1024


def _generic_hit(value: str) -> bool:
    """A long value that looks random: mixed letters and digits, not a hash, not an env var name."""
    if _HEX.match(value) or _ENV_NAME.match(value) or value.lower().startswith(("http", "your", "xxx", "<")):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return has_digit and has_alpha and len(set(value)) >= 10


def scan_text(text: str) -> list[tuple[int, str]]:
    """``(line number, kind)`` of every secret-looking span in ``text``."""
    lower = text.lower()
    patterns = [(kind, pattern) for kind, pattern in PATTERNS
                if any(word in (lower if kind in _CASE_BLIND else text) for word in _LITERALS[kind])]
    is_generic = _GENERIC_NEAR.search(lower) is not None
    if not patterns and not is_generic:
        return []
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in patterns:
            if pattern.search(line):
                hits.append((number, kind))
                break
        else:
            m = _GENERIC.search(line) if is_generic else None
            if m and _generic_hit(m.group("value")):
                hits.append((number, "key-like value assigned to a secret name"))
    return hits


def _file_texts(path: Path) -> Iterator[tuple[int, str]]:
    """(lines before it, text) of each part of the file: a Parquet shard is read a batch of rows at a time."""
    if path.suffix == _SAFETENSORS:  # only the JSON header can carry text (metadata)
        with path.open("rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            yield 0, handle.read(min(size, 100 << 20)).decode("utf-8", "replace")
        return
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet, done = pq.ParquetFile(path), 0
        for group in range(parquet.num_row_groups):  # over the whole file at once, iter_batches reads ahead
            for batch in parquet.iter_batches(batch_size=1000, row_groups=[group]):  # (+39 MB at 200k traces)
                rows = batch.to_pylist()
                yield done, "\n".join(json.dumps(row, ensure_ascii=False, default=str) for row in rows)
                done += len(rows)
        return
    data = path.read_bytes()[:MAX_TEXT_BYTES]
    yield 0, data.decode("utf-8", "replace")


def _first_hit(path: Path) -> tuple[int, str] | None:
    for before, text in _file_texts(path):
        hits = scan_text(text)
        if hits:
            return before + hits[0][0], hits[0][1]
    return None


def scan_folder(folder: Path) -> int:
    """Scan every file under ``folder``; raise :class:`InputError` at the first secret. Returns files scanned."""
    count = 0
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        hit = _first_hit(path)
        if hit:
            line, kind = hit
            where = f" (parquet row {line})" if path.suffix == ".parquet" else ""
            raise InputError(f"refusing to upload: looks like a {kind}{where}; remove it and publish again",
                             path=path, line=None if where else line)
        count += 1
    return count
