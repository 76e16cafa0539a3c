"""The command line as a user meets it: exit codes, messages, reports, `python -m etl`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, TEST_FIXTURES, aim_runs, run_cli

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


def _mixed_tree(root: Path) -> Path:
    """A project's outputs with every reader's files, and files no reader takes, from tests/fixtures."""
    tree = root / "project"
    shutil.copytree(TEST_FIXTURES / "hf_trainer" / "glue_sweep", tree / "outputs" / "glue_sweep")
    shutil.copytree(
        TEST_FIXTURES / "wandb" / "proj" / "wandb" / "run-20260102_050506-abc12345",
        tree / "wandb" / "run-20260102_050506-abc12345",
    )
    shutil.copytree(TEST_FIXTURES / "sacred" / "my_runs" / "1", tree / "my_runs" / "1")
    trial = "trainable_ab12c_00000_0_lr=0.0100_2026-01-02_03-04-00"  # with a pickle and an event file
    shutil.copytree(TEST_FIXTURES / "ray_tune" / "lr_sweep" / trial, tree / "ray_results" / "lr_sweep" / trial)
    shutil.copy(TEST_FIXTURES / "steps" / "nmt" / "train_log.jsonl", tree / "train_log.jsonl")
    shutil.copy(TEST_FIXTURES / "jsonl" / "good.jsonl", tree / "EXPERIMENT_LOG.jsonl")
    (tree / "results").mkdir()
    shutil.copy(TEST_FIXTURES / "json" / "grid.json", tree / "results" / "grid.json")
    (tree / "results" / "summary.csv").write_text("lr,acc\n0.1,0.5\n")
    (tree / "README.txt").write_text("notes\n")
    (tree / "tb").mkdir()
    (tree / "tb" / "events.out.tfevents.1767323041.host").write_bytes(b"\x00")
    return tree


def test_a_mixed_tree_dry_run_shows_which_reader_took_each_file_or_why_it_was_skipped(tmp_path, repo):
    tree = _mixed_tree(tmp_path)
    files = sorted(p.resolve().as_posix() for p in tree.rglob("*") if p.is_file())
    md, js = tmp_path / "plan.md", tmp_path / "plan.json"
    result = run_cli("migrate", tree, "--repo", repo, "--dry-run", "--report", md)
    assert result.exit_code == 0, result.output
    assert not repo.exists()  # a dry run creates nothing

    # the terminal report: one row per file, the reader that took it or `skipped: <reason>`
    rows = {}
    for line in result.output.splitlines():
        source, _, rest = line.partition("  ")
        if source in files:
            rows[source] = rest.strip()
    assert sorted(rows) == files
    readers = {source: row.split()[0] for source, row in rows.items() if not row.startswith("skipped: ")}
    skipped = {source: row.removeprefix("skipped: ") for source, row in rows.items() if row.startswith("skipped: ")}
    assert set(readers.values()) == {"hf-trainer", "wandb", "sacred", "ray-tune", "steps", "jsonl", "json"}
    out = tree.resolve().as_posix()
    assert readers[f"{out}/outputs/glue_sweep/bert-lr3e-5/trainer_state.json"] == "hf-trainer"
    assert readers[f"{out}/outputs/glue_sweep/bert-lr1e-4/checkpoint-100/trainer_state.json"] == "hf-trainer"
    assert readers[f"{out}/outputs/glue_sweep/bert-lr3e-5/predictions.json"] == "json"  # the user's own file
    assert readers[f"{out}/train_log.jsonl"] == "steps" and readers[f"{out}/EXPERIMENT_LOG.jsonl"] == "jsonl"
    assert readers[f"{out}/results/grid.json"] == "json"
    assert skipped[f"{out}/outputs/glue_sweep/bert-lr3e-5/all_results.json"] == (
        f"part of {out}/outputs/glue_sweep/bert-lr3e-5/trainer_state.json (hf-trainer run): "
        "read: the run's final numbers, merged into its results"
    )
    assert skipped[f"{out}/outputs/glue_sweep/bert-lr1e-4/checkpoint-40/trainer_state.json"].startswith(
        f"part of {out}/outputs/glue_sweep/bert-lr1e-4/checkpoint-100/trainer_state.json (hf-trainer run): "
    )
    assert skipped[f"{out}/results/summary.csv"].startswith("CSV is not read")
    assert skipped[f"{out}/README.txt"] == "not a JSON or JSONL file (.txt)"
    ray = f"{out}/ray_results/lr_sweep/trainable_ab12c_00000_0_lr=0.0100_2026-01-02_03-04-00"
    assert readers[f"{ray}/result.json"] == "ray-tune"
    assert "pickle" in skipped[f"{ray}/params.pkl"] and "never unpickled" in skipped[f"{ray}/params.pkl"]
    assert "TensorBoard copy" in skipped[f"{ray}/events.out.tfevents.1767323041.host"]  # part of the trial
    assert "aim convert tensorboard" in skipped[f"{out}/tb/events.out.tfevents.1767323041.host"]  # on its own

    # the Markdown report: the same column
    files_section = md.read_text().split("## Files\n", 1)[1].split("\n## ", 1)[0]
    table = [ln for ln in files_section.splitlines() if ln.startswith("| `")]
    md_rows = {ln.split("`")[1]: ln.split(" | ")[1] for ln in table}
    assert sorted(md_rows) == files
    for source, shown in md_rows.items():
        assert shown == readers.get(source) or shown.replace("\\|", "|") == f"skipped: {skipped[source]}"

    # the JSON report: each file's format, or its reason when no reader took it
    assert run_cli("migrate", tree, "--repo", repo, "--dry-run", "--report", js, "-q").exit_code == 0
    listed = {f["source"]: f for f in json.loads(js.read_text())["files"]}
    assert sorted(listed) == files
    for source, stats in listed.items():
        if source in readers:
            assert stats["format"] == readers[source] and stats["mode"] == "read"
        else:
            assert stats["format"] is None and stats["reason"] == skipped[source] and stats["mode"] == "skipped"
