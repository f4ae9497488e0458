"""A half-precision model on a CPU without half-precision instructions runs in float32."""

from offline_cov import registry
from offline_cov.engines.vllm_engine import for_this_cpu
from offline_cov.registry import cpu_dtype, cpu_flags, load_registry

X86_AVX2 = {"fpu", "sse4_2", "avx", "avx2", "fma"}
X86_SAPPHIRE = X86_AVX2 | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


def test_cpu_flags_reads_x86_flags_and_aarch64_features(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2 fma\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd fphp asimdhp bf16\nCPU implementer\t: 0x41\n")
    assert cpu_flags(str(x86)) == {"fpu", "avx2", "fma"}
    assert cpu_flags(str(arm)) == {"fp", "asimd", "fphp", "asimdhp", "bf16"}
    assert cpu_flags(str(tmp_path / "missing")) is None


def test_bfloat16_becomes_float32_only_where_the_cpu_lacks_it():
    assert cpu_dtype("bfloat16", X86_AVX2) == "float32"
    assert cpu_dtype("bfloat16", X86_SAPPHIRE) == "bfloat16"
    assert cpu_dtype("bfloat16", {"avx512_bf16"}) == "bfloat16"
    assert cpu_dtype("float16", X86_AVX2) == "float32"
    assert cpu_dtype("float32", X86_AVX2) == "float32"
    assert cpu_dtype("auto", X86_AVX2) == "auto"
    assert cpu_dtype("bfloat16", None) == "bfloat16"  # unreadable flags: models.yaml decides


def test_the_run_notes_the_change(monkeypatch):
    spec = load_registry().get("qwen2.5-coder-1.5b")
    assert spec.vllm.dtype == "bfloat16"
    monkeypatch.delenv("OFFLINE_COV_CPU_TUNING", raising=False)
    monkeypatch.setattr(registry, "cpu_flags", lambda: X86_AVX2)
    tuning = {}
    run = for_this_cpu(spec, tuning)
    assert run.vllm.dtype == "float32" and spec.vllm.dtype == "bfloat16"
    assert "models.yaml says bfloat16" in tuning["dtype"]
    monkeypatch.setattr(registry, "cpu_flags", lambda: X86_SAPPHIRE)
    kept = {}
    assert for_this_cpu(spec, kept) is spec and kept == {}


def test_cpu_tuning_off_keeps_the_models_yaml_dtype(monkeypatch):
    spec = load_registry().get("qwen2.5-coder-1.5b")
    monkeypatch.setenv("OFFLINE_COV_CPU_TUNING", "0")
    monkeypatch.setattr(registry, "cpu_flags", lambda: X86_AVX2)
    tuning = {}
    assert for_this_cpu(spec, tuning).vllm.dtype == "bfloat16" and tuning == {}
    assert registry.cpu_run_dtype("bfloat16") == "bfloat16"  # the transformers engine's dtype too


def test_a_dtype_change_becomes_one_run_warning():
    from offline_cov.run import dtype_warning

    engine = {"engine": "vllm", "cpu_runtime": {"dtype": "float32 (models.yaml says bfloat16; this CPU has no bfloat16 instructions)"}}
    first = dtype_warning(engine, [])
    assert len(first) == 1 and "float32" in first[0] and "--labeler fused" in first[0]
    assert dtype_warning(engine, first) == []
    assert dtype_warning({"engine": "vllm", "cpu_runtime": {"LD_PRELOAD": ""}}, []) == []
    assert dtype_warning({"engine": "vllm", "loaded": False}, []) == []


def test_both_engines_note_a_change_the_same_way():
    from offline_cov.registry import dtype_change

    assert dtype_change("bfloat16", "bfloat16") == {}
    note = dtype_change("bfloat16", "float32")["dtype"]
    assert note.startswith("float32 ") and "models.yaml says bfloat16" in note


def test_the_fused_view_reads_in_bfloat16_only_where_the_cpu_has_it(monkeypatch):
    """SmolLM2's hidden states (`fused`, the ensembles' second expert) in bfloat16 on a CPU with
    bfloat16 instructions (bench/encoder_dtype.py), float32 on an AVX2 CPU, where torch would emulate it,
    on flags that cannot be read, and with the CPU tuning off; a GPU reads in bfloat16."""
    from offline_cov.labelers.fused import FusedLabeler, encoder_dtype

    monkeypatch.delenv("OFFLINE_COV_CPU_TUNING", raising=False)
    monkeypatch.setattr(registry, "cpu_flags", lambda: X86_SAPPHIRE)
    assert encoder_dtype("cpu") == "bfloat16" and encoder_dtype("cuda") == "bfloat16"
    on_bf16 = FusedLabeler.cache_identity("smollm2")
    monkeypatch.setattr(registry, "cpu_flags", lambda: X86_AVX2)
    assert encoder_dtype("cpu") == "float32"
    assert FusedLabeler.cache_identity("smollm2") == on_bf16  # as vLLM's dtype: shards of both kinds merge
    monkeypatch.setattr(registry, "cpu_flags", lambda: None)
    assert encoder_dtype("cpu") == "float32"
    monkeypatch.setattr(registry, "cpu_flags", lambda: X86_SAPPHIRE)
    monkeypatch.setenv("OFFLINE_COV_CPU_TUNING", "0")
    assert encoder_dtype("cpu") == "float32"
