"""Timestamps as real logs write them, to aware UTC datetimes.

Accepted: ISO-8601 with `Z` or an offset, naive ISO / `YYYY-MM-DD HH:MM:SS` (read in the caller's
timezone, UTC by default, and flagged so the report can count them), date-only, compact stamps
(`20260101_010453`, `20230609-075749`, `20260101T010453`), and epoch numbers in seconds or
milliseconds (told apart by size: 1e11 s is the year 5138, 1e11 ms is 1973).

A compact stamp is tried before a number: Python's `float()` accepts `_` between digits, so
`"20260101_010453"` would otherwise read as 20,260,101,010,453 ms, a date in 2612.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import parser as dateutil_parser

# YYYYMMDD, a `_`/`-`/`T` or nothing, HHMMSS: how MMEngine, MMDetection and many scripts stamp names.
COMPACT = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})[_T-]?(\d{2})(\d{2})(\d{2})(?!\d)")

_EPOCH_MS_FROM = 1e11
_EPOCH_S_FROM = 1e8  # 1973-03-03: smaller numbers are counts, not times


def parse_timestamp(value: Any, timezone: str | dt.tzinfo = "UTC") -> tuple[dt.datetime | None, bool]:
    """(UTC datetime or None, whether the value had no zone and `timezone` was assumed)."""
    if isinstance(value, bool) or value is None:
        return None, False
    if isinstance(value, int | float):
        return _from_epoch(float(value)), False
    if not isinstance(value, str):
        return None, False
    text = value.strip()
    if not text:
        return None, False
    compact = COMPACT.fullmatch(text)
    if compact:
        when = in_zone(compact_datetime(compact), timezone)
        return when, when is not None
    if "_" in text:  # `float()` reads `1_000` as 1000; no log writes an epoch number that way
        return None, False
    try:
        return _from_epoch(float(text)), False
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = dateutil_parser.isoparse(text)
        except (ValueError, OverflowError):
            return None, False
    if parsed.tzinfo is None:
        return in_zone(parsed, timezone), True
    return parsed.astimezone(dt.UTC), False


def compact_datetime(match: re.Match[str]) -> dt.datetime | None:
    """The naive datetime of a `COMPACT` match, or None when its fields are no date (`20261399_...`)."""
    try:
        return dt.datetime(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def in_zone(parsed: dt.datetime | None, timezone: str | dt.tzinfo) -> dt.datetime | None:
    if parsed is None:
        return None
    tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    return parsed.replace(tzinfo=tz).astimezone(dt.UTC)


def _from_epoch(seconds: float) -> dt.datetime | None:
    if not math.isfinite(seconds) or seconds < _EPOCH_S_FROM:
        return None
    if seconds >= _EPOCH_MS_FROM:
        seconds /= 1000.0
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
