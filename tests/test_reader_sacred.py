"""Sacred FileStorageObserver run folders: run.json + config.json + metrics.json -> one run per folder.

Fixtures in tests/fixtures/sacred/my_runs/: `1` a completed run (a metric step logged twice, a
metric named `epoch`, a NaN, a dict result, info.json, cout.txt without a last newline, an artifact,
a rendered report and a user's own notes.md); `2` a failed run (fail_trace, config.json cut short,
a metric that is not an object, lists of unequal length, points without a number); `3` a run.json
cut while Sacred rewrote it. `not_sacred/` is a project's own run.json beside a config.json.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

from etl.errors import BadRecord
from etl.interpret import FieldRules, interpret
from etl.normalize import Normalizer
from etl.readers.record import Record
from etl.readers.sacred import SACRED, claims_sacred, claims_with_reasons_sacred, is_sacred, read_sacred

RUNS = Path(__file__).resolve().parent / "fixtures" / "sacred" / "my_runs"
NOT_SACRED = RUNS.parent / "not_sacred" / "run.json"
UTC = dt.UTC
TRAIN, VAL, TEST = '{"subset":"train"}', '{"subset":"val"}', '{"subset":"test"}'


def read(run_json: Path) -> list[Record | BadRecord]:
    return list(read_sacred(run_json, f"my_runs/{run_json.parent.name}/run.json"))


def split(items: list[Record | BadRecord]) -> tuple[Record, list[BadRecord]]:
    records = [i for i in items if isinstance(i, Record)]
    assert len(records) == 1
    return records[0], [i for i in items if isinstance(i, BadRecord)]


def series(points) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
    """(name, context) -> sorted (step, value, time) of an interpreted record's points."""
    out: dict[tuple[str, str], list] = {}
    for name, context, step, _epoch, value, time in points:
        out.setdefault((name, context), []).append((step, value, time))
    return {k: sorted(v) for k, v in out.items()}


def utc_seconds(naive_iso: str) -> float:
    """A Sacred time (naive, meaning UTC) as epoch seconds."""
    return dt.datetime.fromisoformat(naive_iso).replace(tzinfo=UTC).timestamp()


# --- the corpus: my_runs/3 of aida-ugent/tgne, written by Sacred 0.8.4 ------------------------------


def test_corpus_run_is_one_run_with_its_config_and_every_metric_point_at_its_own_time(corpus):
    run_json = corpus / "aida-ugent__tgne" / "my_runs" / "3" / "run.json"
    folder = run_json.parent
    assert is_sacred(run_json)
    assert [p.name for p in claims_sacred(run_json)] == ["config.json", "cout.txt", "metrics.json"]

    items = read(run_json)
    assert len(items) == 1 and isinstance(items[0], Record)
    (record,) = items
    assert record.format == SACRED and record.locator == "$"
    run = json.loads(run_json.read_text())
    item = interpret(record, FieldRules())
    assert item.record_id == "3" and item.name == "3"
    assert item.experiment == "tgne" == run["experiment"]["name"]
    assert item.hparams == json.loads((folder / "config.json").read_text()) == {"n_epochs": 100, "seed": 488707886}
    assert item.created_at == dt.datetime(2023, 10, 10, 7, 12, 22, 392928, tzinfo=UTC)
    assert item.ended_at == dt.datetime(2023, 10, 10, 7, 12, 24, 544539, tzinfo=UTC)
    assert not item.naive_time  # Sacred's naive times are UTC: said so by the reader, not guessed later
    assert item.meta["status"] == "COMPLETED" and item.meta["command"] == "train"
    assert item.meta["host"]["hostname"] == run["host"]["hostname"]
    assert item.meta["host"]["python_version"] == "3.8.0"
    assert item.meta["heartbeat"] == "2023-10-10T07:12:24.545564+00:00"
    assert item.meta["sources"] == ["model/__init__.py", "model/tgne.py", "temporal_data.py", "train.py"]
    assert len(run["experiment"]["repositories"]) == 4 and len(item.meta["repositories"]) == 1
    assert item.meta["artifacts"] == ["tgne_toy_100.ckpt"]
    assert item.meta["sacred_meta"]["config_updates"] == {"n_epochs": 100}
    raw_cout = (folder / "cout.txt").read_bytes()
    assert item.meta["cout"] == {"bytes": len(raw_cout), "lines": 5}
    assert "result" not in item.meta and "results" not in item.meta  # result: null

    metrics = json.loads((folder / "metrics.json").read_text())
    got = series(item.points)
    assert set(metrics) == {"loss", "grad_bias_map", "grad_z_loc", "grad_z_scale"}
    assert set(got) == {(name, "{}") for name in metrics}
    for name, metric in metrics.items():
        expected = [
            (s, v, utc_seconds(t))
            for s, v, t in zip(metric["steps"], metric["values"], metric["timestamps"], strict=True)
        ]
        assert got[(name, "{}")] == expected
        assert [s for s, *_ in got[(name, "{}")]] == list(range(100))
    assert all(p[3] is None for p in item.points)  # Sacred's steps are not epochs

    frames = Normalizer().normalize([record])
    assert len(frames.runs) == 1 and frames.runs.loc[0, "format"] == SACRED
    assert len(frames.metrics) == 4 * 100
    assert frames.naive_timestamps == 0
    assert frames.metrics["time"].notna().all()


# --- fixtures -----------------------------------------------------------------------------------


def test_completed_run_keeps_the_later_value_of_a_repeated_step_and_renames_epoch():
    record, bad = split(read(RUNS / "1" / "run.json"))
    assert bad == []
    item = interpret(record, FieldRules())
    assert item.record_id == "1" and item.experiment == "mnist"
    assert item.hparams == {"lr": 0.01, "model": {"dim": 64, "dropout": 0.1}, "seed": 42}
    assert item.created_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert item.ended_at == dt.datetime(2026, 1, 2, 3, 4, 15, 500000, tzinfo=UTC)
    at = lambda s: dt.datetime(2026, 1, 2, 3, 4, s, 250000, tzinfo=UTC).timestamp()  # noqa: E731

    got = series(item.points)
    assert set(got) == {("loss", TRAIN), ("acc", VAL), ("acc", TEST), ("epoch_reported", "{}")}
    # step 2 of train.loss was logged twice: the later value (and its time) wins, as in Aim
    assert got[("loss", TRAIN)] == [(0, 1.0, at(6)), (1, 0.8, at(8)), (2, 0.6, at(12))]
    assert got[("epoch_reported", "{}")] == [(0, 0.0, at(7)), (1, 1.0, at(9)), (2, 2.0, at(11))]
    (first, second) = got[("acc", VAL)]
    assert first == (0, 0.5, at(7)) and second[0] == 2 and math.isnan(second[1]) and second[2] == at(11)
    # the result dict: its number is a final metric at step 0, its string stays in the meta
    (final,) = got[("acc", TEST)]
    assert final[:2] == (0, 0.91) and math.isnan(final[2])
    assert item.meta["results"] == {"report": "ok"}

    assert item.meta["status"] == "COMPLETED"
    assert item.meta["info"] == {"best_epoch": 2, "notes": ["converged"]}
    assert item.meta["cout"] == {"bytes": len((RUNS / "1" / "cout.txt").read_bytes()), "lines": 3}
    assert item.meta["sacred_meta"]["comment"] == "baseline"
    assert item.meta["sources"] == ["train.py", "model.py"]
    assert item.meta["repositories"] == [{"commit": "abc123", "dirty": False, "url": "https://example.com/mnist.git"}]
    assert item.meta["heartbeat"] == "2026-01-02T03:04:15.400000+00:00"

    frames = Normalizer().normalize([record])
    assert len(frames.metrics) == 3 + 3 + 2 + 1 and frames.naive_timestamps == 0


def test_claims_are_sacreds_files_and_listed_artifacts_not_a_users_own_file():
    run_json = RUNS / "1" / "run.json"
    reasons = {p.name: r for p, r in claims_with_reasons_sacred(run_json)}
    assert sorted(reasons) == ["config.json", "cout.txt", "info.json", "metrics.json", "model.txt", "report.html"]
    assert "notes.md" not in reasons and "run.json" not in reasons
    assert reasons["cout.txt"].startswith("not imported")
    assert "artifact" in reasons["model.txt"]
    assert [p.name for p in claims_sacred(RUNS / "2" / "run.json")] == ["config.json", "metrics.json"]


def test_failed_run_reports_each_bad_file_and_metric_and_keeps_the_rest():
    record, bad = split(read(RUNS / "2" / "run.json"))
    assert [(b.source, b.locator) for b in bad] == [
        ("my_runs/2/run.json", "config.json line 3"),
        ("my_runs/2/run.json", "metrics.json $.acc"),
        ("my_runs/2/run.json", "metrics.json $.loss"),
        ("my_runs/2/run.json", "metrics.json $.val_loss"),
    ]
    assert bad[0].reason.startswith("config.json: not JSON")
    assert bad[1].reason == "expected object, got string"
    assert "(steps 3, values 2, timestamps 3)" in bad[2].reason
    assert bad[3].reason.startswith("2 point(s)")
    assert str(bad[0]) == "my_runs/2/run.json:config.json line 3: " + bad[0].reason

    item = interpret(record, FieldRules())
    assert item.record_id == "2" and item.experiment == "mnist" and item.hparams == {}
    assert item.meta["status"] == "FAILED"
    assert item.meta["fail_trace"].startswith("Traceback") and item.meta["fail_trace"].endswith("out of memory\n")
    assert item.ended_at == dt.datetime(2026, 1, 2, 4, 0, 2, tzinfo=UTC)
    got = series(item.points)
    t0 = dt.datetime(2026, 1, 2, 4, 0, 0, tzinfo=UTC).timestamp()
    assert got[("loss", "{}")] == [(0, 3.0, t0 + 0.5), (1, 2.0, t0 + 1.0)]  # the points the lists agree on
    assert got[("loss", VAL)] == [(0, 1.0, t0 + 0.6), (3, 0.5, t0 + 0.6)]


def test_a_cut_run_json_is_reported_and_the_folder_is_still_a_run():
    record, bad = split(read(RUNS / "3" / "run.json"))
    (problem,) = bad
    assert problem.locator.startswith("line ") and problem.reason.startswith("not JSON")
    item = interpret(record, FieldRules())
    assert item.record_id == "3"
    assert item.experiment == "my_runs"  # run.json's experiment name is lost: the observer's folder
    assert item.hparams == {"lr": 0.1, "seed": 7} and item.created_at is None
    assert series(item.points) == {("acc", TEST): [(0, 0.75, dt.datetime(2026, 1, 2, 5, 0, 1, tzinfo=UTC).timestamp())]}


def test_detection_keys_on_sacreds_keys_in_the_first_kib(tmp_path):
    assert all(is_sacred(RUNS / n / "run.json") for n in ("1", "2", "3"))
    assert not is_sacred(NOT_SACRED)  # a config.json beside it, but none of Sacred's keys
    assert not is_sacred(RUNS / "1" / "config.json")

    alone = tmp_path / "alone" / "run.json"
    alone.parent.mkdir()
    alone.write_text(json.dumps({"command": "main", "experiment": {"name": "x"}, "host": {}, "status": "QUEUED"}))
    assert is_sacred(alone)  # three of Sacred's keys, no sibling needed
    alone.write_text(json.dumps({"command": "main", "status": "QUEUED"}))
    assert not is_sacred(alone)
    (alone.parent / "metrics.json").write_text("{}")
    assert is_sacred(alone)  # one key and a metrics.json beside it

    late = tmp_path / "late" / "run.json"
    late.parent.mkdir()
    late.write_text('{"padding": "' + "x" * 2000 + '", "command": "a", "experiment": {}, "host": {}}')
    assert not is_sacred(late)  # only the first KiB is read


def test_result_shapes_and_unknown_run_json_keys(tmp_path):
    folder = tmp_path / "runs" / "7"
    shutil.copytree(RUNS / "1", folder)
    run = json.loads((folder / "run.json").read_text())

    def result_of(value):
        (folder / "run.json").write_text(json.dumps({**run, "result": value, "queue_time": "later"}))
        record, bad = split(list(read_sacred(folder / "run.json", "runs/7/run.json")))
        assert bad == []
        return record.data

    data = result_of(0.93)
    assert data["results"] == {"result": 0.93} and data["run_json_other"] == {"queue_time": "later"}
    item = interpret(Record("runs/7/run.json", "$", SACRED, data), FieldRules())
    assert ("result", "{}", 0, None, 0.93) in [p[:5] for p in item.points]
    pickled = {"py/object": "numpy.float64", "dtype": "float64", "value": 0.93}
    assert result_of(pickled)["result"] == pickled and "results" not in result_of(pickled)
    assert result_of([1, 2])["result"] == [1, 2]
    assert result_of(True)["result"] is True
    assert data["run_id"] == "7"
