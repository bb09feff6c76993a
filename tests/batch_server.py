"""A loopback OpenAI-compatible batch API (files + batches) for tests: slow, expiring, failing or erring on demand.

Usage:
    from batch_server import BatchServer
    with BatchServer(respond, polls=3) as srv:             # each batch completes on its 3rd status check
        srv.fates = ["expired", "failed", "cancelled"]     # the next batches: expire or are cancelled half done,
                                                           # fail validation; then the rest complete
        srv.refuse = 401                                   # every call answered 401 (a bad key)
        srv.lose_creates = 1                               # the next create makes the batch, then drops the answer
        srv.hide_files = 1                                 # the next file download gets a 404
        srv.hide_batches = 1                               # the next status check gets a 404
        srv.no_list = True                                 # GET /v1/batches (list) is a 404, as on some providers
        srv.needs_tokens = 300                             # answers asked with less max_tokens stop at "length"
        srv.errors["number 3?"] = [500, 500]               # that prompt gets a 500 twice, then an answer
        ... distill generate mode=batch base_url=srv.base_url ...
        srv.answered                                       # Counter: prompt -> times answered (= paid)

Speaks what the openai SDK sends: multipart ``POST /v1/files``, ``GET /v1/files/{id}/content``,
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/batches`` (list), ``POST
/v1/batches/{id}/cancel``. A batch moves validating -> in_progress -> finalizing -> completed one
status check at a time (``polls`` checks in progress), so "slow" is counted in checks, not seconds.
Answers use DeepSeek's dialect (``reasoning_content``) and report usage: the prompt's characters / 4
and 100 completion tokens, so a test can compute the cost.
"""

from __future__ import annotations

import email.parser
import itertools
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

COMPLETION_TOKENS = 100


class BatchServer:
    def __init__(self, respond: Callable[[str], tuple[str, str]], polls: int = 1, model: str = "test-teacher"):
        self.respond, self.polls, self.model = respond, polls, model
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.uploads = 0
        self.answered: Counter = Counter()
        self.errors: dict[str, list[int]] = {}
        self.fates: list[str] = []
        self.refuse: int | None = None
        self.lose_creates = 0
        self.hide_files = 0
        self.hide_batches = 0
        self.no_list = False
        self.needs_tokens = 0
        self.status_checks = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> BatchServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------ files

    def _new_file(self, data: bytes, name: str, purpose: str) -> dict:
        fid = f"file-{next(self._ids)}"
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                           "filename": name, "purpose": purpose, "status": "processed", "data": data}
        return self.files[fid]

    def upload(self, content_type: str, body: bytes) -> dict:
        msg = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields = {part.get_param("name", header="content-disposition"): part for part in msg.get_payload()}
        filepart = fields["file"]
        self.uploads += 1
        return self._new_file(filepart.get_payload(decode=True), filepart.get_filename() or "upload.jsonl",
                              fields["purpose"].get_payload(decode=True).decode())

    # ------------------------------------------------------------ batches

    def create(self, body: dict) -> dict:
        bid = f"batch_{next(self._ids)}"
        lines = [json.loads(x) for x in self.files[body["input_file_id"]]["data"].decode().splitlines() if x.strip()]
        fate = self.fates.pop(0) if self.fates else "completed"
        self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
                             "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                             "status": "validating", "output_file_id": None, "error_file_id": None,
                             "created_at": int(time.time()), "metadata": body.get("metadata"),
                             "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                             "_lines": lines, "_checks": 0, "_fate": fate}
        return self.batches[bid]

    def advance(self, batch: dict) -> None:
        """One status check moves the batch one step along its fate."""
        self.status_checks += 1
        batch["_checks"] += 1
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return
        if batch["status"] == "cancelling":
            return self._finish(batch, "cancelled", len(batch["_lines"]) // 2)
        if batch["status"] == "validating":
            if batch["_fate"] == "failed":
                batch["status"] = "failed"
                batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "message":
                                                               "the input file failed validation", "line": 1}]}
                return
            batch["status"] = "in_progress"
        elif batch["_checks"] <= self.polls + 1:
            done = len(batch["_lines"]) * (batch["_checks"] - 1) // (self.polls + 1)
            batch["request_counts"]["completed"] = done
        elif batch["_fate"] == "expired":
            self._finish(batch, "expired", len(batch["_lines"]) // 2)
        elif batch["_fate"] == "cancelled":  # cancelled by someone else (the dashboard) while in progress
            batch["status"] = "cancelling"
        elif batch["status"] == "in_progress":
            batch["status"] = "finalizing"
        else:
            self._finish(batch, "completed", len(batch["_lines"]))

    def _finish(self, batch: dict, status: str, n_done: int) -> None:
        out, err = [], []
        for i, line in enumerate(batch["_lines"]):
            rid = f"batch_req_{next(self._ids)}"
            if i >= n_done and status == "cancelled":
                continue  # a cancelled batch lists nothing for what it never ran
            if i >= n_done:
                err.append({"id": rid, "custom_id": line["custom_id"], "response": None,
                            "error": {"code": "batch_expired", "message": "This request could not be executed "
                                      "before the completion window expired."}})
                continue
            prompt = line["body"]["messages"][-1]["content"]
            failures = next((v for k, v in self.errors.items() if k in prompt and v), None)
            if failures:
                status_code = failures.pop(0)
                err.append({"id": rid, "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": status_code, "request_id": rid, "body": {"error": {
                                "message": f"HTTP {status_code} from the test server", "type": "server_error"}}}})
                continue
            self.answered[prompt] += 1
            out.append({"id": rid, "custom_id": line["custom_id"], "error": None,
                        "response": {"status_code": 200, "request_id": rid, "body": self._completion(line["body"])}})
        counts = batch["request_counts"]
        counts["completed"], counts["failed"] = len(out), len(err)
        batch["status"] = status
        if out:
            batch["output_file_id"] = self._new_file(_jsonl(out), "out.jsonl", "batch_output")["id"]
        if err:
            batch["error_file_id"] = self._new_file(_jsonl(err), "err.jsonl", "batch_output")["id"]

    def _completion(self, body: dict) -> dict:
        prompt = body["messages"][-1]["content"]
        reasoning, content = self.respond(prompt)
        prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
        finish = "length" if body.get("max_tokens", 1 << 30) < self.needs_tokens else "stop"
        if finish == "length":
            reasoning, content = reasoning[: len(reasoning) // 2], ""
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "finish_reason": finish, "message": {
                    "role": "assistant", "content": content, "reasoning_content": reasoning}}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": COMPLETION_TOKENS,
                          "total_tokens": prompt_tokens + COMPLETION_TOKENS}}

    def public(self, batch: dict) -> dict:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    # ------------------------------------------------------------ HTTP

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload: dict | bytes) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes)
                                 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if server.refuse:
                    return self._send(server.refuse, {"error": {"message": "Incorrect API key provided",
                                                                "type": "invalid_request_error"}})
                with server._lock:
                    if self.path == "/v1/files":
                        return self._send(200, _public_file(server.upload(self.headers["Content-Type"], body)))
                    if self.path == "/v1/batches":
                        batch = server.public(server.create(json.loads(body)))
                        if server.lose_creates:  # made, but the client never hears of it
                            server.lose_creates -= 1
                            self.close_connection = True
                            return
                        return self._send(200, batch)
                    if self.path.startswith("/v1/batches/") and self.path.endswith("/cancel"):
                        batch = server.batches[self.path.split("/")[3]]
                        batch["status"] = "cancelling"
                        return self._send(200, server.public(batch))
                self._send(404, {"error": {"message": "no such route"}})

            def do_GET(self) -> None:
                if server.refuse:
                    return self._send(server.refuse, {"error": {"message": "Incorrect API key provided"}})
                with server._lock:
                    path = self.path.split("?")[0]
                    if path == "/v1/batches" and server.no_list:
                        return self._send(404, {"error": {"message": "no such route"}})
                    if path == "/v1/batches":
                        data = [server.public(b) for b in reversed(server.batches.values())]
                        return self._send(200, {"object": "list", "data": data, "has_more": False,
                                                "first_id": data[0]["id"] if data else None,
                                                "last_id": data[-1]["id"] if data else None})
                    parts = path.split("/")
                    if path.startswith("/v1/batches/") and server.hide_batches:
                        server.hide_batches -= 1
                        return self._send(404, {"error": {"message": "No such Batch object"}})
                    if path.startswith("/v1/batches/") and parts[3] in server.batches:
                        batch = server.batches[parts[3]]
                        server.advance(batch)
                        return self._send(200, server.public(batch))
                    if path.startswith("/v1/files/") and path.endswith("/content") and server.hide_files:
                        server.hide_files -= 1
                        return self._send(404, {"error": {"message": "No such File object"}})
                    if path.startswith("/v1/files/") and path.endswith("/content") and parts[3] in server.files:
                        return self._send(200, server.files[parts[3]]["data"])
                self._send(404, {"error": {"message": f"not found: {path}"}})

        return Handler


def _jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def _public_file(f: dict) -> dict:
    return {k: v for k, v in f.items() if k != "data"}
