"""OpenAIEngine: request shape, finish reasons, the answer cache and offline mode.

Most tests talk to a tiny stand-in server on loopback that counts requests; one
engine test starts vLLM's real OpenAI-compatible server with SmolLM2.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from offline_cov.engines import GenRequest
from offline_cov.engines.openai_engine import OpenAIEngine, cache_key, map_finish_reason
from offline_cov.errors import OfflineCovError
from offline_cov.prompts import label_messages, label_schema
from offline_cov.taxonomy import parse_taxonomy_list

TAXONOMY = parse_taxonomy_list("coding,math,creative_writing")
SCHEMA = label_schema(TAXONOMY)
SAMPLES = [
    "Write a Python function that reverses a linked list.",
    "Prove that the square root of 2 is irrational.",
    "Write a short poem about autumn leaves.",
]


def requests_for(texts, schema=SCHEMA, max_tokens=64):
    return [GenRequest(label_messages(TAXONOMY, t), schema, max_tokens) for t in texts]


class StandIn:
    """A chat-completions server that records each request and answers from a queue or a default."""

    def __init__(self):
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.queue: list[tuple[int, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append(body)
                outer.headers.append(dict(self.headers))
                status, answer = outer.queue.pop(0) if outer.queue else (200, outer.default_answer())
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @staticmethod
    def default_answer(content='{"primary":"math","difficulty":"easy","also":[]}', finish="stop"):
        return {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": finish}],
                "usage": {"completion_tokens": 9}}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    server = StandIn()
    yield server
    server.close()


def test_request_body_is_strict_json_schema_at_temperature_zero(stand_in, tmp_path):
    engine = OpenAIEngine(base_url=stand_in.base, model="m1", api_key="sk-test", cache_path=tmp_path / "c.jsonl")
    [result] = engine.generate(requests_for(SAMPLES[:1]))
    assert result.ok and json.loads(result.text)["primary"] == "math"
    assert result.output_tokens == 9
    body = stand_in.received[0]
    assert body["temperature"] == 0
    assert body["model"] == "m1"
    assert body["messages"] == label_messages(TAXONOMY, SAMPLES[0])
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    }
    assert stand_in.headers[0]["Authorization"] == "Bearer sk-test"


def test_no_schema_sends_no_response_format(stand_in):
    engine = OpenAIEngine(base_url=stand_in.base, model="m1")
    engine.generate(requests_for(SAMPLES[:1], schema=None))
    assert "response_format" not in stand_in.received[0]
    assert "Authorization" not in stand_in.headers[0]


def test_cache_answers_a_second_engine_without_requests(stand_in, tmp_path):
    cache = tmp_path / "baseline.jsonl"
    first = OpenAIEngine(base_url=stand_in.base, model="m1", cache_path=cache)
    answers = first.generate(requests_for(SAMPLES))
    assert len(stand_in.received) == 3 and first.requests_sent == 3
    assert len(cache.read_text().splitlines()) == 3

    second = OpenAIEngine(base_url=stand_in.base, model="m1", cache_path=cache)
    again = second.generate(requests_for(SAMPLES))
    assert len(stand_in.received) == 3, "a cached answer must not be asked for again"
    assert second.requests_sent == 0 and second.cache_hits == 3
    assert [a.text for a in again] == [a.text for a in answers]

    other_model = OpenAIEngine(base_url=stand_in.base, model="m2", cache_path=cache)
    other_model.generate(requests_for(SAMPLES[:1]))
    assert len(stand_in.received) == 4, "the model is part of the cache key"


def test_offline_reads_the_cache_and_never_sends(tmp_path, stand_in):
    cache = tmp_path / "baseline.jsonl"
    OpenAIEngine(base_url=stand_in.base, model="m1", cache_path=cache).generate(requests_for(SAMPLES[:2]))
    offline = OpenAIEngine(cache_path=cache, offline=True)  # model read from the cache
    assert offline.model_name == "m1"
    hit, miss = offline.generate(requests_for(SAMPLES[1:]))
    assert hit.ok
    assert miss.finish_reason == "error" and "not in the baseline cache" in miss.extra["error"]
    assert len(stand_in.received) == 2
    assert offline.info()["cache_misses"] == 1


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"finish_reason": "stop", "message": {"content": "{}"}}, "stop"),
        ({"finish_reason": "length", "message": {"content": "{"}}, "length"),
        ({"finish_reason": "content_filter", "message": {"content": ""}}, "content_filter"),
        ({"finish_reason": "stop", "message": {"content": None, "refusal": "I can't"}}, "refusal"),
        ({"finish_reason": "tool_calls", "message": {}}, "error"),
        ({"finish_reason": None}, "error"),
    ],
)
def test_finish_reason_mapping(choice, expected):
    assert map_finish_reason(choice) == expected


def test_length_is_reported_and_http_errors_are_results_not_cached(stand_in, tmp_path):
    cache = tmp_path / "c.jsonl"
    stand_in.queue = [
        (200, StandIn.default_answer('{"primary":', "length")),
        (400, {"error": {"message": "bad schema"}}),
    ]
    engine = OpenAIEngine(base_url=stand_in.base, model="m1", cache_path=cache, concurrency=1, retries=0)
    cut, failed = engine.generate(requests_for(SAMPLES[:2]))
    assert cut.finish_reason == "length" and not cut.ok
    assert failed.finish_reason == "error" and "HTTP 400" in failed.extra["error"]
    cached = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [c["finish_reason"] for c in cached] == ["length"]


def test_server_errors_are_retried(stand_in):
    stand_in.queue = [(503, {"error": "busy"})]
    engine = OpenAIEngine(base_url=stand_in.base, model="m1", retries=2)
    [result] = engine.generate(requests_for(SAMPLES[:1]))
    assert result.ok and len(stand_in.received) == 2


def test_settings_from_environment(monkeypatch, stand_in):
    monkeypatch.setenv("OFFLINE_COV_API_BASE", stand_in.base)
    monkeypatch.setenv("OFFLINE_COV_API_MODEL", "env-model")
    monkeypatch.setenv("OFFLINE_COV_API_KEY", "env-key")
    engine = OpenAIEngine()
    engine.generate(requests_for(SAMPLES[:1]))
    assert stand_in.received[0]["model"] == "env-model"
    assert stand_in.headers[0]["Authorization"] == "Bearer env-key"
    assert "env-key" not in json.dumps(engine.info())


def test_needs_an_endpoint_unless_offline(monkeypatch):
    monkeypatch.delenv("OFFLINE_COV_API_BASE", raising=False)
    with pytest.raises(OfflineCovError, match="no API endpoint"):
        OpenAIEngine(model="m1")


def test_cache_key_depends_on_model_messages_and_schema():
    msgs = label_messages(TAXONOMY, "x")
    base = cache_key("m", msgs, SCHEMA)
    assert base == cache_key("m", json.loads(json.dumps(msgs)), dict(reversed(list(SCHEMA.items()))))
    assert len({base, cache_key("n", msgs, SCHEMA), cache_key("m", label_messages(TAXONOMY, "y"), SCHEMA),
                cache_key("m", msgs, None)}) == 4


def test_truncate_and_count_are_character_estimates():
    engine = OpenAIEngine(base_url="http://127.0.0.1:9", model="m")
    assert engine.count_tokens("abcdefghi") == 3
    assert engine.truncate("abcdefghij", 2) == "abcdefgh"
    assert engine.truncate("abc", 2) == "abc"


# ---------------------------------------------------------------- a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"vLLM server not healthy after {timeout_s} s")


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    pytest.importorskip("vllm")
    from offline_cov.registry import load_registry, resolve_weights

    weights = resolve_weights(load_registry().get("smollm2-135m"))
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(weights),
             "--served-model-name", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
             "--max-model-len", "2048", "--dtype", "float32", "--enforce-eager"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout_s=400)
        yield f"http://127.0.0.1:{port}/v1"
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"{exc}; log tail:\n{log.read_text()[-3000:]}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.engine
def test_real_vllm_server_schema_valid_answers_and_cache_reuse(vllm_server, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    cache = tmp_path / "baseline.jsonl"
    engine = OpenAIEngine(base_url=vllm_server, model="smollm2-135m", cache_path=cache)
    results = engine.generate(requests_for(SAMPLES, max_tokens=96))
    assert engine.requests_sent == 3
    for result in results:
        assert result.finish_reason == "stop", result
        answer = json.loads(result.text)
        jsonschema.validate(answer, SCHEMA)
        assert answer["primary"] in TAXONOMY.names
        assert result.output_tokens > 0

    again = OpenAIEngine(base_url=vllm_server, model="smollm2-135m", cache_path=cache)
    repeat = again.generate(requests_for(SAMPLES, max_tokens=96))
    assert again.requests_sent == 0 and again.cache_hits == 3
    assert [r.text for r in repeat] == [r.text for r in results]
