"""Per-step JSONL training logs: every line a point of ONE run, never one run per line.

Fixtures in tests/fixtures/steps/: `nmt/train_log.jsonl` (ISO timestamps, a nested dict, an epoch
summary without a step at line 3, step 30 logged twice at lines 4-5, a summary sharing step 40 with a
step line); `bad.jsonl` (line 3 not JSON, line 7 a string step, line 10 torn); `not_steps.jsonl`
(the `iteration` goes down: a table of trials, not a log).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from etl.errors import BadRecord
from etl.interpret import FieldRules, interpret
from etl.normalize import Normalizer
from etl.readers.record import Record
from etl.readers.steps import STEPS, claims_steps, is_steps, is_steps_jsonl, read_steps
from tests.conftest import FIXTURES

STEPS_DIR = Path(__file__).resolve().parent / "fixtures" / "steps"
VAL = '{"subset":"val"}'
TRAIN = '{"subset":"train"}'


def read(path: Path) -> list[Record | BadRecord]:
    return list(read_steps(path, f"{path.parent.name}/{path.name}"))


def series(points) -> dict[tuple[str, str], list[tuple[int, int | None, float, float]]]:
    out: dict[tuple[str, str], list] = {}
    for name, context, step, epoch, value, time in points:
        out.setdefault((name, context), []).append((step, epoch, value, time))
    return {k: sorted(v) for k, v in out.items()}


def test_netra_log_is_one_run_with_every_point(corpus):
    log = corpus / "netra-ai-lab__Netra-NMT" / "results" / "train_log.jsonl"
    assert is_steps_jsonl(log) and is_steps(log)
    (record,) = read(log)
    assert record.format == STEPS and record.locator == "lines 1-1992"
    item = interpret(record, FieldRules())
    # `results` is a generic folder name (a tool's habit, not the experiment): the project's folder names it
    assert item.record_id == "train_log" and item.experiment == "netra-ai-lab__Netra-NMT"
    assert item.hparams == {} and item.created_at is None  # the log has no time

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    got = series(item.points)
    assert set(got) == {("loss", "{}"), ("lr", "{}"), ("loss", TRAIN), ("loss", VAL), ("chrf", VAL)}
    expected_loss = {r["step"]: r["loss"] for r in lines if "loss" in r}  # step 65900 twice: the later wins
    assert {s: v for s, _, v, _ in got[("loss", "{}")]} == expected_loss
    assert len(got[("loss", "{}")]) == 1988 and expected_loss[65900] == 2.56784
    assert len(got[("lr", "{}")]) == 1988
    summaries = [r for r in lines if "epoch" in r]
    assert [(s, e, v) for s, e, v, _ in got[("chrf", VAL)]] == [
        (r["step"], r["epoch"], r["val_chrf"]) for r in summaries
    ]
    assert [s for s, *_ in got[("loss", TRAIN)]] == [32926, 65852, 98778]
    frames = Normalizer().normalize([record])
    assert len(frames.runs) == 1 and len(frames.metrics) == 1988 * 2 + 3 * 3
    assert claims_steps(log) == []


def test_experiment_logs_are_not_step_logs(corpus):
    assert not is_steps_jsonl(FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl")
    assert not is_steps_jsonl(corpus / "Surmbruh__concrete-strength" / "experiments" / "experiment_log.jsonl")
    # Ray's result.json has an iteration on every line, and a trial_id: a trial, read by its own reader
    assert not is_steps_jsonl(next((corpus / "generated__ray-tune" / "lr_sweep").glob("*/result.json")))


def test_fixture_log_summaries_repeats_nesting_and_times():
    path = STEPS_DIR / "nmt" / "train_log.jsonl"
    assert is_steps_jsonl(path)
    (record,) = read(path)
    assert record.locator == "lines 1-7"
    item = interpret(record, FieldRules())
    assert item.record_id == "train_log" and item.experiment == "nmt"
    t0 = dt.datetime(2026, 1, 2, 3, 0, 0, tzinfo=dt.UTC)
    assert item.created_at == t0 and item.ended_at == t0 + dt.timedelta(seconds=30)

    t = t0.timestamp()
    got = series(item.points)
    # step 30 twice (lines 4 and 5): the later line's value and time
    assert got[("loss", "{}")] == [
        (10, None, 4.0, t),
        (20, None, 3.5, t + 10),
        (30, None, 3.0, t + 21),
        (40, None, 2.75, t + 30),
    ]
    assert [s for s, *_ in got[("lr", "{}")]] == [10, 20, 30, 40]
    assert [(s, v) for s, _, v, _ in got[("grad/norm", "{}")]] == [(20, 2.0)]
    # the epoch-1 summary has no step: it takes step 20, of the line before it
    assert [(s, e, v) for s, e, v, _ in got[("bleu", VAL)]] == [(20, 1, 12.5), (40, 2, 15.0)]
    assert [(s, e, v) for s, e, v, _ in got[("loss", TRAIN)]] == [(20, 1, 3.8), (40, 2, 3.0)]
    assert len(item.points) == 4 + 4 + 1 + 2 * 3


def test_bad_lines_are_named_a_torn_last_line_is_marked_and_the_rest_kept():
    path = STEPS_DIR / "bad.jsonl"
    assert is_steps_jsonl(path)  # 7 of 8 parsed lines carry an integer step
    items = read(path)
    bad = [i for i in items if isinstance(i, BadRecord)]
    (record,) = [i for i in items if isinstance(i, Record)]
    assert [(b.locator, b.torn) for b in bad] == [("line 3", False), ("line 7", False), ("line 10", True)]
    assert str(bad[0]).startswith("steps/bad.jsonl:3: not JSON")
    assert "step is not a number: 'seven'" in bad[1].reason
    assert record.locator == "lines 1-9"
    got = series(interpret(record, FieldRules()).points)
    assert [s for s, *_ in got[("loss", "{}")]] == [1, 2, 4, 5, 6, 8, 9]


def test_steps_that_go_down_are_not_a_log():
    assert not is_steps_jsonl(STEPS_DIR / "not_steps.jsonl")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([{"global_step": 1, "loss": 1.0}, {"global_step": 1, "loss": 0.9}, {"global_step": 2, "loss": 0.8}], True),
        ([{"iter": 5, "loss": 1.0}], True),
        ([{"iter": 5, "loss": 1.0}, {"epoch": 1, "val_loss": 1.2}, {"iter": 10, "loss": 0.5}] * 2, False),  # 4 of 6
        ([{"step": 1, "metrics": {"loss": 1.0}}, {"step": 2, "metrics": {"loss": 0.5}}], False),
        ([{"step": 1, "run_id": "a", "loss": 1.0}, {"step": 2, "run_id": "a", "loss": 0.5}], False),
        ([{"step": 1.0, "loss": 1.0}, {"step": 2.0, "loss": 0.5}], False),  # float steps: not a counter
        ([{"lr": 0.1, "acc": 0.5}, {"lr": 0.2, "acc": 0.6}], False),
        ([[1, 2], [3, 4]], False),
    ],
)
def test_detection(tmp_path, lines, expected):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert is_steps_jsonl(path) is expected


def test_empty_or_unreadable_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert not is_steps_jsonl(empty)
    assert read(empty) == []
    assert not is_steps_jsonl(tmp_path / "missing.jsonl")


def test_a_leading_line_without_a_step_takes_step_zero(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"epoch": 0, "val_loss": 2.0}\n{"step": 5, "loss": 1.0}\n')
    (record,) = read(path)
    assert [(r.get("step"), r.get("epoch")) for r in record.data["history"]] == [(0, 0), (5, None)]
