"""`review`: a person checks a stratified sample of the labels in the terminal; the answers become
the calibration file of `analyze --calibration`."""

from __future__ import annotations

import sys

import click

from .common import CONTEXT, CliError, check_paths, echo_err, encoding_option, user_errors

TEXT_CHARS = 1500


@click.command(context_settings=CONTEXT)
@click.argument("data", type=click.Path(exists=True, dir_okay=True))
@click.option("--labels", "labels_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The labels file of `analyze --labels`.")
@click.option("-o", "--out", type=click.Path(dir_okay=False),
              help="Calibration file to write (JSONL); an existing one is resumed, never overwritten.")
@click.option("--export", "export_path", type=click.Path(dir_okay=False),
              help="Instead of asking here, write the sample as a CSV to fill in a spreadsheet (the category "
                   "column; a row left empty is not reviewed); give the filled file to analyze --calibration.")
@click.option("-n", "--size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Samples to review (rerun with a larger number to extend a review).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample (keep it to resume).")
@click.option("--taxonomy", help="Comma-separated categories (as given to analyze).")
@click.option("--taxonomy-file", type=click.Path(exists=True, dir_okay=False), help="The taxonomy file given to analyze.")
@click.option("--metadata", "metadata_path", type=click.Path(exists=True, dir_okay=False),
              help="The run's *.meta.json, for its taxonomy (instead of --taxonomy/--taxonomy-file).")
@click.option("--instruction-field", help="Field holding the instruction (as given to analyze).")
@click.option("--response-field", help="Field holding the response.")
@encoding_option("Text encoding of the dataset file (as given to analyze).")
def review(data, labels_path, out, export_path, size, seed, taxonomy, taxonomy_file, metadata_path, instruction_field,
           response_field, encoding):
    """Check a sample of the labels by hand and write the calibration file.

    Each sample is shown with its proposed category: Enter accepts it, a number picks
    another, s skips, q stops and saves. Run it again to resume.

    Example: offline-cov review data.jsonl --labels labels.jsonl --metadata report.meta.json -o calibration.jsonl
    """
    from .. import review as rv
    from ..data.readers import FieldSpec, iter_samples

    if (out is None) == (export_path is None):
        raise click.UsageError("give -o/--out (review here) or --export (a CSV to fill in a spreadsheet)")
    check_paths({"DATA": data, "--labels": labels_path, "--metadata": metadata_path, "--taxonomy-file": taxonomy_file},
                {"--out": out, "--export": export_path})
    with user_errors():
        names = _category_names(taxonomy, taxonomy_file, metadata_path)
        answers = rv.read_answers(out) if out else []
        done = rv.done_answers(answers)
        labels = rv.load_labels(labels_path)
        rv.check_categories(labels, names, labels_path)
        rv.check_same_labels(done, labels, out, labels_path)
        sample = rv.stratified_sample(labels, size, seed)
        todo = [lab for lab in sample if lab.index not in done]
        wanted = {lab.index for lab in todo}
        earlier = rv.answered_categories(answers) if todo else {}
        texts = {s.index: s.for_labeler().render() for s in iter_samples(data, FieldSpec(instruction_field, response_field),
                                                           encoding=encoding, on_bad=_skip)
                 if s.index in wanted or s.index in earlier}
        rv.check_found(wanted, texts, data, labels_path)
    if export_path:
        with user_errors(writing=export_path):
            rows = rv.export_sample(export_path, todo, texts)
        grouped = (f" as {rows} rows (a text drawn more than once is one row; its answer counts for each sample in "
                   "its copies column)") if rows < len(todo) else ""
        echo_err(f"{len(todo)} samples written to {export_path}{grouped}: fill its category column (one of "
                 f"{', '.join(names)}; a row left empty is not reviewed), then give it to analyze --calibration "
                 f"{export_path}")
        return
    if not todo:
        echo_err(f"all {len(sample)} sampled labels are already in {out}: rerun analyze (or merge, for sharded "
                 f"labels) with --calibration {out} (a larger -n extends the review)")
        return
    menu = "  ".join(f"{i}={n}" for i, n in enumerate(names, start=1))
    reviewed = skipped = 0
    given: dict[str, tuple[int, object]] = {}  # text -> (the sample answered, its answer): copies are asked once
    for index, category in earlier.items():  # answers from earlier sittings count too
        if index in texts:
            given.setdefault(texts[index], (index, rv.Answer(category=category)))
    try:
        for position, label in enumerate(todo, start=1):
            answer = _copied(label, given.get(texts[label.index])) or _ask(label, texts[label.index], position,
                                                                            len(todo), names, menu, rv)
            if answer.stop:
                break
            if not answer.skipped:
                given.setdefault(texts[label.index], (label.index, answer))
            _append(rv, out, label, answer, reviewed)
            reviewed, skipped = reviewed + 1, skipped + answer.skipped
    except click.Abort as exc:  # Ctrl-C (exit 130), or the end of piped input (a normal stop)
        if not isinstance(exc.__context__, EOFError):
            _saved(out, reviewed, skipped, len(todo) - reviewed, done)
            raise SystemExit(130) from None
        if not sys.stdin.isatty() and not reviewed:
            echo_err("the input ended before any answer (it is not a terminal): to answer elsewhere, write the "
                     "sample to a spreadsheet with --export FILE.csv")
    _saved(out, reviewed, skipped, len(todo) - reviewed, done)


def _append(rv, out: str, label, answer, reviewed: int) -> None:
    """Write one answer; when that fails, say that the answers before it are kept before the error."""
    try:
        with user_errors(writing=out):
            rv.append_answer(out, label, answer)
    except CliError:
        if reviewed:
            echo_err(f"{reviewed} answer(s) given before this one are saved in {out}: run the same command to resume "
                     "once it can be written")
        raise


def _saved(out: str, reviewed: int, skipped: int, left: int, done: dict) -> None:
    """What the review wrote and what comes next (the answers given are on disk, whatever stopped it)."""
    then = (f"; {left} left: run the same command to resume" if left
            else f"; the review is complete: rerun analyze (or merge, for sharded labels) with --calibration {out}")
    if not reviewed and not done:
        echo_err(f"no answer given, nothing written to {out}{then}")
        return
    echo_err(f"{reviewed} answer(s) saved{f' ({skipped} skipped)' if skipped else ''} to {out}{then}")


def _copied(label, earlier):
    """The answer given to an earlier sample with exactly this text (a copy drawn twice), said aloud; None when none."""
    if earlier is None:
        return None
    index, answer = earlier
    click.echo(f"\n--- sample {label.index}: the same text as sample {index}, answered the same ---")
    return answer


def _skip(_error) -> None:
    """A bad record is skipped, as `analyze --skip-bad-lines` skipped it: the samples keep the indices it gave them."""


def _ask(label, text: str, position: int, total: int, names: list[str], menu: str, rv):
    shown = text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + " [...]"
    click.echo(f"\n--- sample {label.index} ({position} of {total}) ---\n{shown}\n")
    confidence = f" (confidence {label.confidence:.2f})" if label.confidence is not None else ""
    click.echo(f"proposed: {label.categories[0]}{confidence}\n{menu}")
    while True:
        reply = click.prompt("Enter=accept, number or name=correct, s=skip, q=stop", default="", show_default=False)
        answer = rv.parse_answer(reply, label.categories[0], names)
        if answer is not None:
            return answer
        click.echo(f"not understood: {reply!r} (Enter, 1-{len(names)}, a category's name, s or q)")


def _category_names(taxonomy, taxonomy_file, metadata_path) -> list[str]:
    from ..report.load import load_metadata, metadata_taxonomy
    from ..taxonomy import load_taxonomy_file, parse_taxonomy_list

    if sum(bool(x) for x in (taxonomy, taxonomy_file, metadata_path)) != 1:
        raise click.UsageError("give one of --taxonomy, --taxonomy-file or --metadata (the run's *.meta.json)")
    if taxonomy:
        return parse_taxonomy_list(taxonomy).names
    if taxonomy_file:
        return load_taxonomy_file(taxonomy_file).names
    names = metadata_taxonomy(load_metadata(metadata_path)).get("names")
    if not names:
        raise click.UsageError(f"{metadata_path} names no taxonomy; give --taxonomy or --taxonomy-file")
    return names
