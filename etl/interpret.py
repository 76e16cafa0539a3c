"""Which field of a record is what: the mapping defaults, in one place.

A record is read by roles, each found by a list of field names (case-insensitive, first present
wins) that `FieldRules` lets a caller change:

- identity: `experiment_id`, `run_id`, `id`, ... (`--id-field`); the run name falls back to it;
- experiment: `--experiment`, else `experiment_name`, `experiment`, `project`, `study`, `search`,
  `sweep`, else the file's stem. `method` is *not* an experiment field: in real logs it is free
  text ("Node2Vec (dim=128, p=1, q=1)") and would make one experiment per run; it stays an hparam;
- name: `run_name`, `name`, `label`, `title`, else the id;
- time: `timestamp`, `created_at`, `date`, `started_utc`, ...; end: `end_time`, `stop_time`, ...,
  or start + a duration field (`duration_s`, `wall_time_s`, ...);
- hparams: the `config` / `hparams` / `params` / `args` section;
- results: `results` / `metrics` / `final` / ... : numbers become metrics at step 0; a dict under
  a subset name (`{"val": {"p10": 0.2}}`) becomes that subset's context; a dict of numbers under any
  other key (`{"deepwalk": {"p@10": 0.1}}`) a `method` context; anything else (strings, lists,
  deeper dicts) is kept as a run param under `meta.results`;
- history: `history` / `per_epoch` / ... : lists become series (step = epoch = index), or a list of
  per-epoch dicts becomes points with their own `step`/`epoch`/`timestamp`;
- tags: `tags`, `tag`, `labels`, `keywords`.

Flat records (no hparams section) put everything at the top level: numbers whose names read as
results (`METRIC_PATTERNS`: a `train_`/`val_`/`test_`/`eval_` prefix, or `loss`, `acc`, `f1`,
`wer`, ... in the name) become metrics, the rest hparams. In records with an hparams section, the
other top-level fields are kept under `meta`. A `train_`/`val_`/`test_`/`eval_` prefix becomes an
Aim context (`val_loss` -> `loss` with `{"subset": "val"}`) unless contexts are switched off.
Whatever the layout, every number of a record ends up in Aim, as a metric or a param.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from etl.readers.record import Record
from etl.timestamps import parse_timestamp

# Used for the run name only when a record has neither a name nor an id (an evaluation summary's entries).
NAME_FALLBACKS = ("method", "model")
ID_FIELDS = ("experiment_id", "run_id", "id", "trial_id", "uuid")
EXPERIMENT_FIELDS = ("experiment_name", "experiment", "project", "study", "search", "sweep")
NAME_FIELDS = ("run_name", "name", "label", "title")
# Used for the run name only when a record has neither a name nor an id (an evaluation summary's entries).
NAME_FALLBACKS = ("method", "model")
TIME_FIELDS = (
    "timestamp",
    "created_at",
    "created",
    "start_time",
    "started_at",
    "started_utc",
    "started",
    "datetime",
    "date",
    "time",
)
END_FIELDS = ("end_time", "ended_at", "stop_time", "stopped_at", "finished_at", "completed_at")
DURATION_FIELDS = (
    "duration_s",
    "duration_sec",
    "duration_seconds",
    "duration",
    "wall_time_s",
    "elapsed_s",
    "elapsed",
    "time_total_s",
)
HPARAM_SECTIONS = ("config", "hparams", "params", "hyperparameters", "args", "configuration")
RESULT_SECTIONS = ("results", "metrics", "final", "final_metrics", "scores", "eval_results", "test_results")
HISTORY_SECTIONS = ("history", "per_epoch", "epochs", "curves", "training_history")
TAG_FIELDS = ("tags", "tag", "labels", "keywords")
# Top-level strings of a flat record that describe the run rather than configure it.
META_FIELDS = (
    "notes",
    "note",
    "description",
    "comment",
    "status",
    "command",
    "cmd",
    "host",
    "hostname",
    "git_sha",
    "git_commit",
    "commit",
    "device",
    "message",
    "level",
    "event_type",
)
SUBSETS = ("train", "training", "val", "valid", "validation", "test", "eval", "dev")
METRIC_PATTERNS = (
    r"^(train|training|val|valid|validation|test|eval|dev)[_./]",
    r"loss",
    r"acc",
    r"(^|[_./@-])(f1|wer|cer|bleu|rouge\w*|auc|auroc|ap|map\d*|mae|mse|rmse|mape|r2|iou|dice|ndcg|mrr|hits)($|[_./@-]|\d)",
    r"precision|recall|perplexity|ppl|error",
    r"(^|[_./-])(top\d+|p\d+|p@\d+|p_at_\d+|p_at_k|score)($|[_./@-])",
)
_STEP_FIELDS = ("step", "global_step", "iteration", "training_iteration", "iter")
_POINT_TIME_FIELDS = ("timestamp", "time", "wall_time", "wallclock")

NO_CONTEXT = "{}"


@dataclass(frozen=True)
class FieldRules:
    """The mapping defaults above, each overridable from the CLI."""

    experiment: str | None = None
    id_fields: tuple[str, ...] = ID_FIELDS
    experiment_fields: tuple[str, ...] = EXPERIMENT_FIELDS
    name_fields: tuple[str, ...] = NAME_FIELDS
    time_fields: tuple[str, ...] = TIME_FIELDS
    metric_patterns: tuple[str, ...] = METRIC_PATTERNS
    param_patterns: tuple[str, ...] = ()
    contexts: bool = True
    timezone: str = "UTC"

    def fingerprint(self) -> dict[str, Any]:
        """What of these rules changes a run's content, folded into its content hash."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass
class Interpreted:
    """One record read by roles: everything one Aim run will hold, before it is a frame row."""

    record_id: str | None
    experiment: str
    name: str | None
    created_at: dt.datetime | None
    ended_at: dt.datetime | None
    naive_time: bool
    hparams: dict[str, Any]
    tags: list[str]
    meta: dict[str, Any]
    # (name, context json, step, epoch or None, value, time or nan)
    points: list[tuple[str, str, int, int | None, float, float]] = field(default_factory=list)


class NotAnExperiment(Exception):
    """A record with no hparams and not one number (a logger event, a note): skipped, with this reason."""


def interpret(record: Record, rules: FieldRules) -> Interpreted:
    data = record.data
    keys = {k.lower(): k for k in data}
    used: set[str] = set()

    def take(
        names: tuple[str, ...], source: dict[str, Any] = data, lowered: dict[str, str] = keys
    ) -> tuple[str | None, Any]:
        for name in names:
            key = lowered.get(name.lower())
            if key is not None and source[key] is not None:
                return key, source[key]
        return None, None

    metric_re = re.compile("|".join(f"(?:{p})" for p in rules.metric_patterns), re.IGNORECASE)
    param_re = (
        re.compile("|".join(f"(?:{p})" for p in rules.param_patterns), re.IGNORECASE) if rules.param_patterns else None
    )

    def is_metric_name(name: str) -> bool:
        return bool(metric_re.search(name)) and not (param_re and param_re.search(name))

    id_key, record_id = take(rules.id_fields)
    if isinstance(record_id, dict | list):
        record_id = None

    hparams: dict[str, Any] = {}
    hp_key, hp_value = take(HPARAM_SECTIONS)
    if isinstance(hp_value, dict):
        hparams = dict(hp_value)
        used.add(hp_key)
    structured = hp_key in used

    builder = _Points(rules.contexts, rules.timezone)
    meta: dict[str, Any] = {}

    res_key, res_value = take(RESULT_SECTIONS)
    if isinstance(res_value, dict):
        used.add(res_key)
        leftovers = builder.add_results(res_value)
        if leftovers:
            meta[res_key] = leftovers
        structured = True

    hist_key, hist_value = take(HISTORY_SECTIONS)
    if isinstance(hist_value, dict | list):
        used.add(hist_key)
        leftovers = builder.add_history(hist_value)
        if leftovers is not None:
            meta[hist_key] = leftovers

    tags: list[str] = []
    for name in TAG_FIELDS:
        key = keys.get(name)
        if key is None:
            continue
        value = data[key]
        if isinstance(value, str) and value:
            tags.append(value)
        elif isinstance(value, list) and value and all(isinstance(t, str) for t in value):
            tags.extend(value)
        else:
            continue
        used.add(key)

    # Fields that name, date or describe the run are kept under `meta`, never taken for hparams.
    descriptive = {
        n.lower()
        for n in (
            *META_FIELDS,
            *rules.id_fields,
            *rules.experiment_fields,
            *rules.name_fields,
            *rules.time_fields,
            *END_FIELDS,
            *DURATION_FIELDS,
        )
    }
    for key, value in data.items():
        if key in used:
            continue
        lowered = key.lower()
        if _is_number(value) and lowered not in descriptive and is_metric_name(key):
            builder.add_scalar(key, value)
        elif structured or lowered in descriptive:
            meta[key] = value
        else:
            hparams[key] = value

    points = builder.finish()
    if not points and not _has_number(data) and not (hp_key in used and hparams):
        raise NotAnExperiment("not an experiment: no hyperparameters and not one number")

    parent = record.parent
    parent_keys = {k.lower(): k for k in parent}
    experiment = rules.experiment
    if experiment is None:
        _, experiment = take(rules.experiment_fields)
    if experiment is None and parent:
        _, experiment = take((*rules.experiment_fields, "name"), parent, parent_keys)
    if not isinstance(experiment, str) or not experiment.strip():
        experiment = _file_stem(record.source)

    _, name = take(rules.name_fields)
    if not isinstance(name, str) or not name.strip():
        name = str(record_id) if record_id is not None else None
    if name is None:
        _, name = take(NAME_FALLBACKS)
        name = name if isinstance(name, str) else None

    created_at, naive = _first_time(data, keys, rules.time_fields, rules.timezone)
    if created_at is None and parent:
        created_at, naive = _first_time(parent, parent_keys, rules.time_fields, rules.timezone)
    ended_at = _end_time(data, keys, created_at, rules.timezone)
    if parent:
        meta["document"] = parent

    return Interpreted(
        record_id=None if record_id is None else str(record_id),
        experiment=experiment.strip(),
        name=name,
        created_at=created_at,
        ended_at=ended_at,
        naive_time=naive,
        hparams=hparams,
        tags=list(dict.fromkeys(tags)),
        meta=meta,
        points=points,
    )


class _Points:
    """Collects metric points, turning subset prefixes and subset dicts into contexts."""

    def __init__(self, contexts: bool, timezone: str = "UTC") -> None:
        self.contexts = contexts
        self.timezone = timezone
        self.points: list[tuple[str, str, int, int | None, float, float]] = []
        self.scalars: list[tuple[str, dict[str, str], Any]] = []

    def split(self, name: str, context: dict[str, str]) -> tuple[str, dict[str, str]]:
        if self.contexts and "subset" not in context:
            head, sep, rest = _split_prefix(name)
            if sep and rest:
                return rest, {**context, "subset": head}
        return name, context

    def add(self, name: str, context: dict[str, str], step: int, epoch: int | None, value: Any, time: float) -> None:
        name, context = self.split(name, context)
        self.points.append((name, _context_json(context), step, epoch, float(value), time))

    def add_scalar(self, name: str, value: Any, context: dict[str, str] | None = None) -> None:
        name, context = self.split(name, context or {})
        self.scalars.append((name, context, value))

    def finish(self) -> list[tuple[str, str, int, int | None, float, float]]:
        """Scalars at step 0, after the series: a final `val.p10` and a per-epoch `val_p10` history
        name the same series, and step 0 cannot hold both. Such a scalar gets the extra context
        `{"source": "results"}` instead of overwriting (or being overwritten by) epoch 0."""
        used = {(name, context) for name, context, *_ in self.points}
        for name, context, value in self.scalars:
            key = _context_json(context)
            n = 1
            while (name, key) in used:  # `val_loss` and `val.loss` in one record also collide
                tagged = {**context, "source": "results" if n == 1 else f"results#{n}"}
                key, n = _context_json(tagged), n + 1
            used.add((name, key))
            self.points.append((name, key, 0, None, float(value), math.nan))
        self.scalars = []
        return self.points

    def add_results(self, results: dict[str, Any], context: dict[str, str] | None = None) -> dict[str, Any]:
        context = context or {}
        leftovers: dict[str, Any] = {}
        for key, value in results.items():
            if _is_number(value):
                self.add_scalar(key, value, context)
            elif (
                isinstance(value, dict)
                and value
                and self.contexts
                and key.lower() in SUBSETS
                and "subset" not in context
            ):
                inner = self.add_results(value, {**context, "subset": key})
                if inner:
                    leftovers[key] = inner
            elif (
                isinstance(value, dict)
                and value
                and self.contexts
                and "method" not in context
                and all(_is_number(v) for v in value.values())
            ):
                self.add_results(value, {**context, "method": key})
            else:
                leftovers[key] = value
        return leftovers

    def add_history(self, history: dict[str, Any] | list[Any], context: dict[str, str] | None = None) -> Any:
        context = context or {}
        if isinstance(history, list):
            return self._add_history_rows(history, context)
        leftovers: dict[str, Any] = {}
        for key, value in history.items():
            if isinstance(value, list) and value and all(v is None or _is_number(v) for v in value):
                for index, v in enumerate(value):
                    if v is not None:  # a gap (an epoch without that metric), not a point
                        self.add(key, context, index, index, v, math.nan)
            elif isinstance(value, dict) and self.contexts and key.lower() in SUBSETS and "subset" not in context:
                inner = self.add_history(value, {**context, "subset": key})
                if inner:
                    leftovers[key] = inner
            else:
                leftovers[key] = value
        return leftovers or None

    def _add_history_rows(self, rows: list[Any], context: dict[str, str]) -> Any:
        if not rows or not all(isinstance(r, dict) for r in rows):
            return rows
        for index, row in enumerate(rows):
            lowered = {k.lower(): k for k in row}
            step = _first_int(row, lowered, _STEP_FIELDS)
            epoch = _first_int(row, lowered, ("epoch",))
            if step is None:
                step = epoch if epoch is not None else index
            time = math.nan
            for name in _POINT_TIME_FIELDS:
                if name in lowered:
                    when, _ = parse_timestamp(row[lowered[name]], self.timezone)
                    if when is not None:
                        time = when.timestamp()
                        break
            skip = {lowered.get(n) for n in (*_STEP_FIELDS, *_POINT_TIME_FIELDS)}
            for key, value in row.items():
                if key in skip or not _is_number(value):
                    continue
                if key.lower() == "epoch" and not isinstance(value, float):
                    continue
                self.add(key, context, step, epoch, value, time)
        return None


def _split_prefix(name: str) -> tuple[str, str, str]:
    for sep in ("_", "/", "."):
        head, found, rest = name.partition(sep)
        if found and head.lower() in SUBSETS:
            return head, found, rest
    return name, "", ""


def _context_json(context: dict[str, str]) -> str:
    return orjson.dumps(context, option=orjson.OPT_SORT_KEYS).decode() if context else NO_CONTEXT


def _first_time(
    data: dict[str, Any], keys: dict[str, str], names: tuple[str, ...], tz: str
) -> tuple[dt.datetime | None, bool]:
    for name in names:
        key = keys.get(name.lower())
        if key is not None:
            when, naive = parse_timestamp(data[key], tz)
            if when is not None:
                return when, naive
    return None, False


def _end_time(data: dict[str, Any], keys: dict[str, str], created: dt.datetime | None, tz: str) -> dt.datetime | None:
    ended, _ = _first_time(data, keys, END_FIELDS, tz)
    if ended is not None:
        return ended
    if created is None:
        return None
    for name in DURATION_FIELDS:
        key = keys.get(name)
        if key is not None and _is_number(data[key]) and math.isfinite(data[key]) and data[key] >= 0:
            return created + dt.timedelta(seconds=float(data[key]))
    return None


def _first_int(row: dict[str, Any], lowered: dict[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        key = lowered.get(name)
        if key is not None and _is_number(row[key]) and math.isfinite(row[key]):
            return int(row[key])
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _has_number(value: Any) -> bool:
    if _is_number(value):
        return True
    if isinstance(value, dict):
        return any(_has_number(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_number(v) for v in value)
    return False


def _file_stem(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] or name
