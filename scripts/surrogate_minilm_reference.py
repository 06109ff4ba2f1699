#!/usr/bin/env python3
"""Build fixtures/surrogate/minilm_parity/: 200 real sentences and reference vectors of the default
surrogate (all-MiniLM-L6-v2 int8, as provisioned by scripts/provision.sh), computed with Python
onnxruntime + tokenizers (truncation 256, dynamic padding, mean pooling over the mask, L2 norm).

    scripts/provision.sh
    /tmp/surr-venv/bin/python scripts/surrogate_minilm_reference.py [--pool ../shared/data/probe_pool.jsonl]

Sentences come only from sources with permissive terms (see the README written next to them).
reference.f32: 200 x 384 little-endian float32, row i = line i of sentences.jsonl.
"""
import argparse
import hashlib
import json
import os
import random

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "fixtures", "surrogate", "minilm_parity")
# source in probe_pool.jsonl -> (how many, licence note)
SOURCES = {
    "state_union speeches": (60, "US State of the Union addresses (NLTK state_union): US government works, public domain"),
    "inaugural addresses": (50, "US presidential inaugural addresses (NLTK inaugural): public domain"),
    "wikipedia sentences (QNLI test)": (50, "Wikipedia sentences via QNLI/SQuAD: CC BY-SA (Wikipedia contributors)"),
    "multi-genre sentences (MNLI dev premises)": (40, "MultiNLI premises: OANC (free) and CC BY-SA 3.0 genres"),
}


def home():
    h = os.environ.get("TASKDB_HOME")
    if h:
        return h
    x = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(x, "taskdb")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", default=os.path.join(ROOT, "..", "shared", "data", "probe_pool.jsonl"))
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.pool, encoding="utf-8")]
    rng = random.Random(7)
    picked = []
    for src, (k, _) in SOURCES.items():
        cand = [r for r in rows if r["source"] == src]
        picked += rng.sample(cand, k)
    rng.shuffle(picked)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "sentences.jsonl"), "w", encoding="utf-8") as f:
        for r in picked:
            f.write(json.dumps({"id": r["id"], "text": r["text"], "source": r["source"]}, ensure_ascii=False) + "\n")

    sdir = os.path.join(home(), "surrogates", "all-MiniLM-L6-v2")
    man = json.load(open(os.path.join(sdir, "surrogate.json")))
    tok = Tokenizer.from_file(os.path.join(sdir, "tokenizer.json"))
    tok.enable_truncation(max_length=man["max_length"])
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(os.path.join(sdir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    texts = [r["text"] for r in picked]
    out = []
    truncated = 0
    for i in range(0, len(texts), 16):
        encs = tok.encode_batch(texts[i:i + 16])
        truncated += sum(1 for e in encs if e.overflowing)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        typ = np.array([e.type_ids for e in encs], dtype=np.int64)
        (h,) = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": typ})
        m = mask[:, :, None].astype(np.float32)
        v = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        v = v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
        out.append(v.astype("<f4"))
    ref = np.concatenate(out)
    ref.tofile(os.path.join(OUT, "reference.f32"))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# all-MiniLM-L6-v2 (int8) parity fixture\n\n")
        f.write("`sentences.jsonl`: 200 English sentences taken from `probe_pool.jsonl` of the project's shared data "
                "(seeded sample), only from sources with permissive terms:\n\n")
        for src, (k, lic) in SOURCES.items():
            f.write(f"- {k} × `{src}` — {lic}\n")
        f.write("\n`reference.f32`: 200 × 384 little-endian float32, row i = line i: pooled vectors from Python "
                f"onnxruntime {ort.__version__} + tokenizers (truncation {man['max_length']}, batches of 16 padded to the "
                "longest, mean over the attention mask, L2-normalised) of the provisioned model "
                f"(model.onnx sha256 {man['sha256']['model.onnx']}). {truncated} sentence(s) exceed the max length.\n\n"
                "Rebuild: `scripts/provision.sh && python scripts/surrogate_minilm_reference.py` "
                "(needs numpy, onnxruntime==1.31.1, tokenizers).\n")
    print("wrote", OUT, ref.shape, "sha256", hashlib.sha256(ref.tobytes()).hexdigest()[:16], "truncated", truncated)


if __name__ == "__main__":
    main()
