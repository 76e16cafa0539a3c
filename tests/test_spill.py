"""An import's memory of what it has seen moves to disk past a limit, and means the same there."""

from __future__ import annotations

import json

import pytest

from etl import pipeline, spill
from etl.spill import SpillDict


def test_a_spilled_map_answers_as_the_dict_did():
    seen = SpillDict(limit=2)
    seen["a"], seen["b"] = "1", "2"
    assert not seen.spilled
    seen["c"] = "3"  # the third entry moves all of them to disk
    assert seen.spilled
    seen["a"] = "one"
    del seen["b"]
    assert dict(seen) == {"a": "one", "c": "3"} and len(seen) == 2
    assert "c" in seen and "b" not in seen and seen.get("b") is None
    with pytest.raises(KeyError):
        seen["b"]
    folder = seen._folder.name
    seen.close()
    assert not __import__("os").path.exists(folder)  # the scratch file goes with the map


def _line(i: int, record_id: str, loss: float) -> str:
    return json.dumps({"experiment_id": record_id, "config": {"lr": 0.01, "i": i}, "results": {"loss": loss}}) + "\n"


@pytest.mark.parametrize("limit", [1, 1000])
def test_duplicates_and_reruns_are_found_across_the_spill(tmp_path, monkeypatch, limit):
    """The same log read with everything in memory and with everything on disk reads the same."""
    monkeypatch.setattr(spill, "DEFAULT_LIMIT", limit)
    log = tmp_path / "EXPERIMENT_LOG.jsonl"
    lines = [_line(i, f"exp_{i}", i / 10) for i in range(6)]
    lines += [lines[1], lines[4]]  # exact copies: duplicates of lines 2 and 5
    lines += [_line(99, "exp_2", 0.5), _line(98, "exp_2", 0.6)]  # the same id, new content: re-runs
    log.write_text("".join(lines))

    report = pipeline.migrate([log], tmp_path / "repo", dry_run=True, chunk_size=2)

    (stats,) = report.files.values()
    assert (stats.records, stats.new, stats.duplicate) == (10, 8, 2)
    assert sorted(r.reason for r in report.reruns) == [
        "re-run of id 'exp_2' (occurrence 2)",
        "re-run of id 'exp_2' (occurrence 3)",
    ]
