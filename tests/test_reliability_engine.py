"""Reliability on the real engine: resume after kill -9, cache hits, finish_reason, no network."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXAMPLE, REPO, shell_env

from offline_cov.labelers.base import LabelSettings
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.taxonomy import parse_taxonomy_list

pytestmark = pytest.mark.engine
TAXONOMY = "math,code,writing,reasoning,factual_qa"
CLI = [str(Path(sys.executable).with_name("offline-cov"))]  # the console script, as users run it
KILL_RUN_SAMPLES = 32


def cli_args(out: Path, cache: Path, *extra) -> list[str]:
    return CLI + ["analyze", str(EXAMPLE), "--taxonomy", TAXONOMY, "--model", "smollm2-135m", "--batch-size", "8",
                  "--out", str(out), "--cache", str(cache), "-q", *extra]


def cached_rows(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def session_processes(session: int, wait_s: float) -> list[str]:
    """The processes still in `session` (the killed run's children) once they are gone or `wait_s` passed."""
    deadline = time.time() + wait_s
    while True:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != "Z":  # the session id; zombies are gone already
                left.append(stat.parent.name)
        if not left or time.time() > deadline:
            return left
        time.sleep(0.5)


def kill_9_once_labeling(args: list[str], cache: Path, errors: Path, rows: int) -> tuple[list[str], list[str]]:
    """Start the run, kill -9 it (the run alone, as the OOM killer does) once `rows` labels are cached,
    and return the processes of its session just before, and those still there 30 s after (then
    killed, so that a failing test leaves none behind)."""
    with errors.open("w") as err:
        proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err, env=shell_env())
    deadline = time.time() + 400
    while cached_rows(cache) < rows and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    before = session_processes(proc.pid, wait_s=0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = session_processes(proc.pid, wait_s=30)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return before, left


def guarded_env(log: Path) -> dict:
    """A user's shell (shell_env) under the network guard, without the offline switches the suite sets."""
    env = dict(shell_env(), NETGUARD_LOG=str(log))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "netguard"), env.get("PYTHONPATH", "")])
    for switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS"):
        env.pop(switch, None)
    return env


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, vllm_engine):
    cache, out = tmp_path / "cache.sqlite", tmp_path / "report.json"
    args = cli_args(out, cache, "--sample", str(KILL_RUN_SAMPLES))  # a slice keeps the three runs short
    errors = tmp_path / "stderr.txt"
    _, left = kill_9_once_labeling(args, cache, errors, rows=16)
    assert left == [], f"vLLM processes outlived the killed run: {left}"  # they must follow it
    done_before = cached_rows(cache)
    assert 16 <= done_before < KILL_RUN_SAMPLES and not out.exists()
    assert errors.read_text() == ""  # -q: vLLM started and labeled, and nothing of it reached the terminal

    # the resume runs to the end under the network guard, with neither offline switch set by the shell:
    # the tool must switch offline mode on by itself and open no connection beyond loopback
    net_log = tmp_path / "net.log"
    loud = subprocess.run([a for a in args if a != "-q"], capture_output=True, text=True, env=guarded_env(net_log))
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert not net_log.exists(), net_log.read_text()
    for chatter in ("Triton", "WARNING", "FutureWarning", "utils.cpp", "Loading safetensors", "EngineCore"):
        assert chatter not in loud.stderr, loud.stderr  # the libraries' logs only with --verbose
    assert "starting vLLM" in loud.stderr and "report written to" in loud.stderr
    resumed = json.loads(out.read_text())
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["cache"]["hits"] >= done_before and meta["samples"]["labeled"] == KILL_RUN_SAMPLES

    opts = AnalyzeOptions(taxonomy=parse_taxonomy_list(TAXONOMY), sample=KILL_RUN_SAMPLES, use_cache=False,
                          label=LabelSettings(batch_size=8))
    uninterrupted = analyze(EXAMPLE, opts, engine=vllm_engine)
    assert resumed == uninterrupted.report.model_dump()

    # a third run labels nothing, loads no model, and writes the same report; -q prints nothing
    quiet = subprocess.run(args, check=True, capture_output=True, text=True, env=shell_env())
    assert quiet.stdout == quiet.stderr == "", quiet.stderr
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["cache"]["misses"] == 0 and meta["engine"] == {"engine": "vllm", "loaded": False}
    assert json.loads(out.read_text()) == resumed


def test_kill_9_of_python_m_offline_cov_cli_stops_vllm_too(tmp_path):
    """`python -m offline_cov.cli`, as a batch job may run it: vLLM's processes follow the killed run,
    as under the script (its children skip a main module named `__main__`; `cli/__main__.py`)."""
    cache = tmp_path / "cache.sqlite"
    args = [sys.executable, "-m", "offline_cov.cli", *cli_args(tmp_path / "r.json", cache, "--sample", "16")[1:]]
    children, left = kill_9_once_labeling(args, cache, tmp_path / "stderr.txt", rows=1)
    assert len(children) > 1 and left == [], f"vLLM processes outlived the killed run: {left} (of {children})"
    assert (tmp_path / "stderr.txt").read_text() == ""  # -q: nothing of vLLM's, its import-time lines included


def test_cut_off_answers_are_retried_then_recorded_as_failed(vllm_engine, tmp_path):
    opts = AnalyzeOptions(taxonomy=parse_taxonomy_list("code,writing"), sample=6,
                          label=LabelSettings(max_tokens=4), use_cache=False)
    result = analyze(EXAMPLE, opts, engine=vllm_engine)
    assert result.metadata["samples"]["failed"] == 6 and result.metadata["samples"]["retried"] == 6
    assert {f["finish_reason"] for f in result.metadata["failed"]} == {"length"}
    assert result.report.total_samples_analyzed == 6 and all(c.count == 0 for c in result.report.categories)


def test_the_network_guard_catches_an_attempt(tmp_path):
    log = tmp_path / "net.log"
    code = "import urllib.request\ntry:\n    urllib.request.urlopen('http://example.com', timeout=2)\nexcept OSError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], env=guarded_env(log), capture_output=True, text=True)
    assert "netguard: blocked" in out.stdout and "example.com" in log.read_text()
