"""The loop's ``generator: endpoint``: ask the user's server to load a round's LoRA adapter at runtime.

Usage:
    endpoint = LoraEndpoint.from_loop(cfg.loop)        # loop.base_url, loop.api_key_env, loop.lora_api
    endpoint.probe()                                    # preflight: reachable, and it offers runtime LoRA loading
    endpoint.load("distill-round-1-3f2a...", "/runs/x/adapter")   # then generate asks for model=<that name>
    with loaded_by(cfg.loop, name, path): ...          # a round's generate step: load, then generate

The load APIs, as their sources define them. vLLM (``--enable-lora``, with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` in its environment, else the route does not exist and
answers 404): ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}`` -> 200 with a plain-text
"Success: LoRA adapter 'NAME' added successfully.", or 400 "The lora adapter 'NAME' has already
been loaded." for a name it holds. SGLang (``--enable-lora``): ``POST /load_lora_adapter`` at the
server root, same body, JSON ``{"success", "error_message", ...}`` with 200 or 400; its chat
requests pick the adapter by ``"lora_path": NAME`` in the body (a bare model name is the base), which
the loop sends through generate's ``extra_body``. ``lora_path`` is
read by the server, so it must see the run folder (``loop.server_run_dir`` maps it, e.g. into a
container). The name carries the adapter's content hash (:func:`adapter_name`): "already loaded"
then means these very bytes are loaded (a re-run after a kill), and a retrained round gets a new
name rather than generating with stale weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from distill.errors import ConfigError, DistillError
from distill.redact import redact

log = logging.getLogger(__name__)

__all__ = ["LoraEndpoint", "adapter_name", "loaded_by", "LOAD_PATHS"]

LOAD_PATHS = {"vllm": "/v1/load_lora_adapter", "sglang": "/load_lora_adapter"}
_UNSUPPORTED = (404, 405)
_HINT = {"vllm": "start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
         "sglang": "start SGLang with --enable-lora"}


def adapter_name(round_number: int, digest: str) -> str:
    """The name round ``round_number``'s adapter is served under: its bytes decide it, not the run."""
    return f"distill-round-{round_number}-{digest[:12]}"


@contextlib.contextmanager
def loaded_by(loop: Any, name: str, path: str) -> Iterator[None]:
    """Have the server of ``loop`` load the adapter at ``path`` under ``name`` before a round generates with it
    (its URL is the recipe's, so nothing is filled in: yields None)."""
    LoraEndpoint.from_loop(loop).load(name, path)
    yield None


@dataclass
class LoraEndpoint:
    """Where to POST load requests, and the key to send (read from the environment, never stored in a config)."""

    base_url: str
    api: str = "vllm"
    api_key: str | None = None
    timeout: float = 600.0  # loading an adapter onto a busy GPU server can take a while

    @classmethod
    def from_loop(cls, loop: Any) -> LoraEndpoint:
        """From ``cfg.loop``; ConfigError naming ``loop.api_key_env`` when that variable is not set."""
        key = None
        if loop.api_key_env:
            key = os.environ.get(loop.api_key_env)
            if not key:
                raise ConfigError(f"loop.api_key_env: environment variable {loop.api_key_env} is not set "
                                  f"(it must hold the key of {redact(str(loop.base_url))})")
        return cls(loop.base_url, loop.lora_api, key)

    @property
    def load_url(self) -> str:
        """vLLM: <root>/v1/load_lora_adapter; SGLang: <root>/load_lora_adapter (root: base_url without /v1)."""
        parts = urlsplit(self.base_url)
        path = parts.path.rstrip("/")
        root = path[: -len("/v1")] if path.endswith("/v1") else path
        return urlunsplit((parts.scheme, parts.netloc, root + LOAD_PATHS[self.api], "", ""))

    def probe(self) -> None:
        """Raise unless the server answers and has the load route (an empty body: refused, but not 404)."""
        status, text = self._post({})
        if status in _UNSUPPORTED:
            raise DistillError(f"loop.generator=endpoint: {redact(self.load_url)} does not offer runtime LoRA "
                               f"loading (HTTP {status}); {_HINT[self.api]}, or set loop.lora_api")
        self._check_auth(status)

    def load(self, name: str, path: str) -> None:
        """Load the adapter at ``path`` (as the server sees it) under ``name``; already loaded counts as done."""
        status, text = self._post({"lora_name": name, "lora_path": path})
        if status == 200 and self._succeeded(text):
            log.info("endpoint: %s loaded %s as %s", redact(self.load_url), path, name)
            return
        if status == 400 and "already" in text.lower():
            log.info("endpoint: %s already holds %s (same adapter bytes)", redact(self.load_url), name)
            return
        self._check_auth(status)
        if status in _UNSUPPORTED and "adapter" not in text.lower():
            raise DistillError(f"loop.generator=endpoint: {redact(self.load_url)} does not offer runtime LoRA "
                               f"loading (HTTP {status}); {_HINT[self.api]}")
        raise DistillError(f"loop.generator=endpoint: {redact(self.load_url)} did not load {path} as {name} "
                           f"(HTTP {status}: {self._message(text)})")

    def _post(self, body: dict) -> tuple[int, str]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.load_url, data=json.dumps(body).encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the user's URL
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DistillError(f"loop.base_url: cannot reach {redact(self.load_url)} "
                               f"({self._scrub(str(reason))})") from None

    def _check_auth(self, status: int) -> None:
        if status in (401, 403):
            raise DistillError(f"loop.generator=endpoint: {redact(self.load_url)} refused the request (HTTP "
                               f"{status}); check the key in the variable named by loop.api_key_env")

    def _succeeded(self, text: str) -> bool:
        """vLLM answers plain text; SGLang answers JSON with ``success`` (false is a failure, whatever the status)."""
        try:
            data = json.loads(text)
        except ValueError:
            return True
        return not (isinstance(data, dict) and data.get("success") is False)

    def _message(self, text: str) -> str:
        """The server's own words (vLLM's error.message, SGLang's error_message), one line, no secret."""
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        if isinstance(data, dict):
            inner = data.get("error")
            data = (inner.get("message") if isinstance(inner, dict) else inner) or data.get("error_message") \
                or data.get("message") or data.get("detail") or json.dumps(data)
        return self._scrub(" ".join(str(data).split()))[:300]

    def _scrub(self, text: str) -> str:
        if self.api_key:
            text = text.replace(self.api_key, "***")
        return redact(text)

