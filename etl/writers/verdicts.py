"""Write validation verdicts straight into Aim's storage, a batch of runs at a time.

Through the SDK a verdict costs a run opened for writing (its SQL row, both its containers, a
tracker), two commits, a tag commit, a close and a re-index one key at a time: about 0.1 s a run.
A verdict touches only three places, so it is written there and nowhere else:

- the `validation` param, in the run's own meta container, under `meta/attrs` and under
  `meta/chunks/<hash>/attrs`, replaced exactly as `run["validation"] = ...` replaces it (a range
  delete, then the encoded tree) but as one atomic write batch for both copies;
- the status tag, in the structured DB, for the whole batch in one transaction;
- the index, for the whole batch in one write batch holding the same bytes `RepoIndexManager.index`
  writes one by one.

Nothing else of the run changes: its end time and every series stay as they were. A run another
process holds (its soft lock, or RocksDB's own lock on its meta container) is left untouched and
reported held, never forced. Checked on the Aim versions in `aim_adapter.TESTED_AIM_VERSIONS`;
`tests/test_validate.py` compares the result with the SDK's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aimrocks
from aim import Repo
from aim.storage import encoding, treeutils

from etl.governance.model import TAG_PREFIX
from etl.writers import aim_index, aim_storage

VALIDATION_PARAM = "validation"
# Threads writing runs at once: each spends most of a write waiting on fsyncs, GIL released.
WORKERS = 8


@dataclass(frozen=True)
class Verdict:
    run_hash: str
    param: dict[str, Any]
    tag: str


@dataclass
class VerdictsWritten:
    written: list[str]
    held: dict[str, str]  # run hash -> why it was left alone
    # False when the index was held by another process (`aim up`): its indexer picks the runs up.
    indexed: bool = True


def write_verdicts(repo: Repo, verdicts: Sequence[Verdict], *, workers: int = WORKERS) -> VerdictsWritten:
    """Write each verdict's param and tag, then index the runs written, in one batch."""
    writer = VerdictWriter(repo, workers=workers, batch=max(1, len(verdicts)))
    with writer:
        outcomes = [outcome for verdict in verdicts for outcome in writer.submit(verdict)]
        outcomes += writer.close()
    return outcomes[0] if outcomes else VerdictsWritten([], {})


class VerdictWriter:
    """Writes verdicts as they are submitted, `workers` runs at once, and settles them a batch at a time.

    Opening a run's RocksDB for writing is most of a verdict's cost (~11 fsyncs: a new MANIFEST,
    OPTIONS, CURRENT and WAL, then a flushed table on close) and releases the GIL, so threads open
    and write runs side by side while the caller goes on reading and judging the next runs. A
    batch is settled (its tags in one SQL transaction, its runs indexed in one write) only when
    the next batch is full, so the threads never wait for that.

    The caller is kept at most `2 * workers` runs ahead of the writes. A caller running ahead holds
    the GIL for long stretches of pure Python, and every write thread coming back from RocksDB
    then waits for it (up to the interpreter's 5 ms switch interval, a dozen times a run): with
    the caller free to read 500 runs ahead, 8 threads wrote no faster than 1.
    """

    def __init__(self, repo: Repo, *, workers: int = WORKERS, batch: int = 500) -> None:
        self._repo = repo
        self._batch = batch
        workers = max(1, workers)
        # Each write ends in a flush (a table file, its fsyncs); in RocksDB's one shared flush thread
        # the writes queued behind each other: ~6% more runs a second with one per worker.
        aim_storage.allow_parallel_flushes(workers)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verdicts")
        self._ahead = threading.BoundedSemaphore(2 * workers)
        self._filling: list[tuple[Verdict, Future]] = []
        self._written: list[tuple[Verdict, Future]] = []  # the previous batch, its writes under way

    def submit(self, verdict: Verdict) -> list[VerdictsWritten]:
        """Start writing `verdict`; return the batch settled meanwhile, if one was."""
        self._ahead.acquire()  # released, and the GIL with it, while the writes catch up
        future = self._pool.submit(_write_param, self._repo, verdict)
        future.add_done_callback(lambda _: self._ahead.release())
        self._filling.append((verdict, future))
        if len(self._filling) < self._batch:
            return []
        settled = [self._settle(self._written)] if self._written else []
        self._written, self._filling = self._filling, []
        return settled

    def close(self) -> list[VerdictsWritten]:
        """Settle what is still in flight, in the order it was submitted."""
        settled = [self._settle(batch) for batch in (self._written, self._filling) if batch]
        self._written, self._filling = [], []
        self._pool.shutdown()
        return settled

    def __enter__(self) -> VerdictWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # After an error, writes already started finish (a run is never left half-written); the
        # rest are dropped. Unsettled runs lack their tag and index entry: the next pass sees
        # their verdict differ from the tag and writes them again.
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _settle(self, batch: list[tuple[Verdict, Future]]) -> VerdictsWritten:
        written: dict[str, tuple[list[tuple[bytes, bytes]], str]] = {}
        held: dict[str, str] = {}
        for verdict, future in batch:
            outcome = future.result()
            if isinstance(outcome, str):
                held[verdict.run_hash] = outcome
            else:
                written[verdict.run_hash] = outcome
        _write_tags(self._repo, [v for v, _ in batch if v.run_hash in written])
        entries = [(run_hash, items, checksum) for run_hash, (items, checksum) in written.items()]
        indexed = aim_index.index_entries(self._repo, entries) if entries else True
        return VerdictsWritten(list(written), held, indexed)


def _write_param(repo: Repo, verdict: Verdict) -> tuple[list[tuple[bytes, bytes]], str] | str:
    """The run's meta container after the write (what the index copies) and the checksum of its
    files once closed (by which the index knows it current), or why it was not written."""
    run_hash = verdict.run_hash
    chunks = Path(repo.path) / "meta" / "chunks"
    with _run_lock(repo, run_hash) as refused:
        if refused:
            return refused
        try:
            items = aim_storage.annotate_container(chunks / run_hash, _param_batch(verdict))
        except aim_storage.ContainerUnavailable as error:  # most often RocksDB's lock: a process is writing the run
            return str(error)
        return items, aim_storage.index_checksum(chunks, run_hash)


def _param_batch(verdict: Verdict) -> aimrocks.WriteBatch:
    """`run["validation"] = param`, both copies: each replaced by a range delete, then the encoded tree."""
    batch = aimrocks.WriteBatch()
    leaves = list(treeutils.encode_tree(verdict.param))
    for prefix in (
        ("meta", "attrs", VALIDATION_PARAM),
        ("meta", "chunks", verdict.run_hash, "attrs", VALIDATION_PARAM),
    ):
        path = encoding.encode_path(prefix)
        batch.delete_range(path, path + b"\xff")
        for key, value in leaves:
            batch.put(path + key, value)
    return batch


@contextlib.contextmanager
def _run_lock(repo: Repo, run_hash: str) -> Iterator[str | None]:
    """Hold the run's soft lock, as an SDK writer would; yield why not when another process has it.

    Taken even for a run no process holds, though creating and deleting the lock file costs ~1 ms
    of CPU a run: without it, an SDK writer resuming the run during our write would find only
    RocksDB's lock and fail to open the run (a training job stopped by a validate), where the
    lock file makes it wait for us."""
    lock = repo.request_run_lock(run_hash, timeout=0)
    try:
        lock.lock()
    except Exception as error:  # noqa: BLE001 - RunLockingError or the lock file's Timeout: the run is live
        yield f"held open by another process ({type(error).__name__})"
        return
    try:
        yield None
    finally:
        lock.release()


def _write_tags(repo: Repo, verdicts: Sequence[Verdict]) -> None:
    """Each run keeps exactly one status tag, the verdict's; one transaction for the batch.

    The rows of Aim's `run_tag` table are changed directly, as the SDK's `add_tag`/`remove_tag`
    change them (the `run` row itself is not touched): through the ORM, loading each run with its
    tags cost ~0.4 ms a run, as much as the rest of judging it. A session of our own on Aim's
    engine: `DB.get_session()` is shared with every SDK object of the thread, and a commit here
    would commit their half-done changes too."""
    if not verdicts:
        return
    from aim.storage.structured.sql_engine.models import Run as RunRow
    from aim.storage.structured.sql_engine.models import Tag, run_tags
    from sqlalchemy import bindparam, delete, insert, select
    from sqlalchemy.orm import Session

    with Session(repo.structured_db.engine) as session, session.begin():
        is_status = Tag.name.startswith(TAG_PREFIX, autoescape=True)
        status = dict(session.execute(select(Tag.name, Tag.id).where(is_status)).all())
        missing = [Tag(name) for name in {v.tag for v in verdicts} - status.keys()]
        if missing:
            session.add_all(missing)
            session.flush()
            status.update((tag.name, tag.id) for tag in missing)
        for part in range(0, len(verdicts), 500):  # SQLite caps the parameters of one statement
            chunk = verdicts[part : part + 500]
            run_ids = dict(
                session.execute(
                    select(RunRow.hash, RunRow.id).where(RunRow.hash.in_([v.run_hash for v in chunk]))
                ).all()
            )
            linked = select(run_tags.c.run_id, run_tags.c.tag_id).where(
                run_tags.c.run_id.in_(run_ids.values()), run_tags.c.tag_id.in_(status.values())
            )
            links = {(run_id, tag_id) for run_id, tag_id in session.execute(linked)}
            wanted = {(run_ids[v.run_hash], status[v.tag]) for v in chunk if v.run_hash in run_ids}
            # A run with no SQL row is left out: Aim itself cannot tag it.
            stale, new = links - wanted, wanted - links
            if stale:
                unlink = delete(run_tags).where(
                    run_tags.c.run_id == bindparam("r"), run_tags.c.tag_id == bindparam("t")
                )
                session.execute(unlink, [{"r": r, "t": t} for r, t in sorted(stale)])
            if new:
                session.execute(insert(run_tags), [{"run_id": r, "tag_id": t} for r, t in sorted(new)])
