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
import time
from collections.abc import Iterable
from pathlib import Path

from .errors import OfflineCovError


class OutputPathError(OfflineCovError):
    """An output path that would overwrite an input or another output."""


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


TEMP_PREFIX = ".offline-cov-"  # a fixed length: a temporary name never runs past the folder's name limit


def _write_temp(path: Path, text) -> str:
    """Write `text` (a string, or an iterable of strings) to a fsynced temporary file beside `path`;
    a failure names `path`, not the temporary file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines([text] if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
    except BaseException as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    return tmp


STALE_TEMP_S = 3600


def _remove_stale_temps(folder: Path) -> None:
    """Remove our temporary files left in `folder` by a run killed while it wrote (over an hour old: a
    run writing now keeps its own)."""
    now = time.time()
    for old in folder.glob(f"{TEMP_PREFIX}*.tmp"):
        try:
            if now - old.stat().st_mtime > STALE_TEMP_S:
                old.unlink()
        except OSError:
            continue


def writes_in_place(path: str | Path) -> bool:
    """Whether `path` is written in place rather than replaced: a device, FIFO or socket (/dev/null, a
    named pipe) that a rename would turn into a plain file."""
    path = Path(path)
    try:
        return path.exists() and not path.is_file() and not path.is_dir()
    except OSError:
        return False


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
        self._in_place: list[tuple[Path, object]] = []

    def __enter__(self) -> OutputSet:
        return self

    def add(self, path: str | Path, text) -> None:
        """Queue `text` for `path`: through a symbolic link to its target (the link stays a link), into a
        device or FIFO as it is, else by a temporary file renamed into place."""
        path = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
        if writes_in_place(path):
            self._in_place.append((path, text))
        else:
            self._pending.append((_write_temp(path, text), path))

    def __exit__(self, exc_type, exc, tb) -> None:
        """Rename every file into place (each rename is atomic; a rename in the same folder failing
        after an earlier one succeeded is the one case that leaves a mixed set), or drop them all."""
        pending, self._pending = self._pending, []
        in_place, self._in_place = self._in_place, []
        try:
            if exc_type is None:
                while pending:
                    tmp, path = pending[0]
                    os.replace(tmp, path)
                    pending.pop(0)
                for path, text in in_place:
                    with open(path, "w", encoding="utf-8") as handle:
                        handle.writelines([text] if isinstance(text, str) else text)
        finally:
            for tmp, _ in pending:
                Path(tmp).unlink(missing_ok=True)


def same_file(a: Path, b: Path) -> bool:
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
            if same_file(path, source):
                raise OutputPathError(
                    f"{flag} {path} is the {in_flag} ({source}): writing there would destroy it. Choose another path."
                )
        for other_flag, other in named_out[:i]:
            if same_file(path, other):
                raise OutputPathError(f"{flag} and {other_flag} are the same file ({path}); give each output its own path.")


def write_problem(path: str | Path) -> str | None:
    """Why `path` cannot be written, found before any work (None: it can): a name past the file
    system's limit, a folder on the way that is a file, or a folder where no file can be created (a
    file is created and removed there to find out, as permissions alone miss read-only mounts)."""
    path = Path(path)
    if writes_in_place(path):
        return None
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder"
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(path.name.encode()) > limit:
        return f"its name is {len(path.name.encode())} bytes, over this file system's limit of {limit}"
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"no file can be created in {folder} ({exc.strerror or exc})"
    return None
