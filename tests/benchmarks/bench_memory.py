"""Peak memory of a whole `aim-etl migrate` (workers included) against the size of the log.

    python tests/benchmarks/bench_memory.py [--sizes-mb 25 100 1000] [--epochs 20]

For each size, writes an EXPERIMENT_LOG.jsonl of typical lines (config, results, a per-epoch
history; ~63 points a run) until it reaches that size, runs `aim-etl migrate` on it in a child
process with the default writer, and prints the child's peak RSS (`ru_maxrss` of the process and
everything it started), runs/s and the repo's size. The target is a flat line: under 400 MB for a
1 GB log. Reading is streamed and at most two chunks are alive (one written while the next is
read), so the peak should not grow with the log; a growing one is a leak to find.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_log(path: Path, megabytes: float, epochs: int) -> int:
    """Lines until the file reaches `megabytes`; returns the number of runs."""
    rng = random.Random(5)
    target = int(megabytes * 1_000_000)
    runs = 0
    with path.open("w") as fh:
        while fh.tell() < target:
            record = {
                "experiment_id": f"exp_{runs:08d}",
                "timestamp": f"2025-{1 + runs % 12:02d}-{1 + runs % 28:02d}T10:00:00Z",
                "experiment_name": f"sweep-{runs % 7}",
                "config": {"dim": rng.choice([64, 128]), "lr": rng.choice([1e-4, 1e-3, 1e-2]), "epochs": epochs},
                "results": {"p10": rng.random(), "ndcg": rng.random(), "mrr": rng.random()},
                "history": {
                    "train_loss": [round(3 / (e + 1) + rng.random() * 0.1, 4) for e in range(epochs)],
                    "val_loss": [round(3.2 / (e + 1) + rng.random() * 0.1, 4) for e in range(epochs)],
                    "val_p10": [round(0.1 + 0.4 * e / epochs, 4) for e in range(epochs)],
                },
                "notes": "x" * rng.randint(0, 200),
            }
            fh.write(json.dumps(record) + "\n")
            runs += 1
    return runs


def measure(megabytes: float, epochs: int, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log, repo = Path(tmp) / "EXPERIMENT_LOG.jsonl", Path(tmp) / "repo"
        runs = write_log(log, megabytes, epochs)
        started = time.perf_counter()
        command = [sys.executable, "-m", "etl", "migrate", str(log), "--repo", str(repo), "-q", *extra]
        # A fresh process per size: ru_maxrss of RUSAGE_CHILDREN is the peak of any one child so far,
        # so the sizes run from small to large and each is read right after its own child.
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size_mb = sum(f.stat().st_size for f in (repo / ".aim").rglob("*") if f.is_file()) / 1e6
        status = "ok" if result.returncode == 0 else f"exit {result.returncode}: {result.stderr[-300:]}"
        print(
            f"{log.stat().st_size / 1e6:8.0f} MB log  {runs:8d} runs  peak RSS {peak_mb:6.0f} MB  "
            f"{runs / seconds:6.0f} runs/s  repo {size_mb:7.0f} MB  {status}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[25, 100, 1000])
    parser.add_argument("--epochs", type=int, default=20, help="points per run = 3 + 3 x epochs")
    parser.add_argument("extra", nargs="*", help="more migrate options, after --")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; aim-etl migrate with its defaults {' '.join(args.extra)}")
    for megabytes in sorted(args.sizes_mb):
        measure(megabytes, args.epochs, args.extra)


if __name__ == "__main__":
    main()
