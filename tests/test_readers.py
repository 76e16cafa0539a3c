"""Readers: JSONL lines and JSON documents to Records/BadRecords, format detection, source discovery.

Fixture files are in tests/fixtures/jsonl and tests/fixtures/json (see the byte layout in each test);
anything that needs a file tree or odd bytes is written to tmp_path.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from etl.errors import BadRecord, SourceNotFound
from etl.interpret import FieldRules, interpret
from etl.readers import (
    KEYED_AS_CONTEXT,
    KEYED_AS_RUNS,
    Record,
    SkippedFile,
    SourceFile,
    find_sources,
    read_file,
    source_name,
)
from etl.readers.detect import JSON, JSONL, detect_format
from etl.readers.jsondoc import read_json
from etl.readers.jsonl import read_jsonl

FIXTURES = Path(__file__).resolve().parent / "fixtures"
JSONL_DIR = FIXTURES / "jsonl"
JSON_DIR = FIXTURES / "json"


def line_ends(data: bytes) -> list[int]:
    """Byte offset just after each line (1-based line N is index N-1), as a reader in binary sees them."""
    ends, pos = [], 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        pos = len(data) if nl < 0 else nl + 1
        ends.append(pos)
    return ends


def read(path: Path, *, keyed: str = KEYED_AS_RUNS) -> list[Record | BadRecord]:
    fmt, _ = detect_format(path)
    assert fmt is not None, path
    return list(read_file(SourceFile(path, path.name, fmt, "test"), keyed=keyed))


def outline(items: list[Record | BadRecord]) -> list[tuple[str, str]]:
    return [("record" if isinstance(i, Record) else "bad", i.locator) for i in items]


# --- every fixture file, in one table ------------------------------------------------------------

FIXTURE_OUTLINES = {
    "jsonl/good.jsonl": [("record", "line 1"), ("record", "line 4"), ("record", "line 5")],
    "jsonl/bad.jsonl": [
        ("record", "line 1"),
        ("bad", "line 2"),
        ("bad", "line 3"),
        ("record", "line 4"),
        ("bad", "line 5"),
    ],
    "json/list.json": [("record", "$[0]"), ("record", "$[1]")],
    "json/grid.json": [("record", "$.results[0]"), ("record", "$.results[1]"), ("record", "$.results[2]")],
    "json/keyed.json": [("record", "$.deepwalk"), ("record", "$.node2vec")],
    "json/run.json": [("record", "$")],
    "json/truncated.json": [("bad", "line 5")],
    "json/lines.json": [("record", "line 1"), ("record", "line 2")],
}


def test_fixture_table_covers_every_fixture_file():
    # the generic readers' fixtures; each format reader's folder has its own test module
    on_disk = {
        p.relative_to(FIXTURES).as_posix()
        for folder in ("json", "jsonl")
        for p in (FIXTURES / folder).rglob("*")
        if p.is_file()
    }
    assert on_disk == set(FIXTURE_OUTLINES)


@pytest.mark.parametrize("name", sorted(FIXTURE_OUTLINES))
def test_fixture_outline(name):
    items = read(FIXTURES / name)
    assert outline(items) == FIXTURE_OUTLINES[name]
    for item in items:
        assert item.source == (FIXTURES / name).name
        if isinstance(item, Record):
            assert isinstance(item.data, dict)
            assert item.format == ("jsonl" if item.locator.startswith("line ") else "json")


@pytest.mark.parametrize("name", ["jsonl/good.jsonl", "jsonl/bad.jsonl", "json/lines.json"])
def test_jsonl_end_offset_is_byte_offset_after_the_line(name):
    path = FIXTURES / name
    ends = line_ends(path.read_bytes())
    records = [r for r in read_jsonl(path, name) if isinstance(r, Record)]
    assert records
    for record in records:
        n = int(record.locator.removeprefix("line "))
        assert record.end_offset == ends[n - 1]


@pytest.mark.parametrize("name", ["json/list.json", "json/grid.json", "json/keyed.json", "json/run.json"])
def test_json_document_records_have_no_end_offset(name):
    records = read(FIXTURES / name)
    assert records and all(isinstance(r, Record) and r.end_offset is None for r in records)


# --- JSONL ---------------------------------------------------------------------------------------


def test_good_jsonl_contents():
    path = JSONL_DIR / "good.jsonl"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the fixture really has a BOM
    first, second, third = read_jsonl(path, "good.jsonl")
    # BOM on line 1 accepted, and not glued to the first key.
    assert first.data == {"id": "exp_1", "lr": 0.1, "val_loss": 0.5}
    assert first.locator == "line 1"
    # Bare NaN / Infinity / -Infinity, as Python's json writes them.
    assert second.locator == "line 4"
    assert isinstance(second.data["mrr"], float) and math.isnan(second.data["mrr"])
    assert second.data["best"] == math.inf
    assert second.data["worst"] == -math.inf
    # Last line without a newline that parses: a normal record, not torn.
    assert isinstance(third, Record)
    assert third.data == {"id": "exp_3", "loss": 0.25}
    assert third.end_offset == path.stat().st_size


def test_blank_lines_are_skipped_but_counted(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'\n\n{"a": 1}\n  \t \n{"a": 2}\n\n')
    records = list(read_jsonl(path, "log.jsonl"))
    assert [(r.locator, r.data) for r in records] == [("line 3", {"a": 1}), ("line 5", {"a": 2})]
    assert [r.end_offset for r in records] == [len(b'\n\n{"a": 1}\n'), len(b'\n\n{"a": 1}\n  \t \n{"a": 2}\n')]


def test_crlf_lines_offsets_count_the_carriage_return(tmp_path):
    path = tmp_path / "win.jsonl"
    path.write_bytes(b'{"a": 1}\r\n{"a": 2}\r\n')
    records = list(read_jsonl(path, "win.jsonl"))
    assert [r.data for r in records] == [{"a": 1}, {"a": 2}]
    assert [r.end_offset for r in records] == [10, 20]


def test_non_json_line_message_and_the_rest_still_comes_through():
    items = list(read_jsonl(JSONL_DIR / "bad.jsonl", "runs/bad.jsonl"))
    bad = items[1]
    assert isinstance(bad, BadRecord)
    assert str(bad).startswith("runs/bad.jsonl:2: not JSON: ")
    assert bad.source == "runs/bad.jsonl"
    assert bad.locator == "line 2"
    assert bad.torn is False
    after = items[3]
    assert isinstance(after, Record) and after.data == {"id": "exp_2", "loss": 0.5}


def test_exact_not_json_message(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\nnope\n')
    _, bad = read_jsonl(path, "log.jsonl")
    assert str(bad) == "log.jsonl:2: not JSON: Expecting value (line 1, column 1)"


def test_list_line_is_expected_object():
    bad = list(read_jsonl(JSONL_DIR / "bad.jsonl", "bad.jsonl"))[2]
    assert isinstance(bad, BadRecord)
    assert str(bad) == "bad.jsonl:3: expected object, got list"
    assert bad.torn is False


@pytest.mark.parametrize(
    ("line", "kind"), [(b"42", "number"), (b'"text"', "string"), (b"null", "null"), (b"true", "boolean")]
)
def test_other_non_object_lines(tmp_path, line, kind):
    path = tmp_path / "log.jsonl"
    path.write_bytes(line + b"\n")
    (bad,) = read_jsonl(path, "log.jsonl")
    assert isinstance(bad, BadRecord)
    assert bad.reason == f"expected object, got {kind}"


def test_torn_last_line():
    torn = list(read_jsonl(JSONL_DIR / "bad.jsonl", "bad.jsonl"))[-1]
    assert isinstance(torn, BadRecord)
    assert torn.torn is True
    assert torn.locator == "line 5"
    assert str(torn).startswith("bad.jsonl:5: torn last line")


def test_unparsable_last_line_with_newline_is_not_torn(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": \n')
    _, bad = read_jsonl(path, "log.jsonl")
    assert isinstance(bad, BadRecord) and bad.torn is False


def test_invalid_utf8_line_is_a_bad_record(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": "\xff\xfe"}\n{"a": 2}\n')
    bad, good = read_jsonl(path, "log.jsonl")
    assert isinstance(bad, BadRecord) and "not UTF-8" in bad.reason
    assert isinstance(good, Record) and good.data == {"a": 2}


def test_resume_from_offset_continues_line_numbers(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    first = next(read_jsonl(path, "log.jsonl"))
    rest = list(read_jsonl(path, "log.jsonl", start_offset=first.end_offset, start_line=1))
    assert [(r.locator, r.data, r.end_offset) for r in rest] == [("line 2", {"a": 2}, 18), ("line 3", {"a": 3}, 27)]


# --- JSON documents ------------------------------------------------------------------------------


def test_list_of_objects():
    records = list(read_json(JSON_DIR / "list.json", "list.json"))
    assert [(r.locator, r.data, r.parent) for r in records] == [
        ("$[0]", {"id": 1, "loss": 0.5}, {}),
        ("$[1]", {"id": 2, "loss": 0.4}, {}),
    ]


def test_list_with_a_non_object_entry(tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text('[{"id": 1}, 3, {"id": 2}]')
    items = list(read_json(path, "mixed.json"))
    assert outline(items) == [("record", "$[0]"), ("bad", "$[1]"), ("record", "$[2]")]
    assert str(items[1]) == "mixed.json:$[1]: expected object, got number"


def test_grid_search_entries_inherit_the_document():
    records = list(read_json(JSON_DIR / "grid.json", "grid.json"))
    assert [r.locator for r in records] == ["$.results[0]", "$.results[1]", "$.results[2]"]
    assert records[1].data == {"params": {"p": 1, "q": 4}, "metrics": {"ndcg": 0.35}}
    for record in records:
        assert record.parent == {"search": "pq-grid", "created": "2025-03-01T10:00:00Z", "metric": "ndcg"}


@pytest.mark.parametrize("key", ["trials", "runs", "experiments", "records", "entries"])
def test_other_record_list_keys(tmp_path, key):
    path = tmp_path / "doc.json"
    path.write_text(f'{{"study": "s", "{key}": [{{"loss": 1}}, {{"loss": 2}}]}}')
    records = list(read_json(path, "doc.json"))
    assert [r.locator for r in records] == [f"$.{key}[0]", f"$.{key}[1]"]
    assert all(r.parent == {"study": "s"} for r in records)


def test_results_dict_is_a_run_document_not_a_list(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('{"results": [1, 2], "name": "x"}')
    (record,) = read_json(path, "doc.json")
    assert record.locator == "$" and record.data == {"results": [1, 2], "name": "x"}


def test_keyed_summary_as_runs():
    records = list(read_json(JSON_DIR / "keyed.json", "keyed.json", keyed=KEYED_AS_RUNS))
    assert [(r.locator, r.data) for r in records] == [
        ("$.deepwalk", {"method": "deepwalk", "p@10": 0.26, "mrr": 0.41}),
        ("$.node2vec", {"method": "node2vec", "p@10": 0.29, "mrr": 0.44}),
    ]


def test_keyed_summary_as_context_is_one_results_record():
    (record,) = read_json(JSON_DIR / "keyed.json", "keyed.json", keyed=KEYED_AS_CONTEXT)
    assert record.locator == "$"
    assert record.data == {
        "results": {"deepwalk": {"p@10": 0.26, "mrr": 0.41}, "node2vec": {"p@10": 0.29, "mrr": 0.44}}
    }


def test_keyed_summary_as_context_gives_method_contexts_once_interpreted():
    (record,) = read_json(JSON_DIR / "keyed.json", "keyed.json", keyed=KEYED_AS_CONTEXT)
    item = interpret(record, FieldRules())
    assert sorted((name, ctx, value) for name, ctx, _, _, value, _ in item.points) == [
        ("mrr", '{"method":"deepwalk"}', 0.41),
        ("mrr", '{"method":"node2vec"}', 0.44),
        ("p@10", '{"method":"deepwalk"}', 0.26),
        ("p@10", '{"method":"node2vec"}', 0.29),
    ]


@pytest.mark.parametrize(
    "text",
    [
        '{"deepwalk": {"p@10": 0.1}}',  # one key only
        '{"deepwalk": {"p@10": 0.1}, "id": {"x": 1}}',  # a run document key
        '{"deepwalk": {"p@10": 0.1}, "node2vec": {"note": "n/a"}}',  # a value with no number
        '{"deepwalk": {"p@10": 0.1}, "node2vec": 0.3}',  # a value that is not a dict
    ],
)
def test_not_a_keyed_summary_is_one_run_document(tmp_path, text):
    path = tmp_path / "doc.json"
    path.write_text(text)
    (record,) = read_json(path, "doc.json")
    assert record.locator == "$"
    assert "method" not in record.data


def test_run_document():
    (record,) = read_json(JSON_DIR / "run.json", "results/run.json")
    assert record.locator == "$"
    assert record.source == "results/run.json"
    assert record.data["run_id"] == "n2v-best"
    assert record.data["history"] == {"train_loss": [0.9, 0.7, 0.6]}
    assert record.parent == {}


def test_truncated_document():
    (bad,) = read_json(JSON_DIR / "truncated.json", "results/truncated.json")
    assert isinstance(bad, BadRecord)
    assert bad.locator == "line 5"
    assert str(bad).startswith("results/truncated.json:5: not JSON: ")
    assert bad.torn is False


def test_truncated_document_on_another_line(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text('{\n  "a": 1,\n  "b": [1,\n')
    (bad,) = read_json(path, "cut.json")
    assert bad.locator == "line 4"


@pytest.mark.parametrize("text", ["3", '"x"', "null"])
def test_top_level_scalar_document(tmp_path, text):
    path = tmp_path / "doc.json"
    path.write_text(text)
    (bad,) = read_json(path, "doc.json")
    assert isinstance(bad, BadRecord) and bad.locator == "$"
    assert bad.reason.startswith("expected object or list, got ")


def test_json_document_with_nan(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('{"config": {"lr": 0.1}, "results": {"mrr": NaN, "top": Infinity}}')
    (record,) = read_json(path, "doc.json")
    assert math.isnan(record.data["results"]["mrr"]) and record.data["results"]["top"] == math.inf


# --- detect_format -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("log.jsonl", b'{"a": 1}\n', JSONL),
        ("LOG.JSONL", b'{"a": 1}\n', JSONL),
        ("log.ndjson", b'{"a": 1}\n', JSONL),
        ("log.jsonl", b"", None),  # blank: skipped as an empty file, not read as a log with nothing in it
        ("progress.json", b" \n\n", None),
        ("doc.json", b'{"a": 1}\n', JSON),
        ("doc.json", b'{\n  "a": 1\n}\n', JSON),
        ("doc.json", b'[{"a": 1},\n {"a": 2}]\n', JSON),
        ("lines.json", b'{"a": 1}\n{"a": 2}\n', JSONL),
        ("lines.json", b'{"a": 1}\n{"a": \n', JSONL),  # the second line only needs to start an object
        ("notlines.json", b'{"a": }\n{"a": 2}\n', JSON),  # a first line that does not parse
    ],
)
def test_detect_json_formats(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    fmt, reason = detect_format(path)
    assert fmt == expected
    assert reason


def test_detect_the_lines_fixture():
    assert detect_format(JSON_DIR / "lines.json") == (JSONL, "several JSON values, one per line")
    assert detect_format(JSON_DIR / "run.json") == (JSON, "by extension")
    assert detect_format(JSONL_DIR / "good.jsonl") == (JSONL, "by extension")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("model.pkl", "never unpickled"),
        ("model.pickle", "never unpickled"),
        ("best.pt", "checkpoint"),
        ("best.pth", "checkpoint"),
        ("results.csv", "CSV"),
        ("events.out.tfevents.1700000000.host", "aim convert tensorboard"),
        ("README.md", "not a JSON or JSONL file (.md)"),
        ("config.yaml", "not a JSON or JSONL file (.yaml)"),
    ],
)
def test_detect_skipped_files(tmp_path, name, words):
    path = tmp_path / name
    # Contents that would parse as JSON lines, to show skipping is by name. A file with no extension
    # is judged by its content instead (tests/test_tool_logs.py).
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    fmt, reason = detect_format(path)
    assert fmt is None
    assert words in reason


# --- find_sources --------------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    files = {
        "a.json": '{"config": {"x": 1}}',
        "z.jsonl": '{"a": 1}\n',
        "sub/b.jsonl": '{"a": 2}\n',
        "sub/a.json": '{"config": {"x": 2}}',
        "sub/deeper/c.json": '{"config": {"x": 3}}',
        "sub/deeper/d.jsonl": '{"a": 3}\n',
        "sub/model.pkl": "not a pickle",
        "notes.md": "# notes",
        ".aim/run.jsonl": '{"a": 4}\n',
        "sub/.git/x.json": '{"a": 5}',
        "__pycache__/y.json": '{"a": 6}',
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_find_sources_order_and_skips(tmp_path):
    root = tmp_path / "exp"
    make_tree(root)
    sources, skipped = find_sources([root], base=tmp_path)
    assert [(s.source, s.format) for s in sources] == [
        ("exp/z.jsonl", JSONL),
        ("exp/sub/b.jsonl", JSONL),
        ("exp/sub/deeper/d.jsonl", JSONL),
        ("exp/a.json", JSON),
        ("exp/sub/a.json", JSON),
        ("exp/sub/deeper/c.json", JSON),
    ]
    assert all(isinstance(s.path, Path) and s.path.is_file() for s in sources)
    by_source = {s.source: s.reason for s in skipped}
    assert all(isinstance(s, SkippedFile) for s in skipped)
    assert set(by_source) == {"exp/.aim/", "exp/sub/.git/", "exp/__pycache__/", "exp/sub/model.pkl", "exp/notes.md"}
    assert by_source["exp/.aim/"] == "folder not walked (Aim repo, VCS or cache)"
    assert by_source["exp/sub/.git/"] == "folder not walked (Aim repo, VCS or cache)"
    assert "never unpickled" in by_source["exp/sub/model.pkl"]


def test_find_sources_names_are_absolute_outside_base(tmp_path):
    root = tmp_path / "exp"
    make_tree(root)
    elsewhere = tmp_path / "repo"
    elsewhere.mkdir()
    for base in (elsewhere, None):
        sources, skipped = find_sources([root / "sub"], base=base)
        prefix = (root / "sub").resolve().as_posix()
        assert [s.source for s in sources] == [
            f"{prefix}/b.jsonl",
            f"{prefix}/deeper/d.jsonl",
            f"{prefix}/a.json",
            f"{prefix}/deeper/c.json",
        ]
        assert f"{prefix}/.git/" in {s.source for s in skipped}


def test_find_sources_same_name_for_file_and_folder(tmp_path, monkeypatch):
    root = tmp_path / "exp"
    make_tree(root)
    monkeypatch.chdir(root / "sub")
    by_file, _ = find_sources(["b.jsonl"], base=tmp_path)
    by_folder, _ = find_sources([root], base=tmp_path)
    assert [s.source for s in by_file] == ["exp/sub/b.jsonl"]
    assert "exp/sub/b.jsonl" in [s.source for s in by_folder]


def test_find_sources_reads_a_file_once(tmp_path):
    root = tmp_path / "exp"
    make_tree(root)
    sources, _ = find_sources([root / "z.jsonl", root, root / "z.jsonl"], base=tmp_path)
    names = [s.source for s in sources]
    assert names.count("exp/z.jsonl") == 1
    assert len(names) == len(set(names)) == 6


def test_find_sources_explicit_skipped_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x00")
    sources, skipped = find_sources([path], base=tmp_path)
    assert sources == []
    assert skipped == [SkippedFile("model.pt", "model checkpoint, not an experiment record")]


def test_find_sources_forced_format(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text('{"a": 1}\n')
    sources, skipped = find_sources([path], base=tmp_path, format=JSONL)
    assert [(s.source, s.format, s.reason) for s in sources] == [("log.txt", JSONL, "--format")]
    assert skipped == []
    (record,) = read_file(sources[0])
    assert record.data == {"a": 1} and record.locator == "line 1"


def test_find_sources_missing_path(tmp_path):
    (tmp_path / "there.jsonl").write_text("")
    with pytest.raises(SourceNotFound, match="nope.jsonl: no such file or directory"):
        find_sources([tmp_path / "there.jsonl", tmp_path / "nope.jsonl"])


def test_source_name(tmp_path):
    inside = tmp_path / "a" / "b.jsonl"
    assert source_name(inside, tmp_path) == "a/b.jsonl"
    assert source_name(inside, tmp_path / "other") == inside.resolve().as_posix()
    assert source_name(inside, None) == inside.resolve().as_posix()
