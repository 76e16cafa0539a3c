"""More inputs that must not stop an import: a per-step line nested thousands of levels deep, a file
name that is not UTF-8, an absurd duration, and a reader that fails on a shape it did not foresee."""

from __future__ import annotations

import json
import os

import pytest

from etl import readers
from tests.conftest import aim_runs, run_cli, series


def _deep(levels: int) -> str:
    return '{"k": ' * levels + "1" + "}" * levels


def test_a_step_log_line_nested_3000_levels_deep_is_kept_and_the_rest_imported(tmp_path, repo):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 6)]
    lines[2] = '{"step": 3, "loss": 0.33, "dump": ' + _deep(3000) + "}"
    log = tmp_path / "train_log.jsonl"
    log.write_text("\n".join(lines) + "\n")
    result = run_cli("migrate", log, "--repo", repo)
    assert result.exit_code == 0, result.output
    (run,) = aim_runs(repo).values()
    assert [step for step, *_ in series(run)[("loss", ())]] == [1, 2, 3, 4, 5]


@pytest.mark.skipif(os.name != "posix", reason="file names as raw bytes are a POSIX thing")
def test_a_file_name_that_is_not_utf8_is_imported_and_synced(tmp_path, repo):
    folder = tmp_path / "logs"
    folder.mkdir()
    name = os.fsdecode(b"run\xff.jsonl")
    (folder / name).write_text(json.dumps({"run_id": "a", "config": {"lr": 0.1}, "results": {"acc": 0.5}}) + "\n")
    report = tmp_path / "report.json"
    result = run_cli("migrate", folder, "--repo", repo, "--report", report)
    assert result.exit_code == 0, result.output
    (stats,) = [f for f in json.loads(report.read_text())["files"] if f["format"]]
    assert stats["source"].endswith("run\\xff.jsonl") and stats["new"] == 1
    (run,) = aim_runs(repo).values()
    assert run["etl"]["source"].endswith("run\\xff.jsonl")
    again = run_cli("sync", folder, "--repo", repo, "--report", report)
    assert again.exit_code == 0 and json.loads(report.read_text())["summary"]["runs_written"] == 0


def test_an_absurd_duration_is_no_end_time(tmp_path, repo):
    log = tmp_path / "log.jsonl"
    record = {"run_id": "a", "timestamp": "2025-01-01T00:00:00Z", "duration_s": 1e300, "results": {"acc": 0.5}}
    log.write_text(json.dumps(record) + "\n")
    assert run_cli("migrate", log, "--repo", repo, "-q").exit_code == 0
    (run,) = aim_runs(repo).values()
    assert run["etl"]["time_source"] == "content"


def test_a_reader_that_fails_makes_its_file_invalid_and_the_others_import(tmp_path, repo, monkeypatch):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"run_id": "g", "config": {"lr": 0.1}, "results": {"acc": 0.5}}) + "\n")
    steps = tmp_path / "train_log.jsonl"
    steps.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 6)))
    real = readers.READERS["steps"]

    def failing(path, source, **kwargs):
        yield from real(path, source, **kwargs)
        raise ZeroDivisionError("a shape the reader did not foresee")

    monkeypatch.setitem(readers.READERS, "steps", failing)
    report = tmp_path / "report.json"
    result = run_cli("migrate", tmp_path, "--repo", repo, "--report", report)
    assert result.exit_code == 3
    invalid = json.loads(report.read_text())["invalid"]
    assert [(i["source"].rsplit("/", 1)[-1], i["locator"]) for i in invalid] == [("train_log.jsonl", "file")]
    assert "steps reader stopped: ZeroDivisionError" in invalid[0]["reason"]
    assert {run.name for run in aim_runs(repo).values()} == {"g", "train_log"}
    # no cursor was saved for the file that failed: the next sync tries it again
    monkeypatch.setitem(readers.READERS, "steps", real)
    again = run_cli("sync", tmp_path, "--repo", repo, "--report", report)
    assert again.exit_code == 0
    modes = {f["source"].rsplit("/", 1)[-1]: f["mode"] for f in json.loads(report.read_text())["files"]}
    assert modes["train_log.jsonl"] == "read" and modes["good.jsonl"] == "unchanged"
