"""The private Aim calls the importer depends on. These fail loudly when an Aim upgrade moves them."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import sys

import pytest

from etl.writers import aim_adapter
from etl.writers.naming import run_hash_for
from tests.conftest import aim_runs, series


def test_tested_aim_version_is_installed():
    aim_adapter.check_aim_version()


def test_a_run_created_with_our_hash_times_and_no_system_tracking(repo):
    store = aim_adapter.open_repo(repo)
    run_hash = run_hash_for("experiments/log.jsonl#exp_1")
    created = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    run = aim_adapter.create_run(store, run_hash, "node2vec")
    aim_adapter.set_creation_time(run, created)
    run.name = "exp_1"  # commits the run's session again: must not write the old creation time back
    run.add_tag("baseline")
    for step in range(3):
        aim_adapter.track_point(
            run, 1.0 / (step + 1), "loss", step, step, {"subset": "train"}, created.timestamp() + 60 * step
        )
    run["etl"] = {"content_hash": "x", "complete": True}
    aim_adapter.close_run(run, created.timestamp() + 600)
    del run
    gc.collect()
    aim_adapter.index_runs(store, [run_hash])

    (read,) = aim_runs(repo).values()
    assert len(run_hash) == 24 and read.hash == run_hash
    assert read.creation_time == created.timestamp()
    assert read.end_time == created.timestamp() + 600
    assert read.duration == 600
    assert read.tags == ["baseline"] and read.experiment == "node2vec"
    assert series(read) == {
        ("loss", (("subset", "train"),)): [(s, 1.0 / (s + 1), float(s), created.timestamp() + 60 * s) for s in range(3)]
    }
    assert aim_adapter.read_provenance(store, run_hash) == {"content_hash": "x", "complete": True}


def test_provenance_of_a_run_that_was_never_closed_is_not_complete(repo):
    store = aim_adapter.open_repo(repo)
    run = aim_adapter.create_run(store, run_hash_for("k"), None)
    run["etl"] = {"content_hash": "x", "complete": True}
    assert aim_adapter.read_provenance(store, run_hash_for("k"))["complete"] is False
    aim_adapter.close_run(run, None)


def test_missing_run_has_no_provenance(repo):
    assert aim_adapter.read_provenance(aim_adapter.open_repo(repo), "0" * 24) is None


def test_repo_path_is_read_as_aims_cli_reads_it(tmp_path):
    assert aim_adapter.repo_root(tmp_path / "demo" / ".aim") == tmp_path / "demo"
    aim_adapter.open_repo(tmp_path / "demo")
    assert aim_adapter.repo_exists(tmp_path / "demo") and (tmp_path / "demo" / ".aim").is_dir()


@pytest.mark.parametrize("big", [2**64, -(2**70)])
def test_ints_beyond_64_bits_need_the_mappers_string_fallback(repo, big):
    from etl.mapper import sanitize

    store = aim_adapter.open_repo(repo)
    run = aim_adapter.create_run(store, run_hash_for(str(big)), None)
    with pytest.raises(OverflowError):
        run["hparams"] = {"seed": big}
    run["hparams"] = sanitize({"seed": big})
    assert run["hparams"]["seed"] == str(big)
    aim_adapter.close_run(run, None)


def test_indexing_many_times_in_one_process_leaks_no_watchers(repo):
    """Aim's RepoIndexManager opens an inotify watcher per instance (128 per user by default)."""
    store = aim_adapter.open_repo(repo)
    for _ in range(300):
        aim_adapter.index_runs(store, [])


def _schema(aim_dir) -> tuple[list, list]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(aim_dir / "run_metadata.sqlite")) as db:
        tables = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
        return tables, db.execute("SELECT version_num FROM alembic_version").fetchall()


def test_a_new_repo_gets_the_schema_aims_own_migrations_create(tmp_path, monkeypatch):
    """open_repo runs Aim's migrations in this process; Aim runs them in a child process. Same result,
    and none of what Aim's env.py would do to the process (reset every logger, put "." on sys.path)."""
    import aim.storage.structured.db
    from aim import Repo

    def child_process(db_url):
        raise AssertionError("Aim's child process ran: the migrations in this process did not")

    logger = logging.getLogger("a.logger.of.the.host.application")
    path, level = list(sys.path), logging.getLogger().level
    with monkeypatch.context() as patched:
        patched.setattr(aim.storage.structured.db, "upgrade_database", child_process)
        ours = aim_adapter.open_repo(tmp_path / "ours")
    assert not logger.disabled and sys.path == path and logging.getLogger().level == level

    Repo(str(tmp_path / "aims"), init=True)  # alembic in its child process, as `aim init` does
    assert _schema(tmp_path / "ours" / ".aim") == _schema(tmp_path / "aims" / ".aim")
    assert _schema(tmp_path / "ours" / ".aim")[1]  # stamped: Aim will not migrate it again
    assert (tmp_path / "ours" / ".aim" / "VERSION").read_text() == (tmp_path / "aims" / ".aim" / "VERSION").read_text()
    ours.structured_db.create_experiment("e")  # the ORM works on it
    assert [e.name for e in Repo(str(tmp_path / "ours")).structured_db.experiments()] == ["e"]
