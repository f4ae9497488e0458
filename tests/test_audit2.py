"""Workflow audit (review -> calibration, shards, output paths, odd inputs): each test failed before its fix."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from offline_cov.cli import main

NAMES = "math,code,writing"


def labels_file(path, indices, category="math"):
    """A labels file as `analyze --labels` writes it."""
    path.write_text("".join(json.dumps({"index": i, "categories": [category], "difficulty": "easy", "confidence": 0.5,
                                        "probabilities": None}) + "\n" for i in indices))
    return path


def review(tmp_path, data, labels, *extra, taxonomy=NAMES, reply="\n" * 10):
    return CliRunner().invoke(main, ["review", str(data), "--labels", str(labels), "--taxonomy", taxonomy,
                                     "-o", str(tmp_path / "cal.jsonl"), "-n", "3", *extra], input=reply)


def test_review_reads_a_dataset_in_the_encoding_analyze_was_given(tmp_path):
    """review had no --encoding, yet its error said to pass one."""
    data = tmp_path / "latin.jsonl"
    data.write_bytes("".join(json.dumps({"instruction": f"caf\u00e9 {i}"}, ensure_ascii=False) + "\n"
                             for i in range(3)).encode("latin-1"))
    result = review(tmp_path, data, labels_file(tmp_path / "l.jsonl", range(3)), "--encoding", "latin-1")
    assert result.exit_code == 0, result.output
    assert "caf\u00e9 0" in result.output and "3 answer(s) saved" in result.output


def test_the_review_hint_passes_the_encoding_on():
    from types import SimpleNamespace

    from offline_cov.cli.analyze import review_hint
    from offline_cov.data.readers import FieldSpec
    from offline_cov.taxonomy import parse_taxonomy_list

    opts = SimpleNamespace(calibration=None, strategy="per-sample", shard=None, use_cache=False, encoding="latin-1",
                           taxonomy=parse_taxonomy_list("math,code"), fields=FieldSpec(None, None))
    assert "--metadata m.json --encoding latin-1 -o calibration.jsonl" in review_hint("d.jsonl", opts, "m.json", "l.jsonl")


def test_review_skips_bad_records_as_analyze_skip_bad_lines_did(tmp_path):
    """A dataset analyzed with --skip-bad-lines could not be reviewed: its first bad record stopped review."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "first"}\nnot json\n{"instruction": ""}\n{"instruction": "second"}\n'
                    '{"instruction": "third"}\n')
    result = review(tmp_path, data, labels_file(tmp_path / "l.jsonl", range(3)))
    assert result.exit_code == 0, result.output
    assert all(word in result.output for word in ("first", "second", "third")) and "not in the dataset" not in result.output


def test_review_refuses_labels_that_name_samples_the_dataset_lacks(tmp_path):
    """Labels of another (larger) dataset were shown as '(not in the dataset)' and asked about all the same."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "only one"}\n')
    result = review(tmp_path, data, labels_file(tmp_path / "l.jsonl", [0, 500, 501]))
    assert result.exit_code == 1 and "no sample 500" in result.output and "proposed:" not in result.output
    assert not (tmp_path / "cal.jsonl").exists()


def test_review_refuses_a_taxonomy_without_the_labels_categories(tmp_path):
    """A taxonomy that is not the run's was accepted: Enter saved a category the menu did not offer."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"q {i}"}) + "\n" for i in range(3)))
    result = review(tmp_path, data, labels_file(tmp_path / "l.jsonl", range(3), category="factual_qa"))
    assert result.exit_code == 1 and "'factual_qa'" in result.output and "proposed:" not in result.output


def test_review_cut_short_says_what_was_saved(tmp_path):
    """Ctrl-C or the end of piped input printed only 'Aborted!', not that the answers given were kept."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"q {i}"}) + "\n" for i in range(3)))
    result = review(tmp_path, data, labels_file(tmp_path / "l.jsonl", range(3)), reply="\n")
    assert result.exit_code == 0  # the end of piped input is a stop, as q is (Ctrl-C: 130)
    assert "1 answer(s) saved" in result.output and "run the same command to resume" in result.output
    assert len((tmp_path / "cal.jsonl").read_text().splitlines()) == 1


def test_an_alpaca_record_with_its_request_in_input_only_is_read(tmp_path):
    """An empty instruction with a non-empty input was refused as 'the instruction is empty'."""
    from offline_cov.data.readers import iter_samples

    data = tmp_path / "a.jsonl"
    data.write_text('{"instruction": "", "input": "Translate: good morning", "output": "Bonjour"}\n'
                    '{"instruction": "Summarize", "input": "", "output": "ok"}\n')
    samples = list(iter_samples(data))
    assert samples[0].turns == (("user", "Translate: good morning"), ("assistant", "Bonjour"))
    data.write_text('{"instruction": " ", "input": "", "output": "x"}\n')
    with pytest.raises(Exception, match="line 1, field 'instruction': the instruction is empty"):
        list(iter_samples(data))


def test_analyze_default_out_keeps_a_report_json_it_did_not_write(tmp_path, monkeypatch, fake_engines):
    """With no -o, analyze wrote report.json over a file of the user's own, without a word."""
    from conftest import EXAMPLE

    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.json").write_text('{"mine": true}\n')
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", NAMES, "-q"])
    assert result.exit_code == 2 and "report.json exists and was not written by offline-cov" in result.output
    assert (tmp_path / "report.json").read_text() == '{"mine": true}\n'


def test_analyze_keeps_a_metadata_path_it_did_not_write(tmp_path, fake_engines):
    """-o results.json also writes results.meta.json, which the user never named: a file of theirs there was lost."""
    from conftest import EXAMPLE

    theirs = tmp_path / "results.meta.json"
    theirs.write_text("notes\n")
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", NAMES,
                                       "-o", str(tmp_path / "results.json"), "-q"])
    assert result.exit_code == 2 and "results.meta.json exists and was not written by offline-cov" in result.output
    assert theirs.read_text() == "notes\n" and not (tmp_path / "results.json").exists()


def test_analyze_still_rewrites_its_own_outputs(tmp_path, monkeypatch, fake_engines):
    from conftest import EXAMPLE

    monkeypatch.chdir(tmp_path)
    args = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", NAMES, "-q"]
    first = CliRunner().invoke(main, args)
    again = CliRunner().invoke(main, args)
    assert first.exit_code == 0 and again.exit_code == 0, again.output
    (tmp_path / "report.meta.json").write_text("")  # an empty file holds nothing to lose
    assert CliRunner().invoke(main, args).exit_code == 0


def test_merge_default_out_keeps_a_report_json_it_did_not_write(tmp_path, monkeypatch, fake_engines):
    from conftest import EXAMPLE

    shards = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", NAMES,
                                           "--shard", f"{i}/2", "-o", str(out), "-q"])
        assert result.exit_code == 0, result.output
        shards.append(str(out.with_suffix(".meta.json")))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.json").write_text("mine\n")
    result = CliRunner().invoke(main, ["merge", *shards])
    assert result.exit_code == 2 and "report.json exists and was not written by offline-cov" in result.output
    assert (tmp_path / "report.json").read_text() == "mine\n"
    assert CliRunner().invoke(main, ["merge", *shards, "-o", "merged.json"]).exit_code == 0


def test_review_will_not_append_to_a_labels_file_given_as_out(tmp_path):
    """-o naming a labels file (it has an index on every line) was taken for a calibration file to resume:
    its samples counted as reviewed, and new answers were appended to it."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"q {i}"}) + "\n" for i in range(3)))
    other = labels_file(tmp_path / "cal.jsonl", [0])
    before = other.read_text()
    result = review(tmp_path, data, labels_file(tmp_path / "l.jsonl", range(3)))
    assert result.exit_code == 1 and "line 1: not a calibration line" in result.output
    assert other.read_text() == before
