"""`validate` writes verdicts straight into storage: the same bytes as through Aim's SDK.

Two copies of one repo get the same verdicts, one through a `Run` opened for writing (the SDK
path, `GovernanceRepo.write`, kept as the reference), one through `write_verdicts`; their runs' meta containers, their
index entries and their tags must be identical.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aimrocks
import pytest
from aim import Repo

from etl.governance.model import FAILED, Outcome, Validation
from etl.governance.report import render_text
from etl.governance.rules import parse_rules
from etl.pipeline import validate
from etl.writers import aim_adapter, aim_index
from etl.writers.governance import GovernanceRepo
from tests.test_validate import RULES, log_run

ROOT_KEYS_MASKED = (b"index_cache\xfe",)  # checksums of the chunk files: their mtimes differ by copy


def _container(path: Path) -> dict[bytes, bytes]:
    db = aimrocks.DB(str(path), aimrocks.Options(), read_only=True)
    try:
        iterator = db.iteritems()
        iterator.seek_to_first()
        return dict(iterator)
    finally:
        del db


def _tags(repo: Path) -> dict[str, list[str]]:
    return {run.hash: sorted(run.tags) for run in Repo(str(repo)).iter_runs()}


def _validation(status: str, violations: int) -> Validation:
    failed = tuple(
        Outcome(f"r{i}", "error", "fail", FAILED, 1.0, "hparams.lr", 0.5 + i, f"lr {i} out of range")
        for i in range(violations)
    )
    return Validation("team-1", 100.0 - 10 * violations, status, failed)


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    original = tmp_path / "a"
    hashes = [log_run(original, f"run-{i}", 0.01 * (i + 1), [0.5, 0.6 + i / 10]) for i in range(3)]
    # One run already validated under older rules, with a longer list: replaced, not merged.
    gov = GovernanceRepo(original)
    gov.write(hashes[0], _validation("FAIL", 3), None)
    gov.index([hashes[0]])
    del gov
    copy = tmp_path / "b"
    shutil.copytree(original, copy)
    return original, copy, hashes


def test_verdicts_written_directly_equal_the_sdks_key_for_key(twins):
    sdk_repo, bulk_repo, hashes = twins
    verdicts = [
        (hashes[0], _validation("WARN", 1)),
        (hashes[1], _validation("PASS", 0)),
        (hashes[2], _validation("FAIL", 2)),
    ]
    ends = {h: Repo(str(sdk_repo)).get_run(h).end_time for h in hashes}

    sdk = GovernanceRepo(sdk_repo)
    for run_hash, validation in verdicts:
        sdk.write(run_hash, validation, ends[run_hash])
    sdk._release_locks(now=True)
    aim_adapter.index_runs(sdk.writer, hashes)  # Aim's own indexer, one key at a time
    outcome = GovernanceRepo(bulk_repo).write_many(verdicts)
    assert sorted(outcome.written) == sorted(hashes) and outcome.held == {} and outcome.indexed

    for run_hash in hashes:
        chunk = Path(".aim") / "meta" / "chunks" / run_hash
        assert _container(bulk_repo / chunk) == _container(sdk_repo / chunk), run_hash
    masked = [
        {k: v for k, v in _container(repo / ".aim" / "meta" / "index").items() if not k.startswith(ROOT_KEYS_MASKED)}
        for repo in (sdk_repo, bulk_repo)
    ]
    assert masked[0] == masked[1]
    assert _tags(bulk_repo) == _tags(sdk_repo)
    run = Repo(str(bulk_repo)).get_run(hashes[0])
    assert run["validation"]["status"] == "WARN" and len(run["validation"]["violations"]) == 1
    assert sorted(run.tags) == ["validation:WARN"]
    assert run.end_time == ends[hashes[0]]  # annotating a run does not change when it ended


@contextlib.contextmanager
def _held_in_another_process(statement: str) -> Iterator[None]:
    """Another process runs `statement` (taking hold of a RocksDB) and keeps it until the block ends."""
    code = f"import time\n{statement}\nprint('held', flush=True)\ntime.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_verdicts_written_while_another_process_holds_the_index_are_left_to_its_indexer(twins):
    """An `aim up` on the repo holds the index while it indexes; validate must not fight it."""
    repo, _, hashes = twins
    with _held_in_another_process(f"from aim import Repo; index = Repo({str(repo)!r})._get_index_container('meta', 0)"):
        report = validate(repo, parse_rules(RULES, "rules.toml"))
    assert {r.run_hash: r.state for r in report.runs} == dict.fromkeys(hashes, "written")
    assert report.left_to_indexer == 3
    assert "3 runs written while another process (aim up) held the index" in render_text(report)
    # Written in the runs themselves: the next indexing pass (aim up's, or validate's own) shows them.
    again = validate(repo, parse_rules(RULES, "rules.toml"))
    assert {r.state for r in again.runs} == {"unchanged"}
    statuses = {h: Repo(str(repo)).get_run(h)["validation"]["status"] for h in hashes}
    assert statuses == {r.run_hash: r.validation.status for r in report.runs}


def test_runs_never_indexed_are_indexed_in_batches_with_the_bytes_of_aims_indexer(tmp_path: Path):
    """`validate` indexes runs logged live and closed (as `aim up` does on start), a batch per write."""
    original = tmp_path / "a"
    hashes = [log_run(original, f"run-{i}", 0.01 * (i + 1), [0.5, 0.6 + i / 10]) for i in range(3)]
    copy = tmp_path / "b"
    shutil.copytree(original, copy)

    assert sorted(aim_adapter.refresh_index(Repo(str(original)))) == sorted(hashes)  # RepoIndexManager.index
    assert sorted(aim_index.refresh(Repo(str(copy)), batch=2)) == sorted(hashes)

    masked = [
        {k: v for k, v in _container(repo / ".aim" / "meta" / "index").items() if not k.startswith(ROOT_KEYS_MASKED)}
        for repo in (original, copy)
    ]
    assert masked[0] == masked[1]
    assert aim_index.refresh(Repo(str(copy))) == []  # each run's checksum recorded: nothing stale
    assert sorted(run.hash for run in Repo(str(copy)).iter_runs()) == sorted(hashes)


@pytest.mark.parametrize("batch", [1, 2])
def test_verdicts_written_across_many_batches_are_settled_in_the_order_checked(twins, monkeypatch, batch):
    """Batches are written while the next ones are read: each run reported once, in order, tagged."""
    repo, _, hashes = twins
    monkeypatch.setattr("etl.pipeline.VERDICT_BATCH", batch)
    checked: list[str] = []
    report = validate(repo, parse_rules(RULES, "rules.toml"), on_run=lambda r: checked.append(r.run_hash))

    assert sorted(checked) == sorted(hashes) and checked == [r.run_hash for r in report.runs]
    assert checked == [run.hash for run in Repo(str(repo)).iter_runs() if run.hash in hashes]  # the index's order
    assert {r.state for r in report.runs} == {"written"} and report.left_to_indexer == 0
    tags = _tags(repo)
    assert all(tags[r.run_hash] == [r.validation.tag] for r in report.runs)
    assert {r.state for r in validate(repo, parse_rules(RULES, "rules.toml")).runs} == {"unchanged"}


def test_verdicts_are_written_with_aims_container_options(tmp_path: Path):
    """The write opens the run's RocksDB itself: with the options Aim's own containers are opened with."""
    from aim.storage.rockscontainer import RocksContainer

    from etl.writers import aim_storage

    container = RocksContainer(str(tmp_path / "meta" / "chunks" / "run"), read_only=False)
    try:
        assert container._db_opts == aim_storage.AIM_CONTAINER_OPTIONS
    finally:
        container.close()


def test_a_verdict_leaves_no_flag_lock_or_unflushed_log_behind(twins):
    """Aim's readers reopen a container for writing when its WAL holds data (`optimize_for_read`), and
    `aim up` counts a run with a progress flag as active: a written run has neither, nor a lock file."""
    repo, _, hashes = twins
    outcome = GovernanceRepo(repo).write_many([(h, _validation("PASS", 0)) for h in hashes])
    assert sorted(outcome.written) == sorted(hashes)

    aim = repo / ".aim"
    for run_hash in hashes:
        assert not (aim / "meta" / "progress" / run_hash).exists()
        assert not (aim / "locks" / f"{run_hash}.softlock").exists()
        assert all(wal.stat().st_size == 0 for wal in (aim / "meta" / "chunks" / run_hash).glob("*.log"))
        run = Repo(str(repo)).get_run(run_hash)
        assert run["validation"]["status"] == "PASS" and sorted(run.tags) == ["validation:PASS"]


def test_a_run_whose_container_another_process_has_open_is_left_untouched(twins):
    """No lock file, but RocksDB's own lock held (a writer between opening the container and locking
    the run, or a tool of its own): reported held, written by the next pass."""
    repo, _, hashes = twins
    chunk = repo / ".aim" / "meta" / "chunks" / hashes[1]
    before = _container(chunk)
    with _held_in_another_process(f"import aimrocks; db = aimrocks.DB({str(chunk)!r}, aimrocks.Options())"):
        outcome = GovernanceRepo(repo).write_many([(h, _validation("PASS", 0)) for h in hashes])
    assert list(outcome.held) == [hashes[1]] and "open in another process" in outcome.held[hashes[1]]
    assert sorted(outcome.written) == sorted([hashes[0], hashes[2]])
    assert _container(chunk) == before
    assert "validation:PASS" not in _tags(repo)[hashes[1]]

    again = GovernanceRepo(repo).write_many([(hashes[1], _validation("PASS", 0))])
    assert again.written == [hashes[1]]
    assert Repo(str(repo)).get_run(hashes[1])["validation"]["status"] == "PASS"


def test_a_run_deleted_meanwhile_is_not_created_again(twins):
    """Its folder gone since the pass read the index: reported, and no empty container appears in its place."""
    repo, _, hashes = twins
    chunk = repo / ".aim" / "meta" / "chunks" / hashes[2]
    shutil.rmtree(chunk)
    outcome = GovernanceRepo(repo).write_many([(hashes[2], _validation("PASS", 0))])
    assert outcome.written == [] and "gone" in outcome.held[hashes[2]]
    assert not chunk.exists()
