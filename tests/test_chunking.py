"""Chunks follow the bytes of the log, not only its lines: what a chunk holds in memory is its points."""

from __future__ import annotations

from aim import Repo

from etl import pipeline
from tests.test_sync import line


def test_long_lines_end_a_chunk_early_and_every_point_still_lands(tmp_path, monkeypatch):
    log = tmp_path / "EXPERIMENT_LOG.jsonl"
    log.write_text("".join(line(i, epochs=3000) for i in range(7)))  # ~60 KB a line
    sizes: list[int] = []
    process = pipeline._Job._process

    def counted(job, chunk, *args, **kwargs):
        sizes.append(len(chunk))
        return process(job, chunk, *args, **kwargs)

    monkeypatch.setattr(pipeline._Job, "_process", counted)
    report = pipeline.migrate([log], tmp_path / "repo", chunk_bytes=150_000)

    assert sizes == [3, 3, 1]  # a chunk ends once it holds 150 KB, not after 500 lines
    assert report.runs_written == 7
    repo = Repo(str(tmp_path / "repo"))
    lengths = sorted(len(m.values.values_list()) for m in repo.query_metrics("metric.name == 'loss'").iter())
    assert lengths == [3000] * 7
