"""W&B run folders: `wandb/run-<YYYYMMDD_HHMMSS>-<id>/files/wandb-summary.json`, the run's final values.

One run folder is one run, with its summary as the primary file. Quirks of what the W&B client
writes (seen in the corpus run `run-20231210_175258-gu7xnmg8`, written by wandb 0.16):
- the summary is one JSON object of the last value logged under each name: the run's final
  numbers, imported as results. Names keep their `/` (`Eval/3/episodic_return`, `train/loss`);
  Aim accepts it, and a leading `train`/`val`/`eval`/`test` segment becomes a context as anywhere.
  W&B users capitalize that segment to title a panel section (`Eval/<i>/...` in the corpus run):
  it is lowercased (`eval/3/episodic_return` -> `3/episodic_return` with `{"subset": "eval"}`), so
  the context is the `eval` every other reader's `eval_` prefix gives, not a second `Eval` one. A
  name whose lowercased form the summary also holds keeps its case, so neither value is lost;
- the keys starting with `_` are W&B's bookkeeping, not metrics: `_step` (the last step),
  `_runtime` (seconds run), `_timestamp` (epoch seconds of the last log) and `_wandb`
  (`{"runtime": ...}`). They are kept in the run's meta under `wandb`. `_timestamp` is the run's
  end, and `_timestamp - _runtime` its start;
- a value logged as a dict is nested in the summary (`{"val": {"loss": ..}}`, `define_metric`
  summaries `{"loss": {"min": ..}}`): flattened, `val_loss` under a subset name, `loss/min` else.
  Media, histograms and tables are dicts with a `_type` (`{"_type": "histogram", "bins": [..]}`):
  not numbers, kept in the meta as their type and scalar fields (`media`);
- the run id and start time are in the folder name. The folder's time is the LOCAL time of the
  machine that ran it, with no zone (the corpus run's folder says 17:52:58, its summary 22:52:59
  UTC): used as the start only when nothing else gives one (it then counts as a naive time);
  before it come `_timestamp - _runtime`, then `wandb-metadata.json`'s `startedAt` (UTC), then
  config.yaml's `_wandb.start_time` (epoch seconds). `latest-run` is a symlink to the newest run
  folder: not a run of its own (`is_wandb` is false for it), unless it is a real folder (a copy),
  whose id then comes from its `run-<id>.wandb` file;
- `files/config.yaml` is the config, as `{key: {desc: .., value: ..}}` (older clients also write
  `wandb_version: 1` and `desc: null`; newer ones only `value`), read with `yaml.safe_load` (plain
  YAML, no tags that build objects). Its `_wandb` entry (client version, start time, telemetry
  codes `t`) and `wandb_version` are bookkeeping: kept in the meta under `wandb_config`, without
  the telemetry codes;
- `files/wandb-metadata.json` (program, args, host, git, python, ...) goes to the meta, without
  the user's email and the machine inventory (disks, memory, GPU list);
- the W&B project and the run's display name are not in these files (only in the binary log);
  the experiment is the folder holding `wandb/` (the project's working directory), the name the id;
- the per-step history is only in the binary `run-<id>.wandb` file (protobuf records): not read,
  and the run's meta says so under `history`.

A summary, config.yaml or metadata file that does not parse is a `BadRecord` naming the file; the
run is still read from the others.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from etl.errors import BadRecord
from etl.readers.folders import files_under, listing
from etl.readers.jsontext import read_object
from etl.readers.record import Record
from etl.readers.steps import SUBSETS

WANDB = "wandb"
SUMMARY = "wandb-summary.json"
CONFIG = "config.yaml"
METADATA = "wandb-metadata.json"
LATEST = "latest-run"

# `run-20231210_175258-gu7xnmg8`; runs logged offline are `offline-run-...`. An id may hold `-`.
_RUN_FOLDER = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-(.+)$")
_BINARY = re.compile(r"^run-(.+)\.wandb$")
# wandb-metadata.json fields kept in the meta; the rest is the user's email and the machine inventory.
_METADATA_KEPT = (
    "program",
    "codePath",
    "args",
    "host",
    "os",
    "python",
    "git",
    "state",
    "startedAt",
    "heartbeatAt",
    "executable",
    "root",
    "cuda",
    "cudaVersion",
    "cpu_count",
    "cpu_count_logical",
    "gpu",
    "gpu_count",
)
_CLAIMED = {
    CONFIG: "read: the run's config, in the run's hparams",
    METADATA: "read: the run's program, host and git state, kept in the run's meta",
    "requirements.txt": "not imported: the run's installed packages",
    "conda-environment.yaml": "not imported: the run's conda environment",
    "output.log": "not imported: the run's console output",
    "diff.patch": "not imported: the run's uncommitted changes",
    "wandb-history.jsonl": "not imported: W&B's history file",
    "wandb-events.jsonl": "not imported: W&B's system metrics",
}
_MEDIA = "W&B media of the run, not an experiment record"
_CODE = "a source file W&B saved with the run, not an experiment record"
_HISTORY = "not imported: the binary W&B history (protobuf records)"
_LOG = "not imported: the W&B client's own log"


def is_wandb(path: Path) -> bool:
    """A `wandb-summary.json` in the `files/` folder of a W&B run folder (`run-<time>-<id>`,
    `offline-run-...`, or a `latest-run` that is a real folder and not the symlink). Names only."""
    if path.name != SUMMARY or path.parent.name != "files":
        return False
    run_dir = path.parent.parent
    if run_dir.name == LATEST:
        return not run_dir.is_symlink()
    return _RUN_FOLDER.match(run_dir.name) is not None


def claims_wandb(path: Path) -> list[Path]:
    """The run's other W&B files: config.yaml, wandb-metadata.json, requirements.txt, output.log,
    diff patches, media/ and code/ in files/; the binary run-<id>.wandb and logs/ in the run
    folder. A user's own files saved with `wandb.save` are not claimed."""
    return [claimed for claimed, _ in claims_with_reasons_wandb(path)]


def claims_with_reasons_wandb(path: Path) -> list[tuple[Path, str]]:
    """`claims_wandb` with why each file is claimed, for the walker's listing."""
    files = path.parent
    run_dir = files.parent
    claimed: list[tuple[Path, str]] = []
    for entry in listing(files):
        if entry == path:
            continue
        if entry.is_dir():
            if entry.name == "media":
                claimed.extend((p, _MEDIA) for p in files_under(entry))
            elif entry.name == "code":
                claimed.extend((p, _CODE) for p in files_under(entry))
        elif entry.name in _CLAIMED:
            claimed.append((entry, _CLAIMED[entry.name]))
        elif entry.name.startswith("upstream_diff_") and entry.suffix == ".patch":
            claimed.append((entry, _CLAIMED["diff.patch"]))
    for entry in listing(run_dir):
        if entry.is_file() and _BINARY.match(entry.name):
            claimed.append((entry, _HISTORY))
        elif entry.is_dir() and entry.name == "logs":
            claimed.extend((p, _LOG) for p in files_under(entry) if p.name.startswith("debug"))
    return claimed


def read_wandb(path: Path, source: str, **_ignored: object) -> Iterator[Record | BadRecord]:
    """One record for the run: the summary's final values as results, config.yaml as hparams.

    Keyword arguments (a sync cursor's offset) are accepted and ignored: the summary is rewritten
    whole by W&B, so it is always read whole.
    """
    files = path.parent
    run_dir = files.parent
    summary, problem = read_object(path, SUMMARY, primary=True)
    if problem is not None:
        yield BadRecord(source, *problem)
    summary = summary or {}

    resolved = run_dir.resolve()
    folder = _RUN_FOLDER.match(resolved.name)
    project = resolved.parent.parent if resolved.parent.name == "wandb" else resolved.parent
    data: dict[str, Any] = {"run_id": folder.group(2) if folder else _binary_id(run_dir) or resolved.name}
    if project.name:
        data["experiment_name"] = project.name

    config: dict[str, Any] = {}
    own: dict[str, Any] = {}
    if (files / CONFIG).is_file():
        config, own, problem = _read_config(files / CONFIG)
        if problem is not None:
            yield BadRecord(source, *problem)
    data["config"] = config

    bookkeeping: dict[str, Any] = {}
    results: dict[str, Any] = {}
    media: dict[str, Any] = {}
    for key, value in summary.items():
        if key.startswith("_"):
            bookkeeping[key] = value
        else:
            _flatten_into(results, media, key, value, "_" if key.lower() in SUBSETS else "/")
    results = _lowercase_subsets(results)
    if results:
        data["results"] = results
    if media:
        data["media"] = media

    metadata, problem = read_object(files / METADATA, METADATA, primary=False)
    if problem is not None:
        yield BadRecord(source, *problem)
    metadata = {k: metadata[k] for k in _METADATA_KEPT if k in metadata} if metadata else {}

    end = _finite(summary.get("_timestamp"))
    runtime = _finite(summary.get("_runtime"))
    runtime = runtime if runtime is not None and runtime >= 0 else None
    start: Any = None
    if end is not None and runtime is not None:
        start = end - runtime
    elif isinstance(metadata.get("startedAt"), str):
        start = _utc(metadata["startedAt"])
    elif isinstance(own.get("_wandb"), dict) and _finite(own["_wandb"].get("start_time")) is not None:
        start = own["_wandb"]["start_time"]
    elif folder:
        start = dt.datetime.strptime(folder.group(1), "%Y%m%d_%H%M%S").isoformat()
    if start is not None:
        data["timestamp"] = start
    if end is not None:
        data["end_time"] = end
    elif runtime is not None:
        data["duration_s"] = runtime

    if metadata:
        if isinstance(metadata.get("host"), str):
            data["host"] = metadata["host"]
        data["wandb_metadata"] = metadata
    if bookkeeping:
        data["wandb"] = bookkeeping
    if own:
        data["wandb_config"] = own
    binary = next((p.name for p in listing(run_dir) if p.is_file() and _BINARY.match(p.name)), None)
    data["history"] = (
        f"not imported: binary .wandb file ({binary})"
        if binary
        else "not imported: binary .wandb file (W&B keeps the per-step history there; none beside this summary)"
    )
    data["run_dir"] = run_dir.name
    yield Record(source, "$", WANDB, data)


def _read_config(path: Path) -> tuple[dict[str, Any], dict[str, Any], tuple[str, str] | None]:
    """(config, W&B's own entries, problem). Each `{desc, value}` entry gives its value; `wandb_version`
    and `_wandb` are W&B's; an entry of another shape is kept as it is."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        return {}, {}, (CONFIG, f"cannot read {CONFIG}: {exc.strerror or exc}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is None:
            return {}, {}, (CONFIG, f"{CONFIG}: not YAML: {_one_line(exc)}")
        problem = getattr(exc, "problem", None) or _one_line(exc)
        reason = f"{CONFIG}: not YAML: {problem} (line {mark.line + 1}, column {mark.column + 1})"
        return {}, {}, (f"{CONFIG} line {mark.line + 1}", reason)
    if document is None:
        return {}, {}, None
    if not isinstance(document, dict):
        return {}, {}, (CONFIG, f"{CONFIG}: expected a mapping, got {type(document).__name__}")
    config: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, entry in document.items():
        key = str(key)
        wrapped = isinstance(entry, dict) and "value" in entry and set(entry) <= {"desc", "value"}
        value = entry["value"] if wrapped else entry
        if key == "wandb_version":
            own[key] = value
        elif key == "_wandb":
            own[key] = {k: v for k, v in value.items() if k != "t"} if isinstance(value, dict) else value
        else:
            config[key] = _plain(value)
    if "_wandb" in own:
        own["_wandb"] = _plain(own["_wandb"])
    return config, own, None


def _flatten_into(results: dict[str, Any], media: dict[str, Any], name: str, value: Any, sep: str) -> None:
    """A summary value into results (numbers and other plain values) or media (`_type` dicts)."""
    if isinstance(value, dict) and "_type" in value:
        media[name] = {k: v for k, v in value.items() if not isinstance(v, dict | list)}
    elif isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten_into(results, media, f"{name}{sep}{key}", inner, "/")
    else:
        results[name] = value


def _lowercase_subsets(results: dict[str, Any]) -> dict[str, Any]:
    """Names with their leading subset word lowercased (`Eval/0/return` -> `eval/0/return`), in order.

    A lowercased name that another summary key already has (`Eval/x` beside `eval/x`), or that an
    earlier name became, is not taken: that name keeps its case, and its own context, rather than
    overwrite a value.
    """
    out: dict[str, Any] = {}
    for name, value in results.items():
        lowered = _lowercase_subset(name)
        if lowered != name and (lowered in results or lowered in out):
            lowered = name
        out[lowered] = value
    return out


def _lowercase_subset(name: str) -> str:
    """The name with its leading subset word lowercased; the separators are tried in the order the
    interpreter splits on, so the word lowered is the one that becomes the context."""
    for sep in ("_", "/", "."):
        head, found, rest = name.partition(sep)
        if found and rest and head.lower() in SUBSETS:
            return head.lower() + found + rest
    return name


def _plain(value: Any) -> Any:
    """YAML's dates and other non-JSON scalars as strings, so the config is JSON like every other."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _binary_id(run_dir: Path) -> str | None:
    """The run id of a folder not named `run-<time>-<id>` (a copied `latest-run`): its `run-<id>.wandb`."""
    for entry in listing(run_dir):
        match = _BINARY.match(entry.name)
        if match:
            return match.group(1)
    return None


def _utc(value: str) -> str:
    """W&B's `startedAt` is UTC; older clients write it without a zone."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return value + "+00:00" if parsed.tzinfo is None else value


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
