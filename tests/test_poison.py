"""Hostile input never stops an import: every record is imported (in its nearest storable form),
reported invalid with its file and line, or skipped, and the next import does not trip on it.

Each case goes end to end: the CLI into a real Aim repo in tmp_path, read back with Aim's SDK.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl import pipeline
from etl.cli import cli
from etl.ledger import DONE, Ledger, default_ledger_path
from etl.storable import MAX_DEPTH
from tests.conftest import aim_runs, run_cli, series

GOOD_A = {"id": "a", "config": {"lr": 0.1}, "acc": 0.5}
GOOD_B = {"id": "b", "config": {"lr": 0.3}, "acc": 0.7}


def _jsonl(path: Path, *lines: str | dict) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _migrate(*args: str | Path, command: str = "migrate") -> tuple[int, dict]:
    """Exit code and JSON report of one import; a traceback fails the test with its message."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        result = CliRunner().invoke(cli, [command, *map(str, args), "--report", str(report), "-q"])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{command} raised {result.exception!r}\n{result.output}") from result.exception
        if not report.exists():
            raise AssertionError(f"{command} exited {result.exit_code} without a report:\n{result.output}")
        return result.exit_code, json.loads(report.read_text())


def _by_name(repo: Path) -> dict:
    return {run.name: run for run in aim_runs(repo).values()}


def _accounted(report: dict) -> None:
    """Every record of every file is in exactly one of the report's outcomes."""
    for f in report["files"]:
        outcomes = f["new"] + f["changed"] + f["unchanged"] + f["duplicate"] + f["invalid"] + f["skipped"]
        assert outcomes == f["records"], f


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _unwrap(value, levels: int):
    for _ in range(levels):
        assert isinstance(value, list) and len(value) == 1, value
        value = value[0]
    return value


def _assert_again_clean(source: Path, repo: Path, exit_code: int, *options: str | Path) -> None:
    """A second sync finds nothing to do; a second migrate reads everything again and writes nothing."""
    code, again = _migrate(source, "--repo", repo, *options, command="sync")
    assert code == 0 and again["summary"]["runs_written"] == 0 and again["invalid"] == []
    code, again = _migrate(source, "--repo", repo, *options)
    assert code == exit_code and again["summary"]["runs_written"] == 0 and again["summary"]["new"] == 0
    _accounted(again)


@pytest.mark.parametrize("depth", [3000, 900])
def test_deep_record_is_imported_with_its_deep_part_as_json_text(tmp_path: Path, repo: Path, depth: int) -> None:
    # 3,000 levels: beyond orjson (1,024) and Python's recursive parser; 900: parsed, but beyond what
    # Python code walking it recursively survives.
    deep = f'{{"id": "deep", "config": {{"lr": 0.2, "x": {_nested(depth)}}}, "acc": 0.6}}'
    source = _jsonl(tmp_path / "log.jsonl", GOOD_A, deep, GOOD_B)
    code, report = _migrate(source, "--repo", repo)
    assert code == 0, report["invalid"]
    assert report["summary"]["runs_written"] == 3 and report["summary"]["coerced"] == 1
    assert [(c["locator"], c["reason"]) for c in report["coerced"]] == [
        ("line 2", f"1 value nested deeper than {MAX_DEPTH} levels kept as JSON text")
    ]
    assert report["coerced_values"] == {"deep": 1}
    runs = _by_name(repo)
    assert set(runs) == {"a", "deep", "b"}
    # The record is level 1, `config` 2, so the lists at levels 3..MAX_DEPTH stay lists and the rest
    # is one string holding every bracket: nothing was lost.
    kept = MAX_DEPTH - 2
    hparams = runs["deep"]["hparams"]
    assert hparams["lr"] == 0.2
    assert _unwrap(hparams["x"], kept) == _nested(depth - kept)
    assert [p[1] for p in series(runs["deep"])[("acc", ())]] == [0.6]
    _assert_again_clean(source, repo, 0)


def test_deep_json_document_is_imported(tmp_path: Path, repo: Path) -> None:
    source = tmp_path / "result.json"
    source.write_text(f'{{"config": {{"lr": 0.2, "x": {{"y": {_nested(5000)}}}}}, "acc": 0.6}}')
    code, report = _migrate(source, "--repo", repo)
    assert code == 0 and report["summary"]["runs_written"] == 1
    assert [(c["locator"], c["reason"].split(" nested")[0]) for c in report["coerced"]] == [("$", "1 value")]
    (run,) = aim_runs(repo).values()
    assert _unwrap(run["hparams"]["x"]["y"], MAX_DEPTH - 3) == _nested(5000 - (MAX_DEPTH - 3))
    _assert_again_clean(source, repo, 0)


def test_lone_surrogates_become_the_replacement_character(tmp_path: Path, repo: Path) -> None:
    poison = (
        '{"id": "sur", "config": {"lr": 0.2, "note": "bad \\ud800 here", "k\\udc00": 1, "k\\udfff": 2},'
        ' "tags": ["t\\ud834"], "acc": 0.6}'
    )
    source = _jsonl(tmp_path / "log.jsonl", GOOD_A, poison, GOOD_B)
    code, report = _migrate(source, "--repo", repo)
    assert code == 0, report["invalid"]
    assert report["summary"]["runs_written"] == 3
    assert [(c["locator"], c["reason"]) for c in report["coerced"]] == [
        ("line 2", "4 strings with lone surrogates, each replaced by U+FFFD")
    ]
    run = _by_name(repo)["sur"]
    # Two keys that differed only in their surrogate would collide: the second is kept beside the first.
    assert run["hparams"] == {"lr": 0.2, "note": "bad \ufffd here", "k\ufffd": 1, "k\ufffd~2": 2}
    assert run.props.tags == ["t\ufffd"]
    _assert_again_clean(source, repo, 0)


def test_huge_ints_are_kept_as_their_digits(tmp_path: Path, repo: Path) -> None:
    # orjson reads neither line (10**400 overflows a double; NaN is not JSON), so Python's parser
    # gives exact ints; 5,000 digits is beyond even what Python's `int()` converts.
    lines = (
        f'{{"id": "huge", "config": {{"lr": 0.2, "big": 1{"0" * 400}}}, "acc": 0.6}}',
        f'{{"id": "big80", "config": {{"lr": 0.4, "n": {2**80}, "m": NaN}}, "acc": 0.8}}',
        f'{{"id": "giant", "config": {{"lr": 0.5, "g": 1{"0" * 5000}}}, "acc": 0.9}}',
    )
    source = _jsonl(tmp_path / "log.jsonl", GOOD_A, *lines, GOOD_B)
    code, report = _migrate(source, "--repo", repo)
    assert code == 0, report["invalid"]
    assert report["summary"]["runs_written"] == 5
    assert [c["locator"] for c in report["coerced"]] == ["line 2", "line 3", "line 4"]
    assert report["coerced_values"] == {"big_int": 3}
    runs = _by_name(repo)
    assert runs["huge"]["hparams"]["big"] == "1" + "0" * 400
    assert runs["big80"]["hparams"]["n"] == str(2**80) and math.isnan(runs["big80"]["hparams"]["m"])
    assert runs["giant"]["hparams"]["g"] == "1" + "0" * 5000
    _assert_again_clean(source, repo, 0)


def test_records_rewritten_by_a_mapping_get_the_same_storable_form(tmp_path: Path, repo: Path) -> None:
    # The mapping rewrites records inside the reader; the storable form is made after it, for every reader.
    mapping = Path(__file__).resolve().parent.parent / "fixtures" / "mappings" / "experiment_log.toml"
    deep = _nested(2000)
    poison = (
        f'{{"experiment_id": "exp_9", "experiment_name": "sweep \\udc80", "config": {{"lr": 0.1, "x": {deep}}},'
        ' "results": {"p10": 0.25}}'
    )
    source = _jsonl(tmp_path / "log.jsonl", poison)
    code, report = _migrate(source, "--repo", repo, "--mapping", mapping)
    assert code == 0, report["invalid"]
    assert report["coerced_values"] == {"surrogate": 1, "deep": 1}
    (run,) = aim_runs(repo).values()
    assert run.experiment == "sweep \ufffd"
    assert isinstance(_unwrap(run["hparams"]["x"], MAX_DEPTH - 2), str)
    assert [p[1] for p in series(run)[("p10", ())]] == [0.25]
    _assert_again_clean(source, repo, 0, "--mapping", mapping)


def test_a_record_that_cannot_be_a_run_is_invalid_with_its_line(tmp_path: Path, repo: Path) -> None:
    # A step read from a float field can be any size; Aim keeps steps as int64.
    poison = {"id": "s", "config": {"lr": 0.1}, "history": [{"step": 1e300, "loss": 1.0}, {"step": 2, "loss": 2.0}]}
    source = _jsonl(tmp_path / "log.jsonl", GOOD_A, poison, GOOD_B)
    code, report = _migrate(source, "--repo", repo)
    assert code == 3
    ((issue),) = report["invalid"]
    assert issue["source"].endswith("log.jsonl") and issue["locator"] == "line 2"
    assert "step 10000000... (301 digits) is beyond 64 bits" in issue["reason"]
    assert set(_by_name(repo)) == {"a", "b"}
    _accounted(report)
    _assert_again_clean(source, repo, 3)


def test_a_run_aim_refuses_is_removed_reported_and_retried(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's own net, beneath the storable form: with that form switched off, a lone surrogate
    reaches Aim, which refuses the run part-way. No half run stays, the others are written, and the
    ledger does not call it done, so the next import tries it again and stops no more than this one."""
    import etl.mapper
    import etl.normalize

    for stage in (etl.normalize, etl.mapper):
        monkeypatch.setattr(stage, "make_storable", lambda value, **_: (value, Counter()))
    poison = '{"id": "sur", "config": {"lr": 0.2}, "acc": 0.6, "history": {"loss": [1, 2]}, "note": "x\\ud800"}'
    source = _jsonl(tmp_path / "log.jsonl", GOOD_A, poison, GOOD_B)
    for attempt in range(2):
        code, report = _migrate(source, "--repo", repo)
        assert code == 3
        ((issue),) = report["invalid"]
        assert issue["locator"] == "line 2" and issue["reason"].startswith("Aim refused the run: UnicodeEncodeError")
        assert report["summary"]["runs_written"] == (2 if attempt == 0 else 0)
        assert [f["records"] for f in report["files"]] == [3]
        _accounted(report)
        runs = aim_runs(repo)
        assert sorted(r.name for r in runs.values()) == ["a", "b"]
        assert all(r["etl"]["complete"] for r in runs.values())
    ledger = Ledger(default_ledger_path(repo))
    try:
        states = {e.locator: e.state for e in ledger.snapshot().by_key.values()}
    finally:
        ledger.close()
    assert states == {"line 1": DONE, "line 2": "writing", "line 3": DONE}
    chunks = {p.name for p in (repo / ".aim" / "meta" / "chunks").iterdir()}
    assert len(chunks) == 2  # nothing of the refused run is left in the repo


# -- the property: whatever the JSON, an import ends, whole, and accounts for every record ------------

_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates included
_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.sampled_from([10**400, -(10**30), 2**63, -(2**63) - 1, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, math.inf, -math.inf, math.nan, 1e308, 5e-324]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
# The interpreter's roles, so the values above land in ids, names, times, tags, steps and metrics.
_ROLES = ("id", "name", "experiment", "timestamp", "config", "results", "history", "tags", "step", "acc", "val_loss")
_RECORDS = st.dictionaries(st.sampled_from(_ROLES) | _TEXT, _VALUES, max_size=6)
_HISTORY_ROWS = st.lists(st.dictionaries(st.sampled_from(("step", "epoch", "loss", "time")), _VALUES), max_size=3)


@st.composite
def _deep(draw) -> str:
    """A record with one value 500 to 5,000 levels deep, of lists or dicts, somewhere in it."""
    depth = draw(st.integers(500, 5000))
    inner = json.dumps(draw(_SCALARS))
    nested = _nested(depth, inner) if draw(st.booleans()) else '{"k": ' * depth + inner + "}" * depth
    where = draw(st.sampled_from(("config", "results", "history", "extra")))
    return f'{{"id": "deep{depth}", "acc": 0.5, "{where}": {nested}}}'


def _text_of(value) -> str:
    """JSON text as Python writes it: NaN and Infinity bare, a lone surrogate as its `\\ud800` escape."""
    return json.dumps(value)


_LINES = st.one_of(
    _RECORDS.map(_text_of),
    st.fixed_dictionaries({"config": _VALUES, "history": _HISTORY_ROWS}, optional={"id": _VALUES}).map(_text_of),
    _VALUES.map(_text_of),  # not an object: invalid, with its line
)
_DOCUMENTS = st.one_of(
    _RECORDS.map(_text_of),
    st.lists(_RECORDS, max_size=3).map(_text_of),
    st.fixed_dictionaries({"results": st.lists(_RECORDS, min_size=1, max_size=3), "name": _VALUES}).map(_text_of),
    _deep(),
)


@settings(
    # Small for CI (each example is two imports into a fresh Aim repo, ~1 s); a longer hunt is
    # `AIM_ETL_POISON_EXAMPLES=500 pytest tests/test_poison.py`.
    max_examples=int(os.environ.get("AIM_ETL_POISON_EXAMPLES", "15")),
    # New inputs on every local run (a failure is kept in .hypothesis/ and replayed first); the
    # same ones in CI, so a submission lands on what its author saw pass.
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(_LINES, max_size=5), deep=_deep(), where=st.integers(0, 5), document=_DOCUMENTS)
def test_an_import_never_crashes_never_half_writes_and_accounts_for_every_record(lines, deep, where, document) -> None:
    lines.insert(where, deep)  # every example has one record 500 to 5,000 levels deep among the others
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "logs"
        source.mkdir()
        (source / "log.jsonl").write_text("".join(line + "\n" for line in lines))
        (source / "result.json").write_text(document)
        repo = root / "repo"

        code, report = _migrate(source, "--repo", repo)
        assert code in (0, 3), report
        assert (code == 3) == bool(report["invalid"])
        _accounted(report)
        files = {Path(f["source"]).name: f for f in report["files"]}
        if files["log.jsonl"]["format"] == "jsonl":  # else a per-step log: all its lines are one run
            assert files["log.jsonl"]["records"] == len(lines)

        runs = aim_runs(repo) if (repo / ".aim").is_dir() else {}  # no run to write: no repo is created
        assert len(runs) == report["summary"]["runs_written"]
        points = 0
        for run in runs.values():
            assert run["etl"]["complete"] is True  # written to the end: provenance goes last
            points += sum(len(p) for p in series(run).values())
        assert points == report["summary"]["points_written"]

        again_code, again = _migrate(source, "--repo", repo)
        assert again_code == code and again["summary"]["runs_written"] == 0
        assert again["summary"]["new"] == again["summary"]["changed"] == 0
        _accounted(again)


def test_the_library_reads_poison_without_aim(tmp_path: Path) -> None:
    """`etl.read` (the notebook entry) goes through the same storable form."""
    deep = f'{{"id": "deep", "config": {{"x": {_nested(3000)}}}, "acc": 0.6}}'
    source = _jsonl(tmp_path / "log.jsonl", GOOD_A, deep, '{"id": "s", "config": {"n": "\\ud800"}, "acc": 1}')
    frames = pipeline.read([source])
    assert list(frames.runs["name"]) == ["a", "deep", "s"]
    assert [(c.locator, sorted(c.counts)) for c in frames.coerced] == [("line 2", ["deep"]), ("line 3", ["surrogate"])]
    assert frames.runs["hparams"][2] == {"n": "\ufffd"}


def test_the_terminal_report_names_each_coerced_record(tmp_path: Path, repo: Path) -> None:
    source = _jsonl(tmp_path / "log.jsonl", GOOD_A, '{"id": "s", "config": {"n": "\\ud800"}, "acc": 1}')
    result = run_cli("migrate", source, "--repo", repo)
    assert result.exit_code == 0
    assert "1 record imported with values in storable form: 1 string with lone surrogates" in result.output
    assert "log.jsonl:2: 1 string with lone surrogates, each replaced by U+FFFD" in result.output


# -- the two pieces underneath, checked against the standard library -------------------------------


def _same(a, b) -> bool:
    """Equal as JSON values, with NaN equal to itself (a value read twice must compare equal)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(value=_VALUES)
def test_the_iterative_parser_reads_what_pythons_parser_reads(value) -> None:
    from etl.readers.jsontext import _loads_iteratively

    text = json.dumps(value)
    assert _same(_loads_iteratively(text), json.loads(text))
    assert _same(_loads_iteratively(text.encode()), json.loads(text.encode()))


@pytest.mark.parametrize(
    "text", ["[1,]", '{"a" 1}', '{"a":1', "", "[1] x", "{1:2}", '"\\x"', "\ufeff{}", "[nan]", "-", '{"a":1,}']
)
def test_the_iterative_parser_refuses_what_pythons_parser_refuses_with_its_message(text: str) -> None:
    from etl.readers.jsontext import JSONError, _loads_iteratively

    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(JSONError) as got:
        _loads_iteratively(text)
    exc = expected.value
    assert str(got.value) == f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"


@settings(max_examples=200, deadline=None)
@given(value=_VALUES)
def test_the_storable_form_is_what_aim_and_python_can_take(value) -> None:
    from etl.storable import make_storable

    stored, counts = make_storable(value)
    text = json.dumps(stored, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogate is left anywhere, keys included
    if not counts:
        assert stored is value  # a clean value is not copied
    again, more = make_storable(stored)
    assert not more and again is stored  # the storable form is a fixed point: the next run sees the same


def test_the_storable_form_of_each_kind() -> None:
    from etl.storable import IntText, make_storable, to_json_text

    deep = deep_at(MAX_DEPTH + 5)  # levels 2 to MAX_DEPTH + 6 of `value`
    value = {
        "s": "a\ud800b",
        "big": [2**63, -(2**63) - 1, 2**63 - 1, IntText("9" * 5000)],
        "deep": deep,
        "t": (1, 2),
        "when": Path("x"),
        "": 1,
    }
    stored, counts = make_storable(value, empty_key="(empty)")
    assert counts == {"surrogate": 1, "big_int": 3, "deep": 1, "type": 1}
    assert stored["s"] == "a\ufffdb" and stored["t"] == [1, 2] and stored["when"] == "x" and stored["(empty)"] == 1
    assert stored["big"] == [str(2**63), str(-(2**63) - 1), 2**63 - 1, "9" * 5000]
    assert type(stored["big"][3]) is str
    inner = stored["deep"]
    for _ in range(MAX_DEPTH - 2):  # down to level MAX_DEPTH, the last kept as a dict
        inner = inner["k"]
    assert inner == {"k": to_json_text(deep_at(6))}  # the 6 levels below it, as text
    assert make_storable(value)[0][""] == 1  # the record keeps its empty key; only Aim's params rename it


def deep_at(levels: int):
    value = 1
    for _ in range(levels):
        value = {"k": value}
    return value
