"""A mapping file (`--mapping FILE.toml`) for JSON/JSONL layouts no built-in reader knows.

It says where each role is in a record, by dotted path (`config.optimizer.lr`, `items.0.value`)
or JSON pointer (`/config/optimizer/lr`), and rewrites each record into the layout the interpreter
already reads (`run_id`, `experiment_name`, `config`, `results`, `history`, ...). Nothing else of
the pipeline changes. Fields the mapping does not name are kept under `unmapped`, so a mapping can
never drop a number.

    records = "results"              # JSON documents: where the list of records is (optional)
    id = "run"                       # each of these: a path, optional
    experiment = "project"
    name = "label"
    timestamp = "started"
    end_time = "finished"
    tags = "labels"
    hparams = ["config", "env.gpu"]  # dicts are merged; other values keep their last path segment
    [metrics]                        # metric name = path of a final number
    accuracy = "final.acc"
    [[series]]                       # per-step data: a list of dicts, or a dict of lists
    path = "log"
    step = "it"                      # field of each point (list of dicts only)
    epoch = "ep"
    time = "ts"

See `fixtures/mappings/` for worked examples.

A mapping can instead (or also) give each top-level field of the records its role, leaving the
layout as it is: this is what `aim-etl inspect --mapping-out` writes, the interpreter's own reading
of a file, for a person to correct and feed back with `--mapping`. The user's word wins over the
interpreter's guess, field by field; a field not named is read as the interpreter would.

    format = "steps"                 # the reader, as `--format` (optional)
    [fields]                         # top-level field = role (`FIELD_ROLES`)
    casf_val_best = "metrics"
    bench = "metrics"
    best_ckpt = "meta"
    elapsed_seconds = "duration"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from etl.errors import EtlError
from etl.readers.record import Record

_MISSING = object()
_ROLES = {
    "id": "run_id",
    "experiment": "experiment_name",
    "name": "name",
    "timestamp": "timestamp",
    "end_time": "end_time",
    "tags": "tags",
}
_KEYS = {"records", "hparams", "metrics", "series", "format", "fields", *_ROLES}
# What a `[fields]` entry may say a top-level field is (see `etl.interpret` for how each is read).
FIELD_ROLES = (
    "id",
    "experiment",
    "name",
    "time",
    "end_time",
    "duration",
    "tags",
    "params",
    "metrics",
    "series",
    "meta",
    "ignore",
)


class MappingError(EtlError):
    """A mapping file that cannot be used; names the file and what is wrong."""


@dataclass(frozen=True)
class SeriesSpec:
    path: str
    step: str | None = None
    epoch: str | None = None
    time: str | None = None


@dataclass(frozen=True)
class Mapping:
    source: str
    records: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    hparams: tuple[str, ...] = ()
    metrics: dict[str, str] = field(default_factory=dict)
    series: tuple[SeriesSpec, ...] = ()
    format: str | None = None
    # top-level field -> role (`FIELD_ROLES`): hints for the interpreter, no rewriting
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def rewrites(self) -> bool:
        """Whether records are rewritten by paths; a mapping of `format` and `[fields]` only is not."""
        return bool(self.records or self.roles or self.hparams or self.metrics or self.series)


def load_mapping(path: str | Path) -> Mapping:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not TOML: {exc}") from None
    except OSError as exc:
        raise MappingError(f"{path}: cannot read: {exc.strerror or exc}") from None
    unknown = set(doc) - _KEYS
    if unknown:
        raise MappingError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
    roles = {}
    for key in _ROLES:
        if key in doc:
            roles[key] = _path_string(path, key, doc[key])
    hparams = doc.get("hparams", [])
    hparams = [hparams] if isinstance(hparams, str) else hparams
    metrics = doc.get("metrics", {})
    if not isinstance(metrics, dict):
        raise MappingError(f"{path}: `metrics` must be a table of name = path")
    series = []
    for index, spec in enumerate(doc.get("series", [])):
        if not isinstance(spec, dict) or "path" not in spec:
            raise MappingError(f"{path}: series #{index + 1} needs a `path`")
        extra = set(spec) - {"path", "step", "epoch", "time"}
        if extra:
            raise MappingError(f"{path}: series #{index + 1}: unknown keys {sorted(extra)}")
        series.append(SeriesSpec(**{k: _path_string(path, f"series.{k}", v) for k, v in spec.items()}))
    fields = doc.get("fields", {})
    if not isinstance(fields, dict):
        raise MappingError(f"{path}: `fields` must be a table of field = role")
    for name, role in fields.items():
        if role not in FIELD_ROLES:
            raise MappingError(f"{path}: fields.{name}: unknown role {role!r} (known: {', '.join(FIELD_ROLES)})")
    fmt = doc.get("format")
    if fmt is not None:
        from etl.readers.detect import FORMATS

        if fmt not in FORMATS:
            raise MappingError(f"{path}: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return Mapping(
        source=str(path),
        format=fmt,
        fields=dict(fields),
        records=_path_string(path, "records", doc["records"]) if "records" in doc else None,
        roles=roles,
        hparams=tuple(_path_string(path, "hparams", h) for h in hparams),
        metrics={name: _path_string(path, f"metrics.{name}", p) for name, p in metrics.items()},
        series=tuple(series),
    )


def write_mapping(
    path: str | Path, fields: dict[str, str], *, format: str | None = None, header: list[str] | None = None,
    notes: dict[str, str] | None = None,
) -> None:
    """Write a `format`/`[fields]` mapping as TOML: what `inspect --mapping-out` hands the user.

    Each field's line carries the rule that chose its role as a comment (`notes`), so a person
    editing it sees why the tool read it so. Keys are quoted as TOML basic strings, which JSON's
    escapes are, so any field name round-trips.
    """
    import json

    lines = [f"# {line}" if line else "#" for line in header or []]
    if format is not None:
        lines.append(f"format = {json.dumps(format)}")
    lines += ["", "[fields]"]
    for name, role in fields.items():
        comment = f"  # {notes[name]}" if notes and notes.get(name) else ""
        lines.append(f"{json.dumps(name, ensure_ascii=False)} = {json.dumps(role)}{comment}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def apply_mapping(record: Record, mapping: Mapping) -> Record:
    """The record rewritten into the interpreter's layout; unnamed fields kept under `unmapped`."""
    raw = record.data
    used: set[tuple[str, ...]] = set()
    data: dict[str, Any] = {}
    for role, target in _ROLES.items():
        if role in mapping.roles:
            value = lookup(raw, mapping.roles[role], used)
            if value is not _MISSING:
                data[target] = value
    config: dict[str, Any] = {}
    for hp in mapping.hparams:
        value = lookup(raw, hp, used)
        if isinstance(value, dict):
            config.update(value)
        elif value is not _MISSING:
            config[_last_segment(hp)] = value
    if config:
        data["config"] = config
    results = {}
    for name, p in mapping.metrics.items():
        value = lookup(raw, p, used)
        if value is not _MISSING:
            results[name] = value
    if results:
        data["results"] = results
    history: list[dict[str, Any]] = []
    for spec in mapping.series:
        history.extend(_rows(lookup(raw, spec.path, used), spec))
    if history:
        data["history"] = history
    unmapped = _without(raw, used)
    if unmapped:
        data["unmapped"] = unmapped
    data.setdefault("config", {})  # marks the record as structured: what is not mapped stays a param
    return replace(record, data=data, format=f"{record.format}+mapping")


def lookup(data: Any, path: str, used: set[str] | None = None) -> Any:
    """Value at a dotted path or JSON pointer, or `_MISSING`. Records the top-level key it used."""
    parts = (
        [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
        if path.startswith("/")
        else path.split(".")
    )
    if used is not None and parts:
        used.add(parts[0])
    value = data
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    if used is not None:
        used.add(tuple(parts))
    return value


def _without(value: Any, used: set[tuple[str, ...]], prefix: tuple[str, ...] = ()) -> Any:
    """`value` minus the paths a mapping consumed, so what it did not name is kept, and only that."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        path = (*prefix, key)
        if path in used:
            continue
        kept = _without(item, used, path) if any(u[: len(path)] == path for u in used) else item
        if kept != {}:
            out[key] = kept
    return out


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _rows(value: Any, spec: SeriesSpec) -> list[dict[str, Any]]:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        rows = []
        for point in value:
            row = dict(point)
            for role, field_path in (("step", spec.step), ("epoch", spec.epoch), ("timestamp", spec.time)):
                if field_path:
                    found = lookup(point, field_path)
                    row.pop(field_path.split(".")[0], None)
                    if found is not _MISSING:
                        row[role] = found
            rows.append(row)
        return rows
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        length = max((len(v) for v in value.values()), default=0)
        return [
            {"step": i, "epoch": i, **{k: v[i] for k, v in value.items() if i < len(v) and v[i] is not None}}
            for i in range(length)
        ]
    return []


def _path_string(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise MappingError(f"{path}: `{key}` must be a path string, got {value!r}")
    return value


def _last_segment(path: str) -> str:
    return path.rstrip("/").replace("/", ".").rsplit(".", 1)[-1]
