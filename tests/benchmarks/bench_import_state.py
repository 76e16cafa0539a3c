"""What an import keeps in memory per run until it ends, and that the spill keeps it flat.

    python tests/benchmarks/bench_import_state.py [--runs 5000] [--limit 1000]

Migrates a log of small lines in this process under tracemalloc and prints the Python heap every
1,000 runs. Duplicates and re-runs are found across the whole import, so some state per run must
be kept; with `--limit` (the `etl.spill` limit; the default is the library's 100,000) below the
number of runs, it moves to disk and the heap should stay flat; with a limit above it, the heap
grows by what a run costs (~870 bytes).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import tracemalloc
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    from etl import pipeline, spill
    from etl.writers import bulk  # noqa: F401 - imported before tracing starts

    if args.limit is not None:
        spill.DEFAULT_LIMIT = args.limit
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "EXPERIMENT_LOG.jsonl"
        with log.open("w") as fh:
            for i in range(args.runs):
                record = {
                    "experiment_id": f"e{i:07d}",
                    "timestamp": "2025-01-01T00:00:00Z",
                    "config": {"lr": rng.random(), "dim": 64},
                    "results": {"p10": rng.random()},
                    "history": {"loss": [rng.random() for _ in range(5)]},
                }
                fh.write(json.dumps(record) + "\n")
        seen: set[int] = set()

        def progress(p: pipeline.Progress) -> None:
            step = p.runs // 1000
            if p.runs and step not in seen:
                seen.add(step)
                print(f"{p.runs:>8} runs  Python heap {tracemalloc.get_traced_memory()[0] / 1e6:7.2f} MB", flush=True)

        tracemalloc.start()
        pipeline.migrate([log], Path(tmp) / "repo", progress=progress)


if __name__ == "__main__":
    main()
