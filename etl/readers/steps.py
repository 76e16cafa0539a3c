"""Per-step training logs: JSON lines (or one JSON array) whose entries are the points of a run.

Read as EXPERIMENT_LOG-style JSONL (one experiment per line) such a file would become thousands of
one-point runs, so it gets its own format, told apart by its shape (`is_steps_rows`), not its name:
the entries share keys, and a counter runs up through them. The same rules then split the file into
runs and points, so what detection accepts is what the reader reads:

- the counter is the first of `COUNTERS` that most entries carry as an integer (`step`,
  `global_step`, `total_timesteps` or `<group>/total_timesteps`, `iteration`, `iter`, `epoch`, ...):
  it becomes the Aim step, and an integer `epoch` the Aim epoch;
- a counter that goes down while `epoch` goes up counts iterations within an epoch (MMCV's
  `*.log.json`: `iter` restarts every epoch): the step keeps counting across epochs (the last
  logged iteration of each epoch is added to the next), so it stays monotone;
- a counter that goes back to where its run started (or below) is a new training appended to the
  same file (Detectron2's `metrics.json` after a restart): a run of its own, `<stem>#2`, `<stem>#3`;
  one that goes back part-way is a resume from a checkpoint (Detectron2 again, 5878 -> 5519): the
  same run, whose re-logged steps replace the earlier points there;
- a `mode`/`phase`/`split` string is the entry's context (`{"mode": "val", ...}` -> the interpreter's
  `{"subset": "val"}`), so a train and a val `loss` stay two series;
- entries of another loop than the one that carries the counter take the step of the last training
  entry before them (and so do entries without any counter, such as an epoch summary), because
  their own counter is not on the step's scale: another `mode` (MMCV's val entries carry
  `iter` = the val set's length), or fewer counters than the training entries (MMEngine's
  `vis_data/scalars.json` validation lines carry only `step` = the epoch, beside training lines with
  `epoch`, `iter` and `step`). Such a counter equal to the last training entry's epoch is the
  epoch. Without a mode those entries are the validation loop's (the only other loop that writes
  into a training log; a test loop writes its own file), so they get `{"subset": "val"}`;
- a line without a counter before a run's first point that holds text or sections (MMCV's header
  line: `env_info`, the `config` text, `seed`) is the run's params; a later one with a config
  section is a new training's header, so it starts a new run;
- a number `time` too small to be a date is a duration (seconds per iteration in MMCV, MMEngine and
  Detectron2 logs): kept as the metric `iter_time`, because the interpreter reads `time` as a
  point's timestamp. A `time` that is a date stays the point's time.

Quirks kept from Netra-NMT's `train_log.jsonl` (the corpus log):
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

The file is the run (or its runs): its stem is the run id, `#2`, `#3` after it for later trainings,
and the experiment is the first folder above it that is not a tool's generic one (`vis_data`, `logs`,
`result`, `output`, a timestamp folder such as `20230609_075749`): MMEngine's
`work_dirs/<config>/<timestamp>/vis_data/scalars.json` belongs to `<config>`. A log that grows
updates its runs instead of adding some. The whole file is always read (a sync cursor's offset is
ignored): an appended point changes the run that holds every point.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import BadRecord
from etl.readers.jsonl import read_jsonl
from etl.readers.jsontext import JSONError, loads, type_name
from etl.readers.record import Record
from etl.timestamps import parse_timestamp

STEPS = "steps"

# The interpreter's step fields, in its order: the first present one is a row's step.
STEP_FIELDS = ("step", "global_step", "iteration", "training_iteration", "iter")
# The interpreter reads these as a point's time, never as metrics.
TIME_FIELDS = ("timestamp", "time", "wall_time", "wallclock")
# Counters a training log runs up, in the order one is chosen when a line carries several: a step
# before an iteration count (MMEngine's `step` is the global one, its `iter` too), an iteration
# before the epoch. `<group>/<name>` counts as `<name>` (Stable-Baselines3's `time/total_timesteps`).
COUNTERS = (
    "step",
    "global_step",
    "total_timesteps",
    "timesteps_total",
    "iteration",
    "training_iteration",
    "iter",
    "epoch",
)
# A string field naming the loop an entry comes from: its value is the entry's subset.
MODE_FIELDS = ("mode", "phase", "split")
# Entries of another loop that name none: a training log's other loop is its validation.
OTHER_LOOP_SUBSET = "val"
# What a duration `time` is called: the interpreter would take `time` for the point's timestamp.
DURATION_NAME = "iter_time"
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
# A header line holding one of these starts a training, even after another one's points.
_HEADER_SECTIONS = frozenset({"config", "env_info", "args", "hparams", "params", "hyperparameters", "configuration"})
# Subset names: a nested dict under one of them flattens with `_`, so its prefix becomes a context.
SUBSETS = frozenset({"train", "training", "val", "valid", "validation", "test", "eval", "dev"})
# Folders tools write their logs into, named after the tool's habit, not the experiment.
GENERIC_FOLDERS = frozenset(
    {"vis_data", "log", "logs", "result", "results", "output", "outputs", "work_dir", "work_dirs", "runs"}
)
# `20230609_075749`, `20230609-075749`, `2023-06-09`, `2023-06-09_07-57-49`: a run's start, not its name.
_TIMESTAMP_FOLDER = re.compile(r"^(\d{8}[_-]?\d{6}|\d{4}-\d{2}-\d{2}([_T -]\d{2}[-:]?\d{2}[-:]?\d{2})?)$")

_SNIFF_LINES = 20
_SNIFF_BYTES = 256 * 1024
# Share of the sniffed entries that must carry the counter.
_MOST = 0.8
# A training appended before another one logged at least this many points.
_MIN_RUN_POINTS = 3


def is_steps_jsonl(path: Path) -> bool:
    """A per-step log in JSON lines, judged from its first ~20 lines by `is_steps_rows`."""
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
    return is_steps_rows(rows)


is_steps = is_steps_jsonl


def is_steps_rows(rows: list[Any]) -> bool:
    """A log's first entries are the points of runs: all objects; a header first at most; no id field
    or config/results section after it; most carry the counter (`COUNTERS`), whose values mostly
    differ; no free text in most of them (a table of runs names its rows); and the counter only goes
    down to start a new training that follows one of at least three points, to resume from a
    checkpoint now and then, or at a new epoch. EXPERIMENT_LOG-style files have ids and sections.
    """
    if not rows or not all(isinstance(r, dict) for r in rows):
        return False
    if _is_header(rows[0]):
        rows = rows[1:]
    if not rows:
        return False
    for row in rows:
        keys = {k.lower(): v for k, v in row.items()}
        if _ID_FIELDS & keys.keys():
            return False
        if any(k in _SECTIONS and isinstance(v, dict | list) for k, v in keys.items()):
            return False
    flat = [flatten_row(row) for row in rows]
    counter = choose_counter(flat)
    if counter is None:
        return False
    carried = sum(1 for row in flat if _counter_of(row, counter) is not None)
    if carried < _MOST * len(rows):
        return False
    if sum(1 for row in flat if _has_free_text(row)) * 2 > len(flat):
        return False
    plan = _plan(flat, counter)
    counted = sum(len(run.counted) for run in plan.runs)
    steps = {(number, step) for number, run in enumerate(plan.runs) for step in run.steps}
    if len(steps) * 2 < counted:
        return False  # the counter hardly moves: a column of a table, not a log's step
    if any(len(run.counted) < _MIN_RUN_POINTS for run in plan.runs[:-1]):
        return False
    return plan.resumes * 3 < counted


def claims_steps(path: Path) -> list[Path]:
    """A step log is self-contained: it reads no sibling file."""
    return []


def read_steps(path: Path, source: str, **_ignored: object) -> Iterator[Record | BadRecord]:
    """One record per run in the file, its entries as history rows; bad lines are yielded as `BadRecord`s.

    Keyword arguments (a sync cursor's `start_offset`, `start_line`) are accepted and ignored: a
    run is the whole file or a part of it, so it is always read from its first line.
    """
    locators: list[str] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    # (position in the file, problem): yielded in file order once the counter is known
    bad: list[tuple[int, BadRecord]] = []
    for position, item in enumerate(_entries(path, source)):
        if isinstance(item, BadRecord):
            bad.append((position, item))
            continue
        locators.append(item.locator)
        rows.append((position, item.data))
    counter = choose_counter([flatten_row(r) for _, r in rows if not _is_header(r)])
    plan = _plan([r for _, r in rows], counter, raw=True)
    bad += [(rows[index][0], BadRecord(source, locators[index], reason)) for index, reason in plan.bad]
    for _, item in sorted(bad, key=lambda pair: pair[0]):
        yield item
    stem = Path(source).stem
    experiment = experiment_folder(path)
    ordinal = 0
    for run in plan.runs:
        if not run.rows and not run.params:
            continue
        ordinal += 1
        data: dict[str, Any] = {"run_id": stem if ordinal == 1 else f"{stem}#{ordinal}"}
        if experiment:
            data["experiment_name"] = experiment
        if run.params:
            data["hparams"] = run.params
        times = _point_times(run.rows)
        if times:
            data["timestamp"], data["end_time"] = times[0], times[-1]
        data["history"] = keep_last_per_step(run.rows)
        first, last = locators[run.indexes[0]], locators[run.indexes[-1]]
        yield Record(source, _span(first, last), STEPS, data, replaced_points=replaced_points(run.rows))


def experiment_folder(path: Path) -> str:
    """The first folder above the file that names the experiment rather than the tool's habit.

    Tools log into folders of their own naming (`vis_data`, `logs`, `result`, `output`) and into a
    folder per start time (`20230609_075749`); the experiment is the folder above those (MMEngine's
    config folder). When every folder above is such a one, the file's own folder.
    """
    folders = path.resolve().parents
    for folder in folders:
        name = folder.name
        if not name:
            break
        if name.lower() not in GENERIC_FOLDERS and not _TIMESTAMP_FOLDER.match(name):
            return name
    return path.resolve().parent.name


def choose_counter(rows: list[dict[str, Any]]) -> str | None:
    """The counter of a log: the first of `COUNTERS` at least half the entries carry as an integer,
    else the one carried most; None when no entry carries one."""
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(_counters(row).keys())
    if not counts:
        return None
    for name in COUNTERS:
        if counts[name] * 2 >= len(rows):
            return name
    return max(COUNTERS, key=lambda name: counts[name])


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
    """Iteratively, in the dict's order: a line nested thousands of levels deep must not end the
    import with a RecursionError (the interpreter then keeps a too-deep value as its JSON text)."""
    stack = [(prefix, value, sep)]
    while stack:
        prefix, value, sep = stack.pop()
        nested = []
        for key, inner in value.items():
            name = f"{prefix}{sep}{key}"
            if isinstance(inner, dict):
                nested.append((name, inner, "/"))
            else:
                out[name] = inner
        stack.extend(reversed(nested))


def replaced_points(rows: list[dict[str, Any]]) -> int:
    """How many values `keep_last_per_step` drops: a metric logged again at a step with another value."""
    seen: dict[tuple[int | None, str], Any] = {}
    replaced = 0
    for row in rows:
        step = _row_step(row)
        for key in _metric_keys(row):
            earlier = seen.get((step, key), _UNSEEN)
            if earlier is not _UNSEEN and not _same(earlier, row[key]):
                replaced += 1
            seen[(step, key)] = row[key]
    return replaced


_UNSEEN = object()


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


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


# --- reading entries ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    locator: str
    data: dict[str, Any]


def _entries(path: Path, source: str) -> Iterator[_Entry | BadRecord]:
    """The file's objects in order: JSON lines, or the elements of one JSON array (Chainer's
    `LogReport` writes the whole log as an indented array, rewritten at every report)."""
    if _first_byte(path) == b"[":
        try:
            document = loads(path.read_bytes())
        except JSONError as exc:
            yield BadRecord(source, f"line {exc.line}" if exc.line else "$", str(exc))
            return
        if not isinstance(document, list):
            yield BadRecord(source, "$", f"expected a list, got {type_name(document)}")
            return
        for index, value in enumerate(document):
            if isinstance(value, dict):
                yield _Entry(f"$[{index}]", value)
            else:
                yield BadRecord(source, f"$[{index}]", f"expected object, got {type_name(value)}")
        return
    for item in read_jsonl(path, source):
        yield item if isinstance(item, BadRecord) else _Entry(item.locator, item.data)


def _first_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(1024).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head[:1]


def _span(first: str, last: str) -> str:
    if first == last:
        return first
    if first.startswith("line ") and last.startswith("line "):
        return f"lines {first.removeprefix('line ')}-{last.removeprefix('line ')}"
    return f"{first}-{last}"


# --- runs and points ---------------------------------------------------------------------------


@dataclass
class _Run:
    params: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    # Indexes of the entries whose counter placed them (not those that took the last step).
    counted: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    first_raw: int | None = None
    last_raw: int | None = None
    last_epoch: int | None = None
    last_step: int = 0
    offset: int = 0


@dataclass
class _Plan:
    runs: list[_Run]
    resumes: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def _plan(rows: list[dict[str, Any]], counter: str | None, *, raw: bool = False) -> _Plan:
    """Entries to runs of points, by the rules in the module docstring. With `raw`, entries are as
    read (headers recognised before nested dicts are flattened); otherwise already flattened."""
    flat = [flatten_row(r) if raw and not _is_header(r) else r for r in rows]
    main = _main_kind(flat, counter)
    plan = _Plan([_Run()])
    run = plan.runs[0]
    for index, (original, row) in enumerate(zip(rows, flat, strict=True)):
        if _is_header(original) and (not run.rows or _has_header_section(original)):
            if run.rows:
                run = _Run()
                plan.runs.append(run)
            run.params.update(original)
            run.indexes.append(index)
            continue
        mode = _mode(row)
        counters = _counters(row)
        other = _other_loop(mode, counters, main)
        epoch = counters.get("epoch", (None, None))[1]
        value = None
        if counter is not None and not other:
            key = _key_of(row, counter)
            if key is not None and row[key] is not None:
                if not _is_number(row[key]) or not math.isfinite(row[key]):
                    plan.bad.append((index, f"{key} is not a number: {row[key]!r}"))
                    continue
                value = int(row[key])
        if value is not None:
            if run.last_raw is not None and value < run.last_raw:
                if epoch is not None and run.last_epoch is not None and epoch > run.last_epoch:
                    run.offset += run.last_raw  # an iteration count within the epoch: keep counting
                elif value <= run.first_raw:
                    run = _Run()  # back to the start: a new training appended to the file
                    plan.runs.append(run)
                else:
                    plan.resumes += 1  # part-way back: resumed from a checkpoint
            if run.first_raw is None:
                run.first_raw = value
            run.last_raw = value
            run.last_step = run.offset + value
            if epoch is not None:
                run.last_epoch = epoch
            run.counted.append(index)
            run.steps.append(run.last_step)
            step = run.last_step
        else:
            step = run.last_step
            if other and epoch is None:
                own = [v for name, (_, v) in counters.items() if name != "epoch"]
                if own and own[0] == run.last_epoch:
                    epoch = own[0]  # MMEngine's validation `step` is the epoch it validated
        subset = mode or (OTHER_LOOP_SUBSET if other else None)
        run.rows.append(_point(row, step, epoch, subset, counter))
        run.indexes.append(index)
    return plan


def _main_kind(rows: list[dict[str, Any]], counter: str | None) -> tuple[str | None, frozenset[str]] | None:
    """The training loop's kind of entry (its mode and the counters it carries): the most common kind
    that carries the counter; at a tie the one carrying more counters (MMEngine writes one training
    and one validation line per epoch when it logs once an epoch)."""
    if counter is None:
        return None
    kinds: Counter[tuple[str | None, frozenset[str]]] = Counter()
    for row in rows:
        if _is_header(row):
            continue
        names = frozenset(_counters(row))
        if counter in names:
            kinds[(_mode(row), names)] += 1
    if not kinds:
        return None
    return max(kinds, key=lambda kind: (kinds[kind], len(kind[1])))


def _other_loop(
    mode: str | None, counters: dict[str, tuple[str, int]], main: tuple[str | None, frozenset[str]] | None
) -> bool:
    """An entry of another loop than the training one: another mode, or only some of its counters."""
    if main is None or not counters:
        return False
    main_mode, main_names = main
    if mode != main_mode:
        return True
    return frozenset(counters) < main_names


def _point(
    row: dict[str, Any], step: int, epoch: int | None, subset: str | None, counter: str | None
) -> dict[str, Any]:
    """A history row the interpreter reads: `step`, `epoch`, the point's time and its metrics.

    Counters are dropped (they are the step and epoch now), a duration `time` is renamed, and with a
    subset every metric is prefixed `<subset>_` (the interpreter's context prefix) unless it has one.
    """
    out: dict[str, Any] = {"step": step}
    if epoch is not None:
        out["epoch"] = epoch
    drop = {k for k in row if k.lower() in STEP_FIELDS or k.lower() in MODE_FIELDS or k.lower() == "epoch"}
    counter_key = _key_of(row, counter) if counter else None
    if counter_key is not None:
        drop.add(counter_key)
    for key, value in row.items():
        if key in drop:
            if key.lower() == "epoch" and not _is_int(value) and _is_number(value):
                out[key] = value  # a fractional epoch (0.5) is a metric the interpreter also reads
            continue
        name = key
        if key.lower() == "time" and _is_number(value) and parse_timestamp(value)[0] is None:
            name = DURATION_NAME
        if subset and _is_number(value) and name.lower() not in TIME_FIELDS and not _has_subset_prefix(name):
            name = f"{subset}_{name}"
        out[name] = value
    return out


def _has_subset_prefix(name: str) -> bool:
    for sep in ("_", "/", "."):
        head, found, rest = name.partition(sep)
        if found and rest and head.lower() in SUBSETS:
            return True
    return False


def _is_header(row: dict[str, Any]) -> bool:
    """A line that describes the run instead of measuring it: no counter and no mode, and text or
    sections in it (MMCV's first line: `env_info`, the `config` text, `seed`, `exp_name`)."""
    if _counters(row) or _mode(row):
        return False
    return any(isinstance(value, str | dict | list) and key.lower() not in TIME_FIELDS for key, value in row.items())


def _has_header_section(row: dict[str, Any]) -> bool:
    return any(key.lower() in _HEADER_SECTIONS for key in row)


def _has_free_text(row: dict[str, Any]) -> bool:
    """Text other than a mode or a time: the names and notes of a table of runs."""
    return any(
        isinstance(value, str) and key.lower() not in MODE_FIELDS and key.lower() not in TIME_FIELDS
        for key, value in row.items()
    )


def _mode(row: dict[str, Any]) -> str | None:
    for key, value in row.items():
        if key.lower() in MODE_FIELDS and isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _counters(row: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Counter name -> (key, integer value) for the counters a row carries; a full key
    (`total_timesteps`) wins over a grouped one (`time/total_timesteps`)."""
    found: dict[str, tuple[str, int]] = {}
    grouped: dict[str, tuple[str, int]] = {}
    for key, value in row.items():
        if not _is_int(value):
            continue
        lowered = key.lower()
        if lowered in COUNTERS:
            found[lowered] = (key, value)
        else:
            tail = lowered.rsplit("/", 1)[-1]
            if tail != lowered and tail in COUNTERS:
                grouped.setdefault(tail, (key, value))
    return {**grouped, **found}


def _counter_of(row: dict[str, Any], counter: str) -> int | None:
    found = _counters(row).get(counter)
    return None if found is None else found[1]


def _key_of(row: dict[str, Any], counter: str) -> str | None:
    """The row's key for a counter, whatever its value (to report a counter that is no number)."""
    found = _counters(row).get(counter)
    if found is not None:
        return found[0]
    for key in row:
        lowered = key.lower()
        if lowered == counter or lowered.rsplit("/", 1)[-1] == counter:
            return key
    return None


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
