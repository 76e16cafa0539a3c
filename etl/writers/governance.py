"""Governance against an Aim repo: read runs as `RunView`s, write their validation back, and
track each pass into the compliance run.

Reads go through the index (refreshed first, so runs logged live and closed are seen); writes open
one run at a time and let it go at once, because a `Run` object keeps its lock until collected.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aim import Run
from aim.sdk.types import QueryReportMode
from aim.storage.context import Context

from etl import __version__
from etl.errors import EtlError
from etl.governance.model import TAG_PREFIX, RunView, TraceSummary, Validation, context_key
from etl.writers import aim_adapter, aim_index
from etl.writers.naming import run_hash_for
from etl.writers.verdicts import WORKERS, Verdict, VerdictsWritten, VerdictWriter, write_verdicts

GOVERNANCE_EXPERIMENT = "governance"
# The param that marks the tool's own compliance runs, which are never validated themselves.
GOVERNANCE_PARAM = "governance"

RunHeld = aim_adapter.RunHeld
GC_EVERY = 64


@dataclass(frozen=True)
class StoredRun:
    """A run as found in the repo: what rules see, and what validation it already carries."""

    view: RunView
    validation: Mapping[str, Any] | None
    tags: tuple[str, ...]
    end_time: float | None

    def carries(self, validation: Validation) -> bool:
        """True when writing `validation` would change nothing: same param, and its tag alone."""
        status_tags = [t for t in self.tags if t.startswith(TAG_PREFIX)]
        return _canonical(self.validation) == _canonical(validation.to_param()) and status_tags == [validation.tag]


class GovernanceRepo:
    """One Aim repo seen by `validate`: refreshed index on open, runs read lazily."""

    def __init__(self, path: str | Path) -> None:
        aim_adapter.check_aim_version()
        if not aim_adapter.repo_exists(path):
            raise EtlError(f"{path}: no Aim repo here (no .aim folder)")
        self.path = path
        self.writer = aim_adapter.open_repo(path)
        aim_index.refresh(self.writer)
        # A Repo opened before indexing keeps reading the old index: read through a fresh one.
        self.reader = aim_adapter.open_repo(path)
        self._unreleased = 0

    def count(self) -> int:
        """Runs in the repo's index: what a pass over every run will meet (compliance runs included)."""
        return sum(1 for _ in self.reader.meta_tree.subtree("chunks").keys())  # noqa: SIM118 - a tree, not a dict

    def runs(self, query: str | None = None) -> Iterator[StoredRun]:
        """Every run matching the AimQL `query` (all runs when None), the compliance runs left out."""
        rows = _sql_rows(self.reader)
        if query:
            matches = self.reader.query_runs(query, report_mode=QueryReportMode.DISABLED)
            found = (_stored(view.run, rows.get(view.run.hash)) for view in matches.iter_runs())
        else:
            hashes = self._chunks().keys()  # noqa: SIM118 - a tree, not a dict
            found = (self._stored(run_hash, rows.get(run_hash)) for run_hash in hashes)
        for stored in found:
            if stored is not None:
                yield stored

    def _chunks(self):
        return self.reader.meta_tree.subtree("chunks")

    def _stored(self, run_hash: str, row: tuple[str | None, str | None, tuple[str, ...]] | None) -> StoredRun | None:
        """A run read straight from the index, its whole subtree at once: a `Run` object and a read per
        part cost twice as much, and a pass over an unchanged repo is little else."""
        if row is None:  # no SQL row: let Aim say what such a run's name and tags are
            return _stored(Run(run_hash, repo=self.reader, read_only=True))
        meta = self._chunks().subtree(run_hash).collect()
        meta = meta if isinstance(meta, dict) else {}
        return _stored_meta(run_hash, meta, row, _series_loader(self.reader, run_hash))

    def write_many(self, verdicts: Sequence[tuple[str, Validation]], workers: int = WORKERS) -> VerdictsWritten:
        """Write many verdicts straight into storage (see `etl.writers.verdicts`), indexed in one batch."""
        return write_verdicts(self.writer, [Verdict(h, v.to_param(), v.tag) for h, v in verdicts], workers=workers)

    def verdict_writer(self, batch: int, workers: int = WORKERS) -> GovernanceWriter:
        """Write verdicts as they are judged, while the next runs are read; settled `batch` at a time."""
        return GovernanceWriter(VerdictWriter(self.writer, workers=workers, batch=batch))

    def write(self, run_hash: str, validation: Validation, end_time: float | None) -> None:
        """Put `validation` on the run with exactly one status tag; raise `RunHeld` if it is active."""
        run = aim_adapter.open_for_update(self.writer, run_hash)
        try:
            annotate(run, validation)
        finally:
            aim_adapter.close_keeping_end(run, end_time)
            del run
            self._release_locks()

    def _release_locks(self, now: bool = False) -> None:
        """A closed `Run` keeps its lock until the collector frees it (its tracker and resources
        refer back to it), and meanwhile a training job resuming that run would be refused. A full
        collection costs ~50 ms, as much as writing the run, so it runs every `GC_EVERY` runs: no
        lock outlives a few seconds, and 10k runs do not pay eight minutes of collections."""
        self._unreleased += 1
        if now or self._unreleased >= GC_EVERY:
            gc.collect()
            self._unreleased = 0

    def index(self, run_hashes: Sequence[str]) -> bool:
        """Re-index what was written, so AimQL and `aim up` see the new validation at once; False
        when another process (`aim up`) holds the index, whose indexer then picks the runs up."""
        self._release_locks(now=True)
        return aim_index.index_runs(self.writer, list(run_hashes))

    def track_compliance(
        self, rules_version: str, figures: Mapping[str, float], rule_rates: Mapping[str, float]
    ) -> str:
        """Append one step to the rules version's compliance run; return its hash.

        One run per rules version (hash derived from it), so a team's trend under one standard is
        one chart; a new version starts a new line.
        """
        run_hash = run_hash_for(f"{GOVERNANCE_EXPERIMENT}:{rules_version}")
        if aim_adapter.run_exists(self.writer, run_hash):
            run = aim_adapter.open_for_update(self.writer, run_hash)
        else:
            run = aim_adapter.create_run(self.writer, run_hash, GOVERNANCE_EXPERIMENT)
            run.name = rules_version
            run[GOVERNANCE_PARAM] = {"rules_version": rules_version, "tool": f"aim-etl {__version__}"}
        try:
            step = _next_step(run)
            now = dt.datetime.now(dt.UTC).timestamp()
            for name, value in figures.items():
                aim_adapter.track_point(run, value, name, step, None, {}, now)
            for rule, rate in rule_rates.items():
                aim_adapter.track_point(run, rate, "rule_pass_rate", step, None, {"rule": rule}, now)
        finally:
            aim_adapter.close_run(run, None)
            del run
        self.index([run_hash])  # which collects the run first, and its lock with it
        return run_hash


class GovernanceWriter:
    """A `VerdictWriter` that takes validations, as `GovernanceRepo.write_many` does."""

    def __init__(self, writer: VerdictWriter) -> None:
        self._writer = writer

    def submit(self, run_hash: str, validation: Validation) -> list[VerdictsWritten]:
        """Start writing; return the batches settled meanwhile (their runs in the order submitted)."""
        return self._writer.submit(Verdict(run_hash, validation.to_param(), validation.tag))

    def close(self) -> list[VerdictsWritten]:
        return self._writer.close()

    def __enter__(self) -> GovernanceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.__exit__(*exc)


def stored_view(run) -> StoredRun | None:
    """What rules see of a run read some other way (`remote_governance`): a `Run`, or any object with
    its `hash`, `experiment`, `name`, `tags`, `meta_run_tree` and `get_metric`. None for a compliance run."""
    return _stored(run)


def annotate(run: Run, validation: Validation) -> None:
    """Put `validation` on a run open for writing, with its status tag as the only one."""
    run["validation"] = validation.to_param()
    for tag in run.tags:
        if tag.startswith(TAG_PREFIX) and tag != validation.tag:
            run.remove_tag(tag)
    if validation.tag not in run.tags:
        run.add_tag(validation.tag)


def _canonical(value: Any) -> bytes:
    """Compared as canonical JSON: a NaN value (a NaN learning rate reported back) is never equal to
    itself, and a run holding one would be rewritten by every pass."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _next_step(run: Run) -> int:
    """One step per pass: after the highest step any compliance series reached."""
    last = [s.get("last_step", -1) for names in _collect(run.meta_run_tree, "traces").values() for s in names.values()]
    return max(last, default=-1) + 1


def _sql_rows(repo) -> dict[str, tuple[str | None, str | None, tuple[str, ...]]]:
    """hash -> (name, experiment, tags) of every run, in one query: asking each `Run` costs one
    query per property, a tenth of a pass over an unchanged repo."""
    from aim.storage.structured.sql_engine.models import Run as RunRow
    from sqlalchemy.orm import Session, joinedload, selectinload

    with Session(repo.structured_db.engine) as session:
        query = session.query(RunRow).options(joinedload(RunRow.experiment), selectinload(RunRow.tags))
        return {
            row.hash: (row.name, row.experiment.name if row.experiment else None, tuple(t.name for t in row.tags))
            for row in query
        }


def _stored(run: Run, row: tuple[str | None, str | None, tuple[str, ...]] | None = None) -> StoredRun | None:
    tree = run.meta_run_tree
    meta = {key: _collect(tree, key) for key in ("attrs", "contexts", "traces")}
    with contextlib.suppress(KeyError):
        meta["end_time"] = tree["end_time"]
    row = row if row is not None else (run.name, run.experiment, tuple(run.tags))
    return _stored_meta(run.hash, meta, row, _series_loader(run.repo, run.hash, run))


def _stored_meta(
    run_hash: str,
    meta: Mapping[str, Any],
    row: tuple[str | None, str | None, tuple[str, ...]],
    series: Callable[[str, str], list[float]],
) -> StoredRun | None:
    """What rules see of a run, from its meta subtree (`attrs`, `contexts`, `traces`, `end_time`)."""
    run_name, experiment, tags = row
    params = {k: v for k, v in _part(meta, "attrs").items() if not str(k).startswith("__")}
    if GOVERNANCE_PARAM in params and experiment == GOVERNANCE_EXPERIMENT:
        return None
    contexts = _part(meta, "contexts")
    traces: dict[tuple[str, str], TraceSummary] = {}
    for ctx_id, names in _part(meta, "traces").items():
        context = contexts.get(ctx_id, contexts.get(str(ctx_id), {}))
        for name, summary in names.items():
            if summary.get("version") != 2:  # images, texts, distributions: no numeric summary
                continue
            traces[(name, context_key(context))] = TraceSummary(
                first=_number(summary.get("first")),
                last=_number(summary.get("last")),
                min=_number(summary.get("min")),
                max=_number(summary.get("max")),
                first_step=summary.get("first_step"),
                last_step=summary.get("last_step"),
            )
    view = RunView(key=run_hash, experiment=experiment, name=run_name, params=params, traces=traces, series=series)
    end_time = meta.get("end_time")
    return StoredRun(view=view, validation=params.get("validation"), tags=tags, end_time=end_time)


def _series_loader(repo, run_hash: str, run: Run | None = None) -> Callable[[str, str], list[float]]:
    """Whole series are read only for `agg = "mean"` rules; the summary serves the others (the `Run`
    is opened only then)."""

    def load(name: str, context: str) -> list[float]:
        metric = (run or Run(run_hash, repo=repo, read_only=True)).get_metric(name, Context(orjson.loads(context)))
        if metric is None:
            return []
        return [float(v) for v in metric.values.values_numpy()]

    return load


def _part(meta: Mapping[str, Any], key: str) -> dict[Any, Any]:
    value = meta.get(key)
    return value if isinstance(value, dict) else {}


def _collect(tree, key: str) -> dict[Any, Any]:
    try:
        value = tree.collect(key)
    except KeyError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
