"""Aim 3.29's storage layout of one whole run, built as sorted (key, value) lists.

What the SDK writes for a run one key at a time (`Run()`, `run[...] = ...`, `_tracker._track`,
`close()`, `RepoIndexManager.index`) is built here in one pass, with Aim's own encoding functions
(`encode`, `encode_path`, `treeutils.encode_tree`, `hash_auto`, `Context`), so the bytes are the
SDK's. The layout and the tracker's summary rules were read from aim 3.29's source
(`aim/sdk/tracker.py`, `aim/sdk/run.py`, `aim/sdk/index_manager.py`); they are private to Aim and
can change with any release, so the bulk writer only runs on `CHECKED_AIM_VERSIONS`, and
`tests/test_bulk_writer.py` compares it with the SDK key by key, and against a stored reference run.

A run lives in two RocksDBs, `meta/chunks/<hash>` and `seqs/chunks/<hash>`; each list here is one
write batch for one of them, keys in byte order (RocksDB takes a sorted batch ~4x faster).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aimrocks
import numpy as np
from aim.sdk.num_utils import convert_to_py_number
from aim.sdk.sequences.sequence_type_map import SEQUENCE_TYPE_MAP
from aim.sdk.utils import check_types_compatibility, get_object_typename
from aim.storage.context import Context
from aim.storage.encoding import encode, encode_path
from aim.storage.hashing import hash_auto
from aim.storage.rockscontainer import RocksContainer
from aim.storage.treeutils import encode_tree
from aim.storage.utils import ArrayFlag

# The Aim versions this layout was compared with, byte for byte, against the SDK.
CHECKED_AIM_VERSIONS = ("3.29.",)

Items = list[tuple[bytes, bytes]]

_ARRAY = encode(ArrayFlag)
_ONE = encode(1)
_FIELDS = ("epoch", "step", "time", "val")  # in byte order, as the batch wants them
_STEP_CACHE_LIMIT = 1_000_000

# hash_auto costs ~0.8 us a call and every run repeats the same steps: encoded once per process.
_step_keys: dict[int, bytes] = {}


def step_key(step: int) -> bytes:
    """The key part a point is stored under in its series: `hash_auto(step)`, not the step (tracker v2)."""
    key = _step_keys.get(step)
    if key is None:
        if len(_step_keys) >= _STEP_CACHE_LIMIT:  # a memory bound for logs with ever-new steps
            _step_keys.clear()
        key = _step_keys[step] = encode_path(hash_auto(step))
    return key


_order_cache: dict[tuple[int, ...], tuple[list[bytes], np.ndarray]] = {}
_ORDER_CACHE_SIZE = 16


def _points_in_key_order(steps: tuple[int, ...]) -> tuple[list[bytes], np.ndarray]:
    """The step keys in key order, and the index of the point kept under each (a repeated step
    keeps its last point).

    Cached by the steps themselves: the series of a run, and the runs of a log, mostly share them
    (every epoch-indexed history of a sweep), and hashing and sorting is a third of a series' cost.
    """
    cached = _order_cache.get(steps)
    if cached is None:
        last: dict[bytes, int] = {}
        for i, step in enumerate(steps):
            last[step_key(step)] = i
        ordered = sorted(last.items())
        cached = ([key for key, _ in ordered], np.fromiter((i for _, i in ordered), dtype=np.intp, count=len(ordered)))
        if len(_order_cache) >= _ORDER_CACHE_SIZE:
            _order_cache.clear()  # atomic, so safe with the writer's threads (evicting one is not)
        _order_cache[steps] = cached
    return cached


def aim_version_checked(version: str) -> bool:
    return version.startswith(CHECKED_AIM_VERSIONS)


def _tree(prefix: bytes, value: Any) -> Items:
    """`tree[path] = value` of the SDK: the value's leaves under `prefix` (raises what Aim raises)."""
    return [(prefix + key, val) for key, val in encode_tree(value)]


def seqs_items(run_hash: str, series: Iterable[Any], now: float) -> Items:
    """The seqs container of a run: `v2/chunks/<hash>/<ctx>/<name>/{epoch,step,time,val}/<step key>`.

    `series` are `MetricSeries`-like (name, context, steps, epochs, values, times), tracked in the
    order given; a repeated step keeps its last point, as re-tracking overwrites it. A time of NaN
    is "no time": the SDK path stamps the import time, and so does this (`now`).
    """
    base = encode_path(("seqs", "v2", "chunks", run_hash))
    blocks: list[tuple[bytes, Items]] = []
    for s in series:
        if not s.steps:
            continue
        prefix = base + encode_path((Context(s.context).idx, s.name))
        keys, order = _points_in_key_order(s.steps)
        out: Items = []
        for field in _FIELDS:
            field_prefix = prefix + encode_path(field)
            out.append((field_prefix, _ARRAY))
            if field == "epoch":
                column = s.epochs
            elif field == "step":
                column = s.steps
            elif field == "time":
                column = s.times
                if any(t != t for t in column):  # NaN: no time of its own
                    column = [now if math.isnan(t) else t for t in column]
            else:
                column = _numbers(s.values)
            out.extend(zip([field_prefix + key for key in keys], _encoded(column, order), strict=True))
        blocks.append((prefix, out))
    # A series' keys all share its prefix, and no prefix is a prefix of another (each ends in the
    # separator), so ordering the blocks by prefix orders the whole batch.
    blocks.sort(key=lambda block: block[0])
    return [item for _, block in blocks for item in block]


# `encode` of a float is its type byte then the float64 little-endian; of an int, its type byte then
# the int64 little-endian (`aim/storage/encoding`). A column of one type is encoded by numpy in one
# go: 9-byte records sliced apart, ~5x faster than `encode` per value on an 80k-point series.
# Anything else (None epochs, bools, mixed columns) goes through `encode` itself.
_FLOAT_RECORD = np.dtype([("flag", "u1"), ("value", "<f8")])
_INT_RECORD = np.dtype([("flag", "u1"), ("value", "<i8")])
_FLOAT_FLAG, _INT_FLAG = encode(0.0)[0], encode(0)[0]


def _encoded(column: Sequence[Any], order: np.ndarray) -> list[bytes]:
    """`encode(column[i])` for each i of `order`."""
    types = set(map(type, column))
    if types == {float}:
        record, flag = _FLOAT_RECORD, _FLOAT_FLAG
    elif types == {int} and all(-(2**63) <= v < 2**63 for v in (min(column), max(column))):
        record, flag = _INT_RECORD, _INT_FLAG
    else:
        return [encode(column[i]) for i in order.tolist()]
    packed = np.empty(len(order), dtype=record)
    packed["flag"] = flag
    packed["value"] = np.asarray(column, dtype=record["value"])[order]
    raw = packed.tobytes()
    size = record.itemsize
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def meta_items(run_hash: str, params: Sequence[tuple[str, Any]], series: Iterable[Any], end_time: float) -> Items:
    """The meta container of a run, as the SDK leaves it after `Run()`, the params, every point and `close()`.

    `params` are the run's top-level params in the order the SDK path sets them (a later one wins a
    key both hold, as in the SDK). Raises what Aim's encoder raises for a value it cannot store,
    before anything is written.
    """
    meta: dict[bytes, bytes] = {}
    run_prefix = encode_path(("meta", "chunks", run_hash))
    attrs = encode_path(("meta", "attrs"))
    run_attrs = run_prefix + encode_path("attrs")
    # `Run()` of a new run: `self[...] = {}`, then `end_time = None` (overwritten by `close()` below).
    for prefix in (run_attrs, attrs):
        meta.update(_tree(prefix, {}))
    for name, value in params:
        leaves = encode_tree(value)
        for key, val in leaves:
            meta[run_attrs + encode_path(name) + key] = val
            meta[attrs + encode_path(name) + key] = val
    contexts_seen: set[int] = set()
    for s in series:
        if not s.steps:
            continue
        ctx = Context(s.context)
        if ctx.idx not in contexts_seen:
            contexts_seen.add(ctx.idx)
            for prefix in (encode_path(("meta", "contexts", ctx.idx)), run_prefix + encode_path(("contexts", ctx.idx))):
                meta.update(_tree(prefix, ctx.to_dict()))
        _trace_summary(meta, run_prefix, ctx.idx, s.name, s.steps, s.values)
    meta[run_prefix + encode_path("end_time")] = encode(end_time)
    return sorted(meta.items())


def _trace_summary(
    meta: dict[bytes, bytes], run_prefix: bytes, ctx_id: int, name: str, steps: Sequence[int], values: Sequence[Any]
) -> None:
    """`RunTracker._update_sequence_info` over a whole series, written as its last state.

    Rules kept exactly (`aim up` shows these cells): `first` is overwritten while no step >= 0
    has been seen (so the first point with step >= 0 wins, or else the last negative one);
    `last` is the first point reaching a new highest step (a repeat of that step does not move it);
    `max`/`min` keep the first occurrence, never NaN, and are absent when no point beats -inf/+inf.
    """
    trace = run_prefix + encode_path(("traces", ctx_id, name))
    typed = run_prefix + encode_path(("typed_traces",))
    if all(type(v) is float for v in values):
        _float_summary(meta, run_prefix, trace, ctx_id, name, steps, values)
        return
    count = 0
    dtype = None
    high, low = -math.inf, math.inf
    for step, raw in zip(steps, values, strict=True):
        val = convert_to_py_number(raw)
        val_type = get_object_typename(val)
        if dtype is not None:
            new_types: list[str] = []
            if not check_types_compatibility(val_type, dtype, lambda _old, new, seen=new_types: seen.append(new)):
                raise ValueError(f"Cannot log value '{val}' on sequence '{name}'. Incompatible data types.")
            for new in new_types:
                meta[encode_path(("meta", "traces_types", new, ctx_id, name))] = _ONE
                meta[typed + encode_path((SEQUENCE_TYPE_MAP.get(val_type, "sequence"), ctx_id, name))] = _ONE
                meta[trace + encode_path("dtype")] = encode(new)
                dtype = new
        if count == 0:
            meta[encode_path(("meta", "traces_types", val_type, ctx_id, name))] = _ONE
            meta[trace + encode_path("dtype")] = encode(val_type)
            meta[trace + encode_path("version")] = encode(2)
            meta[trace + encode_path("first")] = encode(val)
            meta[trace + encode_path("first_step")] = encode(step)
            meta[typed + encode_path((SEQUENCE_TYPE_MAP.get(val_type, "sequence"), ctx_id, name))] = _ONE
            dtype = val_type
        if step >= count:
            meta[trace + encode_path("last")] = encode(val)
            meta[trace + encode_path("last_step")] = encode(step)
            count = step + 1
        if val > high:
            meta[trace + encode_path("max")] = encode(val)
            high = val
        if val < low:
            meta[trace + encode_path("min")] = encode(val)
            low = val


def _float_summary(
    meta: dict[bytes, bytes],
    run_prefix: bytes,
    trace: bytes,
    ctx_id: int,
    name: str,
    steps: Sequence[int],
    values: Sequence[float],
) -> None:
    """`_trace_summary` for a series of floats only (the mapper's every series): the same rules with
    no type changes, so only the last state of each cell is computed and encoded (a medium run's
    summaries cost ~3x less)."""
    count = 0
    first = last = None
    high, low = -math.inf, math.inf
    high_i = low_i = None
    for i, (step, val) in enumerate(zip(steps, values, strict=True)):
        if count == 0:
            first = i
        if step >= count:
            last = i
            count = step + 1
        if val > high:
            high, high_i = val, i
        if val < low:
            low, low_i = val, i
    meta[encode_path(("meta", "traces_types", "float", ctx_id, name))] = _ONE
    meta[run_prefix + encode_path(("typed_traces", "metric", ctx_id, name))] = _ONE
    meta[trace + encode_path("dtype")] = encode("float")
    meta[trace + encode_path("version")] = encode(2)
    meta[trace + encode_path("first")] = encode(values[first])
    meta[trace + encode_path("first_step")] = encode(steps[first])
    if last is not None:
        meta[trace + encode_path("last")] = encode(values[last])
        meta[trace + encode_path("last_step")] = encode(steps[last])
    if high_i is not None:
        meta[trace + encode_path("max")] = encode(values[high_i])
    if low_i is not None:
        meta[trace + encode_path("min")] = encode(values[low_i])


def _numbers(values: Sequence[Any]) -> Sequence[Any]:
    """The values as the tracker stores them (`convert_to_py_number`: a bool is an int); floats as they are."""
    if all(type(v) is float for v in values):
        return values
    return [convert_to_py_number(v) for v in values]


def write_container(path: Path, items: Items) -> None:
    """Create the run's RocksDB as Aim opens it (its options, its `progress` flag) and write one batch.

    The folder of `meta/chunks/<hash>` is what makes a run exist: it is created only here, by
    RocksDB, so a run is never seen before its first batch is on its way.
    """
    container = RocksContainer(str(path), read_only=False)
    try:
        batch = aimrocks.WriteBatch()
        for key, value in items:
            batch.put(key, value)
        container.db.write(batch)
    finally:
        container.close()


def read_items(path: Path) -> Items:
    """Every (key, value) of a run's container, read-only (for tests and the reference check)."""
    container = RocksContainer(str(path), read_only=True, skip_read_optimization=True)
    try:
        return list(container.items())
    finally:
        container.close()


def read_run_state(path: Path, run_hash: str) -> tuple[dict[str, Any] | None, bool]:
    """(`etl` param, has an end time) of a run's meta container, opened read-only and closed again.

    Not through `repo.request_tree`, whose pool keeps every container it opened (one handle per run,
    for the life of the process, serving the old data after the run is rewritten).
    """
    if not path.is_dir():
        return None, False
    try:
        container = RocksContainer(str(path), read_only=True, skip_read_optimization=True)
    except Exception:  # noqa: BLE001 - a run a killed process left half-created cannot be opened: incomplete
        return None, False
    try:
        run_tree = container.tree().subtree(("meta", "chunks", run_hash))
        try:
            provenance = run_tree.subtree("attrs").collect("etl")
        except KeyError:
            provenance = None
        ended = run_tree.get("end_time") is not None
    finally:
        container.close()
    return (provenance if isinstance(provenance, dict) else None), ended


def index_checksum(chunks_dir: Path, run_hash: str) -> str:
    """`RepoIndexManager._get_run_checksum`: what `aim up` compares to decide a run needs indexing."""
    from aim.sdk.index_manager import RepoIndexManager

    class _Paths:
        pass

    holder = _Paths()
    holder.chunks_dir = chunks_dir
    return RepoIndexManager._get_run_checksum(holder, run_hash)


def index_batch(entries: Sequence[tuple[str, Items, str]]) -> aimrocks.WriteBatch:
    """What `RepoIndexManager.index` writes for each (hash, meta items, checksum), as one batch.

    Per run it shadows `meta/chunks/<hash>/` (a delete range), copies every key of the run's meta
    container and records `index_cache/<hash>`. Ranges first, then the puts in key order (a stable
    sort: of two runs setting one shared key, the later one wins, as indexed one after the other).
    """
    batch = aimrocks.WriteBatch()
    puts: Items = []
    for run_hash, items, checksum in entries:
        prefix = encode_path(("meta", "chunks", run_hash))
        batch.delete_range(prefix, prefix + b"\xff")
        batch.delete_range(b"BLOBS\xfe" + prefix, b"BLOBS\xfe" + prefix + b"\xff")
        puts.extend(items)
        puts.append((encode_path(("index_cache", run_hash)), encode(checksum)))
    puts.sort(key=lambda item: item[0])
    for key, value in puts:
        batch.put(key, value)
    return batch


def shadow_batch(run_hashes: Sequence[str]) -> aimrocks.WriteBatch:
    """What `repo.delete_run` removes from the index for each run (its `meta/chunks/<hash>/` keys)."""
    batch = aimrocks.WriteBatch()
    for run_hash in run_hashes:
        prefix = encode_path(("meta", "chunks", run_hash))
        batch.delete_range(prefix, prefix + b"\xff")
        batch.delete_range(b"BLOBS\xfe" + prefix, b"BLOBS\xfe" + prefix + b"\xff")
    return batch


def open_index(repo_path: Path) -> RocksContainer:
    """The repo's `meta/index` for writing, as `Repo._get_index_container` opens it (raises RocksIOError if held)."""
    return RocksContainer(str(repo_path / "meta" / "index"), read_only=False, timeout=0)


def naive_utc(when: dt.datetime) -> dt.datetime:
    """The structured DB's `created_at`: naive UTC (a naive input is taken as local time, as the SDK path does)."""
    return when.astimezone(dt.UTC).replace(tzinfo=None)
