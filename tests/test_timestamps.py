"""parse_timestamp: the timestamp formats real logs write, to aware UTC datetimes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from etl.timestamps import parse_timestamp

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-04T05:06:07Z", at(2025, 3, 4, 5, 6, 7)),
        ("2025-03-04T05:06:07.250Z", at(2025, 3, 4, 5, 6, 7, 250000)),
        ("2025-03-04T05:06:07+00:00", at(2025, 3, 4, 5, 6, 7)),
        ("2025-03-04T05:06:07+02:00", at(2025, 3, 4, 3, 6, 7)),
        ("2025-03-04T05:06:07-05:30", at(2025, 3, 4, 10, 36, 7)),
        ("2025-03-04 05:06:07+02:00", at(2025, 3, 4, 3, 6, 7)),
        ("  2025-03-04T05:06:07Z  ", at(2025, 3, 4, 5, 6, 7)),
    ],
)
def test_aware_iso(value, expected):
    when, naive = parse_timestamp(value)
    assert when == expected
    assert when.tzinfo is not None and when.utcoffset() == dt.timedelta(0)
    assert naive is False


def test_aware_iso_ignores_the_timezone_argument():
    assert parse_timestamp("2025-03-04T05:06:07+02:00", "Europe/Paris") == (at(2025, 3, 4, 3, 6, 7), False)
    assert parse_timestamp("2025-03-04T05:06:07Z", "America/New_York") == (at(2025, 3, 4, 5, 6, 7), False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-04T05:06:07", at(2025, 3, 4, 5, 6, 7)),
        ("2025-03-04 05:06:07", at(2025, 3, 4, 5, 6, 7)),
        ("2025-03-04", at(2025, 3, 4)),
    ],
)
def test_naive_is_read_in_utc_by_default_and_flagged(value, expected):
    assert parse_timestamp(value) == (expected, True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Winter: CET, UTC+1.
        ("2025-01-15T12:00:00", at(2025, 1, 15, 11, 0, 0)),
        ("2025-01-15 12:00:00", at(2025, 1, 15, 11, 0, 0)),
        # Summer: CEST, UTC+2.
        ("2025-07-15T12:00:00", at(2025, 7, 15, 10, 0, 0)),
        # Date-only is midnight in that zone.
        ("2025-07-15", at(2025, 7, 14, 22, 0, 0)),
    ],
)
def test_naive_is_read_in_the_given_timezone(value, expected):
    when, naive = parse_timestamp(value, "Europe/Paris")
    assert naive is True
    assert when == expected
    assert when.utcoffset() == dt.timedelta(0)


def test_timezone_may_be_a_tzinfo():
    assert parse_timestamp("2025-01-15T12:00:00", ZoneInfo("Asia/Tokyo")) == (at(2025, 1, 15, 3, 0, 0), True)
    fixed = dt.timezone(dt.timedelta(hours=-3))
    assert parse_timestamp("2025-01-15T12:00:00", fixed) == (at(2025, 1, 15, 15, 0, 0), True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000, at(2023, 11, 14, 22, 13, 20)),  # epoch seconds, int
        (1_700_000_000.5, at(2023, 11, 14, 22, 13, 20, 500000)),  # epoch seconds, float
        (1_700_000_000_000, at(2023, 11, 14, 22, 13, 20)),  # epoch milliseconds
        (1_700_000_000_250.0, at(2023, 11, 14, 22, 13, 20, 250000)),  # epoch milliseconds, float
        ("1700000000", at(2023, 11, 14, 22, 13, 20)),  # numeric strings
        ("1700000000.5", at(2023, 11, 14, 22, 13, 20, 500000)),
        (" 1700000000000 ", at(2023, 11, 14, 22, 13, 20)),
        (100_000_000, at(1973, 3, 3, 9, 46, 40)),  # the smallest number read as a time
    ],
)
def test_epoch_numbers(value, expected):
    when, naive = parse_timestamp(value)
    assert naive is False
    assert when == expected
    assert when.tzinfo is not None


def test_epoch_is_never_naive_even_with_a_timezone():
    assert parse_timestamp(1_700_000_000, "Europe/Paris") == (at(2023, 11, 14, 22, 13, 20), False)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        5,
        99_999_999,
        -1_700_000_000,
        "5",
        "",
        "   ",
        "yesterday",
        "n/a",
        "2025-13-45",
        float("nan"),
        float("inf"),
        "NaN",
        "Infinity",
        [2025, 3, 4],
        {"t": 1_700_000_000},
        1e300,
    ],
)
def test_not_times(value):
    assert parse_timestamp(value) == (None, False)


def test_not_times_are_not_flagged_naive_whatever_the_timezone():
    assert parse_timestamp("yesterday", "Europe/Paris") == (None, False)
    assert parse_timestamp(5, "Europe/Paris") == (None, False)
