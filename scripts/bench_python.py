#!/usr/bin/env python3
"""Python call overhead: `db.knn` from Python against `TaskDb::nearest` from Rust, on the same
database, in the same run (alternating), and `import_jsonl` throughput.

    python scripts/bench_python.py RUST_BENCH_BINARY [N] [DIM]

RUST_BENCH_BINARY is the built `benches/knn_call.rs` (cargo bench --bench knn_call --no-run
prints its path). Run it with a venv where the package was built with `maturin develop
--release` (the Rust side is a release build too). Prints one markdown table row per round.
"""
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import taskdb


def main():
    rust = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    dim = int(sys.argv[3]) if len(sys.argv) > 3 else 384
    k, rounds, queries = 10, 5, 1000
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.jsonl")
        with open(src, "w") as f:
            for i in range(n):
                v = [rng.gauss(0, 1) for _ in range(dim)]
                f.write(json.dumps({"name": "e%06d" % i, "kind": "dataset", "space": "s",
                                    "vector": v}) + "\n")
        path = os.path.join(d, "b.taskdb")
        t = time.perf_counter()
        with taskdb.open(path) as db:
            r = db.import_jsonl(src)
        took = time.perf_counter() - t
        print("import_jsonl from Python: %d entries of %d-d in %.2f s (%.0f entries/s, graph "
              "included)" % (r["imported"], dim, took, r["imported"] / took))
        names = ["e%06d" % rng.randrange(n) for _ in range(queries)]
        nf = os.path.join(d, "names.txt")
        with open(nf, "w") as f:
            f.write("\n".join(names))
        print("| round | Rust nearest p50 µs | Python knn p50 µs | Python − Rust µs |")
        print("|---|---|---|---|")
        env = dict(os.environ, TASKDB_BENCH_DB=path, TASKDB_BENCH_NAMES=nf,
                   TASKDB_BENCH_K=str(k), TASKDB_BENCH_ROUNDS="1")
        for rnd in range(rounds):
            rust_us = float(subprocess.check_output([rust, "--bench"], env=env, text=True).strip())
            with taskdb.open(path, read_only=True) as db:
                ts = []
                for q in names:
                    s = time.perf_counter()
                    hits = db.knn(q, k)
                    ts.append((time.perf_counter() - s) * 1e6)
                    assert len(hits) == k
            py_us = statistics.median(ts)
            print("| %d | %.1f | %.1f | %.1f |" % (rnd + 1, rust_us, py_us, py_us - rust_us))


if __name__ == "__main__":
    main()
