"""Sharded runs merged equal a single run, byte for byte."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from offline_cov.cli import main
from offline_cov.errors import OfflineCovError
from offline_cov.report.tally import LabelStore
from offline_cov.strategies.shard import load_manifests, parse_shard


@pytest.fixture
def fake_engine(fake_engines):
    return fake_engines


def shard_manifests(analyze: list[str], n: int, tmp_path) -> list[str]:
    """Runs `analyze` (arguments without -o) as shards 0/n .. n-1/n, each with its own report and
    label cache under `tmp_path`: the manifests' paths, in shard order."""
    manifests = []
    for i in range(n):
        out = tmp_path / f"shard{i}.json"
        result = CliRunner().invoke(main, analyze + ["--shard", f"{i}/{n}", "-o", str(out),
                                                     "--cache", str(tmp_path / f"s{i}.sqlite")])
        assert result.exit_code == 0, result.output
        manifests.append(str(out.with_suffix(".meta.json")))
    return manifests


def test_parse_shard():
    assert parse_shard("2/8") == (2, 8)
    for bad in ("8/8", "-1/3", "x/3", "3"):
        with pytest.raises(OfflineCovError):
            parse_shard(bad)


@pytest.mark.parametrize("extra", [[], ["--sample", "70", "--seed", "3"]])
def test_sharded_then_merged_equals_a_single_run_byte_for_byte(tmp_path, fake_engine, extra):
    from conftest import EXAMPLE

    runner = CliRunner()
    base = ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy-file", "examples/taxonomy.yaml", "-q", *extra]
    single = runner.invoke(main, base + ["--out", str(tmp_path / "single.json"), "--labels", str(tmp_path / "single.jsonl"),
                                         "--cache", str(tmp_path / "single.sqlite")])
    assert single.exit_code == 0, single.output
    manifests = shard_manifests(base, 3, tmp_path)
    merged = runner.invoke(main, ["merge", *reversed(manifests), "--out", str(tmp_path / "merged.json"),
                                  "--labels", str(tmp_path / "merged.jsonl")])
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "single.json").read_bytes()
    assert (tmp_path / "merged.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()
    import json

    single_meta = json.loads((tmp_path / "single.meta.json").read_text())
    merged_meta = json.loads((tmp_path / "merged.meta.json").read_text())
    blocks = ["difficulty_mix", "share_intervals", "examples"] + (["share_ci95"] if extra else [])
    for block in blocks:  # the whole run's, not shard 0's
        assert merged_meta[block] == single_meta[block], block
    assert single_meta["share_intervals"]["caveat"].startswith("Without a review of these labels")
    assert set(single_meta["share_intervals"]["calls"]) == {"gaps", "over_represented"}
    assert ("share_ci95" in merged_meta) == bool(extra)
    shard_warnings = [w for m in manifests for w in json.loads(Path(m).read_text())["warnings"]]
    assert any("samples analyzed: under 50" in w for w in shard_warnings), shard_warnings  # each shard's own
    assert merged_meta["warnings"] == single_meta["warnings"]  # the whole run's, not the shards'
    assert [s["shard"] for s in merged_meta["merge"]["per_shard"]] == [0, 1, 2]
    assert sum(s["samples"]["labeled"] for s in merged_meta["merge"]["per_shard"]) == single_meta["samples"]["labeled"]
    loaded = load_manifests(manifests)  # each shard's labels held compactly, in index order
    stores = [m["shard"]["labels"] for m in loaded]
    assert all(isinstance(st, LabelStore) and [lab.index for lab in st] == sorted(lab.index for lab in st) for st in stores)
    assert sum(len(st) for st in stores) == len((tmp_path / "single.jsonl").read_text().splitlines())


def test_merge_refuses_missing_or_mixed_shards(tmp_path, fake_engine):
    from conftest import EXAMPLE

    runner = CliRunner()
    outs = []
    for i, tax in enumerate(["a,b", "a,b", "a,c"]):
        out = tmp_path / f"s{i}.json"
        runner.invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy", tax, "--shard", f"{i}/3", "--out", str(out), "-q"])
        outs.append(str(out.with_suffix(".meta.json")))
    missing = runner.invoke(main, ["merge", outs[0], outs[1]])
    assert missing.exit_code == 1 and "shard 2/3 is missing" in missing.output
    assert "analyze --shard 2/3" in missing.output
    twice = runner.invoke(main, ["merge", outs[0], outs[1], outs[1]])
    assert twice.exit_code == 1 and "shard 1/3 is given twice" in twice.output and outs[1] in twice.output
    mixed = runner.invoke(main, ["merge", *outs])
    assert mixed.exit_code == 1 and "its taxonomy differs from the first shard's" in mixed.output


def two_shards(tmp_path) -> tuple[Path, list[str], list[str]]:
    """The bundled example copied to `tmp_path`, labeled as shards 0/2 and 1/2: (its path, its lines, the
    two manifests)."""
    from conftest import EXAMPLE

    data = tmp_path / "d.jsonl"
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    data.write_text("".join(lines), encoding="utf-8")
    outs = []
    for i in range(2):
        out = tmp_path / f"s{i}.json"
        result = CliRunner().invoke(main, ["analyze", str(data), "--engine", "vllm", "--taxonomy", "a,b",
                                           "--shard", f"{i}/2", "--out", str(out), "-q"])
        assert result.exit_code == 0, result.output
        outs.append(str(out.with_suffix(".meta.json")))
    return data, lines, outs


def test_merge_refuses_a_dataset_that_changed_since_the_shards(tmp_path, fake_engine):
    """Rows cut from the dataset after labeling once merged into a report of fewer samples, the other
    shards' labels silently dropped."""
    data, lines, outs = two_shards(tmp_path)
    data.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    merged = CliRunner().invoke(main, ["merge", *outs, "--out", str(tmp_path / "m.json")])
    assert merged.exit_code == 1 and "the dataset changed; run the shards again" in merged.output
    assert not (tmp_path / "m.json").exists()


def test_merge_says_where_it_looked_for_a_dataset_that_moved(tmp_path, fake_engine):
    data, lines, outs = two_shards(tmp_path)
    data.rename(tmp_path / "moved.jsonl")
    merged = CliRunner().invoke(main, ["merge", *outs, "--out", str(tmp_path / "m.json")])
    assert merged.exit_code == 1 and f"{data}: the dataset the shards labeled is not there" in merged.output


def test_merge_refuses_to_write_over_the_dataset_its_shards_read(tmp_path, fake_engine):
    data, lines, outs = two_shards(tmp_path)
    for flag in ("--labels", "--out"):
        args = ["merge", *outs, flag, str(data)] + (["--out", str(tmp_path / "m.json")] if flag == "--labels" else [])
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 2 and f"{flag} {data} is the dataset the shards read" in refused.output
    assert data.read_text(encoding="utf-8") == "".join(lines) and not (tmp_path / "m.json").exists()


def test_merge_refuses_a_dataset_edited_in_place_with_the_same_count(tmp_path, fake_engine):
    """A sample rewritten after labeling (the count unchanged) would have merged labels of other texts."""
    import json

    data, lines, outs = two_shards(tmp_path)
    assert len(json.loads(Path(outs[0]).read_text())["input"]["content_digest"]) == 64
    unchanged = CliRunner().invoke(main, ["merge", *outs, "--out", str(tmp_path / "ok.json")])
    assert unchanged.exit_code == 0, unchanged.output
    record = json.loads(lines[3])
    record[next(iter(record))] = "A different instruction written after the shards were labeled"
    lines[3] = json.dumps(record) + "\n"
    data.write_text("".join(lines), encoding="utf-8")
    merged = CliRunner().invoke(main, ["merge", *outs, "--out", str(tmp_path / "m.json")])
    assert merged.exit_code == 1 and "same count, other content" in merged.output
    assert not (tmp_path / "m.json").exists()


def test_merge_with_calibration_equals_a_single_calibrated_run(tmp_path):
    """Review rows of the merged labels given to `merge --calibration` correct the shares exactly as
    `analyze --calibration` corrects a single run's: the same report, byte for byte, and the same
    calibration and interval blocks. `analyze --shard` with --calibration points at merge."""
    import json

    from conftest import EXAMPLE

    from offline_cov.report.calibration import REVIEW_METHOD

    runner = CliRunner()
    base = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", "math,code,writing", "-q"]
    first = runner.invoke(main, base + ["-o", str(tmp_path / "raw.json"), "--labels", str(tmp_path / "l.jsonl"),
                                        "--cache", str(tmp_path / "single.sqlite")])
    assert first.exit_code == 0, first.output
    labeled = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text().splitlines()]
    calib = tmp_path / "calib.jsonl"
    calib.write_text("".join(json.dumps({"index": lab["index"], "proposed": lab["categories"][0],
                                         "category": "math" if lab["categories"][0] == "writing" else lab["categories"][0]})
                             + "\n" for lab in labeled[::2]), encoding="utf-8")
    single = runner.invoke(main, base + ["-o", str(tmp_path / "single.json"), "--calibration", str(calib),
                                         "--cache", str(tmp_path / "single.sqlite")])
    assert single.exit_code == 0, single.output
    refused = runner.invoke(main, base + ["--shard", "0/2", "--calibration", str(calib), "-o", str(tmp_path / "x.json")])
    assert refused.exit_code == 2 and "give it to `offline-cov merge`" in refused.output
    manifests = shard_manifests(base, 2, tmp_path)
    merged = runner.invoke(main, ["merge", *manifests, "-o", str(tmp_path / "merged.json"), "--calibration", str(calib)])
    assert merged.exit_code == 0, merged.output
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "single.json").read_bytes()
    assert (tmp_path / "merged.json").read_bytes() != (tmp_path / "raw.json").read_bytes()  # the correction moved it
    single_meta = json.loads((tmp_path / "single.meta.json").read_text())
    merged_meta = json.loads((tmp_path / "merged.meta.json").read_text())
    assert merged_meta["calibration"]["method"] == REVIEW_METHOD
    for block in ("calibration", "share_intervals"):
        assert merged_meta[block] == single_meta[block], block


def test_merge_prints_the_review_commands_for_the_merged_run_and_they_work(tmp_path, monkeypatch):
    import json
    import shlex

    from conftest import EXAMPLE

    from offline_cov.report.calibration import REVIEW_METHOD

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    base = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", "math,code,writing", "-q"]
    for i in range(2):
        assert runner.invoke(main, base + ["--shard", f"{i}/2", "-o", f"s{i}.json", "--cache", f"s{i}.sqlite"]).exit_code == 0
    merged = runner.invoke(main, ["merge", "s0.meta.json", "s1.meta.json", "-o", "m.json", "--labels", "m.jsonl"])
    assert merged.exit_code == 0, merged.output
    hint = next(line for line in merged.output.splitlines() if line.startswith("to check the labels by hand: "))
    pasted = hint.split(": ", 1)[1].split(" (Enter accepts", 1)[0]
    assert pasted == f"offline-cov review {shlex.quote(str(EXAMPLE))} --labels m.jsonl --metadata m.meta.json -o calibration.jsonl"
    assert hint.endswith("then rerun this merge with --calibration calibration.jsonl")
    reviewed = runner.invoke(main, shlex.split(pasted)[1:], input="\n" * 100 + "q\n")  # 100 of the 120, then stop
    assert reviewed.exit_code == 0 and "100 answer(s) saved to calibration.jsonl" in reviewed.output, reviewed.output
    again = runner.invoke(main, ["merge", "s0.meta.json", "s1.meta.json", "-o", "c.json", "--calibration", "calibration.jsonl"])
    assert again.exit_code == 0, again.output
    assert json.loads(Path("c.meta.json").read_text())["calibration"]["method"] == REVIEW_METHOD
    assert "to check the labels by hand" not in again.output


def test_merge_says_when_the_calibration_is_not_applied(tmp_path):
    """A calibration merge cannot use (no row names a sample of the run) is a warning on the terminal."""
    import json

    from conftest import EXAMPLE

    runner = CliRunner()
    base = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", "math,code,writing", "-q"]
    manifests = shard_manifests(base, 2, tmp_path)
    calib = tmp_path / "calib.jsonl"
    calib.write_text(json.dumps({"text": "a request that is not in the data", "category": "math"}) + "\n", encoding="utf-8")
    result = runner.invoke(main, ["merge", *manifests, "-o", str(tmp_path / "m.json"), "--calibration", str(calib)])
    assert result.exit_code == 0, result.output
    assert "Warning: no calibration row could be matched to a label; shares are not corrected" in result.output
    assert "Warning: 1 calibration row(s) name a sample this run did not label" in result.output


@pytest.mark.parametrize("value, words", [("3/3", "I must be in 0..N-1"), ("a/b", "expected I/N")])
def test_a_malformed_shard_is_a_usage_error(tmp_path, value, words):
    from conftest import EXAMPLE

    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--taxonomy", "a,b", "--shard", value,
                                       "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and words in result.output


@pytest.mark.parametrize("edit, field", [
    (lambda m: m["shard"]["labels"][0].update(difficulty="very hard"), "shard.labels.0.difficulty"),
    (lambda m: m["shard"].update(index=5), "shard"),
    (lambda m: m["input"].pop("dataset"), "input.dataset"),
    (lambda m: m.update(warnings=None), None),  # null: no warnings, as before
])
def test_a_shard_manifest_edited_into_another_shape_is_an_error_naming_the_field(tmp_path, fake_engine, edit, field):
    import json

    _, _, manifests = two_shards(tmp_path)
    meta = json.loads(Path(manifests[1]).read_text())
    edit(meta)
    Path(manifests[1]).write_text(json.dumps(meta))
    result = CliRunner().invoke(main, ["merge", *manifests, "-o", str(tmp_path / "m.json")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if field is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1 and f"s1.meta.json, field '{field}': not a shard's manifest" in result.output
