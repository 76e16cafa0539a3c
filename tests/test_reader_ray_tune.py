"""Ray Tune trial folders: params.json + result.json (JSONL) -> one run per trial.

Fixtures in tests/fixtures/ray_tune/lr_sweep/: `trainable_ab12c_00000_...` is a good trial (nested
`val` and `info` dicts, a user `step` field, iteration 2 reported again after a restore, a checkpoint
folder, a user's own notes.txt); `trainable_ab12c_00001_...` a failed one (params.json cut short,
line 2 bad, line 4 torn, error.txt).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pytest

from etl.errors import BadRecord
from etl.interpret import FieldRules, interpret
from etl.normalize import Normalizer
from etl.readers.ray_tune import (
    BOOKKEEPING,
    RAY_TUNE,
    claims_ray_tune,
    claims_with_reasons_ray_tune,
    experiment_file_reason,
    is_ray_tune,
    read_ray_tune,
)
from etl.readers.record import Record

SWEEP = Path(__file__).resolve().parent / "fixtures" / "ray_tune" / "lr_sweep"
GOOD = SWEEP / "trainable_ab12c_00000_0_lr=0.0100_2026-01-02_03-04-00"
FAILED = SWEEP / "trainable_ab12c_00001_1_lr=0.3000_2026-01-02_03-04-00"
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def read(result: Path) -> list[Record | BadRecord]:
    return list(read_ray_tune(result, f"{result.parent.name}/result.json"))


def series(points) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
    """(name, context) -> sorted (step, value, time) of an interpreted record's points."""
    out: dict[tuple[str, str], list] = {}
    for name, context, step, _epoch, value, time in points:
        out.setdefault((name, context), []).append((step, value, time))
    return {k: sorted(v) for k, v in out.items()}


VAL = '{"subset":"val"}'


# --- the corpus: three trials written by Ray Tune 2.x itself ----------------------------------------


def corpus_trials(corpus: Path) -> list[Path]:
    trials = sorted((corpus / "generated__ray-tune" / "lr_sweep").glob("*/result.json"))
    assert len(trials) == 3
    return trials


def test_corpus_trials_are_one_run_each_with_params_as_hparams(corpus):
    records = []
    for result in corpus_trials(corpus):
        assert is_ray_tune(result)
        (record,) = read(result)
        assert record.format == RAY_TUNE and record.locator == "lines 1-12"
        lines = [json.loads(line) for line in result.read_text().splitlines()]
        item = interpret(record, FieldRules())
        assert item.record_id == lines[0]["trial_id"]
        assert item.experiment == "lr_sweep"
        assert item.hparams == json.loads((result.parent / "params.json").read_text())
        assert item.hparams == lines[0]["config"]  # the same config, taken once
        assert item.name == result.parent.name.rsplit("_", 2)[0]  # the folder without its date
        assert item.created_at.timestamp() == pytest.approx(lines[0]["timestamp"] - lines[0]["time_total_s"])
        assert item.ended_at.timestamp() == lines[-1]["timestamp"]
        assert item.meta["hostname"] == "vm" and item.meta["pid"] == lines[-1]["pid"]

        got = series(item.points)
        assert set(got) == {("loss", "{}"), ("lr", "{}"), ("time_total_s", "{}"), ("loss", VAL), ("accuracy", VAL)}
        assert [(s, v) for s, v, _ in got[("loss", VAL)]] == [
            (ln["training_iteration"], ln["val"]["loss"]) for ln in lines
        ]
        assert [v for _, v, _ in got[("accuracy", VAL)]] == [ln["val"]["accuracy"] for ln in lines]
        assert [(s, v, t) for s, v, t in got[("loss", "{}")]] == [
            (ln["training_iteration"], ln["loss"], float(ln["timestamp"])) for ln in lines
        ]
        assert all(p[3] is None for p in item.points)  # Ray's iterations are not epochs
        records.append(record)

    frames = Normalizer().normalize(records)
    assert len(frames.runs) == 3 and frames.runs["run_key"].is_unique
    assert len(frames.metrics) == 3 * 12 * 5
    assert not BOOKKEEPING & set(frames.metrics["name"]) - {"time_total_s"}


def test_corpus_claims_are_the_trial_folders_other_ray_files(corpus):
    for result in corpus_trials(corpus):
        names = [p.name for p in claims_ray_tune(result)]
        assert sorted(names[1:]) == ["params.json", "params.pkl", "progress.csv"]
        assert names[0].startswith("events.out.tfevents.")
        reasons = dict((p.name, r) for p, r in claims_with_reasons_ray_tune(result))
        assert reasons["progress.csv"] == "ignored: result.json has the same data"
        assert "never unpickled" in reasons["params.pkl"]


# --- fixtures -----------------------------------------------------------------------------------


def test_good_trial_flattens_nested_metrics_keeps_a_users_step_and_the_later_repeat():
    (record,) = read(GOOD / "result.json")
    assert record.locator == "lines 1-4"
    item = interpret(record, FieldRules())
    assert item.record_id == "ab12c_00000" and item.experiment == "lr_sweep"
    assert item.name == "trainable_ab12c_00000_0_lr=0.0100"
    assert item.hparams == {"lr": 0.01, "model": {"dim": 64, "dropout": 0.1}, "seed": 7}
    assert item.created_at == T0 - dt.timedelta(seconds=1.5)
    assert item.ended_at == T0 + dt.timedelta(seconds=4)
    assert item.meta["trial_dir"] == GOOD.name and "status" not in item.meta

    got = series(item.points)
    t = T0.timestamp()
    # iteration 2 was reported again after a restore (line 4): its values replace line 2's
    assert got[("loss", "{}")] == [(1, 2.0, t), (2, 1.4, t + 4), (3, 1.2, t + 2)]
    assert got[("loss", VAL)] == [(1, 2.2, t), (2, 1.7, t + 4), (3, 1.6, t + 2)]
    assert [v for _, v, _ in got[("info/grad/norm", "{}")]] == [1.5, 1.1, 1.0]
    assert [v for _, v, _ in got[("step_reported", "{}")]] == [100, 200, 300]
    assert [v for _, v, _ in got[("time_total_s", "{}")]] == [1.5, 3.0, 2.5]
    names = {name for name, _ in got}
    assert not names & {"phase", "pid", "done", "time_this_iter_s", "iterations_since_restore", "training_iteration"}
    assert len(item.points) == 3 * 7


def test_good_trial_claims_ray_files_and_checkpoints_not_a_users_file():
    claimed = {p.relative_to(GOOD).as_posix() for p in claims_ray_tune(GOOD / "result.json")}
    assert claimed == {
        "checkpoint_000002/state.json",
        "events.out.tfevents.1767323041.host",
        "params.json",
        "params.pkl",
        "progress.csv",
    }


def test_params_pickle_is_never_opened(monkeypatch):
    opened: list[str] = []
    real_open = Path.open

    def spy(self, *args, **kwargs):
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    list(read_ray_tune(GOOD / "result.json", "result.json"))
    claims_ray_tune(GOOD / "result.json")
    assert {"result.json", "params.json"} <= set(opened)  # the spy sees the reader's reads
    assert "params.pkl" not in opened and "progress.csv" not in opened


def test_failed_trial_reports_bad_params_bad_and_torn_lines_and_keeps_the_rest():
    items = read(FAILED / "result.json")
    bad = [i for i in items if isinstance(i, BadRecord)]
    (record,) = [i for i in items if isinstance(i, Record)]
    assert [(b.locator, b.torn) for b in bad] == [("params.json", False), ("line 2", False), ("line 4", True)]
    assert "using the config of result.json" in bad[0].reason
    assert str(bad[1]).startswith(f"{FAILED.name}/result.json:2: not JSON")
    assert record.locator == "lines 1-3"

    item = interpret(record, FieldRules())
    assert item.hparams == {"lr": 0.3, "model": {"dim": 128, "dropout": 0.1}, "seed": 8}  # from the lines
    assert item.meta["status"] == "error" and "RuntimeError: CUDA out of memory" in item.meta["error"]
    assert series(item.points)[("loss", "{}")] == [
        (1, 3.0, T0.timestamp() + 10),
        (3, 2.0, T0.timestamp() + 12),
    ]
    assert "error.txt" in {p.name for p in claims_ray_tune(FAILED / "result.json")}


def test_trial_without_a_report_is_its_config(tmp_path):
    trial = tmp_path / "sweep" / "trainable_x_00000_0_lr=1"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text('{"lr": 1}')
    (trial / "result.json").write_text("")
    (record,) = read(trial / "result.json")
    assert record.locator == "params.json"
    item = interpret(record, FieldRules())
    assert item.hparams == {"lr": 1} and item.points == [] and item.record_id == trial.name
    assert item.experiment == "sweep"


def test_a_long_error_keeps_its_head_and_its_tail(tmp_path):
    trial = tmp_path / "sweep" / "t"
    shutil.copytree(GOOD, trial)
    (trial / "error.txt").write_text("Failure # 1\n" + "x\n" * 10_000 + "ValueError: the last line\n")
    (record,) = read(trial / "result.json")
    assert record.data["error"].startswith("Failure # 1") and record.data["error"].endswith("ValueError: the last line")
    assert len(record.data["error"]) < 4100


def test_detection_needs_both_names(tmp_path):
    assert is_ray_tune(GOOD / "result.json")
    assert not is_ray_tune(GOOD / "params.json")
    (tmp_path / "result.json").write_text('{"loss": 1, "training_iteration": 1}\n')
    assert not is_ray_tune(tmp_path / "result.json")  # no params.json beside it
    (tmp_path / "params.json").write_text("{}")
    assert is_ray_tune(tmp_path / "result.json")


def test_experiment_folder_state_is_named_not_imported(tmp_path):
    state = SWEEP / "experiment_state-2026-01-02_03-04-00.json"
    assert "experiment state" in experiment_file_reason(state)
    assert experiment_file_reason(GOOD / "params.json") is None
    (tmp_path / "experiment_state-1.json").write_text("{}")  # same name, but no trial folder beside it
    assert experiment_file_reason(tmp_path / "experiment_state-1.json") is None


def test_step_without_training_iteration_follows_the_previous(tmp_path):
    trial = tmp_path / "sweep" / "t"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text("{}")
    rows = [{"loss": 1.0, "training_iteration": 5}, {"loss": 0.5}, {"loss": math.inf, "training_iteration": 9}]
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (record,) = read(trial / "result.json")
    assert [r["step"] for r in record.data["history"]] == [5, 6, 9]
