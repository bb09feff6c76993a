"""vLLM- and SGLang-shaped scoring servers for tests, with the traps real ones have, on 127.0.0.1.

Usage:
    from logprob_servers import BigramLM, ScoringServer
    lm = BigramLM(vocab=320, seed=0)                          # log p(next | previous token): known answers
    with ScoringServer("vllm", lm, tokenizer, max_logprobs=20, cached=16) as srv:
        LogprobTeacher(srv.base_url, server="vllm")             # srv.requests: how many were answered
    ScoringServer("sglang", lm, tokenizer, placeholders={3: 0.0, 5: -9999.0}, fail=True, tokenize=bytes_ids)

A stand-in language model whose answers a test can compute by hand (a bigram table), served in
vLLM's ``/v1/completions`` + ``prompt_logprobs`` shape or SGLang's ``/generate`` shape: capped k
(vLLM's 400 above ``max_logprobs``), prefix-cached positions with no logprobs (``cached``),
placeholder values at chosen positions, a server failing every request, another tokenizer, a
vLLM too old to return ``prompt_token_ids`` (``token_ids=False``).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import torch


class BigramLM:
    """log p(next | previous) from a fixed random table; the first token has no logprob."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.log_softmax(torch.randn(vocab, vocab, generator=gen) * 2, dim=-1)

    def row(self, previous: int) -> torch.Tensor:
        return self.table[previous]


class ScoringServer:
    """A threaded http.server answering one scoring dialect (``vllm`` or ``sglang``)."""

    def __init__(self, dialect: str, lm: BigramLM, tokenizer: Any, max_logprobs: int = 20, cached: int = 0,
                 placeholders: dict[int, float] | None = None, fail: bool = False,
                 tokenize: Callable[[str], list[int]] | None = None, token_ids: bool = True) -> None:
        self.dialect, self.lm, self.max_logprobs, self.cached = dialect, lm, max_logprobs, cached
        self.placeholders, self.fail, self.token_ids = placeholders or {}, fail, token_ids
        self.tokenize = tokenize or (lambda text: list(tokenizer(text)["input_ids"]))
        self.requests = 0
        self.bodies: list[dict] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        return root + "/v1" if self.dialect == "vllm" else root

    def __enter__(self) -> "ScoringServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ answers

    def answer(self, path: str, body: dict) -> tuple[int, dict | list]:
        self.requests += 1
        self.bodies.append(body)
        if self.fail:
            return 500, {"error": {"message": "engine crashed", "type": "InternalServerError", "code": 500}}
        if self.dialect == "vllm" and path.endswith("/completions"):
            return self._vllm(body)
        if self.dialect == "sglang" and path == "/generate":
            return self._sglang(body)
        return 404, {"detail": "Not Found"}

    def _value(self, position: int, token: int, previous: int) -> float:
        if position in self.placeholders:
            return self.placeholders[position]
        return float(self.lm.row(previous)[token])

    def _top(self, position: int, previous: int, k: int) -> list[tuple[int, float]]:
        values, ids = self.lm.row(previous).topk(k) if k else (torch.empty(0), torch.empty(0, dtype=torch.long))
        return [(int(t), self._value(position, int(t), previous)) for t, _ in zip(ids, values)]

    def _vllm(self, body: dict) -> tuple[int, dict]:
        k = body.get("prompt_logprobs")
        if k is not None and k > self.max_logprobs:
            return 400, {"error": {"message": f"Requested prompt logprobs of {k}, which is greater than max "
                                              f"allowed: {self.max_logprobs}", "type": "BadRequestError",
                                   "param": "prompt_logprobs", "code": 400}}
        prompt = body["prompt"]
        ids = self.tokenize(prompt) if isinstance(prompt, str) else prompt
        rows: list = [None]
        for i in range(1, len(ids)):
            if i < self.cached:  # prefix-cached block: vLLM computes no prompt logprobs there
                rows.append(None)
                continue
            row = {str(t): {"logprob": v, "rank": r + 1, "decoded_token": "x"}
                   for r, (t, v) in enumerate(self._top(i, ids[i - 1], k or 0))}
            row.setdefault(str(ids[i]), {"logprob": self._value(i, ids[i], ids[i - 1]), "rank": 99,
                                         "decoded_token": "x"})
            rows.append(row)
        choice = {"index": 0, "text": "!", "logprobs": None, "finish_reason": "length", "prompt_logprobs": rows}
        if body.get("return_token_ids") and self.token_ids:  # token_ids=False: a vLLM older than the field
            choice["prompt_token_ids"] = ids
        return 200, {"id": "cmpl-1", "object": "text_completion", "model": "bigram", "choices": [choice]}

    def _sglang(self, body: dict) -> tuple[int, list | dict]:
        ids = body.get("input_ids") or self.tokenize(body["text"])
        start = body.get("logprob_start_len", -1)
        k = body.get("top_logprobs_num", 0)
        tokens, tops = [[None, ids[start], None]], [None]
        for i in range(start + 1, len(ids)):
            tokens.append([self._value(i, ids[i], ids[i - 1]), ids[i], None])
            tops.append([[v, t, None] for t, v in self._top(i, ids[i - 1], k)])
        meta = {"id": "r1", "prompt_tokens": len(ids), "completion_tokens": 0,
                "input_token_logprobs": tokens, "input_top_logprobs": tops, "output_token_logprobs": []}
        return 200, {"text": "", "meta_info": meta}

    def _handler(self) -> type:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._send(200, {"object": "list", "data": [{"id": "bigram", "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                self._send(*server.answer(self.path, body))

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
