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
    """Refuse, before any work, an output that is an input or another output, or `-` for an output other
    than -o/--out, which alone may go to standard output (exit 2)."""
    from ..io import OutputPathError, check_outputs, write_problem

    dashed = [flag for flag, path in outputs.items() if str(path) == "-" and flag != "--out"]
    if dashed:
        raise click.UsageError(f"{dashed[0]} - : only the report (-o -) goes to standard output; name a file for "
                               f"{dashed[0]}")

    try:
        check_outputs({**inputs, **_label_cache(outputs.get("--cache"))}, outputs)
    except OutputPathError as exc:
        raise click.UsageError(str(exc)) from None
    for flag, path in outputs.items():  # the cache may be read-only: it is then read, not written
        problem = write_problem(path) if path and str(path) != "-" and flag != "--cache" else None
        if problem:
            raise click.UsageError(f"{flag} {path} cannot be written: {problem}. Choose another path.")


def _label_cache(given) -> dict:
    """The label cache a run reads when --cache is not given ($OFFLINE_COV_CACHE or the tool home's),
    as an input no command may write over: a report written there replaced every label kept."""
    from pathlib import Path

    from ..cache import default_cache_path
    from ..io import same_file

    try:
        cache = default_cache_path()
    except RuntimeError:  # no home directory to find: nothing there to protect
        return {}
    return {} if given and same_file(Path(given), cache) else {"label cache": cache}


REPORT_START = '{\n  "categories": '
METADATA_START = '{\n  "tool": {\n    "name": "offline-cov"'


def out_defaulted() -> bool:
    """Whether the command's -o/--out was left out, so its default path is used."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source("out") is ParameterSource.DEFAULT


def refuse_others_file(path, start: str, how: str, marker: str = "") -> None:
    """Refuse (exit 2) to write over a file the user did not name (a default or a derived path) unless an
    offline-cov run wrote it (it begins with `start`, and `marker` is in its first 2 KiB) or it is empty:
    a file of theirs there must not be lost."""
    from pathlib import Path

    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return
    except OSError:  # a name too long, say: check_paths names the problem
        return
    with path.open("rb") as handle:
        head = handle.read(2048).decode("utf-8", errors="replace")
    if not (head.startswith(start) and marker in head):
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


def encoding_option(help_text: str):
    """`--encoding NAME`, checked against Python's codecs before any file is read (exit 2)."""
    def known(ctx, param, value):
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise click.BadParameter(f"unknown encoding {value!r}; give a Python codec name such as utf-8, "
                                     "utf-16, latin-1 or cp1252") from None
        return value

    return click.option("--encoding", default="utf-8", show_default=True, callback=known, help=help_text)


def json_flag(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout instead of text.")(fn)


def quiet_option(fn):
    return click.option("-q", "--quiet", "quiet", is_flag=True,
                        help="No progress bar, summary or status line; the libraries stay quiet too.")(fn)


def verbose_option(fn):
    return click.option("-v", "--verbose", "verbose", is_flag=True,
                        help="Show the libraries' own logs, warnings and progress bars (vLLM, transformers, "
                             "torch); without it they print errors only.")(fn)


QUIET_LIBRARIES = {
    "TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "VLLM_LOGGING_LEVEL": "ERROR", "TORCH_CPP_LOG_LEVEL": "ERROR",
    "PYTHONWARNINGS": "ignore",
}


def silence_libraries() -> None:
    """Ask the libraries a run loads to print errors only: tqdm bars, transformers, vLLM (its own
    logging, kept on so that its level applies; off, Python printed every warning bare), torch's C++
    warnings and Python warnings. Set before they are imported; vLLM's spawned workers inherit the
    environment. A variable the user set is left as it is."""
    import warnings

    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)
    if os.environ["PYTHONWARNINGS"] == "ignore":
        warnings.simplefilter("ignore")
    quiet_vllm_imports()


def quiet_vllm_imports() -> None:
    """vLLM 0.32 logs some warnings while it is imported, before it configures its logging, so Python
    prints them bare whatever VLLM_LOGGING_LEVEL says; at ERROR, its logger is set to ERROR first.
    The package runs this on import too: vLLM's spawned workers import the run's main module (the
    `offline-cov` script, or `cli.script` under `python -m offline_cov.cli`), and so this package,
    before vLLM."""
    import logging

    if os.environ.get("VLLM_LOGGING_LEVEL", "").upper() == "ERROR":
        logging.getLogger("vllm").setLevel(logging.ERROR)


@contextlib.contextmanager
def status_lines(shown: bool) -> Iterator[None]:
    """While a command runs, the library's status lines (the `offline_cov` logger at INFO: a model
    converted once, an engine starting) go to stderr through click, so CliRunner sees them too."""
    import logging

    class _Echo(logging.Handler):
        def emit(self, record):
            click.echo(self.format(record), err=True)

    logger = logging.getLogger("offline_cov")
    handler = _Echo()
    if shown:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


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
