"""`render`, `compare` and `seeds`: reading reports, and handing gaps to data generation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import OfflineCovError
from .common import (
    CONTEXT,
    STDOUT,
    CliError,
    check_paths,
    echo_err,
    json_flag,
    model_option,
    out_option,
    refuse_others_file,
    silence_libraries,
    status_lines,
    user_errors,
    verbose_option,
    write_text_out,
)


def _load_report(path):
    from ..report.load import load_report

    with user_errors():
        return load_report(path)


def _metadata_path(report_path) -> str | None:
    """The *.meta.json beside a report that the commands read when no --metadata is given (an input too)."""
    from ..report.load import default_metadata_path

    path = default_metadata_path(report_path)
    return None if path is None else str(path)


def _metadata_input(report_path, metadata_path) -> dict:
    """The metadata a command reads, as check_paths' input: --metadata, else the file beside REPORT."""
    return {"--metadata": metadata_path} if metadata_path else {"REPORT's metadata": _metadata_path(report_path)}


def _load_metadata(report_path, metadata_path, report, flag: str = "--metadata") -> dict | None:
    """The report's run metadata: `metadata_path`, given as `flag` (refused unless it is this report's), else
    the *.meta.json beside it (left out, with a warning, when it cannot be read or is another run's)."""
    from ..report.load import load_metadata, metadata_mismatch

    path = metadata_path or _metadata_path(report_path)
    if path is None:
        return None
    try:
        metadata = load_metadata(path)
    except OfflineCovError as exc:
        if metadata_path:
            raise CliError(f"{exc} (or leave out {flag})") from None
        echo_err(f"Warning: {exc}; going on without it (move it away, or pass the run's metadata with --metadata "
                 "where the command has it)")
        return None
    why = metadata_mismatch(report, metadata)
    if why and metadata_path:
        raise click.UsageError(f"{flag} {path} is not the run metadata of {report_path}: {why}")
    if why:
        echo_err(f"Warning: {path} beside {report_path} is another run's metadata ({why}); going on without it")
        return None
    return metadata


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
    from ..io import write_atomic
    from ..report.render import render_html, render_markdown

    if not html_path and not markdown_path:
        html_path, markdown_path = Path(report).with_suffix(".html"), Path(report).with_suffix(".md")
        for path in (html_path, markdown_path):
            start, marker = RENDERED_STARTS[path.suffix]
            refuse_others_file(path, start, "name the outputs with --html/--markdown", marker)
    check_paths({"REPORT": report, **_metadata_input(report, metadata_path)},
                {"--html": html_path, "--markdown": markdown_path})
    parsed = _load_report(report)
    metadata = _load_metadata(report, metadata_path, parsed)
    with user_errors(writing=html_path or markdown_path):
        if html_path:
            write_atomic(html_path, render_html(parsed, metadata, None))
            echo_err(f"HTML written to {html_path}")
        if markdown_path:
            write_atomic(markdown_path, render_markdown(parsed, metadata))
            echo_err(f"Markdown written to {markdown_path}")


RENDERED_STARTS = {".html": ("<!DOCTYPE html>", "<title>Coverage report:"), ".md": ("## Coverage: ", "")}


@click.command(context_settings=CONTEXT)
@click.argument("before", type=click.Path(exists=True, dir_okay=False))
@click.argument("after", type=click.Path(exists=True, dir_okay=False))
@click.option("--before-metadata", type=click.Path(exists=True, dir_okay=False),
              help="BEFORE's run metadata. Default: its *.meta.json beside it, if there is one.")
@click.option("--after-metadata", type=click.Path(exists=True, dir_okay=False),
              help="AFTER's run metadata. Default: its *.meta.json beside it, if there is one.")
@json_flag
@out_option(STDOUT, "the comparison")
def compare(before, after, before_metadata, after_metadata, as_json, out):
    """Compare two reports: shares, gaps, balance.

    Prints the change as Markdown (or JSON with --json): share per category, gaps closed,
    opened and still open, over-representation and balance. A report calibrated with
    --calibration (its *.meta.json beside it says so) also shows the corrected shares its
    gaps were decided on.

    Example: offline-cov compare report-v1.json report-v2.json --json -o diff.json
    """
    from ..report.compare import LABELED_DIFFERENTLY, compare_markdown, compare_reports, labeling_differences
    from ..report.render import corrected_balance_score, corrected_shares

    check_paths({"BEFORE": before, "AFTER": after,
                 "--before-metadata" if before_metadata else "BEFORE's metadata": before_metadata or _metadata_path(before),
                 "--after-metadata" if after_metadata else "AFTER's metadata": after_metadata or _metadata_path(after)},
                {"--out": out})
    first, second = _load_report(before), _load_report(after)
    meta_before = _load_metadata(before, before_metadata, first, "--before-metadata")
    meta_after = _load_metadata(after, after_metadata, second, "--after-metadata")
    _warn_thresholds(meta_before, meta_after)
    labeling = labeling_differences(meta_before, meta_after)
    if labeling:
        echo_err("Warning: " + LABELED_DIFFERENTLY.format("; ".join(labeling)))
    diff = compare_reports(first, second, corrected_shares(meta_before) or None, corrected_shares(meta_after) or None,
                           balances=(corrected_balance_score(meta_before), corrected_balance_score(meta_after)),
                           labeling=labeling)
    text = json.dumps(diff, indent=2, ensure_ascii=False) + "\n" if as_json else compare_markdown(diff)
    with user_errors(writing=out):
        write_text_out(out, text)


def _warn_thresholds(before: dict | None, after: dict | None) -> None:
    """Warn when the two runs drew their gap or over-representation line elsewhere (their metadata says)."""
    lines = [(m or {}).get("thresholds") for m in (before, after)]
    if all(isinstance(t, dict) for t in lines) and lines[0] != lines[1]:
        def shown(t):
            return f"gap {t.get('gap')}%, over {t.get('over')}%"

        echo_err(f"Warning: the two runs used different thresholds (before: {shown(lines[0])}; after: "
                 f"{shown(lines[1])}), so a gap or over-representation may open or close by the threshold alone")


@click.command(context_settings=CONTEXT)
@click.argument("report", type=click.Path(exists=True, dir_okay=False))
@out_option(None, "the seed tasks (JSONL)", required=True)
@click.option("--per-gap", type=click.IntRange(min=1, max=100), default=5, show_default=True,
              help="Seed tasks to write for each gap.")
@model_option
@click.option("--engine", type=click.Choice(["vllm", "transformers"]), default="vllm", show_default=True,
              help="The model runtime that writes the seeds.")
@click.option("--metadata", "metadata_path", type=click.Path(exists=True, dir_okay=False),
              help="Run metadata with category descriptions. Default: REPORT's *.meta.json, if there is one.")
@click.option("--taxonomy-file", type=click.Path(exists=True, dir_okay=False),
              help="Taxonomy file whose category descriptions go into the prompts.")
@verbose_option
def seeds(report, out, per_gap, model, engine, metadata_path, taxonomy_file, verbose):
    """Write seed tasks that fill a report's gaps.

    Asks the local model for self-instruct seed tasks, --per-gap for each gap,
    and writes them in the self-instruct seed-task format plus a "gap" field.

    Example: offline-cov seeds report.json -o seeds.jsonl --per-gap 5
    """
    from ..engines import open_engine
    from ..report.load import category_descriptions
    from ..seeds import generate_seeds, inferred_gaps_warning

    if not verbose:
        silence_libraries()
    check_paths({"REPORT": report, **_metadata_input(report, metadata_path), "--taxonomy-file": taxonomy_file},
                {"--out": out})
    parsed = _load_report(report)
    metadata = _load_metadata(report, metadata_path, parsed)
    descriptions = category_descriptions(metadata)
    if warning := inferred_gaps_warning(metadata, parsed):
        echo_err(f"Warning: {warning}")
    with user_errors():
        if taxonomy_file:
            from ..taxonomy import load_taxonomy_file

            given = load_taxonomy_file(taxonomy_file)
            _check_seed_taxonomy(taxonomy_file, given.names, [g.category for g in parsed.gaps])
            descriptions |= {c.name: c.description for c in given.categories if c.description}
        if not parsed.gaps:
            _write_seeds(out, [])
            echo_err(f"{report} has no gaps: wrote an empty {out}")
            return
        with status_lines(True):
            eng = open_engine(engine, model)
        try:
            run = generate_seeds(eng, parsed, per_gap, descriptions)
        finally:
            eng.close()
    _write_seeds(out, run.tasks)
    for failure in run.failures:
        echo_err(f"Warning: no seed {failure['id']} for gap {failure['gap']!r}: {failure['reason']}")
    echo_err(f"{len(run.tasks)} seed task(s) for {len(parsed.gaps)} gap(s) written to {out}")
    if not run.tasks:
        raise CliError(f"the model wrote no usable seed task; {out} is empty. Try a larger --model.")


def _check_seed_taxonomy(path: str, names: list[str], gaps: list[str]) -> None:
    """Refuse a --taxonomy-file that names none of the report's gaps (another run's taxonomy); warn for
    gaps it lacks, whose prompts then have no description."""
    missing = [g for g in gaps if g not in names]
    if gaps and len(missing) == len(gaps):
        raise click.UsageError(f"--taxonomy-file {path} names none of the report's gaps ({', '.join(gaps)}): pass the "
                               "taxonomy the report was made with, or leave the option out")
    if missing:
        echo_err(f"Warning: --taxonomy-file {path} does not name the gap(s) {', '.join(missing)}; their seeds are "
                 "asked without a description")


def _write_seeds(out: str, tasks: list[dict]) -> None:
    with user_errors(writing=out):
        write_text_out(out, "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks))
