"""A teacher that scores given tokens: vLLM's /v1/completions prompt_logprobs or SGLang's /generate.

Usage:
    from distill.teacher.logprobs import LogprobTeacher, check_same_tokenizer
    teacher = LogprobTeacher("http://127.0.0.1:8000/v1", server="vllm", top_k=8)
    check_same_tokenizer(teacher, tokenizer)               # before the first step: refuses another vocabulary
    scores = teacher.score([prompt_ids + completion_ids], starts=[len(prompt_ids)])
    scores[0].logprobs[t], scores[0].top[t], scores[0].valid[t], scores[0].placeholders
    teacher.close()

On-policy distillation needs the teacher's log-probability of every token the *student* wrote,
so the teacher is asked to score text, not to write it: vLLM with ``prompt_logprobs=k`` and one
generated token (``max_tokens`` 0 needs ``echo`` and a recent vLLM; 1 works everywhere), SGLang
with ``return_logprob``, ``logprob_start_len`` and ``top_logprobs_num``. Token ids are sent, so
the teacher scores exactly the student's tokens; that only means something when both share a
vocabulary, which :func:`check_same_tokenizer` verifies on a probe text.

Traps guarded here (see the README's on-policy section): vLLM refuses ``k > 20`` unless started
with ``--max-logprobs``; vLLM returns no prompt logprobs for prefix-cached blocks (a missing
position is an error, never a zero); some APIs answer with 0 / -9999 placeholders, which are
counted and masked (``valid``), never trained on.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2

from distill.errors import DistillError

log = logging.getLogger(__name__)

Server = Literal["vllm", "sglang"]
PLACEHOLDER_FLOOR = -9999.0  # DeepSeek-V3.2-Exp#49: -9999 where no logprob was computed
VLLM_DEFAULT_MAX_LOGPROBS = 20
PROBE = ("Compute 12 + 7 * 3. First 7 * 3 = 21, then 12 + 21 = 33. The answer is \\boxed{33}.\n"
         "Which is greater, 9.11 or 9.8? <think> step by step </think>")
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class TeacherLogprobError(DistillError):
    """The teacher cannot score the student's tokens (refused, incomplete, unreachable, other vocabulary)."""

    exit_code = 3


@dataclass
class TeacherScores:
    """The teacher's view of one completion, one entry per completion token."""

    logprobs: list[float]  # log p_teacher(sampled token); 0.0 where not valid
    top: list[dict[int, float]]  # the teacher's top-k {token id: logprob} (placeholders dropped)
    valid: list[bool] = field(default_factory=list)  # False: a placeholder, never train on it

    @property
    def placeholders(self) -> int:
        return sum(not v for v in self.valid)


def is_placeholder(value: Any) -> bool:
    """0 or <= -9999 (or not a finite number <= 0): what some APIs send where no logprob was computed.

    A true log-probability of exactly 0.0 needs every other token below ~6e-8 in float32; masking
    such a position loses almost nothing, while training on a fake 0 pulls the student hard.
    """
    return (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
            or value >= 0.0 or value <= PLACEHOLDER_FLOOR)


class LogprobTeacher:
    """A vLLM or SGLang endpoint that returns per-token logprobs of token ids it is given."""

    def __init__(self, base_url: str, server: Server = "vllm", model: str | None = None, top_k: int = 20,
                 api_key: str | None = None, timeout: float = 300.0, concurrency: int = 8,
                 max_attempts: int = 3, backoff: float = 0.5) -> None:
        if server not in ("vllm", "sglang"):
            raise TeacherLogprobError(f"server={server!r}: choose vllm or sglang")
        self.server, self.model, self.top_k = server, model, int(top_k)
        self.base_url = base_url.rstrip("/")
        if server == "sglang" and self.base_url.endswith("/v1"):  # /generate sits at the root
            self.base_url = self.base_url[:-3]
        self.concurrency, self.max_attempts, self.backoff = concurrency, max_attempts, backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx2.Client(timeout=httpx2.Timeout(timeout, connect=10.0), headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "LogprobTeacher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public

    def score(self, sequences: list[list[int]], starts: list[int]) -> list[TeacherScores]:
        """Scores of tokens ``seq[start:]`` (the completion) for each sequence, in order."""
        if len(sequences) != len(starts):
            raise ValueError("one start per sequence")
        for ids, start in zip(sequences, starts):
            if not 1 <= start <= len(ids):
                raise ValueError(f"start {start} outside [1, {len(ids)}]: the first token cannot be scored")
        jobs = list(zip(sequences, starts))
        if len(jobs) <= 1 or self.concurrency <= 1:
            return [self._score_one(ids, start) for ids, start in jobs]
        with ThreadPoolExecutor(min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(lambda job: self._score_one(*job), jobs))

    def tokenize(self, text: str) -> list[int]:
        """The token ids the teacher turns ``text`` into (read back from a scoring request)."""
        if self.server == "vllm":
            body = {"prompt": text, "max_tokens": 1, "prompt_logprobs": 1, "return_token_ids": True}
            choice = self._choice(self._post("/completions", body))
            if isinstance(choice.get("prompt_token_ids"), list):
                return [int(t) for t in choice["prompt_token_ids"]]
            # Older vLLM has no return_token_ids: each position lists the top-1 and its own token,
            # which is the one ranked lowest; the first position has none (-1: not compared).
            rows = choice.get("prompt_logprobs") or []
            return [-1] + [_own_token(row) for row in rows[1:]]
        body = {"text": text, "return_logprob": True, "logprob_start_len": 0, "top_logprobs_num": 0,
                "sampling_params": {"max_new_tokens": 0, "temperature": 0}}
        meta = _meta(self._post("/generate", body))
        return [int(row[1]) for row in meta.get("input_token_logprobs") or []]

    # ------------------------------------------------------------------ one sequence

    def _score_one(self, ids: list[int], start: int) -> TeacherScores:
        if self.server == "vllm":
            # k >= 1: some vLLM versions test prompt_logprobs for truth and return nothing for 0
            body = {"prompt": list(ids), "max_tokens": 1, "temperature": 0, "prompt_logprobs": max(1, self.top_k)}
            return parse_vllm(self._choice(self._post("/completions", body)), ids, start, self.top_k)
        body = {"input_ids": list(ids), "return_logprob": True, "logprob_start_len": start - 1,
                "top_logprobs_num": self.top_k, "sampling_params": {"max_new_tokens": 0, "temperature": 0}}
        return parse_sglang(_meta(self._post("/generate", body)), ids, start, self.top_k)

    def _choice(self, payload: Any) -> dict:
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise TeacherLogprobError(f"{self._where()}: answer has no choices: {_clip(payload)}")
        return choices[0]

    def _post(self, path: str, body: dict) -> Any:
        if self.server == "vllm":
            body = {"model": self._model_name(), **body}
        url, last = self.base_url + path, ""
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._http.post(url, json=body)
            except httpx2.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code == 200:
                try:
                    return resp.json()
                except ValueError:
                    last = f"HTTP 200 with a body that is not JSON: {_clip(resp.text)}"
                    continue
            last = f"HTTP {resp.status_code}: {_error_message(resp)}"
            if resp.status_code not in _RETRY_STATUS:
                raise TeacherLogprobError(self._refusal(resp.status_code, _error_message(resp)))
        raise TeacherLogprobError(f"{self._where()}: no answer after {self.max_attempts} attempts ({last})")

    def _refusal(self, status: int, message: str) -> str:
        if self.server == "vllm" and "max allowed" in message and "logprobs" in message:
            allowed = re.search(r"max allowed:\s*(-?\d+)", message)
            cap = allowed.group(1) if allowed else f"{VLLM_DEFAULT_MAX_LOGPROBS} (vLLM's default)"
            return (f"{self._where()} refused top_k={self.top_k}: it allows at most {cap} logprobs; lower top_k "
                    f"or restart vLLM with --max-logprobs {self.top_k} (or -1) (it said: {message})")
        return f"{self._where()} refused the scoring request (HTTP {status}): {message}"

    def _model_name(self) -> str:
        if self.model is None:  # vLLM wants the served name; ask once
            try:
                resp = self._http.get(self.base_url + "/models")
                self.model = resp.json()["data"][0]["id"] if resp.status_code == 200 else ""
            except (httpx2.HTTPError, ValueError, KeyError, IndexError, TypeError):
                self.model = ""
        return self.model

    def _where(self) -> str:
        return f"{self.server} teacher at {self.base_url}"


# ---------------------------------------------------------------- response parsing (pure)


def parse_vllm(choice: dict, ids: list[int], start: int, k: int) -> TeacherScores:
    """Read ``choices[0].prompt_logprobs``: per position ``{id: {logprob, rank, decoded_token}}``."""
    rows = choice.get("prompt_logprobs")
    if not isinstance(rows, list):
        raise TeacherLogprobError("the teacher returned no prompt_logprobs: is it vLLM (>= 0.4) "
                                  "behind /v1/completions?")
    positions = []
    for i in range(start, len(ids)):
        row = rows[i] if i < len(rows) else None
        if not isinstance(row, dict):
            positions.append(None)
            continue
        entries = {int(t): (v.get("logprob") if isinstance(v, dict) else v) for t, v in row.items()}
        positions.append((entries.get(ids[i], _ABSENT), entries))
    return _collect(positions, ids, start, k, "vLLM returns none for prefix-cached blocks: start it with "
                                               "--no-enable-prefix-caching")


def parse_sglang(meta: dict, ids: list[int], start: int, k: int) -> TeacherScores:
    """Read ``meta_info.input_token_logprobs`` / ``input_top_logprobs`` (``[logprob, id, text]`` rows)
    requested from ``logprob_start_len = start - 1``: entry 0 is that token, always None."""
    tokens = meta.get("input_token_logprobs")
    tops = meta.get("input_top_logprobs") or []
    if not isinstance(tokens, list):
        raise TeacherLogprobError("the teacher returned no input_token_logprobs: is it SGLang's /generate "
                                  "with return_logprob?")
    positions = []
    for j, i in enumerate(range(start, len(ids)), start=1):
        row = tokens[j] if j < len(tokens) else None
        if not isinstance(row, (list, tuple)) or len(row) < 2 or row[0] is None:
            positions.append(None)
            continue
        if int(row[1]) != ids[i]:
            raise TeacherLogprobError(f"the teacher scored token {row[1]} at position {i} where {ids[i]} was sent")
        top = tops[j] if j < len(tops) and isinstance(tops[j], list) else []
        entries = {int(r[1]): r[0] for r in top if isinstance(r, (list, tuple)) and len(r) >= 2}
        positions.append((row[0], entries))
    return _collect(positions, ids, start, k, "SGLang returned a shorter answer than the sequence")


_ABSENT = object()


def _collect(positions: list, ids: list[int], start: int, k: int, missing_hint: str) -> TeacherScores:
    """Build scores, refusing missing positions and masking placeholders."""
    missing = [start + n for n, p in enumerate(positions) if p is None]
    if missing:
        raise TeacherLogprobError(
            f"the teacher returned no logprobs for {len(missing)} of {len(positions)} completion positions "
            f"(first at token {missing[0]}); {missing_hint}")
    logprobs, tops, valid = [], [], []
    for n, (value, entries) in enumerate(positions):
        if value is _ABSENT:
            raise TeacherLogprobError(f"the teacher's answer at position {start + n} does not list the token sent "
                                      f"({ids[start + n]}): it did not score the student's tokens")
        ok = not is_placeholder(value)
        real = {t: float(v) for t, v in entries.items() if not is_placeholder(v)}
        logprobs.append(float(value) if ok else 0.0)
        tops.append(dict(sorted(real.items(), key=lambda kv: -kv[1])[:k]) if k > 0 else {})
        valid.append(ok)
    return TeacherScores(logprobs, tops, valid)


def _own_token(row: Any) -> int:
    if not isinstance(row, dict) or not row:
        return -1
    ranked = [(v.get("rank") if isinstance(v, dict) else None, int(t)) for t, v in row.items()]
    if len(ranked) == 1:
        return ranked[0][1]
    known = [(r, t) for r, t in ranked if isinstance(r, int)]
    return max(known)[1] if len(known) == len(ranked) else -1


def _meta(payload: Any) -> dict:
    if isinstance(payload, list):  # a batched request answers a list; one sequence is sent at a time
        payload = payload[0] if payload else None
    meta = payload.get("meta_info") if isinstance(payload, dict) else None
    if not isinstance(meta, dict):
        raise TeacherLogprobError(f"the teacher's answer has no meta_info: {_clip(payload)}")
    return meta


def _error_message(resp: Any) -> str:
    try:
        body = resp.json()
    except ValueError:
        return _clip(resp.text)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if isinstance(body.get(key), str):
                return body[key]
    return _clip(body)


def _clip(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------- same vocabulary


def check_same_tokenizer(teacher: LogprobTeacher, tokenizer: Any, probe: str = PROBE) -> None:
    """Refuse, in one line, a teacher that tokenises the probe differently from the student.

    Scores are read by token id; a teacher with another vocabulary would score different tokens
    under the same numbers, and training on that is silent garbage.
    """
    mine = list(tokenizer(probe)["input_ids"])
    theirs = teacher.tokenize(probe)
    if len(theirs) == len(mine) and all(t in (-1, m) for t, m in zip(theirs, mine)):
        return
    first = next((i for i, (t, m) in enumerate(zip(theirs, mine)) if t not in (-1, m)), min(len(theirs), len(mine)))
    theirs_at = theirs[first] if first < len(theirs) else "end"
    mine_at = f"{mine[first]} {tokenizer.convert_ids_to_tokens(mine[first])!r}" if first < len(mine) else "end"
    raise TeacherLogprobError(
        f"the teacher's tokenizer differs from the student's: the probe is {len(theirs)} tokens for the teacher, "
        f"{len(mine)} for the student, first difference at token {first} (teacher {theirs_at}, student {mine_at}); "
        "on-policy distillation needs the same vocabulary")
