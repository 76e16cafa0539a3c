"""`validate` on a real Aim repo: runs logged with the plain SDK (never imported), read back with
Aim's SDK and found with AimQL; idempotent; a run held open by another process is skipped."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aim import Repo, Run

from etl.governance.rules import load_rules
from etl.pipeline import validate

RULES = """
version = "team-standards-1"

[[rules]]
id = "lr-range"
kind = "range"
field = ["hparams.lr", "hparams.learning_rate"]
min = 0.0001
max = 0.1
weight = 3

[[rules]]
id = "val-accuracy"
kind = "threshold"
metric = "accuracy"
context = { subset = "val" }
min = 0.8
weight = 2

[[rules]]
id = "naming"
kind = "pattern"
field = "name"
regex = '^[a-z0-9]+(-[a-z0-9]+)*$'
severity = "warning"
weight = 1
"""


def log_run(repo: Path, name: str, lr: float | None, accuracy: list[float], end: bool = True) -> str:
    """A run as training code would log it: the plain SDK, no importer involved."""
    run = Run(repo=str(repo), experiment="live", system_tracking_interval=None, capture_terminal_logs=False)
    run.name = name
    run["hparams"] = {"lr": lr, "epochs": 12} if lr is not None else {"epochs": 12}
    for step, value in enumerate(accuracy):
        run.track(value, name="accuracy", step=step, context={"subset": "val"})
    run_hash = run.hash
    if end:
        run.close()
    del run
    return run_hash


@pytest.fixture
def rules(tmp_path: Path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return load_rules(path)


@pytest.fixture
def live_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    Repo(str(repo), init=True)
    hashes = {
        "good": log_run(repo, "resnet-good", 0.01, [0.5, 0.7, 0.85]),
        "high-lr": log_run(repo, "resnet-high-lr", 0.5, [0.9]),
        "BadName": log_run(repo, "BadName", 0.001, [0.95]),
        "no-lr": log_run(repo, "no-lr", None, [0.2, 0.3]),
    }
    return repo, hashes


def fresh(repo: Path) -> Repo:
    return Repo(str(repo))


def read_back(repo: Path, run_hash: str) -> tuple[dict, list[str]]:
    run = Run(run_hash, repo=str(repo), read_only=True)
    return run["validation"], sorted(run.tags)


def test_validate_writes_score_status_and_one_tag_on_live_runs(live_repo, rules):
    repo, hashes = live_repo
    report = validate(repo, rules)

    assert {r.state for r in report.runs} == {"written"}
    assert len(report.runs) == 4

    validation, tags = read_back(repo, hashes["good"])
    assert validation == {"score": 100.0, "status": "PASS", "rules_version": "team-standards-1", "violations": []}
    assert tags == ["validation:PASS"]

    validation, tags = read_back(repo, hashes["high-lr"])
    assert validation["status"] == "FAIL"
    assert validation["score"] == 50.0  # 3 of 6 weight failed: lr; accuracy 0.9 and naming pass
    assert [v["rule"] for v in validation["violations"]] == ["lr-range"]
    assert validation["violations"][0]["value"] == 0.5
    assert tags == ["validation:FAIL"]

    validation, tags = read_back(repo, hashes["BadName"])
    assert (validation["status"], validation["score"]) == ("WARN", 83.3)
    assert tags == ["validation:WARN"]

    validation, _ = read_back(repo, hashes["no-lr"])
    assert validation["status"] == "FAIL"
    assert {v["rule"]: v["outcome"] for v in validation["violations"]} == {
        "lr-range": "missing",
        "val-accuracy": "fail",
    }


def test_validation_is_found_with_aimql(live_repo, rules):
    repo, hashes = live_repo
    validate(repo, rules)

    def found(query: str) -> set[str]:
        return {view.run.hash for view in fresh(repo).query_runs(query, report_mode=0).iter_runs()}

    assert found('run.validation.status == "FAIL"') == {hashes["high-lr"], hashes["no-lr"]}
    assert found("run.validation.score < 60") == {hashes["high-lr"], hashes["no-lr"]}
    assert found('"validation:WARN" in run.tags') == {hashes["BadName"]}


def test_revalidating_with_the_same_rules_writes_nothing(live_repo, rules):
    repo, _ = live_repo
    first = validate(repo, rules)
    chunks = repo / ".aim" / "meta" / "chunks"
    before = {p: p.stat().st_mtime_ns for p in chunks.rglob("*") if p.is_file()}

    second = validate(repo, rules)

    assert {r.state for r in second.runs} == {"unchanged"}
    assert second.compliance_run is None
    after = {p: p.stat().st_mtime_ns for p in chunks.rglob("*") if p.is_file()}
    assert after == before
    assert [r.validation for r in second.runs] == [r.validation for r in first.runs]


def test_a_fixed_run_moves_from_fail_to_pass_with_one_tag(live_repo, rules):
    repo, hashes = live_repo
    validate(repo, rules)
    run = Run(hashes["high-lr"], repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    run["hparams"] = {"lr": 0.05, "epochs": 12}
    run.close()
    del run
    # A closed Run keeps its RocksDB lock until collected, and Aim's run objects form cycles: how
    # soon depends on what else the process holds (it failed after tests/test_remote.py).
    gc.collect()

    report = validate(repo, rules)

    states = {r.run_hash: r.state for r in report.runs}
    assert states[hashes["high-lr"]] == "written", [r.reason for r in report.runs]
    assert [s for h, s in states.items() if h != hashes["high-lr"]] == ["unchanged"] * 3
    validation, tags = read_back(repo, hashes["high-lr"])
    assert (validation["status"], validation["violations"]) == ("PASS", [])
    assert tags == ["validation:PASS"]


def test_validate_keeps_each_runs_end_time(live_repo, rules):
    repo, hashes = live_repo
    validate(repo, rules, dry_run=True)  # indexes the runs, so their end time can be read
    before = Run(hashes["good"], repo=str(repo), read_only=True).end_time
    assert before is not None
    time.sleep(0.05)
    validate(repo, rules)
    assert Run(hashes["good"], repo=str(repo), read_only=True).end_time == before


def test_dry_run_touches_no_run(live_repo, rules):
    repo, hashes = live_repo
    report = validate(repo, rules, dry_run=True)
    assert {r.state for r in report.runs} == {"dry-run"}
    assert report.status_counts()["FAIL"] == 2
    run = Run(hashes["good"], repo=str(repo), read_only=True)
    assert run.get("validation") is None
    assert run.tags == []


def test_each_writing_pass_adds_one_step_to_the_compliance_run(live_repo, rules):
    repo, hashes = live_repo
    first = validate(repo, rules)
    fix = Run(hashes["no-lr"], repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    fix["hparams"] = {"lr": 0.01}
    fix.close()
    del fix
    second = validate(repo, rules)
    validate(repo, rules)  # writes nothing: no third step

    assert first.compliance_run == second.compliance_run
    governance = Run(first.compliance_run, repo=str(repo), read_only=True)
    assert (governance.experiment, governance.name) == ("governance", "team-standards-1")
    assert governance.get("validation") is None  # the tool's own run is never validated
    values = {(m.name, tuple(m.context.to_dict().items())): list(m.values.values_list()) for m in governance.metrics()}
    assert values[("compliance_rate", ())] == [0.25, 0.25]  # one PASS of four, then still one (no-lr now lacks acc)
    assert values[("runs_checked", ())] == [4.0, 4.0]
    assert values[("rule_pass_rate", (("rule", "lr-range"),))] == [0.5, 0.75]
    assert len(values[("mean_score", ())]) == 2


def test_a_run_held_open_by_another_process_is_reported_active(live_repo, rules, tmp_path):
    repo, hashes = live_repo
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from aim import Run
                run = Run(repo={str(repo)!r}, experiment="live", system_tracking_interval=None,
                          capture_terminal_logs=False)
                run.name = "still-training"
                run["hparams"] = {{"lr": 0.01}}
                run.track(0.9, name="accuracy", step=0, context={{"subset": "val"}})
                print(run.hash, flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        active_hash = child.stdout.readline().strip()
        assert len(active_hash) == 24
        report = validate(repo, rules)
    finally:
        child.kill()
        child.wait()

    states = {r.run_hash: r.state for r in report.runs}
    assert states[active_hash] == "active"
    assert [r.name for r in report.active()] == ["still-training"]
    assert all(states[h] == "written" for h in hashes.values())


def test_a_nan_value_does_not_make_every_pass_rewrite_the_run(tmp_path, rules):
    repo = tmp_path / "repo"
    repo.mkdir()
    Repo(str(repo), init=True)
    log_run(repo, "nan-lr", float("nan"), [0.9])
    first = validate(repo, rules)
    assert first.runs[0].state == "written"
    assert first.runs[0].validation.violations[0].rule == "lr-range"
    assert [r.state for r in validate(repo, rules).runs] == ["unchanged"]
