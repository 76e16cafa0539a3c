"""Records to the two frames of the data contract: `runs` (one row per source run) and `metrics`
(long format, one row per point). The schema lives here and is checked once, at this boundary.

Identity is decided here too, because it needs the order records come in: a run's key is its
explicit id scoped by its source (`experiments/LOG.jsonl#exp_007`), or its content hash when it has
no id. The same id seen again in one source with different content is a re-run, keyed by its
occurrence (`...#exp_007#2`); seen again with the same content it keeps its key, and the planner
reports it as a duplicate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd

from etl.dating import FileDates, date_run, file_dates, record_duration
from etl.errors import BadRecord
from etl.interpret import FieldRules, NotAnExperiment, interpret
from etl.readers.record import Record
from etl.spill import SpillDict
from etl.storable import EMPTY_KEY, describe, make_storable

RUN_KEY = "run_key"
CONTENT_HASH = "content_hash"
SOURCE = "source"
LOCATOR = "locator"
FORMAT = "format"
EXPERIMENT = "experiment"
NAME = "name"
CREATED_AT = "created_at"
ENDED_AT = "ended_at"
HPARAMS = "hparams"
TAGS = "tags"
META = "meta"
# Which evidence dated the run (`etl.dating`): kept in the run's `etl` param and counted in the report.
TIME_SOURCE = "time_source"

CONTEXT = "context"
STEP = "step"
EPOCH = "epoch"
VALUE = "value"
TIME = "time"

RUN_COLUMNS = (
    RUN_KEY,
    CONTENT_HASH,
    SOURCE,
    LOCATOR,
    FORMAT,
    EXPERIMENT,
    NAME,
    CREATED_AT,
    ENDED_AT,
    HPARAMS,
    TAGS,
    META,
    TIME_SOURCE,
)
METRIC_COLUMNS = (RUN_KEY, NAME, CONTEXT, STEP, EPOCH, VALUE, TIME)


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    source: str
    locator: str
    reason: str


@dataclass(frozen=True, slots=True)
class CoercedRecord:
    """A record imported with some values in their nearest storable form (`etl.storable`)."""

    source: str
    locator: str
    counts: dict[str, int]

    @property
    def reason(self) -> str:
        return describe(self.counts)


@dataclass
class Frames:
    runs: pd.DataFrame
    metrics: pd.DataFrame
    skipped: list[SkippedRecord] = field(default_factory=list)
    # Timestamps without a zone, read in the `--timezone` given (the report counts them).
    naive_timestamps: int = 0
    # Same id, different content, same source: imported as its own run, said in the report.
    reruns: list[SkippedRecord] = field(default_factory=list)
    # run_key -> (record id or None, occurrence): kept in the ledger, so a sync that reads only
    # appended lines still knows which ids the file already had.
    identities: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    # run_key -> points its reader resolved itself (a later value at one step), for the report
    replaced_points: dict[str, int] = field(default_factory=dict)
    # Records that could not be read into a run at all (not even in storable form), with why.
    invalid: list[SkippedRecord] = field(default_factory=list)
    # Records imported with values changed to be storable, and how many of each kind.
    coerced: list[CoercedRecord] = field(default_factory=list)


def content_hash(record: Record, rules: FieldRules, overrides: dict[str, str] | None = None) -> str:
    """Hash of everything that maps into the run: the record, the document around it, the rules,
    and the roles a mapping gave its fields against the interpreter's reading (`overrides`).

    Serialized with the standard library, not orjson: orjson writes NaN as null, which would make
    a record with `NaN` and one with `null` the same run.
    """
    parts = [record.data, record.parent, rules.fingerprint()]
    if overrides:
        parts.append(overrides)
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


class Normalizer:
    """Turns records into frames chunk by chunk, remembering ids across chunks of one import."""

    def __init__(self, rules: FieldRules | None = None) -> None:
        self.rules = rules or FieldRules()
        # (source, id) -> [[content hash, run key], ...] in order of occurrence; a new hash under a
        # known id is a re-run. Kept for every record of an import: on disk past a limit (`SpillDict`).
        self._occurrences = SpillDict()

    def _seen(self, source: str, record_id: str) -> tuple[str, list[list[str]]]:
        scope = orjson.dumps([source, record_id]).decode()
        known = self._occurrences.get(scope)
        return scope, orjson.loads(known) if known is not None else []

    def seed(self, source: str, known: list[tuple[str, str, str, int]]) -> None:
        """Remember the ids a file already had (record id, content hash, key, occurrence), before
        reading only its appended lines: an old id on a new line is then a re-run, not the original."""
        for record_id, digest, key, _ in sorted(known, key=lambda k: k[3]):
            scope, seen = self._seen(source, record_id)
            if all(d != digest for d, _ in seen):
                self._occurrences[scope] = orjson.dumps([*seen, [digest, key]]).decode()

    def run_key(self, source: str, record_id: str | None, digest: str) -> tuple[str, int]:
        """(key, occurrence): occurrence > 1 marks a re-run of an id already seen in this source."""
        if record_id is None:
            return f"{source}@{digest[:16]}", 1
        scope, seen = self._seen(source, record_id)
        for n, (known, key) in enumerate(seen, start=1):
            if known == digest:
                return key, n
        n = len(seen) + 1
        key = f"{source}#{record_id}" if n == 1 else f"{source}#{record_id}#{n}"
        self._occurrences[scope] = orjson.dumps([*seen, [digest, key]]).decode()
        return key, n

    def normalize(self, records: Iterable[Record], path: Path | None = None) -> Frames:
        """Frames of `records`; `path` is the file they were read from, whose name and modification
        time date the runs that carry no time of their own (`etl.dating`)."""
        dates: dict[str, FileDates] = {}
        runs: list[tuple] = []
        points: dict[str, list] = {c: [] for c in METRIC_COLUMNS}
        skipped: list[SkippedRecord] = []
        reruns: list[SkippedRecord] = []
        replaced: dict[str, int] = {}
        invalid: list[SkippedRecord] = []
        coerced: list[CoercedRecord] = []
        identities: dict[str, tuple[str | None, int]] = {}
        naive = 0
        for record in records:
            # Every reader's records pass here, so this is where a value Aim cannot hold (a lone
            # surrogate, a 2**80 int, 3,000 levels of nesting) gets its storable form, before
            # anything walks it: the content hash is then of what is stored, the same on every run.
            record, counts = _storable(record)
            if counts:
                coerced.append(CoercedRecord(record.source, record.locator, dict(counts)))
            try:
                item = interpret(record, self.rules)
                digest = content_hash(record, self.rules, item.overrides)
                singles = item.columns.singles()  # a whole series has steps 0..n-1 and no times
                problem = _unstorable_point(singles)
            except NotAnExperiment as exc:
                skipped.append(SkippedRecord(record.source, record.locator, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - one record's surprise must not end the import
                # A shape the interpreter did not foresee is this record's problem, reported with
                # its place like an unparseable line; a bug shows there too, and the rest goes on.
                problem = f"could not be read as a run: {type(exc).__name__}: {exc}"
            if problem:
                invalid.append(SkippedRecord(record.source, record.locator, problem))
                continue
            # The key is scoped by the record's file, unless its reader names a steadier scope (a
            # checkpoint-only Trainer folder: the output folder, whichever checkpoint is newest).
            key, occurrence = self.run_key(record.key_source or record.source, item.record_id, digest)
            identities[key] = (item.record_id, occurrence)
            if occurrence > 1:
                reruns.append(
                    SkippedRecord(
                        record.source, record.locator, f"re-run of id {item.record_id!r} (occurrence {occurrence})"
                    )
                )
            naive += item.naive_time
            if record.replaced_points:
                replaced[key] = record.replaced_points
            if record.source not in dates:
                dates[record.source] = file_dates(path, record.source, self.rules.timezone)
            created, ended, time_source = date_run(
                item.created_at,
                item.ended_at,
                [point[5] for point in singles],
                record_duration(record.data),
                dates[record.source],
            )
            runs.append(
                (
                    key,
                    digest,
                    record.source,
                    record.locator,
                    record.format,
                    item.experiment,
                    item.name if item.name is not None else readable_name(record),
                    created,
                    ended,
                    item.hparams,
                    item.tags,
                    item.meta,
                    time_source,
                )
            )
            if item.columns:
                start = len(points[NAME])
                points[RUN_KEY].extend(itertools.repeat(key, len(item.columns)))
                item.columns.extend_columns(*(points[c] for c in (NAME, CONTEXT, STEP, EPOCH, VALUE, TIME)))
                names = points[NAME][start:]
                if not all(names):  # a series named "" breaks Aim's later reads
                    points[NAME][start:] = [name or EMPTY_KEY for name in names]
        return Frames(
            _runs_frame(runs),
            _metrics_frame(points),
            skipped,
            naive,
            reruns,
            identities,
            replaced_points=replaced,
            invalid=invalid,
            coerced=coerced,
        )


def readable_name(record: Record) -> str:
    """A name for a run whose record has none, from where it is: Aim's UI shows `Run: <hash>` otherwise.

    The file's stem, and the record's place in the file when the file holds several
    (`grid_search:results[3]`, `EXPERIMENT_LOG:line 12`); a whole-file record is the file's stem.
    """
    stem = record.source.rstrip("/").rsplit("/", 1)[-1]
    stem = stem.split(".", 1)[0] or stem
    locator = record.locator
    if locator == "$" or locator.startswith("lines "):
        return stem
    if locator.startswith("$."):
        locator = locator[2:]
    elif locator.startswith("$"):
        locator = locator[1:]
    return f"{stem}:{locator}" if locator else stem


def _storable(record: Record) -> tuple[Record, dict[str, int]]:
    """The record with its data and the document around it in storable form, and what was changed."""
    data, counts = make_storable(record.data)
    parent, parent_counts = make_storable(record.parent) if record.parent else (record.parent, None)
    if parent_counts:
        counts.update(parent_counts)
    if not counts:
        return record, counts
    return dataclasses.replace(record, data=data, parent=parent), counts


_INT64 = 2**63


def _unstorable_point(points: list[tuple]) -> str | None:
    """Why a point cannot be a row of the int64 step/epoch columns (Aim keeps steps as int64), or None.

    A step read from a float field (`"step": 1e300`) can be any size; one such point would make the
    whole chunk's frame fail, so its record is reported instead. Only points that came one by one
    are asked (a whole series is stepped 0..n-1); their bounds, taken in C, clear a record without
    a look at each point.
    """
    if not points:
        return None
    steps = [point[2] for point in points]
    epochs = [point[3] for point in points if point[3] is not None]
    if all(min(column) >= -_INT64 and max(column) < _INT64 for column in (steps, epochs) if column):
        return None
    for name, _, step, epoch, _, _ in points:
        for field_name, number in (("step", step), ("epoch", epoch)):
            if number is not None and not -_INT64 <= number < _INT64:
                digits = str(number)
                shown = digits if len(digits) < 25 else f"{digits[:8]}... ({len(digits)} digits)"
                return f"metric {name!r}: {field_name} {shown} is beyond 64 bits, which Aim cannot store"
    return None


def _runs_frame(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(RUN_COLUMNS))
    for column in (CREATED_AT, ENDED_AT):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return check_runs(frame)


def _metrics_frame(points: dict[str, list]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            RUN_KEY: pd.Series(points[RUN_KEY], dtype=object),
            NAME: pd.Series(points[NAME], dtype=object),
            CONTEXT: pd.Series(points[CONTEXT], dtype=object),
            STEP: pd.Series(points[STEP], dtype="int64"),
            EPOCH: pd.Series(points[EPOCH], dtype="Int64"),
            VALUE: pd.Series(points[VALUE], dtype="float64"),
            TIME: pd.Series(points[TIME], dtype="float64"),
        }
    )
    return check_metrics(frame)


def check_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract, asserted at the boundary so a reader that drifts fails here, not in Aim."""
    if tuple(frame.columns) != RUN_COLUMNS:
        raise ValueError(f"runs frame columns {tuple(frame.columns)} != {RUN_COLUMNS}")
    # An exact duplicate line shares its original's key; a key with two contents is a bug upstream.
    if frame[RUN_KEY].duplicated().any() and (frame.groupby(RUN_KEY)[CONTENT_HASH].nunique() > 1).any():
        raise ValueError("runs frame: one run_key with two different contents")
    return frame


def check_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    if tuple(frame.columns) != METRIC_COLUMNS:
        raise ValueError(f"metrics frame columns {tuple(frame.columns)} != {METRIC_COLUMNS}")
    return frame


def concat(frames: list[Frames]) -> Frames:
    """One `Frames` from chunks: what `etl.read` hands a notebook."""
    if not frames:
        return Normalizer().normalize([])
    return Frames(
        runs=pd.concat([f.runs for f in frames], ignore_index=True),
        metrics=pd.concat([f.metrics for f in frames], ignore_index=True),
        skipped=[s for f in frames for s in f.skipped],
        naive_timestamps=sum(f.naive_timestamps for f in frames),
        reruns=[r for f in frames for r in f.reruns],
        identities={k: v for f in frames for k, v in f.identities.items()},
        replaced_points={k: v for f in frames for k, v in f.replaced_points.items()},
        invalid=[i for f in frames for i in f.invalid],
        coerced=[c for f in frames for c in f.coerced],
    )


__all__ = ["BadRecord", "CoercedRecord", "Frames", "Normalizer", "SkippedRecord", "concat", "content_hash"]
