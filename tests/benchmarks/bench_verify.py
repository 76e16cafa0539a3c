"""Time of `verify` against the `migrate` that wrote the repo, on a synthetic log.

    python tests/benchmarks/bench_verify.py [--runs 200] [--epochs 20]   (`--runs 10000` for the README figure)

Migrates the log once, then times `verify` (summaries only: what a daily check costs) and
`verify --deep` (every point loaded), and checks both find everything equal.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_migrate import write_log  # noqa: E402

import etl  # noqa: E402
from etl.verify import verify  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = root / "EXPERIMENT_LOG.jsonl"
        points = write_log(log, args.runs, args.epochs)
        started = time.perf_counter()
        etl.migrate([log], root / "repo")
        migrated = time.perf_counter() - started
        print(f"{args.runs} runs, {points} points: migrate {migrated:.1f}s")
        for deep in (False, True):
            started = time.perf_counter()
            report = verify([log], root / "repo", deep=deep)
            seconds = time.perf_counter() - started
            assert report.exit_code == 0 and report.equal == args.runs, report.to_text(limit=5)
            label = "verify --deep" if deep else "verify"
            print(
                f"{label:14s} {seconds:7.1f}s  {args.runs / seconds:7.0f} runs/s  "
                f"{report.series_loaded} series loaded  ({seconds / migrated:.0%} of the migrate)"
            )


if __name__ == "__main__":
    main()
