"""Progress a person can plan by: the share of source bytes done and the time left, for imports."""

from __future__ import annotations

import io

from tqdm import tqdm

from etl import pipeline
from etl.cli import _update_bar
from etl.governance.rules import parse_rules
from tests.test_sync import line


def _collect(run, *args, **kwargs) -> list[pipeline.Progress]:
    seen: list[pipeline.Progress] = []
    run(*args, progress=seen.append, **kwargs)
    return seen


def test_the_share_done_counts_source_bytes_up_to_the_whole(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(3):
        (logs / f"{i}.jsonl").write_text("".join(line(10 * i + j) for j in range(40)))
    total = sum(p.stat().st_size for p in logs.iterdir())

    seen = _collect(pipeline.migrate, [logs], tmp_path / "repo", dry_run=True, chunk_size=7)

    done = [p.bytes_done for p in seen]
    assert all(p.bytes_total == total for p in seen)
    assert done == sorted(done) and done[-1] == total and seen[-1].share == 1.0
    # Chunks report the place reached inside a file, not only whole files.
    assert any(0 < d < total and d not in (total // 3, 2 * total // 3) for d in done)


def test_a_sync_counts_skipped_bytes_as_done_but_estimates_from_bytes_read(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(line(i) for i in range(30)))
    repo = tmp_path / "repo"
    pipeline.migrate([log], repo)
    before = log.stat().st_size
    with log.open("a") as fh:
        fh.write("".join(line(i) for i in range(30, 33)))
    after = log.stat().st_size

    last = _collect(pipeline.sync, [log], repo)[-1]

    assert (last.bytes_done, last.bytes_total) == (after, after)
    assert last.bytes_read == after - before  # the time left is judged by what was really read
    assert last.runs == 3

    # validate knows its total before checking: the runs in the repo
    rules = parse_rules('version = "1"\n[[rules]]\nid = "lr"\nkind = "min"\nfield = "hparams.lr"\nmin = 0\n', "t")
    totals: list[int] = []
    pipeline.validate(repo, rules, dry_run=True, on_total=totals.append)
    assert totals == [33]


def test_the_terminal_line_shows_share_time_left_and_rates():
    bar = tqdm(file=io.StringIO(), total=None)
    progress = pipeline.Progress(
        records=500,
        runs=400,
        points=25_200,
        seconds=10.0,
        bytes_done=250_000,
        bytes_total=1_000_000,
        bytes_read=250_000,
    )
    _update_bar(bar, progress)
    postfix = bar.postfix
    assert "25% of 1.0 MB" in postfix
    assert "about 30s left" in postfix  # 750 kB more at 25 kB/s
    assert "400 runs (40/s)" in postfix and "25200 points (2520/s)" in postfix
