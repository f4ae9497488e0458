"""The HTML page and Markdown summary: content, highlighting, escaping, offline, and a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from reportmaker import make_report, worked_example

from offline_cov.cli.reports import render
from offline_cov.report.render import balance_reading, category_targets, render_html, render_markdown

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
HOSTILE = "<script>document.body.setAttribute('data-pwned','1')</script>"


class Elements(HTMLParser):
    """Every start tag with its attributes, and the id of the <svg> it sits in."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict, str | None]] = []
        self.svg: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self.svg = attrs.get("id")
        self.found.append((tag, attrs, self.svg))

    def handle_endtag(self, tag):
        if tag == "svg":
            self.svg = None


def share_bars(page: str) -> dict[str, set[str]]:
    """data-category -> classes of each bar inside #share-chart."""
    parser = Elements()
    parser.feed(page)
    return {
        attrs["data-category"]: set(attrs["class"].split())
        for tag, attrs, svg in parser.found
        if tag == "rect" and svg == "share-chart" and "data-category" in attrs
    }


@pytest.mark.parametrize(
    "score, reading",
    [(1.0, "balanced"), (0.71, "balanced"), (0.7, "mild skew"), (0.5, "mild skew"), (0.49, "severe skew"), (0.0, "severe skew")],
)
def test_balance_reading_follows_the_contract(score, reading):
    assert balance_reading(score) == reading


def test_targets_come_from_metadata_else_uniform():
    report = make_report({"a": 6, "b": 3, "c": 1}, 10)
    assert category_targets(report, None) == pytest.approx({"a": 100 / 3, "b": 100 / 3, "c": 100 / 3})
    meta = {"taxonomy": {"targets": {"a": 50.0, "b": 30.0, "c": 20.0}}}
    assert category_targets(report, meta) == {"a": 50.0, "b": 30.0, "c": 20.0}
    assert category_targets(report, meta, {"a": 10.0, "b": 10.0, "c": 80.0})["c"] == 80.0


def test_html_has_a_bar_per_category_with_gaps_and_over_highlighted():
    page = render_html(worked_example(), None, None)
    bars = share_bars(page)
    assert set(bars) == {"factual_qa", "writing", "code", "reasoning", "math"}
    assert "gap" in bars["math"]
    assert "over" in bars["factual_qa"]
    assert all("ok" in bars[n] for n in ("writing", "code", "reasoning"))
    assert 'id="difficulty-chart"' in page
    assert "0.43" in page and "severe skew" in page
    for name in bars:
        assert f"an example {name} instruction" in page


def test_html_bar_lengths_follow_shares_and_target_lines_follow_targets():
    report = make_report({"a": 6, "b": 3, "c": 1}, 10)
    meta = {"taxonomy": {"targets": {"a": 20.0, "b": 20.0, "c": 60.0}}}
    page = render_html(report, meta, None)
    widths = {m[0]: float(m[1]) for m in re.findall(r'data-category="(\w)" x="\d+" y="\d+" width="([\d.]+)"', page)}
    assert widths["a"] == pytest.approx(2 * widths["b"], rel=0.01)
    assert widths["b"] == pytest.approx(3 * widths["c"], rel=0.01)
    targets = [float(x) for x in re.findall(r'<line class="target" x1="([\d.]+)"', page)]
    assert targets[2] - 200 == pytest.approx(3 * (targets[0] - 200), rel=0.01)


def test_html_escapes_untrusted_text():
    name = 'qa"><img src=x onerror=alert(1)>'
    report = make_report(
        {name: 2, "code": 8}, 10, gaps={name: 50.0}, examples={"code": HOSTILE, name: "a & b"}
    )
    meta = {"model": "<b>m</b>", "warnings": ["<script>alert(2)</script>"]}
    page = render_html(report, meta, None)
    assert "<script" not in page.lower()
    assert "<img" not in page
    assert "&lt;script&gt;document.body" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;b&gt;m&lt;/b&gt;" in page
    assert "a &amp; b" in page
    assert set(share_bars(page)) == {name, "code"}


def test_html_is_self_contained():
    page = render_html(worked_example(), {"model": "m", "warnings": ["see https://example.com"]}, None)
    page_without_warning = page.replace("see https://example.com", "")
    assert not re.search(r"https?://", page_without_warning)
    assert not re.search(r"<(script|link|iframe|img)\b", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert "<style>" in page and "<svg" in page


def test_html_run_metadata_and_warnings():
    meta = {
        "model": "smollm2-135m",
        "engine": {"engine": "vllm"},
        "samples": {"analyzed": 100, "labeled": 98, "failed": 2},
        "warnings": ["2 sample(s) could not be labeled"],
    }
    page = render_html(worked_example(), meta, None)
    assert "smollm2-135m" in page and "vllm" in page
    assert "98 / 2" in page
    assert "2 sample(s) could not be labeled" in page
    assert "No run metadata given." in render_html(worked_example(), None, None)


def test_html_of_a_report_without_categories():
    report = make_report({}, 0, balance=0.0)
    page = render_html(report, None, None)
    assert 'id="share-chart"' not in page
    assert "No categories in this report." in page


def test_markdown_table_gaps_over_and_balance():
    text = render_markdown(worked_example(), {"model": "m1", "warnings": ["few samples"]})
    assert text.startswith("## Coverage: 100 samples, balance 0.43 (severe skew)")
    assert "| factual_qa | 52 | 52.0 | 20.0 | over |" in text
    assert "| math | 3 | 3.0 | 20.0 | gap |" in text
    assert "| writing | 28 | 28.0 | 20.0 |  |" in text
    assert "**Gaps:** math (3.0% vs 20.0%)" in text
    assert "**Over-represented:** factual_qa (52.0%)" in text
    assert "Model: m1" in text and "- few samples" in text


def test_markdown_neutralises_table_breaking_names():
    report = make_report({"a|b\n<i>": 5, "c": 5}, 10, balance=1.0)
    text = render_markdown(report, None)
    assert "| a\\|b \\<i\\> | 5 | 50.0 | 50.0 |  |" in text
    assert "(balanced)" in text
    assert "**Gaps:** none" in text


def _report_files(tmp_path, meta: str | None = None) -> Path:
    path = tmp_path / "report.json"
    path.write_text(worked_example().model_dump_json())
    if meta is not None:
        (tmp_path / "report.meta.json").write_text(meta)
    return path


def test_cli_render_writes_both_beside_the_report_and_reads_its_metadata(tmp_path):
    path = _report_files(tmp_path, '{"model": "from-meta-file", "taxonomy": {"targets": {"math": 40}}}')
    result = CliRunner().invoke(render, [str(path)])
    assert result.exit_code == 0, result.output
    assert "from-meta-file" in (tmp_path / "report.html").read_text()
    assert "| math | 3 | 3.0 | 40.0 | gap |" in (tmp_path / "report.md").read_text()


def test_cli_render_reads_only_the_report_s_own_metadata_and_never_writes_over_it(tmp_path):
    other = '{"taxonomy": {"names": ["math", "code", "poetry"]}, "model": "another-run"}'
    path = _report_files(tmp_path, other)
    beside = CliRunner().invoke(render, [str(path)])  # the report's categories differ: a crash before
    assert beside.exit_code == 0, beside.output
    assert "report.meta.json beside" in beside.output and "is another run's metadata" in beside.output
    assert "another-run" not in (tmp_path / "report.html").read_text()
    named = CliRunner().invoke(render, [str(path), "--metadata", str(tmp_path / "report.meta.json")])
    assert named.exit_code == 2 and "is not the run metadata of" in named.output and "poetry" in named.output
    counted = tmp_path / "counted.meta.json"
    counted.write_text('{"samples": {"analyzed": 7}}')
    wrong_count = CliRunner().invoke(render, [str(path), "--metadata", str(counted), "--html", str(tmp_path / "x.html")])
    assert wrong_count.exit_code == 2 and "a run of 7 samples, the report of 100" in wrong_count.output
    counts = {c.name: c.count for c in worked_example().categories}
    same_size = tmp_path / "same-size.meta.json"  # another run of 100 samples into the same categories
    same_size.write_text(json.dumps({"samples": {"analyzed": 100}, "category_counts": {**counts, "math": 4}}))
    other_run = CliRunner().invoke(render, [str(path), "--metadata", str(same_size), "--html", str(tmp_path / "z.html")])
    assert other_run.exit_code == 2 and "its category counts are not the report's" in other_run.output
    same_size.write_text(json.dumps({"samples": {"analyzed": 100}, "category_counts": counts}))
    own = CliRunner().invoke(render, [str(path), "--metadata", str(same_size), "--html", str(tmp_path / "z.html")])
    assert own.exit_code == 0, own.output
    over = CliRunner().invoke(render, [str(path), "--markdown", str(tmp_path / "report.meta.json")])
    assert over.exit_code == 2 and "is the REPORT's metadata" in over.output
    assert (tmp_path / "report.meta.json").read_text() == other
    (tmp_path / "report.meta.json").write_text("not json")
    unreadable = CliRunner().invoke(render, [str(path), "--html", str(tmp_path / "y.html")])
    assert unreadable.exit_code == 0 and "not valid JSON" in unreadable.output and "going on without it" in unreadable.output


def test_cli_render_does_not_write_its_default_outputs_over_the_user_s_own_files(tmp_path):
    path = _report_files(tmp_path)
    assert CliRunner().invoke(render, [str(path)]).exit_code == 0
    again = CliRunner().invoke(render, [str(path)])  # its own earlier outputs are written again
    assert again.exit_code == 0, again.output
    (tmp_path / "report.md").write_text("my notes on this dataset\n")
    refused = CliRunner().invoke(render, [str(path)])
    assert refused.exit_code == 2 and "report.md exists and was not written by offline-cov; name the outputs with --html/--markdown" in refused.output
    assert (tmp_path / "report.md").read_text() == "my notes on this dataset\n"
    (tmp_path / "report.html").write_text("")  # an empty file holds nothing to lose
    refused = CliRunner().invoke(render, [str(path)])
    assert refused.exit_code == 2 and (tmp_path / "report.html").read_text() == ""  # report.md still refused
    (tmp_path / "report.md").rename(tmp_path / "notes.md")
    assert CliRunner().invoke(render, [str(path)]).exit_code == 0
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    (tmp_path / "notes.md").rename(tmp_path / "report.md")
    named = CliRunner().invoke(render, [str(path), "--markdown", str(tmp_path / "report.md")])  # named: the user's call
    assert named.exit_code == 0 and (tmp_path / "report.md").read_text().startswith("## Coverage: ")


def test_cli_render_only_what_is_asked(tmp_path):
    path = _report_files(tmp_path)
    result = CliRunner().invoke(render, [str(path), "--html", str(tmp_path / "out" / "page.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "page.html").read_text().startswith("<!DOCTYPE html>")
    assert not (tmp_path / "report.md").exists()


def test_cli_render_explains_a_bad_report(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"categories": [], "total_samples_analyzed": -1}')
    result = CliRunner().invoke(render, [str(bad)])
    assert result.exit_code == 1
    assert "bad.json" in result.output and "not a coverage report" in result.output
    assert "total_samples_analyzed" in result.output and "gaps: Field required" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    result = CliRunner().invoke(render, [str(broken)])
    assert result.exit_code == 1 and "broken.json, line 1: not valid JSON" in result.output


def test_cli_render_help():
    result = CliRunner().invoke(render, ["-h"])
    assert result.exit_code == 0 and "Example: offline-cov render" in result.output


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def how_sure_metadata(report) -> dict:
    """Run metadata with share intervals, the labeler's measured accuracy and per-category examples."""
    ci = {c.name: [max(0.0, c.share_percent - 6), min(100.0, c.share_percent + 9)] for c in report.categories}
    examples = {c.name: {"most_confident": [{"index": 10 + i, "confidence": 0.9 - i / 10, "text": f"{c.name} sure {i}"}
                                            for i in range(3)],
                         "least_confident": [{"index": 90 - i, "confidence": 0.3 + i / 10, "text": HOSTILE}
                                             for i in range(2)]}
                for c in report.categories if c.count}
    return {"model": "smollm2-135m", "warnings": ["only 100 samples analyzed"],
            "share_intervals": {"basis": "sampling interval widened by the labeler's measured error", "ci95": ci,
                                "labeler_measured": {"labeler": "fused", "split": "test", "bench_run": "bench/results/x.json",
                                                     "accuracy": {"arena-hard": 0.703, "selfinstruct-domains": 0.676}}},
            "examples": examples}


def test_html_shows_intervals_how_sure_and_the_samples_per_category():
    report = worked_example()
    meta = how_sure_metadata(report)
    page = render_html(report, meta, None)
    for cat in report.categories:
        lo, hi = meta["share_intervals"]["ci95"][cat.name]
        assert f'data-category="{cat.name}" data-low="{lo:g}" data-high="{hi:g}"' in page
        assert f"the true share is likely between {lo:.1f}% and {hi:.1f}%" in page
    assert "arena-hard: 0.70" in page and "bench/results/x.json" in page
    assert page.count('<details class="examples"') == sum(1 for c in report.categories if c.count)
    assert "factual_qa sure 0" in page and html_escaped(HOSTILE) in page and HOSTILE not in page
    assert "<script" not in page.lower() and "http" not in page.lower().replace("http-equiv", "")


def test_markdown_gives_the_intervals_when_the_metadata_has_them():
    report = worked_example()
    text = render_markdown(report, how_sure_metadata(report))
    assert "| category | count | share % | 95% interval | target % | |" in text
    assert "| factual_qa | 52 | 52.0 | 46.0-61.0 | 20.0 | over |" in text


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (apt-get install -y chromium)")
def test_chromium_renders_the_charts_and_takes_a_screenshot(tmp_path):
    report = worked_example(examples={"code": HOSTILE})
    meta = how_sure_metadata(report)
    page = tmp_path / "report.html"
    page.write_text(render_html(report, meta, None), encoding="utf-8")

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'id="share-chart"' in dom and 'id="difficulty-chart"' in dom
    assert set(share_bars(dom)) == {c.name for c in report.categories}
    assert 'data-pwned="1"' not in dom
    assert dom.count('class="ci" data-category=') == len(report.categories)
    assert dom.count("<details") == sum(1 for c in report.categories if c.count)

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    _chromium(tmp_path, "--window-size=1000,1400", f"--screenshot={shot}", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000


def test_the_run_table_names_the_labeler_and_an_engine_that_never_opened():
    report = worked_example()
    page = render_html(report, {"labeler": {"labeler": "fused"}, "engine": {"engine": "vllm", "loaded": False},
                                "model": "smollm2-135m"}, None)
    assert "<tr><th>labeler</th><td>fused</td></tr>" in page
    assert "<tr><th>engine</th><td>vllm (not opened)</td></tr>" in page


def test_the_findings_give_each_call_s_interval_and_the_categories_that_may_be_gaps():
    report = worked_example()
    meta = how_sure_metadata(report)
    meta["share_intervals"]["calls"] = {"gaps": {"clear": [], "crossing": ["math"], "possible": ["reasoning"]},
                                        "over_represented": {"clear": ["factual_qa"], "crossing": [], "possible": ["writing"]}}
    meta["share_intervals"]["caveat"] = "Review <these> labels first: run `offline-cov review`."
    page = render_html(report, meta, None)
    assert '<p class="caveat">Review &lt;these&gt; labels first: run <code>offline-cov review</code>.</p>' in page
    assert "_Review \\<these\\> labels first: run \\`offline-cov review\\`._" in render_markdown(report, meta)
    assert "<b>gap: math</b> 3.0% vs target 20.0% (95% interval 0.0-12.0%, crosses the line)" in page
    assert "<b>over-represented: factual_qa</b> 52.0% (95% interval 46.0-61.0%, wholly past the line)" in page
    assert "<b>possible gap: reasoning</b> labeled 5.0%, but its 95% interval (0.0-14.0%) reaches under the line" in page
    assert "<b>possibly over-represented: writing</b>" in page and "(<b>2</b> more possible, see below)" in page
    text = render_markdown(report, meta)
    assert "**Gaps:** math (3.0% vs 20.0%, interval crosses the line)" in text
    assert "**Possible gaps** (the 95% interval crosses the line): reasoning (0.0-14.0%)" in text
    assert "**Possibly over-represented** (the 95% interval crosses the line): writing (22.0-37.0%)" in text
    assert 'class="possible"' not in render_html(report, how_sure_metadata(report), None)  # older metadata: no calls


def calibrated_metadata(report, trusted: bool = True) -> dict:
    """how_sure_metadata after `analyze --calibration`: the corrected shares, the calls decided on them."""
    meta = how_sure_metadata(report)
    corrected = {c.name: round(c.share_percent * 0.5 + 10, 2) for c in report.categories}
    meta["calibration"] = {"matched": 150, "trustworthy": trusted, "corrected_share_percent": corrected,
                           "accuracy_on_calibration": 0.8, "method": "a review of this run's labels",
                           "corrected_balance_score": 0.62}
    meta["share_intervals"]["calls"] = {"gaps": {"clear": [], "crossing": [], "possible": ["reasoning"]},
                                        "over_represented": {"clear": [], "crossing": [], "possible": []}}
    return meta


def test_a_trusted_calibration_marks_the_corrected_share_the_calls_were_decided_on():
    report = worked_example()
    meta = calibrated_metadata(report)
    corrected = meta["calibration"]["corrected_share_percent"]
    page = render_html(report, meta, None)
    parser = Elements()
    parser.feed(page)
    marks = {a["data-category"]: float(a["data-share"]) for tag, a, svg in parser.found
             if tag == "path" and svg == "share-chart" and "data-share" in a}
    assert marks == corrected
    assert f"52.0% \u2192 {corrected['factual_qa']:.1f}%" in page and "corrected share (calibration)" in page
    assert (f"<b>possible gap: reasoning</b> labeled 5.0%, corrected {corrected['reasoning']:.1f}%, but its 95% "
            "interval (0.0-14.0%) reaches under the line") in page
    assert "the line; more reviewed rows narrow it." in page and "a review of about 200 labels" not in page
    assert "(severe skew), 0.62 on the corrected shares (mild skew)</li>" in page
    text = render_markdown(report, meta)
    assert text.startswith("## Coverage: 100 samples, balance 0.43 (severe skew), 0.62 on the corrected shares (mild skew)\n")
    assert "| category | count | share % | corrected % | 95% interval | target % | |" in text
    assert f"| factual_qa | 52 | 52.0 | {corrected['factual_qa']:.1f} | 46.0-61.0 | 20.0 | over |" in text
    untrusted = render_html(report, calibrated_metadata(report, trusted=False), None)
    assert ("the calibration was not applied: more calibration rows of the categories its warning names "
            "apply it") in untrusted and "more reviewed rows" not in untrusted
    assert "data-share=" not in untrusted and "\u2192" not in untrusted and ", corrected" not in untrusted.split("Gaps and")[1]
    assert "corrected %" not in render_markdown(report, calibrated_metadata(report, trusted=False))
    assert "on the corrected shares" not in untrusted
