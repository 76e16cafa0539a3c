"""`aim-etl export` and `etl.export`: Aim runs back out, and migrated back in unchanged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from etl import export
from etl.normalize import METRIC_COLUMNS, RUN_COLUMNS
from tests.conftest import FIXTURES, aim_runs, run_cli, series

EXPERIMENTS = FIXTURES / "experiments"


def _migrate(sources: Path, repo: Path, *options: str) -> None:
    result = run_cli("migrate", sources, "--repo", repo, "-q", *options)
    assert result.exit_code in (0, 3), result.output


def _assert_same_runs(original: Path, copy: Path) -> int:
    """Every run of `original` has its twin in `copy` (found by the run id the export wrote): same
    experiment, name, hparams, tags, times, and series (values, steps, epochs, point times, contexts)."""
    before, after = aim_runs(original), aim_runs(copy)
    twins = {run["etl"]["record_id"]: run for run in after.values()}
    assert len(before) == len(after) == len(twins)
    points = 0
    for run_hash, run in before.items():
        twin = twins[run_hash]
        assert (twin.experiment, twin.name) == (run.experiment, run.name)
        assert twin["hparams"] == run["hparams"]
        assert set(twin.props.tags) == set(run.props.tags)
        assert (twin.creation_time, twin.end_time) == (run.creation_time, run.end_time)
        mine, theirs = series(run), series(twin)
        assert mine.keys() == theirs.keys(), run_hash
        for key, points_before in mine.items():
            # repr: NaN equals NaN, and floats must be bit for bit the same
            assert repr(theirs[key]) == repr(points_before), (run_hash, key)
            points += len(points_before)
    return points


def test_frames_have_the_columns_of_read_and_every_point(tmp_path):
    repo = tmp_path / "repo"
    _migrate(EXPERIMENTS, repo)
    frames = export(repo)
    assert tuple(frames.runs.columns) == RUN_COLUMNS and tuple(frames.metrics.columns) == METRIC_COLUMNS
    runs = aim_runs(repo)
    assert set(frames.runs["run_key"]) == set(runs)
    assert len(frames.metrics) == sum(len(p) for r in runs.values() for p in series(r).values())
    row = frames.runs.set_index("run_key").loc[next(iter(runs))]
    assert row["hparams"] == runs[row.name]["hparams"]
    assert row["created_at"].timestamp() == runs[row.name].creation_time
    only_val = export(repo, query='run.experiment == "node2vec-baseline"')
    assert 0 < len(only_val.runs) < len(frames.runs)
    assert set(only_val.runs["experiment"]) == {"node2vec-baseline"}


def test_round_trip_migrate_export_migrate_gives_equal_runs(tmp_path):
    # Imported with Aim's names kept as written: the export's rows then carry every series under its own name.
    original, copy, folder = tmp_path / "a", tmp_path / "b", tmp_path / "export"
    _migrate(EXPERIMENTS, original, "--no-contexts")
    result = run_cli("export", "--repo", original, "--to", folder)
    assert result.exit_code == 0, result.output
    assert "exported 45 runs" in result.output
    records = [json.loads(line) for line in (folder / "runs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 45 and all({"run_id", "config", "history", "timestamp"} <= set(r) for r in records)
    _migrate(folder, copy, "--no-contexts")
    assert _assert_same_runs(original, copy) > 1000


def test_round_trip_keeps_contexts(tmp_path):
    original, copy, folder = tmp_path / "a", tmp_path / "b", tmp_path / "export"
    _migrate(EXPERIMENTS, original)
    assert run_cli("export", "--repo", original, "--to", folder).exit_code == 0
    _migrate(folder, copy)
    _assert_same_runs(original, copy)


def test_csv_export_is_the_two_frames(tmp_path):
    repo, folder = tmp_path / "repo", tmp_path / "export"
    _migrate(EXPERIMENTS, repo)
    result = run_cli("export", "--repo", repo, "--to", folder, "--format", "csv", "--query", 'run.name != ""')
    assert result.exit_code == 0, result.output
    with (folder / "runs.csv").open(encoding="utf-8") as fh:
        runs = list(csv.DictReader(fh))
    with (folder / "metrics.csv").open(encoding="utf-8") as fh:
        metrics = list(csv.DictReader(fh))
    assert tuple(runs[0]) == RUN_COLUMNS and len(runs) == 45
    frames = export(repo)
    assert len(metrics) == len(frames.metrics)
    hparams = dict(zip(frames.runs["run_key"], frames.runs["hparams"], strict=True))
    assert all(json.loads(row["hparams"]) == hparams[row["run_key"]] for row in runs)


def test_bad_query_is_a_usage_error(tmp_path):
    repo = tmp_path / "repo"
    _migrate(EXPERIMENTS, repo)
    result = run_cli("export", "--repo", repo, "--to", tmp_path / "out", "--query", "run.name ==")
    assert result.exit_code == 2
    assert "is not valid AimQL" in result.output


def test_round_trip_on_the_whole_corpus(migrated_corpus, tmp_path):
    """migrate -> export -> migrate into an empty repo -> verify: every corpus run comes back equal."""
    (original, _), copy, folder = migrated_corpus, tmp_path / "b", tmp_path / "export"
    assert run_cli("export", "--repo", original, "--to", folder).exit_code == 0
    _migrate(folder, copy)
    assert _assert_same_runs(original, copy) > 9000
    # and the proof a user would run: the exported files against the repo they were imported into
    result = run_cli("verify", folder, "--repo", copy)
    assert result.exit_code == 0, result.output
    assert " 0 differing, 0 missing in Aim, 0 gone from the sources, 0 edited in Aim" in result.output


def test_parquet_export_is_the_two_frames_written_in_batches(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow", reason="the parquet extra (pyarrow) is not installed")
    import etl.exporting

    monkeypatch.setattr(etl.exporting, "PARQUET_BATCH", 7)  # several row groups, as on a large repo
    repo, folder = tmp_path / "repo", tmp_path / "export"
    _migrate(EXPERIMENTS, repo)
    result = run_cli("export", "--repo", repo, "--to", folder, "--format", "parquet")
    assert result.exit_code == 0, result.output
    runs, metrics = pd.read_parquet(folder / "runs.parquet"), pd.read_parquet(folder / "metrics.parquet")
    frames = export(repo)
    assert tuple(runs.columns) == RUN_COLUMNS and tuple(metrics.columns) == METRIC_COLUMNS
    assert len(runs) == len(frames.runs) == 45 and len(metrics) == len(frames.metrics)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(folder / "runs.parquet").num_row_groups == 7  # 45 runs, 7 a batch
    key = ["run_key", "name", "context", "step"]
    ours, theirs = metrics.sort_values(key), frames.metrics.sort_values(key)
    assert list(ours["run_key"]) == list(theirs["run_key"]) and list(ours["step"]) == list(theirs["step"])
    assert np.array_equal(ours["value"].to_numpy(), theirs["value"].to_numpy(), equal_nan=True)
    hparams = dict(zip(frames.runs["run_key"], frames.runs["hparams"], strict=True))
    assert all(json.loads(h) == hparams[k] for k, h in zip(runs["run_key"], runs["hparams"], strict=True))
