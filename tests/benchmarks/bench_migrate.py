"""Throughput of `migrate`, and of repeating it (the no-op every re-run should be), on a synthetic log.

    python tests/benchmarks/bench_migrate.py [--runs 1000] [--epochs 20]

Prints records/s, runs/s and points/s for the first import, the time of a second (no-op) import,
and a dry run, so the README's figures can be re-measured on any machine.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import etl


def write_log(path: Path, runs: int, epochs: int) -> int:
    rng = random.Random(7)
    points = 0
    with path.open("w") as fh:
        for i in range(runs):
            history = {
                "train_loss": [round(3 / (e + 1) + rng.random() * 0.1, 4) for e in range(epochs)],
                "val_loss": [round(3.2 / (e + 1) + rng.random() * 0.1, 4) for e in range(epochs)],
                "val_p10": [round(0.1 + 0.4 * e / epochs, 4) for e in range(epochs)],
            }
            record = {
                "experiment_id": f"exp_{i:06d}",
                "timestamp": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                "experiment_name": f"sweep-{i % 5}",
                "config": {
                    "dim": rng.choice([64, 128]),
                    "p": rng.random(),
                    "q": rng.random(),
                    "lr": 0.01,
                    "epochs": epochs,
                },
                "results": {"p10": rng.random(), "ndcg": rng.random(), "mrr": rng.random()},
                "history": history,
                "tags": ["bench"],
            }
            points += 3 + 3 * epochs
            fh.write(json.dumps(record) + "\n")
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "EXPERIMENT_LOG.jsonl"
        points = write_log(log, args.runs, args.epochs)
        repo = Path(tmp) / "repo"

        started = time.perf_counter()
        dry = etl.migrate([log], repo, dry_run=True)
        dry_s = time.perf_counter() - started

        started = time.perf_counter()
        first = etl.migrate([log], repo)
        first_s = time.perf_counter() - started
        assert first.summary()["runs_written"] == args.runs and first.points_written == points

        started = time.perf_counter()
        again = etl.migrate([log], repo)
        again_s = time.perf_counter() - started
        assert again.summary()["runs_written"] == 0 and again.summary()["unchanged"] == args.runs

    print(f"synthetic log: {args.runs} runs x ({args.epochs} epochs x 3 series + 3 results) = {points} points")
    print(f"dry run:         {dry_s:7.2f} s  {args.runs / dry_s:9.0f} records/s")
    print(
        f"first migrate:   {first_s:7.2f} s  {args.runs / first_s:9.1f} runs/s  {points / first_s:9.0f} points/s"
        f"  ({1000 * first_s / args.runs:.1f} ms per run)"
    )
    print(f"second migrate:  {again_s:7.2f} s  (no-op; {first_s / again_s:.0f}x faster than the first)")
    assert dry.summary()["new"] == args.runs


if __name__ == "__main__":
    main()
