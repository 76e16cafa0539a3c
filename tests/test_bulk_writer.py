"""The bulk writer against the SDK writer: the same runs, read back by Aim's SDK and byte for byte.

The bulk writer builds Aim's private storage layout itself (`etl.writers.aim_storage`), so these
tests are its guard: what Aim's own SDK reads back is the same for both writers (tricky series and
a real corpus), the containers hold the same keys and values, and a stored reference run fails
loudly when an Aim upgrade encodes a run differently.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

import etl
from etl.mapper import MetricSeries, RunSpec
from etl.writers import aim_storage
from etl.writers.bulk import BulkWriter
from etl.writers.sdk import SdkWriter

T0 = 1_700_000_000.0
NAN, INF = math.nan, math.inf
REFERENCE = Path(__file__).parent / "fixtures" / "bulk_reference" / "run.json"


def points(name: str, context: dict, rows: list[tuple]) -> MetricSeries:
    """rows: (step, epoch, value, time)."""
    steps, epochs, values, times = (tuple(c) for c in zip(*rows, strict=True))
    return MetricSeries(name, context, steps, epochs, values, times)


def spec(i: int, *series_: MetricSeries, **fields) -> RunSpec:
    values = {
        "run_key": f"key-{i}",
        "run_hash": f"b{i:023x}",
        "record_id": str(i),
        "occurrence": 1,
        "content_hash": f"content-{i}",
        "source": "log.jsonl",
        "locator": f"line {i}",
        "experiment": "tricky",
        "name": f"run {i}",
        "created_at": dt.datetime(2024, 3, 1, 12, 0, i, tzinfo=dt.UTC),
        "end_time": T0 + 10_000 + i,
        "hparams": {"lr": 0.01, "layers": [64, 32.5, None, "relu", [1, {}]], "opt": {"name": "adam", "betas": {}}},
        "tags": ("baseline", "tricky", "baseline"),
        "meta": {"notes": "ünïcode ✓", "git": {"sha": "abc"}, "flag": False, "big": -(2**63)},
        "provenance": {
            "source": "log.jsonl",
            "locator": f"line {i}",
            "run_key": f"key-{i}",
            "content_hash": f"content-{i}",
        },
        "series": series_,
    }
    values.update(fields)
    values["provenance"] = {**values["provenance"], "content_hash": values["content_hash"]}
    return RunSpec(**values)


def tricky_specs() -> list[RunSpec]:
    """Every point has a time (the key-by-key test must not meet "now"), except in `no_time_run`."""
    return [
        spec(
            1,
            points("loss", {"subset": "train"}, [(s, s // 3, 1 / (s + 1), T0 + s) for s in range(40)]),
            points("loss", {}, [(0, None, NAN, T0), (1, None, INF, T0 + 1), (2, 0, -0.0, T0 + 2), (3, 0, 0.0, T0 + 3)]),
            points("count", {"subset": "val", "k": 5}, [(0, 0, 3, T0), (1, 1, 4, T0 + 1), (4, None, 1, T0 + 2)]),
        ),
        spec(
            2,
            # unsorted, a repeated step, a negative step, -inf: the tracker's first/last/min/max rules
            points(
                "acc",
                {"a": {"b": [1, 2]}, "c": None},
                [
                    (5, None, 3.0, T0),
                    (2, 1, 1.0, T0 + 1),
                    (5, 2, 7.0, T0 + 2),
                    (-1, None, 9.0, T0 + 3),
                    (7, 1, -INF, T0 + 4),
                ],
            ),
            points("negative_only", {}, [(-3, None, 1.0, T0), (-1, None, 2.0, T0 + 1)]),
            points("all_nan", {"x": True}, [(0, None, NAN, T0), (1, None, NAN, T0 + 1)]),
            points("minus_inf", {}, [(0, None, -INF, T0), (1, None, -INF, T0 + 1)]),
            points("mixed_types", {}, [(0, None, 1, T0), (1, None, 2.5, T0 + 1), (2, None, 3, T0 + 2)]),
            name=None,
            experiment="",
            tags=(),
            meta={},
            hparams={},
        ),
        spec(3, validation={"status": "pass", "rules": []}, tags=("validated",)),  # no series at all
    ]


def no_time_run() -> RunSpec:
    """Points without a time and no end time: both writers stamp "now" (not compared)."""
    return spec(9, points("loss", {}, [(0, None, 1.0, NAN), (1, None, 0.5, NAN)]), end_time=None)


@pytest.fixture(scope="module")
def tricky(tmp_path_factory) -> tuple[Path, Path, list[RunSpec]]:
    specs = [*tricky_specs(), no_time_run()]
    root = tmp_path_factory.mktemp("tricky")
    sdk_result = SdkWriter(root / "sdk").write(specs)
    bulk_result = BulkWriter(root / "bulk", workers=2).write(specs)
    assert not sdk_result.failed and not bulk_result.failed
    assert len(bulk_result.written) == len(specs) and not bulk_result.left_unindexed
    return root / "sdk" / ".aim", root / "bulk" / ".aim", specs


def canonical(value):
    """JSON-able and NaN-safe: -0.0, NaN and ints stay what they are."""
    if isinstance(value, float):
        return f"float:{value!r}"
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def read_back(aim_dir: Path, *, keep_time=lambda run_hash: True) -> dict:
    """Everything Aim's SDK shows of each run of a repo (a fresh Repo: the pooled one keeps an old index)."""
    from aim import Repo

    out = {}
    for run in Repo(str(aim_dir.parent)).iter_runs():
        params = run[...]
        params.get("etl", {}).pop("batch", None)  # the import's own id: one per migrate
        timed = keep_time(run.hash)
        runs_series = {}
        # Series found through the run's `traces` (`run.metrics()` reloads every run's props per call).
        for ctx_id, names in (run.meta_run_tree.get("traces") or {}).items():
            context = run.idx_to_ctx(ctx_id)
            for name in names:
                metric = run.get_metric(name, context)
                steps, (values, epochs, times) = metric.data.items_list()
                key = f"{name}|{json.dumps(context.to_dict(), sort_keys=True)}"
                rows = zip(steps, values, epochs, times if timed else [None] * len(steps), strict=True)
                runs_series[key] = sorted(rows, key=lambda row: row[0])
        out[run.hash] = canonical(
            {
                "params": params,
                "name": run.name,
                "experiment": run.experiment,
                "tags": sorted(run.tags),
                "created": run.creation_time,
                "end": run.end_time if timed else None,
                "series": runs_series,
                "traces": run.meta_run_tree.get("traces"),
            }
        )
    return out


def test_tricky_runs_read_back_the_same(tricky):
    sdk, bulk, specs = tricky
    stamped = {no_time_run().run_hash}
    keep = lambda h: h not in stamped  # noqa: E731
    got, want = read_back(bulk, keep_time=keep), read_back(sdk, keep_time=keep)
    assert sorted(got) == sorted(s.run_hash for s in specs)
    assert got == want
    # The tracker's corner cases really were exercised (and agreed on):
    traces = {name: t for by_name in got[specs[1].run_hash]["traces"].values() for name, t in by_name.items()}
    assert "last" not in traces["negative_only"] and traces["negative_only"]["first_step"] == -1
    assert "max" not in traces["all_nan"] and "min" not in traces["all_nan"]
    assert "max" not in traces["minus_inf"] and traces["minus_inf"]["min"] == "float:-inf"
    assert (traces["acc"]["first"], traces["acc"]["last"], traces["acc"]["max"]) == (
        "float:3.0",
        "float:-inf",
        "float:9.0",
    )
    assert traces["mixed_types"]["dtype"] == "number"


def test_containers_hold_the_same_keys_and_values(tricky):
    sdk, bulk, _ = tricky
    for run in tricky_specs():
        for container in ("meta", "seqs"):
            want = aim_storage.read_items(sdk / container / "chunks" / run.run_hash)
            got = aim_storage.read_items(bulk / container / "chunks" / run.run_hash)
            assert got == want, f"{container} of {run.run_hash} differs"

    # The index too, but for `index_cache`, a checksum of file paths and mtimes.
    def index(aim_dir: Path) -> list:
        return [
            (k, v) for k, v in aim_storage.read_items(aim_dir / "meta" / "index") if not k.startswith(b"index_cache")
        ]

    stamped = aim_storage.encode_path(("meta", "chunks", no_time_run().run_hash, "end_time"))
    assert [i for i in index(bulk) if i[0] != stamped] == [i for i in index(sdk) if i[0] != stamped]


def test_a_written_run_leaves_its_data_and_nothing_around_it(tricky):
    """No `progress` flag (which makes `aim up` count a run as active), no info LOG and no data left
    in a write-ahead log (Aim's readers reopen such a container for writing): only tables."""
    _, bulk, specs = tricky
    for run in specs:
        for container in ("meta", "seqs"):
            files = {f.name for f in (bulk / container / "chunks" / run.run_hash).iterdir()}
            assert "LOG" not in files
            assert any(name.endswith(".sst") for name in files) or (container == "seqs" and not run.series)
            assert all(
                (bulk / container / "chunks" / run.run_hash / name).stat().st_size == 0
                for name in files
                if name.endswith(".log")
            )
    assert not list((bulk / "meta").glob("progress/*")) and not list((bulk / "seqs").glob("progress/*"))


def test_the_index_checksum_is_the_one_aim_up_expects(tricky):
    from aim.sdk.index_manager import RepoIndexManager

    _, bulk, specs = tricky
    index = dict(aim_storage.read_items(bulk / "meta" / "index"))
    for run in specs:
        checksum = aim_storage.index_checksum(bulk / "meta" / "chunks", run.run_hash)
        assert index[aim_storage.encode_path(("index_cache", run.run_hash))] == aim_storage.encode(checksum)
    assert aim_storage.index_checksum.__doc__ and RepoIndexManager._get_run_checksum  # the function we mirror


def put_by_put(run_hash: str, series: list[MetricSeries], now: float) -> list[tuple[bytes, bytes]]:
    """The seqs container as the tracker writes it, point by point with Aim's `encode`: the plain
    reference for the serialized batch (a later point of a step overwrites it)."""
    from aim.sdk.num_utils import convert_to_py_number
    from aim.storage.context import Context
    from aim.storage.hashing import hash_auto
    from aim.storage.utils import ArrayFlag

    encode, encode_path = aim_storage.encode, aim_storage.encode_path
    container: dict[bytes, bytes] = {}
    for s in series:
        prefix = encode_path(("seqs", "v2", "chunks", run_hash, Context(s.context).idx, s.name))
        for step, epoch, value, when in zip(s.steps, s.epochs, s.values, s.times, strict=True):
            fields = {"epoch": epoch, "step": step, "time": now if when != when else when}
            fields["val"] = convert_to_py_number(value)
            for field, cell in fields.items():
                container[prefix + encode_path(field)] = encode(ArrayFlag)
                container[prefix + encode_path((field, hash_auto(step)))] = encode(cell)
    return sorted(container.items())


def put_batch(items: list[tuple[bytes, bytes]]) -> bytes:
    import aimrocks

    batch = aimrocks.WriteBatch()
    for key, value in items:
        batch.put(key, value)
    return batch.data()


def series_of(name: str, rows: list[tuple], context: dict | None = None) -> MetricSeries:
    return points(name, context or {}, rows)


TRICKY_SERIES = {
    "floats": [series_of("loss", [(s, None, 1 / (s + 1), T0 + s) for s in range(300)])],
    "specials": [
        series_of("x", [(0, 0, NAN, T0), (1, 0, INF, NAN), (2, 1, -INF, T0), (3, 1, -0.0, T0), (4, 2, 0.0, NAN)])
    ],
    "ints": [series_of("n", [(0, 0, 3, T0), (1, 1, -(2**63), T0 + 1), (2, 2, 2**63 - 1, T0 + 2)])],
    "mixed values and epochs": [
        series_of("m", [(0, None, 1, T0), (1, 3, 2.5, T0 + 1), (2, None, True, T0 + 2), (3, False, 4, 7)])
    ],
    "unsorted, repeated, negative steps": [
        series_of("u", [(5, None, 3.0, T0), (2, 1, 1.0, T0 + 1), (5, 2, 7.0, T0 + 2), (-1, None, 9.0, T0 + 3)]),
        series_of("u", [(-(2**63), 1, 1.0, T0), (2**63 - 1, 1, 2.0, T0), (0, 1, 3.0, T0)], {"a": [1, {"b": None}]}),
    ],
    "keys longer than 127 bytes": [series_of("é" * 80, [(s, s, float(s), T0) for s in range(130)], {"k": "v" * 40})],
    "no series": [],
}


def lengthened(s: MetricSeries) -> MetricSeries:
    """The series and 40 more points like its first (new steps): long enough for numpy's path."""
    more = 40
    return MetricSeries(
        s.name,
        s.context,
        s.steps + tuple(range(1000, 1000 + more)),
        s.epochs + (s.epochs[0],) * more,
        s.values + (s.values[0],) * more,
        s.times + (s.times[0],) * more,
    )


@pytest.mark.parametrize("length", ["as is", "lengthened"])
@pytest.mark.parametrize("name", TRICKY_SERIES)
def test_the_serialized_seqs_batch_is_the_put_built_one_byte_for_byte(name, length):
    series = TRICKY_SERIES[name]
    if length == "lengthened":
        series = [lengthened(s) for s in series]
    want = put_by_put("c" * 24, series, now=T0 + 0.5)
    batch = aim_storage.seqs_batch("c" * 24, series, now=T0 + 0.5)
    assert batch == put_batch(want)
    assert aim_storage.batch_items(batch) == want


@pytest.mark.parametrize(
    "rows",
    [
        [(0, None, 2**70, T0)],  # a value beyond 64 bits
        [(2**70, None, 1.0, T0)],  # a step beyond 64 bits: hashed fine, but stored as a value too
    ],
)
def test_the_seqs_batch_refuses_what_aims_encoder_refuses(rows):
    with pytest.raises(OverflowError):
        put_by_put("c" * 24, [series_of("big", rows)], now=T0)
    with pytest.raises(OverflowError):
        aim_storage.seqs_batch("c" * 24, [series_of("big", rows)], now=T0)


SUMMARY_CASES = [
    [(0, 1.0), (1, 2.0), (2, 0.5)],
    [(5, 3.0), (2, 1.0), (5, 7.0), (-1, 9.0), (7, -INF)],  # unsorted, a repeat, a negative step, -inf
    [(-3, 1.0), (-1, 2.0)],  # no step >= 0: `first` is the last point, no `last`
    [(0, NAN), (1, NAN)],  # no max, no min
    [(0, -INF), (1, -INF)],  # no max; the min is the first -inf
    [(0, INF), (1, INF), (2, NAN)],  # no min; the max is the first +inf
    [(0, -0.0), (1, 0.0), (2, -0.0)],  # the first of equal values is kept: -0.0
    [(0, 0.0), (1, -0.0)],
    [(3, NAN), (3, 1.0), (1, 5.0), (3, 5.0), (2, -1.0), (2, -1.0)],
    [(-5, 1.0), (0, 2.0), (-7, 3.0), (0, 4.0)],
    [(2**70, 1.0), (-1, 2.0)],  # a step numpy cannot hold: point by point
]


@pytest.mark.parametrize("length", ["as is", "lengthened"])
@pytest.mark.parametrize("rows", SUMMARY_CASES)
def test_the_summary_of_a_float_series_keeps_the_trackers_rules(rows, length):
    if length == "lengthened":  # numpy's path (short series take the loop); the same cells
        rows = [*rows[:1] * 40, *rows]
    steps, values = (tuple(column) for column in zip(*rows, strict=True))
    assert aim_storage._summary_points(steps, values) == aim_storage._summary_points_loop(steps, values)


def test_float_summaries_are_the_sdks(tmp_path):
    """The tracker's own rules, through Aim's SDK, on every summary case above, as is and long
    enough for numpy (bar the step numpy cannot hold, which the seqs container refuses)."""
    cases = [rows for rows in SUMMARY_CASES if all(abs(step) < 2**63 for step, _ in rows)]
    cases += [[*rows[:1] * 40, *rows] for rows in cases]
    runs = [
        spec(20 + i, series_of("s", [(step, None, value, T0) for step, value in rows]), hparams={}, meta={})
        for i, rows in enumerate(cases)
    ]
    for name, writer in (("sdk", SdkWriter(tmp_path / "sdk")), ("bulk", BulkWriter(tmp_path / "bulk", workers=1))):
        assert len(writer.write(runs).written) == len(runs), name
    for run in runs:
        chunk = Path(".aim") / "meta" / "chunks" / run.run_hash
        got = aim_storage.read_items(tmp_path / "bulk" / chunk)
        assert got == aim_storage.read_items(tmp_path / "sdk" / chunk), run.series[0]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names are read from /proc")
def test_containers_of_a_process_can_flush_at_once():
    """The writer's threads no longer take turns flushing their runs (RocksDB's pool of flush threads)."""

    def name(task: Path) -> str:
        try:
            return (task / "comm").read_text().strip()
        except FileNotFoundError:  # a thread of an earlier test (a writer's pool) ended meanwhile
            return ""

    def flush_threads() -> int:
        return sum(name(task) == "rocksdb:high" for task in Path("/proc/self/task").iterdir())

    aim_storage.allow_parallel_flushes(3)
    assert flush_threads() >= 3


@pytest.fixture(scope="module")
def corpus_repos(tmp_path_factory):
    from tests.conftest import corpus_dir

    corpus = corpus_dir()
    if not corpus.is_dir():
        pytest.skip(f"shared corpus not found at {corpus} (set AIM_ETL_CORPUS to its folder)")
    # A subset, to keep the SDK's side short: every project of the corpus but the three with the
    # most runs (~360 of its ~450, many-run code paths the generated logs cover).
    largest = {"arclabs561__decksage", "dlmastery__nature_inspired_networks", "Surmbruh__concrete-strength"}
    sources = sorted(p for p in corpus.iterdir() if p.is_dir() and p.name not in largest)
    root = tmp_path_factory.mktemp("corpus")
    reports = {w: etl.migrate(sources, root / w, writer=w) for w in ("sdk", "bulk")}
    return root, reports


def test_corpus_reads_back_the_same_with_either_writer(corpus_repos):
    root, reports = corpus_repos
    assert reports["bulk"].writer == "bulk" and reports["sdk"].writer == "sdk"
    assert reports["bulk"].runs_written == reports["sdk"].runs_written > 20
    assert reports["bulk"].points_written == reports["sdk"].points_written > 1000
    assert read_back(root / "bulk" / ".aim") == read_back(root / "sdk" / ".aim")


def test_a_second_import_finds_every_run_present(tmp_path):
    specs = tricky_specs()
    writer = BulkWriter(tmp_path / "repo", workers=1)
    assert len(writer.write(specs).written) == len(specs)
    again = writer.write(specs)
    assert not again.written and len(again.already_present) == len(specs)


def test_a_run_aim_cannot_encode_fails_alone_and_its_old_version_is_gone(tmp_path):
    good, edited = tricky_specs()[0], tricky_specs()[2]
    results = {}
    for name, writer in (("sdk", SdkWriter(tmp_path / "sdk")), ("bulk", BulkWriter(tmp_path / "bulk", workers=1))):
        writer.write([edited])
        bad = spec(3, hparams={"huge": 2**70}, content_hash="edited")  # an int Aim's encoder refuses
        results[name] = writer.write([good, bad])
    for name, result in results.items():
        assert [s.run_hash for s in result.written] == [good.run_hash], name
        ((failed, reason),) = result.failed
        assert failed.run_hash == edited.run_hash and "OverflowError" in reason, reason
    assert read_back(tmp_path / "bulk" / ".aim") == read_back(tmp_path / "sdk" / ".aim")
    assert not (tmp_path / "bulk" / ".aim" / "meta" / "chunks" / edited.run_hash).exists()


HOLD_INDEX = """
import sys, time, aimrocks
db = aimrocks.DB(sys.argv[1], aimrocks.Options(create_if_missing=True))
print("held", flush=True)
sys.stdin.read()
"""


def test_runs_are_left_to_the_indexer_holding_the_index(tmp_path, monkeypatch):
    from etl.writers import aim_adapter, bulk

    monkeypatch.setattr(bulk, "INDEX_WAIT_SECONDS", 0.3)
    writer = BulkWriter(tmp_path / "repo", workers=1)
    index = tmp_path / "repo" / ".aim" / "meta" / "index"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_INDEX, str(index)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = writer.write(tricky_specs())
        assert time.monotonic() - started < 10
    finally:
        holder.communicate("")
    assert sorted(result.left_unindexed) == sorted(s.run_hash for s in tricky_specs())
    assert len(result.written) == 3
    # What that indexer (here Aim's own, as `aim up` runs it) does next makes them visible.
    repo = aim_adapter.open_repo(tmp_path / "repo")
    assert sorted(aim_adapter.refresh_index(repo)) == sorted(result.left_unindexed)
    assert len(read_back(tmp_path / "repo" / ".aim")) == 3


def reference_dump(aim_dir: Path, run_hash: str) -> dict:
    return {
        container: [[k.hex(), v.hex()] for k, v in aim_storage.read_items(aim_dir / container / "chunks" / run_hash)]
        for container in ("meta", "seqs")
    }


def test_the_installed_aim_encodes_the_reference_run_as_it_did(tmp_path):
    """Fails when an Aim upgrade changes the storage layout the bulk writer writes.

    `tests/fixtures/bulk_reference/run.json` holds every key and value of one small run as the SDK
    writer wrote it (hex), on the Aim version named in the file. Regenerate it only after checking
    the new layout against the SDK: `python -m tests.test_bulk_writer REGENERATE`.
    """
    reference = json.loads(REFERENCE.read_text())
    run = tricky_specs()[1]
    BulkWriter(tmp_path / "repo", workers=1).write([run])
    got = reference_dump(tmp_path / "repo" / ".aim", run.run_hash)
    for container in ("meta", "seqs"):
        want = reference["containers"][container]
        if got[container] != want:
            diff = sorted(set(map(tuple, got[container])) ^ set(map(tuple, want)))[:6]
            pytest.fail(
                f"aim-etl's bulk writer no longer writes what aim {reference['aim']} wrote for the reference run "
                f"({container} container, first differences: {diff}). Aim's storage layout or encoding changed: "
                "use --writer sdk, and check the bulk writer against this Aim before trusting it again."
            )


def _regenerate(target: Path) -> None:
    import tempfile
    from importlib.metadata import version

    with tempfile.TemporaryDirectory() as tmp:
        run = tricky_specs()[1]
        SdkWriter(Path(tmp) / "repo").write([run])
        document = {
            "aim": version("aim"),
            "run_hash": run.run_hash,
            "containers": reference_dump(Path(tmp) / "repo" / ".aim", run.run_hash),
        }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=0) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["REGENERATE"]:
    _regenerate(REFERENCE)
