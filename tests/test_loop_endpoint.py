"""The STaR loop's ``generator: endpoint`` against a real loopback server that speaks vLLM's runtime LoRA API
(StudentServer with runtime_lora): the previous round's adapter is loaded by name, round 2 generates with it,
a re-run repeats nothing, and bad endpoint settings fail in one line naming the key or the URL, with no secret."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from distill.cli import main
from distill.config import load_config
from distill.errors import ConfigError, DistillError
from distill.evaluate.config import EvalConfig
from distill.pipeline.config import PipelineConfig
from distill.pipeline.lora_endpoint import LoraEndpoint, adapter_name
from distill.pipeline.state import content_hash
from distill.pipeline.student_teacher import student_server
from distill.teacher.server import TeacherServer
from pipeline_fixtures import states, write_offline_problems, write_recipe
from tiny_student import make_tiny_student

KEY = "sk-loopback-" + "k3y" * 8  # key-shaped, so any leak is also caught by shape
VAR = "DISTILL_TEST_STUDENT_KEY"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    train, held_out = write_offline_problems(folder, 8, 4)
    return {"student": make_tiny_student(folder / "student"), "train": train, "eval": held_out}


def _server(assets, **options):
    cfg = EvalConfig(student=str(assets["student"]), temperature=0.8, max_new_tokens=24, progress=False)
    return student_server(cfg, None, model="tiny-base", **options)


def _loop(url, **more):
    return {"rounds": 2, "generator": "endpoint", "base_url": url, "patience": 2, "max_new_tokens": 24, **more}


def _everything_written(run_dir):
    return "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()
                   and p.suffix in (".json", ".jsonl", ".yaml", ".md", ".html", ".txt"))


def test_round_two_loads_round_one_adapter_and_generates_with_it(tmp_path, assets, monkeypatch, capsys):
    monkeypatch.setenv(VAR, KEY)
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.25, seed=1) as teacher, \
            _server(assets, runtime_lora=True, api_key=KEY) as server:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url,
                              loop=_loop(server.base_url, api_key_env=VAR), eval_before=False)
        run_dir = tmp_path / "run"
        assert main(["run", str(recipe), f"run_dir={run_dir}"]) == 0
        adapter = (run_dir / "adapter").resolve()
        name = adapter_name(1, content_hash(adapter))
        assert server.adapters == {name: str(adapter)}  # round 1's adapter, under its content-named name
        traces = [json.loads(x) for x in (run_dir / "round-2" / "traces.jsonl").read_text().splitlines()]
        assert traces and {t["model"] for t in traces} == {name}
        assert server.stats.ok == len(traces)  # every round-2 sample was answered by the server, named as the adapter
        assert (run_dir / "round-2" / "adapter" / "adapter_model.safetensors").is_file()
        assert "loaded into your inference server (loop.generator=endpoint)" in (run_dir / "report.md").read_text()
        first, served, requests = states(run_dir / "round-2"), server.stats.requests, teacher.stats.requests

        assert main(["run", str(recipe), f"run_dir={run_dir}"]) == 0  # the same command: nothing repeated
        assert server.stats.requests == served and teacher.stats.requests == requests
        assert all(states(run_dir / "round-2")[n]["finished_at"] == first[n]["finished_at"] for n in first)
    out = capsys.readouterr()
    assert KEY not in out.out + out.err and KEY not in _everything_written(run_dir)


def test_the_server_speaks_vllm_load_api(assets, tmp_path):
    adapter = tmp_path / "not-an-adapter"
    adapter.mkdir()
    with _server(assets, runtime_lora=True, api_key=KEY) as server:
        url = server.base_url.rstrip("/")

        def post(path, body, key=KEY):
            headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}
            request = urllib.request.Request(url.rsplit("/v1", 1)[0] + path, json.dumps(body).encode(), headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        assert post("/v1/load_lora_adapter", {"lora_name": "x"}, key=None)[0] == 401
        status, text = post("/v1/load_lora_adapter", {"lora_name": "x"})
        assert status == 400 and "Both 'lora_name' and 'lora_path' must be provided." in text
        status, text = post("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": str(adapter)})
        assert status == 404 and json.loads(text)["error"]["type"] == "NotFoundError"
        status, text = post("/v1/load_lora_adapter", {"lora_name": "tiny-base", "lora_path": str(adapter)})
        assert status == 400 and "has already been loaded" in text
        status, text = post("/v1/chat/completions", {"model": "nobody", "messages": [{"role": "user", "content": "1+1"}]})
        assert status == 404 and json.loads(text)["error"] == {
            "message": "The model `nobody` does not exist.", "type": "NotFoundError", "param": None, "code": 404}
        # "already loaded" is success for the loop: the name is the adapter's content hash
        LoraEndpoint(server.base_url, "vllm", KEY).load("tiny-base", str(adapter))


@pytest.mark.parametrize("loop, says", [
    (_loop(None), "loop.base_url is not set"),
    (_loop("localhost:8000"), r"loop.base_url must be an http\(s\):// URL"),
    (_loop("http://127.0.0.1:9/v1", lora_api="tgi"), "lora_api"),
    (_loop("http://127.0.0.1:9/v1", api_key_env="abc.secret-value"), "loop.api_key_env must be the NAME"),
])
def test_bad_endpoint_settings_fail_naming_the_key(tmp_path, assets, loop, says):
    recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"],
                          base_url="http://127.0.0.1:9/v1", loop=loop)
    with pytest.raises(ConfigError, match=says) as caught:
        load_config(PipelineConfig, recipe)
    assert "secret-value" not in str(caught.value)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["unset key", "unreachable", "no runtime lora"])
def test_endpoint_trouble_stops_the_run_before_the_teacher_is_asked(tmp_path, assets, monkeypatch, capsys, case):
    monkeypatch.setenv(VAR, KEY)
    if case == "unset key":
        monkeypatch.delenv(VAR)
    with TeacherServer(dialect="deepseek", model="test-teacher") as teacher, \
            _server(assets, runtime_lora=False, api_key=KEY) as server:
        url = f"http://127.0.0.1:{_free_port()}/v1" if case == "unreachable" else server.base_url
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url,
                              loop=_loop(url, api_key_env=VAR))
        capsys.readouterr()  # the server's own loading output: not the run's
        assert main(["run", str(recipe), f"run_dir={tmp_path / 'run'}"]) != 0
        assert teacher.stats.requests == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    expected = {"unset key": f"loop.api_key_env: environment variable {VAR} is not set",
                "unreachable": f"cannot reach {url.removesuffix('/v1')}/v1/load_lora_adapter",
                "no runtime lora": "does not offer runtime LoRA loading (HTTP 404)"}[case]
    assert len(err) == 1 and expected in err[0], err
    assert KEY not in err[0] and not (tmp_path / "run" / "traces.jsonl").exists()


def test_an_adapter_the_server_cannot_see_fails_naming_the_url_and_path(tmp_path, assets):
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.25, seed=1) as teacher, \
            _server(assets, runtime_lora=True) as server:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url,
                              loop=_loop(server.base_url, server_run_dir="/mnt/elsewhere"), eval_before=False)
        with pytest.raises(DistillError, match=r"did not load /mnt/elsewhere/adapter as distill-round-1-\w+ "
                                               r"\(HTTP 404: No adapter found for /mnt/elsewhere/adapter\)"):
            from distill.pipeline.runner import run

            run(load_config(PipelineConfig, recipe, [f"run_dir={tmp_path / 'run'}"]))
        assert server.stats.requests == 0 and not (tmp_path / "run" / "round-2" / "traces.jsonl").exists()



class _SGLang:
    """A loopback server with SGLang's load route: POST /load_lora_adapter at the root, JSON {success, error_message}."""

    def __init__(self):
        import http.server
        import threading

        seen, loaded = [], set()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
                seen.append((self.path, body))
                if self.path != "/load_lora_adapter":
                    return self._send(404, {"detail": "Not Found"})
                if "lora_name" not in body:
                    return self._send(422, {"detail": [{"msg": "Field required"}]})
                if body["lora_name"] in loaded:
                    return self._send(400, {"success": False, "error_message":
                                            f"LoRA adapter {body['lora_name']} is already loaded"})
                if body["lora_path"].startswith("/missing"):
                    return self._send(400, {"success": False, "error_message": f"cannot read {body['lora_path']}"})
                loaded.add(body["lora_name"])
                self._send(200, {"success": True, "error_message": "", "loaded_adapters": {n: "" for n in loaded}})

            def _send(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.seen, self.loaded = seen, loaded
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_sglang_load_api_at_the_server_root():
    server = _SGLang()
    with server as base_url:
        endpoint = LoraEndpoint(base_url, "sglang")
        endpoint.probe()  # 422 for an empty body: the route is there
        endpoint.load("distill-round-1-abc", "/runs/x/adapter")
        endpoint.load("distill-round-1-abc", "/runs/x/adapter")  # already loaded: the same bytes, done
        with pytest.raises(DistillError, match=r"did not load /missing/adapter as r2 \(HTTP 400: cannot read "
                                               r"/missing/adapter\)"):
            endpoint.load("r2", "/missing/adapter")
        with pytest.raises(DistillError, match="does not offer runtime LoRA loading"):
            LoraEndpoint(base_url, "vllm").probe()  # vLLM's route on an SGLang server: 404
    assert [path for path, _ in server.seen][:3] == ["/load_lora_adapter"] * 3
    assert server.loaded == {"distill-round-1-abc"}


@pytest.mark.parametrize("api", ["vllm", "sglang"])
def test_round_generate_asks_for_the_adapter_by_its_content_name(tmp_path, assets, api):
    from distill.pipeline.wiring import materialize_sources, plan

    recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url="http://127.0.0.1:9/v1",
                          loop=_loop("http://10.0.0.5:8000/v1", lora_api=api, api_key_env=VAR),
                          generate={"extra_body": {"top_k": 20}})
    cfg = load_config(PipelineConfig, recipe)
    run_dir = tmp_path / "run"
    previous = run_dir / "adapter"
    previous.mkdir(parents=True)
    (previous / "adapter_model.safetensors").write_bytes(b"round one")
    gen = plan(materialize_sources(cfg, run_dir), run_dir, number=2)[0].cfg
    name = adapter_name(1, content_hash(previous))
    assert (gen.model, gen.base_url, gen.api_key_env, gen.provider) == (name, "http://10.0.0.5:8000/v1", VAR, api)
    assert gen.extra_body == ({"top_k": 20, "lora_path": name} if api == "sglang" else {"top_k": 20})


def test_an_unreachable_endpoint_with_a_password_in_its_url_is_named_without_it():
    from distill.errors import DistillError
    from distill.pipeline.lora_endpoint import LoraEndpoint

    with pytest.raises(DistillError) as caught:
        LoraEndpoint("http://bob:s3cret@127.0.0.1:1/v1", timeout=5).probe()
    assert "s3cret" not in str(caught.value) and "127.0.0.1:1/v1/load_lora_adapter" in str(caught.value)
