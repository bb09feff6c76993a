"""Secrets never leave the process (issue #13 §8): the values of secret-named variables, bearer
tokens and key shapes are masked in error lines, log records and tracebacks; names are not."""

from __future__ import annotations

import logging
import subprocess
import sys

from distill.redact import RedactingFilter, redact

TOKEN = "hf_" + "Q7x" * 12


def test_secret_values_bearer_tokens_and_key_shapes_are_masked(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-v4lue-0987")
    monkeypatch.setenv("API_KEY_ENV_NAME", "DEEPSEEK_API_KEY")  # a variable NAME is not a secret
    text = redact(f"401: header Authorization: Bearer {TOKEN}; env s3cr3t-v4lue-0987; set DEEPSEEK_API_KEY; "
                  "key sk-abcdefghijklmnopqrstu; api_key='zzzzzzzzzzzz'; max_tokens=4096")
    assert TOKEN not in text and "s3cr3t" not in text and "sk-abcdefghijklmnop" not in text and "zzzz" not in text
    assert "Bearer ***" in text and "DEEPSEEK_API_KEY" in text and "max_tokens=4096" in text


def test_log_records_are_masked_before_any_handler_sees_them(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "upload failed: %s", (f"echo {TOKEN}",), None)
    assert RedactingFilter().filter(record) and TOKEN not in record.getMessage()


def test_a_traceback_on_the_way_out_is_masked():
    code = ("import sys; from distill.redact import install; install(); "
            f"raise RuntimeError('server said: Bearer {TOKEN}')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "RuntimeError" in proc.stderr and TOKEN not in proc.stderr


def test_the_password_in_a_url_is_masked_wherever_the_url_is_printed():
    from distill.redact import redact

    line = redact("cannot reach http://bob:s3cret@10.0.0.1:8000/v1/load_lora_adapter (refused)")
    assert "s3cret" not in line and "bob" not in line
    assert line == "cannot reach http://***@10.0.0.1:8000/v1/load_lora_adapter (refused)"
    assert redact("see https://example.com/a@b, mail a@b.c") == "see https://example.com/a@b, mail a@b.c"
