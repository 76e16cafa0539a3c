"""When a run happened, when its record does not say: the best evidence, in a fixed order.

A run dated at the import shows today's date in Aim's UI and makes every imported history look as
if it ran this morning. So a record without a time field of its own is dated by, in this order:

1. `content`: a time in the record itself (its time fields, or the document around it);
2. `point times`: the earliest time of its own points (a log whose lines carry times);
3. `file name` / `folder name`: a stamp in the file's name, then in its folders' names, nearest
   first (`20230609_075749.log.json`, `eval_registry_20260104_212927/`, `quality_2025_10_01.json`).
   Tools name their outputs after the start of the run, so the stamp is the start;
4. `duration before file time`: a duration the record states (a Trainer's `train_runtime`,
   `elapsed_seconds`) ending at the file's modification time: the file was written when the run
   ended, so it started that long before;
5. `file modified time`: the file was written at the end of the run, or after it;
6. `import time`: only when the file cannot be stat'ed; the report says so.

The kind used is kept in the run's `etl` param (`time_source`) and counted in the report.
Points with no time of their own take the run's time (the mapper does that), so no point is dated
"now" unless the run is.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from etl.timestamps import COMPACT, compact_datetime, in_zone

CONTENT = "content"
POINT_TIMES = "point times"
FILE_NAME = "file name"
FOLDER_NAME = "folder name"
DURATION = "duration before file time"
MODIFIED = "file modified time"
IMPORT = "import time"
TIME_SOURCES = (CONTENT, POINT_TIMES, FILE_NAME, FOLDER_NAME, DURATION, MODIFIED, IMPORT)

# Durations a record states, in seconds. `time` is not one: loggers use it for a step's duration
# *and* for a wall-clock stamp.
DURATION_FIELDS = (
    "train_runtime",
    "duration_s",
    "duration_sec",
    "duration_seconds",
    "duration",
    "elapsed_seconds",
    "elapsed_s",
    "elapsed_time",
    "wall_time_s",
    "time_total_s",
    "evaluation_time",
    "runtime",
)
# Dates with separators in names: `2025-10-01`, `2025_10_01`, optionally `_12-30-05` after them.
_DATED = re.compile(
    r"(?<!\d)((?:19|20)\d{2})[-_.](\d{2})[-_.](\d{2})(?:[T_ -](\d{2})[-_:.](\d{2})[-_:.](\d{2}))?(?!\d)"
)
# A bare `YYYYMMDD` (`downstream_eval_20260101`), when nothing more precise is in the name.
_DAY = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")


@dataclass(frozen=True)
class FileDates:
    """What a file's name and its stat say about when the runs in it happened."""

    named: dt.datetime | None = None
    named_by: str | None = None
    modified: dt.datetime | None = None


def file_dates(path: Path | None, source: str, timezone: str | dt.tzinfo = "UTC") -> FileDates:
    """Read once per file: the stamp in its name or its folders' names, and its modification time.

    Names are read from `source` (the stable name, relative to the repo's folder when under it), so
    a date in a folder above the project, such as a user's home, never dates a run.
    """
    named, named_by = None, None
    parts = PurePosixPath(source).parts
    for depth, part in enumerate(reversed(parts)):
        when = name_stamp(part, timezone)
        if when is not None:
            named, named_by = when, FILE_NAME if depth == 0 else FOLDER_NAME
            break
    modified = None
    if path is not None:
        try:
            modified = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
        except OSError:
            modified = None
    return FileDates(named, named_by, modified)


def name_stamp(name: str, timezone: str | dt.tzinfo = "UTC") -> dt.datetime | None:
    """The date a file or folder name carries, most precise form first; None when it carries none."""
    match = COMPACT.search(name)
    if match:
        when = compact_datetime(match)
        if when is not None:
            return in_zone(when, timezone)
    for pattern in (_DATED, _DAY):
        for match in pattern.finditer(name):
            fields = [int(g) for g in match.groups() if g is not None]
            try:
                return in_zone(dt.datetime(*fields), timezone)
            except ValueError:
                continue
    return None


def record_duration(data: dict[str, Any]) -> float | None:
    """A duration the record states: at its top level, in a results section, or in the last row of
    its history (a Trainer's summary, `train_runtime` included, sits at the last step), in seconds."""
    sections = [data] + [v for k, v in data.items() if isinstance(v, dict) and k.lower() in ("results", "metrics")]
    history = data.get("history")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        sections.append(history[-1])
    for section in sections:
        lowered = {k.lower(): k for k in section}
        for name in DURATION_FIELDS:
            key = lowered.get(name)
            value = section.get(key) if key is not None else None
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
                return float(value)
    return None


def _shifted(when: dt.datetime, seconds: float) -> dt.datetime | None:
    """`when` moved by `seconds`, or None when that leaves the calendar (a duration of 1e300 s)."""
    try:
        return when + dt.timedelta(seconds=seconds)
    except OverflowError:
        return None


def date_run(
    created: dt.datetime | None,
    ended: dt.datetime | None,
    point_times: Sequence[float],
    duration: float | None,
    dates: FileDates,
) -> tuple[dt.datetime | None, dt.datetime | None, str]:
    """(created, ended, time source) by the order in the module docstring."""
    if created is not None:
        return created, ended, CONTENT
    times = [t for t in point_times if not math.isnan(t)]
    if times:
        return dt.datetime.fromtimestamp(min(times), tz=dt.UTC), ended, POINT_TIMES
    if dates.named is not None:
        if ended is None and duration is not None:
            ended = _shifted(dates.named, duration)
        return dates.named, ended, dates.named_by or FILE_NAME
    if dates.modified is not None:
        started = _shifted(dates.modified, -duration) if duration is not None else None
        if started is not None:
            return started, ended or dates.modified, DURATION
        return dates.modified, ended, MODIFIED
    return None, ended, IMPORT
