"""`render`, `compare` and `seeds`: reading reports, and handing gaps to data generation.

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
    """Render a report as an HTML page and Markdown.

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
    """Compare two reports: shares, gaps, balance.

    Prints the change as Markdown: share per category, gaps closed, opened and
    still open, over-representation and balance.

    Example: offline-cov compare report-v1.json report-v2.json --json diff.json
    """
    from .compare import compare_markdown, compare_reports
    from .io import write_json

    diff = compare_reports(_load_report(before), _load_report(after))
    if json_path:
        write_json(json_path, diff)
    click.echo(compare_markdown(diff), nl=False)


@click.command(context_settings=CONTEXT)
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Seed tasks file to write (JSONL).")
@click.option("--per-gap", type=click.IntRange(min=1, max=100), default=5, show_default=True,
              help="Seed tasks to write for each gap.")
@click.option("--model", help="A name from models.yaml (see `offline-cov models`). Default: one this machine can run.")
@click.option("--engine", type=click.Choice(["vllm", "transformers"]), default="vllm", show_default=True)
@click.option("--metadata", "metadata_path", type=click.Path(exists=True, dir_okay=False),
              help="Run metadata with category descriptions. Default: REPORT's *.meta.json, if there is one.")
@click.option("--taxonomy-file", type=click.Path(exists=True, dir_okay=False),
              help="Taxonomy file whose category descriptions go into the prompts.")
def seeds(report, out, per_gap, model, engine, metadata_path, taxonomy_file):
    """Write seed tasks that fill a report's gaps.

    Asks the local model for self-instruct seed tasks, --per-gap for each gap,
    and writes them in the self-instruct seed-task format plus a "gap" field.

    Example: offline-cov seeds report.json --out seeds.jsonl --per-gap 5
    """
    from . import pipeline
    from .io import write_jsonl
    from .seeds import category_descriptions, generate_seeds

    parsed = _load_report(report)
    descriptions = category_descriptions(_load_metadata(report, metadata_path))
    try:
        if taxonomy_file:
            from .taxonomy import load_taxonomy_file

            descriptions |= {c.name: c.description for c in load_taxonomy_file(taxonomy_file).categories if c.description}
        if not parsed.gaps:
            write_jsonl(out, [])
            click.echo(f"{report} has no gaps: wrote an empty {out}", err=True)
            return
        eng = pipeline.open_engine(engine, model)
        try:
            run = generate_seeds(eng, parsed, per_gap, descriptions)
        finally:
            eng.close()
    except OfflineCovError as exc:
        raise click.ClickException(str(exc)) from None
    write_jsonl(out, run.tasks)
    for failure in run.failures:
        click.echo(f"Warning: no seed {failure['id']} for gap {failure['gap']!r}: {failure['reason']}", err=True)
    click.echo(f"{len(run.tasks)} seed task(s) for {len(parsed.gaps)} gap(s) written to {out}", err=True)
    if not run.tasks:
        raise click.ClickException(f"the model wrote no usable seed task; {out} is empty. Try a larger --model.")
