"""Timestamps as real logs write them, to aware UTC datetimes.

Accepted: ISO-8601 with `Z` or an offset, naive ISO / `YYYY-MM-DD HH:MM:SS` (read in the caller's
timezone, UTC by default, and flagged so the report can count them), date-only, and epoch numbers
in seconds or milliseconds (told apart by size: 1e11 s is the year 5138, 1e11 ms is 1973).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import parser as dateutil_parser

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
        tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        return parsed.replace(tzinfo=tz).astimezone(dt.UTC), True
    return parsed.astimezone(dt.UTC), False


def _from_epoch(seconds: float) -> dt.datetime | None:
    if not math.isfinite(seconds) or seconds < _EPOCH_S_FROM:
        return None
    if seconds >= _EPOCH_MS_FROM:
        seconds /= 1000.0
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None
