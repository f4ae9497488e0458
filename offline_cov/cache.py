"""The persistent label cache: SQLite in the tool's home, committed batch by batch.

A label's key is the hash of everything that can change it: the engine and model identity,
the prompt version, the taxonomy, the sampling settings and the sample's content. A second run
on the same data labels nothing again; a run killed at any moment resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path

from .errors import OfflineCovError
from .home import tool_home

CACHE_ENV = "OFFLINE_COV_CACHE"


def default_cache_path() -> Path:
    """$OFFLINE_COV_CACHE, else labels.sqlite in the tool's home."""
    return Path(os.environ.get(CACHE_ENV) or tool_home() / "labels.sqlite")


def cache_key(*parts) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


SQLITE_HEADER = b"SQLite format 3\x00"


def refuse_non_database(path: Path) -> None:
    """Refuse a label cache path that holds a file other than an SQLite database (an empty file is fine)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError:  # missing (a new cache) or unreadable (handled where it is opened)
        return
    if head and head != SQLITE_HEADER:
        raise OfflineCovError(f"the label cache {path} exists and is not an SQLite database (an offline-cov cache "
                              "is): it would be replaced. Name a new file with --cache, or move it away.")


class LabelCache:
    """Key -> JSON value, in one SQLite file; safe to kill at any moment (WAL, commit per batch).

    A file that is not an SQLite database at all (a dataset, notes) is refused: it is the user's,
    not a cache. A database that cannot be read (garbage after SQLite's header, truncated) is moved
    aside as `<name>.corrupt-<time>` and a fresh one started; where the file or its folder cannot be
    written (a read-only tool home), the cache is read but not written, or, when it cannot even
    be read, not used. Each such step is a line in `warnings`. A stored value that is not JSON
    comes back as a miss (counted in `bad_values`, as are values a caller finds invalid).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.hits = self.misses = self.bad_values = 0
        self.warnings: list[str] = []
        self.writable = True
        self.db: sqlite3.Connection | None = None
        refuse_non_database(self.path)
        try:
            self.db = self._open()
        except (sqlite3.DatabaseError, OSError) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and self._corrupt(exc) and os.access(self.path.parent, os.W_OK):
                self._move_aside()
                self.db = self._open()
            else:
                self.db = self._open_read_only(exc)

    OPEN_WAIT_S = 60

    def _open(self) -> sqlite3.Connection:
        """Open (or create) the cache. Another run creating the same new file at the same moment holds
        it locked while it switches to WAL, which SQLite reports at once rather than waiting: that
        is waited out here (two shards started together on a new cache once lost one's labels)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.OPEN_WAIT_S
        while True:
            db = sqlite3.connect(self.path, timeout=self.OPEN_WAIT_S)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.commit()
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            except BaseException:
                db.close()
                raise

    @staticmethod
    def _corrupt(exc: sqlite3.DatabaseError) -> bool:
        """A file that is not a database (as opposed to one this process may not write)."""
        return not isinstance(exc, sqlite3.OperationalError) or "malformed" in str(exc) or "not a database" in str(exc)

    def _move_aside(self) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.warnings.append(f"the label cache {self.path} was not a readable database; moved it to {aside} "
                             "and started a fresh one (its labels will be computed again)")

    def _open_read_only(self, exc: Exception) -> sqlite3.Connection | None:
        self.writable = False
        reason = getattr(exc, "strerror", None) or str(exc)
        if self.path.exists():
            try:
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
                db.execute("SELECT COUNT(*) FROM entries").fetchone()
                fix = ("another run held it locked for a minute; give each run its own --cache to keep them"
                       if "locked" in reason else "point --cache at a writable file to keep them")
                self.warnings.append(f"the label cache {self.path} cannot be written ({reason}); reading it only, "
                                     f"new labels are not stored ({fix})")
                return db
            except sqlite3.DatabaseError:
                pass
        self.warnings.append(f"the label cache {self.path} cannot be opened ({reason}); running without a cache "
                             "(point --cache at a writable file, or pass --no-cache to silence this)")
        return None

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        try:
            for start in range(0, len(keys) if self.db else 0, 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for k, v in self.db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk):
                    try:
                        found[k] = json.loads(v)
                    except (json.JSONDecodeError, TypeError):
                        self.bad_values += 1
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)
        hits = sum(key in found for key in keys)  # per key asked: duplicate samples count once each
        self.hits += hits
        self.misses += len(keys) - hits
        return found

    def reject(self, count: int = 1) -> None:
        """Count hits a caller found invalid as misses (they are labeled again)."""
        self.hits -= count
        self.misses += count
        self.bad_values += count

    def put_many(self, items: dict[str, object]) -> None:
        """Store and commit at once: what is stored survives a crash right after."""
        if not self.writable or self.db is None:
            return
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()],
            )
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            self._give_up(exc)

    def _give_up(self, exc: sqlite3.DatabaseError) -> None:
        """A cache that fails in use (disk full, a file damaged under us): the run goes on without it."""
        self.warnings.append(f"the label cache {self.path} failed ({exc}); the run went on without it, and labels "
                             "from here on were not stored")
        self.close()
        self.db, self.writable = None, False

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] if self.db else 0

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
