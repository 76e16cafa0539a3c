"""Aim 3.29's storage layout of one whole run, built as sorted write batches.

What the SDK writes for a run one key at a time (`Run()`, `run[...] = ...`, `_tracker._track`,
`close()`, `RepoIndexManager.index`) is built here in one pass, with Aim's own encoding functions
(`encode`, `encode_path`, `treeutils.encode_tree`, `hash_auto`, `Context`), so the bytes are the
SDK's. The layout and the tracker's summary rules were read from aim 3.29's source
(`aim/sdk/tracker.py`, `aim/sdk/run.py`, `aim/sdk/index_manager.py`); they are private to Aim and
can change with any release, so the bulk writer only runs on `CHECKED_AIM_VERSIONS`, and
`tests/test_bulk_writer.py` compares it with the SDK key by key, and against a stored reference run.

A run lives in two RocksDBs, `meta/chunks/<hash>` and `seqs/chunks/<hash>`; what is built here is
one write batch for each, keys in byte order (RocksDB takes a sorted batch ~4x faster). The meta
batch is a (key, value) list; the seqs batch, most of a run's points, is RocksDB's own serialized
batch, laid out by numpy a column at a time.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import struct
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

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


# Every step key is `encode_path` of a signed 64-bit hash: a sentinel, 8 bytes, a sentinel.
STEP_KEY_WIDTH = 10


class _StepKeys(NamedTuple):
    """A series' step keys in key order, as bytes and as one (n, STEP_KEY_WIDTH) uint8 array (None
    if some key had another width); the index of the point kept under each; and the `step` column
    itself, encoded in that order (`_encoded`)."""

    keys: list[bytes]
    packed: np.ndarray | None
    order: np.ndarray
    encoded: np.ndarray | None


_order_cache: dict[tuple[int, ...], _StepKeys] = {}
_ORDER_CACHE_SIZE = 16


def _points_in_key_order(steps: tuple[int, ...]) -> _StepKeys:
    """The step keys of a series in key order (a repeated step keeps its last point).

    Cached by the steps themselves: the series of a run, and the runs of a log, mostly share them
    (every epoch-indexed history of a sweep), and hashing and sorting is a third of a series' cost.
    """
    cached = _order_cache.get(steps)
    if cached is None:
        last: dict[bytes, int] = {}
        for i, step in enumerate(steps):
            last[step_key(step)] = i
        keys = sorted(last)  # the keys alone: sorting (key, index) pairs took 15x longer
        packed = None
        if all(len(key) == STEP_KEY_WIDTH for key in keys):
            packed = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), STEP_KEY_WIDTH)
        order = np.fromiter(map(last.__getitem__, keys), dtype=np.intp, count=len(keys))
        cached = _StepKeys(keys, packed, order, _encoded(steps, order))
        if len(_order_cache) >= _ORDER_CACHE_SIZE:
            _order_cache.clear()  # atomic, so safe with the writer's threads (evicting one is not)
        _order_cache[steps] = cached
    return cached


def aim_version_checked(version: str) -> bool:
    return version.startswith(CHECKED_AIM_VERSIONS)


def _tree(prefix: bytes, value: Any) -> Items:
    """`tree[path] = value` of the SDK: the value's leaves under `prefix` (raises what Aim raises)."""
    return [(prefix + key, val) for key, val in encode_tree(value)]


def seqs_batch(run_hash: str, series: Iterable[Any], now: float) -> bytes:
    """The seqs container of a run, `v2/chunks/<hash>/<ctx>/<name>/{epoch,step,time,val}/<step key>`,
    as RocksDB's serialized write batch (`aimrocks.WriteBatch(data=...)` takes it as it is).

    `series` are `MetricSeries`-like (name, context, steps, epochs, values, times), tracked in the
    order given; a repeated step keeps its last point, as re-tracking overwrites it. A time of NaN
    is "no time": the SDK path stamps the import time, and so does this (`now`).

    Serialized, not put: four `batch.put` a point, and the Python that makes their keys, were most
    of a long series' cost and held the GIL. Here a column of one type is laid out by numpy, every
    record at once (`_Records`), straight into the batch; the rest is one record at a time.
    """
    base = encode_path(("seqs", "v2", "chunks", run_hash))
    blocks: list[tuple[bytes, list[bytes | _Records]]] = []
    count = 0
    for s in series:
        if not s.steps:
            continue
        prefix = base + encode_path((Context(s.context).idx, s.name))
        steps = _points_in_key_order(s.steps)
        times = _stamped(s.times, now)
        values, encoded_values = s.values, _encoded(s.values, steps.order)
        if encoded_values is None:  # not floats only: as the tracker stores them, then encoded
            values = _numbers(values)
            encoded_values = _encoded(values, steps.order)
        columns = (
            (s.epochs, _encoded(s.epochs, steps.order)),
            (s.steps, steps.encoded),
            (times, _encoded(times, steps.order)),
            (values, encoded_values),
        )
        pieces: list[bytes | _Records] = []
        for field, (column, encoded) in zip(_FIELDS, columns, strict=True):
            field_prefix = prefix + encode_path(field)
            pieces.append(_record(field_prefix, _ARRAY))
            pieces.append(_column_records(field_prefix, steps, column, encoded))
        blocks.append((prefix, pieces))
        count += len(_FIELDS) * (1 + len(steps.keys))
    # A series' keys all share its prefix, and no prefix is a prefix of another (each ends in the
    # separator), so ordering the blocks by prefix orders the whole batch.
    blocks.sort(key=lambda block: block[0])
    return _serialized(count, [piece for _, pieces in blocks for piece in pieces])


def batch_items(batch: bytes) -> Items:
    """The (key, value) puts of a serialized write batch, in its order, as RocksDB reads them."""
    return [(key, value) for _, key, value in aimrocks.WriteBatch(data=batch)]


def _stamped(times: Sequence[Any], now: float) -> Sequence[Any]:
    """The times with `now` for NaN ("no time")."""
    if set(map(type, times)) == {float}:
        column = np.asarray(times, dtype="<f8")
        return np.where(np.isnan(column), now, column)
    if any(t != t for t in times):
        return [now if math.isnan(t) else t for t in times]
    return times


# RocksDB's `WriteBatch::rep_`: a sequence number (the DB sets it) and a record count, then per put
# a type byte, the key and the value, each after its length as a varint32 (`write_batch.cc`).
_BATCH_HEADER = struct.Struct("<QI")
_PUT = b"\x01"  # kTypeValue, in the default column family


def _varint(number: int) -> bytes:
    if number < 0x80:
        return _SHORT_VARINTS[number]
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


_SHORT_VARINTS = [bytes((number,)) for number in range(0x80)]


def _record(key: bytes, value: bytes) -> bytes:
    return _PUT + _varint(len(key)) + key + _varint(len(value)) + value


class _Records(NamedTuple):
    """Records of one layout, one a row: `parts` side by side (a 1-d part is the same in every row)."""

    parts: tuple[np.ndarray, ...]
    rows: int

    @property
    def size(self) -> int:
        return self.rows * sum(part.shape[-1] for part in self.parts)

    def fill(self, target: np.ndarray) -> None:
        rows = target.reshape(self.rows, -1)
        start = 0
        for part in self.parts:
            rows[:, start : start + part.shape[-1]] = part
            start += part.shape[-1]


def _column_records(
    field_prefix: bytes, steps: _StepKeys, column: Sequence[Any], encoded: np.ndarray | None
) -> bytes | _Records:
    """The records of one field of a series: `field_prefix + step key` -> `encode(column[i])`, in key order.

    When every key has one width and every value one encoding width (`encoded`), every record has
    one layout: a constant head (type, key length, field prefix), the step key, the value's length,
    the value.
    """
    if encoded is None or steps.packed is None:
        values = map(encode, map(column.__getitem__, steps.order.tolist()))
        return b"".join([_record(field_prefix + key, value) for key, value in zip(steps.keys, values, strict=True)])
    head = _PUT + _varint(len(field_prefix) + STEP_KEY_WIDTH) + field_prefix
    width = _varint(encoded.shape[1])
    parts = (np.frombuffer(head, dtype=np.uint8), steps.packed, np.frombuffer(width, dtype=np.uint8), encoded)
    return _Records(parts, len(steps.keys))


def _serialized(count: int, pieces: Sequence[bytes | _Records]) -> bytes:
    """The batch: its header, then the records, each written once into one buffer (a large run's
    batch is tens of MB: every extra copy of it is page faults, a GIL-held join, a memcpy)."""
    header = _BATCH_HEADER.pack(0, count)
    if all(isinstance(piece, bytes) for piece in pieces):  # short series only: numpy would only cost
        return header + b"".join(pieces)
    sizes = [len(piece) if isinstance(piece, bytes) else piece.size for piece in pieces]
    batch = np.empty(len(header) + sum(sizes), dtype=np.uint8)
    batch[: len(header)] = np.frombuffer(header, dtype=np.uint8)
    start = len(header)
    for piece, size in zip(pieces, sizes, strict=True):
        target = batch[start : start + size]
        if isinstance(piece, bytes):
            target[:] = np.frombuffer(piece, dtype=np.uint8)
        else:
            piece.fill(target)
        start += size
    return batch.tobytes()


# `encode` of a float is its type byte then the float64 little-endian; of an int, its type byte then
# the int64 little-endian; of None its type byte alone (`aim/storage/encoding`). A column of one of
# them is encoded by numpy in one go. Anything else (bools, mixed columns, ints beyond 64 bits)
# goes through `encode` itself.
_FLOAT_FLAG, _INT_FLAG = encode(0.0)[0], encode(0)[0]
# Below this many points a series is cheaper point by point than through numpy's per-call costs
# (a run of short series, 63 points in all, took 0.56 ms vs 0.33).
_NUMPY_FROM = 32
_NONE = np.frombuffer(encode(None), dtype=np.uint8)


def _encoded(column: Sequence[Any] | np.ndarray, order: np.ndarray) -> np.ndarray | None:
    """`encode(column[i])` for each i of `order`, as the rows of one uint8 array; None if the
    encodings differ in width or are not known to numpy, or the column is too short to be worth it."""
    if len(order) < _NUMPY_FROM:
        return None
    if isinstance(column, np.ndarray):
        array, flag = column.astype("<f8", copy=False), _FLOAT_FLAG
    elif column and column[0] is None and column.count(None) == len(column):  # epochs, mostly: a tenth of a scan
        return np.broadcast_to(_NONE, (len(order), len(_NONE)))
    else:
        types = set(map(type, column))
        if types == {float}:
            array, flag = np.asarray(column, dtype="<f8"), _FLOAT_FLAG
        elif types == {int}:
            try:
                array, flag = np.asarray(column, dtype="<i8"), _INT_FLAG
            except OverflowError:  # beyond 64 bits: `encode` raises what Aim raises
                return None
        else:
            return None
    packed = np.empty((len(order), 1 + array.itemsize), dtype=np.uint8)
    packed[:, 0] = flag
    packed[:, 1:] = array[order].view(np.uint8).reshape(len(order), array.itemsize)
    return packed


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
    if set(map(type, values)) == {float}:  # a third of `all(type(v) is float ...)`'s time
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
    no type changes, so only the last state of each cell is computed and encoded."""
    first, last, high, low = _summary_points(steps, values)
    meta[encode_path(("meta", "traces_types", "float", ctx_id, name))] = _ONE
    meta[run_prefix + encode_path(("typed_traces", "metric", ctx_id, name))] = _ONE
    meta[trace + encode_path("dtype")] = encode("float")
    meta[trace + encode_path("version")] = encode(2)
    meta[trace + encode_path("first")] = encode(values[first])
    meta[trace + encode_path("first_step")] = encode(steps[first])
    if last is not None:
        meta[trace + encode_path("last")] = encode(values[last])
        meta[trace + encode_path("last_step")] = encode(steps[last])
    if high is not None:
        meta[trace + encode_path("max")] = encode(values[high])
    if low is not None:
        meta[trace + encode_path("min")] = encode(values[low])


SummaryPoints = tuple[int, int | None, int | None, int | None]


def _summary_points(steps: Sequence[int], values: Sequence[float]) -> SummaryPoints:
    """The index of the point in each of `first`, `last`, `max` and `min` (None: the cell is absent).

    By numpy: a Python loop over the points was a quarter of a long run's cost, all of it holding
    the GIL. `_summary_points_loop` is the tracker's rules point by point, for short series and
    steps beyond 64 bits.
    """
    if len(steps) < _NUMPY_FROM:
        return _summary_points_loop(steps, values)
    try:
        step_array = np.asarray(steps, dtype=np.int64)
    except OverflowError:
        return _summary_points_loop(steps, values)
    value_array = np.asarray(values, dtype=np.float64)
    # `first` is overwritten while the tracker's count is 0: up to the first step >= 0, or to the end.
    counted = step_array >= 0
    first = int(counted.argmax()) if counted.any() else len(steps) - 1
    # `last` moves on each step above every earlier one (and >= 0): it ends on the first point of
    # the highest step.
    last = int(step_array.argmax()) if step_array.max() >= 0 else None
    # fmax/fmin skip NaN; the cell holds the first value equal to the extreme (-0.0 == 0.0 too).
    highest, lowest = np.fmax.reduce(value_array), np.fmin.reduce(value_array)
    high = int((value_array == highest).argmax()) if highest > -math.inf else None
    low = int((value_array == lowest).argmax()) if lowest < math.inf else None
    return first, last, high, low


def _summary_points_loop(steps: Sequence[int], values: Sequence[float]) -> SummaryPoints:
    count = 0
    first = 0
    last = high = low = None
    highest, lowest = -math.inf, math.inf
    for i, (step, val) in enumerate(zip(steps, values, strict=True)):
        if count == 0:
            first = i
        if step >= count:
            last = i
            count = step + 1
        if val > highest:
            highest, high = val, i
        if val < lowest:
            lowest, low = val, i
    return first, last, high, low


def _numbers(values: Sequence[Any]) -> Sequence[Any]:
    """The values as the tracker stores them (`convert_to_py_number`: a bool is an int); floats as they are."""
    if all(type(v) is float for v in values):
        return values
    return [convert_to_py_number(v) for v in values]


# RocksDB flushes the memtables of every DB of a process in one shared pool of threads, grown to the
# largest `max_background_flushes` a DB was opened with: 1 with Aim's options.
_flush_threads = 1


def allow_parallel_flushes(threads: int) -> None:
    """Let `threads` containers of this process flush at once, for the rest of its life.

    Closing a container flushes its memtable into a table file (Aim's `RocksContainer.close`), half
    of a large run's write, with the GIL released; but in one shared thread, so the writer's threads
    took turns there. A scratch DB opened with a larger `max_background_flushes` grows that pool;
    the containers themselves keep Aim's options.
    """
    global _flush_threads
    if threads <= _flush_threads:
        return
    with tempfile.TemporaryDirectory(prefix="aim-etl-flush-") as scratch:
        db = aimrocks.DB(scratch, aimrocks.Options(create_if_missing=True, max_background_flushes=threads))
        del db  # dropped as Aim drops its DBs: aimrocks crashes freeing a DB after `close()`
    _flush_threads = threads


# What Aim opens a run's container with (`RocksContainer._db_opts`, aim 3.29); tests/test_verdicts.py
# compares it with Aim's own, so a change there is caught.
AIM_CONTAINER_OPTIONS: dict[str, Any] = {
    "create_if_missing": True,
    "paranoid_checks": False,
    "keep_log_file_num": 10,
    "skip_stats_update_on_db_open": True,
    "skip_checking_sst_file_sizes_on_db_open": True,
    "max_open_files": -1,
    "write_buffer_size": 1024 * 1024,
    "db_write_buffer_size": 1024 * 1024,
    "max_write_buffer_number": 1,
    "target_file_size_base": 64 * 1024 * 1024,
    "max_background_compactions": 4,
    "level0_file_num_compaction_trigger": 8,
    "level0_slowdown_writes_trigger": 17,
    "level0_stop_writes_trigger": 24,
    "num_levels": 4,
    "max_bytes_for_level_base": 512 * 1024 * 1024,
    "max_bytes_for_level_multiplier": 8,
}


# What our own opens change in Aim's options, none of it in the data: the info LOG goes nowhere (a
# folder RocksDB cannot create a file in, and it then logs nothing); each new MANIFEST is not given
# 4 MB in advance (two a reopening), which the close gave back (fallocate, then ftruncate: block
# allocation and discard, for a 300-byte file).
_NOT_DATA: dict[str, Any] = {
    "db_log_dir": os.devnull,
    "manifest_preallocation_size": 0,
}
# `annotate_container`: and a container that is gone is not created again.
_ANNOTATION_OPTIONS: dict[str, Any] = {**_NOT_DATA, "create_if_missing": False}


def write_container(path: Path, batch: bytes | Items) -> None:
    """Create the run's RocksDB as Aim opens it (`RocksContainer`: its options, its `progress` flag,
    the write-ahead log) and write one batch. What the benchmark's RAW does; the bulk writer uses
    `create_container`, which writes the same data with less around it.
    """
    container = RocksContainer(str(path), read_only=False)
    try:
        container.db.write(_write_batch(batch))
    finally:
        container.close()


def create_container(path: Path, batch: bytes | Items) -> None:
    """Create a new run's container and write `batch` into it in one step: the data Aim's
    `RocksContainer` would hold, with Aim's options, and less around it.

    Creating a file is the dear part of a small run here (on this ext4 each one scans past the
    inodes freed in the last minutes), and a container is about a dozen of them. Left out, none of
    it data (each measured, see the README's design notes):
    - the `progress` flag, created and deleted again, which only makes `aim up` count the run as
      active for the ~20 ms of its write (a killed import would leave it there for good);
    - the info LOG and the 4 MB preallocated per MANIFEST (`_NOT_DATA`);
    - the write-ahead log for the batch: the flush before closing writes it into a table file
      anyway. A process killed before that leaves the container empty, and a run whose meta
      container (written last, with the "complete" marker) is empty is rewritten whole.

    The folder of `meta/chunks/<hash>` is what makes a run exist: it is created only here, by
    RocksDB, so a run is never seen before its first batch is on its way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = aimrocks.DB(str(path), aimrocks.Options(**{**AIM_CONTAINER_OPTIONS, **_NOT_DATA}))
    try:
        db.write(_write_batch(batch), disable_wal=True)
        db.flush()
    finally:
        del db  # dropped as Aim drops its DBs: aimrocks crashes freeing a DB after `close()`


def _write_batch(batch: bytes | Items) -> aimrocks.WriteBatch:
    """A serialized batch (`seqs_batch`) as it is; (key, value) items put one by one."""
    if isinstance(batch, bytes):
        return aimrocks.WriteBatch(data=batch)
    write_batch = aimrocks.WriteBatch()
    for key, value in batch:
        write_batch.put(key, value)
    return write_batch


def read_items(path: Path) -> Items:
    """Every (key, value) of a run's container, read-only (for tests and the reference check)."""
    container = RocksContainer(str(path), read_only=True, skip_read_optimization=True)
    try:
        return list(container.items())
    finally:
        container.close()


class ContainerUnavailable(Exception):
    """A run's container could not be opened for writing: most often another process has it open."""


def annotate_container(path: Path, batch: aimrocks.WriteBatch) -> Items:
    """Apply `batch` to an existing run's container in one atomic step; return its items afterwards.

    A closed run is changed for what RocksDB asks of any open for writing (new MANIFEST, CURRENT,
    OPTIONS and WAL files, a table file from the flush) and no more. Creating a file is the dear
    part: on ext4 without a journal each one scans past the inodes freed in the last minutes, and
    a pass frees thousands. So what Aim's `RocksContainer` adds to an open is left out, none of it
    data: its `progress` flag (which makes `aim up` count the run as active meanwhile), the info
    LOG (see `_ANNOTATION_OPTIONS`), and the WAL. The batch goes to the memtable alone, and the
    flush before closing writes it to a table file and records that in the MANIFEST in one step:
    written once instead of twice, with no second WAL for the flush; a process killed before that
    leaves the run as it was, never half-written.

    Raises `ContainerUnavailable` if the container is gone or cannot be opened (RocksDB's lock).
    """
    if not (path / "CURRENT").is_file():  # RocksDB would make a new, empty run of it
        raise ContainerUnavailable("its meta container is gone (the run was deleted meanwhile?)")
    options = aimrocks.Options(**{**AIM_CONTAINER_OPTIONS, **_ANNOTATION_OPTIONS})
    try:
        db = aimrocks.DB(str(path), options, read_only=False)
    except aimrocks.errors.RocksIOError as error:  # RocksDB's lock: a process is writing the run
        raise ContainerUnavailable(f"its meta container is open in another process ({type(error).__name__})") from error
    except Exception as error:  # noqa: BLE001 - a damaged container: left alone, as Aim's indexer leaves it
        raise ContainerUnavailable(f"its meta container cannot be opened ({type(error).__name__})") from error
    try:
        db.write(batch, disable_wal=True)
        db.flush()
        return _db_items(db)
    finally:
        del db  # dropped as Aim drops its DBs: aimrocks crashes freeing a DB after `close()`


def _db_items(db: aimrocks.DB) -> Items:
    """Every (key, value) of an open DB as stored (a BLOB's sentinel and its data both, as the index keeps them)."""
    iterator = db.iteritems()
    iterator.seek_to_first()
    return list(iterator)


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
