#!/usr/bin/env python3
"""Features of at most CAP rows per shared dataset, for comparing surrogates like for like
(issue 8's second-surrogate experiment, docs/QUALITY-experiment.md).

  encode_capped.py --surrogate minilm --cap 500 --out .cache/quality/cap500-minilm
  encode_capped.py --surrogate mpnet  --cap 500 --out .cache/quality/cap500-mpnet \
      --model .cache/mpnet-onnx/model-fp32.onnx --tokenizer .cache/mpnet-src/all-mpnet-base-v2/tokenizer.json

Rows: the first CAP of a permutation seeded by the dataset's key (crc32), kept in file order,
the same for every surrogate. minilm slices encode.py's cached full features (<cache>/feat, so
its figures are exactly the default surrogate's on those rows); any other surrogate encodes the
rows (joint pairs, and each side alone for pair datasets) and taskdb's U (probe_default, all
3,000). Writes OUT/feat/* in encode.py's layout and links OUT/clfU to <cache>/clfU (the
classifiers label texts: their labels do not depend on the surrogate). heldout.py --cache OUT
then scores it.
"""
import argparse, glob, gzip, json, os, sys, time, zlib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from encode import OnnxSurrogate, ROOT  # noqa: E402


def rows_kept(key, n, cap):
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return np.sort(rng.permutation(n)[:cap])


def save(path, X):
    np.save(path + ".tmp.npy", X)
    os.replace(path + ".tmp.npy", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "quality"))
    ap.add_argument("--surrogate", required=True)
    ap.add_argument("--cap", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model")
    ap.add_argument("--tokenizer")
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    full = os.path.join(a.cache, "feat")
    fd = os.path.join(a.out, "feat")
    os.makedirs(fd, exist_ok=True)
    clf = os.path.join(a.out, "clfU")
    if not os.path.exists(clf):
        os.symlink(os.path.abspath(os.path.join(a.cache, "clfU")), clf)
    sur = None if a.surrogate == "minilm" else OnnxSurrogate(a.model, a.tokenizer, a.max_length, a.threads)
    u_dst = os.path.join(fd, "probe_default.npy")
    if not os.path.exists(u_dst):
        if sur is None:
            save(u_dst, np.load(os.path.join(full, "probe_default.npy")))
        else:
            path = os.path.join(ROOT, "crates", "taskdb-sources", "data", "probe_default.jsonl.gz")
            save(u_dst, sur.encode([json.loads(l)["text"] for l in gzip.open(path, "rt")]))
    t0 = time.time()
    for f in sorted(glob.glob(os.path.join(a.data, "datasets", "*", "*.jsonl"))):
        key = os.path.basename(os.path.dirname(f)) + "__" + os.path.basename(f)[:-6]
        dst = os.path.join(fd, key + ".npy")
        if os.path.exists(dst):
            continue
        rows = [json.loads(l) for l in open(f)]
        keep = rows_kept(key, len(rows), a.cap)
        rows = [rows[i] for i in keep]
        pair = "text_pair" in rows[0]
        t = time.time()
        if sur is None:
            if pair:
                for side in ("u", "v"):
                    save(os.path.join(fd, f"{key}.{side}.npy"), np.load(os.path.join(full, f"{key}.{side}.npy"))[keep])
            X = np.load(os.path.join(full, key + ".npy"))[keep]
        else:
            texts = [r["text"] for r in rows]
            if pair:
                save(os.path.join(fd, f"{key}.u.npy"), sur.encode(texts))
                save(os.path.join(fd, f"{key}.v.npy"), sur.encode([r["text_pair"] for r in rows]))
            X = sur.encode(texts, [r["text_pair"] for r in rows] if pair else None)
        json.dump({"labels": [r["label"] for r in rows], "pair": pair},
                  open(os.path.join(fd, key + ".labels.json"), "w"))
        save(dst, X)
        print(f"{key}: {X.shape} {time.time() - t:.1f}s", flush=True)
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
