#!/usr/bin/env python3
"""Build taskdb's default probe set U from ../shared/data/probe_pool.jsonl.

Deterministic: same pool + same seed -> byte-identical output (gzip mtime 0, no name).

Selection:
  1. drop texts shorter than MIN_CHARS characters or MIN_WORDS words, or longer than
     MAX_CHARS characters (very short texts carry little signal, very long ones cost
     surrogate time and get truncated anyway);
  2. drop duplicates (case- and whitespace-insensitive);
  3. stratify by source: each source gets round(TARGET * n_source / n_eligible) texts
     (largest-remainder rounding so the total is exactly TARGET), sampled uniformly
     without replacement with random.Random(SEED);
  4. keep the pool's order (already shuffled with seed 2024) and renumber ids 0..N-1.

Writes:
  crates/taskdb-sources/data/probe_default.jsonl.gz   {"id": N, "text": "..."} per line
  crates/taskdb-sources/data/probe_default_sources.tsv  source, style, count (see docs/PROBE-SET.md)

Usage: python3 scripts/build_probe_set.py [POOL] [--target 3000] [--seed 7]
"""
import argparse
import collections
import gzip
import io
import json
import os
import random
import sys

MIN_CHARS = 20
MIN_WORDS = 4
MAX_CHARS = 400

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pool", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "probe_pool.jsonl"))
    ap.add_argument("--target", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=os.path.join(ROOT, "crates", "taskdb-sources", "data", "probe_default.jsonl.gz"))
    ap.add_argument("--counts", default=os.path.join(ROOT, "crates", "taskdb-sources", "data", "probe_default_sources.tsv"))
    args = ap.parse_args()

    rows = []
    seen = set()
    dropped = collections.Counter()
    with open(args.pool, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            t = " ".join(d["text"].split())
            if len(t) < MIN_CHARS or len(t.split()) < MIN_WORDS:
                dropped["too short"] += 1
                continue
            if len(t) > MAX_CHARS:
                dropped["too long"] += 1
                continue
            key = t.lower()
            if key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
            rows.append((len(rows), d["source"], d["style"], t))

    by_src = collections.defaultdict(list)
    for r in rows:
        by_src[r[1]].append(r)
    n = len(rows)
    if args.target > n:
        sys.exit(f"target {args.target} > eligible texts {n}")
    quotas = {}
    rema = []
    for s, rs in by_src.items():
        exact = args.target * len(rs) / n
        quotas[s] = int(exact)
        rema.append((-(exact - int(exact)), s))
    short = args.target - sum(quotas.values())
    for _, s in sorted(rema)[:short]:
        quotas[s] += 1

    rng = random.Random(args.seed)
    chosen = []
    for s in sorted(by_src):
        chosen.extend(rng.sample(by_src[s], quotas[s]))
    chosen.sort(key=lambda r: r[0])

    buf = io.StringIO()
    for i, r in enumerate(chosen):
        buf.write(json.dumps({"id": i, "text": r[3]}, ensure_ascii=False) + "\n")
    raw = buf.getvalue().encode("utf-8")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as g:
            g.write(raw)

    cnt = collections.Counter((r[1], r[2]) for r in chosen)
    with open(args.counts, "w", encoding="utf-8") as f:
        f.write("source\tstyle\tcount\n")
        for (s, st), c in sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0])):
            f.write(f"{s}\t{st}\t{c}\n")
    print(f"eligible {n}, dropped {dict(dropped)}, wrote {len(chosen)} texts, "
          f"{len(raw)} bytes raw, {os.path.getsize(args.out)} bytes gzip -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
