"""A teacher whose `usage` is not an object (or holds non-numbers) still gives a trace, with the
usage estimated, never a crash or a retried failure (issue #13 §7)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from distill.generate.config import GenerateConfig
from distill.records import read_jsonl


def _server(usage):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "usage": usage,
                               "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                   "role": "assistant", "content": "Two and two. \\boxed{4}",
                                   "reasoning_content": "Add them."}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("usage", ["lots", [1, 2], {"prompt_tokens": "many", "completion_tokens": -3,
                                                     "completion_tokens_details": "n/a"}])
def test_usage_that_is_not_an_object_is_estimated(tmp_path, usage):
    from distill.generate import run

    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "a", "question": "2+2?", "answer": "4"}) + "\n")
    server = _server(usage)
    try:
        run(GenerateConfig(problems=str(tmp_path / "p.jsonl"), out=str(tmp_path / "t.jsonl"), model="m",
                           base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key_env=None,
                           progress=False, max_attempts=1, prices={"input": 1.0, "output": 1.0}))
    finally:
        server.shutdown()
    (record,) = [r for _, r in read_jsonl(tmp_path / "t.jsonl")]
    assert record["error"] is None and record["content"].endswith("\\boxed{4}")
    assert all(isinstance(v, int) and v >= 0 for v in record["usage"].values())
    assert record["usage"]["completion_tokens"] > 0 and record["cost_usd"] > 0  # estimated, so the cap counts it
