"""Streaming: the reader yields samples one at a time, and `analyze` labels chunk by chunk into a
running tally that gives the same report as labels aggregated all at once."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from offline_cov.data.readers import iter_samples, read_samples
from offline_cov.engines.fake import FakeEngine
from offline_cov.errors import InputError
from offline_cov.pipeline import AnalyzeOptions, analyze
from offline_cov.report.tally import LabelStore, ReportInputs, SampleLabel, Tally, Thresholds, build_report
from offline_cov.strategies import per_sample
from offline_cov.taxonomy import parse_taxonomy_list

TAX = parse_taxonomy_list("math,code,writing,chat")


def write(path, n):
    path.write_text("".join(json.dumps({"prompt": f"task {i} " + "word " * (i % 17)}) + "\n" for i in range(n)))
    return path


def test_reader_yields_before_reaching_a_bad_line(tmp_path):
    f = write(tmp_path / "d.jsonl", 5)
    f.write_text(f.read_text() + "{broken\n")
    stream = iter_samples(f)
    assert [next(stream).index for _ in range(5)] == [0, 1, 2, 3, 4]  # read before the bad line is seen
    with pytest.raises(InputError, match="line 6"):
        next(stream)


def test_parquet_is_read_in_batches(tmp_path, monkeypatch):
    from offline_cov.data import readers as dataset

    monkeypatch.setattr(dataset, "ARROW_BATCH_ROWS", 3)
    rows = [{"prompt": f"p{i}", "response": "r"} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert [s.instruction for s in iter_samples(tmp_path / "d.parquet")] == [f"p{i}" for i in range(10)]


def test_label_store_keeps_labels_compactly_and_in_order():
    labels = [SampleLabel(i, ("math",) if i % 3 else ("code", "math"), ("easy", "medium", "hard")[i % 3]) for i in range(50)]
    store = LabelStore(labels)
    assert list(store) == labels and len(store) == 50 and store[7] == labels[7] and store == labels
    assert len(store._by_id) == 2  # one entry per distinct category tuple, not per sample


def test_tally_gives_the_report_of_all_labels_at_once(tmp_path):
    samples = read_samples(write(tmp_path / "d.jsonl", 40)).samples
    labels = [SampleLabel(s.index, (TAX.names[s.index % 4],) + (("chat",) if s.index % 5 == 0 else ()), "medium")
              for s in samples if s.index != 3]
    whole = build_report(ReportInputs(TAX, labels, {s.index: s for s in samples}, 40, Thresholds()))
    tally = Tally(TAX)
    for label in labels:
        tally.add(label, len(samples[label.index].instruction))
    examples = {name: samples[i].instruction for name, i in tally.representatives().items()}
    assert tally.report(40, Thresholds(), examples) == whole
    assert whole.categories[3].representative_example  # chat has primaries and secondaries


@pytest.mark.parametrize("sample,shard", [(None, None), (37, None), (None, (1, 3)), (41, (0, 2))])
def test_chunk_size_does_not_change_the_result(tmp_path, monkeypatch, sample, shard):
    f = write(tmp_path / "d.jsonl", 100)
    opts = AnalyzeOptions(taxonomy=TAX, sample=sample, shard=shard, use_cache=False)
    big = analyze(f, opts, engine=FakeEngine(seed=2))
    monkeypatch.setattr(per_sample, "STREAM_CHUNK", 7)
    engine = FakeEngine(seed=2)
    small = analyze(f, opts, engine=engine)
    assert small.report == big.report and small.labels == big.labels
    assert len(engine.requests) == len(small.labels) == small.metadata["samples"]["analyzed"]
    assert [lab.index for lab in small.labels] == sorted(lab.index for lab in small.labels)
