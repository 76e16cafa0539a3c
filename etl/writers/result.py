"""What a writer hands back for a chunk of runs: the same shape from the SDK and the bulk writer."""

from __future__ import annotations

from dataclasses import dataclass, field

from etl.mapper import RunSpec


@dataclass
class WriteResult:
    written: list[RunSpec] = field(default_factory=list)
    # Runs found complete in the repo with the same content (the ledger had been lost): not rewritten.
    already_present: list[RunSpec] = field(default_factory=list)
    points: int = 0
    # Runs Aim refused, with the reason; each was removed again, none is half in the repo.
    failed: list[tuple[RunSpec, str]] = field(default_factory=list)
    # Hashes written but not indexed: another process (an `aim up`) held the index, and its own
    # indexer picks new runs up; until then `Repo.iter_runs()` and AimQL do not show them.
    left_unindexed: list[str] = field(default_factory=list)
