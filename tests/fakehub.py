"""A loopback fake of the Hugging Face Hub API: enough for create_repo, upload_folder (Git-LFS path),
downloads, PEFT and datasets round trips. For client-side contract tests; written for
huggingface_hub 2.4 / datasets 5.2 (see ../shared/notes/hub-offline.md).

Usage:
    with FakeHub() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_fake", ...}
        ...                      # run the client in a subprocess with that environment
        hub.requests             # [(method, path)] seen, in order
        hub.files("model", "me/adapter")   # {path: bytes} on main
        hub.fail = (401, "bad credentials: {authorization}")   # every request answers this
        hub.fail_commits = 1                                  # the next commit answers 500

Unknown routes answer 404 with a message naming the route, so drift in the client shows loudly.
Run clients with HF_HUB_DISABLE_XET=1: binary files go through the legacy LFS batch + PUT.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".parquet", ".bin", ".pt", ".gguf", ".arrow")
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, repo_type: str, repo_id: str, private: bool):
        self.type, self.id, self.private = repo_type, repo_id, private
        self.branches: dict[str, dict] = {"main": {"sha": "0" * 40, "files": {}, "lfs": set()}}
        self.commits = 0


class FakeHub:
    """In-memory Hub on 127.0.0.1:<free port>, served from a background thread."""

    def __init__(self, user: str = "tester"):
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 -> bytes
        self.requests: list[tuple[str, str]] = []
        # (status, message) answered to every request; "{authorization}" echoes the request's header,
        # as a misbehaving proxy or Hub error page may (what publish must never print).
        self.fail: tuple[int, str] | None = None
        self.fail_commits = 0  # this many commits answer 500 (an upload cut off before its commit)
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            fake = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_type: str, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        return dict(self.repos[(repo_type, repo_id)].branches[branch]["files"])

    def writes(self) -> list[tuple[str, str]]:
        """Requests that change something (what a dry run must never send)."""
        return [(m, p) for m, p in self.requests if m in ("POST", "PUT", "DELETE")]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    # ------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, payload: bytes = b"", ctype: str = "application/json", headers=None,
              head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head_only:
            self.wfile.write(payload)

    def _json(self, status: int, obj, headers=None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, status: int, code: str, message: str, head_only: bool = False) -> None:
        self._send(status, json.dumps({"error": message}).encode(), headers={"X-Error-Code": code,
                                                                              "X-Error-Message": message},
                   head_only=head_only)

    def do_GET(self):
        self._route("GET")

    def do_HEAD(self):
        self._route("HEAD")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        with self.fake.lock:
            self.fake.requests.append((method, path))
        if self.fake.fail is not None:
            status, message = self.fake.fail
            return self._error(status, "Fault", message.replace("{authorization}", self.headers.get("Authorization", "")))
        for pattern, verb, handler in ROUTES:
            m = re.fullmatch(pattern, path)
            if m and (verb == method or (verb == "GET" and method == "HEAD")):
                try:
                    return handler(self, method, query, **m.groupdict())
                except KeyError as exc:
                    return self._error(404, "RepoNotFound", f"fake hub: not found: {exc}")
        self._error(404, "RouteNotFound", f"fake hub: no route for {method} {path}")

    def _repo(self, t: str, repo_id: str) -> Repo | None:
        return self.fake.repos.get((t, repo_id))

    def _branch(self, repo: Repo, rev: str) -> dict | None:
        if rev in repo.branches:
            return repo.branches[rev]
        return next((b for b in repo.branches.values() if b["sha"] == rev), None)

    def _locate(self, t: str, repo_id: str, rev: str, head_only: bool = False) -> dict | None:
        """The branch ``rev`` of a repo, or None after answering 404 the way the Hub does."""
        repo = self._repo(t, repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head_only)
            return None
        branch = self._branch(repo, rev)
        if branch is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head_only)
        return branch

    # ------------------------------------------------------------ routes

    def create_repo(self, method, query):
        body = json.loads(self._body() or b"{}")
        t = body.get("type") or "model"
        repo_id = f"{body.get('organization') or self.fake.user}/{body['name']}"
        url = f"{self.fake.url}/{PREFIX[t]}{repo_id}"
        with self.fake.lock:
            if (t, repo_id) in self.fake.repos:
                return self._json(409, {"error": "You already created this repo", "url": url})
            self.fake.repos[(t, repo_id)] = Repo(t, repo_id, body.get("visibility") == "private" or
                                                 bool(body.get("private")))
        self._json(200, {"url": url, "name": repo_id})

    def whoami(self, method, query):
        self._json(200, {"type": "user", "name": self.fake.user, "orgs": [],
                         "auth": {"accessToken": {"role": "write"}}})

    def validate_yaml(self, method, query):
        self._body()
        self._json(200, {"errors": [], "warnings": []})

    def repo_info(self, method, query, t, repo_id, rev=None):
        repo = self._repo(t, repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        branch = self._branch(repo, rev or "main")
        if branch is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        self._json(200, {"id": repo_id, "sha": branch["sha"], "private": repo.private,
                         "siblings": [{"rfilename": p} for p in sorted(branch["files"])],
                         "cardData": {}, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z"})

    def preupload(self, method, query, t, repo_id, rev):
        repo = self._repo(t, repo_id)
        files = json.loads(self._body())["files"]
        branch = self._branch(repo, rev) or {"files": {}}
        out = []
        for f in files:
            mode = "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular"
            entry = {"path": f["path"], "uploadMode": mode, "shouldIgnore": False}
            if f["path"] in branch["files"]:  # the real Hub names an LFS file by the sha256 of its content
                data = branch["files"][f["path"]]
                entry["oid"] = hashlib.sha256(data).hexdigest() if f["path"] in branch["lfs"] else git_sha1(data)
            out.append(entry)
        self._json(200, {"files": out})

    def lfs_batch(self, method, query, prefix, repo_id):
        body = json.loads(self._body())
        objects = []
        for obj in body["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.fake.lfs:
                entry["actions"] = {"upload": {"href": f"{self.fake.url}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   ctype="application/vnd.git-lfs+json")

    def lfs_put(self, method, query, oid):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "BadRequest", "sha256 does not match the oid")
        self.fake.lfs[oid] = data
        self._send(200, b"")

    def commit(self, method, query, t, repo_id, rev):
        branch = self._locate(t, repo_id, rev)
        if branch is None:
            return
        repo = self._repo(t, repo_id)
        lines = [json.loads(x) for x in self._body().decode().splitlines() if x.strip()]
        if self.fake.fail_commits > 0:
            self.fake.fail_commits -= 1
            return self._error(500, "Fault", "fake hub: the commit was cut off")
        with self.fake.lock:
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "file":
                    branch["files"][value["path"]] = base64.b64decode(value["content"])
                    branch["lfs"].discard(value["path"])
                elif key == "lfsFile":
                    if value["oid"] not in self.fake.lfs:
                        return self._error(422, "LfsMissing", f"LFS object {value['oid']} was never uploaded")
                    branch["files"][value["path"]] = self.fake.lfs[value["oid"]]
                    branch["lfs"].add(value["path"])
                elif key == "deletedFile":
                    branch["files"].pop(value["path"], None)
                elif key == "deletedFolder":
                    for p in [p for p in branch["files"] if p.startswith(value["path"].rstrip("/") + "/")]:
                        branch["files"].pop(p)
            repo.commits += 1
            branch["sha"] = hashlib.sha1(f"{repo_id}{repo.commits}{sorted(branch['files'])}".encode()).hexdigest()
        self._json(200, {"commitUrl": f"{self.fake.url}/{PREFIX[t]}{repo_id}/commit/{branch['sha']}",
                         "commitOid": branch["sha"]})

    def create_branch(self, method, query, t, repo_id, name):
        repo = self._repo(t, repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        self._body()
        if name in repo.branches:
            return self._error(409, "Conflict", f"Reference already exists: {name}")
        main = repo.branches["main"]
        repo.branches[name] = {"sha": main["sha"], "files": dict(main["files"]), "lfs": set(main["lfs"])}
        self._json(200, {})

    def _entry(self, branch: dict, path: str) -> dict:
        data = branch["files"][path]
        entry = {"type": "file", "path": path, "size": len(data), "oid": git_sha1(data)}
        if path in branch["lfs"]:
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def tree(self, method, query, t, repo_id, rev, sub=None):
        branch = self._locate(t, repo_id, rev)
        if branch is None:
            return
        sub = (sub or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = sub + "/" if sub else ""
        files = [p for p in sorted(branch["files"]) if p.startswith(prefix)]
        if sub and not files:
            return self._error(404, "EntryNotFound", f"{sub} does not exist on {rev}")
        entries, dirs = [], set()
        for p in files:
            rest = p[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                d = prefix + "/".join(rest[:depth])
                if (recursive or depth == 1) and d not in dirs:
                    dirs.add(d)
                    entries.append({"type": "directory", "path": d, "size": 0, "oid": git_sha1(d.encode())})
            if recursive or len(rest) == 1:
                entries.append(self._entry(branch, p))
        self._json(200, entries)

    def paths_info(self, method, query, t, repo_id, rev):
        branch = self._locate(t, repo_id, rev)
        if branch is None:
            return
        raw = self._body().decode()
        try:
            paths = json.loads(raw)["paths"]
        except (json.JSONDecodeError, KeyError):
            paths = parse_qs(raw).get("paths", [])
        out = []
        for p in paths:
            if p in branch["files"]:
                out.append(self._entry(branch, p))
            elif any(f.startswith(p.rstrip("/") + "/") for f in branch["files"]):
                out.append({"type": "directory", "path": p, "size": 0, "oid": git_sha1(p.encode())})
        self._json(200, out)

    def resolve(self, method, query, prefix, repo_id, rev, path):
        t = {"": "model", "datasets/": "dataset", "spaces/": "space"}[prefix or ""]
        branch = self._locate(t, repo_id, rev, head_only=method == "HEAD")
        if branch is None:
            return
        if path not in branch["files"]:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", method == "HEAD")
        data = branch["files"][path]
        etag = hashlib.sha256(data).hexdigest() if path in branch["lfs"] else git_sha1(data)
        self._send(200, data, ctype="application/octet-stream", head_only=method == "HEAD",
                   headers={"X-Repo-Commit": branch["sha"], "ETag": f'"{etag}"', "Accept-Ranges": "bytes"})


_T = r"(?P<t>model|dataset|space)s"
_ID = r"(?P<repo_id>[^/]+/[^/]+)"
ROUTES = [
    (r"/api/repos/create", "POST", _Handler.create_repo),
    (r"/api/whoami-v2", "GET", _Handler.whoami),
    (r"/api/validate-yaml", "POST", _Handler.validate_yaml),
    (rf"/api/{_T}/{_ID}", "GET", _Handler.repo_info),
    (rf"/api/{_T}/{_ID}/revision/(?P<rev>.+)", "GET", _Handler.repo_info),
    (rf"/api/{_T}/{_ID}/preupload/(?P<rev>.+)", "POST", _Handler.preupload),
    (rf"/api/{_T}/{_ID}/commit/(?P<rev>.+)", "POST", _Handler.commit),
    (rf"/api/{_T}/{_ID}/branch/(?P<name>.+)", "POST", _Handler.create_branch),
    (rf"/api/{_T}/{_ID}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", "GET", _Handler.tree),
    (rf"/api/{_T}/{_ID}/paths-info/(?P<rev>.+)", "POST", _Handler.paths_info),
    (r"/(?P<prefix>datasets/|spaces/)?(?P<repo_id>[^/]+/[^/]+)\.git/info/lfs/objects/batch", "POST",
     _Handler.lfs_batch),
    (r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "PUT", _Handler.lfs_put),
    (r"/(?P<prefix>datasets/|spaces/)?(?P<repo_id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "GET",
     _Handler.resolve),
]
