"""Compare normalized runs with the ledger: what is new, changed, unchanged or a duplicate.

Pure: the ledger comes in as a snapshot, and what was planned earlier in the same import is the
planner's own memory, so a run seen twice in one import (a log line and its `.json` copy) is
planned once and the second place is reported as its duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from etl.ledger import DONE, LedgerSnapshot
from etl.normalize import CONTENT_HASH, LOCATOR, RUN_KEY, SOURCE
from etl.writers.naming import run_hash_for

NEW = "new"
CHANGED = "changed"
UNCHANGED = "unchanged"
DUPLICATE = "duplicate"
ACTIONS = (NEW, CHANGED, UNCHANGED, DUPLICATE)


@dataclass(frozen=True, slots=True)
class PlannedRun:
    run_key: str
    run_hash: str
    content_hash: str
    source: str
    locator: str
    action: str
    # For a duplicate: the place of the run it duplicates; for a re-run: the key it re-runs.
    note: str = ""


@dataclass
class SyncPlan:
    runs: list[PlannedRun] = field(default_factory=list)

    def to_write(self) -> dict[str, str]:
        """run_key -> run hash of the runs to (re)write."""
        return {p.run_key: p.run_hash for p in self.runs if p.action in (NEW, CHANGED)}

    def count(self, action: str) -> int:
        return sum(p.action == action for p in self.runs)


class Planner:
    def __init__(self, snapshot: LedgerSnapshot) -> None:
        self.snapshot = snapshot
        # content hash -> "source locator" of the first place it was planned in this import
        self._seen: dict[str, str] = {}
        self._seen_keys: set[str] = set()

    def plan(self, runs: pd.DataFrame) -> SyncPlan:
        plan = SyncPlan()
        for key, digest, source, locator in zip(
            runs[RUN_KEY], runs[CONTENT_HASH], runs[SOURCE], runs[LOCATOR], strict=True
        ):
            plan.runs.append(self._plan_one(key, digest, source, locator))
        return plan

    def _plan_one(self, key: str, digest: str, source: str, locator: str) -> PlannedRun:
        run_hash = run_hash_for(key)
        first = self._seen.get(digest)
        if first is not None or key in self._seen_keys:
            return PlannedRun(key, run_hash, digest, source, locator, DUPLICATE, f"duplicate of {first}")
        self._seen[digest] = f"{source} {locator}"
        self._seen_keys.add(key)
        entry = self.snapshot.by_key.get(key)
        if entry is not None:
            if entry.content_hash == digest and entry.state == DONE:
                return PlannedRun(key, run_hash, digest, source, locator, UNCHANGED)
            if entry.content_hash != digest:
                return PlannedRun(key, run_hash, digest, source, locator, CHANGED)
            # Found `writing`: the process that wrote it died before finishing; write it again.
            return PlannedRun(key, run_hash, digest, source, locator, NEW, "interrupted earlier; rewritten")
        other = self.snapshot.by_content.get(digest)
        if other is not None:
            place = self.snapshot.by_key[other]
            return PlannedRun(
                key, run_hash, digest, source, locator, DUPLICATE, f"duplicate of {place.source} {place.locator}"
            )
        return PlannedRun(key, run_hash, digest, source, locator, NEW)
