"""What every reader yields: one source record and the place it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    """One experiment-shaped JSON value, before any interpretation.

    `parent` holds the fields of the document around a record that was one entry of a list
    (a grid search's `search`, `created`, ...): an entry inherits its experiment and time from it.
    """

    source: str
    locator: str
    format: str
    data: dict[str, Any]
    parent: dict[str, Any] = field(default_factory=dict)
    # Byte offset just after this record in its file, for JSONL sync cursors.
    end_offset: int | None = None
    # What scopes the run key when it is not the file read (`source`): a reader whose file changes
    # name as the run goes on (a Trainer's newest `checkpoint-N/trainer_state.json`) names here the
    # place that stays, so the run keeps one key, and so one Aim run, as later files replace it.
    key_source: str | None = None
    # Points of this record that a later value at the same step replaced (a resumed training
    # re-logs its last steps): a reader that resolves them itself says how many, for the report.
    replaced_points: int = 0


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file found under a source folder that no reader understands; listed, never dropped silently."""

    source: str
    reason: str
