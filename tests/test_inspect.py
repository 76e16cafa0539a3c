"""`aim-etl inspect`: the reader and each field's role with its rule, and the same reading written
as a mapping that, fed back with `--mapping`, gives the same runs; edited, the user's word wins."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from etl.inspect import inspect
from etl.pipeline import read
from etl.readers import find_sources, load_mapping
from tests.conftest import FIXTURES, aim_runs, run_cli, series

LOG = FIXTURES / "experiments" / "EXPERIMENT_LOG.jsonl"


def _canonical(frames) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The frames with dict/list cells as canonical JSON (NaN kept apart from null), comparable by value."""

    def cell(value):
        if isinstance(value, dict | list | tuple):
            return json.dumps(value, sort_keys=True, default=str)
        return value

    runs = frames.runs.map(cell).sort_values("run_key").reset_index(drop=True)
    metrics = frames.metrics.sort_values(["run_key", "name", "context", "step"]).reset_index(drop=True)
    return runs, metrics


def _points(run) -> list[tuple]:
    """Every series of a run as comparable text (an epoch-less point holds NaN, which equals nothing)."""
    return sorted((key, repr(points)) for key, points in series(run).items())


def test_inspect_shows_the_reader_and_each_fields_role_and_rule():
    result = run_cli("inspect", LOG)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "reader: jsonl (by extension)" in out
    assert "records: 36 read, 34 runs, 0 not experiments, 2 invalid" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert rows["experiment_id"].split()[1] == "id"
    assert rows["timestamp"].split()[1] == "time"
    assert rows["config"].split()[1] == "params" and "the hparams section" in rows["config"]
    assert rows["results"].split()[1:3] == ["metrics", "(3"] and "result section by name" in rows["results"]
    assert rows["history"].split()[1] == "series"
    assert rows["notes"].split()[1] == "meta"
    assert "dated 2025-03-10T12:44:09+00:00 by content" in out


def test_inspect_json_lists_skipped_files_with_their_reason(tmp_path):
    (tmp_path / "notes.md").write_text("# not data\n")
    (tmp_path / "empty.json").write_text("")
    result = run_cli("inspect", tmp_path, "--json")
    files = {Path(f["source"]).name: f for f in json.loads(result.output)["files"]}
    assert files["notes.md"]["format"] is None and "not a JSON" in files["notes.md"]["reason"]
    assert files["empty.json"]["format"] is None and files["empty.json"]["reason"] == "empty file"


def test_the_written_mapping_gives_the_same_runs_in_aim(tmp_path):
    mapping = tmp_path / "inferred.toml"
    assert run_cli("inspect", LOG, "--mapping-out", mapping).exit_code == 0
    text = mapping.read_text()
    assert 'format = "jsonl"' in text and '"results" = "metrics"' in text
    plain, mapped = tmp_path / "plain", tmp_path / "mapped"
    assert run_cli("migrate", LOG, "--repo", plain, "-q").exit_code == 3
    assert run_cli("migrate", LOG, "--repo", mapped, "--mapping", mapping, "-q").exit_code == 3
    a, b = aim_runs(plain), aim_runs(mapped)
    assert set(a) == set(b)  # same hashes: same run keys, so a later sync with either updates the same runs
    for run_hash, run in a.items():
        other = b[run_hash]
        assert (run.name, run.experiment, run.creation_time) == (other.name, other.experiment, other.creation_time)
        assert run["hparams"] == other["hparams"] and set(run.tags) == set(other.tags)
        assert run["etl"]["content_hash"] == other["etl"]["content_hash"]
        assert _points(run) == _points(other)


def test_an_edited_role_wins_and_updates_the_run_in_place(tmp_path, repo):
    mapping = tmp_path / "inferred.toml"
    assert run_cli("inspect", LOG, "--mapping-out", mapping).exit_code == 0
    assert run_cli("migrate", LOG, "--repo", repo, "--mapping", mapping, "-q").exit_code == 3
    before = {run.name: run.hash for run in aim_runs(repo).values()}
    text = mapping.read_text()
    text = text.replace('"results" = "metrics"', '"results" = "params"')
    text = text.replace('"notes" = "meta"', '"notes" = "ignore"')
    mapping.write_text(text)
    assert load_mapping(mapping).fields["results"] == "params"
    report = tmp_path / "second.json"
    # the log is unchanged, but it reads differently now: sync reads it again in full (its bad line too)
    assert run_cli("sync", LOG, "--repo", repo, "--mapping", mapping, "--report", report, "-q").exit_code == 3
    assert json.loads(report.read_text())["summary"]["changed"] > 0
    runs = {run.name: run for run in aim_runs(repo).values()}
    run = runs["exp_001"]
    assert run.hash == before["exp_001"]  # the same Aim run, rewritten in place
    assert run["hparams"]["results"] == {"p10": 0.2427, "ndcg": 0.3196, "mrr": 0.3764}
    assert ("p10", ()) not in series(run) and ("loss", (("subset", "train"),)) in series(run)
    assert "notes" not in run["meta"]
    # and once read with these options, the next sync reads only past its cursor (the torn last line)
    report = tmp_path / "third.json"
    assert run_cli("sync", LOG, "--repo", repo, "--mapping", mapping, "--report", report, "-q").exit_code == 0
    third = json.loads(report.read_text())
    assert [f["mode"] for f in third["files"]] == ["appended"] and third["summary"]["runs_written"] == 0


def test_a_bad_role_in_a_mapping_is_a_usage_error_naming_the_field(tmp_path, repo):
    mapping = tmp_path / "bad.toml"
    mapping.write_text('[fields]\n"results" = "metric"\n')
    result = run_cli("migrate", LOG, "--repo", repo, "--mapping", mapping)
    assert result.exit_code == 2
    assert "fields.results: unknown role 'metric'" in result.output


def test_inspect_and_its_mapping_work_on_every_corpus_file(corpus, tmp_path):
    """Each file the corpus import reads, inspected alone: the mapping it writes reproduces its runs."""
    files, _ = find_sources([corpus], base=corpus)
    assert len(files) > 40
    for index, source in enumerate(files):
        inspection = inspect([source.path], base=corpus)
        (inspected,) = [f for f in inspection.files if f.format]
        assert inspected.format == source.format, source.source
        out = tmp_path / f"{index}.toml"
        inspection.write_mapping(out)
        mapping = load_mapping(out)
        plain = read([source.path], base=corpus)
        mapped = read([source.path], base=corpus, mapping=mapping)
        runs_a, metrics_a = _canonical(plain)
        runs_b, metrics_b = _canonical(mapped)
        pd.testing.assert_frame_equal(runs_a, runs_b, obj=source.source)
        pd.testing.assert_frame_equal(metrics_a, metrics_b, obj=source.source)
        if inspected.experiments:
            assert inspected.fields and all(f.rule for f in inspected.fields), source.source


def test_a_field_whose_role_varies_is_left_to_the_interpreter(tmp_path):
    log = tmp_path / "mixed.jsonl"
    log.write_text(
        json.dumps({"run_id": "a", "config": {"lr": 0.1}, "extra": {"acc": 0.5}})
        + "\n"
        + json.dumps({"run_id": "b", "lr": 0.1, "extra": 3})
        + "\n"
    )
    inspection = inspect([log], base=tmp_path)
    fields, _, varies = inspection.mapping_fields()
    assert "extra" not in fields and any(line.startswith("extra: ") for line in varies)
    assert fields["run_id"] == "id"
