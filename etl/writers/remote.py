"""Write `RunSpec`s to an Aim server (`aim://HOST:PORT`) through Aim's own client.

Same promises as the local SDK writer, within what the client allows (see `aim_remote`):
deterministic run hashes, original creation, point and end times, provenance last so a run
marked complete was written to the end. Differences:

- An existing run (an edited record, or one a killed import left half-written) is reset in place
  and written again, never deleted and re-created; its creation date stays the first one.
- A run held open by another writer is waited for (`held_wait`); if the other writer finishes
  it with the same content, the run is reported as written by another importer; if it is still
  held, it is handed back as failed (left `writing` in the ledger, tried again next sync).
- Each run is written inside `aim_remote.guarded`: a server that dies mid-run stops the import
  with `ServerUnavailable`, and that run is not reported written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from etl.errors import ServerUnavailable
from etl.mapper import RunSpec
from etl.remote import RemoteTarget
from etl.writers import aim_adapter, aim_remote
from etl.writers.sdk import WriteResult

# Points per websocket message. Small on purpose: the server unpacks a message in time quadratic in
# its size (`aim.ext.transport.message_utils.unpack_args` re-slices the rest of the message for each
# key), so 2,000 points a message stalled it for minutes; 10 measured ~25% faster than 1, 50 slower.
BATCH_POINTS = 10
HELD_WAIT = 30.0
# Seconds an incomplete run must stay unchanged to count as a leftover rather than being written.
STALL = 2.0
# Runs between collections that free closed runs' server resources. 1: until the client lets go
# of a run, the server keeps the run's write container open, and a read of the run through a
# read-only container (provenance, `ledger rebuild`, another importer, the index) was seen to miss
# its last writes (1 test in 3 read 2 of 3 runs just written).
RELEASE_EVERY = 1

WRITTEN, PRESENT, RACED = "written", "present", "raced"


class RemoteWriter:
    """One client connection to the server for a whole import."""

    def __init__(
        self, target: RemoteTarget, *, held_wait: float = HELD_WAIT, on_note: Callable[[str], None] | None = None
    ) -> None:
        aim_adapter.check_aim_version()
        self.target = target
        self.held_wait = held_wait
        self.on_note = on_note or (lambda _note: None)
        self.repo = aim_remote.open_repo(target)
        self._released = 0

    def write(self, specs: Iterable[RunSpec], on_run: Callable[[RunSpec], None] | None = None) -> WriteResult:
        result = WriteResult()
        for spec in specs:
            outcome = aim_remote.guarded(self.repo, self.target, lambda spec=spec: self._write_one(spec))
            if outcome == PRESENT:
                result.already_present.append(spec)
            elif outcome == RACED:
                result.already_present.append(spec)
                self.on_note(
                    "some runs were found written, with the same content, by another importer of the same "
                    "source while this one waited for them: each was written once"
                )
            elif outcome == WRITTEN:
                result.written.append(spec)
                result.points += spec.points
                if on_run is not None:
                    on_run(spec)
            else:
                result.failed.append((spec, outcome))
        written = [s.run_hash for s in (*result.written, *result.already_present)]
        aim_remote.guarded(self.repo, self.target, lambda: aim_remote.index_runs(self.repo, written))
        return result

    def _complete(self, spec: RunSpec) -> bool:
        provenance = aim_remote.read_provenance(self.repo, spec.run_hash)
        return bool(provenance) and provenance["complete"] and provenance.get("content_hash") == spec.content_hash

    def _write_one(self, spec: RunSpec) -> str:
        """WRITTEN, PRESENT, RACED, or the reason the run could not be written."""
        exists = spec.run_hash in aim_remote.run_hashes(self.repo)
        if exists and self._complete(spec):
            return PRESENT
        if exists and self._another_writer_finished(spec):
            return RACED
        deadline = time.monotonic() + self.held_wait
        waited = False  # a lock we had to wait for: the run exists now, written by someone else
        while True:
            try:
                run = self._open(spec, exists)
                break
            except aim_remote.RunHeld:
                waited = True
                if self._complete(spec):
                    return RACED
                if time.monotonic() >= deadline:
                    return (
                        f"the run is held open on {self.target} by another writer (another importer or a "
                        f"training job) for more than {self.held_wait:g}s; left for the next sync"
                    )
                time.sleep(0.5)
                exists = spec.run_hash in aim_remote.run_hashes(self.repo)
        try:
            if not exists and self._finished_by_another(run, spec):
                return RACED
            if exists or waited:
                self._note_kept_date(run, spec)
                aim_remote.reset_run(run)
                run.experiment = spec.experiment
            self._fill(run, spec)
        except ServerUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the server refuses for this run's values
            if aim_remote.is_connection_error(exc):
                raise
            return f"Aim refused the run: {type(exc).__name__}: {exc} (left incomplete; rewritten next time)"
        finally:
            del run
            self._released += 1
            if self._released % RELEASE_EVERY == 0:
                aim_remote.release()  # a closed Run holds its server resources until collected
        return WRITTEN

    def _finished_by_another(self, run, spec: RunSpec) -> bool:
        """Created "new", but another importer of the same source created it first and finished it
        while the server made us wait for its lock: its provenance is there, with our content.

        Opening cleared the run's end time (Aim marks an open run as running); it is the spec's,
        since the content is the same, so closing with it leaves the run exactly as it was.
        """
        provenance = aim_remote.run_provenance(run)
        if not (provenance.get("complete") and provenance.get("content_hash") == spec.content_hash):
            return False
        aim_remote.close_run(run, spec.end_time)
        return True

    def _another_writer_finished(self, spec: RunSpec) -> bool:
        """Watch an existing, incomplete run for a while: True if another writer completes it.

        Asking the server for the lock of a run someone holds stalls the whole server for up to
        10 s (it waits for the lock inside its event loop), the holder included. So a run that is
        still changing is watched instead; one that stays still for `STALL` seconds is a leftover
        (a killed import), opened and rewritten.
        """
        started = last_change = time.monotonic()
        seen = None
        while time.monotonic() - started < self.held_wait:
            meta = aim_remote.read_meta(self.repo, spec.run_hash) or {}
            provenance = (meta.get("attrs") or {}).get("etl") or {}
            if provenance.get("complete") and meta.get("end_time") is not None:
                return provenance.get("content_hash") == spec.content_hash
            state = repr((meta.get("traces"), sorted(meta.get("attrs") or {})))
            if state != seen:
                seen, last_change = state, time.monotonic()
            elif time.monotonic() - last_change >= STALL:
                return False
            time.sleep(0.25)
        return False

    def _open(self, spec: RunSpec, exists: bool):
        if exists:
            return aim_remote.open_run(self.repo, spec.run_hash)
        return aim_remote.create_run(self.repo, spec.run_hash, spec.experiment, spec.created_at)

    def _note_kept_date(self, run, spec: RunSpec) -> None:
        if spec.created_at is None:
            return
        shown = aim_remote.creation_time(run)
        if shown is not None and abs(shown - spec.created_at.timestamp()) > 1e-3:
            self.on_note(
                f"runs updated in place on {self.target} keep the date they were first imported with in "
                "Aim's tables (the server cannot change a run's creation time); the record's own date is "
                "in the run's etl.created_at param"
            )

    def _fill(self, run, spec: RunSpec) -> None:
        if spec.name:
            run.name = spec.name
        run["hparams"] = spec.hparams
        if spec.meta:
            run["meta"] = spec.meta
        if spec.validation is not None:
            run["validation"] = spec.validation
        for tag in spec.tags:
            run.add_tag(tag)
        for series in spec.series:
            points = list(zip(series.steps, series.epochs, series.values, series.times, strict=True))
            for start in range(0, len(points), BATCH_POINTS):
                with aim_remote.batched(run):
                    for step, epoch, value, when in points[start : start + BATCH_POINTS]:
                        aim_remote.track_point(
                            run, value, series.name, step, epoch, series.context, None if math.isnan(when) else when
                        )
        # Provenance goes last: a run that has it, marked complete and closed, was written to the end.
        run["etl"] = {**spec.provenance, "complete": True}
        aim_remote.close_run(run, spec.end_time)


def iter_provenance(target: RemoteTarget):
    """(run hash, `etl` param) of every complete run aim-etl wrote on the server: a lost ledger's source."""
    repo = aim_remote.open_repo(target)
    for run_hash in sorted(aim_remote.guarded(repo, target, lambda: aim_remote.run_hashes(repo))):
        provenance = aim_remote.guarded(repo, target, lambda h=run_hash: aim_remote.read_provenance(repo, h))
        if provenance and provenance.get("run_key") and provenance["complete"]:
            yield run_hash, provenance
