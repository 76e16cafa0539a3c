"""Write `RunSpec`s straight into a local Aim repo's storage, whole runs at a time.

The SDK path spends ~27 ms a run in `Run()`, SQL and params, 0.1 ms a point encoding four keys one
by one, and ~10 ms a run indexing one key at a time. This writer produces the same bytes
(`etl.writers.aim_storage`, compared with the SDK by `tests/test_bulk_writer.py`) in far fewer
operations: per chunk of runs one structured-DB transaction; per run one sorted write batch into
its seqs container, then one into its meta container; per chunk one batch into the index.

The order keeps every guarantee of the SDK path: the SQL row comes first (an indexed run without
one breaks `Run(h).name`); the meta batch, written last and atomically, holds the provenance with
`complete=True` and the end time, so "complete" still means "written to the end", and a run a
kill -9 cut short is found incomplete and rewritten whole. WriteResult semantics are the SDK
writer's: a run Aim's encoder refuses is not written (an earlier version of it is removed, as the
SDK path removes it) and comes back in `failed`; an OSError stops the import.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aim import Repo

from etl.mapper import RunSpec
from etl.writers import aim_adapter, aim_storage
from etl.writers.result import WriteResult

# Threads, not processes: aimrocks releases the GIL while it opens, writes and flushes a RocksDB,
# which is most of a small run's time (tests/benchmarks/bench_writers.py measures it).
DEFAULT_MAX_WORKERS = 4
# How long to wait for an index another process holds before leaving the runs to its indexer.
INDEX_WAIT_SECONDS = 2.0


@dataclass
class Submitted:
    """A chunk on its way: what was settled before writing, and each run's write in a worker."""

    result: WriteResult = field(default_factory=WriteResult)
    # earlier versions of runs that failed now: out of SQL and the index too
    removed: list[str] = field(default_factory=list)
    runs: list[tuple[RunSpec, aim_storage.Items, Future]] = field(default_factory=list)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, DEFAULT_MAX_WORKERS))


class BulkWriter:
    """One writer for a whole import into a local repo; runs are indexed as each chunk ends."""

    def __init__(self, repo_path: str | Path, workers: int | None = None, repo: Repo | None = None) -> None:
        """`repo`: the repo at `repo_path` already opened (the pipeline creates a new one early)."""
        aim_adapter.check_aim_version()
        # creates the repo and its structured DB when missing
        self.repo = repo if repo is not None else aim_adapter.open_repo(repo_path)
        self.root = Path(self.repo.path)
        self.workers = workers if workers and workers > 0 else default_workers()
        aim_storage.allow_parallel_flushes(self.workers)
        # One worker is still a thread: the runs of a chunk are written while the next one is read.
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="aim-etl-bulk")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)

    def write(self, specs: Iterable[RunSpec], on_run: Callable[[RunSpec], None] | None = None) -> WriteResult:
        return self.finish(self.submit(specs), on_run)

    def submit(self, specs: Iterable[RunSpec]) -> Submitted:
        """Start writing a chunk: its rows are committed here, its containers are written by the
        worker threads while the caller goes on (reading the next chunk); `finish` waits for them.

        The importer finishes a chunk before it submits the next: two chunks in the writer (and a
        third being read) held a log of 80,000-point lines at 425 MB against 334 MB (one-off, under
        `/usr/bin/time`), for no gain this machine could measure. Two chunks would never share a
        run: a run key is written once per import.
        """
        submitted = Submitted()
        todo: list[tuple[RunSpec, aim_storage.Items]] = []
        for spec in specs:
            provenance, ended = aim_storage.read_run_state(self._chunk("meta", spec.run_hash), spec.run_hash)
            complete = bool(provenance) and provenance.get("complete") and ended
            if complete and provenance.get("content_hash") == spec.content_hash:
                submitted.result.already_present.append(spec)
                continue
            existed = self._remove_local(spec.run_hash)
            try:
                meta = aim_storage.meta_items(spec.run_hash, _params(spec), spec.series, _end_time(spec))
            except Exception as exc:  # noqa: BLE001 - whatever Aim's encoder raises for one run's values
                if existed:
                    submitted.removed.append(spec.run_hash)
                submitted.result.failed.append((spec, f"Aim refused the run: {type(exc).__name__}: {exc}"))
                continue
            todo.append((spec, meta))
        # Rows first: a run found in the index without its row breaks Aim's reads of it.
        _write_rows(self.repo.structured_db.engine, [spec for spec, _ in todo], submitted.removed)
        submitted.runs = [(spec, meta, self._pool.submit(self._write_run, spec, meta)) for spec, meta in todo]
        return submitted

    def finish(self, submitted: Submitted, on_run: Callable[[RunSpec], None] | None = None) -> WriteResult:
        """Wait for a submitted chunk's runs, then index them (or leave them to another indexer)."""
        result, removed = submitted.result, submitted.removed
        indexed: list[tuple[str, aim_storage.Items]] = []
        for spec, meta, future in submitted.runs:
            refused = future.result()
            if refused is not None:
                self._remove_local(spec.run_hash)
                _write_rows(self.repo.structured_db.engine, [], [spec.run_hash])
                removed.append(spec.run_hash)
                result.failed.append((spec, refused))
                continue
            result.written.append(spec)
            result.points += spec.points
            indexed.append((spec.run_hash, meta))
            if on_run is not None:
                on_run(spec)
        for spec in result.already_present:
            # Perhaps never indexed: the process that wrote it was killed first.
            indexed.append((spec.run_hash, aim_storage.read_items(self._chunk("meta", spec.run_hash))))
        result.left_unindexed = self._index(indexed, removed)
        return result

    def _write_run(self, spec: RunSpec, meta: aim_storage.Items) -> str | None:
        """Seqs, then meta (the "complete" marker): None when written, else why Aim's encoder refused it."""
        now = dt.datetime.now(dt.UTC).timestamp()
        try:
            seqs = aim_storage.seqs_batch(spec.run_hash, spec.series, now)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a value the encoder refuses: this run only
            return f"Aim refused the run: {type(exc).__name__}: {exc}"
        aim_storage.create_container(self._chunk("seqs", spec.run_hash), seqs)
        del seqs
        aim_storage.create_container(self._chunk("meta", spec.run_hash), meta)
        return None

    def _index(self, entries: list[tuple[str, aim_storage.Items]], removed: list[str]) -> list[str]:
        """Index the chunk's runs in one batch; if another process holds the index, leave them to it."""
        if not entries and not removed:
            return []
        import aimrocks.errors

        deadline = time.monotonic() + INDEX_WAIT_SECONDS
        while True:
            try:
                index = aim_storage.open_index(self.root)
                break
            except aimrocks.errors.RocksIOError:
                # An `aim up` (or another indexer) holds it: it watches `meta/chunks` and indexes
                # new runs itself; fighting it for the lock would only slow both down.
                if time.monotonic() >= deadline:
                    return [run_hash for run_hash, _ in entries]
                time.sleep(0.2)
        try:
            chunks = self.root / "meta" / "chunks"
            batch = aim_storage.index_batch([(h, items, aim_storage.index_checksum(chunks, h)) for h, items in entries])
            if removed:
                index.db.write(aim_storage.shadow_batch(removed))
            index.db.write(batch)
        finally:
            index.close()
        return []

    def _chunk(self, container: str, run_hash: str) -> Path:
        return self.root / container / "chunks" / run_hash

    def _remove_local(self, run_hash: str) -> bool:
        """Remove a run's containers and locks, as `repo.delete_run` does; True if there was anything."""
        existed = False
        for container in ("meta", "seqs"):
            for sub in ("chunks", "progress", "locks"):
                target = self.root / container / sub / run_hash
                if target.is_dir():
                    existed = True
                    shutil.rmtree(target)
                elif target.exists():
                    existed = True
                    target.unlink()
        (self.root / "locks" / f"{run_hash}.softlock").unlink(missing_ok=True)
        return existed


def _params(spec: RunSpec) -> list[tuple[str, object]]:
    """The run's top-level params in the order the SDK writer sets them; provenance last."""
    params: list[tuple[str, object]] = [("hparams", spec.hparams)]
    if spec.meta:
        params.append(("meta", spec.meta))
    if spec.validation is not None:
        params.append(("validation", spec.validation))
    params.append(("etl", {**spec.provenance, "complete": True}))
    return params


def _end_time(spec: RunSpec) -> float:
    """The run's end; without a finite one, "now", which is what `close()` stamps on the SDK path."""
    if spec.end_time is not None and math.isfinite(spec.end_time):
        return spec.end_time
    return dt.datetime.now(dt.UTC).timestamp()


def _write_rows(engine, specs: list[RunSpec], replaced: list[str]) -> None:
    """The chunk's `run` rows (name, experiment, creation time, tags) in one transaction of our own.

    Not through `structured_db.get_session()`, a session shared with every SDK object of the thread.
    Rows of the same hashes are removed first: an earlier version of the run, or a row a killed
    import committed before it wrote the run's containers.
    """
    from aim.storage.structured.sql_engine.models import Experiment, Tag
    from aim.storage.structured.sql_engine.models import Run as RunRow
    from sqlalchemy.orm import Session

    hashes = [spec.run_hash for spec in specs] + list(replaced)
    if not hashes:
        return
    with Session(bind=engine) as session, session.begin():
        for row in session.query(RunRow).filter(RunRow.hash.in_(hashes)):
            session.delete(row)
        session.flush()
        experiments: dict[str, Experiment] = {}
        tags: dict[str, Tag] = {}
        for spec in specs:
            row = RunRow(spec.run_hash, aim_storage.naive_utc(spec.created_at) if spec.created_at else None)
            session.add(row)
            if spec.name:
                row.name = spec.name
            # Aim puts every new run in 'default' (`structured_db.create_run`) before `Run()` sets
            # the experiment it was given, if any: an empty name leaves it in 'default'.
            row.experiment = _find_or_add(session, Experiment, spec.experiment or "default", experiments)
            for tag in dict.fromkeys(spec.tags):  # `add_tag` skips a tag the run has already
                row.tags.append(_find_or_add(session, Tag, tag, tags))


def _find_or_add(session, model, name: str, cache: dict):
    found = cache.get(name)
    if found is None:
        found = session.query(model).filter(model.name == name).first()
        if found is None:
            found = model(name)
            session.add(found)
        cache[name] = found
    return found
