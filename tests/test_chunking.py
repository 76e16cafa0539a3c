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


def test_the_main_thread_imports_nothing_of_aim_while_the_init_thread_does(tmp_path):
    """A new repo's thread imports Aim while the first chunk is read, checked and mapped; the main
    thread must not import Aim meanwhile: two threads importing its Cython modules at once fail
    with "partially initialized module". Run in a fresh interpreter, where Aim is not imported yet."""
    import subprocess
    import sys
    from pathlib import Path

    log = tmp_path / "EXPERIMENT_LOG.jsonl"
    log.write_text("".join(line(i) for i in range(20)))
    rules = Path(__file__).resolve().parents[1] / "fixtures" / "rules.toml"
    script = f"""
import sys, time
from etl import pipeline
from etl.governance.rules import load_rules
opened = pipeline._open_new_repo
seen = []
def slow(root):
    time.sleep(1.5)  # the main thread reads, checks and maps the whole log meanwhile
    seen.append(sorted(m for m in sys.modules if m == "aim" or m.startswith("aim.")))
    return opened(root)
pipeline._open_new_repo = slow
report = pipeline.migrate([{str(log)!r}], {str(tmp_path / "repo")!r}, governance=load_rules({str(rules)!r}))
assert report.runs_written == 20, report.runs_written
assert seen == [[]], seen[0][:5]
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
