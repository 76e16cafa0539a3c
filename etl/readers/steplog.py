"""Per-step JSONL training logs: every line is a point of ONE run (`{"step": 100, "loss": ...}`).

Read as EXPERIMENT_LOG-style JSONL they would become one run per line, thousands of one-point runs.
Detected by their first lines: a step counter on (nearly) every line, and no id, config or results
section on any. Epoch-summary lines mixed in (`{"epoch": 2, "step": 32926, "val_loss": ...}`) are
points too; one without a step gets the step of the line before it. A step logged twice keeps its
last value, as Aim itself would (a point is keyed by its step).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from etl.errors import BadRecord
from etl.readers.jsonl import read_jsonl
from etl.readers.jsontext import JSONError, loads
from etl.readers.record import Record

STEPS = "steps"
_STEP_KEYS = ("step", "global_step", "iteration", "iter", "training_iteration")
_RUN_KEYS = frozenset(
    {"experiment_id", "run_id", "id", "config", "params", "hparams", "args", "results", "metrics", "history"}
)
_SNIFF_LINES = 20


def is_step_log(path: Path) -> bool:
    """Most of the first lines carry a step counter, and none looks like a whole experiment."""
    rows = []
    with path.open("rb") as fh:
        for raw in fh:
            if len(rows) >= _SNIFF_LINES:
                break
            if raw.strip():
                try:
                    rows.append(loads(raw.strip()))
                except JSONError:
                    continue
    if len(rows) < 2 or not all(isinstance(r, dict) for r in rows):
        return False
    if any(_RUN_KEYS & {k.lower() for k in r} for r in rows):
        return False
    with_step = sum(any(isinstance(r.get(k), int) and not isinstance(r.get(k), bool) for k in _STEP_KEYS) for r in rows)
    return with_step >= 0.8 * len(rows)


def read_step_log(path: Path, source: str, **_: object) -> Iterator[Record | BadRecord]:
    """One record for the whole file; bad lines are yielded as `BadRecord`s and the rest is kept."""
    rows: list[dict] = []
    first = last = None
    last_step = None
    for item in read_jsonl(path, source):
        if isinstance(item, BadRecord):
            yield item
            continue
        row = dict(item.data)
        step_key = next((k for k in _STEP_KEYS if k in row), None)
        if step_key is None and last_step is not None:
            row["step"] = last_step
        elif step_key is not None:
            last_step = row[step_key]
        rows.append(row)
        line = int(item.locator.removeprefix("line "))
        first = line if first is None else first
        last = line
    if rows:
        locator = f"lines {first}-{last}" if first != last else f"line {first}"
        # The file is the run: its stem is the id, so an append changes the run instead of adding one.
        yield Record(source, locator, STEPS, {"run_id": Path(source).stem, "history": rows})
