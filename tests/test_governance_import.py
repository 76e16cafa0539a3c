"""Governance on import (`migrate`/`sync --rules`, `--strict`, `--fail-on`) and the `validate`
command, through the CLI, read back from a real Aim repo."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from aim import Run

from tests.conftest import FIXTURES, aim_runs, run_cli

RULES = FIXTURES / "rules.toml"


def record(run_id: str, name: str, lr, epochs: int, accuracy: list[float]) -> str:
    return json.dumps(
        {
            "experiment_id": run_id,
            "experiment_name": "cifar",
            "run_name": name,
            "timestamp": "2025-03-01T10:00:00Z",
            "config": {"lr": lr, "epochs": epochs},
            "history": {"val_accuracy": accuracy},
        }
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "EXPERIMENT_LOG.jsonl"
    path.parent.mkdir()
    path.write_text(
        "\n".join(
            [
                record("r1", "resnet-a", 0.01, 12, [0.6, 0.85]),  # PASS
                record("r2", "resnet-b", 0.5, 12, [0.7, 0.9]),  # FAIL: lr
                record("r3", "Resnet_C", 0.001, 20, [0.81]),  # WARN: naming
                record("r4", "resnet-d", "0.01", 3, [0.2]),  # FAIL: lr is a string, epochs, accuracy
            ]
        )
        + "\n"
    )
    return path


def by_name(repo: Path) -> dict[str, Run]:
    return {run.name: run for run in aim_runs(repo).values()}


def test_imported_runs_carry_the_validation_validate_would_give(log, repo):
    result = run_cli("migrate", log, "--repo", repo, "--rules", RULES, "-q")
    assert result.exit_code == 0, result.output

    runs = by_name(repo)
    assert {name: run["validation"]["status"] for name, run in runs.items()} == {
        "resnet-a": "PASS",
        "resnet-b": "FAIL",
        "Resnet_C": "WARN",
        "resnet-d": "FAIL",
    }
    assert runs["resnet-b"].tags == ["validation:FAIL"]
    lr = runs["resnet-d"]["validation"]["violations"][0]
    assert (lr["rule"], lr["value"]) == ("lr-range", "0.01")
    assert "str" in lr["message"]

    # The same rules afterwards find every verdict already in place: nothing to write.
    checked = run_cli("validate", "--repo", repo, "--rules", RULES, "--report", repo / "v.json")
    assert checked.exit_code == 0, checked.output
    document = json.loads((repo / "v.json").read_text())
    assert [r["state"] for r in document["runs"]] == ["unchanged"] * 4


def test_dry_run_lists_each_runs_violations_and_writes_nothing(log, repo):
    result = run_cli("migrate", log, "--repo", repo, "--rules", RULES, "--dry-run", "--report", repo / "r.json")
    assert result.exit_code == 0, result.output
    assert "lr-range: hparams.lr = 0.5 is above max 0.1" in result.output

    document = json.loads((repo / "r.json").read_text())
    runs = {r["name"]: r for r in document["governance"]["runs"]}
    assert runs["resnet-b"]["state"] == "dry-run"
    assert runs["resnet-b"]["source"].endswith("EXPERIMENT_LOG.jsonl line 2")
    assert [v["rule"] for v in runs["resnet-d"]["validation"]["violations"]] == [
        "lr-range",
        "min-epochs",
        "val-accuracy",
    ]
    assert not (repo / ".aim").exists()


def test_strict_keeps_failing_runs_out_until_the_record_is_fixed(log, repo):
    first = run_cli("migrate", log, "--repo", repo, "--rules", RULES, "--strict", "--report", repo / "r.json")
    assert first.exit_code == 0, first.output
    assert sorted(by_name(repo)) == ["Resnet_C", "resnet-a"]  # a WARN is not an error: imported
    summary = json.loads((repo / "r.json").read_text())["summary"]
    assert (summary["new"], summary["runs_written"], summary["rejected"]) == (4, 2, 2)
    ledger = sqlite3.connect(repo / ".aim-etl-ledger.sqlite")
    states = dict(ledger.execute("SELECT record_id, state FROM runs"))
    assert states == {"r1": "done", "r2": "rejected", "r3": "done", "r4": "rejected"}

    # Nothing changed: the rejected records are checked again, and still kept out.
    again = run_cli("sync", log, "--repo", repo, "--rules", RULES, "--strict", "-q")
    assert again.exit_code == 0
    assert len(aim_runs(repo)) == 2

    lines = log.read_text().splitlines()
    lines[1] = record("r2", "resnet-b", 0.05, 12, [0.7, 0.9])
    log.write_text("\n".join(lines) + "\n")
    fixed = run_cli("sync", log, "--repo", repo, "--rules", RULES, "--strict", "--report", repo / "s.json")
    assert fixed.exit_code == 0, fixed.output
    runs = by_name(repo)
    assert sorted(runs) == ["Resnet_C", "resnet-a", "resnet-b"]
    assert runs["resnet-b"]["validation"]["status"] == "PASS"
    assert runs["resnet-b"].tags == ["validation:PASS"]
    assert json.loads((repo / "s.json").read_text())["summary"]["rejected"] == 1  # r4, still failing
    states = dict(ledger.execute("SELECT record_id, state FROM runs"))
    assert states["r2"] == "done"


def test_fail_on_gates_the_exit_code(log, repo):
    assert run_cli("migrate", log, "--repo", repo, "--rules", RULES, "--fail-on", "error", "-q").exit_code == 4
    assert run_cli("validate", "--repo", repo, "--rules", RULES, "-q").exit_code == 0
    assert run_cli("validate", "--repo", repo, "--rules", RULES, "--fail-on", "warning", "-q").exit_code == 4
    only_pass = run_cli(
        "validate", "--repo", repo, "--rules", RULES, "--query", 'run.name == "resnet-a"', "--fail-on", "warning"
    )
    assert only_pass.exit_code == 0, only_pass.output
    assert "1 checked" in only_pass.output


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unknown_kind.toml", "unknown_kind.toml:"),
        ("min_gt_max.toml", "is greater than max"),
        ("bad_regex.toml", "does not compile"),
        ("duplicate_ids.toml", "duplicate"),
        ("syntax_error.toml", "invalid TOML"),
    ],
)
def test_a_bad_rules_file_exits_2_and_writes_nothing(log, repo, name, expected):
    rules = Path(__file__).parent / "fixtures" / "rules" / name
    result = run_cli("migrate", log, "--repo", repo, "--rules", rules)
    assert result.exit_code == 2
    assert expected in result.output
    assert name in result.output
    assert not repo.exists()


def test_flags_that_need_rules_are_usage_errors(log, repo):
    assert run_cli("migrate", log, "--repo", repo, "--strict").exit_code == 2
    assert run_cli("migrate", log, "--repo", repo, "--fail-on", "error").exit_code == 2
    assert not repo.exists()


def test_validate_reports_in_every_format(log, repo):
    run_cli("migrate", log, "--repo", repo, "-q")
    for suffix in (".json", ".md", ".csv", ".html"):
        path = repo / f"report{suffix}"
        result = run_cli("validate", "--repo", repo, "--rules", RULES, "--report", path, "-q")
        assert result.exit_code == 0, result.output
        assert path.stat().st_size > 0
    rows = list(csv.DictReader((repo / "report.csv").open()))
    assert len(rows) == 4 * 4  # four runs, four rules
    assert {r["status"] for r in rows if r["name"] == "resnet-b"} == {"FAIL"}
    assert "resnet-b" in (repo / "report.html").read_text()
    assert run_cli("validate", "--repo", repo, "--rules", RULES, "--report", repo / "r.txt").exit_code == 2


def test_validate_without_a_repo_says_so_and_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_cli("validate", "--repo", missing, "--rules", RULES)
    assert result.exit_code == 1
    assert "no Aim repo here" in result.output
    assert not missing.exists()
