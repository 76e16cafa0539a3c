"""Frame rows to `RunSpec`s: exactly what one Aim run will hold, as frozen values.

Pure: no Aim, no I/O. The writer does what a spec says and nothing else, so a dry run and a real
run see the same specs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from etl import __version__
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
    NAME,
    RUN_KEY,
    SOURCE,
    STEP,
    TAGS,
    TIME,
    TIME_SOURCE,
    VALUE,
    Frames,
)
from etl.storable import EMPTY_KEY, make_storable


@dataclass(frozen=True)
class MetricSeries:
    name: str
    context: dict[str, Any]
    steps: tuple[int, ...]
    epochs: tuple[int | None, ...]
    values: tuple[float, ...]
    times: tuple[float, ...]


@dataclass(frozen=True)
class RunSpec:
    run_key: str
    run_hash: str
    record_id: str | None
    occurrence: int
    content_hash: str
    source: str
    locator: str
    experiment: str
    name: str | None
    created_at: dt.datetime | None
    end_time: float | None
    hparams: dict[str, Any]
    tags: tuple[str, ...]
    meta: dict[str, Any]
    provenance: dict[str, Any]
    series: tuple[MetricSeries, ...]
    # `run["validation"]` when the import checks rules (`--rules`); its status tag is in `tags`.
    validation: dict[str, Any] | None = None

    @property
    def points(self) -> int:
        return sum(len(s.steps) for s in self.series)


def map_runs(frames: Frames, to_write: dict[str, tuple[str, str]], batch: str) -> Iterator[RunSpec]:
    """One spec per row of `frames.runs` the plan writes: `to_write` maps a row's key to the run key
    and hash it is written under (they differ only when an edit becomes a run of its own)."""
    series_by_run = _series_by_run(frames.metrics, set(to_write))
    mapped: set[str] = set()
    for row in frames.runs.itertuples(index=False):
        frame_key = getattr(row, RUN_KEY)
        if frame_key not in to_write or frame_key in mapped:  # an exact duplicate line shares its original's key
            continue
        mapped.add(frame_key)
        key, run_hash = to_write[frame_key]
        record_id, occurrence = frames.identities.get(frame_key, (None, 1))
        created = _datetime(getattr(row, CREATED_AT))
        series = series_by_run.get(frame_key, ())
        fallback_time = created.timestamp() if created else None
        series = tuple(_with_times(s, fallback_time) for s in series)
        yield RunSpec(
            run_key=key,
            run_hash=run_hash,
            record_id=record_id,
            occurrence=occurrence,
            content_hash=getattr(row, CONTENT_HASH),
            source=getattr(row, SOURCE),
            locator=getattr(row, LOCATOR),
            experiment=getattr(row, EXPERIMENT),
            name=_none_if_na(getattr(row, NAME)),
            created_at=created,
            end_time=_end_time(_datetime(getattr(row, ENDED_AT)), created, series),
            hparams=sanitize(getattr(row, HPARAMS)),
            tags=tuple(getattr(row, TAGS)),
            meta=sanitize(getattr(row, META)),
            provenance={
                "source": getattr(row, SOURCE),
                "locator": getattr(row, LOCATOR),
                "format": getattr(row, FORMAT),
                "run_key": key,
                "record_id": record_id,
                "occurrence": occurrence,
                "content_hash": getattr(row, CONTENT_HASH),
                "batch": batch,
                "tool_version": __version__,
                "created_at": created.isoformat() if created else None,
                # Which evidence dated the run when its record had no time (`etl.dating`).
                "time_source": getattr(row, TIME_SOURCE),
            },
            series=series,
        )


def sanitize(value: Any) -> Any:
    """Make a JSON value storable as an Aim param.

    A record's values are storable already (`etl.storable`, when it was normalized); what is left
    is the empty key, which Aim cannot store, renamed `(empty)`. Dict keys are otherwise kept as
    written (Aim accepts `@`, `.` and `/`). Done by the same iterative walk, so a value that did
    not come through normalization (a notebook's own frames) cannot recurse too deep here either.
    """
    return make_storable(value, empty_key=EMPTY_KEY)[0]


def _series_by_run(metrics: pd.DataFrame, keys: set[str]) -> dict[str, tuple[MetricSeries, ...]]:
    if metrics.empty:
        return {}
    wanted = metrics[metrics[RUN_KEY].isin(keys)]
    # Trainers re-log a step after resuming: the last value logged for a step is the one kept,
    # as Aim itself would keep it (a point is keyed by its step).
    wanted = wanted.drop_duplicates([RUN_KEY, NAME, CONTEXT, STEP], keep="last")
    if wanted.empty:
        return {}
    # One series per (run, name, context), numbered in order of first appearance, its points by
    # step: one sort of the whole frame and one conversion per column, then slices (a pandas group
    # per series cost ~7 ms a run, most of mapping a medium log).
    group = wanted.groupby([RUN_KEY, NAME, CONTEXT], sort=False).ngroup().to_numpy()
    step_column = wanted[STEP].to_numpy()
    order = np.lexsort((step_column, group))
    group = group[order]
    bounds = (np.flatnonzero(np.diff(group)) + 1).tolist()
    steps = step_column[order].tolist()
    values = wanted[VALUE].to_numpy()[order].tolist()
    times = wanted[TIME].to_numpy()[order].tolist()
    missing = wanted[EPOCH].isna().to_numpy()[order]
    epochs = wanted[EPOCH].fillna(0).to_numpy(dtype="int64")[order].tolist()
    if missing.any():
        epochs = [None if gap else epoch for epoch, gap in zip(epochs, missing.tolist(), strict=True)]
    run_keys = wanted[RUN_KEY].to_numpy()[order]
    names = wanted[NAME].to_numpy()[order]
    contexts = wanted[CONTEXT].to_numpy()[order]
    out: dict[str, list[MetricSeries]] = {}
    for start, end in zip([0, *bounds], [*bounds, len(group)], strict=True):
        out.setdefault(run_keys[start], []).append(
            MetricSeries(
                name=names[start],
                context=orjson.loads(contexts[start]),
                steps=tuple(steps[start:end]),
                epochs=tuple(epochs[start:end]),
                values=tuple(values[start:end]),
                times=tuple(times[start:end]),
            )
        )
    return {k: tuple(v) for k, v in out.items()}


def _with_times(series: MetricSeries, fallback: float | None) -> MetricSeries:
    """Points without a time of their own get the run's original time, never the import time."""
    if fallback is None or not any(math.isnan(t) for t in series.times):
        return series
    times = tuple(fallback if math.isnan(t) else t for t in series.times)
    return MetricSeries(series.name, series.context, series.steps, series.epochs, series.values, times)


def _end_time(ended: dt.datetime | None, created: dt.datetime | None, series: tuple[MetricSeries, ...]) -> float | None:
    """The source's own end; else its last point's time; else its creation (duration 0), never "now"."""
    if ended is not None:
        return ended.timestamp()
    times = [t for s in series for t in s.times if not math.isnan(t)]
    if times:
        return max(times)
    return created.timestamp() if created else None


def _datetime(value: Any) -> dt.datetime | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime()


def _none_if_na(value: Any) -> Any:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    return value
