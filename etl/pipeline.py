"""read -> normalize -> plan -> write, chunk by chunk. The only module that chains stages.

Each chunk's runs are marked `writing` in the ledger, written, then marked `done` in one
transaction, so an interrupted import repeats at most one chunk and never records a run it did
not finish.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import filelock

from etl.errors import BadRecord, EtlError, RepoLocked, StageFailed
from etl.governance.evaluate import evaluate
from etl.governance.model import FAIL
from etl.governance.report import DRY_RUN, IMPORTED, CheckedRun, GovernanceReport
from etl.governance.report import REJECTED as REJECTED_RUN
from etl.governance.rules import RuleSet
from etl.governance.views import view_of_spec
from etl.interpret import FieldRules
from etl.ledger import DONE, REJECTED, WRITING, Cursor, Ledger, LedgerEntry, LedgerSnapshot, default_ledger_path
from etl.mapper import map_runs
from etl.normalize import Frames, Normalizer, concat
from etl.plan import ON_CHANGE_UPDATE, Planner
from etl.readers import KEYED_AS_RUNS, Mapping, Record, SourceFile, find_sources, read_file
from etl.readers.detect import JSONL
from etl.remote import RemoteTarget
from etl.report import SyncReport
from etl.writers.naming import repo_root

DEFAULT_CHUNK_SIZE = 500
# A chunk also ends after this many bytes of JSONL: what a chunk holds in memory follows its points,
# not its records (500 lines of 800-point histories held ~400 MB at the peak, profiled), and a
# line's bytes are what is known of its points before it is parsed (~10 bytes a point). Two chunks
# are alive at once (one written while the next is read): at 1 MB, a log of 80,000-point lines
# peaked at 458 MB; at 256 KB, 337 MB, in the same time (bench_writers.py's large log migrated
# once each way under `/usr/bin/time`: a one-off, there is no option for this to rerun it with).
DEFAULT_CHUNK_BYTES = 256 << 10
# Verdicts written per SQL transaction and index batch by `validate`.
VERDICT_BATCH = 500


@dataclass(frozen=True, slots=True)
class Progress:
    """Cumulative counts, handed to a progress callback after every chunk, run written and file.

    The share done is measured in source bytes, the one total known before reading: records and
    runs are only counted as they are met. `bytes_done` includes what needs no reading (an
    unchanged file, the part of an appended file before its cursor); the time left is estimated
    from the bytes actually read, so a sync that skips most of its history does not promise to
    finish at once.
    """

    records: int
    runs: int
    points: int
    seconds: float
    bytes_done: int = 0
    bytes_total: int = 0
    bytes_read: int = 0

    @property
    def share(self) -> float | None:
        return min(self.bytes_done / self.bytes_total, 1.0) if self.bytes_total else None

    @property
    def seconds_left(self) -> float | None:
        """None until enough has been read to tell (a second, or some bytes)."""
        if not self.bytes_total or self.bytes_read <= 0 or self.seconds < 1.0:
            return None
        return max(self.bytes_total - self.bytes_done, 0) * self.seconds / self.bytes_read


def read(
    paths: Sequence[str | Path],
    *,
    rules: FieldRules | None = None,
    format: str = "auto",
    keyed: str = KEYED_AS_RUNS,
    mapping: Mapping | None = None,
    base: str | Path | None = None,
) -> Frames:
    """The whole history under `paths` as the normalized `runs` and `metrics` frames; no Aim needed.

    Invalid records are left out of the frames; `migrate(..., dry_run=True)` lists them.
    """
    rules, format = guided(rules or FieldRules(), format, mapping)
    files, _ = find_sources(list(paths), base=Path(base) if base else Path.cwd(), format=format)
    normalizer = Normalizer(rules)
    chunks = []
    for source in files:
        records = [r for r in read_file(source, keyed=keyed, mapping=mapping) if isinstance(r, Record)]
        chunks.append(normalizer.normalize(records, source.path))
    return concat(chunks)


def guided(rules: FieldRules, format: str, mapping: Mapping | None) -> tuple[FieldRules, str]:
    """The reading options a mapping adds: its `[fields]` roles, and its `format` unless one was forced."""
    if mapping is None:
        return rules, format
    if mapping.fields:
        rules = replace(rules, field_roles=tuple(mapping.fields.items()))
    if mapping.format is not None and format == "auto":
        format = mapping.format
    return rules, format


def migrate(paths: Sequence[str | Path], repo: str | Path = ".", **options) -> SyncReport:
    """Import every run under `paths` into the Aim repo `repo`; safe to repeat.

    Every file is read in full; a torn last line is reported invalid. Options are those of `sync`.
    """
    return _import("migrate", paths, repo, incremental=False, **options)


def sync(paths: Sequence[str | Path], repo: str | Path = ".", **options) -> SyncReport:
    """Import what changed since the last `migrate` or `sync`; cheap enough to run any time.

    An unchanged file costs a stat; an appended JSONL file is read from its cursor only; a file
    that was rewritten, truncated or rotated is read again in full, unchanged records skipped by
    content hash. A torn last line is left for the next sync. With `dry_run`, nothing is created or
    changed (no repo, no ledger); the report says what would be.
    """
    return _import("sync", paths, repo, incremental=True, **options)


def watch(
    paths: Sequence[str | Path], repo: str | Path = ".", *, interval: float = 5.0, **options
) -> Iterator[SyncReport]:
    """`sync` again every `interval` seconds, yielding each pass's report, until the caller stops."""
    while True:
        yield sync(paths, repo, **options)
        time.sleep(interval)


def _import(
    command: str,
    paths: Sequence[str | Path],
    repo: str | Path,
    *,
    incremental: bool,
    ledger: str | Path | None = None,
    dry_run: bool = False,
    rules: FieldRules | None = None,
    format: str = "auto",
    keyed: str = KEYED_AS_RUNS,
    mapping: Mapping | None = None,
    on_change: str = ON_CHANGE_UPDATE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: Callable[[Progress], None] | None = None,
    lock_wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    governance: RuleSet | None = None,
    strict: bool = False,
    writer: str = "auto",
    workers: int | None = None,
) -> SyncReport:
    if writer not in WRITERS:
        raise EtlError(f"writer must be one of {', '.join(WRITERS)}, not {writer!r}")
    rules, format = guided(rules or FieldRules(), format, mapping)
    # -- aim://HOST:PORT (etl.remote): a server is checked before the ledger is touched, its ledger and
    # lock live on this machine, and sources are named relative to the working folder.
    remote = RemoteTarget.parse(repo)
    if remote is not None and not dry_run:
        remote.check()
    root = repo_root(repo) if remote is None else Path.cwd()
    ledger_path = Path(ledger) if ledger else default_ledger_path(root) if remote is None else remote.default_ledger()
    # -- end aim://
    batch = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    report = SyncReport(command, str(remote or root), str(ledger_path), dry_run, batch, timezone=rules.timezone)
    started = time.monotonic()

    files, skipped = find_sources(list(paths), base=root, format=format)
    for item in skipped:
        report.add_skipped_file(item.source, item.reason)

    job = _Job(report, rules, chunk_size, progress, started, incremental, chunk_bytes)
    job.bytes_total = sum(_size(f.path) for f in files)
    job.writer_kind, job.workers = writer, workers
    job.mapping = mapping
    job.reading = reading_fingerprint(rules, format, keyed, mapping)
    if governance is not None:
        # Checked before writing, the same way `validate` checks the run once it is in Aim.
        job.governance, job.strict = governance, strict
        report.governance = GovernanceReport(governance.version, governance.source, governance.info(), [], dry_run)
    with contextlib.ExitStack() as stack:
        if dry_run:
            job.ledger = Ledger(ledger_path, read_only=True) if ledger_path.exists() else None
        else:
            stack.enter_context(_repo_lock(root, lock_wait, on_wait, _lock_path(remote, ledger_path)))
            job.ledger = Ledger(ledger_path)
            job.repo_root = root
            job.remote = remote
            job.ledger.begin_batch(batch, command, [f.source for f in files])
        if job.ledger is not None:
            stack.callback(job.ledger.close)
        job.planner = Planner(job.ledger.snapshot() if job.ledger else LedgerSnapshot(), on_change)
        try:
            for source in files:
                job.import_file(source, keyed)
        finally:
            job.close()
            report.seconds = time.monotonic() - started
            if not dry_run:
                job.ledger.finish_batch(batch, report.summary())
    return report


LOCK_FILENAME = ".aim-etl.lock"

WRITERS = ("auto", "bulk", "sdk")


def choose_writer(writer: str) -> tuple[str, str | None]:
    """The writer to use, and a warning when `auto` had to fall back to the SDK (and why).

    The bulk writer writes Aim's private storage layout, checked byte for byte against the SDK on
    the Aim versions in `aim_storage.CHECKED_AIM_VERSIONS` only; any other Aim gets the SDK path.
    (Remote repos are refused before this; they would take the SDK path too.)
    """
    if writer != "auto":
        return writer, None
    from importlib.metadata import version

    from etl.writers.aim_storage import CHECKED_AIM_VERSIONS, aim_version_checked

    installed = version("aim")
    if aim_version_checked(installed):
        return "bulk", None
    checked = ", ".join(f"{v}x" for v in CHECKED_AIM_VERSIONS)
    return "sdk", f"writing through Aim's SDK (slower): the bulk writer was checked on aim {checked}, not {installed}"


def _lock_path(remote: RemoteTarget | None, ledger_path: Path) -> Path | None:
    """Against a server, the lock guards this machine's ledger: it sits beside it (`LEDGER.lock`).
    Other machines' importers have their own ledgers; Aim's run locks keep them apart on the server."""
    return None if remote is None else ledger_path.with_name(ledger_path.name + ".lock")


@contextlib.contextmanager
def _repo_lock(
    root: Path, wait: float, on_wait: Callable[[str], None] | None, path: Path | None = None
) -> Iterator[None]:
    """One importer per repo at a time: the ledger and Aim's runs are only safe with one writer."""
    if path is None:
        root.mkdir(parents=True, exist_ok=True)
        path = root / LOCK_FILENAME
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if wait <= 0:
            raise RepoLocked(str(path), 0) from None
        if on_wait is not None:
            on_wait(f"another aim-etl is importing into {root}; waiting up to {wait:g}s for it to finish")
        try:
            lock.acquire(timeout=wait)
        except filelock.Timeout:
            raise RepoLocked(str(path), wait) from None
    try:
        yield
    finally:
        lock.release()


class _Job:
    def __init__(
        self,
        report: SyncReport,
        rules: FieldRules,
        chunk_size: int,
        progress,
        started: float,
        incremental: bool,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ):
        self.report = report
        self.normalizer = Normalizer(rules)
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.progress = progress
        self.started = started
        self.incremental = incremental
        self.planner: Planner | None = None
        self.ledger: Ledger | None = None
        self.repo_root: Path | None = None  # None: a dry run, nothing is written
        self.remote: RemoteTarget | None = None  # an aim:// server: written through RemoteWriter
        self._writer = None
        self._new_repo: Future | None = None  # a repo being created while the first chunk is read
        self.writer_kind = "auto"  # `WRITERS`
        self.workers: int | None = None
        self.records = 0
        self.live_runs = 0
        self.live_points = 0
        self.mapping: Mapping | None = None
        # how files are read (`reading_fingerprint`): a cursor saved under other options is not used
        self.reading = ""
        self.governance: RuleSet | None = None
        self.strict = False
        # Progress in source bytes: files finished, and the place reached in the current one.
        self.bytes_total = 0
        self.bytes_finished = 0
        self.bytes_read_finished = 0
        self.position = 0
        self.read_from = 0
        self.span: tuple[int, int, int] | None = None  # the chunk being written: from, to, runs written
        self._pending: _InFlight | None = None  # the chunk the writer's threads are writing

    def import_file(self, source: SourceFile, keyed: str) -> None:
        self.position = self.read_from = 0
        try:
            self._import_file(source, keyed)
        finally:
            size = _size(source.path)
            self.bytes_finished += size
            self.bytes_read_finished += max(size - self.read_from, 0)
            self.position = self.read_from = 0
            self._tick()

    def _import_file(self, source: SourceFile, keyed: str) -> None:
        stats = self.report.file(source.source, source.format)
        cursor = self.ledger.cursor(source.source) if self.ledger is not None else None
        try:
            stat = source.path.stat()
            start = _resume_from(source, cursor, stat, self.reading) if self.incremental else None
        except OSError as exc:
            self.report.add_invalid(source.source, "file", f"cannot read: {exc.strerror or exc}")
            return
        if start is not None and start.byte_offset == stat.st_size:
            stats.mode = "unchanged"
            self.read_from = stat.st_size
            if (stat.st_size, stat.st_mtime_ns) != (cursor.size, cursor.mtime_ns):
                self._save_cursor(source, start.byte_offset, start.line, stat)
            return
        if start is not None:
            stats.mode = "appended"
            self.normalizer.seed(source.source, self.planner.snapshot.known_ids(source.source))
        else:
            stats.mode = "read" if cursor is None else "re-read"
        offset, line = (start.byte_offset, start.line) if start is not None else (0, 0)
        self.position = self.read_from = offset
        consumed = self._read(source, keyed, offset, line)
        self._settle()  # the cursor only moves past runs that are written
        if consumed is not None:
            self._save_cursor(source, *consumed, stat)
        if stats.records == 0 and start is None:
            self.report.add_skipped_file(source.source, "no records in file")

    def _read(self, source: SourceFile, keyed: str, offset: int, line: int) -> tuple[int, int] | None:
        """Read from `offset`; return where a cursor may move to (end of the last complete line),
        or None when the file could not be read to its end."""
        chunk: list[Record] = []
        end = (offset, line)
        chunk_from = offset
        stopped: list[BaseException] = []
        try:
            items = _guarded(
                lambda: read_file(source, keyed=keyed, start_offset=offset, start_line=line, mapping=self.mapping),
                source,
                stopped,
            )
            for item in items:
                if isinstance(item, BadRecord):
                    if item.torn and self.incremental:
                        self.report.add_pending(item.source, item.locator, "torn last line, left for the next sync")
                        continue
                    self.records += 1
                    self.report.add_invalid(item.source, item.locator, item.reason)
                else:
                    self.records += 1
                    chunk.append(item)
                    big = item.end_offset is not None and item.end_offset - chunk_from >= self.chunk_bytes
                    if big or len(chunk) >= self.chunk_size:
                        self._process(chunk, source.path, end[0])
                        chunk = []
                        chunk_from = item.end_offset if item.end_offset is not None else chunk_from
                if item.end_offset is not None:
                    end = (item.end_offset, _line_of(item.locator))
        except OSError as exc:  # unreadable file: say so, keep what was read, go on with the others
            self.report.add_invalid(source.source, "file", f"cannot read: {exc.strerror or exc}")
            return None
        if chunk:
            self._process(chunk, source.path, end[0])
        if stopped:
            return None  # not read to its end: no cursor, so the next sync tries the file again
        if source.format != JSONL:
            return source.path.stat().st_size, 0
        return end

    def _create_repo_early(self) -> None:
        """Import Aim and create a missing local repo on a thread while the first chunk is normalized.

        Both are fixed costs of every first import (~1.5 s of importing Aim, ~0.4 s of creating the
        repo), and the first chunk's reading needs neither. An existing repo opens in milliseconds
        and is left to `writer`, so a sync with nothing to write still never imports Aim.
        """
        if self._writer is not None or self._new_repo is not None or self.repo_root is None or self.remote is not None:
            return
        if (self.repo_root / ".aim").is_dir():
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="aim-etl-init")
        self._new_repo = pool.submit(_open_new_repo, self.repo_root)
        pool.shutdown(wait=False)

    @property
    def writer(self):
        """Opened on first use: a sync with nothing to write never imports Aim or opens the repo."""
        if self._writer is None and self.remote is not None:
            from etl.writers.remote import RemoteWriter

            self._writer = RemoteWriter(self.remote, on_note=self.report.add_note)
        if self._writer is None:
            # Before anything here imports Aim: the thread importing it must be done first.
            repo = self._new_repo.result() if self._new_repo is not None else None
            kind, why = choose_writer(self.writer_kind)
            if why:
                self.report.warnings.append(why)
            self.report.writer = kind
            if kind == "bulk":
                from etl.writers.bulk import BulkWriter

                self._writer = BulkWriter(self.repo_root, workers=self.workers, repo=repo)
            else:
                from etl.writers.sdk import SdkWriter

                self._writer = SdkWriter(self.repo_root, repo=repo)
        return self._writer

    def close(self) -> None:
        try:
            self._settle()
        finally:
            if self._writer is not None and hasattr(self._writer, "close"):
                self._writer.close()

    def _save_cursor(self, source: SourceFile, offset: int, line: int, stat: os.stat_result) -> None:
        if self.repo_root is None:  # dry run
            return
        self.ledger.save_cursor(
            Cursor(
                source.source,
                f"{self.reading}:{prefix_hash(source.path, offset)}",
                offset,
                line,
                stat.st_size,
                stat.st_mtime_ns,
            )
        )

    def _process(self, chunk: list[Record], path: Path | None = None, upto: int | None = None) -> None:
        """Read, plan, map and write one chunk; its bytes (to `upto`) count as done as its runs are written."""
        start = self._pending.span[1] if self._pending is not None and self._pending.span else self.position
        self.span = (start, upto if upto is not None and upto > start else start, 0)
        self._create_repo_early()
        frames = self.normalizer.normalize(chunk, path)
        plan = self.planner.plan(frames.runs)
        self.report.add_chunk(frames, plan)
        writing = self.repo_root is not None
        # A plain dry run needs no specs; a checked one judges them as they would be written.
        specs = list(map_runs(frames, plan.to_write(), self.report.batch)) if writing or self.governance else []
        rejected: list = []
        if self.governance is not None:
            specs, rejected = self._check(specs)
        if writing:
            self._write(specs, rejected, {p.run_key: p.action for p in plan.runs if p.write})
        if self._pending is None or self._pending.span is not self.span:
            self._tick()  # this chunk is done; one still being written moves on as `_settle` finishes it

    def _check(self, specs: list) -> tuple[list, list]:
        """Judge each run about to be written; with `strict`, keep the ones failing an error rule out."""
        accepted, rejected = [], []
        for spec in specs:
            validation = evaluate(self.governance, view_of_spec(spec))
            keep_out = self.strict and validation.status == FAIL
            state = REJECTED_RUN if keep_out else DRY_RUN if self.repo_root is None else IMPORTED
            self.report.governance.runs.append(
                CheckedRun(
                    spec.run_hash, spec.experiment, spec.name, state, validation, source=f"{spec.source} {spec.locator}"
                )
            )
            if keep_out:
                rejected.append(spec)
                self.report.add_rejected()
            else:
                accepted.append(replace(spec, validation=validation.to_param(), tags=(*spec.tags, validation.tag)))
        return accepted, rejected

    def _tick(self, spec=None, runs_in_chunk: int = 0) -> None:
        """Progress after every chunk, and after every run written (a chunk of new runs can take a minute).

        A chunk's bytes are done once its runs are written, shared out run by run on the way, so
        the share done and the time left follow the writing, the slow part, not the reading."""
        if spec is not None:
            self.live_runs += 1
            self.live_points += spec.points
            start, end, written = self.span
            self.span = (start, end, written + 1)
            if runs_in_chunk:
                self.position = start + (end - start) * min(written + 1, runs_in_chunk) // runs_in_chunk
        elif self.span is not None:
            self.position = self.span[1]
            self.span = None
        if self.progress is not None:
            self.progress(
                Progress(
                    self.records,
                    self.live_runs,
                    self.live_points,
                    time.monotonic() - self.started,
                    bytes_done=self.bytes_finished + self.position,
                    bytes_total=self.bytes_total,
                    bytes_read=self.bytes_read_finished + max(self.position - self.read_from, 0),
                )
            )

    def _write(self, specs: list, rejected: list, actions: dict[str, str]) -> None:
        """Write a chunk's runs; with a writer that can (`submit`), only start them, so the next chunk
        is read and normalized while this one's containers are written. The previous chunk is
        settled first: one chunk in flight, its ledger entries and report in the order they came."""
        self._settle()
        if rejected:
            # Held in the ledger, not in Aim: the next import that reads the record checks it again.
            self.ledger.record((_entry(s, REJECTED) for s in rejected), self.report.batch)
        if not specs:
            return
        self.ledger.record((_entry(s, WRITING) for s in specs), self.report.batch)
        try:
            writer = self.writer
            if hasattr(writer, "submit"):
                self._pending = _InFlight(writer.submit(specs), len(specs), actions, self.span)
                return
            result = writer.write(specs, on_run=lambda spec: self._tick(spec, len(specs)))
        except Exception as exc:  # noqa: BLE001 - reported with what was committed, then re-raised
            raise StageFailed("write", exc, self.report.runs_written) from exc
        self._record(result, actions)

    def _settle(self) -> None:
        """Wait for the chunk in flight, then record it: `done` in the ledger, counted in the report,
        and its bytes done in the progress. Before a cursor moves past it and before the job ends."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        reading, self.span = self.span, pending.span
        try:
            result = self.writer.finish(pending.submitted, on_run=lambda spec: self._tick(spec, pending.runs))
        except Exception as exc:  # noqa: BLE001 - reported with what was committed, then re-raised
            raise StageFailed("write", exc, self.report.runs_written) from exc
        self._record(result, pending.actions)
        self._tick()
        if reading is not pending.span:  # a later chunk is being read: its own span goes on
            self.span = reading

    def _record(self, result, actions: dict[str, str]) -> None:
        self.ledger.record((_entry(s, DONE) for s in (*result.written, *result.already_present)), self.report.batch)
        for spec, reason in result.failed:
            # Removed from Aim again and left `writing` in the ledger, never `done`: the next import
            # that reads the record tries it again, and reports it again if Aim still refuses it.
            self.report.add_write_failed(spec.source, spec.locator, actions.get(spec.run_key, "new"), reason)
        for spec in result.already_present:
            # In the repo already with this content (the ledger had been lost): nothing written.
            stats = self.report.files[spec.source]
            stats.new -= 1
            stats.unchanged += 1
        self.report.runs_written += len(result.written)
        self.report.points_written += result.points
        self.report.unindexed += len(result.left_unindexed)


@dataclass
class _InFlight:
    """A chunk whose runs the writer's threads are writing while the next chunk is read."""

    submitted: object
    runs: int
    actions: dict[str, str]
    span: tuple[int, int, int] | None


def _open_new_repo(root: Path):
    """On the job's init thread. While it runs, the main thread imports nothing of Aim (`writer`
    waits for this first): two threads importing Aim's Cython modules at once fail with
    "partially initialized module"."""
    from etl.writers import aim_adapter, bulk, sdk  # noqa: F401 - the writers' imports, done here

    return aim_adapter.open_repo(root)


def _guarded(
    read: Callable[[], Iterator[Record | BadRecord]], source: SourceFile, stopped: list[BaseException]
) -> Iterator[Record | BadRecord]:
    """A reader's records; should the reader itself fail (a shape it did not foresee), the file is
    reported invalid from there and the import goes on with the other files. Only the reader's own
    steps are guarded: a failure to write is not a file's problem and still stops the import."""
    try:
        iterator = iter(read())
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            yield item
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported with its file; the other files go on
        stopped.append(exc)
        yield BadRecord(source.source, "file", f"the {source.format} reader stopped: {type(exc).__name__}: {exc}")


def _resume_from(source: SourceFile, cursor: Cursor | None, stat: os.stat_result, reading: str) -> Cursor | None:
    """Where an incremental read starts, or None for a full read.

    A cursor saved under other reading options (a mapping, field options, `--no-contexts`) is no
    cursor: the file's records may read differently now, so it is read in full (its unchanged runs
    are recognized by content hash). Same size and mtime as last time: nothing to read. Otherwise
    the bytes the cursor covers must hash the same (an append); anything else (rewritten,
    truncated, rotated) is read in full.
    """
    if cursor is None or not cursor.prefix_hash.startswith(f"{reading}:"):
        return None
    if stat.st_size == cursor.size and stat.st_mtime_ns == cursor.mtime_ns:
        return replace(cursor, byte_offset=stat.st_size) if source.format != JSONL else cursor
    saved = cursor.prefix_hash.removeprefix(f"{reading}:")
    if source.format != JSONL:
        unchanged = stat.st_size == cursor.byte_offset and prefix_hash(source.path, stat.st_size) == saved
        return cursor if unchanged else None
    if stat.st_size >= cursor.byte_offset and prefix_hash(source.path, cursor.byte_offset) == saved:
        return cursor
    return None


def reading_fingerprint(rules: FieldRules, format: str, keyed: str, mapping: Mapping | None) -> str:
    """A short hash of every option that changes how a file's records read; kept with its cursor."""
    import json

    options = [rules.fingerprint(), list(rules.field_roles), format, keyed]
    if mapping is not None:
        options.append({k: v for k, v in mapping.__dict__.items() if k != "source"})
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def prefix_hash(path: Path, length: int) -> str:
    """Hash of a file's first `length` bytes (read in 1 MiB blocks)."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        remaining = length
        while remaining > 0:
            block = fh.read(min(remaining, 1 << 20))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def _size(path: Path) -> int:
    """A source's size in bytes; a folder read as one source (a trainer's output) counts as 0."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


def _line_of(locator: str) -> int:
    return int(locator.removeprefix("line ")) if locator.startswith("line ") else 0


def _entry(spec, state: str) -> LedgerEntry:
    return LedgerEntry(
        spec.run_key,
        spec.content_hash,
        spec.run_hash,
        spec.source,
        spec.locator,
        state,
        spec.record_id,
        spec.occurrence,
    )


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "Progress",
    "RollbackReport",
    "ledger_batches",
    "migrate",
    "read",
    "rebuild_ledger",
    "rollback",
    "sync",
    "watch",
    "validate",
]


@dataclass
class RollbackReport:
    batch: str
    dry_run: bool
    deleted: list[LedgerEntry]
    # Runs the batch rewrote in place: their earlier content is gone, so rollback cannot restore it.
    updated: list[LedgerEntry]

    def to_text(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        out = [f"rollback {self.batch}: {verb} {len(self.deleted)} runs the batch created"]
        out += [f"  {e.run_hash}  {e.source} {e.locator}" for e in self.deleted]
        if self.updated:
            out.append(f"{len(self.updated)} runs it updated in place cannot be restored (their old content is gone):")
            out += [f"  {e.run_hash}  {e.source} {e.locator}" for e in self.updated]
        return "\n".join(out)


def rollback(
    batch: str,
    repo: str | Path = ".",
    *,
    ledger: str | Path | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
) -> RollbackReport:
    """Delete the runs a batch created, and forget them (and their files' cursors) in the ledger."""
    if RemoteTarget.parse(repo) is not None:
        # Deleting a run over the wire works, but the server may keep the deleted run's RocksDB
        # handles, and a later import of the same run (same hash) was seen to write a broken run.
        raise EtlError(
            f"{repo}: rollback is not done over aim://; stop the server, then run rollback on its machine "
            "with --repo <the server's repo folder> --ledger <this machine's ledger for the server>"
        )
    root = repo_root(repo)
    book = _open_ledger(root, ledger, read_only=dry_run)
    with contextlib.ExitStack() as stack:
        stack.callback(book.close)
        if not book.has_batch(batch):
            raise EtlError(f"no batch {batch!r} in {book.path} (see `aim-etl ledger show`)")
        report = RollbackReport(batch, dry_run, book.created_by(batch), book.updated_by(batch))
        if dry_run or not report.deleted:
            return report
        stack.enter_context(_repo_lock(root, lock_wait, on_wait))
        from etl.writers import aim_adapter

        store = aim_adapter.open_repo(root)
        for entry in report.deleted:
            if aim_adapter.run_exists(store, entry.run_hash):
                aim_adapter.delete_run(store, entry.run_hash)
        book.forget([e.run_key for e in report.deleted], [e.source for e in report.deleted])
        book.mark_rolled_back(batch)
    return report


def rebuild_ledger(repo: str | Path = ".", *, ledger: str | Path | None = None) -> int:
    """Rebuild a lost or damaged ledger from the `etl` param every imported run carries.

    An existing ledger is kept beside the new one as `.bak`. Cursors are not rebuilt: the next sync
    reads each file in full once, and finds its runs unchanged by content hash.
    """
    from etl.writers import aim_adapter

    remote = RemoteTarget.parse(repo)
    if remote is not None:  # aim://: read from the server's runs, written to this machine's ledger for it
        from etl.writers.remote import iter_provenance

        remote.check()
        root, path = Path.cwd(), Path(ledger) if ledger else remote.default_ledger()
        runs = iter_provenance(remote)
    else:
        root = repo_root(repo)
        path = Path(ledger) if ledger else default_ledger_path(root)
        if not aim_adapter.repo_exists(root):
            raise EtlError(f"{root}: no Aim repo here")
        runs = aim_adapter.iter_provenance(aim_adapter.open_repo(root))
    with _repo_lock(root, 0, None, _lock_path(remote, path)):
        if path.exists():
            path.replace(path.with_name(path.name + ".bak"))
        by_batch: dict[str, list[LedgerEntry]] = {}
        for run_hash, p in runs:
            entry = LedgerEntry(
                p["run_key"],
                p["content_hash"],
                run_hash,
                p["source"],
                p["locator"],
                DONE,
                p.get("record_id"),
                p.get("occurrence", 1),
            )
            by_batch.setdefault(p.get("batch", "unknown"), []).append(entry)
        book = Ledger(path)
        try:
            for batch, entries in sorted(by_batch.items()):
                book.begin_batch(batch, "(rebuilt from the repo)", sorted({e.source for e in entries}))
                book.record(entries, batch)
                book.finish_batch(batch, {"runs": len(entries)})
        finally:
            book.close()
    return sum(len(v) for v in by_batch.values())


def ledger_batches(repo: str | Path = ".", *, ledger: str | Path | None = None) -> list[dict[str, object]]:
    remote = RemoteTarget.parse(repo)
    if remote is not None and ledger is None:
        ledger = remote.default_ledger()
    book = _open_ledger(repo_root(repo) if remote is None else Path(str(remote)), ledger, read_only=True)
    try:
        return book.batches()
    finally:
        book.close()


def validate(
    repo: str | Path,
    rules: RuleSet,
    *,
    query: str | None = None,
    dry_run: bool = False,
    lock_wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    on_run: Callable[[CheckedRun], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> GovernanceReport:
    """Check the runs of any Aim repo (imported or logged live) and write each one's validation.

    A run that already carries this exact validation is left alone, so a second pass with the same
    rules writes nothing. A run another process holds open is reported active and skipped. A pass
    that writes appends one step to the rules version's compliance run. With `dry_run` no run is
    touched; the index is still brought up to date (as `aim up` does), or unindexed runs would be
    invisible to the check.
    """
    from etl.governance.model import Validation
    from etl.writers.governance import GovernanceRepo, StoredRun
    from etl.writers.verdicts import VerdictsWritten

    remote = RemoteTarget.parse(repo)
    if remote is not None:  # aim://: same checks over the wire; the lock is the one beside this machine's ledger
        from etl.writers.remote_governance import RemoteGovernanceRepo

        remote.check()
        root, lock_path = Path.cwd(), _lock_path(remote, remote.default_ledger())
    else:
        root, lock_path = repo_root(repo), None
        if not (root / ".aim").is_dir():  # before the lock, which would create the folder
            raise EtlError(f"{root}: no Aim repo here (no .aim folder)")
    report = GovernanceReport(rules.version, rules.source, rules.info(), [], dry_run=dry_run)
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(_repo_lock(root, lock_wait, on_wait, lock_path))
        target = GovernanceRepo(root) if remote is None else RemoteGovernanceRepo(remote)
        if on_total is not None and not query:
            # Only without a query is the number of runs to check known before checking them.
            on_total(target.count())
        written: list[str] = []
        # Submitted for writing, in order; settled a batch at a time while later runs are read.
        submitted: deque[tuple[StoredRun, Validation]] = deque()

        def settle(outcome: VerdictsWritten) -> None:
            written.extend(outcome.written)
            if not outcome.indexed:
                report.left_to_indexer += len(outcome.written)
            for _ in range(len(outcome.written) + len(outcome.held)):
                stored, validation = submitted.popleft()
                reason = outcome.held.get(stored.view.key)
                if reason is None:
                    checked(stored, "written", validation)
                else:
                    checked(stored, "active", None, reason)

        def checked(stored: StoredRun, state: str, validation: Validation | None, reason: str | None = None) -> None:
            view = stored.view
            run = CheckedRun(view.key, view.experiment, view.name, state, validation, reason=reason)
            report.runs.append(run)
            if on_run is not None:
                on_run(run)

        writer = stack.enter_context(
            target.verdict_writer(VERDICT_BATCH) if remote is None else _VerdictBatches(target, VERDICT_BATCH)
        )
        for stored in target.runs(query):
            validation = evaluate(rules, stored.view)
            if stored.carries(validation):
                checked(stored, "unchanged", validation)
            elif dry_run:
                checked(stored, "dry-run", validation)
            else:
                submitted.append((stored, validation))
                for outcome in writer.submit(stored.view.key, validation):
                    settle(outcome)
        for outcome in writer.close():
            settle(outcome)
        if written:
            report.compliance_run = target.track_compliance(
                rules.version,
                {
                    "compliance_rate": report.compliance_rate or 0.0,
                    "mean_score": report.mean_score or 0.0,
                    "runs_checked": float(len(report.checked)),
                },
                {rule: rate for rule, rate in report.rule_pass_rates().items() if rate is not None},
            )
    return report


class _VerdictBatches:
    """`verdict_writer` for a target that writes verdicts only a whole batch at a time (`write_many`)."""

    def __init__(self, target, batch: int) -> None:
        self._target, self._batch = target, batch
        self._pending: list = []

    def submit(self, run_hash: str, validation) -> list:
        self._pending.append((run_hash, validation))
        return self.close() if len(self._pending) >= self._batch else []

    def close(self) -> list:
        if not self._pending:
            return []
        outcome = self._target.write_many(self._pending)
        self._pending = []
        return [outcome]

    def __enter__(self) -> _VerdictBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _open_ledger(root: Path, ledger: str | Path | None, *, read_only: bool) -> Ledger:
    path = Path(ledger) if ledger else default_ledger_path(root)
    if not path.exists():
        raise EtlError(f"{path}: no ledger (nothing was imported into {root} yet, or pass --ledger)")
    return Ledger(path, read_only=read_only)
