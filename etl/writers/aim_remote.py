"""Every private Aim call the importer needs against an `aim://` server, in one place.

Checked on loopback against `aim server` (aim 3.29.1); `tests/test_remote.py` fails when an Aim
upgrade moves any of it. What Aim's client can and cannot do over the wire, as found:

- The run hash can be chosen (the same `generate_run_hash` patch as locally: it runs client-side).
- The creation time can be set: `Repo.request_props(hash, read_only=False, created_at=...)` called
  before the run exists makes the server create the run's row with that time. Once the row
  exists it cannot be changed (the proxy has no setter): an edited record keeps its first date.
- Original point times (the tracker's time argument) and the end time both arrive.
- A run can be deleted (`Repo.delete_run` is forwarded), but re-creating a run under the hash of
  one just deleted is unsafe: the server may still hold the old run's RocksDB handles, and the new
  run's files were found without their `CURRENT` file. So an existing run is never deleted to be
  replaced: it is reset in place (params emptied, tags removed, every series and its summary
  deleted key by key) and written again, which leaves nothing stale, shorter series included.
- Writes are queued and sent by a background thread that retries a dead server for ever, and
  every read first waits for that queue: against a server killed mid-import, Aim's client blocks
  for good (and so would its exit handlers). `guarded` runs each step in a thread, watches the
  server, and on its death drops the client's queue and exit handlers and raises
  `ServerUnavailable`; nothing was marked done, and the next sync rewrites the run.
- Each `track` is one websocket round trip; `batched` sends several points in one message (few:
  the server unpacks a message in time quadratic in its size).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from aim import Repo, Run

from etl.errors import ServerUnavailable
from etl.remote import RemoteTarget
from etl.writers import aim_adapter

T = TypeVar("T")
# The hash patch is module-global in Aim: runs created from several threads take turns.
_CREATE_LOCK = threading.Lock()
# Seconds a server may stay unreachable before the import gives up on it (a restart takes a few).
GRACE = float(os.environ.get("AIM_ETL_SERVER_GRACE", "10"))
_POLL = 0.05


class RunHeld(Exception):
    """Another writer (an importer, a training job) holds the run open on the server."""


def open_repo(target: RemoteTarget) -> Repo:
    """Aim's client for the server; `ServerUnavailable` when it does not answer."""
    try:
        return Repo(target.address)
    except Exception as exc:  # noqa: BLE001 - Aim raises RuntimeError or requests' errors here
        raise ServerUnavailable(target.address, str(exc) or type(exc).__name__) from None


def guarded(repo: Repo, target: RemoteTarget, step: Callable[[], T], *, grace: float = GRACE) -> T:
    """Run `step` (remote calls) in a thread; raise `ServerUnavailable` if the server dies meanwhile.

    The server is probed only when the step takes long, so a healthy import pays nothing but the
    thread. Once the server has not answered for `grace` seconds, the client is abandoned (its
    queued writes dropped: they never arrived, and the caller records nothing as done).
    """
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = step()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    worker = threading.Thread(target=work, daemon=True, name="aim-etl-remote-step")
    worker.start()
    started = time.monotonic()
    down_since: float | None = None
    next_probe = started + 1.0
    while worker.is_alive():
        worker.join(_POLL)
        now = time.monotonic()
        if not worker.is_alive():
            break
        if not _queue_alive(repo):
            abandon(repo)
            raise ServerUnavailable(target.address, "Aim's client stopped sending (its send thread failed)")
        if now < next_probe:
            continue
        next_probe = now + 1.0
        if target.reachable():
            down_since = None
        elif down_since is None:
            down_since = now
        elif now - down_since >= grace:
            abandon(repo)
            worker.join(1.0)
            raise ServerUnavailable(target.address, f"no answer for {grace:g}s in the middle of the import")
    if "error" in box:
        error = box["error"]
        if is_connection_error(error) and not target.reachable():
            abandon(repo)
            raise ServerUnavailable(target.address, f"{type(error).__name__}: {error}") from error
        raise error
    return box["value"]


def is_connection_error(error: BaseException) -> bool:
    import requests
    from websockets.exceptions import ConnectionClosed

    if isinstance(error, requests.ConnectionError | ConnectionClosed | ConnectionError):
        return True
    return isinstance(error, RuntimeError) and "connect to Aim Server" in str(error)


def _queue_alive(repo: Repo) -> bool:
    queue = repo._client.get_queue()
    return queue._thread.is_alive() or queue._queue.unfinished_tasks == 0


def abandon(repo: Repo) -> None:
    """Give up on a dead server: drop the client's queued writes and the exit handlers that would
    wait for them (Aim's atexit cleanup flushes every remote resource, and blocks for ever)."""
    from aim.ext.cleanup import AutoClean

    client = repo._client
    queue = client.get_queue()
    with queue._queue.mutex:
        queue._queue.queue.clear()
        queue._queue.unfinished_tasks = 0
        queue._queue.all_tasks_done.notify_all()
        queue._shutdown = True
    client._heartbeat_sender._shutdown = True
    for _, finalizer in list(AutoClean._finalizers.values()):
        info = finalizer.peek()
        owner = getattr(info[1], "__self__", None) if info else None
        if owner is None:
            continue
        # remote resources (trees, locks, props), runs on this repo, and the repo itself
        owners = (getattr(owner, "rpc_client", None), getattr(getattr(owner, "repo", None), "_client", None))
        if client in owners or getattr(owner, "_client", None) is client:
            finalizer.detach()


def run_hashes(repo: Repo) -> set[str]:
    """Every run on the server, read fresh (Aim caches the list for 0.5 s)."""
    Repo._all_run_hashes.cache_clear()
    return set(repo.list_all_runs())


def active_runs(repo: Repo) -> set[str]:
    return set(repo.list_active_runs())


_RUN_OPTIONS = {"system_tracking_interval": None, "capture_terminal_logs": False, "log_system_params": False}


def create_run(repo: Repo, run_hash: str, experiment: str | None, created_at: dt.datetime | None) -> Run:
    """A new run with our hash and, when known, its original creation time.

    The creation time must be sent before the run exists: the server creates the run's row on the
    first request for its props, with the time that request carries.
    """
    with _CREATE_LOCK:
        if created_at is not None:
            props = repo.request_props(run_hash, read_only=False, created_at=created_at.astimezone(dt.UTC))
            del props
        with aim_adapter.chosen_hash(run_hash):  # client-side, as locally
            return _locked(lambda: Run(repo=repo, experiment=experiment, **_RUN_OPTIONS))


def open_run(repo: Repo, run_hash: str) -> Run:
    """An existing run opened for writing, or `RunHeld` when another writer holds it."""
    return _locked(lambda: Run(run_hash, repo=repo, **_RUN_OPTIONS))


def _locked(make: Callable[[], Run]) -> Run:
    from aim.sdk.errors import RunLockingError

    try:
        return make()
    except RunLockingError as error:
        raise RunHeld(str(error)) from error
    except Exception as error:
        # The server's lock timeout comes back as a bare Exception carrying filelock's message.
        if type(error) is Exception and "could not be acquired" in str(error):
            raise RunHeld(str(error)) from error
        raise


def reset_run(run: Run) -> None:
    """Empty an existing run in place: params, tags and every series with its summary.

    What a local import does by deleting the run, done key by key, since deleting a run over the
    wire and creating it again is unsafe (see the module docstring).
    """
    run[...] = {}
    for tag in list(run.tags):
        run.remove_tag(tag)
    traces = _collect(run.meta_run_tree, "traces")
    for ctx_id, names in traces.items():
        for name in names:
            for version_tree in run.series_run_trees.values():
                del version_tree[(ctx_id, name)]
            del run.meta_run_tree[("traces", ctx_id, name)]
    # The tracker loaded the old series' summaries when the run was opened.
    run._tracker.sequence_infos.clear()


def creation_time(run: Run) -> float | None:
    try:
        return run.props.creation_time
    except Exception:  # noqa: BLE001 - only used to say whether a date could be kept
        return None


@contextlib.contextmanager
def batched(run: Run) -> Iterator[None]:
    """Send every write made inside as one websocket message instead of one per point.

    Aim batches each `track` call on its own (`Repo.atomic_track`), and a nested batch would
    reset the outer one, so the run's own batching is switched off meanwhile.
    """
    repo, client = run.repo, run.repo._client
    client.start_instructions_batch(run.hash)
    repo.atomic_track = _no_batch
    try:
        yield
    finally:
        del repo.atomic_track
        client.flush_instructions_batch(run.hash)


@contextlib.contextmanager
def _no_batch(queue_id: str) -> Iterator[None]:
    yield


def track_point(run: Run, value: float, name: str, step: int, epoch: int | None, context: dict, when: float | None):
    """Track one point with its original time (public `track` stamps "now")."""
    if when is None:
        when = dt.datetime.now(dt.UTC).timestamp()
    run._tracker._track(value, when, name, step, epoch, context=context)


def close_run(run: Run, end_time: float | None) -> None:
    """Close with our end time (`close()` stamps now); waits until the server has every write."""
    resources = run._resources
    if resources is not None and end_time is not None:
        tree = resources.meta_run_tree

        def _set_end_time() -> None:
            tree["end_time"] = end_time

        resources.set_run_end_time = _set_end_time
    run.close()


def close_keeping_end(run: Run, end_time: float | None) -> None:
    """Close a run opened only to annotate it, leaving its end time as it was."""
    resources = run._resources
    if resources is not None:
        tree = resources.meta_run_tree

        def _keep() -> None:
            tree["end_time"] = end_time

        resources.set_run_end_time = _keep
    run.close()


def flush(repo: Repo) -> None:
    """Wait until the server has executed every queued write (call inside `guarded`)."""
    repo._client.get_queue().wait_for_finish()


def read_meta(repo: Repo, run_hash: str) -> dict[str, Any] | None:
    """The run's whole meta tree from its own chunk, in one request (no index needed): its params
    under `attrs`, series summaries under `traces`, `end_time`, and the repo-level `contexts`."""
    try:
        tree = repo.request_tree("meta", run_hash, read_only=True)
    except OSError:  # the server is down (requests' errors are OSErrors): not this run's state
        raise
    except Exception:  # noqa: BLE001 - the server could not open the run's container at all
        # A server killed while it created a run leaves a container it cannot open after a
        # restart; Aim's client reports that as a bare Exception. Such a run is incomplete.
        return None
    try:
        meta = tree.collect("meta")
    except KeyError:
        return None
    finally:
        del tree
    if not isinstance(meta, dict):
        return None
    run_tree = (meta.get("chunks") or {}).get(run_hash) or {}
    return {**run_tree, "contexts": meta.get("contexts") or {}}


def read_provenance(repo: Repo, run_hash: str) -> dict[str, Any] | None:
    """The `etl` param of a run, with `complete` true only when it was also closed (has an end time)."""
    try:
        meta = read_meta(repo, run_hash)
    except KeyError:
        return None
    if meta is None:
        return None
    provenance = (meta.get("attrs") or {}).get("etl")
    if not isinstance(provenance, dict):
        return None
    return {**provenance, "complete": bool(provenance.get("complete")) and meta.get("end_time") is not None}


def run_provenance(run: Run) -> dict[str, Any]:
    """The `etl` param of a run opened for writing ({} when it has none yet)."""
    try:
        value = run.meta_run_tree.collect(("attrs", "etl"))
    except KeyError:
        return {}
    return value if isinstance(value, dict) else {}


def read_props(repo: Repo, run_hash: str) -> dict[str, Any]:
    """Name, experiment and tags of a run (Aim's structured DB on the server)."""
    props = repo.request_props(run_hash, read_only=True)
    try:
        return {"name": props.name, "experiment": props.experiment, "tags": tuple(props.tags)}
    finally:
        del props


def index_runs(repo: Repo, run_hashes: list[str]) -> bool:
    """Bring the runs into the server repo's index, so AimQL over the wire sees them at once.

    Best effort: `aim up` indexes them too. The old entry goes first, since Aim's `finalize` only
    adds keys, and a series the run no longer has would linger in the index.
    """
    if not run_hashes:
        return True
    try:
        index = repo._get_index_tree("meta", 0)
        for run_hash in run_hashes:
            del index[("meta", "chunks", run_hash)]
            chunk = repo.request_tree("meta", run_hash, read_only=True)
            chunk.finalize(index)
            del chunk
        del index
        return True
    except Exception:  # noqa: BLE001 - `aim up` holding the index, most likely; it indexes them itself
        return False
    finally:
        gc.collect()


def release() -> None:
    """Let go of closed runs' server resources now: Aim frees them when its objects are collected,
    and its run objects refer to each other in cycles."""
    gc.collect()


def _collect(tree, key: str) -> dict[Any, Any]:
    try:
        value = tree.collect(key)
    except KeyError:
        return {}
    return value if isinstance(value, dict) else {}


def release_all() -> None:
    """Release every remote resource this process still holds, now, while the server answers.

    Aim releases them at exit otherwise, and its exit handler waits for ever if the server is gone
    by then (a failed release kills its cleanup thread before it signals the end).
    """
    from aim.ext.cleanup import AutoClean

    gc.collect()
    for _, finalizer in list(AutoClean._finalizers.values()):
        info = finalizer.peek()
        owner = getattr(info[1], "__self__", None) if info else None
        if owner is not None and (getattr(owner, "rpc_client", None) or getattr(owner, "_client", None)):
            finalizer()
    gc.collect()
