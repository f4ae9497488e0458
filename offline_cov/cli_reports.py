"""`render` and `compare`: reports people read.

The lead registers these on the main group with `main.add_command(...)`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .errors import OfflineCovError

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _load_report(path):
    from .report_io import load_report

    try:
        return load_report(path)
    except OfflineCovError as exc:
        raise click.ClickException(str(exc)) from None


def _load_metadata(report_path, metadata_path) -> dict | None:
    from .report_io import default_metadata_path, load_metadata

    path = metadata_path or default_metadata_path(report_path)
    if path is None:
        return None
    try:
        return load_metadata(path)
    except OfflineCovError as exc:
        raise click.ClickException(f"{exc} (or leave out --metadata)") from None


@click.command(context_settings=CONTEXT)
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@click.option("--metadata", "metadata_path", type=click.Path(exists=True, dir_okay=False),
              help="Run metadata. Default: REPORT's *.meta.json beside it, if there is one.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the HTML page here.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Write the Markdown summary here.")
def render(report, metadata_path, html_path, markdown_path):
    """Render a report as a self-contained HTML page and a Markdown summary.

    With neither --html nor --markdown, both are written beside REPORT (.html, .md).

    Example: offline-cov render report.json --html report.html
    """
    from .io import write_atomic
    from .render import render_html, render_markdown

    parsed = _load_report(report)
    metadata = _load_metadata(report, metadata_path)
    if not html_path and not markdown_path:
        html_path, markdown_path = Path(report).with_suffix(".html"), Path(report).with_suffix(".md")
    if html_path:
        write_atomic(html_path, render_html(parsed, metadata, None))
        click.echo(f"HTML written to {html_path}", err=True)
    if markdown_path:
        write_atomic(markdown_path, render_markdown(parsed, metadata))
        click.echo(f"Markdown written to {markdown_path}", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("before", type=click.Path(exists=True, dir_okay=False))
@click.argument("after", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the comparison as JSON.")
def compare(before, after, json_path):
    """Compare two reports: share changes, gaps closed and opened, balance change.

    Example: offline-cov compare report-v1.json report-v2.json --json diff.json
    """
    from .compare import compare_markdown, compare_reports
    from .io import write_json

    diff = compare_reports(_load_report(before), _load_report(after))
    if json_path:
        write_json(json_path, diff)
    click.echo(compare_markdown(diff), nl=False)
