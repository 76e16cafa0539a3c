"""A str -> str map that moves to a temporary SQLite file once it holds many entries.

What an import must remember about every run until it ends (the content hashes planned, the keys
and record ids seen: `etl.plan`, `etl.normalize`) grows with the log, ~870 bytes a run as Python
objects: a million-line log would hold most of a gigabyte for it alone. Up to `limit` entries
stay in a dict (every test, and most imports, never leave it); past that, all of them go to a
table on disk whose page cache is bounded, so the memory of an import stays flat however long
the log. The file is the process's own, deleted when the map is closed or collected.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path

DEFAULT_LIMIT = 100_000  # entries kept in memory: ~90 MB for one import's three maps, at most
_CACHE_KIB = 4096  # SQLite's page cache for the spilled table


class SpillDict(MutableMapping[str, str]):
    def __init__(self, limit: int | None = None) -> None:
        self.limit = DEFAULT_LIMIT if limit is None else limit
        self._memory: dict[str, str] | None = {}
        self._db: sqlite3.Connection | None = None
        self._folder: tempfile.TemporaryDirectory | None = None

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def __getitem__(self, key: str) -> str:
        if self._memory is not None:
            return self._memory[key]
        row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def __setitem__(self, key: str, value: str) -> None:
        if self._memory is not None:
            self._memory[key] = value
            if len(self._memory) > self.limit:
                self._spill()
            return
        self._db.execute("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: str) -> None:
        if self._memory is not None:
            del self._memory[key]
            return
        if self._db.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount == 0:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if self._memory is not None:
            return key in self._memory
        return self._db.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        if self._memory is not None:
            return iter(list(self._memory))
        return (key for (key,) in self._db.execute("SELECT key FROM entries").fetchall())

    def __len__(self) -> int:
        if self._memory is not None:
            return len(self._memory)
        return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def _spill(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="aim-etl-")
        # Scratch data, rebuilt by the next import if lost: no journal, no fsync.
        db = sqlite3.connect(str(Path(self._folder.name) / "seen.sqlite"), isolation_level=None)
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        db.execute("CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        db.executemany("INSERT INTO entries (key, value) VALUES (?, ?)", self._memory.items())
        self._db, self._memory = db, None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self._memory = {}
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __del__(self) -> None:
        # at interpreter exit sqlite3 or the folder may be gone already
        with contextlib.suppress(Exception):
            self.close()
