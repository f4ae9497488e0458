"""The label cache on the fake engine: repeat for free, relabel only what changed."""

import json

from offline_cov.cache import LabelCache
from offline_cov.engines.fake import FakeEngine
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.taxonomy import parse_taxonomy_list

TAX = parse_taxonomy_list("math,code,writing")


def write(path, prompts):
    path.write_text("\n".join(json.dumps({"prompt": p}) for p in prompts))
    return path


def test_second_run_labels_nothing_and_gives_the_same_report(tmp_path):
    f = write(tmp_path / "d.jsonl", [f"task {i}" for i in range(60)])
    first_engine, second_engine = FakeEngine(seed=1), FakeEngine(seed=1)
    first = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=first_engine)
    second = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=second_engine)
    assert len(first_engine.requests) == 60 and second_engine.requests == []
    assert second.report == first.report and second.labels == first.labels
    assert second.metadata["cache"]["hits"] == 60 and second.metadata["cache"]["misses"] == 0


def test_hits_and_misses_add_up_to_the_samples_when_some_repeat(tmp_path):
    """Repeated samples counted once: a 24,000-sample audit saw 111 hits + 23,556 misses."""
    f = write(tmp_path / "d.jsonl", [f"task {i % 40}" for i in range(60)])
    first = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=FakeEngine(seed=1))
    second = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=FakeEngine(seed=1))
    assert (first.metadata["cache"]["hits"], first.metadata["cache"]["misses"]) == (0, 60)
    assert (second.metadata["cache"]["hits"], second.metadata["cache"]["misses"]) == (60, 0)
    assert second.labels == first.labels


def test_changing_a_sample_relabels_only_that_sample(tmp_path):
    prompts = [f"task {i}" for i in range(60)]
    analyze(write(tmp_path / "d.jsonl", prompts), AnalyzeOptions(taxonomy=TAX), engine=FakeEngine())
    prompts[7] = "a brand new task"
    engine = FakeEngine()
    result = analyze(write(tmp_path / "d.jsonl", prompts), AnalyzeOptions(taxonomy=TAX), engine=engine)
    assert len(engine.requests) == 1 and "a brand new task" in engine.requests[0].messages[1]["content"]
    assert result.metadata["cache"] == {**result.metadata["cache"], "hits": 59, "misses": 1}


def test_every_part_of_the_key_matters(tmp_path):
    f = write(tmp_path / "d.jsonl", [f"task {i}" for i in range(10)])
    analyze(f, AnalyzeOptions(taxonomy=TAX), engine=FakeEngine(seed=1))
    for opts, engine in [
        (AnalyzeOptions(taxonomy=parse_taxonomy_list("math,code")), FakeEngine(seed=1)),  # taxonomy
        (AnalyzeOptions(taxonomy=TAX), FakeEngine(seed=2)),  # model identity
    ]:
        analyze(f, opts, engine=engine)
        assert len(engine.requests) == 10


def test_no_cache_and_explicit_cache_path(tmp_path):
    f = write(tmp_path / "d.jsonl", [f"task {i}" for i in range(10)])
    custom = tmp_path / "elsewhere.sqlite"
    analyze(f, AnalyzeOptions(taxonomy=TAX, cache_path=custom), engine=FakeEngine())
    assert len(LabelCache(custom)) == 10
    engine = FakeEngine()
    result = analyze(f, AnalyzeOptions(taxonomy=TAX, use_cache=False), engine=engine)
    assert len(engine.requests) == 10 and result.metadata["cache"] == {"enabled": False}


def test_exact_copies_within_a_chunk_are_labeled_once_and_share_the_label(tmp_path):
    """60 samples, 40 distinct: the labeler is asked 40 times, every sample gets a label, and each copy
    the label of its first (a model asked twice could have answered twice differently)."""
    f = write(tmp_path / "d.jsonl", [f"task {i % 40}" for i in range(60)])
    engine = FakeEngine(seed=1)
    result = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=engine)
    assert len(engine.requests) == 40
    labels = {lab.index: lab for lab in result.labels}
    assert sorted(labels) == list(range(60)) and result.report.total_samples_analyzed == 60
    for i in range(40, 60):
        assert (labels[i].categories, labels[i].difficulty) == (labels[i - 40].categories, labels[i - 40].difficulty)


def test_a_failed_sample_fails_for_its_copies_too(tmp_path):
    from offline_cov.engines import GenResult

    f = write(tmp_path / "d.jsonl", ["a", "b", "a"])
    bad = [GenResult("", "error"), json.dumps({"primary": "code", "difficulty": "easy", "also": []}), GenResult("", "error")]
    result = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=FakeEngine(responses=bad))
    assert result.metadata["samples"]["failed"] == 2 and [lab.index for lab in result.labels] == [1]


def test_failed_samples_are_not_cached_and_are_retried_next_run(tmp_path):
    from offline_cov.engines import GenResult

    f = write(tmp_path / "d.jsonl", ["a", "b"])
    bad = [GenResult("", "error"), json.dumps({"primary": "code", "difficulty": "easy", "also": []}), GenResult("", "error")]
    first = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=FakeEngine(responses=bad))
    assert first.metadata["samples"]["failed"] == 1
    engine = FakeEngine()
    second = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=engine)
    assert len(engine.requests) == 1 and second.metadata["samples"]["failed"] == 0


def test_labels_are_committed_batch_by_batch(tmp_path):
    f = write(tmp_path / "d.jsonl", [f"task {i}" for i in range(50)])
    class Crashing(FakeEngine):
        def generate(self, requests):
            if len(self.requests) >= 20:
                raise KeyboardInterrupt("killed mid-run")
            return super().generate(requests)

    from offline_cov.labelers.base import LabelSettings

    opts = AnalyzeOptions(taxonomy=TAX, label=LabelSettings(batch_size=10))
    try:
        analyze(f, opts, engine=Crashing())
    except KeyboardInterrupt:
        pass
    assert len(LabelCache()) == 20  # two whole batches survived the crash
    engine = FakeEngine()
    resumed = analyze(f, opts, engine=engine)
    assert len(engine.requests) == 30 and resumed.metadata["samples"]["labeled"] == 50


class CountingEngine(FakeEngine):
    """A FakeEngine that records the size of every call and dies on call `die_on` (1-based)."""

    def __init__(self, die_on: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.calls, self.die_on = [], die_on

    def generate(self, requests):
        self.calls.append(len(requests))
        if self.die_on is not None and len(self.calls) >= self.die_on:
            raise KeyboardInterrupt("killed mid-chunk")
        return super().generate(requests)


def test_the_batch_follows_the_device(tmp_path, monkeypatch):
    from offline_cov.labelers.base import CPU_BATCH_SIZE, GPU_BATCH_SIZE, LabelSettings

    f = write(tmp_path / "d.jsonl", [f"task {i}" for i in range(1100)])
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: True)
    assert LabelSettings().batch_size == GPU_BATCH_SIZE == 1024 and LabelSettings().max_sample_tokens == 1536
    gpu = CountingEngine()
    analyze(f, AnalyzeOptions(taxonomy=TAX, use_cache=False), engine=gpu)
    assert gpu.calls == [1024, 76]  # whole chunks to the engine
    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    assert LabelSettings().batch_size == CPU_BATCH_SIZE == 64 and LabelSettings().max_sample_tokens == 512
    cpu = CountingEngine()
    analyze(f, AnalyzeOptions(taxonomy=TAX, use_cache=False), engine=cpu)
    assert cpu.calls == [64] * 17 + [12]


def test_a_kill_mid_chunk_on_the_cpu_loses_at_most_one_batch(tmp_path, monkeypatch):
    from offline_cov.labelers.base import CPU_BATCH_SIZE

    monkeypatch.setattr("offline_cov.registry.gpu_available", lambda: False)
    f = write(tmp_path / "d.jsonl", [f"task {i}" for i in range(300)])
    try:
        analyze(f, AnalyzeOptions(taxonomy=TAX), engine=CountingEngine(die_on=4))
    except KeyboardInterrupt:
        pass
    assert len(LabelCache()) == 3 * CPU_BATCH_SIZE  # the batch in flight is all that was lost
    resumed = CountingEngine()
    result = analyze(f, AnalyzeOptions(taxonomy=TAX), engine=resumed)
    assert sum(resumed.calls) == 300 - 3 * CPU_BATCH_SIZE and result.metadata["samples"]["labeled"] == 300


def test_a_one_sided_difficulty_mix_is_flagged_in_the_metadata(tmp_path):
    one_sided = json.dumps({"primary": "code", "difficulty": "hard", "also": []})
    f = write(tmp_path / "d.jsonl", [f"task {i}" for i in range(25)])
    result = analyze(f, AnalyzeOptions(taxonomy=TAX, use_cache=False), engine=FakeEngine(responses=[one_sided] * 25))
    assert result.metadata["difficulty_mix"] == {"easy": 0, "medium": 0, "hard": 25, "one_class_over_80": True}
    assert any("100% of samples were labeled hard" in w for w in result.metadata["warnings"])
    mixed = analyze(f, AnalyzeOptions(taxonomy=TAX, use_cache=False), engine=FakeEngine(seed=1))
    mix = mixed.metadata["difficulty_mix"]
    assert sum(mix[d] for d in ("easy", "medium", "hard")) == 25
    assert mix["one_class_over_80"] == (max(mix[d] for d in ("easy", "medium", "hard")) > 20)


def _open_at_once(path, barrier, results):
    from offline_cov.cache import LabelCache

    barrier.wait()
    cache = LabelCache(path)
    results.put((cache.writable, cache.db is not None, cache.warnings))


def test_two_runs_creating_one_new_cache_at_once_both_write_it(tmp_path):
    """Two shards started together on a new cache: one got 'database is locked' while the other switched
    the file to WAL, and labeled without storing (18 of 80 opens in the robustness audit)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for i in range(12):
        barrier, results = context.Barrier(2), context.Queue()
        procs = [context.Process(target=_open_at_once, args=(tmp_path / f"c{i}.sqlite", barrier, results))
                 for _ in range(2)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=120)
        assert [results.get(timeout=10) for _ in procs] == [(True, True, [])] * 2


def test_a_sample_whose_words_are_counted_otherwise_now_is_labeled_again():
    """The rubric counts Chinese two characters to a word since session 25 (it was one word, so easy):
    such a sample's key changed, so its old cached label is not reused; an English sample's key did not."""
    from offline_cov.cache import cache_key
    from offline_cov.data.readers import Sample
    from offline_cov.labelers.base import LabelSettings
    from offline_cov.prompts import PROMPT_VERSION
    from offline_cov.strategies.per_sample import label_key

    settings = LabelSettings()
    old_knobs = {"max_sample_tokens": settings.max_sample_tokens, "max_tokens": settings.max_tokens, "temperature": 0}

    def old_key(sample):
        return cache_key("label", "id", PROMPT_VERSION, TAX.fingerprint(), old_knobs, sample.for_labeler().content_hash())

    english, chinese = Sample(0, (("user", "Write a haiku about rain"),)), Sample(1, (("user", "请写一首关于雨的俳句"),))
    assert label_key("id", TAX, settings, english) == old_key(english)
    assert label_key("id", TAX, settings, chinese) != old_key(chinese)
