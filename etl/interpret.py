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
- hparams: the `config` / `hparams` / `params` / `args` section: declared configuration, never
  searched for results;
- history: `history` / `per_epoch` / ... : lists become series (step = epoch = index), or a list of
  per-epoch dicts becomes points with their own `step`/`epoch`/`timestamp`, and their own Aim
  context when a row carries a `context` dict of strings (what `aim-etl export` writes);
- tags: `tags`, `tag`, `labels`, `keywords`.

Results are metrics, wherever a record keeps them; an hparam is a number that configures the run.

- Result sections, found by name: a top-level dict (or list) whose last `_`-separated word is a
  result word (`results`, `metrics`, `scores`, `evaluation`, `bench`/`benchmark`, `performance`,
  `summary`, `best`, `final`: `full_results`, `model_performance`, `val_metrics`; or a subset
  after one: `best_val`), unless a word says configuration (`eval_config`, `best_params`); the
  last word is what the section is (`score_distribution` is a distribution). Every number under
  it is a metric at step 0: the section is the record's own statement that these are outcomes. A subset
  word in the name is a context (`val_metrics` -> `{"subset": "val"}`); `best` adds
  `{"source": "best"}` so a best value and the final one stay two points.
- Result sections, found by content: a top-level dict named by a subset (`train`, `val`, `test`,
  `eval`: DVCLive's `metrics.json`) or by a collection of entities (`games`, `models`, `tasks`)
  holds results when one of its numbers reads as a result (see names below); then it is read like
  a section found by name. Without that evidence it stays what it was (`train: {batch_size: 32}`
  is configuration).
- Inside a result section, the path of dict keys above a number is kept, as contexts or in the
  name, never dropped: a subset key is `{"subset": ..}`; the entries of a collection are contexts
  named by its entity (`games` -> `{"game": "magic"}`, `model_performance` -> `{"model": ..}`,
  `bench` -> `{"benchmark": ..}`; `results` and other sections named by a result word ->
  `{"method": ..}`, unless the key itself reads as a metric: `f1: {macro: ..}` is `f1.macro`);
  below that, and in subset dicts found by content, keys join the name with `.`
  (`full_conf.mean`). A section inside a section (`results: {metrics: {..}}`) adds nothing. A
  breakdown by item (`per_query`) with more than 50 entries stays whole in the meta: each item
  would be its own Aim series, and the aggregate beside it already carries the result.
- Lists of numbers inside a result section: `per_X` lists are one point per X (`per_class` ->
  `{"class": "0"}`), per-fold lists one point per fold (`folds`, `cv_scores`, `*_scores` ->
  `{"fold": "0"}`); a two-number interval (`*_ci`, `*_interval`) is `name_low` and `name_high`;
  in a dict with two or more lists, all of two numbers (a model -> metric -> [mean, std] summary),
  each pair is `name` and `name_std`, tied by name; any other list of three or more numbers is a
  series (step = epoch = index). Shorter lists are no series (a W&B summary's `[0.1, 0.01]`): they
  stay a list in the meta.
- Lists of dicts inside a result section: long-format rows (`{"metric": "p10", "value": 0.2}` ->
  `p10`), per-epoch rows (with a `step`/`epoch` field -> points at those steps), or entries told
  apart by a string field (`hf_subset`, `split`, `name`, ...: MTEB's per-subset scores) or else by
  position (`scores_per_experiment` -> `{"experiment": "0"}`).
- Metric names: `name,filter` (lm-evaluation-harness: `acc,none`, `exact_match,strict-match`) is
  metric `name` with `{"filter": ..}` (none when the filter is `none`), so `acc_stderr,none` is
  `acc_stderr` beside `acc` in the same context; `split3_test_score` (scikit-learn's per-fold
  columns) is `test_score` with `{"fold": "3"}`; a `train_`/`val_`/`test_`/`eval_` prefix is an
  Aim context (`val_loss` -> `loss` with `{"subset": "val"}`) unless contexts are switched off.
- Numbers whose names read as results, anywhere outside the hparams section, are metrics: at top
  level in any record, and inside the other dicts of a flat record (no hparams section), named by
  their path (`weighted.p@10`); the rest of such a dict stays where it was. Names read as results
  by `METRIC_PATTERNS`: `loss`, `acc`/`accuracy` as a word (not `jaccard`), `f1`, `mrr`, ...; a
  subset word anywhere (`casf_val_best`); `best`/`final`/`ci`/`passed` as a word. A name ending in
  a configuration word (`test_size`, `eval_steps`, `grad_accumulation_steps`, `loss_weight`) or
  starting with `num_`/`n_` reads as configuration, as does a dict so named (`best_weights`). A
  top-level list of numbers whose name reads as a result is a series, with the list rules above.
- Strings `"nan"`, `"inf"`, `"-Infinity"` ... count as those floats where a number is expected (in
  a result section, a history, a field whose name reads as a result); other strings (`"n/a"`) stay
  strings.

Flat records (no hparams section, and no result section by name holding more than a list of
numbers) put everything else at the top level into hparams; in other records the rest is kept
under `meta`, as is what a result section holds besides numbers. Whatever the layout, every
number of a record ends up in Aim, as a metric or a param.

Each top-level field's reading is recorded as a `Role` (role and rule): `aim-etl inspect` shows
them, and writes them as a mapping's `[fields]`. A mapping's `[fields]` (`FieldRules.field_roles`)
is the user's word: where it says what the interpreter would say, nothing changes; where it says
otherwise, that field is read in that role (`forced` below) and the run's content hash says so.

The other edge rules live beside the shapes they read: how a file becomes records in
`etl/readers/` (per-step logs in `steps.py`, result documents in `jsondoc.py`), and how a run with
no time of its own is dated in `etl/dating.py`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import Any

import orjson

from etl.readers.record import Record
from etl.timestamps import parse_timestamp

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
# A word of a section's name that says it holds outcomes. `test`/`eval` alone are subsets: their
# dicts need evidence (a number named like a result), as `train`/`val` do.
RESULT_WORDS = frozenset(
    {
        "results",
        "result",
        "metrics",
        "metric",
        "scores",
        "score",
        "evaluation",
        "evaluations",
        "bench",
        "benchmark",
        "benchmarks",
        "performance",
        "summary",
        "best",
        "final",
    }
)
# A word that makes a section configuration even beside a result word (`eval_config`, `best_params`).
CONFIG_WORDS = frozenset(
    {
        "config",
        "configs",
        "configuration",
        "cfg",
        "params",
        "parameters",
        "hparams",
        "hyperparameters",
        "args",
        "arguments",
        "kwargs",
        "settings",
        "options",
        "setup",
    }
)
# Words naming what the entries of a result section are, singular -> the context key they give.
# Plural forms (`games`) mark a collection, whose keys are the entries.
ENTITIES = {
    "method": "method",
    "methods": "method",
    "model": "model",
    "models": "model",
    "task": "task",
    "tasks": "task",
    "game": "game",
    "games": "game",
    "dataset": "dataset",
    "datasets": "dataset",
    "bench": "benchmark",
    "benchmark": "benchmark",
    "benchmarks": "benchmark",
    "group": "group",
    "groups": "group",
    "language": "language",
    "languages": "language",
    "baselines": "method",
    "variants": "variant",
    "classes": "class",
    "categories": "category",
    "folds": "fold",
    "seeds": "seed",
}
_COLLECTIONS = frozenset(
    {
        "methods",
        "models",
        "tasks",
        "games",
        "datasets",
        "benchmarks",
        "groups",
        "languages",
        "baselines",
        "variants",
        "classes",
        "categories",
        "folds",
        "seeds",
    }
)
METRIC_PATTERNS = (
    r"^(train|training|val|valid|validation|test|eval|dev)[_./]",
    r"(^|[_./-])(val|valid|validation|test|eval|dev)($|[_./-])",
    r"loss",
    r"(^|[_./@-])acc($|[_./@-]|\d)|accuracy",
    r"(^|[_./@-])(f1|wer|cer|bleu|rouge\w*|auc|auroc|ap|map\d*|mae|mse|rmse|mape|r2|iou|dice|ndcg|mrr|hits)($|[_./@-]|\d)",
    r"precision|recall|perplexity|ppl|error",
    r"(^|[_./-])(top\d+|p\d+|p@\d+|p_at_\d+|p_at_k|scores?)($|[_./@-])",
    r"(^|[_./-])(best|final|ci\d*|passed|failed|correct)($|[_./-])",
)
# Last words of a name that say it configures the run, even when another word reads as a result.
CONFIG_TAILS = frozenset(
    {
        "size",
        "sizes",
        "steps",
        "epochs",
        "interval",
        "every",
        "freq",
        "frequency",
        "split",
        "ratio",
        "fraction",
        "frac",
        "seed",
        "seeds",
        "workers",
        "weight",
        "weights",
        "decay",
        "lr",
        "dim",
        "dims",
        "depth",
        "layers",
        "heads",
        "patience",
        "warmup",
        "momentum",
        "dropout",
        "threshold",
    }
)
_COUNT_HEADS = frozenset({"num", "n"})
_STEP_FIELDS = ("step", "global_step", "iteration", "training_iteration", "iter")
_POINT_TIME_FIELDS = ("timestamp", "time", "wall_time", "wallclock")
# Long-format rows: `{"metric": "p10", "value": 0.2}`.
_ROW_NAME_FIELDS = ("metric", "metric_name", "name", "key")
_ROW_VALUE_FIELDS = ("value", "score", "result")
# String fields that tell the entries of a list of results apart (MTEB writes one entry per `hf_subset`).
_ENTRY_ID_FIELDS = ("hf_subset", "subset", "split", "task", "task_name", "dataset", "language", "lang", "name")
_FOLD_LIST = re.compile(r"(^|[_./-])(folds?|cv|cv_scores?|split_scores|fold_scores)($|[_./-])|(^|_)scores$")
_INTERVAL = re.compile(r"(^|[_./-])(ci\d*|interval|bounds|conf_int)$")
_FOLD_COLUMN = re.compile(r"^split(\d+)_(.+)$")
_WORDS = re.compile(r"[_\-./@ ]+")
# Outside a history section, a shorter list of numbers is not taken for a per-epoch series.
MIN_SERIES = 3
# Breakdowns by item bigger than this stay whole in the meta (one Aim series per item is noise).
MAX_BREAKDOWN = 50
_NAN_WORDS = {
    "nan": math.nan,
    "-nan": math.nan,
    "+nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}

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
    # (top-level field, role) pairs a mapping's `[fields]` gives: the user's word over the guess
    field_roles: tuple[tuple[str, str], ...] = ()

    def fingerprint(self) -> dict[str, Any]:
        """What of these rules changes a run's content, folded into its content hash.

        Field roles are not: a hint that says what the interpreter would have said anyway changes
        nothing, so importing with the mapping `inspect` wrote keeps every run's hash. A hint that
        does change a record's reading is folded into that record's hash (`Interpreted.overrides`).
        """
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items() if k != "field_roles"
        }


@dataclass(frozen=True)
class Role:
    """What the interpreter made of one top-level field, and the rule that decided it.

    `role` is one of the mapping roles (`etl.readers.mapping.FIELD_ROLES`): a mapping's `[fields]`
    can say it back, or say otherwise. `points` counts the metric points the field gave.
    """

    role: str
    rule: str
    points: int = 0
    hinted: bool = False


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
    # the run's points, kept as columns where they came as a list of numbers
    columns: PointColumns = field(default_factory=lambda: PointColumns())
    # top-level field -> its role and the rule that decided it (what `aim-etl inspect` shows)
    roles: dict[str, Role] = field(default_factory=dict)
    # fields a mapping gave another role than the interpreter's: part of the run's content
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def points(self) -> list[tuple[str, str, int, int | None, float, float]]:
        """(name, context json, step, epoch or None, value, time or nan) of every point, in order."""
        return self.columns.rows()


class NotAnExperiment(Exception):
    """A record with no hparams and not one number (a logger event, a note): skipped, with this reason."""


def interpret(record: Record, rules: FieldRules) -> Interpreted:
    data = record.data
    keys = {k.lower(): k for k in data}
    used: set[str] = set()
    hints = {name.lower(): role for name, role in rules.field_roles}
    roles: dict[str, Role] = {}

    def names(role: str, defaults: tuple[str, ...], *, added: bool = True) -> tuple[str, ...]:
        """A role's field names: the defaults a mapping left alone, in their order of preference,
        after the names it adds (`added`). Defaults keep their order, so a mapping that repeats the
        interpreter's reading (both `timestamp` and `date` are times) picks the same field."""
        known = {n.lower() for n in defaults}
        extra = tuple(n for n, r in hints.items() if r == role and n not in known) if added else ()
        return extra + tuple(n for n in defaults if hints.get(n.lower(), role) == role)

    if hints:
        rules = replace(
            rules,
            id_fields=names("id", rules.id_fields),
            experiment_fields=names("experiment", rules.experiment_fields),
            name_fields=names("name", rules.name_fields),
            time_fields=names("time", rules.time_fields),
        )
    # A field a mapping calls params or series is not made *the* section: that would turn a flat
    # record into a structured one. It is read as that role below, by itself.
    hparam_sections = names("params", HPARAM_SECTIONS, added=False) if hints else HPARAM_SECTIONS
    history_sections = names("series", HISTORY_SECTIONS, added=False) if hints else HISTORY_SECTIONS
    tag_fields = names("tags", TAG_FIELDS) if hints else TAG_FIELDS
    end_fields = names("end_time", END_FIELDS) if hints else END_FIELDS
    duration_fields = names("duration", DURATION_FIELDS) if hints else DURATION_FIELDS

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
        if param_re and param_re.search(name):
            return False
        return bool(metric_re.search(name)) and not _reads_as_config(name)

    id_key, record_id = take(rules.id_fields)
    if isinstance(record_id, dict | list):
        record_id = None

    hparams: dict[str, Any] = {}
    hp_key, hp_value = take(hparam_sections)
    if isinstance(hp_value, dict):
        hparams = dict(hp_value)
        used.add(hp_key)
        roles[hp_key] = Role("params", f"the hparams section (`{'`, `'.join(HPARAM_SECTIONS)}`)")

    builder = _Points(rules.contexts, rules.timezone, is_metric_name)
    meta: dict[str, Any] = {}

    hist_key, hist_value = take(history_sections)
    if isinstance(hist_value, dict | list):
        used.add(hist_key)
        before = builder.count()
        leftovers = builder.add_history(hist_value)
        if leftovers is not None:
            meta[hist_key] = leftovers
        rule = "the history section: lists are series (step = epoch = index), rows are points at their step"
        roles[hist_key] = Role("series", rule, builder.count() - before)

    tags: list[str] = []
    for name in tag_fields:
        key = keys.get(name.lower())
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
        roles[key] = Role("tags", "a tag field: a string or a list of strings")

    # Fields that name, date or describe the run are kept under `meta`, never taken for hparams.
    descriptive = {
        n.lower()
        for n in (
            *META_FIELDS,
            *rules.id_fields,
            *rules.experiment_fields,
            *rules.name_fields,
            *rules.time_fields,
            *end_fields,
            *duration_fields,
        )
    }
    descriptive_roles = {
        **{n.lower(): "meta" for n in META_FIELDS},
        **{n.lower(): "duration" for n in duration_fields},
        **{n.lower(): "end_time" for n in end_fields},
        **{n.lower(): "time" for n in rules.time_fields},
        **{n.lower(): "name" for n in rules.name_fields},
        **{n.lower(): "experiment" for n in rules.experiment_fields},
        **{n.lower(): "id" for n in rules.id_fields},
    }
    # A field a mapping calls meta or ignores is never searched for results.
    descriptive |= {n for n, r in hints.items() if r in ("meta", "ignore")}
    sections = {
        key: named
        for key, value in data.items()
        if key not in used
        and key.lower() not in descriptive
        and (isinstance(value, dict) or _numbers(value) is not None or _records(value))
        and (named := _result_section(key)) is not None
    }
    sections = {key: (context, entity or "method") for key, (context, entity) in sections.items()}
    # A section of records or numbers by name makes a record structured; a list of numbers so
    # named (`scores: [..]` beside a flat config) is one field of a flat record.
    structured = hp_key in used or any(_numbers(data[key]) is None for key in sections)

    def keep(where: dict[str, Any], key: str, left: Any) -> None:
        if left:
            where[key] = left

    def route(key: str, value: Any) -> tuple[str, str, Callable[[], None]]:
        """(role, rule, what to do): the interpreter's reading of one top-level field."""
        lowered = key.lower()
        home = meta if structured or lowered in descriptive else hparams
        home_role = "meta" if home is meta else "params"
        if key in sections:
            context, entity = sections[key]
            rule = f"a result section by name (`{key}`): every number under it is a metric"

            def section() -> None:
                left = builder.add_section(key, value, context, entity)
                if left is not None:
                    meta[key] = left

            return "metrics", rule, section
        if lowered in descriptive:
            role = descriptive_roles.get(lowered, "meta")
            rule = "describes the run" if role == "meta" else f"one of the {role.replace('_', ' ')} fields"
            return role, rule, lambda: meta.__setitem__(key, value)
        number = _number(value)
        if number is not None and is_metric_name(key):
            return "metrics", "a number whose name reads as a result", lambda: builder.add_scalar(key, number)
        if isinstance(value, dict) and value:
            found = _found_section(key) if rules.contexts and builder.reads_as_results(value) else None
            if found is not None:
                rule = "a subset or collection holding result-named numbers: a result section"
                return "metrics", rule, lambda: keep(home, key, builder.add_results(value, *found))
            if not structured and not _reads_as_config(key):
                # A flat record's other dicts: their numbers named like results are metrics, named by path.
                rule = f"a dict of a flat record: {home_role}, its result-named numbers metrics"
                return home_role, rule, lambda: keep(
                    home, key, builder.add_results(value, {}, None, f"{key}.", only_named=True)
                )
            rule = "configuration" if home_role == "params" else "not a result section (the record has one)"
            return home_role, rule, lambda: keep(home, key, value)
        if isinstance(value, list) and _numbers(value) is not None and is_metric_name(key):
            rule = "a list of numbers named as a result"
            return "metrics", rule, lambda: builder.add_list(key, value, {}, "", _pair_table(data))
        if home_role == "params":
            rule = "a flat record's field whose name does not read as a result"
        else:
            rule = "the record has an hparams or result section: the rest describes the run"
        return home_role, rule, lambda: home.__setitem__(key, value)

    def forced(key: str, value: Any, role: str) -> tuple[str, Callable[[], None]]:
        """What a mapping's role for a field does when it is not the interpreter's reading."""
        rule = f"the mapping says {role}"
        if role == "params":
            return rule, lambda: hparams.__setitem__(key, value)
        if role == "metrics":
            number = _number(value)
            if number is not None:
                return rule, lambda: builder.add_scalar(key, number)
            if isinstance(value, dict | list) and value:
                return rule, lambda: keep(meta, key, builder.add_section(key, value, {}, "method"))
        if role == "series" and isinstance(value, dict | list) and value:
            history = value if isinstance(value, dict) else {key: value}
            return rule, lambda: keep(meta, key, builder.add_history(history))
        if role == "ignore":
            return rule + ": left out of the run", lambda: None
        # meta, an identity role taken above, or a role the value cannot take: kept in the meta
        return rule, lambda: meta.__setitem__(key, value)

    overrides: dict[str, str] = {}
    for key, value in data.items():
        if key in used:
            continue
        role, rule, action = route(key, value)
        hint = hints.get(key.lower())
        if hint is not None and hint != role:
            overrides[key] = hint
            rule, action = forced(key, value, hint)
            role = hint
        before = builder.count()
        action()
        roles[key] = Role(role, rule, builder.count() - before, hinted=hint is not None)
    for key in used:
        if key in roles and hints.get(key.lower()) == roles[key].role:
            roles[key] = replace(roles[key], hinted=True)

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
    ended_at = _end_time(data, keys, created_at, rules.timezone, end_fields, duration_fields)
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
        columns=points,
        roles=roles,
        overrides=overrides,
    )


Context = dict[str, str]


class PointColumns:
    """A record's points, in the order they were found: single points as (name, context json, step,
    epoch, value, time) tuples, and a list of numbers (step = epoch = index, no time) as one series
    kept whole.

    A long history is most of a large log's points; kept as columns, it goes into the chunk's frame
    columns with a few `extend`s, where a tuple per point cost building it and transposing it again
    (~40% of normalizing an 80,000-point history, profiled). `rows()` gives the tuples to whoever
    wants them (inspect, export, tests).
    """

    __slots__ = ("_segments", "_count")

    def __init__(self) -> None:
        # list[tuple] of single points, or (name, key, values) of a whole series
        self._segments: list[list[tuple] | tuple[str, str, list[float]]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, point: tuple[str, str, int, int | None, float, float]) -> None:
        if not self._segments or not isinstance(self._segments[-1], list):
            self._segments.append([])
        self._segments[-1].append(point)
        self._count += 1

    def extend(self, points: Iterable[tuple[str, str, int, int | None, float, float]]) -> None:
        if not self._segments or not isinstance(self._segments[-1], list):
            self._segments.append([])
        segment = self._segments[-1]
        before = len(segment)
        segment.extend(points)
        self._count += len(segment) - before

    def add_series(self, name: str, key: str, numbers: list[float | int]) -> None:
        values = list(map(float, numbers))
        self._segments.append((name, key, values))
        self._count += len(values)

    def rows(self) -> list[tuple[str, str, int, int | None, float, float]]:
        rows: list[tuple] = []
        for segment in self._segments:
            if isinstance(segment, list):
                rows.extend(segment)
            else:
                name, key, values = segment
                # zip builds the tuples in C: ~4x faster than a generator on an 80,000-point history
                steps = range(len(values))
                rows.extend(zip(repeat(name), repeat(key), steps, steps, values, repeat(math.nan)))
        return rows

    def singles(self) -> list[tuple[str, str, int, int | None, float, float]]:
        """The points that came one by one: the only ones whose step, epoch or time can be anything."""
        return [point for segment in self._segments if isinstance(segment, list) for point in segment]

    def extend_columns(self, names: list, contexts: list, steps: list, epochs: list, values: list, times: list) -> None:
        """Add every point to the given columns (a chunk's frame), in order."""
        nan = math.nan
        for segment in self._segments:
            if isinstance(segment, list):
                for column, part in zip(
                    (names, contexts, steps, epochs, values, times), zip(*segment, strict=True), strict=True
                ):
                    column.extend(part)
            else:
                name, key, numbers = segment
                length = len(numbers)
                names.extend(repeat(name, length))
                contexts.extend(repeat(key, length))
                steps.extend(range(length))
                epochs.extend(range(length))
                values.extend(numbers)
                times.extend(repeat(nan, length))


class _Points:
    """Collects metric points, turning subset prefixes, subset dicts and result paths into contexts."""

    def __init__(self, contexts: bool, timezone: str = "UTC", is_metric: Callable[[str], bool] = bool) -> None:
        self.contexts = contexts
        self.timezone = timezone
        self.is_metric = is_metric
        self.points = PointColumns()
        self.scalars: list[tuple[str, Context, Any]] = []
        self.series: set[tuple[str, str]] = set()  # (name, context json) of the points so far

    def count(self) -> int:
        """Points and final values so far: a field's share is the count after it minus before."""
        return len(self.points) + len(self.scalars)

    def split(self, name: str, context: Context) -> tuple[str, Context]:
        """A name's own context: lm-eval's `,filter`, scikit-learn's `splitN_`, a subset prefix."""
        if not self.contexts:
            return name, context
        head, comma, tail = name.partition(",")
        if comma and head and tail and "filter" not in context:
            name = head
            if tail.lower() != "none":
                context = {**context, "filter": tail}
        fold = _FOLD_COLUMN.match(name)
        if fold and "fold" not in context:
            name, context = fold.group(2), {**context, "fold": fold.group(1)}
        head, sep, rest = _split_prefix(name)
        if sep and rest:
            if "subset" not in context:
                return rest, {**context, "subset": head}
            if context["subset"].lower() == head.lower():  # `eval_loss` inside `eval_results`
                return rest, context
        return name, context

    def add(
        self,
        name: str,
        context: Context,
        step: int,
        epoch: int | None,
        value: Any,
        time: float,
        prefix: str = "",
    ) -> None:
        name, context = self.split(name, context)
        name, key = prefix + name, _context_json(context)
        self.series.add((name, key))
        self.points.append((name, key, step, epoch, float(value), time))

    def add_series(self, name: str, context: Context, numbers: list[float | int | None]) -> None:
        """A list of numbers as one series, step = epoch = index: `add` per point, with the name read
        once (a long history is most of a large log's points)."""
        name, context = self.split(name, context)
        key = _context_json(context)
        self.series.add((name, key))
        if None in numbers:  # a None is a gap (an epoch without that metric), not a point
            nan = math.nan
            self.points.extend((name, key, i, i, float(n), nan) for i, n in enumerate(numbers) if n is not None)
            return
        self.points.add_series(name, key, numbers)

    def add_scalar(self, name: str, value: Any, context: Context | None = None, prefix: str = "") -> None:
        name, context = self.split(name, context or {})
        self.scalars.append((prefix + name, context, value))

    def finish(self) -> PointColumns:
        """Scalars at step 0, after the series: a final `val.p10` and a per-epoch `val_p10` history
        name the same series, and step 0 cannot hold both. Such a scalar gets the extra context
        `{"source": "results"}` instead of overwriting (or being overwritten by) epoch 0."""
        used = set(self.series)
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

    def reads_as_results(self, value: Any) -> bool:
        """Evidence that a dict holds outcomes: somewhere in it, a number named like a result."""
        if isinstance(value, dict):
            for key, inner in value.items():
                if isinstance(inner, dict | list) and self.reads_as_results(inner):
                    return True
                if (_number(inner) is not None or _numbers(inner) is not None) and self.is_metric(key):
                    return True
        elif isinstance(value, list):
            return any(isinstance(v, dict) and self.reads_as_results(v) for v in value)
        return False

    def add_section(self, key: str, value: Any, context: Context, entity: str | None) -> Any:
        """A result section (dict or list); returns what is not a number (kept in the meta), or None."""
        if not self.contexts:
            context, entity = {}, None
        if isinstance(value, dict):
            return self.add_results(value, context, entity) or None
        return self.add_list(key, value, context, "", False)

    def add_results(
        self,
        results: dict[str, Any],
        context: Context | None = None,
        entity: str | None = None,
        prefix: str = "",
        only_named: bool = False,
    ) -> dict[str, Any]:
        """Every number of `results` as a metric (with `only_named`, only those named like results),
        keeping the path of keys above it; returns the rest, in the same shape."""
        context = context or {}
        leftovers: dict[str, Any] = {}
        pairs = _pair_table(results)
        for key, value in results.items():
            if isinstance(value, dict):
                inner = self._add_child(key, value, context, entity, prefix, only_named) if value else value
                if inner or not value:
                    leftovers[key] = inner
            elif isinstance(value, list):
                inner_context = context
                if self.contexts and key.lower() in SUBSETS and "subset" not in context:
                    inner_context = {**context, "subset": key}  # MTEB: `scores: {test: [per-subset entries]}`
                inner = self.add_list(key, value, inner_context, prefix, pairs, only_named)
                if inner is not None:
                    leftovers[key] = inner
            else:
                number = _number(value)
                if number is not None and (not only_named or self.is_metric(key)):
                    self.add_scalar(key, number, context, prefix)
                else:
                    leftovers[key] = value
        return leftovers

    def _add_child(
        self, key: str, value: dict[str, Any], context: Context, entity: str | None, prefix: str, only_named: bool
    ) -> dict[str, Any]:
        lowered = key.lower()
        if self.contexts and lowered in SUBSETS and "subset" not in context:
            return self.add_results(value, {**context, "subset": key}, entity, prefix, only_named)
        if lowered.startswith("per_") and len(value) > MAX_BREAKDOWN:
            return value
        named = _result_section(key)
        if named is not None:  # `results: {metrics: {..}}`: a section inside a section adds no name
            inner, named_entity = named if self.contexts else ({}, None)
            inner = {k: v for k, v in inner.items() if k not in context}
            return self.add_results(value, {**context, **inner}, named_entity or entity, prefix, only_named)
        collection = _collection_entity(key)
        if self.contexts and collection and collection not in context:
            return self.add_results(value, context, collection, prefix, only_named)
        if self.contexts and entity and entity not in context and not self.is_metric(key):
            return self.add_results(value, {**context, entity: key}, None, prefix, only_named)
        return self.add_results(value, context, None, f"{prefix}{key}.", only_named)

    def add_list(
        self, key: str, values: list[Any], context: Context, prefix: str, pairs: bool, only_named: bool = False
    ) -> Any:
        """A list inside results (see the module docstring); returns it when nothing was taken."""
        if values and all(isinstance(v, dict) for v in values):
            return values if only_named else self._add_rows(key, values, context, prefix)
        numbers = _numbers(values)
        if numbers is None or (only_named and not self.is_metric(key)):
            return values
        per = _per_entity(key)
        if per or (self.contexts and _FOLD_LIST.search(key.lower())):
            for index, number in enumerate(numbers):
                if number is not None:
                    self.add_scalar(key, number, {**context, per or "fold": str(index)}, prefix)
            return None
        if len(numbers) == 2 and None not in numbers:
            if _INTERVAL.search(key.lower()):
                self.add_scalar(f"{key}_low", numbers[0], context, prefix)
                self.add_scalar(f"{key}_high", numbers[1], context, prefix)
                return None
            if pairs:
                self.add_scalar(key, numbers[0], context, prefix)
                self.add_scalar(f"{key}_std", numbers[1], context, prefix)
                return None
        if len(numbers) < MIN_SERIES:
            return values
        for index, number in enumerate(numbers):
            if number is not None:  # a gap (an epoch without that metric), not a point
                self.add(key, context, index, index, number, math.nan, prefix)
        return None

    def _add_rows(self, key: str, rows: list[dict[str, Any]], context: Context, prefix: str) -> Any:
        named = [_metric_row(row) for row in rows]
        if all(named):
            # Long format: the row's other strings (`"split": "test"`) say where the value belongs.
            for row, (name_key, value_key) in zip(rows, named, strict=True):
                extra = {k: v for k, v in row.items() if k not in (name_key, value_key) and isinstance(v, str)}
                where = {**extra, **context} if self.contexts else context
                self.add_scalar(row[name_key], _number(row[value_key]), where, prefix)
            return None
        if all(any(k.lower() in (*_STEP_FIELDS, "epoch") for k in row) for row in rows):
            return self._add_history_rows(rows, context)
        id_field = next(
            (f for f in _ENTRY_ID_FIELDS if all(isinstance(r.get(f), str) and r.get(f) for r in rows)), None
        )
        entry = _entry_key(key)
        kept: list[Any] = []
        left = False
        for index, row in enumerate(rows):
            label = row[id_field] if id_field else str(index)
            body = {k: v for k, v in row.items() if k != id_field}
            where = {**context, (id_field or entry): label} if self.contexts else context
            inner = self.add_results(body, where, None, prefix)
            left = left or bool(inner)
            kept.append({id_field: label, **inner} if id_field else inner)
        return kept if left else None

    def add_history(self, history: dict[str, Any] | list[Any], context: Context | None = None) -> Any:
        context = context or {}
        if isinstance(history, list):
            return self._add_history_rows(history, context)
        leftovers: dict[str, Any] = {}
        for key, value in history.items():
            numbers = _numbers(value)
            if numbers is not None:
                self.add_series(key, context, numbers)
            elif isinstance(value, dict) and self.contexts and key.lower() in SUBSETS and "subset" not in context:
                inner = self.add_history(value, {**context, "subset": key})
                if inner:
                    leftovers[key] = inner
            else:
                leftovers[key] = value
        return leftovers or None

    def _add_history_rows(self, rows: list[Any], context: Context) -> Any:
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
            # A row's own `context` (a dict of strings, as `aim-etl export` writes each point's Aim
            # context) is its points' context, over the section's.
            own = row.get("context")
            row_context = context
            if isinstance(own, dict) and all(isinstance(v, str) for v in own.values()):
                row_context = {**context, **own}
            for key, value in row.items():
                number = _number(value)
                if key in skip or number is None:
                    continue
                if key.lower() == "epoch" and not isinstance(value, float):
                    continue
                self.add(key, row_context, step, epoch, number, time)
        return None


def _words(name: str) -> list[str]:
    return [w for w in _WORDS.split(name.lower()) if w]


def _reads_as_config(name: str) -> bool:
    words = _words(name)
    return bool(words) and (words[-1] in CONFIG_TAILS or (len(words) > 1 and words[0] in _COUNT_HEADS))


def _result_section(key: str) -> tuple[Context, str | None] | None:
    """(context, entity of its entries or None) when a key names a result section, else None.

    The last word decides (`model_performance`, `eval_results`, `best_val`); a configuration word
    anywhere vetoes (`eval_config`, `best_params`)."""
    words = _words(key)
    if not words or CONFIG_WORDS.intersection(words) or not RESULT_WORDS.intersection(words):
        return None
    if words[-1] not in RESULT_WORDS and words[-1] not in SUBSETS:
        return None  # the last word is what the section is: `score_distribution` is a distribution
    context: Context = {}
    subset = next((w for w in words if w in SUBSETS), None)
    if subset is not None:
        context["subset"] = subset
    if "best" in words:
        context["source"] = "best"
    entity = next((ENTITIES[w] for w in words if w in ENTITIES), None)
    return context, entity


def _found_section(key: str) -> tuple[Context, str | None] | None:
    """A top-level dict that is a result section by content: named by a subset or a collection."""
    words = _words(key)
    if not words or CONFIG_WORDS.intersection(words):
        return None
    if len(words) == 1 and words[0] in SUBSETS:
        return {"subset": key}, None
    collection = _collection_entity(key)
    if collection is not None:
        return {}, collection
    return None


def _collection_entity(key: str) -> str | None:
    """`games` -> `game`: the context key of a collection's entries; `per_class` -> `class`."""
    per = _per_entity(key)
    if per:
        return per
    words = _words(key)
    return ENTITIES[words[-1]] if words and words[-1] in _COLLECTIONS else None


def _per_entity(key: str) -> str | None:
    words = _words(key)
    if "per" in words[:-1]:
        return words[words.index("per") + 1]
    return None


def _entry_key(key: str) -> str:
    """The context key for the position of an unnamed entry: `scores_per_experiment` -> `experiment`."""
    return _per_entity(key) or _collection_entity(key) or "entry"


def _pair_table(values: dict[str, Any]) -> bool:
    """A dict whose lists are all two numbers (two or more of them): a table of [mean, std] pairs."""
    lists = [v for v in values.values() if isinstance(v, list)]
    return len(lists) >= 2 and all(len(v) == 2 and None not in (_numbers(v) or [None]) for v in lists)


def _metric_row(row: dict[str, Any]) -> tuple[str, str] | None:
    """(name key, value key) of a long-format row: a name string and its one number."""
    lowered = {k.lower(): k for k in row}
    name_key = next((lowered[n] for n in _ROW_NAME_FIELDS if n in lowered), None)
    value_key = next((lowered[n] for n in _ROW_VALUE_FIELDS if n in lowered), None)
    if name_key is None or value_key is None or not isinstance(row[name_key], str) or not row[name_key]:
        return None
    if _number(row[value_key]) is None or sum(_number(v) is not None for v in row.values()) != 1:
        return None
    return name_key, value_key


def _number(value: Any) -> float | int | None:
    """A number where one is expected: JSON numbers, and the strings Python and pandas write for NaN and ±inf."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return _NAN_WORDS.get(value.strip().lower())
    return None


def _records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


_PLAIN_NUMBERS = frozenset((int, float))  # `type(True)` is bool, so booleans are not among them


def _numbers(value: Any) -> list[float | int | None] | None:
    """A list of numbers (nulls as gaps, at least one number), or None when it is anything else."""
    if not isinstance(value, list) or not value:
        return None
    if all(type(item) in _PLAIN_NUMBERS for item in value):  # a history as JSON writes it: taken as it is
        return value
    out = []
    for item in value:
        if item is None:
            out.append(None)
            continue
        number = _number(item)
        if number is None:
            return None
        out.append(number)
    return out if any(n is not None for n in out) else None


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


def _end_time(
    data: dict[str, Any],
    keys: dict[str, str],
    created: dt.datetime | None,
    tz: str,
    end_fields: tuple[str, ...] = END_FIELDS,
    duration_fields: tuple[str, ...] = DURATION_FIELDS,
) -> dt.datetime | None:
    ended, _ = _first_time(data, keys, end_fields, tz)
    if ended is not None:
        return ended
    if created is None:
        return None
    for name in duration_fields:
        key = keys.get(name.lower())
        if key is not None and _is_number(data[key]) and math.isfinite(data[key]) and data[key] >= 0:
            try:
                return created + dt.timedelta(seconds=float(data[key]))
            except OverflowError:  # `duration_s: 1e300`: no end can be that far; not an end time
                return None
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
