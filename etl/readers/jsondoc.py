"""Result JSON documents, in the shapes projects write them.

- a list of result records (`[{params, metrics}, ...]`): one record per entry, `$[3]`;
- a document holding such a list under `results`/`trials`/`runs`/... (a grid search): one record
  per entry, `$.results[3]`, each inheriting the document's other fields (its name and time);
- a dict keyed by method or model, each value a dict of numbers (an evaluation summary):
  one record per key (`$.deepwalk`), or one record with the methods as contexts (`keyed="context"`);
- a dict of per-epoch lists of numbers (a Keras `history.history` dump): one run, format `keras`;
- anything else: one run document, `$`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from etl.errors import BadRecord
from etl.readers.jsontext import JSONError, loads, type_name
from etl.readers.record import Record

RECORD_LIST_KEYS = ("results", "trials", "runs", "experiments", "records", "entries")
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

KEYED_AS_RUNS = "runs"
KEYED_AS_CONTEXT = "context"


def read_json(path: Path, source: str, *, keyed: str = KEYED_AS_RUNS) -> Iterator[Record | BadRecord]:
    try:
        document = loads(path.read_bytes())
    except JSONError as exc:
        yield BadRecord(source, f"line {exc.line}" if exc.line else "$", str(exc))
        return
    yield from split_document(document, source, keyed=keyed)


def split_document(document: Any, source: str, *, keyed: str = KEYED_AS_RUNS) -> Iterator[Record | BadRecord]:
    if isinstance(document, list):
        yield from _entries(document, source, "$", parent={})
        return
    if not isinstance(document, dict):
        yield BadRecord(source, "$", f"expected object or list, got {type_name(document)}")
        return
    for key in RECORD_LIST_KEYS:
        entries = document.get(key)
        if isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries):
            parent = {k: v for k, v in document.items() if k != key}
            yield from _entries(entries, source, f"$.{key}", parent=parent)
            return
    if _is_history(document):
        # Keras' `history.history` dumped as JSON: metric name -> one value per epoch. The file is the
        # run (its stem the id), so a rewritten history updates the run instead of adding one.
        run_id = source.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        yield Record(source, "$", "keras", {"run_id": run_id, "history": document})
        return
    if _is_keyed_summary(document):
        if keyed == KEYED_AS_CONTEXT:
            yield Record(source, "$", "json", {"results": document})
        else:
            for key, value in document.items():
                yield Record(source, f"$.{key}", "json", {"method": key, **value})
        return
    yield Record(source, "$", "json", document)


def _entries(entries: list[Any], source: str, path: str, parent: dict[str, Any]) -> Iterator[Record | BadRecord]:
    for index, entry in enumerate(entries):
        locator = f"{path}[{index}]"
        if isinstance(entry, dict):
            yield Record(source, locator, "json", entry, parent=parent)
        else:
            yield BadRecord(source, locator, f"expected object, got {type_name(entry)}")


def _is_history(document: dict[str, Any]) -> bool:
    """Every value a non-empty list of numbers (gaps as null allowed): a per-epoch training history."""
    return bool(document) and all(
        isinstance(v, list) and v and all(x is None or _is_number(x) for x in v) and any(_is_number(x) for x in v)
        for v in document.values()
    )


def _is_keyed_summary(document: dict[str, Any]) -> bool:
    """Every value a dict holding at least one number directly, and no key of a run document."""
    if len(document) < 2 or _RUN_DOCUMENT_KEYS & {k.lower() for k in document}:
        return False
    return all(isinstance(value, dict) and any(_is_number(v) for v in value.values()) for value in document.values())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
