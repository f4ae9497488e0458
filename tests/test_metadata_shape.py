"""Run metadata edited into another shape: an error naming the file and the field, never a traceback."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner
from reportmaker import worked_example

from offline_cov.cli import main
from offline_cov.report.metadata import metadata_problems


def _own_metadata(tmp_path, fake_engines) -> tuple:
    """A report and the metadata analyze wrote for it (fake engine: the metadata's shape is the code's)."""
    from conftest import EXAMPLE

    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["analyze", str(EXAMPLE), "--engine", "vllm", "--taxonomy",
                                       "math,code,writing,reasoning,factual_qa", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out, json.loads(out.with_suffix(".meta.json").read_text())


def test_the_metadata_analyze_writes_has_the_shape_its_readers_check(tmp_path, fake_engines):
    _, meta = _own_metadata(tmp_path, fake_engines)
    assert metadata_problems(meta) == []
    assert {"share_intervals", "examples", "taxonomy", "engine"} <= set(meta)  # the checked blocks are there


EDITS = [  # (where, new value, the field the error names)
    (("taxonomy",), ["math", "code"], "taxonomy"),
    (("taxonomy", "targets"), [20, 20], "taxonomy.targets"),
    (("share_intervals", "ci95", "math"), [3], "share_intervals.ci95.math.1"),  # [low] without its high
    (("share_intervals", "calls"), {"gaps": ["math"]}, "share_intervals.calls.gaps"),
    (("examples", "math"), {"top": []}, "examples.math.most_confident"),
    (("engine", "engine"), None, None),  # null is "not there": renders without the engine's name
    (("warnings",), "one warning", "warnings"),
    (("category_counts", "math"), "8", "category_counts.math"),
]


def _edited(meta: dict, keys: tuple, value) -> dict:
    meta = copy.deepcopy(meta)
    block = meta
    for key in keys[:-1]:
        block = block[key]
    block[keys[-1]] = value
    return meta


@pytest.mark.parametrize("keys, value, field", EDITS)
def test_render_and_compare_name_the_edited_field_and_never_show_a_traceback(tmp_path, fake_engines, keys, value, field):
    out, meta = _own_metadata(tmp_path, fake_engines)
    edited = tmp_path / "edited.meta.json"
    edited.write_text(json.dumps(_edited(meta, keys, value)))
    named = CliRunner().invoke(main, ["render", str(out), "--metadata", str(edited), "--html", str(tmp_path / "x.html")])
    compared = CliRunner().invoke(main, ["compare", str(out), str(out), "--before-metadata", str(edited)])
    for result in (named, compared):
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
        if field is None:
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 1, result.output
        assert f"edited.meta.json, field '{field}': not run metadata as `offline-cov analyze` writes it" in result.output
    out.with_suffix(".meta.json").write_text(edited.read_text())  # beside the report: left out with a warning
    beside = CliRunner().invoke(main, ["render", str(out), "--html", str(tmp_path / "y.html")])
    assert beside.exit_code == 0, beside.output
    assert (tmp_path / "y.html").is_file()
    assert field is None or (f"field '{field}'" in beside.output and "going on without it" in beside.output)


def test_an_unchecked_key_and_a_block_left_null_are_accepted():
    report_meta = {"taxonomy": None, "share_intervals": {"ci95": None, "new_key": [1]}, "someday": {"x": 1}}
    assert metadata_problems(report_meta) == []
    assert metadata_problems({"examples": {"math": {"most_confident": [], "least_confident": [{"index": "4"}]}}}) == [
        "examples.math.least_confident.0.index: Input should be a valid integer"]


def test_the_worked_example_renders_with_metadata_holding_only_some_blocks(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(worked_example().model_dump_json())
    (tmp_path / "report.meta.json").write_text('{"model": "m", "taxonomy": {"targets": {"math": 40}}}')
    result = CliRunner().invoke(main, ["render", str(path)])
    assert result.exit_code == 0 and "Warning" not in result.output, result.output
