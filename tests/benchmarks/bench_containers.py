"""One run's seqs container written Aim's way and the bulk writer's way, alternated in one process.

    python tests/benchmarks/bench_containers.py [--runs 200] [--length 200]

`aim_storage.write_container` opens the container as Aim does (`RocksContainer`: its `progress`
flag, info LOG and write-ahead log); `aim_storage.create_container` writes the same data without
them. Both get the very same serialized batch (`--length` points in each of 4 series, +3 results),
built before the clock starts, and take turns run by run so the machine's load falls on both.
Prints wall and process CPU per container: the files RocksDB creates are most of a small run's
cost on some filesystems, and the write-ahead log most of the difference for a large one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_writers import specs  # noqa: E402

from etl.writers import aim_storage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--length", type=int, default=200, help="points per history series")
    args = parser.parse_args()
    batches = [aim_storage.seqs_batch(s.run_hash, s.series, 0.0) for s in specs(args.runs, args.length)]
    ways = {
        "Aim's way (write_container)": aim_storage.write_container,
        "create_container": aim_storage.create_container,
    }
    wall = dict.fromkeys(ways, 0.0)
    cpu = dict.fromkeys(ways, 0.0)
    with tempfile.TemporaryDirectory(prefix="aim-etl-bench-") as tmp:
        for i, batch in enumerate(batches):
            for k, name in enumerate(list(ways) if i % 2 else list(ways)[::-1]):
                path = Path(tmp) / str(k) / "seqs" / "chunks" / f"{i:06d}"
                path.parent.mkdir(parents=True, exist_ok=True)
                started, started_cpu = time.perf_counter(), time.process_time()
                ways[name](path, batch)
                wall[name] += time.perf_counter() - started
                cpu[name] += time.process_time() - started_cpu
    size = len(batches[0]) / 1e6
    print(f"{args.runs} runs, {4 * args.length + 3} points each, a {size:.2f} MB batch")
    for name in ways:
        print(f"  {name:28} {wall[name] / args.runs * 1000:8.1f} ms wall {cpu[name] / args.runs * 1000:8.1f} ms CPU")


if __name__ == "__main__":
    main()
