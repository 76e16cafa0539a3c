"""Runs are dated by the best evidence a source gives (`etl.dating`), never silently at the import."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from etl.dating import (
    CONTENT,
    DURATION,
    FILE_NAME,
    FOLDER_NAME,
    MODIFIED,
    POINT_TIMES,
    FileDates,
    date_run,
    name_stamp,
)
from etl.pipeline import read
from tests.conftest import aim_runs, run_cli

UTC = dt.UTC
# 2023-06-09 07:57:49 UTC, a time no test run happens at: a run dated by it was not dated "now".
MTIME = dt.datetime(2023, 6, 9, 7, 57, 49, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # MMEngine / MMDetection name a run's folder and log after its start
        ("20230609_075749.log.json", dt.datetime(2023, 6, 9, 7, 57, 49, tzinfo=UTC)),
        ("20230609_075749", dt.datetime(2023, 6, 9, 7, 57, 49, tzinfo=UTC)),
        ("eval_registry_20260104_212927", dt.datetime(2026, 1, 4, 21, 29, 27, tzinfo=UTC)),
        ("annotation_report_20260101_010453.json", dt.datetime(2026, 1, 1, 1, 4, 53, tzinfo=UTC)),
        ("quality_2025_10_01.json", dt.datetime(2025, 10, 1, tzinfo=UTC)),
        ("2025-10-03-tidy", dt.datetime(2025, 10, 3, tzinfo=UTC)),
        ("trial_2026-11-24_18-55-10", dt.datetime(2026, 11, 24, 18, 55, 10, tzinfo=UTC)),
        ("downstream_eval_20260101", dt.datetime(2026, 1, 1, tzinfo=UTC)),
        # digits that are no date: counts, ids, an impossible month
        ("checkpoint-215337", None),
        ("run_12345678", None),
        ("model_20231301_000000", None),
        ("experiments.jsonl", None),
    ],
)
def test_stamps_in_names(name, expected):
    assert name_stamp(name) == expected


def test_evidence_order():
    named = FileDates(dt.datetime(2024, 1, 1, tzinfo=UTC), FILE_NAME, MTIME)
    own = dt.datetime(2022, 5, 5, tzinfo=UTC)
    assert date_run(own, None, [1.6e9], 10.0, named) == (own, None, CONTENT)
    first_point = dt.datetime.fromtimestamp(1.6e9, tz=UTC)
    assert date_run(None, None, [float("nan"), 1.7e9, 1.6e9], 10.0, named) == (first_point, None, POINT_TIMES)
    # a name stamp is the start; a stated duration gives the end
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert date_run(None, None, [], 60.0, named) == (start, start + dt.timedelta(seconds=60), FILE_NAME)
    # no name stamp: the file was written when the run ended, `duration` seconds after it started
    unnamed = FileDates(None, None, MTIME)
    assert date_run(None, None, [], 60.0, unnamed) == (MTIME - dt.timedelta(seconds=60), MTIME, DURATION)
    assert date_run(None, None, [], None, unnamed) == (MTIME, None, MODIFIED)


def _dated_copy(src: Path, dst: Path) -> Path:
    """A copy whose modification time is MTIME (a fresh checkout's files all carry the checkout time)."""
    if src.is_dir():
        shutil.copytree(src, dst)
        files = [p for p in dst.rglob("*") if p.is_file()]
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        files = [dst]
    for path in files:
        os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
    return dst


def test_trainer_folder_is_dated_by_its_runtime_before_its_files_time(corpus, tmp_path, repo):
    folder = _dated_copy(corpus / "10844110__t5-summarization-demo", tmp_path / "t5")
    runtime = json.loads((folder / "train_results.json").read_text())["train_runtime"]
    assert run_cli("migrate", folder, "--repo", repo, "-q").exit_code == 0
    (run,) = aim_runs(repo).values()
    assert run["etl"]["time_source"] == DURATION
    started = MTIME - dt.timedelta(seconds=runtime)
    assert run.creation_time == pytest.approx(started.timestamp(), abs=1e-3)
    assert run.end_time == pytest.approx(MTIME.timestamp(), abs=1e-3)
    # points without a time of their own carry the run's time, not the import's
    loss = next(m for m in run.metrics() if m.name == "loss")
    _, (_, _, times) = loss.data.items_list()
    assert max(abs(t - started.timestamp()) for t in times) < 1e-3


def test_a_log_named_by_its_start_is_dated_by_its_name(corpus, tmp_path, repo):
    log = _dated_copy(
        corpus / "dlmastery__nature_inspired_networks" / "experiments" / "experiment_log.jsonl",
        tmp_path / "work_dirs" / "20230101_120000" / "experiment_log.jsonl",
    )
    frames = read([log], base=tmp_path)
    undated = frames.runs[frames.runs["time_source"] != CONTENT]
    assert len(undated) and set(undated["time_source"]) == {FOLDER_NAME}
    assert set(undated["created_at"]) == {dt.datetime(2023, 1, 1, 12, tzinfo=UTC)}


def test_no_corpus_run_is_dated_at_the_import_and_the_report_counts_each_kind(corpus, tmp_path):
    report = tmp_path / "report.json"
    result = run_cli("migrate", corpus, "--repo", tmp_path / "repo", "--dry-run", "-q", "--report", report)
    assert result.exit_code in (0, 3)
    kinds = json.loads(report.read_text())["time_sources"]
    assert "import time" not in kinds
    assert kinds[CONTENT] > 200 and kinds[DURATION] > 0 and kinds[FOLDER_NAME] > 0
    text = run_cli("migrate", corpus, "--repo", tmp_path / "repo", "--dry-run").output
    assert "run dates: " in text and " by file modified time" in text
