"""File output that never destroys what the user points at.

- `write_atomic`: a temporary file beside the target, fsynced, then renamed over it: a crash
  never leaves a half-written file in place of a good one.
- `OutputSet`: several outputs written as a set: every file goes to its temporary file first and
  only when all of them are written are they renamed into place, so a failure (a full disk, a
  folder that cannot be written) leaves the previous set whole.
- `check_outputs`: refuses, before any work, an output that is one of the inputs or another
  output (after resolving links).
Files get the permissions the user's umask gives (not the 0600 of a temporary file).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import OfflineCovError


class OutputPathError(OfflineCovError):
    """An output path that would overwrite an input or another output."""


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_temp(path: Path, text) -> str:
    """Write `text` (a string, or an iterable of strings) to a fsynced temporary file beside `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines([text] if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: str | Path, text) -> None:
    """Write `text` (a string, or an iterable of strings written one by one) to a temporary file
    beside `path`, fsync it, then rename it over `path`."""
    with OutputSet() as outputs:
        outputs.add(path, text)


def json_text(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def jsonl_lines(rows) -> Iterable[str]:
    """One JSON object per line, as `rows` yields them (a generator keeps memory flat)."""
    return (json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_json(path: str | Path, data) -> None:
    write_atomic(path, json_text(data))


def write_jsonl(path: str | Path, rows) -> None:
    """One JSON object per line, written as `rows` yields them (a generator keeps memory flat)."""
    write_atomic(path, jsonl_lines(rows))


class OutputSet:
    """Files written all or none: `add` writes each to a temporary file; leaving the block without an
    error renames them all into place, an error removes the temporary files and keeps the old ones."""

    def __init__(self):
        self._pending: list[tuple[str, Path]] = []

    def __enter__(self) -> OutputSet:
        return self

    def add(self, path: str | Path, text) -> None:
        path = Path(path)
        self._pending.append((_write_temp(path, text), path))

    def __exit__(self, exc_type, exc, tb) -> None:
        """Rename every file into place (each rename is atomic; a rename in the same folder failing
        after an earlier one succeeded is the one case that leaves a mixed set), or drop them all."""
        pending, self._pending = self._pending, []
        try:
            if exc_type is None:
                while pending:
                    tmp, path = pending[0]
                    os.replace(tmp, path)
                    pending.pop(0)
        finally:
            for tmp, _ in pending:
                Path(tmp).unlink(missing_ok=True)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(inputs: dict[str, str | Path | None], outputs: dict[str, str | Path | None]) -> None:
    """Refuse an output that is an input or another output (names are the options, for the message)."""
    named_in = [(flag, Path(p)) for flag, p in inputs.items() if p]
    named_out = [(flag, Path(p)) for flag, p in outputs.items() if p and str(p) != "-"]
    for i, (flag, path) in enumerate(named_out):
        for in_flag, source in named_in:
            if _same_file(path, source):
                raise OutputPathError(
                    f"{flag} {path} is the {in_flag} ({source}): writing there would destroy it. Choose another path."
                )
        for other_flag, other in named_out[:i]:
            if _same_file(path, other):
                raise OutputPathError(f"{flag} and {other_flag} are the same file ({path}); give each output its own path.")
