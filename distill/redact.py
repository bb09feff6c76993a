"""Secrets masked in every text that leaves the process: error lines, logs, tracebacks.

Usage:
    from distill.redact import redact, install
    redact("401: bad header Authorization: Bearer hf_abc...")   # -> "... Bearer ***"
    install()    # the CLI: every log record and any traceback pass through redact()

A server's error body may echo the request's ``Authorization`` header (a Hub 401 did), so
masking only our own log calls is not enough: the CLI passes the final error line, every log
record and the excepthook's traceback through here. Masked: the values of environment
variables whose names say they hold a secret (HF_TOKEN, *_API_KEY, ...), bearer tokens, the
user:password part of URLs, and provider key shapes (the publish secret scanner's patterns).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback

_SECRET_NAME = re.compile(r"(?i)(TOKEN|API_KEY|APIKEY|SECRET|PASSWORD|PASSWD|ACCESS_KEY)")
_BEARER = re.compile(r"(?i)\b(bearer\s+|(?:token|api[_-]?key|password)[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9_\-.=/+]{8,}")
_SHAPES = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{12,}|hf_[A-Za-z0-9]{12,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_\-]{35}|(?:AKIA|ASIA)[0-9A-Z]{16})")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")  # http://user:password@host
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*|true|false|[0-9.]+")
MASK = "***"


def _is_secret_like(value: str) -> bool:
    # Not a variable NAME (api_key_env=DEEPSEEK_API_KEY), a switch or a path: masking those garbles messages.
    return len(value) >= 8 and not _ENV_NAME.fullmatch(value) and not value.startswith(("/", "http", "~"))


def _secret_values() -> list[str]:
    values = [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and _is_secret_like(v)]
    return sorted(set(values), key=len, reverse=True)  # longest first: a key containing another


def redact(text: str) -> str:
    """``text`` with secret values and key-shaped strings replaced by ``***``."""
    if not text:
        return text
    for value in _secret_values():
        text = text.replace(value, MASK)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _SHAPES.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """Formats the record's message once, masked, so no handler sees the secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the logger's problem, not ours
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def install() -> None:
    """Mask secrets in every log handler and in any traceback printed on the way out."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())

    def hook(kind, value, tb) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))

    sys.excepthook = hook
