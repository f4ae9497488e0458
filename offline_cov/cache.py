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
from pathlib import Path

from .home import tool_home

CACHE_ENV = "OFFLINE_COV_CACHE"


def default_cache_path() -> Path:
    """$OFFLINE_COV_CACHE, else labels.sqlite in the tool's home."""
    return Path(os.environ.get(CACHE_ENV) or tool_home() / "labels.sqlite")


def cache_key(*parts) -> str:
    """A stable hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class LabelCache:
    """Key -> JSON value, in one SQLite file; safe to kill at any moment (WAL, commit per batch)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.commit()
        self.hits = self.misses = 0

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk)
            found.update((k, json.loads(v)) for k, v in rows)
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        """Store and commit at once: what is stored survives a crash right after."""
        self.db.executemany(
            "INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)",
            [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()],
        )
        self.db.commit()

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def close(self) -> None:
        self.db.close()
