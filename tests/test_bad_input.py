"""Bad input, as a careless or hostile user gives it: every case ends with a clear message and the
right exit code, no traceback, and the input and any earlier outputs are left byte for byte."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from offline_cov.cli import main

TAX = "math,code,writing"


def example(tmp_path: Path) -> Path:
    from conftest import EXAMPLE

    data = tmp_path / "data.jsonl"
    data.write_bytes(EXAMPLE.read_bytes())
    return data


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith("labels.sqlite")}


def run(args: list[str]):
    return CliRunner().invoke(main, ["analyze", *args], catch_exceptions=False)


def taxonomy_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tax.yaml"
    path.write_text(text)
    return str(path)


# (name, extra arguments with {d} = the dataset and {t} = the folder, exit code, words of the message)
USAGE_CASES = [
    ("out is the data", ["--out", "{d}"], 2, "--out {d} is the DATA"),
    ("html is the data", ["--html", "{d}"], 2, "--html {d} is the DATA"),
    ("markdown is the data", ["--markdown", "{d}"], 2, "would destroy it"),
    ("labels is the report", ["--out", "{t}/r.json", "--labels", "{t}/r.json"], 2, "--labels and --out are the same file"),
    ("metadata is the report", ["--out", "{t}/r.json", "--metadata", "{t}/r.json"], 2,
     "--metadata and --out are the same file"),
    ("out is a link to the data", ["--out", "{t}/link.json"], 2, "is the DATA"),
    ("gap over 100", ["--gap-threshold", "150"], 2, "need 0 < gap < over <= 100"),
    ("negative over", ["--over-threshold", "-5"], 2, "need 0 < gap < over <= 100"),
    ("nan gap", ["--gap-threshold", "nan"], 2, "need 0 < gap < over <= 100"),
    ("gap above over", ["--gap-threshold", "40", "--over-threshold", "30"], 2, "need 0 < gap < over <= 100"),
    ("nan target inline", ["--taxonomy", "math=nan,code=100"], 1, "target 'nan' for 'math' is not a number"),
    # an empty --taxonomy "$UNSET" once meant no taxonomy: the model inferred one, minutes of work unasked for
    ("empty taxonomy", ["--taxonomy", ""], 1, "--taxonomy '': a category name is empty"),
    ("unknown encoding", ["--encoding", "utf-9"], 2, "unknown encoding 'utf-9'; give a Python codec name"),
]


@pytest.mark.parametrize("name, args, code, words", USAGE_CASES, ids=[c[0] for c in USAGE_CASES])
def test_bad_arguments_are_refused_before_any_work(tmp_path, fake_engines, name, args, code, words):
    data = example(tmp_path)
    (tmp_path / "link.json").symlink_to(data)
    (tmp_path / "r.json").write_text('{"old": "report"}\n')
    before = snapshot(tmp_path)
    fill = {"{d}": str(data), "{t}": str(tmp_path)}
    args = [fill.get(a, a).replace("{t}", str(tmp_path)) for a in args]
    taxonomy = [] if "--taxonomy" in args else ["--taxonomy", TAX]
    result = run([str(data), *taxonomy, *args, "-q"])
    assert result.exit_code == code, result.output
    assert words.replace("{d}", str(data)) in result.output
    assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before
    assert fake_engines == []  # refused before any model was opened


TAXONOMY_CASES = [
    ("nan target", "math: {target_share: .nan}\ncode: {target_share: 100}\n", "target_share"),
    ("typo of description", "math: {descripton: numbers}\ncode: {}\n", "unknown key (did you mean 'description'?)"),
    ("typo of target_share", "math: {target_shares: 80}\ncode: {target_shares: 20}\n",
     "unknown key (did you mean 'target_share'?)"),
    ("unknown top-level key", "categories: [math, code]\ntargets: {math: 50}\n", "unknown top-level key 'targets'"),
    ("infinite target", "- {name: math, target_share: .inf}\n- {name: code, target_share: 0}\n", "target_share"),
]


@pytest.mark.parametrize("name, text, words", TAXONOMY_CASES, ids=[c[0] for c in TAXONOMY_CASES])
def test_bad_taxonomy_files_name_the_file_and_the_key(tmp_path, fake_engines, name, text, words):
    data = example(tmp_path)
    tax = taxonomy_file(tmp_path, text)
    before = snapshot(tmp_path)
    result = run([str(data), "--taxonomy-file", tax, "--out", str(tmp_path / "r.json"), "-q"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {tax}") and words in result.output
    assert "Traceback" not in result.output and snapshot(tmp_path) == before


def test_a_typo_in_models_yaml_gets_a_did_you_mean(tmp_path, monkeypatch):
    models = tmp_path / "models.yaml"
    models.write_text("default_gpu: a\ndefault_cpu: a\nmodels:\n  a:\n    source: {kind: path, path: /x}\n"
                      "    vllm: {max_model_length: 4096}\n")
    monkeypatch.setenv("OFFLINE_COV_MODELS", str(models))
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 1
    assert "models.a.vllm.max_model_length: unknown key (did you mean 'max_model_len'?)" in result.output


def test_a_failed_html_write_leaves_the_previous_outputs_whole(tmp_path, fake_engines, monkeypatch):
    import offline_cov.io

    monkeypatch.setattr(offline_cov.io, "write_problem", lambda path: None)  # a write that fails late (disk full)
    data = example(tmp_path)
    out = tmp_path / "r.json"
    first = run([str(data), "--engine", "vllm", "--taxonomy", TAX, "--out", str(out), "-q"])
    assert first.exit_code == 0
    (tmp_path / "blocker").write_text("a file, not a folder")
    before = snapshot(tmp_path)
    result = run([str(data), "--engine", "vllm", "--taxonomy", "a,b", "--out", str(out), "--labels",
                  str(tmp_path / "l.jsonl"), "--html", str(tmp_path / "blocker" / "r.html"), "-q"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: could not write") and "blocker" in result.output
    assert snapshot(tmp_path) == before  # report and metadata of the first run, no labels file, no temporary file


def test_outputs_get_the_users_umask(tmp_path, fake_engines):
    data = example(tmp_path)
    old = os.umask(0o027)
    try:
        result = run([str(data), "--engine", "vllm", "--taxonomy", TAX, "--out", str(tmp_path / "r.json"), "-q"])
    finally:
        os.umask(old)
    assert result.exit_code == 0
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "r.meta.json").stat().st_mode & 0o777 == 0o640


def test_a_garbage_cache_is_moved_aside_and_the_run_goes_on(tmp_path, fake_engines):
    data = example(tmp_path)
    cache = tmp_path / "c.sqlite"
    cache.write_bytes(b"SQLite format 3\x00" + b"not a database after its header " * 50)
    garbage = cache.read_bytes()
    result = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", TAX,
                                       "--cache", str(cache), "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "Warning: the label cache" in result.output and "moved it to" in result.output
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("c.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    meta = json.loads((tmp_path / "r.meta.json").read_text())
    assert meta["cache"]["misses"] == 120 and any("moved it to" in w for w in meta["warnings"])


def test_a_cache_path_that_is_the_data_or_another_file_of_the_user_s_is_refused_untouched(tmp_path, fake_engines):
    data = example(tmp_path)
    before = data.read_bytes()
    same = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", TAX, "--cache", str(data),
                                     "--out", str(tmp_path / "r.json")])
    assert same.exit_code == 2 and f"--cache {data} is the DATA" in same.output, same.output
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    other = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", TAX, "--cache", str(notes),
                                      "--out", str(tmp_path / "r.json")])
    assert other.exit_code == 1 and "is not an SQLite database" in other.output, other.output
    assert data.read_bytes() == before and notes.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([data.name, "notes.txt"])


@pytest.mark.parametrize("command", [
    ["analyze", "{d}", "--engine", "vllm", "--taxonomy", TAX, "-o", "{c}"],
    ["analyze", "{d}", "--engine", "vllm", "--taxonomy", TAX, "--no-cache", "-o", "{r}", "--html", "{c}"],
    ["render", "{r}", "--markdown", "{c}"],
    ["compare", "{r}", "{r}", "-o", "{c}"],
    ["review", "{d}", "--labels", "{l}", "--taxonomy", TAX, "-o", "{c}"],
], ids=["analyze -o", "analyze --html", "render", "compare", "review"])
def test_no_command_writes_over_the_label_cache_it_was_not_given(tmp_path, fake_engines, monkeypatch, command):
    """The cache named by $OFFLINE_COV_CACHE (or the tool home's) given as an output: a report replaced
    every label kept, exit 0; only --cache was checked."""
    data, cache, report = example(tmp_path), tmp_path / "labels.sqlite", tmp_path / "r.json"
    monkeypatch.setenv("OFFLINE_COV_CACHE", str(cache))
    assert run([str(data), "--engine", "vllm", "--taxonomy", TAX, "-o", str(report), "--labels",
                str(tmp_path / "l.jsonl"), "-q"]).exit_code == 0
    before = snapshot(tmp_path)
    fill = {"{d}": str(data), "{c}": str(cache), "{r}": str(report), "{l}": str(tmp_path / "l.jsonl")}
    result = CliRunner().invoke(main, [fill.get(a, a) for a in command])
    assert result.exit_code == 2, result.output
    assert f"{cache} is the label cache" in " ".join(result.output.split()), result.output
    assert snapshot(tmp_path) == before


def test_a_cached_label_outside_the_taxonomy_is_labeled_again(tmp_path, fake_engines):
    data = example(tmp_path)
    cache, out = tmp_path / "c.sqlite", tmp_path / "r.json"
    args = [str(data), "--engine", "vllm", "--taxonomy", TAX, "--cache", str(cache), "--out", str(out), "-q"]
    assert run(args).exit_code == 0
    db = sqlite3.connect(cache)
    key = db.execute("SELECT key FROM entries LIMIT 1").fetchone()[0]
    db.execute("UPDATE entries SET value = ? WHERE key = ?", ('{"categories": ["cooking"], "difficulty": "easy"}', key))
    db.commit()
    db.close()
    assert run(args).exit_code == 0
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["cache"]["invalid_values"] == 1 and meta["cache"]["misses"] == 1
    assert meta["samples"]["labeled"] == 120


def test_an_unwritable_tool_home_runs_without_a_cache(tmp_path, fake_engines, monkeypatch):
    data = example(tmp_path)
    monkeypatch.setenv("OFFLINE_COV_CACHE", "/proc/offline-cov/labels.sqlite")  # no one can create it
    result = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", TAX,
                                       "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "cannot be opened" in result.output and "running without a cache" in result.output


def test_a_cache_that_cannot_be_written_is_read(tmp_path, fake_engines, monkeypatch):
    from offline_cov.cache import LabelCache

    data = example(tmp_path)
    cache, out = tmp_path / "c.sqlite", tmp_path / "r.json"
    args = [str(data), "--engine", "vllm", "--taxonomy", TAX, "--cache", str(cache), "--out", str(out)]
    assert run([*args, "-q"]).exit_code == 0

    def read_only(self):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(LabelCache, "_open", read_only)
    result = run(args)
    assert result.exit_code == 0
    assert "cannot be written" in result.output and "reading it only" in result.output
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["cache"]["hits"] == 120 and meta["cache"]["writable"] is False
    assert fake_engines == [fake_engines[0]]  # the first run's engine; the second labeled nothing


def test_more_samples_asked_than_there_are_is_said(tmp_path, fake_engines):
    data = example(tmp_path)
    result = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", TAX,
                                       "--sample", "5000", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0
    assert "Warning: --sample 5000 asks for more samples than the file holds (120)" in result.output


def test_the_summary_says_how_many_samples_were_read_only_in_part(tmp_path, fake_engines):
    """A run whose every sample was cut said nothing about it outside the metadata (scale audit)."""
    import json

    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"task {i} " + "word " * (3000 if i % 2 else 10)}) + "\n"
                            for i in range(20)))
    args = ["analyze", str(data), "--engine", "vllm", "--taxonomy", TAX, "--out", str(tmp_path / "r.json")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "10 of 20 samples (50%) are longer than the 512 tokens the labeler reads" in first.output
    again = CliRunner().invoke(main, args)  # from the cache: the labeler is not opened
    assert "10 of 20 samples (50%) are longer than what the labeler reads" in again.output


def test_a_huge_sample_is_cut_by_characters_before_any_tokenizer_sees_it():
    from offline_cov.data.readers import Sample
    from offline_cov.labelers.base import SAMPLE_MAX_CHARS, sample_text
    from offline_cov.labelers.difficulty import difficulty_from_text
    from offline_cov.report.tally import snippet

    huge = "word " * 2_000_000  # 10 MB
    text, cut = sample_text(Sample(0, (("user", huge),)))
    assert cut and len(text) == SAMPLE_MAX_CHARS
    assert difficulty_from_text(huge) == "hard"
    assert snippet(huge) == snippet(huge[:10_000]) and len(snippet(huge)) == 160
    assert snippet("a  b\n\nc") == "a b c"


def test_exact_duplicates_are_counted_and_over_one_percent_warned(tmp_path, fake_engines):
    data = example(tmp_path)
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines) + "".join(lines[:3]))  # 3 exact copies among 123 samples: 2.4%
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", TAX, "-o", str(out)])
    assert result.exit_code == 0
    assert "Warning: 3 of 123 samples (2.4%) repeat an earlier sample exactly" in result.output
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["input"]["duplicate_samples"] == 3 and meta["samples"]["analyzed"] == 123


@pytest.mark.parametrize("command", [
    ["render", "{r}", "--html", "{r}"],
    ["compare", "{r}", "{r}", "-o", "{r}"],
    ["seeds", "{r}", "-o", "{r}"],
    ["merge", "{m}", "-o", "{m}"],
])
def test_report_commands_refuse_to_write_over_their_inputs(tmp_path, fake_engines, command):
    data = example(tmp_path)
    out = tmp_path / "r.json"
    assert run([str(data), "--engine", "vllm", "--taxonomy", TAX, "--shard", "0/1", "-o", str(out), "-q"]).exit_code == 0
    before = snapshot(tmp_path)
    args = [a.replace("{r}", str(out)).replace("{m}", str(out.with_suffix(".meta.json"))) for a in command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "would destroy it" in result.output and snapshot(tmp_path) == before
