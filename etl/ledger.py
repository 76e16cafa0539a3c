"""The idempotency ledger: what was imported, under which hash, in which batch.

SQLite from the standard library, beside the Aim repo by default. A run is `done` only after it
was fully written and closed; one found `writing` (the process died mid-run) is rewritten. Each
chunk's runs are recorded in one transaction right after the chunk is written, so a crash can
repeat a chunk but never lose or half-record one. Everything here can be rebuilt from the `etl`
param on the runs themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from pathlib import Path

from etl.errors import LedgerError

LEDGER_FILENAME = ".aim-etl-ledger.sqlite"
SCHEMA_VERSION = 2
WRITING = "writing"
DONE = "done"
# Kept out of Aim by `--strict` (error violations); checked again by every import that reads it.
REJECTED = "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    sources TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    run_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    locator TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    record_id TEXT,
    occurrence INTEGER NOT NULL DEFAULT 1,
    -- the batch that first created the run: what a rollback deletes
    created_batch TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_content ON runs (content_hash);
CREATE INDEX IF NOT EXISTS runs_by_source ON runs (source);
CREATE TABLE IF NOT EXISTS cursors (
    source TEXT PRIMARY KEY,
    prefix_hash TEXT NOT NULL,
    byte_offset INTEGER NOT NULL,
    line INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    run_key: str
    content_hash: str
    run_hash: str
    source: str
    locator: str
    state: str
    record_id: str | None = None
    occurrence: int = 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where `sync` stopped in a file: the bytes before `byte_offset` are known and were imported.

    `prefix_hash` covers exactly those bytes, so an append (same prefix, more bytes) is told apart
    from a rewrite, a truncation or a rotation (anything else) without trusting mtimes alone. It
    is written `<reading>:<hash>`, `<reading>` being the fingerprint of the options the file was
    read with (`pipeline.reading_fingerprint`): read with other options, a file is read again.
    """

    source: str
    prefix_hash: str
    byte_offset: int
    line: int
    size: int
    mtime_ns: int


@dataclass
class LedgerSnapshot:
    """The ledger as the planner sees it: read once, passed in, never written through."""

    by_key: dict[str, LedgerEntry] = field(default_factory=dict)
    # content hash -> key of a `done` run holding that content (for duplicates across files)
    by_content: dict[str, str] = field(default_factory=dict)

    def known_ids(self, source: str) -> list[tuple[str, str, str, int]]:
        """(record id, content hash, run key, occurrence) of the runs with an id imported from `source`."""
        return [
            (e.record_id, e.content_hash, e.run_key, e.occurrence)
            for e in self.by_key.values()
            if e.source == source and e.record_id is not None
        ]


def default_ledger_path(repo_root: Path) -> Path:
    return repo_root / LEDGER_FILENAME


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Ledger:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        try:
            if read_only:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                self._db.commit()
            version = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: not a usable aim-etl ledger ({exc})") from None
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise LedgerError(f"{path}: ledger schema {version and version[0]} is not {SCHEMA_VERSION}")

    @classmethod
    def snapshot_of(cls, path: Path) -> LedgerSnapshot:
        """Read a ledger without creating it: what a dry run compares against."""
        if not path.exists():
            return LedgerSnapshot()
        ledger = cls(path, read_only=True)
        try:
            return ledger.snapshot()
        finally:
            ledger.close()

    def close(self) -> None:
        self._db.close()

    def snapshot(self) -> LedgerSnapshot:
        snap = LedgerSnapshot()
        rows = self._db.execute(
            "SELECT run_key, content_hash, run_hash, source, locator, state, record_id, occurrence FROM runs"
        )
        for row in rows:
            entry = LedgerEntry(*row)
            snap.by_key[entry.run_key] = entry
            if entry.state == DONE:
                snap.by_content.setdefault(entry.content_hash, entry.run_key)
        return snap

    def begin_batch(self, batch_id: str, command: str, sources: list[str]) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO batches (batch_id, command, started_at, sources) VALUES (?, ?, ?, ?)",
                (batch_id, command, _now(), json.dumps(sources)),
            )

    def finish_batch(self, batch_id: str, summary: dict[str, int]) -> None:
        """Close a batch; one that touched no run is dropped, so `sync --watch` and cron jobs do not
        fill `ledger show` with empty passes."""
        with self._db:
            self._db.execute(
                "DELETE FROM batches WHERE batch_id = ? AND NOT EXISTS (SELECT 1 FROM runs WHERE batch_id = ?)",
                (batch_id, batch_id),
            )
            self._db.execute(
                "UPDATE batches SET finished_at = ?, summary = ? WHERE batch_id = ?",
                (_now(), json.dumps(summary), batch_id),
            )

    def record(self, entries: Iterable[LedgerEntry], batch_id: str) -> None:
        """Upsert entries in one transaction: all of a chunk's runs, or none of them."""
        now = _now()
        rows = [
            (
                e.run_key,
                e.content_hash,
                e.run_hash,
                e.source,
                e.locator,
                batch_id,
                e.state,
                now,
                e.record_id,
                e.occurrence,
                batch_id,
            )
            for e in entries
        ]
        with self._db:
            self._db.executemany(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_key) DO UPDATE SET "
                "content_hash=excluded.content_hash, run_hash=excluded.run_hash, source=excluded.source, "
                "locator=excluded.locator, batch_id=excluded.batch_id, state=excluded.state, "
                "updated_at=excluded.updated_at, record_id=excluded.record_id, occurrence=excluded.occurrence",
                rows,
            )

    def cursor(self, source: str) -> Cursor | None:
        row = self._db.execute(
            "SELECT source, prefix_hash, byte_offset, line, size, mtime_ns FROM cursors WHERE source = ?", (source,)
        ).fetchone()
        return Cursor(*row) if row else None

    def save_cursor(self, cursor: Cursor) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*astuple(cursor), _now()),
            )

    def created_by(self, batch_id: str) -> list[LedgerEntry]:
        """Runs a batch created: what rolling it back deletes."""
        return self._entries("WHERE created_batch = ?", (batch_id,))

    def updated_by(self, batch_id: str) -> list[LedgerEntry]:
        """Runs a batch rewrote but did not create: a rollback cannot restore their old content."""
        return self._entries("WHERE batch_id = ? AND created_batch != ?", (batch_id, batch_id))

    def forget(self, run_keys: Iterable[str], sources: Iterable[str]) -> None:
        """Drop rolled-back runs, and the cursors of their files so the next sync reads them again."""
        with self._db:
            self._db.executemany("DELETE FROM runs WHERE run_key = ?", [(k,) for k in run_keys])
            self._db.executemany("DELETE FROM cursors WHERE source = ?", [(s,) for s in set(sources)])

    def mark_rolled_back(self, batch_id: str) -> None:
        with self._db:
            self._db.execute("UPDATE batches SET command = command || ' (rolled back)' WHERE batch_id = ?", (batch_id,))

    def has_batch(self, batch_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch_id,)).fetchone() is not None

    def _entries(self, where: str, args: tuple) -> list[LedgerEntry]:
        rows = self._db.execute(
            "SELECT run_key, content_hash, run_hash, source, locator, state, record_id, occurrence FROM runs " + where,
            args,
        )
        return [LedgerEntry(*row) for row in rows]

    def batches(self) -> list[dict[str, object]]:
        rows = self._db.execute(
            "SELECT batch_id, command, started_at, finished_at, sources, summary FROM batches ORDER BY started_at"
        )
        return [
            {
                "batch": b,
                "command": c,
                "started_at": s,
                "finished_at": f,
                "sources": json.loads(src),
                "summary": json.loads(summ) if summ else None,
            }
            for b, c, s, f, src, summ in rows
        ]
