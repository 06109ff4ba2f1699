#!/usr/bin/env python3
"""The peers of `cargo bench --bench knn -- dense` (issue 14): hnswlib, usearch and, when
installed, faiss's IndexHNSWFlat, on the vectors the bench wrote, with the same parameters
(M = 16, ef_construction = 100, inner product on L2-normalised vectors, one thread for
building and searching), and an ef sweep. Prints one line per library and ef:

  RESULT bench=dense-LIB n= dim= ef= recall10= qps= p50_ms= p99_ms= build_s= open_s= rss_mib= disk_mib=

recall10 against the bench's exact top 10; qps = queries / total wall time of one-at-a-time
searches (one query per call, as taskdb's `nearest`); open_s = loading the saved index; rss
= resident-set growth of building the index; disk = the saved index file.

Venv (pinned, verified 2026-12-06 on Python 3.11): `python3 -m venv .cache/bench-venv &&
.cache/bench-venv/bin/pip install numpy==2.4.6 hnswlib==0.8.0 usearch==2.26.6
faiss-cpu==1.15.1` (hnswlib builds from its sdist, about a minute).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def sweep(lib, n, dim, efs, search, set_ef, queries, truth, build_s, open_s, rss_b, disk_b):
    for ef in efs:
        set_ef(ef)
        for q in queries[:20]:
            search(q)
        lat = []
        found = 0
        t_all = time.perf_counter()
        for q, want in zip(queries, truth):
            t = time.perf_counter()
            ids = search(q)
            lat.append((time.perf_counter() - t) * 1e3)
            found += len(set(int(i) for i in ids) & set(int(w) for w in want))
        total = time.perf_counter() - t_all
        lat.sort()
        p = lambda x: lat[min(len(lat) - 1, round((len(lat) - 1) * x))]
        print(f"RESULT bench=dense-{lib} n={n} dim={dim} ef={ef} recall10={found / (10 * len(queries)):.4f} "
              f"qps={len(queries) / total:.0f} p50_ms={p(0.5):.3f} p99_ms={p(0.99):.3f} build_s={build_s:.1f} "
              f"open_s={open_s:.2f} rss_mib={rss_b / 1048576:.0f} disk_mib={disk_b / 1048576:.0f}", flush=True)


def run_hnswlib(x, qs, truth, efs, tmp):
    import hnswlib
    r0 = rss()
    t = time.perf_counter()
    idx = hnswlib.Index(space="ip", dim=x.shape[1])
    idx.init_index(max_elements=x.shape[0], M=16, ef_construction=100, random_seed=100)
    idx.set_num_threads(1)
    idx.add_items(x, np.arange(x.shape[0]), num_threads=1)
    build_s = time.perf_counter() - t
    rss_b = rss() - r0
    path = os.path.join(tmp, "hnswlib.bin")
    idx.save_index(path)
    del idx
    t = time.perf_counter()
    idx = hnswlib.Index(space="ip", dim=x.shape[1])
    idx.load_index(path, max_elements=x.shape[0])
    open_s = time.perf_counter() - t
    idx.set_num_threads(1)
    sweep("hnswlib", x.shape[0], x.shape[1], efs, lambda q: idx.knn_query(q, k=10, num_threads=1)[0][0],
          idx.set_ef, qs, truth, build_s, open_s, rss_b, os.path.getsize(path))
    os.remove(path)


def run_usearch(x, qs, truth, efs, tmp):
    from usearch.index import Index
    r0 = rss()
    t = time.perf_counter()
    idx = Index(ndim=x.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=100)
    idx.add(np.arange(x.shape[0]), x, threads=1)
    build_s = time.perf_counter() - t
    rss_b = rss() - r0
    path = os.path.join(tmp, "usearch.bin")
    idx.save(path)
    del idx
    t = time.perf_counter()
    idx = Index.restore(path)
    open_s = time.perf_counter() - t

    def set_ef(ef):
        idx.expansion_search = ef
    sweep("usearch", x.shape[0], x.shape[1], efs, lambda q: idx.search(q, 10, threads=1).keys,
          set_ef, qs, truth, build_s, open_s, rss_b, os.path.getsize(path))
    os.remove(path)


def run_faiss(x, qs, truth, efs, tmp):
    import faiss
    faiss.omp_set_num_threads(1)
    r0 = rss()
    t = time.perf_counter()
    idx = faiss.IndexHNSWFlat(x.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = 100
    idx.add(x)
    build_s = time.perf_counter() - t
    rss_b = rss() - r0
    path = os.path.join(tmp, "faiss.bin")
    faiss.write_index(idx, path)
    del idx
    t = time.perf_counter()
    idx = faiss.read_index(path)
    open_s = time.perf_counter() - t

    def set_ef(ef):
        idx.hnsw.efSearch = ef
    sweep("faiss", x.shape[0], x.shape[1], efs, lambda q: idx.search(q.reshape(1, -1), 10)[1][0],
          set_ef, qs, truth, build_s, open_s, rss_b, os.path.getsize(path))
    os.remove(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--ef", default="16,24,32,48,64,96,128,192")
    ap.add_argument("--libs", default="hnswlib,usearch,faiss")
    a = ap.parse_args()
    x = np.fromfile(a.data, dtype="<f4").reshape(-1, a.dim)
    qs = np.fromfile(a.queries, dtype="<f4").reshape(-1, a.dim)
    truth = np.fromfile(a.truth, dtype="<u4").reshape(-1, 10)
    efs = [int(e) for e in a.ef.split(",")]
    runners = {"hnswlib": run_hnswlib, "usearch": run_usearch, "faiss": run_faiss}
    with tempfile.TemporaryDirectory() as tmp:
        for lib in a.libs.split(","):
            try:
                __import__(lib)
            except ImportError:
                print(f"# {lib} is not installed: skipped", file=sys.stderr)
                continue
            print(f"# building {lib}", file=sys.stderr, flush=True)
            runners[lib](x, qs, truth, efs, tmp)


if __name__ == "__main__":
    main()
