"""Compare normalized runs with the ledger: what is new, changed, unchanged or a duplicate.

Pure: the ledger comes in as a snapshot, and what was planned earlier in the same import is the
planner's own memory, so a run seen twice in one import (a log line and its `.json` copy) is
planned once and the second place is reported as its duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from etl.ledger import DONE, REJECTED, LedgerSnapshot
from etl.normalize import CONTENT_HASH, LOCATOR, RUN_KEY, SOURCE
from etl.spill import SpillDict
from etl.writers.naming import run_hash_for

NEW = "new"
CHANGED = "changed"
UNCHANGED = "unchanged"
DUPLICATE = "duplicate"
ACTIONS = (NEW, CHANGED, UNCHANGED, DUPLICATE)

# What to do with an edited record (same run key, new content):
ON_CHANGE_UPDATE = "update"  # rewrite the run in place: same hash, new hparams and points
ON_CHANGE_SKIP = "skip"  # leave the run as it is; the report still counts it as changed
ON_CHANGE_NEW = "new"  # keep the old run and import the edit as a run of its own
ON_CHANGE = (ON_CHANGE_UPDATE, ON_CHANGE_SKIP, ON_CHANGE_NEW)


@dataclass(frozen=True, slots=True)
class PlannedRun:
    run_key: str
    run_hash: str
    content_hash: str
    source: str
    locator: str
    action: str
    # For a duplicate: the place of the run it duplicates; otherwise why the action was chosen.
    note: str = ""
    # The key of the row in the frames (differs from run_key only for `--on-change new`).
    frame_key: str = ""
    write: bool = False


@dataclass
class SyncPlan:
    runs: list[PlannedRun] = field(default_factory=list)

    def to_write(self) -> dict[str, tuple[str, str]]:
        """frame key -> (run key, run hash) of the runs to (re)write."""
        return {p.frame_key or p.run_key: (p.run_key, p.run_hash) for p in self.runs if p.write}

    def count(self, action: str) -> int:
        return sum(p.action == action for p in self.runs)


class Planner:
    def __init__(self, snapshot: LedgerSnapshot, on_change: str = ON_CHANGE_UPDATE) -> None:
        self.snapshot = snapshot
        self.on_change = on_change
        # content hash -> "source locator" of the first place it was planned in this import, and
        # the run keys planned: kept for every run of an import, on disk past a limit (`SpillDict`).
        self._seen = SpillDict()
        self._seen_keys = SpillDict()

    def plan(self, runs: pd.DataFrame) -> SyncPlan:
        plan = SyncPlan()
        for key, digest, source, locator in zip(
            runs[RUN_KEY], runs[CONTENT_HASH], runs[SOURCE], runs[LOCATOR], strict=True
        ):
            plan.runs.append(self._plan_one(key, digest, source, locator))
        return plan

    def _plan_one(self, key: str, digest: str, source: str, locator: str) -> PlannedRun:
        def planned(action: str, note: str = "", run_key: str = key) -> PlannedRun:
            write = action in (NEW, CHANGED)
            return PlannedRun(run_key, run_hash_for(run_key), digest, source, locator, action, note, key, write)

        first = self._seen.get(digest)
        if first is not None or key in self._seen_keys:
            return planned(DUPLICATE, f"duplicate of {first}")
        self._seen[digest] = f"{source} {locator}"
        self._seen_keys[key] = ""
        entry = self.snapshot.by_key.get(key)
        if entry is not None:
            if entry.content_hash == digest:
                if entry.state == DONE:
                    return planned(UNCHANGED)
                if entry.state == REJECTED:
                    # The rules may have changed since; the import's checks decide again.
                    return planned(NEW, "rejected earlier (--strict); checked again")
                # Found `writing`: the process that wrote it died before finishing; write it again.
                return planned(NEW, "interrupted earlier; rewritten")
            return self._plan_change(planned, key, digest)
        other = self.snapshot.by_content.get(digest)
        if other is not None:
            place = self.snapshot.by_key[other]
            return planned(DUPLICATE, f"duplicate of {place.source} {place.locator}")
        return planned(NEW)

    def _plan_change(self, planned, key: str, digest: str) -> PlannedRun:
        if self.on_change == ON_CHANGE_SKIP:
            return replace(planned(CHANGED, "edited; kept as it was (--on-change skip)"), write=False)
        if self.on_change == ON_CHANGE_NEW:
            variant = f"{key}~{digest[:12]}"
            entry = self.snapshot.by_key.get(variant)
            if entry is not None and entry.state == DONE:
                return planned(UNCHANGED, run_key=variant)
            return planned(NEW, "edited; imported as a new run (--on-change new)", run_key=variant)
        return planned(CHANGED, "edited; run rewritten in place")
