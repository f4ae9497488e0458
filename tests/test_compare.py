"""Comparing two reports: deltas, gaps closed/opened, over-representation, balance; hand-computed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from reportmaker import make_report

from offline_cov.cli.reports import compare
from offline_cov.report.compare import compare_markdown, compare_reports, labeling_differences


@pytest.fixture
def before():
    # shares 50/30/15/5; gaps c, e; over a
    return make_report(
        {"a": 50, "b": 30, "c": 15, "e": 5}, 100, gaps={"c": 25.0, "e": 25.0}, over=["a"], balance=0.40
    )


@pytest.fixture
def after():
    # 200 samples, shares 30/40/20/4/6; gaps e, d; over b; d is new
    return make_report(
        {"a": 60, "b": 80, "c": 40, "e": 8, "d": 12}, 200, gaps={"e": 20.0, "d": 20.0}, over=["b"], balance=0.62
    )


def test_share_deltas_per_category(before, after):
    diff = compare_reports(before, after)
    rows = {r["name"]: r for r in diff["categories"]}
    assert [r["name"] for r in diff["categories"]] == ["a", "b", "c", "e", "d"]
    assert rows["a"] == {"name": "a", "before": 50.0, "after": 30.0, "delta": -20.0}
    assert rows["b"]["delta"] == 10.0
    assert rows["c"]["delta"] == 5.0
    assert rows["e"]["delta"] == -1.0
    assert rows["d"] == {"name": "d", "before": None, "after": 6.0, "delta": 6.0}
    assert diff["categories_added"] == ["d"] and diff["categories_removed"] == []
    assert diff["total_samples"] == {"before": 100, "after": 200}


def test_gaps_over_and_balance(before, after):
    diff = compare_reports(before, after)
    assert diff["gaps"] == {"closed": ["c"], "opened": ["d"], "still_open": ["e"]}
    assert diff["over_represented"] == {"resolved": ["a"], "new": ["b"], "still": []}
    assert diff["balance"] == {"before": 0.40, "after": 0.62, "delta": 0.22}


def test_a_gap_whose_category_vanished_is_not_closed():
    before = make_report({"x": 1, "y": 99}, 100, gaps={"x": 50.0}, over=["y"])
    after = make_report({"y": 50, "z": 50}, 100, over=["y"])
    diff = compare_reports(before, after)
    assert diff["gaps"]["closed"] == []
    assert diff["categories_removed"] == ["x"]
    assert diff["over_represented"]["still"] == ["y"]
    assert {r["name"]: r["delta"] for r in diff["categories"]}["x"] == -1.0


def test_names_that_differ_in_case_only_are_one_category_spelled_as_the_later_report_spells_it():
    before = make_report({"Code": 60, "Math": 40}, 100, over=["Code"])
    after = make_report({"code": 40, "math": 40, "writing": 20}, 100, over=["code", "math"])
    diff = compare_reports(before, after, corrected_before={"Code": 55.0, "Math": 45.0})
    assert [r["name"] for r in diff["categories"]] == ["code", "math", "writing"]
    assert {r["name"]: r["delta"] for r in diff["categories"]} == {"code": -20.0, "math": 0.0, "writing": 20.0}
    assert diff["categories_added"] == ["writing"] and diff["categories_removed"] == []
    assert diff["over_represented"] == {"resolved": [], "new": ["math"], "still": ["code"]}
    assert {r["name"]: r["decided_before"] for r in diff["decided"]} == {"code": 55.0, "math": 45.0, "writing": None}


def test_one_name_in_two_unicode_spellings_is_one_category():
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    diff = compare_reports(make_report({nfc: 50, "tea": 50}, 100), make_report({nfd: 70, "tea": 30}, 100))
    assert [r["name"] for r in diff["categories"]] == [nfd, "tea"] and diff["categories_removed"] == []


def test_cli_compare_refuses_a_report_that_names_a_category_twice(tmp_path, before):
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v2.json").write_text(make_report({"Math": 40, "math": 60}, 100).model_dump_json())
    result = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "v2.json")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (f"{tmp_path / 'v2.json'}, field 'categories': not a coverage report: category 'math' appears twice "
            "(as 'Math' too)") in result.output


def test_same_report_compares_to_no_change(before):
    diff = compare_reports(before, before)
    assert all(r["delta"] == 0 for r in diff["categories"])
    assert diff["gaps"] == {"closed": [], "opened": [], "still_open": ["c", "e"]}
    assert diff["balance"]["delta"] == 0


def test_markdown_of_the_diff(before, after):
    text = compare_markdown(compare_reports(before, after))
    assert text.startswith("## Coverage change: 100 -> 200 samples")
    assert "| a | 50.0 | 30.0 | -20.0 |" in text
    assert "| d | - | 6.0 | +6.0 |" in text
    assert "- Balance: 0.40 (severe skew) -> 0.62 (mild skew), change +0.22" in text
    assert "- Gaps closed: c\n- Gaps opened: d\n- Gaps still open: e" in text
    assert "- Over-represented, resolved: a\n- Over-represented, new: b\n- Over-represented, still: none" in text
    assert "- Categories added: d; removed: none" in text


def test_cli_compare_prints_markdown_or_json(tmp_path, before, after):
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v2.json").write_text(after.model_dump_json())
    versions = [str(tmp_path / "v1.json"), str(tmp_path / "v2.json")]
    result = CliRunner().invoke(compare, versions)
    assert result.exit_code == 0, result.output
    assert "- Gaps closed: c" in result.output
    printed = CliRunner().invoke(compare, [*versions, "--json"])
    assert printed.exit_code == 0 and json.loads(printed.output) == compare_reports(before, after)
    out = tmp_path / "diff.json"
    written = CliRunner().invoke(compare, [*versions, "--json", "-o", str(out)])
    assert written.exit_code == 0 and written.output == ""
    assert json.loads(out.read_text()) == compare_reports(before, after)


def test_cli_compare_never_writes_over_a_report_s_metadata(tmp_path, before, after):
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v2.json").write_text(after.model_dump_json())
    (tmp_path / "v1.meta.json").write_text('{"model": "x"}')
    result = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "v2.json"), "-o",
                                          str(tmp_path / "v1.meta.json")])
    assert result.exit_code == 2 and "is the BEFORE's metadata" in result.output
    assert (tmp_path / "v1.meta.json").read_text() == '{"model": "x"}'


def test_cli_compare_warns_when_the_runs_drew_their_lines_elsewhere(tmp_path, before, after):
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v2.json").write_text(after.model_dump_json())
    (tmp_path / "v1.meta.json").write_text('{"thresholds": {"gap": 5.0, "over": 35.0}}')
    (tmp_path / "v2.meta.json").write_text('{"thresholds": {"gap": 18.0, "over": 35.0}}')
    result = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "v2.json")])
    assert result.exit_code == 0, result.output
    assert "different thresholds (before: gap 5.0%, over 35.0%; after: gap 18.0%, over 35.0%)" in result.stderr
    (tmp_path / "v2.meta.json").write_text('{"thresholds": {"gap": 5.0, "over": 35.0}}')
    same = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "v2.json")])
    assert same.exit_code == 0 and "thresholds" not in same.stderr


def test_cli_compare_names_the_bad_file(tmp_path, before):
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v2.json").write_text('{"categories": "nope"}')
    result = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "v2.json")])
    assert result.exit_code == 1
    assert "v2.json: not a coverage report" in result.output
    assert "categories: Input should be a valid list" in result.output


def test_cli_compare_help():
    result = CliRunner().invoke(compare, ["--help"])
    assert result.exit_code == 0 and "Example: offline-cov compare" in result.output


def test_corrected_shares_give_the_shares_the_calls_were_decided_on(before, after):
    diff = compare_reports(before, after, None, {"a": 25.0, "b": 45.0, "c": 20.0, "e": 4.0, "d": 6.0})
    assert diff["decided_on"] == {"before": "labeled", "after": "corrected"}
    rows = {r["name"]: r for r in diff["decided"]}
    assert rows["a"] == {"name": "a", "decided_before": 50.0, "decided_after": 25.0, "decided_delta": -25.0}
    assert rows["d"]["decided_before"] is None and rows["d"]["decided_delta"] == 6.0
    text = compare_markdown(diff)
    assert "decided on the labeled shares before and the corrected shares after" in text
    assert "| a | 50.0 | 25.0 | -25.0 |" in text
    assert "decided" not in compare_reports(before, after) and "decided" not in compare_markdown(compare_reports(before, after))


def test_cli_compare_of_an_uncalibrated_and_a_calibrated_run_shows_why_a_gap_opened(tmp_path):
    """The labeled shares of the two runs are the same; the calibrated run's gap comes from its corrected
    shares, which compare reads from the *.meta.json beside that report."""
    from conftest import EXAMPLE

    from offline_cov.cli import main

    common = ["analyze", str(EXAMPLE), "--labeler", "embed", "--taxonomy", "math,code,writing", "-q",
              "--cache", str(tmp_path / "c.sqlite")]
    labels = tmp_path / "l.jsonl"
    assert CliRunner().invoke(main, common + ["-o", str(tmp_path / "raw.json"), "--labels", str(labels)]).exit_code == 0
    rows = [json.loads(line) for line in labels.read_text().splitlines()][::2]
    answers = [{"index": r["index"], "proposed": r["categories"][0],
                "category": "math" if r["categories"][0] == "writing" else r["categories"][0]} for r in rows]
    (tmp_path / "calib.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
    done = CliRunner().invoke(main, [a for a in common if a != "-q"] + ["-o", str(tmp_path / "cal.json"),
                                                                       "--calibration", str(tmp_path / "calib.jsonl")])
    assert done.exit_code == 0, done.output
    result = CliRunner().invoke(compare, [str(tmp_path / "raw.json"), str(tmp_path / "cal.json")])
    assert result.exit_code == 0, result.output
    assert "- Gaps opened: writing" in result.output
    assert "labeled differently" not in result.output + result.stderr  # both runs: embed, the same taxonomy
    corrected = json.loads((tmp_path / "cal.meta.json").read_text())["calibration"]["corrected_share_percent"]
    writing = next(line for line in result.output.splitlines() if line.startswith("| writing |") and "decided" not in line
                   and line.count("|") == 5 and f"{corrected['writing']:.1f}" in line)
    assert float(writing.split("|")[3]) < 5.0 < float(writing.split("|")[2])
    meta = json.loads((tmp_path / "cal.meta.json").read_text())
    balance = meta["calibration"]["corrected_balance_score"]
    assert f"balance {json.loads((tmp_path / 'cal.json').read_text())['balance_score']:.2f}, {balance:.2f} on the " \
           "corrected shares (" in done.output  # the terminal summary
    raw_balance = json.loads((tmp_path / "raw.json").read_text())["balance_score"]
    assert f"Balance on the shares decided on: {raw_balance:.2f} (" in result.output and f"-> {balance:.2f} (" in result.output

    # the metadata kept elsewhere: without --after-metadata the calibration is not seen, with it it is
    moved = tmp_path / "runs" / "cal-run.json"
    moved.parent.mkdir()
    (tmp_path / "cal.meta.json").rename(moved)
    unseen = CliRunner().invoke(compare, [str(tmp_path / "raw.json"), str(tmp_path / "cal.json")])
    assert unseen.exit_code == 0 and "decided on" not in unseen.output
    seen = CliRunner().invoke(compare, [str(tmp_path / "raw.json"), str(tmp_path / "cal.json"),
                                        "--after-metadata", str(moved), "--json"])
    assert seen.exit_code == 0, seen.output
    diff = json.loads(seen.stdout)
    assert diff["decided_on"] == {"before": "labeled", "after": "corrected"}
    assert diff["decided_balance"] == {"before": raw_balance, "after": balance, "delta": round(balance - raw_balance, 4)}
    (tmp_path / "other.json").write_text(make_report({"math": 1, "code": 1}, 2).model_dump_json())
    wrong = CliRunner().invoke(compare, [str(tmp_path / "other.json"), str(tmp_path / "cal.json"),
                                         "--before-metadata", str(moved)])
    assert wrong.exit_code == 2 and f"--before-metadata {moved} is not the run metadata of" in wrong.output


def test_a_calibration_block_edited_into_another_shape_is_left_out_not_a_traceback(tmp_path, before, after):
    from offline_cov.report.render import render_html, render_markdown

    meta = {"calibration": {"trustworthy": True, "corrected_share_percent": [1, 2], "corrected_balance_score": "0.86"}}
    assert "on the corrected shares" not in render_markdown(before, meta) + render_html(before, meta, None)
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v2.json").write_text(after.model_dump_json())
    (tmp_path / "v2.meta.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "v2.json")])
    assert result.exit_code == 0 and "decided on" not in result.output, result.output


def test_cli_compare_says_when_it_was_given_metadata_or_not_a_report_object(tmp_path, before):
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v1.meta.json").write_text('{"tool": {"name": "offline-cov", "version": "x"}, "model": "m"}')
    (tmp_path / "list.json").write_text("[]")
    meta = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "v1.meta.json")])
    assert meta.exit_code == 1 and "this is a run's metadata, not its report" in meta.output
    listed = CliRunner().invoke(compare, [str(tmp_path / "v1.json"), str(tmp_path / "list.json")])
    assert listed.exit_code == 1 and "not a coverage report: a JSON list" in listed.output


def test_the_balance_change_is_the_change_of_the_scores_shown():
    """0.9251 -> 0.9211 showed "0.93 -> 0.92, change -0.00" (a review of session 26's changes)."""
    text = compare_markdown(compare_reports(make_report({"a": 1}, 1, balance=0.9251), make_report({"a": 1}, 1, balance=0.9211)))
    assert "- Balance: 0.93 (balanced) -> 0.92 (balanced), change -0.01" in text


def _meta(labeler="ensemble-lite", version="ensemble-lite-v1", model="qwen2.5-coder-1.5b", budget=512, **described):
    return {"labeler": {"labeler": labeler, "version": version}, "model": model, "prompt_version": "label-v2",
            "sample_token_budget": budget,
            "taxonomy": {"names": ["math", "code"], "descriptions": {"math": "sums", "code": "programs", **described}}}


def test_labeling_differences_name_what_labeled_the_two_runs_differently():
    assert labeling_differences(_meta(), _meta()) == []
    assert labeling_differences(_meta(), None) == [] and labeling_differences(None, _meta()) == []
    assert labeling_differences(_meta(), _meta(labeler="ensemble", version="ensemble-v7")) == [
        "labeler ensemble-lite (ensemble-lite-v1), then ensemble (ensemble-v7)"]
    assert labeling_differences(_meta(), _meta(model="qwen2.5-coder-0.5b", budget=1536)) == [
        "model qwen2.5-coder-1.5b, then qwen2.5-coder-0.5b", "samples read up to 512 tokens, then 1536 tokens"]
    assert labeling_differences(_meta(), _meta(code="code in any language")) == ["descriptions of code"]
    no_llm = {**_meta(labeler="embed", version=None, model=None, budget=256)}
    assert labeling_differences(_meta(), no_llm) == ["labeler ensemble-lite (ensemble-lite-v1), then embed",
                                                     "samples read up to 512 tokens, then 256 tokens"]


def test_labeling_differences_compare_categories_as_names_are_matched_and_only_those_both_have():
    before = _meta()
    after = {**_meta(), "taxonomy": {"names": ["Math", "writing"], "descriptions": {"Math": "sums", "writing": "essays"}}}
    assert labeling_differences(before, after) == []
    after["taxonomy"]["descriptions"].pop("Math")  # described, then not: the prompts differ
    assert labeling_differences(before, after) == ["descriptions of Math"]


def test_labeling_differences_of_metadata_edited_into_other_shapes_are_not_a_traceback():
    odd = {"labeler": "embed", "taxonomy": ["math"], "model": 3}
    assert labeling_differences(_meta(), odd) == ["labeler ensemble-lite (ensemble-lite-v1), then embed",
                                                  "model qwen2.5-coder-1.5b, then 3"]


def test_cli_compare_says_when_the_two_reports_were_labeled_differently(tmp_path, before, after):
    (tmp_path / "v1.json").write_text(before.model_dump_json())
    (tmp_path / "v2.json").write_text(after.model_dump_json())
    untaxed = {k: v for k, v in _meta().items() if k != "taxonomy"}  # the fixtures' categories are a-e
    (tmp_path / "v1.meta.json").write_text(json.dumps(untaxed))
    (tmp_path / "v2.meta.json").write_text(json.dumps({**untaxed, "labeler": {"labeler": "fused"}, "model": None}))
    versions = [str(tmp_path / "v1.json"), str(tmp_path / "v2.json")]
    result = CliRunner().invoke(compare, versions)
    assert result.exit_code == 0, result.output
    said = "the two reports were labeled differently (labeler ensemble-lite (ensemble-lite-v1), then fused)"
    assert f"Warning: {said}" in result.stderr and f"> Note: {said}" in result.stdout
    printed = CliRunner().invoke(compare, [*versions, "--json"])
    assert json.loads(printed.stdout)["labeled_differently"] == ["labeler ensemble-lite (ensemble-lite-v1), then fused"]
    (tmp_path / "v2.meta.json").write_text(json.dumps(untaxed))
    alike = CliRunner().invoke(compare, [*versions, "--json"])
    assert "labeled_differently" not in json.loads(alike.stdout) and "labeled differently" not in alike.stderr
