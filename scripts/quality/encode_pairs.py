#!/usr/bin/env python3
"""Encode the two sides of every pair dataset separately (for pair-feature experiments).

Writes <cache>/feat/<family>__<name>.u.npy and .v.npy (text and text_pair, each encoded alone,
same surrogate settings as encode.py).
"""
import argparse, glob, json, os, sys, time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encode import Surrogate, ROOT


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "quality"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    fd = os.path.join(a.cache, "feat")
    sur = Surrogate(a.threads)
    for f in sorted(glob.glob(os.path.join(a.data, "datasets", "*", "*.jsonl"))):
        rows = [json.loads(l) for l in open(f)]
        if "text_pair" not in rows[0]:
            continue
        key = os.path.basename(os.path.dirname(f)) + "__" + os.path.basename(f)[:-6]
        for side, col in (("u", "text"), ("v", "text_pair")):
            dst = os.path.join(fd, f"{key}.{side}.npy")
            if os.path.exists(dst):
                continue
            t = time.time()
            X = sur.encode([r[col] for r in rows])
            np.save(dst + ".tmp.npy", X); os.replace(dst + ".tmp.npy", dst)
            print(f"{key}.{side}: {X.shape} {time.time()-t:.1f}s", flush=True)


if __name__ == "__main__":
    main()
