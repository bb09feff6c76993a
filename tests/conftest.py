"""Test isolation: every test runs offline, with Hugging Face caches and distill's home in tmp dirs.

Usage: nothing to call; pytest loads it. Slow tests: `pytest -m slow`.

The environment is set when this file is imported, before any test module imports
huggingface_hub or datasets, because both read HF_HOME and HF_ENDPOINT at import time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # test helpers (tiny_student.py, ...) import by name

_SCRATCH = Path(tempfile.mkdtemp(prefix="distill-tests-"))
os.environ["HF_HOME"] = str(_SCRATCH / "hf-home")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("DISTILL_HOME", str(_SCRATCH / "distill-home"))
for _secret in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "HF_TOKEN"):
    os.environ.pop(_secret, None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
