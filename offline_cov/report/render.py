"""Reports people read: one self-contained HTML page, and a compact Markdown summary.

The HTML page works offline: inline CSS and inline SVG, no scripts, fonts or
CDN. Every piece of text from the report is escaped, since samples are untrusted.
"""

from __future__ import annotations

import html
import re

from .contract import DIFFICULTIES, CoverageReport
from .load import metadata_taxonomy

BALANCED, MILD = 0.7, 0.5
LABEL_CHARS = 28


def balance_reading(score: float) -> str:
    """The contract's reading of a balance score: above 0.7 balanced, 0.5-0.7 mild skew, below severe."""
    if score > BALANCED:
        return "balanced"
    if score >= MILD:
        return "mild skew"
    return "severe skew"


def category_targets(
    report: CoverageReport, metadata: dict | None = None, targets: dict[str, float] | None = None
) -> dict[str, float]:
    """Target share (percent) per category: `targets`, else the metadata's taxonomy targets, else 100/k."""
    given = targets or metadata_taxonomy(metadata).get("targets") or {}
    uniform = 100.0 / len(report.categories) if report.categories else 0.0
    return {c.name: float(given.get(c.name, uniform)) for c in report.categories}


def _status(report: CoverageReport) -> dict[str, str]:
    gaps = {g.category for g in report.gaps}
    over = {o.category for o in report.over_represented}
    return {c.name: "gap" if c.name in gaps else "over" if c.name in over else "ok" for c in report.categories}


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _e_code(text) -> str:
    """`_e`, with each `quoted` span (a command, in Markdown's way) set as <code>."""
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "\u2026"


# ---------------------------------------------------------------- HTML


def render_html(report: CoverageReport, metadata: dict | None = None, targets: dict[str, float] | None = None) -> str:
    """The whole report as one self-contained HTML page."""
    metadata = metadata or {}
    goal = category_targets(report, metadata, targets)
    status = _status(report)
    reading = balance_reading(report.balance_score)
    intervals = share_intervals(metadata)
    sections = [
        _summary_html(report, reading, metadata),
        _section("Share of samples against target", _share_chart(report, goal, status, intervals,
                                                                 corrected_shares(metadata))),
        _section("How sure", _how_sure_html(report, metadata, intervals)),
        _section("Difficulty mix per category", _difficulty_chart(report)),
        _section("Gaps and over-represented categories", _findings_html(report, metadata)),
        _section("Categories", _categories_table(report, goal, status)),
        _section("Samples per category, most and least confident", _examples_html(report, metadata)),
        _section("Run", _run_html(report, metadata)),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Coverage report: {report.total_samples_analyzed} samples</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>Coverage report</h1>\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )


def _section(title: str, body: str) -> str:
    return f"<section>\n<h2>{_e(title)}</h2>\n{body}\n</section>"


def _summary_html(report: CoverageReport, reading: str, metadata: dict) -> str:
    css_class = reading.replace(" ", "-")
    model = metadata.get("model")
    model_line = f"<li>model <b>{_e(model)}</b></li>" if model else ""
    maybe = len(possible_calls(share_calls(metadata)))
    possible = f" (<b>{maybe}</b> more possible, see below)" if maybe else ""
    return (
        '<ul class="summary">'
        f"<li><b>{report.total_samples_analyzed}</b> samples analyzed</li>"
        f'<li id="balance" class="{css_class}">balance <b>{report.balance_score:.2f}</b> ({_e(reading)})'
        f"{_e(corrected_balance(metadata))}</li>"
        f"<li><b>{len(report.gaps)}</b> gap(s), <b>{len(report.over_represented)}</b> over-represented{possible}</li>"
        f"{model_line}</ul>\n"
        f'<p class="basis">{_e(report.decision_basis)}</p>'
    )


def _trusted_calibration(metadata: dict | None) -> dict:
    """The metadata's calibration block when its correction was trusted (and applied), else {}."""
    calibration = (metadata or {}).get("calibration")
    return calibration if isinstance(calibration, dict) and calibration.get("trustworthy") is True else {}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def corrected_shares(metadata: dict | None) -> dict[str, float]:
    """The calibration-corrected shares the report's calls were decided on (a trusted correction), else
    none; a block edited into another shape counts as none."""
    shares = _trusted_calibration(metadata).get("corrected_share_percent")
    if not isinstance(shares, dict) or not all(_is_number(v) for v in shares.values()):
        return {}
    return dict(shares)


def corrected_balance_score(metadata: dict | None) -> float | None:
    """The balance score on the corrected shares (a trusted correction's `corrected_balance_score`), else None."""
    score = _trusted_calibration(metadata).get("corrected_balance_score")
    return float(score) if _is_number(score) else None


def corrected_balance(metadata: dict | None) -> str:
    """", 0.62 on the corrected shares (mild skew)" after a trusted calibration, else "": the contract's
    balance score is the labels' own; this one is on the shares the calls were decided on."""
    score = corrected_balance_score(metadata)
    return "" if score is None else f", {score:.2f} on the corrected shares ({balance_reading(score)})"


def share_intervals(metadata: dict | None) -> dict[str, tuple[float, float]]:
    """Each category's 95% share interval (percent) from the run metadata, where it has them."""
    block = ((metadata or {}).get("share_intervals") or {}).get("ci95") or {}
    return {name: (float(lo), float(hi)) for name, (lo, hi) in block.items()}


def _share_chart(report: CoverageReport, goal: dict[str, float], status: dict[str, str],
                 intervals: dict[str, tuple[float, float]] | None = None, corrected: dict[str, float] | None = None) -> str:
    """A bar per category (its labeled share), the target line, the 95% interval and, after a trusted
    calibration, a diamond at the corrected share the calls were decided on."""
    if not report.categories:
        return "<p>No categories in this report.</p>"
    intervals, corrected = intervals or {}, corrected or {}
    label_w, bar_w, row_h = 200, 440, 26
    highs = [hi for _, hi in intervals.values()]
    scale = max([c.share_percent for c in report.categories] + list(goal.values()) + highs + list(corrected.values()) + [1.0])
    height = row_h * len(report.categories) + 30 + (16 if corrected else 0)
    rows = []
    for i, cat in enumerate(report.categories):
        y = 10 + i * row_h
        width = bar_w * cat.share_percent / scale
        target_x = label_w + bar_w * goal[cat.name] / scale
        name = _e(cat.name)
        rows.append(
            f'<g class="row {status[cat.name]}">'
            f"<title>{name}: {cat.share_percent:.1f}% (target {goal[cat.name]:.1f}%)</title>"
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(_short(cat.name))}</text>'
            f'<rect class="bar {status[cat.name]}" data-category="{name}" x="{label_w}" y="{y}" '
            f'width="{width:.1f}" height="{row_h - 8}"></rect>'
            f'<line class="target" x1="{target_x:.1f}" x2="{target_x:.1f}" y1="{y - 2}" y2="{y + row_h - 6}"></line>'
            + _interval_mark(intervals.get(cat.name), label_w, bar_w, scale, y + (row_h - 8) / 2, name)
            + _corrected_mark(corrected.get(cat.name), label_w, bar_w, scale, y + (row_h - 8) / 2, name)
            + f'<text class="value" x="{label_w + max(width, _hi_x(intervals.get(cat.name), bar_w, scale)) + 6:.1f}" '
            f'y="{y + 15}">{cat.share_percent:.1f}%{_arrow(corrected.get(cat.name))}</text>'
            "</g>"
        )
    legend = (
        f'<g class="legend" transform="translate({label_w},{row_h * len(report.categories) + 22})">'
        '<rect class="bar ok" width="10" height="10" y="-9"></rect><text x="14">share</text>'
        '<rect class="bar gap" x="70" width="10" height="10" y="-9"></rect><text x="84">gap</text>'
        '<rect class="bar over" x="124" width="10" height="10" y="-9"></rect><text x="138">over-represented</text>'
        '<line class="target" x1="262" x2="262" y1="-11" y2="2"></line><text x="268">target</text>'
        + ('<line class="ci" x1="318" x2="338" y1="-4" y2="-4"></line><text x="342">95% interval</text>' if intervals else "")
        + ('<path class="corrected" d="M5,7 l5,5 l-5,5 l-5,-5 z"></path><text x="14" y="16">corrected share '
           "(calibration): gaps and over-representation are decided on it</text>" if corrected else "")
        + "</g>"
    )
    return (
        f'<svg id="share-chart" role="img" aria-label="share of samples per category against target" '
        f'viewBox="0 0 {label_w + bar_w + (130 if corrected else 70)} {height}" width="100%">' + "".join(rows) + legend
        + "</svg>"
    )


def _hi_x(interval, bar_w: int, scale: float) -> float:
    return bar_w * interval[1] / scale if interval else 0.0


def _corrected_mark(share: float | None, label_w: int, bar_w: int, scale: float, y: float, name: str) -> str:
    """A diamond at the calibration-corrected share."""
    if share is None:
        return ""
    x = label_w + bar_w * share / scale
    return (f'<path class="corrected" data-category="{name}" data-share="{share:g}" '
            f'd="M{x:.1f},{y - 6:.1f} l6,6 l-6,6 l-6,-6 z"><title>{name}: corrected {share:.1f}%</title></path>')


def _arrow(share: float | None) -> str:
    return f" \u2192 {share:.1f}%" if share is not None else ""


def _interval_mark(interval, label_w: int, bar_w: int, scale: float, y: float, name: str) -> str:
    """A whisker from the interval's low to its high end across the bar."""
    if not interval:
        return ""
    x1, x2 = label_w + bar_w * interval[0] / scale, label_w + bar_w * interval[1] / scale
    return (f'<line class="ci" data-category="{name}" data-low="{interval[0]:g}" data-high="{interval[1]:g}" '
            f'x1="{x1:.1f}" x2="{x2:.1f}" y1="{y:.1f}" y2="{y:.1f}"></line>'
            f'<line class="ci" x1="{x1:.1f}" x2="{x1:.1f}" y1="{y - 5:.1f}" y2="{y + 5:.1f}"></line>'
            f'<line class="ci" x1="{x2:.1f}" x2="{x2:.1f}" y1="{y - 5:.1f}" y2="{y + 5:.1f}"></line>')


def _how_sure_html(report: CoverageReport, metadata: dict, intervals: dict) -> str:
    """What the shares' intervals rest on, the labeler's measured accuracy, and one line per category."""
    block = metadata.get("share_intervals") or {}
    if not intervals:
        return '<p class="muted">This run gives no share intervals.</p>'
    measured = block.get("labeler_measured") or {}
    lines = [f'<p class="basis">{_e(block.get("basis", ""))}</p>']
    if block.get("caveat"):
        lines.append(f'<p class="caveat">{_e_code(block["caveat"])}</p>')
    if measured.get("accuracy"):
        sets = "; ".join(f"{_e(k)}: {v:.2f}" for k, v in measured["accuracy"].items())
        lines.append(f'<p id="measured">labeler <b>{_e(measured.get("labeler"))}</b>, accuracy measured on public '
                     f'labeled sets ({_e(measured.get("split", ""))} split, {_e(measured.get("bench_run", ""))}): {sets}</p>')
    elif measured.get("note"):
        lines.append(f'<p id="measured">labeler <b>{_e(measured.get("labeler"))}</b>: {_e(measured["note"])}</p>')
    calibration = metadata.get("calibration") or {}
    if calibration.get("corrected_share_percent"):
        trusted = "trusted" if calibration.get("trustworthy") else "NOT trusted: " + "; ".join(
            calibration.get("not_trustworthy_because") or [])
        method = f' by {_e(calibration["method"])}' if calibration.get("method") else ""
        lines.append(f'<p id="calibration">corrected with {calibration.get("matched")} calibration rows{method} '
                     f'(labeler accuracy on them {calibration.get("accuracy_on_calibration")}); {_e(trusted)}</p>')
    corrected = calibration.get("corrected_share_percent") or {}
    rows = calibration.get("calibration_rows_per_category") or {}
    thin = set(calibration.get("thin_categories") or [])
    items = []
    for cat in report.categories:
        if cat.name not in intervals:
            continue
        lo, hi = intervals[cat.name]
        fixed = f", corrected {corrected[cat.name]:.1f}%" if cat.name in corrected else ""
        if fixed and not calibration.get("trustworthy"):
            fixed += " (not applied)"
        elif cat.name in thin and cat.name in rows:
            fixed += f" (from only {rows[cat.name]} calibration row(s) of it)"
        items.append(f'<li data-category="{_e(cat.name)}"><b>{_e(cat.name)}</b>: labeled {cat.share_percent:.1f}%'
                     f"{fixed}; the true share is likely between {lo:.1f}% and {hi:.1f}%</li>")
    return "\n".join(lines) + '<ul class="how-sure">' + "".join(items) + "</ul>"


def _examples_html(report: CoverageReport, metadata: dict) -> str:
    """Per category, a collapsible list of its most and least confident samples."""
    examples = metadata.get("examples") or {}
    if not examples:
        return '<p class="muted">This labeler gives no per-sample confidence, so no samples are listed.</p>'
    parts = []
    for cat in report.categories:
        block = examples.get(cat.name)
        if not block:
            continue
        rows = [_example_row(e, "most") for e in block["most_confident"]]
        seen = {e["index"] for e in block["most_confident"]}
        rows += [_example_row(e, "least") for e in block["least_confident"] if e["index"] not in seen]
        parts.append(f'<details class="examples" data-category="{_e(cat.name)}"><summary><b>{_e(cat.name)}</b>: '
                     f"{len(rows)} sample(s), most confident first, then the least confident</summary>"
                     '<table><thead><tr><th>sample</th><th>confidence</th><th>instruction</th></tr></thead><tbody>'
                     + "".join(rows) + "</tbody></table></details>")
    return "\n".join(parts)


def _example_row(example: dict, end: str) -> str:
    conf = example.get("confidence")
    shown = f"{conf:.2f}" if isinstance(conf, int | float) else "?"
    return (f'<tr class="{end}"><td class="n">{int(example["index"])}</td><td class="n">{shown}</td>'
            f'<td class="example">{_e(example.get("text", ""))}</td></tr>')


def _difficulty_chart(report: CoverageReport) -> str:
    if not report.categories:
        return "<p>No categories in this report.</p>"
    label_w, bar_w, row_h = 200, 440, 26
    height = row_h * len(report.categories) + 30
    rows = []
    for i, cat in enumerate(report.categories):
        y = 10 + i * row_h
        mix = cat.difficulty_distribution.model_dump()
        parts, x = [], float(label_w)
        for level in DIFFICULTIES:
            width = bar_w * mix[level] / cat.count if cat.count else 0.0
            parts.append(
                f'<rect class="{level}" data-difficulty="{level}" x="{x:.1f}" y="{y}" width="{width:.1f}" '
                f'height="{row_h - 8}"><title>{_e(cat.name)}: {mix[level]} {level}</title></rect>'
            )
            x += width
        if not cat.count:
            parts.append(f'<text class="value" x="{label_w + 6}" y="{y + 15}">no samples</text>')
        rows.append(
            f'<g class="stack" data-category="{_e(cat.name)}">'
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(_short(cat.name))}</text>'
            + "".join(parts)
            + "</g>"
        )
    legend = "".join(
        f'<rect class="{level}" x="{label_w + 90 * j}" y="{height - 17}" width="10" height="10"></rect>'
        f'<text x="{label_w + 90 * j + 14}" y="{height - 8}">{level}</text>'
        for j, level in enumerate(DIFFICULTIES)
    )
    return (
        f'<svg id="difficulty-chart" role="img" aria-label="difficulty mix per category" '
        f'viewBox="0 0 {label_w + bar_w + 70} {height}" width="100%">' + "".join(rows) + legend + "</svg>"
    )


def _findings_html(report: CoverageReport, metadata: dict | None = None) -> str:
    """The gaps and over-represented categories with their 95% intervals, then the categories the report does
    not call whose interval crosses the line (`report/decisions.py`)."""
    calls, intervals = share_calls(metadata), share_intervals(metadata)
    if not report.gaps and not report.over_represented and not possible_calls(calls):
        return "<p>No gaps and no over-represented categories.</p>"
    items = [
        f'<li class="gap"><b>gap: {_e(g.category)}</b> {g.current_share:.1f}% vs target {g.target_share:.1f}%'
        f"{_sureness(calls, 'gaps', g.category, intervals)} &mdash; {_e(g.fill_suggestion)}</li>"
        for g in report.gaps
    ]
    items += [
        f'<li class="over"><b>over-represented: {_e(o.category)}</b> {o.current_share:.1f}%'
        f"{_sureness(calls, 'over_represented', o.category, intervals)} &mdash; {_e(o.concern)}</li>"
        for o in report.over_represented
    ]
    shares, corrected = {c.name: c.share_percent for c in report.categories}, corrected_shares(metadata)
    for kind, label, side in (("gaps", "possible gap", "under"), ("over_represented", "possibly over-represented", "over")):
        items += [
            f'<li class="possible" data-call="{kind}"><b>{label}: {_e(name)}</b> labeled {shares[name]:.1f}%'
            + (f", corrected {corrected[name]:.1f}%" if name in corrected else "")
            + f", but its 95% interval ({_span(intervals, name)}) reaches {side} the line</li>"
            for name in calls.get(kind, {}).get("possible", [])
        ]
    narrow = narrowing_step(metadata, code=lambda command: f"<code>{command}</code>")
    hint = ('<p class="muted">Possible: the report does not call it, but the 95% interval of its share crosses '
            f"the line; {narrow}.</p>" if possible_calls(calls) else "")
    return '<ul class="findings">' + "".join(items) + "</ul>" + hint


def narrowing_step(metadata: dict | None, code=lambda command: command) -> str:
    """What narrows the share intervals next, for the terminal and the HTML alike (`code` sets a command):
    more reviewed rows after a trusted calibration, a larger review after one that was not applied, else
    a review."""
    calibration = (metadata or {}).get("calibration")
    if corrected_shares(metadata):
        return "more reviewed rows narrow it"
    if calibration:
        return ("the calibration was not applied: more calibration rows of the categories its warning names "
                "apply it and narrow it")
    return (f"a review of about 200 labels ({code('offline-cov review')}, then {code('analyze --calibration')}) "
            "narrows it")


def share_calls(metadata: dict | None) -> dict:
    """How sure each gap and over-representation call is over its interval (`report/decisions.py`), where
    the run metadata has it."""
    return ((metadata or {}).get("share_intervals") or {}).get("calls") or {}


def possible_calls(calls: dict) -> list[str]:
    return [name for kind in calls.values() for name in kind.get("possible", [])]


def _span(intervals: dict[str, tuple[float, float]], name: str) -> str:
    return f"{intervals[name][0]:.1f}-{intervals[name][1]:.1f}%" if name in intervals else "?"


def _sureness(calls: dict, kind: str, name: str, intervals: dict[str, tuple[float, float]]) -> str:
    kinds = calls.get(kind) or {}
    if name in kinds.get("clear", []):
        return f" (95% interval {_span(intervals, name)}, wholly past the line)"
    if name in kinds.get("crossing", []):
        return f" (95% interval {_span(intervals, name)}, crosses the line)"
    return ""


def _categories_table(report: CoverageReport, goal: dict[str, float], status: dict[str, str]) -> str:
    rows = []
    for cat in report.categories:
        mix = cat.difficulty_distribution
        rows.append(
            f'<tr class="{status[cat.name]}"><td>{_e(cat.name)}</td><td class="n">{cat.count}</td>'
            f'<td class="n">{cat.share_percent:.1f}</td><td class="n">{goal[cat.name]:.1f}</td>'
            f'<td class="n">{mix.easy}/{mix.medium}/{mix.hard}</td>'
            f'<td class="example">{_e(cat.representative_example)}</td></tr>'
        )
    return (
        "<table><thead><tr><th>category</th><th>count</th><th>share %</th><th>target %</th>"
        "<th>easy/medium/hard</th><th>representative example</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _run_html(report: CoverageReport, metadata: dict) -> str:
    facts = [("samples analyzed", report.total_samples_analyzed)]
    engine = metadata.get("engine") or {}
    if isinstance(engine, dict):
        engine = (engine.get("engine") or "") + (" (not opened)" if engine.get("loaded") is False else "")
    labeler = (metadata.get("labeler") or {}).get("labeler") if isinstance(metadata.get("labeler"), dict) else None
    for label, value in (
        ("labeler", labeler),
        ("model", metadata.get("model")),
        ("engine", engine),
        ("strategy", metadata.get("strategy")),
        ("prompt version", metadata.get("prompt_version")),
        ("tool version", (metadata.get("tool") or {}).get("version")),
    ):
        if value:
            facts.append((label, value))
    samples = metadata.get("samples") or {}
    if samples:
        facts.append(("labeled / failed", f"{samples.get('labeled', '?')} / {samples.get('failed', '?')}"))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    warnings = metadata.get("warnings") or []
    if not metadata:
        warn = '<p class="muted">No run metadata given.</p>'
    elif warnings:
        warn = '<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>"
    else:
        warn = "<p>No warnings.</p>"
    return f'<table class="run">{rows}</table>\n<h3>Warnings</h3>\n{warn}'


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;background:#fafafa;margin:0}
main{max-width:980px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 12px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.summary{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:8px}
.summary li{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px 12px}
#balance.balanced{border-color:#4c8c4a}#balance.mild-skew{border-color:#d9a036}#balance.severe-skew{border-color:#c8553d}
.basis{color:#555}.caveat{color:#8a5a00}.corrected{fill:#222}
svg text{font-size:12px;fill:#222}svg .value{fill:#555}
rect.bar.ok{fill:#4a7ab8}rect.bar.gap{fill:#c8553d}rect.bar.over{fill:#e8a33d}
line.target{stroke:#111;stroke-width:2;stroke-dasharray:3 2}
rect.easy{fill:#a8d5c8}rect.medium{fill:#4a9e96}rect.hard{fill:#1f4e5a}
.findings li.gap{color:#9b2f1d}.findings li.over{color:#8a5a00}.findings li.possible{color:#555}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}td.example{font-family:ui-monospace,monospace;font-size:12px;word-break:break-word}
tr.gap td:first-child{border-left:4px solid #c8553d}tr.over td:first-child{border-left:4px solid #e8a33d}
table.run{width:auto}.warnings li{color:#8a5a00}.muted{color:#777}
line.ci{stroke:#222;stroke-width:1.5}
details.examples{margin:6px 0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:4px 8px}
details.examples summary{cursor:pointer}tr.least td{color:#8a5a00}
"""


# ---------------------------------------------------------------- Markdown


def md_cell(text) -> str:
    """One line of untrusted text, safe inside a Markdown table cell: no pipes, tags or links."""
    flat = " ".join(str(text).split())
    return re.sub(r"([\\|<>\[\]`])", r"\\\1", flat)


def render_markdown(report: CoverageReport, metadata: dict | None = None) -> str:
    """A compact Markdown summary for pull requests and terminals."""
    metadata = metadata or {}
    goal = category_targets(report, metadata)
    status = _status(report)
    mark = {"gap": "gap", "over": "over", "ok": ""}
    intervals, corrected = share_intervals(metadata), corrected_shares(metadata)
    lines = [
        f"## Coverage: {report.total_samples_analyzed} samples, balance {report.balance_score:.2f} "
        f"({balance_reading(report.balance_score)}){corrected_balance(metadata)}",
        "",
        "| category | count | share % |" + (" corrected % |" if corrected else "") + (" 95% interval |" if intervals else "")
        + " target % | |",
        "|---|---:|---:|" + ("---:|" if corrected else "") + ("---:|" if intervals else "") + "---:|---|",
    ]
    for cat in report.categories:
        interval = ""
        if intervals:
            lo, hi = intervals.get(cat.name, ("", ""))
            interval = f" {lo:.1f}-{hi:.1f} |" if cat.name in intervals else " |"
        fixed = (f" {corrected[cat.name]:.1f} |" if cat.name in corrected else " |") if corrected else ""
        lines.append(
            f"| {md_cell(cat.name)} | {cat.count} | {cat.share_percent:.1f} |{fixed}{interval} {goal[cat.name]:.1f} | "
            f"{mark[status[cat.name]]} |"
        )
    lines.append("")
    calls = share_calls(metadata)
    crossing = {kind: set(calls.get(kind, {}).get("crossing", [])) for kind in ("gaps", "over_represented")}
    gaps = "; ".join(
        f"{md_cell(g.category)} ({g.current_share:.1f}% vs {g.target_share:.1f}%"
        f"{', interval crosses the line' if g.category in crossing['gaps'] else ''})" for g in report.gaps
    )
    over = "; ".join(f"{md_cell(o.category)} ({o.current_share:.1f}%"
                     f"{', interval crosses the line' if o.category in crossing['over_represented'] else ''})"
                     for o in report.over_represented)
    lines.append(f"**Gaps:** {gaps or 'none'}  ")
    lines.append(f"**Over-represented:** {over or 'none'}  ")
    for kind, label in (("gaps", "Possible gaps"), ("over_represented", "Possibly over-represented")):
        names = calls.get(kind, {}).get("possible", [])
        if names:
            spans = "; ".join(f"{md_cell(n)} ({_span(intervals, n)})" for n in names)
            lines.append(f"**{label}** (the 95% interval crosses the line): {spans}  ")
    if metadata.get("model"):
        lines += ["", f"Model: {md_cell(metadata['model'])}"]
    caveat = (metadata.get("share_intervals") or {}).get("caveat")
    if caveat:
        lines += ["", f"_{md_cell(caveat)}_"]
    warnings = metadata.get("warnings") or []
    if warnings:
        lines += ["", "Warnings:"] + [f"- {md_cell(w)}" for w in warnings]
    return "\n".join(lines) + "\n"
