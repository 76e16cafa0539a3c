"""Aim runs back out: the `runs` and `metrics` frames of `etl.read`, or files a migrate reads back.

Works on any Aim repo, imported or logged live: a run without aim-etl's `etl` param is keyed by
its hash. Runs are read one at a time (`iter_export`), so writing an export keeps memory flat
however large the repo is; only `export` itself, which returns whole frames for a notebook, holds
everything at once.

The JSONL export is one record per run in the EXPERIMENT_LOG shape the interpreter reads:
`run_id`, `experiment_name`, `name`, `timestamp` and `end_time` (ISO 8601, UTC), `config` (the
run's hparams), `tags`, `meta`, and `history`: one row per point, `{"step", "epoch", "time",
"context", <metric name>: value}`. One row per point rather than per step, because two series
of one step may carry different epochs or times. Point times are epoch seconds, exact to the
microsecond as the importer reads them; NaN and ±Infinity are written as JSON's bare
`NaN`/`Infinity`, which the reader takes back as floats.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from etl.errors import EtlError
from etl.normalize import (
    CONTENT_HASH,
    CONTEXT,
    CREATED_AT,
    ENDED_AT,
    EPOCH,
    EXPERIMENT,
    FORMAT,
    HPARAMS,
    LOCATOR,
    META,
    METRIC_COLUMNS,
    NAME,
    RUN_COLUMNS,
    RUN_KEY,
    SOURCE,
    STEP,
    TAGS,
    TIME,
    TIME_SOURCE,
    VALUE,
    Frames,
)

JSONL = "jsonl"
CSV = "csv"
PARQUET = "parquet"
EXPORT_FORMATS = (JSONL, CSV, PARQUET)
# Runs per Parquet row group: the export holds one batch at a time, so memory stays flat.
PARQUET_BATCH = 500
AIM_FORMAT = "aim"


@dataclass(frozen=True)
class ExportedRun:
    """One Aim run as a row of `runs` and its rows of `metrics` (tuples in `METRIC_COLUMNS` order)."""

    run: dict[str, Any]
    points: list[tuple]


@dataclass(frozen=True)
class ExportSummary:
    runs: int
    points: int
    files: tuple[str, ...]


def iter_export(repo: str | Path, query: str | None = None) -> Iterator[ExportedRun]:
    """Each run the AimQL `query` matches (every run without one), read in full, one at a time."""
    from etl.writers.aim_reader import AimReader

    try:
        reader = AimReader(repo)
    except FileNotFoundError as exc:
        raise EtlError(str(exc)) from None
    for run_hash in reader.query(query):
        stored = reader.run(run_hash)
        if stored is None:
            continue
        provenance = stored.provenance or {}
        run = {
            RUN_KEY: run_hash,
            CONTENT_HASH: provenance.get("content_hash", ""),
            SOURCE: str(reader.root),
            LOCATOR: run_hash,
            FORMAT: AIM_FORMAT,
            EXPERIMENT: stored.experiment,
            NAME: stored.name,
            CREATED_AT: _timestamp(stored.creation_time),
            ENDED_AT: _timestamp(stored.end_time),
            HPARAMS: stored.hparams,
            TAGS: list(stored.tags),
            META: stored.meta,
            TIME_SOURCE: AIM_FORMAT,
        }
        points = []
        for (name, context), series in reader.series(run_hash).items():
            for step, value, epoch, time in zip(series.steps, series.values, series.epochs, series.times, strict=True):
                points.append((run_hash, name, context, step, _epoch(epoch), value, time))
        yield ExportedRun(run, points)


def export(repo: str | Path, query: str | None = None) -> Frames:
    """The runs of an Aim repo as the `runs` and `metrics` frames `etl.read` gives for source files."""
    runs, points = [], []
    for item in iter_export(repo, query):
        runs.append(item.run)
        points.extend(item.points)
    runs_frame = pd.DataFrame.from_records(runs, columns=list(RUN_COLUMNS))
    for column in (CREATED_AT, ENDED_AT):
        runs_frame[column] = pd.to_datetime(runs_frame[column], utc=True)
    columns = list(zip(*points, strict=True)) if points else [[] for _ in METRIC_COLUMNS]
    metrics = pd.DataFrame(
        {
            RUN_KEY: pd.Series(columns[0], dtype=object),
            NAME: pd.Series(columns[1], dtype=object),
            CONTEXT: pd.Series(columns[2], dtype=object),
            STEP: pd.Series(columns[3], dtype="int64"),
            EPOCH: pd.Series(columns[4], dtype="Int64"),
            VALUE: pd.Series(columns[5], dtype="float64"),
            TIME: pd.Series(columns[6], dtype="float64"),
        }
    )
    return Frames(runs_frame, metrics)


def write_export(repo: str | Path, to: str | Path, *, query: str | None = None, format: str = JSONL) -> ExportSummary:
    """Write the runs to the folder `to`: `runs.jsonl` (one record per run, which `migrate` reads
    back into equal runs), or `runs.csv` and `metrics.csv` (the two frames, nested values as JSON)."""
    if format not in EXPORT_FORMATS:
        raise EtlError(f"unknown export format {format!r} (one of {', '.join(EXPORT_FORMATS)})")
    folder = Path(to)
    folder.mkdir(parents=True, exist_ok=True)
    runs = points = 0
    if format == JSONL:
        path = folder / "runs.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for item in iter_export(repo, query):
                out.write(json.dumps(to_record(item), ensure_ascii=False) + "\n")
                runs, points = runs + 1, points + len(item.points)
        return ExportSummary(runs, points, (str(path),))
    if format == PARQUET:
        return _write_parquet(repo, folder, query)
    runs_path, metrics_path = folder / "runs.csv", folder / "metrics.csv"
    with (
        runs_path.open("w", newline="", encoding="utf-8") as r,
        metrics_path.open("w", newline="", encoding="utf-8") as m,
    ):
        runs_csv, metrics_csv = csv.writer(r), csv.writer(m)
        runs_csv.writerow(RUN_COLUMNS)
        metrics_csv.writerow(METRIC_COLUMNS)
        for item in iter_export(repo, query):
            runs_csv.writerow([_cell(item.run[c]) for c in RUN_COLUMNS])
            metrics_csv.writerows([_cell(v) for v in row] for row in item.points)
            runs, points = runs + 1, points + len(item.points)
    return ExportSummary(runs, points, (str(runs_path), str(metrics_path)))


def _write_parquet(repo: str | Path, folder: Path, query: str | None) -> ExportSummary:
    """`runs.parquet` and `metrics.parquet`: the two frames, written a batch of runs at a time.

    pyarrow is an optional extra (`pip install 'aim-etl[parquet]'`): it is a large package that
    only this output needs. Nested values (hparams, tags, meta) are JSON text, as in the CSV: their
    shapes differ from run to run, and one Parquet column has one type.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EtlError("--format parquet needs pyarrow: pip install 'aim-etl[parquet]'") from None
    utc = pa.timestamp("us", tz="UTC")
    text = pa.string()
    run_types = {c: text for c in RUN_COLUMNS} | {CREATED_AT: utc, ENDED_AT: utc}
    runs_schema = pa.schema([(c, run_types[c]) for c in RUN_COLUMNS])
    metric_types = {STEP: pa.int64(), EPOCH: pa.int64(), VALUE: pa.float64(), TIME: pa.float64()}
    metrics_schema = pa.schema([(c, metric_types.get(c, text)) for c in METRIC_COLUMNS])
    runs_path, metrics_path = folder / "runs.parquet", folder / "metrics.parquet"
    runs = points = 0
    with pq.ParquetWriter(runs_path, runs_schema) as runs_out, pq.ParquetWriter(metrics_path, metrics_schema) as out:
        batch: list[ExportedRun] = []

        def flush() -> None:
            run_rows = {c: [_parquet_cell(item.run[c]) for item in batch] for c in RUN_COLUMNS}
            runs_out.write_table(pa.table(run_rows, schema=runs_schema))
            columns = list(zip(*(p for item in batch for p in item.points), strict=False))
            point_rows = {c: list(columns[i]) if columns else [] for i, c in enumerate(METRIC_COLUMNS)}
            out.write_table(pa.table(point_rows, schema=metrics_schema))
            batch.clear()

        for item in iter_export(repo, query):
            batch.append(item)
            runs, points = runs + 1, points + len(item.points)
            if len(batch) >= PARQUET_BATCH:
                flush()
        if batch or not runs:
            flush()
    return ExportSummary(runs, points, (str(runs_path), str(metrics_path)))


def _parquet_cell(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, dt.datetime | str):
        return value
    try:
        return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()
    except (TypeError, ValueError):
        return str(value)


def to_record(item: ExportedRun) -> dict[str, Any]:
    """A run as one EXPERIMENT_LOG record: what the interpreter reads as that same run."""
    run = item.run
    history = []
    for _, name, context, step, epoch, value, time in item.points:
        row: dict[str, Any] = {"step": step}
        if epoch is not None:
            row["epoch"] = epoch
        if not math.isnan(time):
            row["time"] = time
        parsed = json.loads(context)
        if parsed:
            row["context"] = parsed
        row[name] = value
        history.append(row)
    record: dict[str, Any] = {
        "run_id": run[RUN_KEY],
        "experiment_name": run[EXPERIMENT],
        "name": run[NAME],
        "timestamp": _iso(run[CREATED_AT]),
        "end_time": _iso(run[ENDED_AT]),
        "config": run[HPARAMS],
        "tags": run[TAGS],
    }
    if run[META]:
        record["meta"] = run[META]
    if history:
        record["history"] = history
    return {k: v for k, v in record.items() if v is not None}


def _timestamp(seconds: float | None) -> dt.datetime | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _epoch(value: Any) -> int | None:
    """Aim reads an epoch back as a float, and a point without one as None (or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return "" if value is None else value
