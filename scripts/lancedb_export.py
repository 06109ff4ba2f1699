#!/usr/bin/env python3
"""From taskdb to LanceDB: export a database as Parquet, load each space into LanceDB, search
it, and compare LanceDB's neighbours with taskdb's own knn (schema/EXPORT.md, docs/EXPORT.md).

    python scripts/lancedb_export.py --taskdb target/release/taskdb DB [DB...] \
        [--synthetic N] [--queries Q] [-k K]

Needs `pip install lancedb==0.40.0 pyarrow==26.0.1` (not part of the test suite). For each
space of each database: Q entries (seeded), LanceDB's flat cosine search over `index_vector`
(latest versions only, the query itself left out, as taskdb's knn does) against `taskdb knn
NAME -k K --method M --json`; prints overlap@K and how often the two lists are identical.
`--synthetic N` adds a database of N random 384-d entries imported with `taskdb import`.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import lancedb
import pyarrow.parquet as pq


def taskdb(bin_, db, *args):
    out = subprocess.run([bin_, "--db", db, *args], check=True, capture_output=True, text=True)
    return out.stdout


def synthetic(bin_, n, d):
    rng = random.Random(7)
    centres = [[rng.gauss(0, 1) for _ in range(384)] for _ in range(50)]
    src = os.path.join(d, "synthetic.jsonl")
    with open(src, "w") as f:
        for i in range(n):
            c = centres[i % len(centres)]
            v = [x + rng.gauss(0, 0.5) for x in c]
            f.write(json.dumps({"name": "s%06d" % i, "kind": "dataset", "space": "synthetic-384",
                                "vector": v}) + "\n")
    db = os.path.join(d, "synthetic.taskdb")
    taskdb(bin_, db, "import", src, "-q")
    return db


def compare(bin_, db, d, queries, k):
    out_dir = os.path.join(d, os.path.basename(db) + ".parquet")
    taskdb(bin_, db, "export", "--format", "parquet", out_dir)
    ldb = lancedb.connect(os.path.join(d, "lance"))
    rows = []
    for fname in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, fname)
        table = pq.read_table(path)
        meta = json.loads(pq.read_metadata(path).metadata[b"taskdb.space"])
        # taskdb's knn answers with latest versions only.
        latest = {}
        for name, version in zip(table.column("name").to_pylist(), table.column("version").to_pylist()):
            latest[name] = max(version, latest.get(name, 0))
        keep = [latest[n] == v for n, v in zip(table.column("name").to_pylist(),
                                               table.column("version").to_pylist())]
        table = table.filter(keep)
        t = ldb.create_table(fname.replace(".", "_"), data=table, mode="overwrite")
        names = table.column("name").to_pylist()
        method = table.column("method")[0].as_py()
        sample = random.Random(1).sample(range(len(names)), min(queries, len(names)))
        kk = min(k, len(names) - 1)
        overlap, identical = 0.0, 0
        for i in sample:
            q = table.column("index_vector")[i].as_py()
            got = (t.search(q, vector_column_name="index_vector").metric("cosine")
                   .limit(kk + 1).to_list())
            lance = [r["name"] for r in got if r["name"] != names[i]][:kk]
            hits = json.loads(taskdb(bin_, db, "knn", names[i], "-k", str(kk), "--method", method,
                                     "--json"))
            ours = [h["name"] for h in (hits["hits"] if isinstance(hits, dict) else hits)]
            overlap += len(set(lance) & set(ours)) / max(kk, 1)
            identical += lance == ours
        kind = meta["embedding"]["type"]
        rows.append((os.path.basename(db), meta["name"], kind, len(names), len(sample), kk,
                     overlap / len(sample), identical / len(sample)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dbs", nargs="*")
    ap.add_argument("--taskdb", default="target/release/taskdb")
    ap.add_argument("--synthetic", type=int, default=0)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("-k", type=int, default=10)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        dbs = list(a.dbs)
        if a.synthetic:
            dbs.append(synthetic(a.taskdb, a.synthetic, d))
        print("| database | space | embedding | entries | queries | k | overlap@k | identical lists |")
        print("|---|---|---|---|---|---|---|---|")
        for db in dbs:
            for r in compare(a.taskdb, db, d, a.queries, a.k):
                print("| %s | %s | %s | %d | %d | %d | %.3f | %.2f |" % r)
                sys.stdout.flush()


if __name__ == "__main__":
    main()
