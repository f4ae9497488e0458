"""What every command shares: help options, error handling, and the options several commands take."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import click

from ..errors import OfflineCovError

CONTEXT = {"help_option_names": ["-h", "--help"]}
STDOUT = "-"


class CliError(click.ClickException):
    """A library error shown as 'Error: ...' with exit status 1."""


@contextlib.contextmanager
def user_errors(writing: str | None = None) -> Iterator[None]:
    """Turn the library's errors (and, with `writing`, a failed write) into 'Error: ...', exit 1."""
    try:
        yield
    except OfflineCovError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        if writing is None:
            raise
        reason = exc.strerror or str(exc)
        raise CliError(f"could not write {exc.filename or writing}: {reason}. Check the folder exists and is writable.") from None


def check_paths(inputs: dict, outputs: dict) -> None:
    """Refuse, before any work, an output that is an input or another output (exit 2)."""
    from ..io import OutputPathError, check_outputs

    try:
        check_outputs(inputs, outputs)
    except OutputPathError as exc:
        raise click.UsageError(str(exc)) from None


REPORT_START = '{\n  "categories": '
METADATA_START = '{\n  "tool": {\n    "name": "offline-cov"'


def out_defaulted() -> bool:
    """Whether the command's -o/--out was left out, so its default path is used."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source("out") is ParameterSource.DEFAULT


def refuse_others_file(path, start: str, how: str) -> None:
    """Refuse (exit 2) to write over a file the user did not name (a default or a derived path) unless an
    offline-cov run wrote it (it begins with `start`) or it is empty: a file of theirs there must not be lost."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as handle:
        head = handle.read(len(start.encode())).decode("utf-8", errors="replace")
    if head != start:
        raise click.UsageError(f"{path} exists and was not written by offline-cov; {how}, or move it away")


def model_option(fn):
    return click.option("-m", "--model", "model",
                        help="A name from models.yaml (see `offline-cov models`). Default: one this machine can run.")(fn)


def out_option(default: str | None, what: str, required: bool = False):
    """`-o/--out PATH`, where `-` means standard output. No default is passed when there is none: Click
    (8.3+) takes an explicit `default=None` for a value and then no longer enforces `required`."""
    defaults = {} if default is None else {"default": default, "show_default": True}
    return click.option("-o", "--out", "out", type=click.Path(dir_okay=False, allow_dash=True), required=required,
                        help=f"Where to write {what} (- for stdout).", **defaults)


def json_flag(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout instead of text.")(fn)


def quiet_option(fn):
    return click.option("-q", "--quiet", "quiet", is_flag=True,
                        help="No progress bar or summary, ours or the libraries' (vLLM, transformers).")(fn)


def silence_libraries() -> None:
    """Ask the libraries a run loads (tqdm bars, transformers, vLLM and its workers) to stay quiet.
    Set before they are imported; vLLM's spawned workers inherit the environment."""
    for name, value in {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
                        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "VLLM_LOGGING_LEVEL": "ERROR",
                        "VLLM_CONFIGURE_LOGGING": "0"}.items():
        os.environ.setdefault(name, value)


def display_width(text: str) -> int:
    """Terminal columns `text` takes: two for East Asian wide and full-width characters, none for
    combining marks, one otherwise."""
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def pad(text: str, width: int) -> str:
    """`text` followed by spaces up to `width` terminal columns (`display_width`)."""
    return text + " " * max(0, width - display_width(text))


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def write_text_out(path: str, text: str) -> None:
    """Write `text` to `path` atomically, or to stdout when `path` is `-`."""
    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ..io import write_atomic

    write_atomic(path, text)
