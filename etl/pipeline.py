"""read -> normalize -> plan -> write, chunk by chunk. The only module that chains stages.

Each chunk's runs are marked `writing` in the ledger, written, then marked `done` in one
transaction, so an interrupted import repeats at most one chunk and never records a run it did
not finish.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from etl.errors import BadRecord, EtlError, StageFailed
from etl.interpret import FieldRules
from etl.ledger import DONE, WRITING, Ledger, LedgerEntry, default_ledger_path
from etl.mapper import map_runs
from etl.normalize import Frames, Normalizer, concat
from etl.plan import Planner
from etl.readers import KEYED_AS_RUNS, Record, SourceFile, find_sources, read_file
from etl.report import SyncReport
from etl.writers.naming import repo_root

DEFAULT_CHUNK_SIZE = 500


@dataclass(frozen=True, slots=True)
class Progress:
    """Cumulative counts, handed to a progress callback after every chunk."""

    records: int
    runs: int
    points: int
    seconds: float


def read(
    paths: Sequence[str | Path],
    *,
    rules: FieldRules | None = None,
    format: str = "auto",
    keyed: str = KEYED_AS_RUNS,
    base: str | Path | None = None,
) -> Frames:
    """The whole history under `paths` as the normalized `runs` and `metrics` frames; no Aim needed.

    Invalid records are left out of the frames; `migrate(..., dry_run=True)` lists them.
    """
    files, _ = find_sources(list(paths), base=Path(base) if base else Path.cwd(), format=format)
    normalizer = Normalizer(rules)
    chunks = []
    for source in files:
        records = [r for r in read_file(source, keyed=keyed) if isinstance(r, Record)]
        chunks.append(normalizer.normalize(records))
    return concat(chunks)


def migrate(
    paths: Sequence[str | Path],
    repo: str | Path = ".",
    *,
    ledger: str | Path | None = None,
    dry_run: bool = False,
    rules: FieldRules | None = None,
    format: str = "auto",
    keyed: str = KEYED_AS_RUNS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[Progress], None] | None = None,
    command: str = "migrate",
) -> SyncReport:
    """Import every run under `paths` into the Aim repo `repo`; safe to repeat.

    With `dry_run`, nothing is created or changed (no repo, no ledger); the report says what would be.
    """
    if str(repo).startswith("aim://"):
        raise EtlError(f"{repo}: remote (aim://) repos are not supported yet; import into a local repo")
    rules = rules or FieldRules()
    root = repo_root(repo)
    ledger_path = Path(ledger) if ledger else default_ledger_path(root)
    batch = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    report = SyncReport(command, str(root), str(ledger_path), dry_run, batch, timezone=rules.timezone)
    started = time.monotonic()

    files, skipped = find_sources(list(paths), base=root, format=format)
    for item in skipped:
        report.add_skipped_file(item.source, item.reason)

    job = _Job(report, rules, chunk_size, progress, started)
    if dry_run:
        job.planner = Planner(Ledger.snapshot_of(ledger_path))
    else:
        from etl.writers.sdk import SdkWriter  # Aim is imported only when something is written

        job.ledger = Ledger(ledger_path)
        job.planner = Planner(job.ledger.snapshot())
        job.writer = SdkWriter(root)
        job.ledger.begin_batch(batch, command, [f.source for f in files])
    try:
        for source in files:
            job.read_file(source, keyed)
    finally:
        report.seconds = time.monotonic() - started
        if job.ledger is not None:
            job.ledger.finish_batch(batch, report.summary())
            job.ledger.close()
    return report


class _Job:
    def __init__(self, report: SyncReport, rules: FieldRules, chunk_size: int, progress, started: float) -> None:
        self.report = report
        self.normalizer = Normalizer(rules)
        self.chunk_size = chunk_size
        self.progress = progress
        self.started = started
        self.planner: Planner | None = None
        self.ledger: Ledger | None = None
        self.writer = None
        self.records = 0
        self.live_runs = 0
        self.live_points = 0

    def read_file(self, source: SourceFile, keyed: str) -> None:
        stats = self.report.file(source.source, source.format)
        chunk: list[Record] = []
        try:
            for item in read_file(source, keyed=keyed):
                self.records += 1
                if isinstance(item, BadRecord):
                    self.report.add_invalid(item.source, item.locator, item.reason)
                    continue
                chunk.append(item)
                if len(chunk) >= self.chunk_size:
                    self.process(chunk)
                    chunk = []
        except OSError as exc:  # unreadable file: say so, keep what was read, go on with the others
            self.report.add_invalid(source.source, "file", f"cannot read: {exc.strerror or exc}")
        if chunk:
            self.process(chunk)
        if stats.records == 0:
            self.report.add_skipped_file(source.source, "no records in file")

    def process(self, chunk: list[Record]) -> None:
        frames = self.normalizer.normalize(chunk)
        plan = self.planner.plan(frames.runs)
        self.report.add_chunk(frames, plan)
        if self.writer is not None:
            self.write(frames, plan)
        self._tick()

    def _tick(self, spec=None) -> None:
        """Progress after every chunk, and after every run written (a chunk of new runs can take a minute)."""
        if spec is not None:
            self.live_runs += 1
            self.live_points += spec.points
        if self.progress is not None:
            self.progress(Progress(self.records, self.live_runs, self.live_points, time.monotonic() - self.started))

    def write(self, frames: Frames, plan) -> None:
        specs = list(map_runs(frames, plan.to_write(), self.report.batch))
        if not specs:
            return
        self.ledger.record((_entry(s, WRITING) for s in specs), self.report.batch)
        try:
            result = self.writer.write(specs, on_run=self._tick)
        except Exception as exc:  # noqa: BLE001 - reported with what was committed, then re-raised
            raise StageFailed("write", exc, self.report.runs_written) from exc
        self.ledger.record((_entry(s, DONE) for s in (*result.written, *result.already_present)), self.report.batch)
        for spec in result.already_present:
            # In the repo already with this content (the ledger had been lost): nothing written.
            stats = self.report.files[spec.source]
            stats.new -= 1
            stats.unchanged += 1
        self.report.runs_written += len(result.written)
        self.report.points_written += result.points


def _entry(spec, state: str) -> LedgerEntry:
    return LedgerEntry(spec.run_key, spec.content_hash, spec.run_hash, spec.source, spec.locator, state)


__all__ = ["DEFAULT_CHUNK_SIZE", "Progress", "migrate", "read"]
