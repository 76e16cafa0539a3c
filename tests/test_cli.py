"""The command line as a user meets it: exit codes, messages, reports, `python -m etl`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, aim_runs, run_cli

GOOD = FIXTURES / "results" / "run_node2vec_best.json"


def test_help_documents_the_exit_codes():
    result = run_cli("migrate", "--help")
    assert result.exit_code == 0
    for line in ("0  all done", "3  done, but some records or files were invalid", "2  usage error", "1  failure"):
        assert line in result.output


def test_clean_input_exits_0_and_a_second_run_writes_nothing(repo):
    first = run_cli("migrate", GOOD, "--repo", repo)
    assert first.exit_code == 0, first.output
    assert "1 new" in first.output and "1 runs written" in first.output
    second = run_cli("migrate", GOOD, "--repo", repo)
    assert second.exit_code == 0
    assert "0 new" in second.output and "1 unchanged" in second.output and "0 runs written" in second.output
    assert len(aim_runs(repo)) == 1


def test_bad_line_exits_3_naming_file_and_line_and_the_rest_is_imported(tmp_path, repo):
    log = tmp_path / "runs.jsonl"
    log.write_text('{"id": "a", "config": {"lr": 0.1}, "results": {"acc": 0.5}}\n[1, 2]\n{"id": "b", "acc": 0.7}\n')
    result = run_cli("migrate", log, "--repo", repo)
    assert result.exit_code == 3
    assert f"{log.resolve().as_posix()}:2: expected object, got list" in result.output
    assert {r.name for r in aim_runs(repo).values()} == {"a", "b"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", "out.txt"], "must end in .json or .md"),
        (["--timezone", "Mars/Olympus"], "unknown timezone"),
        (["--metric-pattern", "("], "--metric-pattern"),
        (["--format", "yaml"], "'yaml' is not one of"),
    ],
)
def test_misused_options_exit_2(repo, args, message):
    result = run_cli("migrate", GOOD, "--repo", repo, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not repo.exists()


def test_missing_source_exits_2(repo, tmp_path):
    result = run_cli("migrate", tmp_path / "nope.jsonl", "--repo", repo)
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_a_file_that_is_not_understood_is_listed_as_skipped(tmp_path, repo):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.pkl").write_bytes(b"\x80\x04not really")
    (tmp_path / "src" / "run.json").write_text(GOOD.read_text())
    report = tmp_path / "r.json"
    result = run_cli("migrate", tmp_path / "src", "--repo", repo, "--report", report, "-q")
    assert result.exit_code == 0
    skipped = json.loads(report.read_text())["skipped"]
    assert [(s["source"].rsplit("/", 1)[-1], s["reason"][:12]) for s in skipped] == [("model.pkl", "pickle file:")]


def test_quiet_prints_nothing_on_success(repo):
    result = run_cli("migrate", GOOD, "--repo", repo, "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_experiment_flag_and_no_contexts(repo):
    run_cli("migrate", GOOD, "--repo", repo, "--experiment", "imported", "--no-contexts", "-q")
    (run,) = aim_runs(repo).values()
    assert run.experiment == "imported"
    names = {m.name for m in run.metrics()}
    assert "val_loss" in names and all(not m.context.to_dict() for m in run.metrics() if m.name == "val_loss")


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "etl", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("aim-etl, version")



def test_aims_own_cli_lists_the_imported_runs_at_once(repo):
    """Runs are indexed by the import: `aim runs ls` sees them without `aim up` having run."""
    run_cli("migrate", FIXTURES / "results" / "eval_summary.json", "--repo", repo, "-q")
    aim = Path(sys.executable).parent / "aim"
    done = subprocess.run([str(aim), "runs", "--repo", str(repo), "ls"], capture_output=True, text=True, check=True)
    assert "Total 4 runs." in done.stdout


def test_keyed_results_as_one_run_with_method_contexts(repo):
    summary = FIXTURES / "results" / "eval_summary.json"
    run_cli("migrate", summary, "--repo", repo, "--keyed-results", "context", "-q")
    (run,) = aim_runs(repo).values()
    expected = json.loads(summary.read_text())
    got = {(m.name, m.context.to_dict()["method"]): m.values.values_list()[0] for m in run.metrics()}
    assert got == {(name, method): v for method, metrics in expected.items() for name, v in metrics.items()}


def test_ledger_can_live_elsewhere(repo, tmp_path):
    ledger = tmp_path / "state" / "ledger.sqlite"
    run_cli("migrate", GOOD, "--repo", repo, "--ledger", ledger, "-q")
    assert ledger.is_file() and not (repo / ".aim-etl-ledger.sqlite").exists()
    again = run_cli("migrate", GOOD, "--repo", repo, "--ledger", ledger)
    assert "1 unchanged" in again.output and "0 runs written" in again.output
