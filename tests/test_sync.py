"""`sync`: cursors, appends, rewrites, torn lines, edits, locks, crashes, lost ledgers, rollback, watch.

Every scenario runs the real CLI against a real Aim repo and reads the result back with Aim's SDK;
every sync test syncs a second time and checks that nothing more is written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import filelock
import pytest

from etl.writers.naming import run_hash_for
from tests.conftest import aim_runs, run_cli, series


def line(i: int, epochs: int = 4, lr: float = 0.01) -> str:
    record = {
        "experiment_id": f"exp_{i:04d}",
        "timestamp": f"2025-05-{1 + i % 28:02d}T10:00:00Z",
        "config": {"lr": lr, "dim": 64},
        "results": {"p10": i / 1000},
        "history": {"train_loss": [1.0 / (e + 1) for e in range(epochs)]},
    }
    return json.dumps(record) + "\n"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "experiments" / "EXPERIMENT_LOG.jsonl"
    path.parent.mkdir()
    path.write_text("".join(line(i) for i in range(5)))
    return path


def sync(log: Path, repo: Path, *args: str) -> dict:
    report = repo.parent / "sync-report.json"
    result = run_cli("sync", log, "--repo", repo, "--report", report, "-q", *args)
    assert result.exit_code in (0, 3), result.output
    data = json.loads(report.read_text())
    data["exit_code"] = result.exit_code
    return data


def test_sync_after_migrate_is_a_noop_that_does_not_read_the_file(log, repo):
    run_cli("migrate", log, "--repo", repo, "-q")
    report = sync(log, repo)
    assert report["summary"]["runs_written"] == 0
    assert [f["mode"] for f in report["files"]] == ["unchanged"]
    assert report["files"][0]["records"] == 0


def test_appended_lines_are_read_from_the_cursor_only(log, repo):
    sync(log, repo)
    with log.open("a") as fh:
        fh.write(line(5) + line(6))
    report = sync(log, repo)
    assert [f["mode"] for f in report["files"]] == ["appended"]
    assert report["files"][0]["records"] == 2  # the 5 old lines were not read again
    assert report["summary"]["new"] == report["summary"]["runs_written"] == 2
    assert len(aim_runs(repo)) == 7
    again = sync(log, repo)
    assert again["summary"]["runs_written"] == 0 and again["files"][0]["mode"] == "unchanged"


def test_an_old_id_on_an_appended_line_is_a_rerun(log, repo):
    sync(log, repo)
    with log.open("a") as fh:
        fh.write(line(2, lr=0.5))
    report = sync(log, repo)
    assert [r["locator"] for r in report["reruns"]] == ["line 6"]
    source = log.resolve().as_posix()
    runs = aim_runs(repo)
    assert runs[run_hash_for(f"{source}#exp_0002")]["hparams"]["lr"] == 0.01
    assert runs[run_hash_for(f"{source}#exp_0002#2")]["hparams"]["lr"] == 0.5


def test_torn_last_line_waits_for_the_next_sync(log, repo):
    complete = line(5)
    with log.open("a") as fh:
        fh.write(complete[:30])  # a writer in the middle of a line
    first = sync(log, repo)
    assert first["exit_code"] == 0 and first["invalid"] == []
    assert [p["locator"] for p in first["pending"]] == ["line 6"]
    assert len(aim_runs(repo)) == 5
    with log.open("a") as fh:
        fh.write(complete[30:])
    second = sync(log, repo)
    assert second["files"][0]["mode"] == "appended" and second["summary"]["new"] == 1
    assert len(aim_runs(repo)) == 6
    assert sync(log, repo)["summary"]["runs_written"] == 0


def test_migrate_reports_a_torn_last_line_as_invalid(log, repo):
    with log.open("a") as fh:
        fh.write(line(5)[:30])
    result = run_cli("migrate", log, "--repo", repo)
    assert result.exit_code == 3 and "torn last line" in result.output


def test_an_edited_record_updates_its_run_in_place(log, repo):
    sync(log, repo)
    source = log.resolve().as_posix()
    run_hash = run_hash_for(f"{source}#exp_0003")
    created = aim_runs(repo)[run_hash].creation_time
    lines = log.read_text().splitlines(keepends=True)
    lines[3] = line(3, epochs=2, lr=0.02)  # new lr, and a shorter history
    log.write_text("".join(lines))
    report = sync(log, repo)
    assert report["files"][0]["mode"] == "re-read"
    assert report["summary"]["changed"] == 1 and report["summary"]["unchanged"] == 4
    assert report["summary"]["runs_written"] == 1
    runs = aim_runs(repo)
    assert len(runs) == 5
    run = runs[run_hash]
    assert run["hparams"]["lr"] == 0.02
    assert run.creation_time == created
    assert [p[0] for p in series(run)[("loss", (("subset", "train"),))]] == [0, 1]  # no stale epochs 2 and 3
    assert sync(log, repo)["summary"]["runs_written"] == 0


@pytest.mark.parametrize(("policy", "runs", "lr"), [("skip", 5, 0.01), ("new", 6, 0.01)])
def test_on_change_skip_and_new(log, repo, policy, runs, lr):
    sync(log, repo)
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = line(1, lr=0.3)
    log.write_text("".join(lines))
    report = sync(log, repo, "--on-change", policy)
    stored = aim_runs(repo)
    assert len(stored) == runs
    assert stored[run_hash_for(f"{log.resolve().as_posix()}#exp_0001")]["hparams"]["lr"] == lr
    if policy == "new":
        assert report["summary"]["new"] == 1
        assert {r["hparams"]["lr"] for r in stored.values() if r.name == "exp_0001"} == {0.01, 0.3}
    again = sync(log, repo, "--on-change", policy)
    assert again["summary"]["runs_written"] == 0


def test_truncated_or_rotated_file_is_read_again_in_full(log, repo):
    sync(log, repo)
    log.write_text("".join(line(i) for i in range(3)) + line(9))  # rotated: shorter, one new line
    report = sync(log, repo)
    assert report["files"][0]["mode"] == "re-read"
    assert report["summary"]["unchanged"] == 3 and report["summary"]["new"] == 1
    assert len(aim_runs(repo)) == 6  # runs of lines no longer in the file are kept


def test_json_document_is_skipped_while_unchanged(tmp_path, repo):
    doc = tmp_path / "run.json"
    doc.write_text(json.dumps({"run_id": "r1", "config": {"lr": 0.1}, "results": {"acc": 0.5}}))
    assert sync(doc, repo)["summary"]["new"] == 1
    os.utime(doc, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same bytes
    touched = sync(doc, repo)
    assert touched["files"][0]["mode"] == "unchanged"
    doc.write_text(json.dumps({"run_id": "r1", "config": {"lr": 0.2}, "results": {"acc": 0.5}}))
    edited = sync(doc, repo)
    assert edited["summary"]["changed"] == 1
    assert next(iter(aim_runs(repo).values()))["hparams"]["lr"] == 0.2


def test_a_held_repo_exits_5_or_waits(log, repo):
    repo.mkdir()
    lock = filelock.FileLock(str(repo / ".aim-etl.lock"), thread_local=False)  # released by a timer thread
    lock.acquire()
    try:
        result = run_cli("sync", log, "--repo", repo)
        assert result.exit_code == 5
        assert "another aim-etl is importing into this repo" in result.output
        threading.Timer(1.0, lock.release).start()
        waited = run_cli("sync", log, "--repo", repo, "--wait", "30", "-q")
        assert waited.exit_code == 0
        assert "waiting up to 30s" in waited.output
    finally:
        if lock.is_locked:
            lock.release()
    assert len(aim_runs(repo)) == 5


def cli_process(*args: str | Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "etl", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a kill takes everything it started
        # Ctrl-C as at a terminal: a test run started in the background (`make test &`, some CI
        # runners) ignores SIGINT, every child inherits that, and Python then never raises
        # KeyboardInterrupt, so `sync --watch` could not be stopped the way a user stops it.
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("writer", ["bulk", "sdk"])
def test_two_syncs_at_once_neither_corrupt_nor_duplicate(tmp_path, repo, writer):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(line(i) for i in range(40)))
    procs = [cli_process("sync", log, "--repo", repo, "--wait", "120", "-q", "--writer", writer) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    runs = aim_runs(repo)
    assert len(runs) == 40
    assert all(len(series(r)[("loss", (("subset", "train"),))]) == 4 for r in runs.values())


# Both writers promise the same: a run cut short is found incomplete and rewritten whole. The SDK
# writer, slower and checked for longer, only at one point of the import.
@pytest.mark.parametrize(("writer", "kill_after_runs"), [("bulk", 1), ("bulk", 15), ("bulk", 70), ("sdk", 15)])
def test_kill_dash_9_mid_import_then_sync_gives_the_uninterrupted_result(tmp_path, repo, writer, kill_after_runs):
    log = tmp_path / "log.jsonl"
    total = 120
    log.write_text("".join(line(i, epochs=30) for i in range(total)))
    ledger = repo / ".aim-etl-ledger.sqlite"
    proc = cli_process("migrate", log, "--repo", repo, "-q", "--writer", writer)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once some runs are in Aim, mid-chunk
        chunks = repo / ".aim" / "meta" / "chunks"
        if chunks.is_dir() and len(list(chunks.iterdir())) >= kill_after_runs:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(ledger) as db:
        states = dict(db.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall())
    assert states.get("done", 0) < total  # it really was interrupted
    report = sync(log, repo)
    assert report["exit_code"] == 0
    runs = aim_runs(repo)
    assert len(runs) == total
    for run in runs.values():
        points = series(run)
        assert [p[0] for p in points[("loss", (("subset", "train"),))]] == list(range(30))
        assert ("p10", ()) in points and run["etl"]["complete"] is True and run.end_time is not None
    assert sync(log, repo)["summary"]["runs_written"] == 0


def test_lost_ledger_is_rebuilt_from_the_repo(log, repo):
    first = sync(log, repo)
    (repo / ".aim-etl-ledger.sqlite").unlink()
    rebuilt = run_cli("ledger", "rebuild", "--repo", repo)
    assert rebuilt.exit_code == 0 and "5 runs" in rebuilt.output
    shown = run_cli("ledger", "show", "--repo", repo)
    assert first["batch"] in shown.output
    report = sync(log, repo)
    assert report["files"][0]["mode"] == "read"  # cursors are not rebuilt: one full read
    assert report["summary"]["unchanged"] == 5 and report["summary"]["runs_written"] == 0
    assert len(aim_runs(repo)) == 5


def test_rollback_deletes_what_a_batch_created_and_names_what_it_updated(log, repo):
    sync(log, repo)
    lines = log.read_text().splitlines(keepends=True)
    lines[0] = line(0, lr=0.9)
    log.write_text("".join(lines) + line(5) + line(6))
    second = sync(log, repo)
    batch = second["batch"]
    assert second["summary"]["new"] == 2 and second["summary"]["changed"] == 1
    shown = run_cli("ledger", "show", "--repo", repo)
    assert batch in shown.output and "2 new" in shown.output
    dry = run_cli("rollback", batch, "--repo", repo, "--dry-run")
    assert "would delete 2 runs" in dry.output and "1 runs it updated in place cannot be restored" in dry.output
    assert len(aim_runs(repo)) == 7
    done = run_cli("rollback", batch, "--repo", repo)
    assert done.exit_code == 0 and "deleted 2 runs" in done.output
    runs = aim_runs(repo)
    assert len(runs) == 5 and run_hash_for(f"{log.resolve().as_posix()}#exp_0005") not in runs
    again = sync(log, repo)  # the file is read again; the rolled-back lines come back
    assert again["summary"]["new"] == 2 and len(aim_runs(repo)) == 7
    assert run_cli("rollback", "no-such-batch", "--repo", repo).exit_code == 1


def test_watch_imports_appended_lines_until_interrupted(log, repo):
    proc = cli_process("sync", log, "--repo", repo, "--watch", "--interval", "0.3")
    try:
        # Each pass gets its own minute: on a loaded CI machine one pass (Aim's import, the repo's
        # schema check, the write) has taken well over half of a shared one.
        deadline = time.monotonic() + 60
        while _done(repo) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        with log.open("a") as fh:
            fh.write(line(5))
        deadline = time.monotonic() + 60
        while _done(repo) < 6 and time.monotonic() < deadline:  # written, closed and recorded
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert "stopped watching" in output
    assert len(aim_runs(repo)) == 6


def _done(repo: Path) -> int:
    ledger = repo / ".aim-etl-ledger.sqlite"
    if not ledger.exists():
        return 0
    with sqlite3.connect(ledger) as db:
        return db.execute("SELECT count(*) FROM runs WHERE state = 'done'").fetchone()[0]
