"""Result JSON documents, in the shapes projects and tools write them.

- a list of result records (`[{params, metrics}, ...]`): one record per entry, `$[3]`;
- a document holding such a list under `results`/`trials`/`runs`/... (a grid search): one record
  per entry, `$.results[3]`, each inheriting the document's other fields (its name and time);
- trials of a hyperparameter search, in such a list: Optuna's (`number`, `value`/`values`,
  `params` or `params_*` columns, `state`, `datetime_start`, `datetime_complete`) and hyperopt's
  (`tid`, `result: {loss, status}`, `misc: {vals}`, `book_time`, `refresh_time`). One run per
  trial, read as `params` (hparams), `results` (the objective), the trial's own start and end as
  `timestamp`/`end_time`, and its number as `trial_id`: these files name the roles in their own
  words, which the field lists of `etl.interpret` cannot guess (`value`, `datetime_start`);
- a scikit-learn `cv_results_` dump (columns of equal length: `params`, `param_*`,
  `mean_test_score`, `split0_test_score`, ...; as lists, or as pandas' `to_json()` dicts keyed by
  row): one run per candidate, `$.params[3]`, its `params` as hparams and its columns as results
  (`param_*` repeat `params` and are left out);
- an MTEB task result (`task_name`, `scores: {split: [{main_score, hf_subset, ...}]}`,
  `mteb_version`): one run named by its task, with the `model_meta.json` MTEB writes beside it as
  its config and the model's name as its experiment; that `model_meta.json` is no run of its own;
- an lm-evaluation-harness results file (`results` keyed by task beside `versions`, `n-shot` or
  `configs`): one run, its `results` (and `groups`) read as collections of tasks (and groups), so
  each task is a context (`{"task": "hellaswag"}`) rather than a method;
- a document with a collection of runs under `models`/`runs`/`experiments`/... keyed by name,
  each entry with its own results or config (a model registry): one record per entry,
  `$.models.<name>`, named by its key, inheriting the document's other fields;
- a dict keyed by method or model, each value a dict holding numbers (or per-epoch lists of
  numbers: a `method -> {train_loss: [...], val_loss: [...]}` comparison), maybe beside a few
  describing strings (an evaluation summary): one record per key (`$.deepwalk`), or one record
  with the methods as contexts (`keyed="context"`). Keys that are subsets (`train`, `eval`:
  DVCLive's `metrics.json`) are contexts of one run, never runs;
- a dict of per-epoch lists of numbers (a Keras `history.history` dump): one run, format `keras`;
- anything else: one run document, `$`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.errors import BadRecord
from etl.readers.jsontext import JSONError, loads, type_name
from etl.readers.record import Record

RECORD_LIST_KEYS = ("results", "trials", "runs", "experiments", "records", "entries")
# Collections of runs keyed by name -> the field their key is kept in (a name field, or one the
# interpreter falls back to for the run name).
RUN_COLLECTIONS = {
    "models": "model",
    "runs": "name",
    "experiments": "name",
    "trials": "name",
    "candidates": "name",
    "methods": "method",
    "variants": "name",
}
# Keys that make a dict a run document rather than an evaluation summary keyed by method.
_RUN_DOCUMENT_KEYS = frozenset(
    {
        "config",
        "params",
        "hparams",
        "args",
        "results",
        "metrics",
        "history",
        "timestamp",
        "run_id",
        "experiment_id",
        "id",
    }
)
_SUBSETS = frozenset({"train", "training", "val", "valid", "validation", "test", "eval", "dev"})
_LM_EVAL_KEYS = ("versions", "n-shot", "configs", "higher_is_better")
_MTEB_MODEL_META = "model_meta.json"
_CV_SCORE_COLUMN = re.compile(r"^(mean|std|rank)_test_|^split\d+_test_")

KEYED_AS_RUNS = "runs"
KEYED_AS_CONTEXT = "context"


def read_json(path: Path, source: str, *, keyed: str = KEYED_AS_RUNS) -> Iterator[Record | BadRecord]:
    try:
        document = loads(path.read_bytes())
    except JSONError as exc:
        yield BadRecord(source, f"line {exc.line}" if exc.line else "$", str(exc))
        return
    yield from split_document(document, source, keyed=keyed, path=path)


def split_document(
    document: Any, source: str, *, keyed: str = KEYED_AS_RUNS, path: Path | None = None
) -> Iterator[Record | BadRecord]:
    """The records of one parsed document; `path` (the file on disk) lets a record read a sibling file."""
    if isinstance(document, list):
        yield from _entries(document, source, "$", parent={})
        return
    if not isinstance(document, dict):
        yield BadRecord(source, "$", f"expected object or list, got {type_name(document)}")
        return
    if _is_lm_eval(document):
        yield Record(source, "$", "lm-eval", _lm_eval_record(document))
        return
    if _is_mteb(document):
        yield Record(source, "$", "mteb", _mteb_record(document, path))
        return
    if _is_mteb_model_meta(document, path):
        return  # read into each of its tasks' runs (their config): not a run of its own
    candidates = _cv_results(document, source)
    if candidates is not None:
        yield from candidates
        return
    for key in RECORD_LIST_KEYS:
        entries = document.get(key)
        if isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries):
            parent = {k: v for k, v in document.items() if k != key}
            yield from _entries(entries, source, f"$.{key}", parent=parent)
            return
    for key, value in document.items():
        name_field = RUN_COLLECTIONS.get(key.lower())
        if name_field and _is_run_collection(value):
            parent = {k: v for k, v in document.items() if k != key}
            for name, entry in value.items():
                data = entry if name_field in entry else {name_field: name, **entry}
                yield Record(source, f"$.{key}.{name}", "json", data, parent=parent)
            return
    if _is_history(document):
        # Keras' `history.history` dumped as JSON: metric name -> one value per epoch. The file is the
        # run (its stem the id), so a rewritten history updates the run instead of adding one.
        run_id = source.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        yield Record(source, "$", "keras", {"run_id": run_id, "history": document})
        return
    if _is_keyed_summary(document):
        entries = {k: v for k, v in document.items() if isinstance(v, dict)}
        shared = {k: v for k, v in document.items() if not isinstance(v, dict)}
        if keyed == KEYED_AS_CONTEXT:
            yield Record(source, "$", "json", {**shared, "results": entries})
        else:
            for key, value in entries.items():
                yield Record(source, f"$.{key}", "json", {"method": key, **value}, parent=shared)
        return
    yield Record(source, "$", "json", document)


def _entries(entries: list[Any], source: str, path: str, parent: dict[str, Any]) -> Iterator[Record | BadRecord]:
    for index, entry in enumerate(entries):
        locator = f"{path}[{index}]"
        if not isinstance(entry, dict):
            yield BadRecord(source, locator, f"expected object, got {type_name(entry)}")
        elif _is_optuna_trial(entry):
            yield Record(source, locator, "optuna", _optuna_record(entry), parent=parent)
        elif _is_hyperopt_trial(entry):
            yield Record(source, locator, "hyperopt", _hyperopt_record(entry), parent=parent)
        else:
            yield Record(source, locator, "json", entry, parent=parent)


# --- hyperparameter search trials ----------------------------------------------------------------


def _is_optuna_trial(entry: dict[str, Any]) -> bool:
    """Optuna's FrozenTrial as JSON, or a `trials_dataframe()` row (`params_x` columns)."""
    has_params = isinstance(entry.get("params"), dict) or any(k.startswith("params_") for k in entry)
    return isinstance(entry.get("number"), int) and ("value" in entry or "values" in entry) and has_params


def _optuna_record(entry: dict[str, Any]) -> dict[str, Any]:
    number = entry["number"]
    params = entry.get("params")
    if not isinstance(params, dict):
        params = {k.removeprefix("params_"): v for k, v in entry.items() if k.startswith("params_")}
    results: dict[str, Any] = {}
    if "value" in entry:
        results["value"] = entry["value"]
    values = entry.get("values")
    if isinstance(values, list):  # a multi-objective study: one value per objective, in order
        results.update({f"value_{i}": v for i, v in enumerate(values)})
    elif "values" in entry:
        results["values"] = values
    data: dict[str, Any] = {"trial_id": number, "name": f"trial {number}", "params": params, "results": results}
    intermediate = entry.get("intermediate_values")
    if isinstance(intermediate, dict) and intermediate:
        # Reported with trial.report(value, step): keyed by step, as strings once in JSON.
        data["history"] = [
            {"step": int(step), "intermediate_value": value}
            for step, value in intermediate.items()
            if str(step).lstrip("-").isdigit()
        ]
    data["timestamp"] = entry.get("datetime_start")
    data["end_time"] = entry.get("datetime_complete")
    taken = {"number", "params", "value", "values", "intermediate_values", "datetime_start", "datetime_complete"}
    for key, value in entry.items():
        if key in taken or key.startswith("params_"):
            continue
        # `duration` is a timedelta, written in milliseconds or as text: never seconds to add to the start.
        data["trial_duration" if key == "duration" else key] = value
    return data


def _is_hyperopt_trial(entry: dict[str, Any]) -> bool:
    misc = entry.get("misc")
    return "tid" in entry and isinstance(entry.get("result"), dict) and isinstance(misc, dict) and "vals" in misc


def _hyperopt_record(entry: dict[str, Any]) -> dict[str, Any]:
    tid = entry["tid"]
    misc = dict(entry["misc"])
    vals = misc.pop("vals")
    params: dict[str, Any] = {}
    if isinstance(vals, dict):
        for key, value in vals.items():
            # One value per sampled parameter; an empty list is a parameter of a branch not taken.
            if isinstance(value, list) and len(value) == 1:
                params[key] = value[0]
            elif value != []:
                params[key] = value
    result = dict(entry["result"])
    data: dict[str, Any] = {
        "trial_id": tid,
        "name": f"trial {tid}",
        "params": params,
        "results": {k: v for k, v in result.items() if k != "status"},
        "status": result.get("status"),
        "timestamp": _mongo_date(entry.get("book_time")),
        "end_time": _mongo_date(entry.get("refresh_time")),
        "misc": misc,
    }
    for key, value in entry.items():
        if key not in ("tid", "misc", "result", "book_time", "refresh_time"):
            data.setdefault(key, value)
    return data


def _mongo_date(value: Any) -> Any:
    """hyperopt's MongoTrials keep times as `{"$date": ...}` when exported with bson's json_util."""
    return value.get("$date") if isinstance(value, dict) and "$date" in value else value


# --- scikit-learn cv_results_ --------------------------------------------------------------------


def _cv_results(document: dict[str, Any], source: str) -> list[Record] | None:
    """One record per candidate of a `cv_results_` dump, or None when the document is not one."""
    columns = {k: _column(v) for k, v in document.items()}
    params = columns.get("params")
    if not params or not all(isinstance(p, dict) for p in params):
        return None
    if not any(_CV_SCORE_COLUMN.match(k) for k in columns):
        return None
    table = {k: v for k, v in columns.items() if v is not None and len(v) == len(params)}
    shared = {k: v for k, v in document.items() if k not in table}
    records = []
    for index, candidate in enumerate(params):
        results = {k: v[index] for k, v in table.items() if k != "params" and not k.startswith("param_")}
        data = {"params": candidate, "results": results}
        records.append(Record(source, f"$.params[{index}]", "sklearn-cv", data, parent=shared))
    return records


def _column(value: Any) -> list[Any] | None:
    """A column as a list: a JSON list, or pandas' `to_json()` dict keyed by row number."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and all(isinstance(k, str) and k.isdigit() for k in value):
        rows = sorted(value, key=int)
        if [int(k) for k in rows] == list(range(len(rows))):
            return [value[k] for k in rows]
    return None


# --- lm-evaluation-harness -----------------------------------------------------------------------


def _is_lm_eval(document: dict[str, Any]) -> bool:
    results = document.get("results")
    return (
        isinstance(results, dict)
        and bool(results)
        and all(isinstance(v, dict) for v in results.values())
        and any(isinstance(document.get(k), dict) for k in _LM_EVAL_KEYS)
    )


def _lm_eval_record(document: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in document.items() if k not in ("results", "groups")}
    model = _lm_eval_model(document)
    if model and "name" not in data:
        data["name"] = model
    results: dict[str, Any] = {"tasks": document["results"]}
    if isinstance(document.get("groups"), dict) and document["groups"]:
        results["groups"] = document["groups"]
    data["results"] = results
    return data


def _lm_eval_model(document: dict[str, Any]) -> str | None:
    """The evaluated model, the file's own name for its run: `model_name` (lm-eval >= 0.4.3), else
    the `pretrained=` of `config.model_args` (a string, or a dict in newer versions)."""
    name = document.get("model_name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    config = document.get("config")
    args = config.get("model_args") if isinstance(config, dict) else None
    if isinstance(args, dict):
        args = ",".join(f"{k}={v}" for k, v in args.items())
    if isinstance(args, str):
        for part in args.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "pretrained" and value.strip():
                return value.strip()
    return None


# --- MTEB ----------------------------------------------------------------------------------------


def _is_mteb(document: dict[str, Any]) -> bool:
    """One MTEB task result: `task_name`, `scores` by split, and MTEB's own version or the dataset's."""
    return (
        isinstance(document.get("task_name"), str)
        and isinstance(document.get("scores"), dict)
        and ("mteb_version" in document or "dataset_revision" in document)
    )


def _mteb_record(document: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """Named by its task. MTEB writes `<model>/<revision>/<task>.json` with the model's
    `model_meta.json` beside it: the evaluated model is the run's configuration, and its name the
    experiment, so one model's tasks are together and two models' runs differ by their config."""
    data = {"name": document["task_name"], **document}
    model = _mteb_model_meta(path.parent / _MTEB_MODEL_META) if path is not None else None
    if model is not None:
        data.setdefault("config", model)
        if isinstance(model.get("name"), str) and model["name"].strip():
            data.setdefault("experiment", model["name"].strip())
    return data


def _mteb_model_meta(meta: Path) -> dict[str, Any] | None:
    try:
        model = loads(meta.read_bytes()) if meta.is_file() else None
    except (OSError, JSONError):
        return None
    return model if isinstance(model, dict) and "name" in model and "revision" in model else None


def _is_mteb_model_meta(document: dict[str, Any], path: Path | None) -> bool:
    """MTEB's `model_meta.json` (`name`, `revision`, ...), when a task result sits beside it."""
    if path is None or path.name != _MTEB_MODEL_META or not {"name", "revision"} <= set(document):
        return False
    for sibling in path.parent.glob("*.json"):
        if sibling.name == _MTEB_MODEL_META:
            continue
        try:
            other = loads(sibling.read_bytes())
        except (OSError, JSONError):
            continue
        if isinstance(other, dict) and _is_mteb(other):
            return True
    return False


# --- shapes --------------------------------------------------------------------------------------


def _is_history(document: dict[str, Any]) -> bool:
    """Every value a non-empty list of numbers (gaps as null allowed): a per-epoch training history."""
    return bool(document) and all(
        isinstance(v, list) and v and all(x is None or _is_number(x) for x in v) and any(_is_number(x) for x in v)
        for v in document.values()
    )


def _is_keyed_summary(document: dict[str, Any]) -> bool:
    """Two or more entries, each a dict holding a number or a list of numbers directly, none a
    subset; beside them only describing strings; and no key of a run document."""
    if _RUN_DOCUMENT_KEYS & {k.lower() for k in document}:
        return False
    entries = {k: v for k, v in document.items() if isinstance(v, dict)}
    others = [v for k, v in document.items() if k not in entries]
    if len(entries) < 2 or any(not isinstance(v, str | None) for v in others):
        return False
    if _SUBSETS & {k.lower() for k in entries}:
        return False
    return all(any(_is_number(v) or _is_number_list(v) for v in value.values()) for value in entries.values())


def _is_run_collection(value: Any) -> bool:
    """A dict of runs keyed by name: every entry a dict with its own results, config, id or time."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(v, dict) and _RUN_DOCUMENT_KEYS & {k.lower() for k in v} for v in value.values())
    )


def _is_number_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(x is None or _is_number(x) for x in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
