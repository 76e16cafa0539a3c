"""Ray Tune trial folders: `params.json` (the config) beside `result.json` (JSONL, one line per report).

One trial is one run: `result.json` is its primary file and its lines are the run's history rows.
Quirks of what Ray writes (Ray Tune 2.x, seen in the generated corpus trials):
- Ray's bookkeeping is mixed into every metrics line (`time_this_iter_s`, `pid`, `hostname`,
  `node_ip`, `done`, `date`, `trial_id`, `config` again, ...): it is not a metric. `time_total_s`
  stays one (the trial's cumulative wall time, worth a chart); the host, pid and node are kept in
  the run's meta from the last line;
- reported metrics may be nested dicts (`"val": {"loss": ..}`): flattened to `val_loss` (a subset
  name, so Aim gets `loss` with `{"subset": "val"}`), other nesting to `a/b`;
- the step is `training_iteration`; a user's own `step`/`iteration`/`time`... field would be read
  by the interpreter as the step or the time, so it is kept as a metric named `<field>_reported`;
- `timestamp` is whole epoch seconds (consecutive reports share one): each point's time. The run
  starts at the first report's timestamp minus its `time_total_s`, and ends at the last report;
- `config` repeats `params.json` on every line: hparams come from `params.json`, or from the first
  line's `config` when `params.json` is missing or unreadable (that is reported, the run still read);
- `done` stays false on every line of a function trainable (it is no status); a trial that failed
  leaves `error.txt`, whose text goes to the run's meta with `status: "error"`;
- a restored trial may report an iteration again: the later report wins (Aim keys points by step);
- a torn or unparsable line is a `BadRecord` with its `line N`; the other lines still count.

`params.pkl` and `error.pkl` are claimed and never unpickled: unpickling a file runs code from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.errors import BadRecord
from etl.readers.jsonl import read_jsonl
from etl.readers.jsontext import JSONError, loads, type_name
from etl.readers.record import Record
from etl.readers.steps import STEP_FIELDS, TIME_FIELDS, flatten_row, keep_last_per_step, replaced_points

RAY_TUNE = "ray-tune"
RESULT = "result.json"
PARAMS = "params.json"

# Fields Ray adds to every reported result: run bookkeeping, not metrics.
BOOKKEEPING = frozenset(
    {
        "time_this_iter_s",
        "time_since_restore",
        "iterations_since_restore",
        "timesteps_since_restore",
        "pid",
        "hostname",
        "node_ip",
        "done",
        "date",
        "checkpoint_dir_name",
        "should_checkpoint",
        "trial_id",
        "experiment_id",
        "experiment_tag",
        "warmup_time",
        "config",
        "training_iteration",
        "timestamp",
    }
)
# Bookkeeping kept in the run's meta, from the last report.
_META_FROM_LAST = ("hostname", "node_ip", "pid", "done", "checkpoint_dir_name")
# error.txt is a traceback: its head says when, its tail what failed; a long middle is cut.
_ERROR_HEAD, _ERROR_TAIL = 500, 3500
# Ray's trial folder ends with the trial's creation time: `..._2026-11-24_18-55-10`.
_DATE_SUFFIX = re.compile(r"_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$")

_CLAIMED = {
    PARAMS: "read: the trial's config, with result.json",
    "params.pkl": "pickle: never unpickled; params.json holds the same config",
    "progress.csv": "ignored: result.json has the same data",
    "error.txt": "read: the trial's error, kept in the run's meta",
    "error.pkl": "pickle: never unpickled; error.txt holds the same error",
}
_TFEVENTS = "ignored: a TensorBoard copy of result.json's metrics"
_CHECKPOINT = "a Ray trial checkpoint, not an experiment record"
# Written by Ray in the experiment folder (the trial folders' parent), not by any one trial.
_EXPERIMENT_FILES = (
    (re.compile(r"^experiment_state-.*\.json$"), "Ray Tune experiment state, not a run"),
    (re.compile(r"^basic-variant-state-.*\.json$"), "Ray Tune search state, not a run"),
    (re.compile(r"^search_gen_state-.*\.json$"), "Ray Tune search state, not a run"),
    (re.compile(r"^tuner\.pkl$"), "pickle: never unpickled (Ray Tune's tuner state)"),
    (re.compile(r"^trainable\.pkl$"), "pickle: never unpickled (Ray Tune's trainable)"),
    (re.compile(r"^\.validate_storage_marker$"), "Ray Tune storage marker"),
)


def is_ray_tune(path: Path) -> bool:
    """A `result.json` with a `params.json` beside it: a Ray Tune trial folder. Names only."""
    return path.name == RESULT and (path.parent / PARAMS).is_file()


def claims_ray_tune(path: Path) -> list[Path]:
    """The trial folder's other Ray files: params.json/.pkl, progress.csv, error.txt/.pkl, event
    files and the files of checkpoint folders. A user's own files written there (Ray runs a trial
    in its folder) are not claimed."""
    return [claimed for claimed, _ in claims_with_reasons_ray_tune(path)]


def claims_with_reasons_ray_tune(path: Path) -> list[tuple[Path, str]]:
    """`claims_ray_tune` with why each file is claimed, for the walker's listing."""
    folder = path.parent
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    claimed: list[tuple[Path, str]] = []
    for entry in entries:
        if entry == path:
            continue
        if entry.is_dir() and entry.name.startswith("checkpoint_"):
            claimed.extend((p, _CHECKPOINT) for p in sorted(entry.rglob("*")) if p.is_file())
        elif not entry.is_file():
            continue
        elif entry.name in _CLAIMED:
            claimed.append((entry, _CLAIMED[entry.name]))
        elif entry.name.startswith("events.out.tfevents"):
            claimed.append((entry, _TFEVENTS))
    return claimed


def experiment_file_reason(path: Path) -> str | None:
    """Why a file in a Ray Tune experiment folder (beside the trial folders) is not a run, or None.

    Ray writes its own state there (`experiment_state-*.json`, `tuner.pkl`, ...); read as JSON
    documents they would be imported as runs. Only said of folders holding a trial folder.
    """
    if not any(name.match(path.name) for name, _ in _EXPERIMENT_FILES):
        return None
    try:
        has_trial = any(is_ray_tune(child / RESULT) for child in path.parent.iterdir() if child.is_dir())
    except OSError:
        return None
    if not has_trial:
        return None
    return next(reason for name, reason in _EXPERIMENT_FILES if name.match(path.name))


def read_ray_tune(path: Path, source: str, **_ignored: object) -> Iterator[Record | BadRecord]:
    """One record for the trial: hparams from params.json, history from result.json's lines.

    Keyword arguments (a sync cursor's offset) are accepted and ignored: the trial is one run, so
    its result.json is always read whole.
    """
    folder = path.parent
    config, problem = _read_params(folder / PARAMS)
    if problem is not None:
        yield BadRecord(source, PARAMS, problem)
    lines: list[dict[str, Any]] = []
    first = last = None
    for item in read_jsonl(path, source):
        if isinstance(item, BadRecord):
            yield item
            continue
        lines.append(item.data)
        number = int(item.locator.removeprefix("line "))
        first = number if first is None else first
        last = number
    if config is None:
        line_config = next((ln["config"] for ln in lines if isinstance(ln.get("config"), dict)), None)
        config = dict(line_config) if line_config is not None else {}

    rows: list[dict[str, Any]] = []
    previous = 0
    for line in lines:
        step = line.get("training_iteration")
        step = int(step) if _is_number(step) and math.isfinite(step) else previous + 1
        previous = step
        rows.append(_history_row(line, step))

    trial_id = next((ln["trial_id"] for ln in lines if isinstance(ln.get("trial_id"), str) and ln["trial_id"]), None)
    data: dict[str, Any] = {
        "run_id": trial_id or folder.name,
        "experiment_name": folder.resolve().parent.name,
        "name": _DATE_SUFFIX.sub("", folder.name) or folder.name,
        "config": config,
    }
    if not data["experiment_name"]:
        del data["experiment_name"]
    start, end = _times(lines)
    if start is not None:
        data["timestamp"] = start
    if end is not None:
        data["end_time"] = end
    if lines:
        data.update({k: lines[-1][k] for k in _META_FROM_LAST if lines[-1].get(k) is not None})
    data["trial_dir"] = folder.name
    error = _read_error(folder / "error.txt")
    if error is not None:
        data["status"] = "error"
        data["error"] = error
    if rows:
        data["history"] = keep_last_per_step(rows)
    locator = PARAMS if first is None else f"lines {first}-{last}" if first != last else f"line {first}"
    yield Record(source, locator, RAY_TUNE, data, replaced_points=replaced_points(rows))


def _read_params(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(config or None, what is wrong with params.json or None). Missing is not wrong: the lines' config serves."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot read params.json: {exc.strerror or exc}; using the config of result.json"
    try:
        value = loads(raw)
    except JSONError as exc:
        return None, f"params.json: {exc}; using the config of result.json"
    if not isinstance(value, dict):
        return None, f"params.json: expected object, got {type_name(value)}; using the config of result.json"
    return value, None


def _history_row(line: dict[str, Any], step: int) -> dict[str, Any]:
    """A report as a history row: the step, the report's time, and the reported numbers, flattened."""
    reported = {k: v for k, v in line.items() if k not in BOOKKEEPING}
    row: dict[str, Any] = {"step": step}
    if _is_number(line.get("timestamp")):
        row["timestamp"] = line["timestamp"]
    reserved = {*STEP_FIELDS, *TIME_FIELDS}
    for key, value in flatten_row(reported).items():
        if isinstance(value, bool) or not _is_number(value):
            continue  # strings, lists, nulls: no point to draw
        row[f"{key}_reported" if key.lower() in reserved else key] = value
    return row


def _times(lines: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Start: the first report's time minus the time trained before it. End: the last report's time."""
    stamped = [ln for ln in lines if _is_number(ln.get("timestamp"))]
    if not stamped:
        return None, None
    first, last = stamped[0], stamped[-1]
    start = first["timestamp"]
    total = first.get("time_total_s")
    if _is_number(total) and 0 <= total <= start:
        start = start - total
    return start, last["timestamp"]


def _read_error(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    text = text.strip()
    if len(text) > _ERROR_HEAD + _ERROR_TAIL:
        text = f"{text[:_ERROR_HEAD]}\n...\n{text[-_ERROR_TAIL:]}"
    return text or "error.txt is empty"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
