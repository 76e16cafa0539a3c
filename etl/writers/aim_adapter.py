"""Every private Aim call the importer needs, in one place.

Aim's public SDK cannot do four things an importer must: choose a run's hash, stamp a point with
its original time, set a run's creation time, and set its end time to anything but "now". Each is
done here, against the Aim versions in ``TESTED_AIM_VERSIONS``; ``tests/test_aim_adapter.py``
fails loudly when an Aim upgrade moves any of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aim
import aim.sdk.base_run
import aim.storage
from aim import Repo, Run
from aim.sdk.index_manager import RepoIndexManager

from etl.writers.naming import repo_root

TESTED_AIM_VERSIONS = ("3.29",)


def check_aim_version() -> None:
    """Refuse to write with an Aim whose internals we have not checked."""
    from importlib.metadata import version as installed_version

    version = installed_version("aim")
    if not version.startswith(TESTED_AIM_VERSIONS):
        raise RuntimeError(
            f"aim {version} is not supported: aim-etl was tested with aim {', '.join(TESTED_AIM_VERSIONS)}.x"
        )


def repo_exists(path: str | Path) -> bool:
    return (repo_root(path) / ".aim").is_dir()


def open_repo(path: str | Path) -> Repo:
    """Open the repo, creating it when missing (as `aim init` would).

    A new `Repo` every time, not `Repo.from_path`'s cached one: a cached instance keeps reading
    the index as it was when first opened, and would miss what another import wrote since.
    """
    root = repo_root(path)
    root.mkdir(parents=True, exist_ok=True)
    if repo_exists(root):
        return Repo(str(root))
    with _schema_created_here(root):
        return Repo(str(root), init=True)


@contextlib.contextmanager
def _schema_created_here(root: Path) -> Iterator[None]:
    """Create a new repo's structured DB in this process, so that `Repo(init=True)` finds it done.

    Aim runs its alembic migrations in a child Python process (`python -m alembic upgrade head`),
    which imports Aim all over again: ~1.8 s of CPU, against ~0.1 s for the same migrations run
    here, which matters on a small first import. The migrations are Aim's own, run as its env.py
    runs them online (its `target_metadata`, one transaction), without the two things env.py
    would do to this process: `fileConfig` of Aim's alembic.ini, which resets every logger, and
    `ScriptDirectory.from_config`, which puts "." on `sys.path`. `tests/test_aim_adapter.py`
    checks the schema against the one Aim's own child process creates.

    The DB object is handed over through `DB.from_path`'s pool (a weak one: this frame keeps it
    alive) marked upgraded, which is what makes `Repo.__init__` skip its child process; anything
    unexpected leaves it unmarked, and Aim then runs its migrations its own way.
    """
    from aim.storage.structured.db import DB

    aim_dir = root / ".aim"
    aim_dir.mkdir(parents=True, exist_ok=True)
    db = DB.from_path(str(aim_dir))
    try:
        _run_aim_migrations(db.engine)
        db._upgraded = True
    except Exception:  # noqa: BLE001 - Aim's own upgrade (in its child process) takes over
        pass
    yield
    del db


def _run_aim_migrations(engine) -> None:
    from aim.storage.structured.sql_engine.models import Base
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(Path(aim.storage.__file__).parent / "migrations"))

    def upgrade(revision, context):  # what `alembic upgrade head` hands its env.py
        return script._upgrade_revs("head", revision)

    environment = EnvironmentContext(Config(), script, fn=upgrade, destination_rev="head")
    with environment, engine.connect() as connection:
        environment.configure(connection=connection, target_metadata=Base.metadata)
        with environment.begin_transaction():
            environment.run_migrations()


@contextlib.contextmanager
def chosen_hash(run_hash: str) -> Iterator[None]:
    # `Run(run_hash=X)` only opens existing runs; a new run takes its hash from this module-level
    # function, so for the duration of one constructor call it returns ours.
    original = aim.sdk.base_run.generate_run_hash
    aim.sdk.base_run.generate_run_hash = lambda hash_length=24: run_hash
    try:
        yield
    finally:
        aim.sdk.base_run.generate_run_hash = original


def run_exists(repo: Repo, run_hash: str) -> bool:
    return (Path(repo.path) / "meta" / "chunks" / run_hash).is_dir()


def create_run(repo: Repo, run_hash: str, experiment: str | None) -> Run:
    """A new run with our hash; no system metrics and no terminal capture of the importing process."""
    with chosen_hash(run_hash):
        return Run(
            repo=repo,
            experiment=experiment,
            system_tracking_interval=None,
            capture_terminal_logs=False,
            log_system_params=False,
        )


def track_point(
    run: Run,
    value: float,
    name: str,
    step: int,
    epoch: int | None,
    context: dict[str, Any],
    time: float,
) -> None:
    """Track one point with its original timestamp (public `track` stamps "now").

    `time=None` (a source with no time at all) falls back to now, as `track` would.
    """
    if time is None:
        time = dt.datetime.now(dt.UTC).timestamp()
    run._tracker._track(value, time, name, step, epoch, context=context)


def close_run(run: Run, end_time: float | None) -> None:
    """Close the run with our end time: `close()` would stamp the import time as the end."""
    resources = run._resources
    if resources is not None and end_time is not None and math.isfinite(end_time):
        tree = resources.meta_run_tree

        def _set_end_time() -> None:
            tree["end_time"] = end_time

        resources.set_run_end_time = _set_end_time
    run.close()


def set_creation_time(run: Run, when: dt.datetime) -> None:
    """Write the original creation time into the structured DB, which has no SDK setter for it.

    Aim keeps it as naive UTC in the `run` table; `run.creation_time` and the UI read it there.
    Done through the run's own session, so later name and tag updates (which commit that session)
    do not write the old value back.
    """
    from aim.storage.structured.sql_engine.entities import session_commit_or_flush

    props = run.props
    props._model.created_at = when.astimezone(dt.UTC).replace(tzinfo=None)
    session_commit_or_flush(props._session)


class _Indexer:
    """`RepoIndexManager.index` without the manager: constructing a manager opens an inotify
    watcher that is never closed (a process importing in many chunks ran out of them), and
    `get_index_manager` hands back a cached manager holding the first, stale Repo of a path."""

    index = RepoIndexManager.index
    _get_run_checksum = RepoIndexManager._get_run_checksum

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.repo_path = repo.path
        self.chunks_dir = Path(repo.path) / "meta" / "chunks"
        self._corrupted_runs: set[str] = set()

    def _stop_monitoring_chunk(self, run_hash: str) -> None:
        """Nothing is monitored here."""


def index_runs(repo: Repo, run_hashes: list[str]) -> None:
    """Make finished runs visible to `Repo.iter_runs()` and `aim runs ls` without `aim up`."""
    indexer = _Indexer(repo)
    for run_hash in run_hashes:
        indexer.index(run_hash)


def delete_run(repo: Repo, run_hash: str) -> None:
    """Delete a run's data; raise if Aim could not (it only logs a warning and returns False)."""
    # Containers this Repo still holds open for the run would serve the deleted data to the next
    # reader (the indexer among them) after the run is written again under the same hash.
    for config in [c for c in list(repo.container_pool.keys()) if c.sub == run_hash]:
        repo.container_pool.pop(config, None)
    if repo.delete_run(run_hash):
        return
    # Aim gives up on a run a killed process left half-created (no index entry, a RocksDB folder
    # without its files). Remove what it would remove, then check nothing is left.
    root = Path(repo.path)
    for part in ("meta", "seqs"):
        for sub in ("chunks", "progress", "locks"):
            target = root / part / sub / run_hash
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
    (root / "locks" / f"{run_hash}.softlock").unlink(missing_ok=True)
    if run_exists(repo, run_hash):
        raise RuntimeError(f"aim could not delete run {run_hash}")


def read_provenance(repo: Repo, run_hash: str) -> dict[str, Any] | None:
    """The `etl` param of a run written earlier, read from its own chunk (no index needed).

    `complete` is true only when the run was also closed (it has an end time): a process killed
    between writing provenance and closing leaves a run that must be rewritten.
    """
    if not run_exists(repo, run_hash):
        return None
    try:
        tree = repo.request_tree("meta", run_hash, read_only=True, skip_read_optimization=True).subtree("meta")
        run_tree = tree.subtree(("chunks", run_hash))
        provenance = run_tree.subtree("attrs").collect("etl")
    except KeyError:
        return None
    except Exception:  # noqa: BLE001 - a run a killed process left half-created cannot be opened: incomplete
        return None
    if not isinstance(provenance, dict):
        return None
    try:
        ended = run_tree["end_time"] is not None
    except KeyError:
        ended = False
    return {**provenance, "complete": bool(provenance.get("complete")) and ended}


def iter_provenance(repo: Repo) -> Iterator[tuple[str, dict[str, Any]]]:
    """(run hash, `etl` param) of every complete run this tool wrote: what a lost ledger is rebuilt from."""
    chunks = Path(repo.path) / "meta" / "chunks"
    if not chunks.is_dir():
        return
    for entry in sorted(chunks.iterdir()):
        provenance = read_provenance(repo, entry.name)
        if provenance and provenance.get("run_key"):
            yield entry.name, provenance


def refresh_index(repo: Repo) -> list[str]:
    """Index every run whose chunk changed since it was last indexed, as `aim up` does on start.

    Runs logged by training code and closed are invisible to `Repo.iter_runs()` and AimQL until
    then. Returns the hashes indexed. Open a fresh `Repo` afterwards: this one keeps the old index.
    """
    indexer = _Indexer(repo)
    if not indexer.chunks_dir.is_dir():
        return []
    index = repo.request_tree("meta", read_only=True)
    stale = [
        entry.name
        for entry in sorted(indexer.chunks_dir.iterdir())
        if entry.is_dir() and indexer._get_run_checksum(entry.name) != index.get(("index_cache", entry.name))
    ]
    for run_hash in stale:
        indexer.index(run_hash)
    return stale


class RunHeld(Exception):
    """Another process holds the run open for writing (a training job still logging, or an importer)."""


def open_for_update(repo: Repo, run_hash: str) -> Run:
    """Open an existing run to change its params or tags, or raise `RunHeld`.

    A run being logged by another process raises `RunLockingError` (its softlock) or RocksDB's
    `RocksIOError` (its database lock): both mean "active, try later", never a reason to force it.
    """
    import aimrocks.errors
    from aim.sdk.errors import RunLockingError

    # Aim lists a repo's runs through a 0.5 s cache keyed by the repo's path, shared by every `Repo`
    # of that path: a run created less than 0.5 s ago (the compliance run of the previous pass)
    # would be "missing" (MissingRunError) although its chunk is on disk.
    Repo._all_run_hashes.cache_clear()
    try:
        return Run(
            run_hash=run_hash,
            repo=repo,
            system_tracking_interval=None,
            capture_terminal_logs=False,
            log_system_params=False,
        )
    except (RunLockingError, aimrocks.errors.RocksIOError) as error:
        raise RunHeld(str(error) or type(error).__name__) from error


def close_keeping_end(run: Run, end_time: float | None) -> None:
    """Close a run opened only to annotate it, leaving its end time (or its lack of one) as it was.

    `close()` would stamp "now" as the end of every run validated, rewriting its duration.
    """
    resources = run._resources
    if resources is not None:
        tree = resources.meta_run_tree

        def _keep_end_time() -> None:
            if end_time is not None:
                tree["end_time"] = end_time

        resources.set_run_end_time = _keep_end_time
    run.close()
