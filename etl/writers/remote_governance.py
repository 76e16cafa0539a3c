"""`validate --repo aim://HOST:PORT`: the same reading and writing as `GovernanceRepo`, over the wire.

Runs are listed from the server's run folders (all of them, indexed or not) and read from each
run's own chunk in one request; `--query` goes through AimQL on the server, which sees the runs
in its index (those aim-etl wrote, and those `aim up` indexed). A run another writer holds open
is reported active (`RunHeld`), never forced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aim.sdk.types import QueryReportMode

from etl import __version__
from etl.governance.model import Validation
from etl.remote import RemoteTarget
from etl.writers import aim_adapter, aim_remote
from etl.writers.governance import GOVERNANCE_EXPERIMENT, GOVERNANCE_PARAM, StoredRun, annotate, stored_view
from etl.writers.naming import run_hash_for
from etl.writers.verdicts import VerdictsWritten

RunHeld = aim_remote.RunHeld


class _MetaTree:
    """The part of a `TreeView` that `stored_view` reads, over a dict fetched in one request."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def collect(self, key: str) -> Any:
        if key not in self.meta:
            raise KeyError(key)
        return self.meta[key]

    __getitem__ = collect


class _RemoteRun:
    """What `stored_view` needs of a run, read with two requests instead of a `Run`'s dozens."""

    def __init__(self, repo, run_hash: str, meta: dict[str, Any], props: dict[str, Any]) -> None:
        self.repo = repo
        self.hash = run_hash
        self.meta_run_tree = _MetaTree(meta)
        self.experiment = props["experiment"]
        self.name = props["name"]
        self.tags = props["tags"]

    def get_metric(self, name, context):
        from aim import Run

        return Run(self.hash, repo=self.repo, read_only=True).get_metric(name, context)


class RemoteGovernanceRepo:
    def __init__(self, target: RemoteTarget) -> None:
        aim_adapter.check_aim_version()
        self.target = target
        self.repo = aim_remote.open_repo(target)
        # Each run's end time as read, so writing a verdict leaves it as it was (opening clears it).
        self._end_times: dict[str, float | None] = {}

    def count(self) -> int:
        """Runs on the server (compliance runs included), as a pass over every run will meet them."""
        return len(self._guarded(lambda: aim_remote.run_hashes(self.repo)))

    def _guarded(self, step):
        return aim_remote.guarded(self.repo, self.target, step)

    def runs(self, query: str | None = None) -> Iterator[StoredRun]:
        if query:
            found = self._guarded(
                lambda: [
                    c.run.hash for c in self.repo.query_runs(query, report_mode=QueryReportMode.DISABLED).iter_runs()
                ]
            )
        else:
            found = sorted(self._guarded(lambda: aim_remote.run_hashes(self.repo)))
        for run_hash in found:
            stored = self._guarded(lambda run_hash=run_hash: self._read(run_hash))
            if stored is not None:
                self._end_times[run_hash] = stored.end_time
                yield stored

    def _read(self, run_hash: str) -> StoredRun | None:
        meta = aim_remote.read_meta(self.repo, run_hash)
        if meta is None:
            return None
        return stored_view(_RemoteRun(self.repo, run_hash, meta, aim_remote.read_props(self.repo, run_hash)))

    def write(self, run_hash: str, validation: Validation, end_time: float | None) -> None:
        """Put `validation` on the run with exactly one status tag; `RunHeld` if another writer has it."""

        def step() -> None:
            run = aim_remote.open_run(self.repo, run_hash)
            try:
                annotate(run, validation)
            finally:
                aim_remote.close_keeping_end(run, end_time)
                del run

        self._guarded(step)

    def write_many(self, verdicts: Sequence[tuple[str, Validation]]) -> VerdictsWritten:
        """One run at a time over the wire (the server applies writes one by one anyway), then indexed."""
        written, held = [], {}
        for run_hash, validation in verdicts:
            if self._end_times.get(run_hash) is None:
                # Not closed: being logged, most likely. Asking the server for its lock would stall
                # the whole server for 10 s (it waits inside its event loop), so it is not asked.
                held[run_hash] = "not closed (no end time): another process may be logging it"
                continue
            try:
                self.write(run_hash, validation, self._end_times.get(run_hash))
                written.append(run_hash)
            except RunHeld as error:
                held[run_hash] = f"held open by another process ({error})"
        indexed = self._guarded(lambda: aim_remote.index_runs(self.repo, written))
        return VerdictsWritten(written, held, indexed)

    def track_compliance(
        self, rules_version: str, figures: Mapping[str, float], rule_rates: Mapping[str, float]
    ) -> str:
        """One step more on the rules version's compliance run, as locally."""
        run_hash = run_hash_for(f"{GOVERNANCE_EXPERIMENT}:{rules_version}")

        def step() -> None:
            if run_hash in aim_remote.run_hashes(self.repo):
                run = aim_remote.open_run(self.repo, run_hash)
            else:
                run = aim_remote.create_run(self.repo, run_hash, GOVERNANCE_EXPERIMENT, None)
                run.name = rules_version
                run[GOVERNANCE_PARAM] = {"rules_version": rules_version, "tool": f"aim-etl {__version__}"}
            try:
                traces = aim_remote.read_meta(self.repo, run_hash) or {}
                last = [
                    s.get("last_step", -1) for names in (traces.get("traces") or {}).values() for s in names.values()
                ]
                at = max(last, default=-1) + 1
                now = dt.datetime.now(dt.UTC).timestamp()
                for name, value in figures.items():
                    aim_remote.track_point(run, value, name, at, None, {}, now)
                for rule, rate in rule_rates.items():
                    aim_remote.track_point(run, rate, "rule_pass_rate", at, None, {"rule": rule}, now)
            finally:
                aim_remote.close_run(run, None)
                del run
            aim_remote.index_runs(self.repo, [run_hash])

        self._guarded(step)
        return run_hash
