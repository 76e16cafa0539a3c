"""Issue figures for `sync`: a no-op sync and a 1% append, against the first `migrate` of the same log.

    python tests/benchmarks/bench_sync.py [--lines 100000] [--epochs 5] [--out FILE]

Each phase runs the real CLI in a subprocess and is timed from outside, side by side in one run:
1. `aim-etl migrate LOG`            (the first import: every line a run)
2. `aim-etl sync LOG`               (nothing changed: a stat and a fingerprint per file)
3. append 1% of lines, `aim-etl sync LOG` (reads from the cursor only)
Prints the times and the two ratios the issue asks for (>= 50x and >= 20x).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AIM_ETL = [sys.executable, "-m", "etl"]


def line(i: int, epochs: int, rng: random.Random) -> str:
    record = {
        "experiment_id": f"exp_{i:07d}",
        "timestamp": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
        "experiment_name": f"sweep-{i % 7}",
        "config": {
            "dim": rng.choice([64, 128, 256]),
            "p": round(rng.random(), 3),
            "q": round(rng.random(), 3),
            "lr": 0.01,
        },
        "results": {"p10": rng.random(), "ndcg": rng.random()},
        "history": {"train_loss": [round(3 / (e + 1) + rng.random() * 0.1, 4) for e in range(epochs)]},
    }
    return json.dumps(record) + "\n"


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "EXPERIMENT_LOG.jsonl"
        repo = Path(tmp) / "repo"
        with log.open("w") as fh:
            for i in range(args.lines):
                fh.write(line(i, args.epochs, rng))
        migrate_s = timed([*AIM_ETL, "migrate", str(log), "--repo", str(repo), "-q"])
        print(f"first migrate of {args.lines} lines: {migrate_s:.1f} s", flush=True)
        noop_s = timed([*AIM_ETL, "sync", str(log), "--repo", str(repo), "-q"])
        appended = max(1, args.lines // 100)
        with log.open("a") as fh:
            for i in range(args.lines, args.lines + appended):
                fh.write(line(i, args.epochs, rng))
        append_s = timed([*AIM_ETL, "sync", str(log), "--repo", str(repo), "-q"])
    figures = {
        "lines": args.lines,
        "migrate_s": round(migrate_s, 2),
        "noop_sync_s": round(noop_s, 3),
        "append_lines": appended,
        "append_sync_s": round(append_s, 2),
        "noop_ratio": round(migrate_s / noop_s, 1),
        "append_ratio": round(migrate_s / append_s, 1),
    }
    print(
        f"no-op sync: {noop_s:.3f} s  ({figures['noop_ratio']}x faster than the first migrate; goal >= 50x)"
    )
    print(f"sync after {appended} appended: {append_s:.2f} s  ({figures['append_ratio']}x faster; goal >= 20x)")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
