"""Write `RunSpec`s into an Aim repo through the SDK (plus the adapter's few private calls).

A run Aim refuses part-way (a value it cannot encode, a type it rejects) is removed again, so the
repo never holds half a run, and is handed back in `WriteResult.failed` with the reason; the
other runs of the chunk are written all the same. Only a failure of the place itself (the disk,
the repo) stops the import, since every other run would fail the same way.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Iterable
from pathlib import Path

from aim import Repo

from etl.mapper import RunSpec
from etl.writers import aim_adapter
from etl.writers.result import WriteResult

__all__ = ["SdkWriter", "WriteResult"]


class SdkWriter:
    """One open repo for a whole import; runs are indexed as each chunk ends, so reads work at once."""

    def __init__(self, repo_path: str | Path, repo: Repo | None = None) -> None:
        """`repo`: the repo at `repo_path` already opened (the pipeline creates a new one early)."""
        aim_adapter.check_aim_version()
        self.repo = repo if repo is not None else aim_adapter.open_repo(repo_path)

    def write(self, specs: Iterable[RunSpec], on_run: Callable[[RunSpec], None] | None = None) -> WriteResult:
        result = WriteResult()
        for spec in specs:
            if self._is_complete(spec):
                result.already_present.append(spec)
                continue
            if aim_adapter.run_exists(self.repo, spec.run_hash):
                # An edited record or a half-written run: replace it whole, since Aim cannot delete
                # one series and re-tracking over a shorter one would leave stale points behind.
                aim_adapter.delete_run(self.repo, spec.run_hash)
            refused = None
            try:
                self._write_one(spec)
            except OSError:
                raise  # the disk or the repo, not this run: every other run would fail the same way
            except Exception as exc:  # noqa: BLE001 - whatever Aim raises for one run's values
                refused = f"Aim refused the run: {type(exc).__name__}: {exc}"
            if refused is not None:
                # Removed only now, the exception gone: its traceback held the run's open RocksDB
                # handles, whose late flush would write into the deleted folder and whose lock
                # would refuse the next write of the same run in this process (`sync --watch`).
                self._remove(spec)
                result.failed.append((spec, refused))
                continue
            result.written.append(spec)
            result.points += spec.points
            if on_run is not None:
                on_run(spec)
        # Runs found complete were perhaps never indexed (the process that wrote them was killed first).
        aim_adapter.index_runs(self.repo, [s.run_hash for s in (*result.written, *result.already_present)])
        return result

    def _is_complete(self, spec: RunSpec) -> bool:
        provenance = aim_adapter.read_provenance(self.repo, spec.run_hash)
        return bool(provenance) and provenance["complete"] and provenance.get("content_hash") == spec.content_hash

    def _remove(self, spec: RunSpec) -> None:
        """Take a run Aim refused out again; if that fails too, the import stops (StageFailed)."""
        gc.collect()  # Aim's run objects hold each other in cycles: only a collection closes their handles
        if aim_adapter.run_exists(self.repo, spec.run_hash):
            aim_adapter.delete_run(self.repo, spec.run_hash)

    def _write_one(self, spec: RunSpec) -> None:
        run = aim_adapter.create_run(self.repo, spec.run_hash, spec.experiment)
        try:
            self._fill(run, spec)
        except BaseException:
            # Closed before it is removed: its open containers and lock would go on serving (and
            # holding) the half-written run.
            with contextlib.suppress(Exception):
                run.close()
            raise
        finally:
            del run

    def _fill(self, run, spec: RunSpec) -> None:
        if spec.created_at is not None:
            aim_adapter.set_creation_time(run, spec.created_at)
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
            for step, epoch, value, time in zip(series.steps, series.epochs, series.values, series.times, strict=True):
                aim_adapter.track_point(
                    run, value, series.name, step, epoch, series.context, time if not math.isnan(time) else None
                )
        # Provenance goes last: a run that has it, marked complete, was written to the end.
        run["etl"] = {**spec.provenance, "complete": True}
        aim_adapter.close_run(run, spec.end_time)
