"""Per-step JSONL training logs: every line is a point of ONE run (`{"step": 100, "loss": 2.1, "lr": 1e-4}`).

Read as EXPERIMENT_LOG-style JSONL (one experiment per line) such a file would become thousands of
one-point runs, so it gets its own format, told apart by its first lines (`is_steps_jsonl`).

Quirks handled, all seen in real logs (Netra-NMT's `train_log.jsonl`):
- epoch-summary lines mixed in with the step lines (`{"epoch": 2, "step": 32926, "train_loss": ...,
  "val_loss": ..., "val_chrf": ...}`) keep their own field names, so their `train_`/`val_` prefixes
  become Aim contexts and a per-step `loss` and an epoch's `train_loss` stay two series. A summary
  line without a step of its own gets the step of the last line before it that had one (step 0 if
  none did): it summarizes what was trained up to there;
- a step logged twice (two lines with `step: 65900`): the later value wins, field by field, because
  Aim keys a series' points by step and a second write there replaces the first. Fields only the
  earlier line had are kept; an earlier line left with no number is dropped;
- nested dicts in a line (`{"val": {"loss": 1}}`), which the interpreter does not read, are
  flattened: `val_loss` under a subset name, `a/b` otherwise;
- a line that does not parse is a `BadRecord` with its `line N` and the rest is kept; a last line
  without a newline is marked `torn` (the trainer may be writing it).

The file is the run: its stem is the run id and its folder the experiment, so a log that grows
updates its run instead of adding one. The whole file is always read (a sync cursor's offset is
ignored): an appended point changes the one run that holds every point.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.errors import BadRecord
from etl.readers.jsonl import read_jsonl
from etl.readers.jsontext import JSONError, loads
from etl.readers.record import Record
from etl.timestamps import parse_timestamp

STEPS = "steps"

# The interpreter's step fields, in its order: the first present one is a row's step.
STEP_FIELDS = ("step", "global_step", "iteration", "training_iteration", "iter")
# The interpreter reads these as a point's time, never as metrics.
TIME_FIELDS = ("timestamp", "time", "wall_time", "wallclock")
# A line carrying one of these is an identified experiment (the interpreter's id fields), not a point.
_ID_FIELDS = frozenset({"experiment_id", "run_id", "id", "trial_id", "uuid"})
# A line holding one of these as a dict or list is a whole experiment record, not a point.
_SECTIONS = frozenset(
    {
        "config",
        "hparams",
        "params",
        "hyperparameters",
        "args",
        "configuration",
        "results",
        "metrics",
        "final",
        "final_metrics",
        "scores",
        "eval_results",
        "test_results",
        "history",
        "per_epoch",
        "curves",
        "training_history",
    }
)
# Subset names: a nested dict under one of them flattens with `_`, so its prefix becomes a context.
SUBSETS = frozenset({"train", "training", "val", "valid", "validation", "test", "eval", "dev"})

_SNIFF_LINES = 20
_SNIFF_BYTES = 256 * 1024
# Share of the sniffed lines that must carry an integer step.
_MOST = 0.8


def is_steps_jsonl(path: Path) -> bool:
    """A per-step log, from its first ~20 lines: most carry an integer step (`step`, `global_step`,
    `iter`, `iteration`), none an id field or a config/results/metrics section, and the steps never
    go down (a repeated step is allowed). EXPERIMENT_LOG-style files have ids and sections: False.
    """
    rows: list[Any] = []
    try:
        with path.open("rb") as fh:
            budget = _SNIFF_BYTES
            while len(rows) < _SNIFF_LINES and budget > 0:
                raw = fh.readline(budget)
                if not raw:
                    break
                budget -= len(raw)
                text = raw.strip().removeprefix(b"\xef\xbb\xbf")
                if not text:
                    continue
                try:
                    rows.append(loads(text))
                except JSONError:
                    continue  # a torn or bad line says nothing either way; the others decide
    except OSError:
        return False
    if not rows or not all(isinstance(r, dict) for r in rows):
        return False
    steps: list[int] = []
    for row in rows:
        keys = {k.lower(): v for k, v in row.items()}
        if _ID_FIELDS & keys.keys():
            return False
        if any(k in _SECTIONS and isinstance(v, dict | list) for k, v in keys.items()):
            return False
        step = next((v for k, v in keys.items() if k in STEP_FIELDS and _is_int(v)), None)
        if step is not None:
            steps.append(step)
    if len(steps) < _MOST * len(rows):
        return False
    return all(a <= b for a, b in zip(steps, steps[1:], strict=False))


is_steps = is_steps_jsonl


def claims_steps(path: Path) -> list[Path]:
    """A step log is self-contained: it reads no sibling file."""
    return []


def read_steps(path: Path, source: str, **_ignored: object) -> Iterator[Record | BadRecord]:
    """One record for the whole file, its lines as history rows; bad lines are yielded as `BadRecord`s.

    Keyword arguments (a sync cursor's `start_offset`, `start_line`) are accepted and ignored: the
    run is the whole file, so it is always read from its first line.
    """
    rows: list[dict[str, Any]] = []
    first = last = None
    last_step = 0
    for item in read_jsonl(path, source):
        if isinstance(item, BadRecord):
            yield item
            continue
        row = flatten_row(item.data)
        step_key = step_field(row)
        if step_key is None:
            row["step"] = last_step
        elif _is_number(row[step_key]) and math.isfinite(row[step_key]):
            last_step = int(row[step_key])
        else:
            yield BadRecord(source, item.locator, f"{step_key} is not a number: {row[step_key]!r}")
            continue
        rows.append(row)
        line = int(item.locator.removeprefix("line "))
        first = line if first is None else first
        last = line
    if first is None:
        return
    data: dict[str, Any] = {"run_id": Path(source).stem, "experiment_name": path.resolve().parent.name}
    times = _point_times(rows)
    if times:
        data["timestamp"], data["end_time"] = times[0], times[-1]
    data["history"] = keep_last_per_step(rows)
    if not data["experiment_name"]:
        del data["experiment_name"]
    yield Record(source, f"lines {first}-{last}" if first != last else f"line {first}", STEPS, data)


def step_field(row: dict[str, Any]) -> str | None:
    """The key the interpreter takes a row's step from, if the row has one that is not null."""
    lowered = {k.lower(): k for k in row}
    for name in STEP_FIELDS:
        key = lowered.get(name)
        if key is not None and row[key] is not None:
            return key
    return None


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts lifted to the top: `{"val": {"loss": 1}}` -> `val_loss`, `{"a": {"b": 1}}` -> `a/b`.

    The interpreter reads only a row's top-level numbers; without this a nested metric is lost.
    """
    if not any(isinstance(v, dict) for v in row.values()):
        return dict(row)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            _flatten_into(out, key, value, "_" if key.lower() in SUBSETS else "/")
        else:
            out[key] = value
    return out


def _flatten_into(out: dict[str, Any], prefix: str, value: dict[str, Any], sep: str) -> None:
    for key, inner in value.items():
        name = f"{prefix}{sep}{key}"
        if isinstance(inner, dict):
            _flatten_into(out, name, inner, "/")
        else:
            out[name] = inner


def keep_last_per_step(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows where a metric logged twice at one step keeps only its later value.

    Aim keys a series' points by step, so a second write at a step replaces the first: doing it
    here makes the result independent of the writer's order. Only the fields the later row has are
    taken from the earlier one (an epoch summary and a step line at one step both stay); an
    earlier row left without a number is dropped.
    """
    by_step: dict[int, list[int]] = {}
    kept: list[dict[str, Any] | None] = []
    for row in rows:
        step = _row_step(row)
        metrics = _metric_keys(row)
        for index in by_step.get(step, ()):
            earlier = kept[index]
            if earlier is None:
                continue
            for key in metrics & earlier.keys():
                del earlier[key]
            if not _metric_keys(earlier):
                kept[index] = None
        by_step.setdefault(step, []).append(len(kept))
        kept.append(dict(row))
    return [row for row in kept if row is not None]


def _row_step(row: dict[str, Any]) -> int | None:
    key = step_field(row)
    if key is None or not _is_number(row[key]) or not math.isfinite(row[key]):
        return None
    return int(row[key])


def _metric_keys(row: dict[str, Any]) -> set[str]:
    """Fields the interpreter turns into points: numbers other than the step, time and an int epoch."""
    skip = {*STEP_FIELDS, *TIME_FIELDS}
    return {
        k
        for k, v in row.items()
        if _is_number(v) and k.lower() not in skip and not (k.lower() == "epoch" and not isinstance(v, float))
    }


def _point_times(rows: list[dict[str, Any]]) -> list[Any]:
    """The lines' point times, raw, in file order: the first and last are the run's start and end."""
    times = []
    for row in rows:
        lowered = {k.lower(): k for k in row}
        for name in TIME_FIELDS:
            key = lowered.get(name)
            if key is not None and parse_timestamp(row[key])[0] is not None:
                times.append(row[key])
                break
    return times


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
