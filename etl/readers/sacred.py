"""Sacred `FileStorageObserver` run folders: `<basedir>/<id>/run.json` beside config.json and metrics.json.

One folder is one run: `run.json` is the primary file; the reader opens the folder's other files.
What Sacred writes there, and the quirks handled (Sacred 0.7/0.8, seen in the corpus run
`my_runs/3`):
- the folder name is Sacred's run id (`1`, `2`, ... or a `--id` of the user's): the run's id. The
  experiment is `run.json`'s `experiment.name`;
- every time Sacred writes (`start_time`, `stop_time`, `heartbeat` and each metric point's
  timestamp) is `datetime.utcnow().isoformat()`: UTC, but written WITHOUT a zone. Read as naive they
  would be shifted by a `--timezone` meant for other logs and counted as naive; the reader marks
  them `+00:00`, which is what Sacred means by them;
- `config.json` is the run's config (hparams), Sacred's own `seed` included: it is a real setting
  of the run (Sacred seeds the RNGs with it, and `with seed=...` reproduces a run);
- `metrics.json` is `{name: {"steps": [...], "values": [...], "timestamps": [...]}}`, three
  parallel lists per metric: each (metric, step) becomes a history row with that point's own
  timestamp. Names keep their `train`/`val`/`test` prefix (`val.acc`, `train_loss`) so contexts
  come out. A metric named like a row's step, time or epoch field (`log_scalar("epoch", e)`) would
  be read as that field and dropped as a metric: it is kept as `<name>_reported`. Lists of unequal
  length, a non-number step and a non-number value are reported; the metric's other points stay.
  A step logged twice keeps its later value (Aim keys points by step);
- `result` (the main function's return value) goes to the results when it is a number or a dict;
  jsonpickle'd objects (`{"py/object": ...}`) and lists stay in the meta as they are;
- `status` (RUNNING, COMPLETED, FAILED, INTERRUPTED, QUEUED...), `command`, `host`, the
  heartbeat, `meta` (the command line: options, config updates, named configs, comment), the
  source files (`experiment.sources`: stored under the basedir's `_sources/`, not in the run
  folder), dependencies, repositories (Sacred repeats one repository per source file: deduplicated),
  resources, artifacts and a failed run's `fail_trace` are kept in the run's meta, and so are
  run.json keys this reader does not know (`run_json_other`);
- a run still RUNNING (or killed: it never gets a `stop_time`) has no end time; its last heartbeat
  is in the meta;
- `cout.txt` (the captured stdout, progress bars included) is claimed, not imported: its size and
  line count go to the meta. `info.json` (the run's `info` dict) goes to the meta.

A `run.json` that does not parse is reported and the run is still read from the other files, as
is a run with a bad `config.json` or `metrics.json`: bad input is a `BadRecord` naming the file.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.errors import BadRecord
from etl.readers.jsontext import JSONError, loads, read_object, type_name
from etl.readers.record import Record
from etl.readers.steps import STEP_FIELDS, TIME_FIELDS, keep_last_per_step, replaced_points

SACRED = "sacred"
RUN = "run.json"
CONFIG = "config.json"
METRICS = "metrics.json"
COUT = "cout.txt"
INFO = "info.json"

# Keys of run.json that only Sacred writes together; `status`, `meta`, `result` are too common to count.
_SACRED_KEYS = re.compile(
    rb'"(experiment|command|host|start_time|stop_time|heartbeat|artifacts|resources|fail_trace)"\s*:'
)
_PEEK = 1024
# Names a history row's reader takes as the step, the time or the epoch: a metric so named is renamed.
_RESERVED = frozenset({*STEP_FIELDS, *TIME_FIELDS, "epoch"})
# What FileStorageObserver writes in run.json; other keys (another version's) are kept as they are.
_RUN_KEYS = frozenset(
    {
        "artifacts",
        "command",
        "experiment",
        "fail_trace",
        "heartbeat",
        "host",
        "meta",
        "resources",
        "result",
        "start_time",
        "status",
        "stop_time",
    }
)
# A fail_trace is a traceback: its head says where, its tail what failed; a long middle is cut.
_TRACE_HEAD, _TRACE_TAIL = 500, 3500

_CLAIMED = {
    CONFIG: "read: the run's config, with run.json",
    METRICS: "read: the run's metrics, with run.json",
    INFO: "read: the run's info dict, kept in the run's meta",
    COUT: "not imported: the run's captured stdout (its size is kept in the run's meta)",
}
_REPORT = "a report Sacred rendered from its template, not an experiment record"
_ARTIFACT = "a Sacred artifact of the run (listed in run.json), not an experiment record"
_SOURCE_COPY = "a source file Sacred copied for a queued run, not an experiment record"


def is_sacred(path: Path) -> bool:
    """A `run.json` whose first KiB has Sacred's keys: three of them, or one with a config.json or
    metrics.json beside it. A project's own `run.json` (`{"name": .., "lr": ..}`) has none."""
    if path.name != RUN:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(_PEEK)
    except OSError:
        return False
    found = len(set(_SACRED_KEYS.findall(head)))
    if found >= 3:
        return True
    return found >= 1 and ((path.parent / CONFIG).is_file() or (path.parent / METRICS).is_file())


def claims_sacred(path: Path) -> list[Path]:
    """The run folder's other Sacred files: config.json, metrics.json, info.json, cout.txt, a rendered
    `report.*`, the artifacts run.json lists and source copies of a queued run."""
    return [claimed for claimed, _ in claims_with_reasons_sacred(path)]


def claims_with_reasons_sacred(path: Path) -> list[tuple[Path, str]]:
    """`claims_sacred` with why each file is claimed, for the walker's listing."""
    folder = path.parent
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and p != path)
    except OSError:
        return []
    artifacts, sources = _listed_files(path)
    claimed: list[tuple[Path, str]] = []
    for entry in entries:
        if entry.name in _CLAIMED:
            claimed.append((entry, _CLAIMED[entry.name]))
        elif entry.name in artifacts:
            claimed.append((entry, _ARTIFACT))
        elif entry.stem == "report":
            claimed.append((entry, _REPORT))
        elif entry.name in sources:
            claimed.append((entry, _SOURCE_COPY))
    return claimed


def _listed_files(path: Path) -> tuple[set[str], set[str]]:
    """(artifact names, source base names) run.json lists; empty when it does not parse."""
    try:
        run = loads(path.read_bytes())
    except (OSError, JSONError):
        return set(), set()
    if not isinstance(run, dict):
        return set(), set()
    artifacts = {a for a in run.get("artifacts") or () if isinstance(a, str)}
    experiment = run.get("experiment") if isinstance(run.get("experiment"), dict) else {}
    sources = {
        s[0].replace("\\", "/").rsplit("/", 1)[-1]
        for s in experiment.get("sources") or ()
        if isinstance(s, list) and s and isinstance(s[0], str)
    }
    return artifacts, sources


def read_sacred(path: Path, source: str, **_ignored: object) -> Iterator[Record | BadRecord]:
    """One record for the run folder: run.json's description, config.json's hparams, metrics.json's points.

    Keyword arguments (a sync cursor's offset) are accepted and ignored: the folder is one run,
    always read whole.
    """
    folder = path.parent
    run, problem = read_object(path, RUN, primary=True)
    if problem is not None:
        yield BadRecord(source, problem[0], problem[1])
    config, problem = read_object(folder / CONFIG, CONFIG, primary=False)
    if problem is not None:
        yield BadRecord(source, problem[0], problem[1])

    data: dict[str, Any] = {"run_id": folder.resolve().name}
    run = run or {}
    experiment = run.get("experiment") if isinstance(run.get("experiment"), dict) else {}
    name = experiment.get("name")
    data["experiment_name"] = name if isinstance(name, str) and name.strip() else folder.resolve().parent.name
    data["config"] = config or {}
    for key in ("status", "command"):
        if run.get(key) is not None:
            data[key] = run[key]
    if isinstance(run.get("start_time"), str):
        data["timestamp"] = _utc(run["start_time"])
    if isinstance(run.get("stop_time"), str):
        data["end_time"] = _utc(run["stop_time"])
    if isinstance(run.get("heartbeat"), str):
        data["heartbeat"] = _utc(run["heartbeat"])
    if run.get("host") is not None:
        data["host"] = run["host"]
    if isinstance(run.get("meta"), dict):
        data["sacred_meta"] = run["meta"]
    data.update(_experiment_meta(experiment))
    for key in ("artifacts", "resources"):
        if run.get(key):
            data[key] = run[key]
    trace = run.get("fail_trace")
    if isinstance(trace, list) and trace:
        data["fail_trace"] = _cut("".join(str(line) for line in trace))

    other = {k: v for k, v in run.items() if k not in _RUN_KEYS}
    if other:
        data["run_json_other"] = other

    result = run.get("result")
    if _is_number(result):
        data["results"] = {"result": result}
    elif isinstance(result, dict) and result and not any(str(k).startswith("py/") for k in result):
        data["results"] = result
    elif result is not None:
        data["result"] = result

    info, problem = read_object(folder / INFO, INFO, primary=False)
    if problem is not None:
        yield BadRecord(source, problem[0], problem[1])
    if info:
        data["info"] = info
    cout = _cout_size(folder / COUT)
    if cout is not None:
        data["cout"] = cout

    rows: list[dict[str, Any]] = []
    for item in _metric_rows(folder / METRICS, source):
        if isinstance(item, BadRecord):
            yield item
        else:
            rows.append(item)
    if rows:
        data["history"] = keep_last_per_step(rows)
    yield Record(source, "$", SACRED, data, replaced_points=replaced_points(rows))


def _experiment_meta(experiment: dict[str, Any]) -> dict[str, Any]:
    """What run.json's `experiment` says besides its name, for the run's meta."""
    out: dict[str, Any] = {}
    sources = experiment.get("sources")
    if isinstance(sources, list) and sources:
        # [file as the experiment names it, its copy under the basedir's _sources/]
        out["sources"] = [s[0] if isinstance(s, list) and s else s for s in sources]
    repositories = experiment.get("repositories")
    if isinstance(repositories, list) and repositories:
        unique: list[Any] = []
        for repository in repositories:
            if repository not in unique:
                unique.append(repository)
        out["repositories"] = unique
    for key in ("mainfile", "base_dir", "dependencies"):
        if experiment.get(key):
            out[key] = experiment[key]
    return out


def _metric_rows(path: Path, source: str) -> Iterator[dict[str, Any] | BadRecord]:
    """metrics.json as history rows, one per (metric, step), each with its point's own timestamp."""
    metrics, problem = read_object(path, METRICS, primary=False)
    if problem is not None:
        yield BadRecord(source, problem[0], problem[1])
    for name, series in (metrics or {}).items():
        locator = f"{METRICS} $.{name}"
        if not isinstance(series, dict):
            yield BadRecord(source, locator, f"expected object, got {type_name(series)}")
            continue
        lists = {key: series.get(key) for key in ("steps", "values", "timestamps")}
        wrong = [key for key, value in lists.items() if not isinstance(value, list)]
        if "values" in wrong:
            yield BadRecord(source, locator, f"values: expected list, got {type_name(series.get('values'))}")
            continue
        values = lists["values"]
        steps = lists["steps"] if "steps" not in wrong else None
        times = lists["timestamps"] if "timestamps" not in wrong else None
        lengths = [len(values)] + [len(x) for x in (steps, times) if x is not None]
        if wrong or len(set(lengths)) > 1:
            said = ", ".join(f"{key} {len(v) if isinstance(v, list) else type_name(v)}" for key, v in lists.items())
            yield BadRecord(source, locator, f"steps, values and timestamps do not line up ({said})")
        column = f"{name}_reported" if name.lower() in _RESERVED else name
        skipped = 0
        for index, value in enumerate(values):
            if steps is not None and index >= len(steps):
                break
            step = steps[index] if steps is not None else index
            if not _is_number(step) or not math.isfinite(step) or not _is_number(value):
                skipped += 1
                continue
            row: dict[str, Any] = {"step": int(step)}
            if times is not None and index < len(times) and times[index] is not None:
                row["timestamp"] = _utc(times[index])
            row[column] = value
            yield row
        if skipped:
            yield BadRecord(source, locator, f"{skipped} point(s) without a number for step or value, skipped")


def _utc(value: Any) -> Any:
    """A Sacred time (naive ISO, meaning UTC) with its zone said; anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return value + "+00:00" if parsed.tzinfo is None else value


def _cout_size(path: Path) -> dict[str, int] | None:
    """cout.txt's bytes and lines (a last line without a newline counts), read in chunks."""
    try:
        size = lines = 0
        last = b"\n"
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    return {"bytes": size, "lines": lines + (last != b"\n")}


def _cut(text: str) -> str:
    if len(text) > _TRACE_HEAD + _TRACE_TAIL:
        return f"{text[:_TRACE_HEAD]}\n...\n{text[-_TRACE_TAIL:]}"
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
