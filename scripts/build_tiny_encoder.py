#!/usr/bin/env python3
"""Build the tiny deterministic test encoder in fixtures/surrogate/tiny/ and its reference outputs.

A 2-layer BERT-style encoder (width 32, 2 heads, FFN 64, masked self-attention, LayerNorm, GELU)
written with the `onnx` helper API and seeded numpy weights, a ~100-word WordPiece tokenizer
built with `tokenizers`, a surrogate.json manifest, and reference.json: pooled vectors computed
here with Python onnxruntime, one input at a time (no padding), so the Rust tests check batching,
padding masks, pooling and normalisation against an independent implementation.

Dev dependencies (not needed to run the tests, only to rebuild the fixture):
    python3 -m venv /tmp/surr-venv && /tmp/surr-venv/bin/pip install onnx numpy onnxruntime==1.31.1 tokenizers
    /tmp/surr-venv/bin/python scripts/build_tiny_encoder.py
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "surrogate", "tiny")
H, HEADS, FFN, MAXPOS, LAYERS, MAX_LEN = 32, 2, 64, 64, 2, 24
DH = H // HEADS

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """the a an is was are be to of and in on for with as by at from this that it not
task data model text label sentence movie review good bad great terrible positive negative
question answer what who where when why how yes no true false entail contradict neutral
news sport business science world fast slow small large red blue green cat dog bird fish
run runs read write find search embed vector space query database store index
very really quite rather . , ! ? ' - play""".split()
PIECES = ["##s", "##ing", "##ed", "##ly", "##er"]
VOCAB = SPECIALS + WORDS + PIECES
assert len(VOCAB) == len(set(VOCAB)), "duplicate vocabulary entries"


def build_tokenizer():
    vocab = {t: i for i, t in enumerate(VOCAB)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None, clean_text=True, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return tok


def build_model(vocab_size):
    rng = np.random.default_rng(20240531)
    inits = []

    def w(name, *shape, scale=0.3):
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    def c(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    nodes = []

    def n(op, ins, outs, **kw):
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    def ln(x, prefix):
        g = c(prefix + ".g", (1.0 + 0.1 * rng.standard_normal(H)).astype(np.float32))
        b = c(prefix + ".b", (0.1 * rng.standard_normal(H)).astype(np.float32))
        return n("LayerNormalization", [x, g, b], [prefix + ".out"], axis=-1, epsilon=1e-5)

    def dense(x, prefix, din, dout):
        wn = w(prefix + ".w", din, dout, scale=1.0 / np.sqrt(din))
        bn = w(prefix + ".b", dout, scale=0.05)
        mm = n("MatMul", [x, wn], [prefix + ".mm"])
        return n("Add", [mm, bn], [prefix + ".out"])

    # embeddings
    word = n("Gather", [w("emb.word", vocab_size, H), "input_ids"], ["emb.word.out"], axis=0)
    c("c.one", np.array(1, dtype=np.int64))
    c("c.zero", np.array(0, dtype=np.int64))
    shape = n("Shape", ["input_ids"], ["ids.shape"])
    seqlen = n("Gather", [shape, "c.one"], ["ids.len"], axis=0)
    pos_ids = n("Range", ["c.zero", seqlen, "c.one"], ["pos.ids"])
    pos = n("Gather", [w("emb.pos", MAXPOS, H), pos_ids], ["emb.pos.out"], axis=0)
    typ = n("Gather", [w("emb.type", 2, H), "token_type_ids"], ["emb.type.out"], axis=0)
    s1 = n("Add", [word, pos], ["emb.s1"])
    s2 = n("Add", [s1, typ], ["emb.s2"])
    x = ln(s2, "emb.ln")

    # additive attention mask [B,1,1,L]: 0 for tokens, -1e4 for padding
    maskf = n("Cast", ["attention_mask"], ["mask.f"], to=TensorProto.FLOAT)
    c("c.axes12", np.array([1, 2], dtype=np.int64))
    mask4 = n("Unsqueeze", [maskf, "c.axes12"], ["mask.4"])
    c("c.onef", np.array(1.0, dtype=np.float32))
    c("c.neg", np.array(-1e4, dtype=np.float32))
    inv = n("Sub", ["c.onef", mask4], ["mask.inv"])
    bias = n("Mul", [inv, "c.neg"], ["mask.bias"])
    c("c.split", np.array([0, 0, HEADS, DH], dtype=np.int64))
    c("c.merge", np.array([0, 0, H], dtype=np.int64))
    c("c.scale", np.array(1.0 / np.sqrt(DH), dtype=np.float32))
    c("c.sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    c("c.half", np.array(0.5, dtype=np.float32))

    outs = []
    for l in range(LAYERS):
        p = f"l{l}"
        q = n("Reshape", [dense(x, p + ".q", H, H), "c.split"], [p + ".q4"])
        k = n("Reshape", [dense(x, p + ".k", H, H), "c.split"], [p + ".k4"])
        v = n("Reshape", [dense(x, p + ".v", H, H), "c.split"], [p + ".v4"])
        qt = n("Transpose", [q], [p + ".qt"], perm=[0, 2, 1, 3])
        kt = n("Transpose", [k], [p + ".kt"], perm=[0, 2, 3, 1])
        vt = n("Transpose", [v], [p + ".vt"], perm=[0, 2, 1, 3])
        sc = n("MatMul", [qt, kt], [p + ".scores"])
        sc = n("Mul", [sc, "c.scale"], [p + ".scaled"])
        sc = n("Add", [sc, bias], [p + ".masked"])
        pr = n("Softmax", [sc], [p + ".probs"], axis=-1)
        ctx = n("MatMul", [pr, vt], [p + ".ctx"])
        ctx = n("Transpose", [ctx], [p + ".ctxt"], perm=[0, 2, 1, 3])
        ctx = n("Reshape", [ctx, "c.merge"], [p + ".ctx3"])
        att = dense(ctx, p + ".o", H, H)
        x1 = ln(n("Add", [x, att], [p + ".res1"]), p + ".ln1")
        h = dense(x1, p + ".f1", H, FFN)
        # GELU(h) = 0.5 h (1 + erf(h / sqrt 2))
        e = n("Erf", [n("Div", [h, "c.sqrt2"], [p + ".hs"])], [p + ".erf"])
        g = n("Mul", [n("Mul", [h, "c.half"], [p + ".hh"]), n("Add", [e, "c.onef"], [p + ".e1"])], [p + ".gelu"])
        f = dense(g, p + ".f2", FFN, H)
        x = ln(n("Add", [x1, f], [p + ".res2"]), p + ".ln2")
        outs.append(x)

    nodes.append(helper.make_node("Identity", [outs[0]], ["hidden_1"]))
    nodes.append(helper.make_node("Identity", [outs[-1]], ["last_hidden_state"]))
    ins = [helper.make_tensor_value_info(nm, TensorProto.INT64, ["batch", "sequence"])
           for nm in ["input_ids", "attention_mask", "token_type_ids"]]
    outv = [helper.make_tensor_value_info(nm, TensorProto.FLOAT, ["batch", "sequence", H])
            for nm in ["hidden_1", "last_hidden_state"]]
    graph = helper.make_graph(nodes, "tiny_encoder", ins, outv, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="taskdb build_tiny_encoder.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


TEXTS = [
    "the movie was really good",
    "what is the answer ?",
    "",
    "A RED cat runs fast!",
    "embedding vectors in a database index",
    "unknownword zzz qqq the dog",
    "reading and writing text",
    "   ",
    "café naïve résumé data",
    "sport news : the blue team plays",
    " ".join(["very"] * 40) + " long text that is truncated",
    "is it true or false ? yes",
]
PAIRS = [
    ("the cat is small", "the dog is large"),
    ("what is the label ?", "positive"),
    ("", "an empty first text"),
    ("good review", ""),
    (" ".join(["data"] * 30), "a pair whose first text is long"),
]
CONFIGS = {
    "mean_last_norm": {"outputs": ["last_hidden_state"], "pooling": "mean", "normalize": True},
    "cls_last_raw": {"outputs": ["last_hidden_state"], "pooling": "cls", "normalize": False},
    "mean_concat_raw": {"outputs": ["hidden_1", "last_hidden_state"], "pooling": "mean", "normalize": False},
}


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = build_tokenizer()
    tok_path = os.path.join(OUT, "tokenizer.json")
    tok.save(tok_path)
    model = build_model(tok.get_vocab_size(with_added_tokens=True))
    model_path = os.path.join(OUT, "model.onnx")
    onnx.save(model, model_path)

    manifest = {
        "format": 1,
        "name": "tiny-test-encoder",
        "description": "2-layer width-32 random BERT-style encoder for tests (scripts/build_tiny_encoder.py)",
        "model": "model.onnx",
        "tokenizer": "tokenizer.json",
        "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids"},
        "outputs": ["last_hidden_state"],
        "pooling": "mean",
        "max_length": MAX_LEN,
        "dim": H,
        "normalize": True,
        "sha256": {"model.onnx": sha(model_path), "tokenizer.json": sha(tok_path)},
    }
    with open(os.path.join(OUT, "surrogate.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    # Reference: reload both files from disk; one input at a time, no padding.
    rt_tok = Tokenizer.from_file(tok_path)
    rt_tok.enable_truncation(max_length=MAX_LEN)
    rt_tok.no_padding()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])

    def encode(inp):
        e = rt_tok.encode(*inp) if isinstance(inp, tuple) else rt_tok.encode(inp)
        return e

    def run(enc, cfg):
        ids = np.array([enc.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                 "token_type_ids": np.array([enc.type_ids], dtype=np.int64)}
        res = dict(zip(["hidden_1", "last_hidden_state"], sess.run(["hidden_1", "last_hidden_state"], feeds)))
        parts = []
        for name in cfg["outputs"]:
            hsd = res[name][0].astype(np.float64)
            parts.append(hsd[0] if cfg["pooling"] == "cls" else hsd.mean(axis=0))
        v = np.concatenate(parts)
        if cfg["normalize"]:
            v = v / max(np.linalg.norm(v), 1e-12)
        return [float(np.float32(x)) for x in v]

    ref = {"max_length": MAX_LEN, "texts": [], "pairs": [], "configs": CONFIGS}
    for t in TEXTS:
        e = encode(t)
        ref["texts"].append({"text": t, "tokens": len(e.ids), "truncated": len(e.overflowing) > 0,
                             "vectors": {k: run(e, cfg) for k, cfg in CONFIGS.items()}})
    for a, b in PAIRS:
        e = encode((a, b))
        ref["pairs"].append({"text": a, "text_pair": b, "tokens": len(e.ids), "truncated": len(e.overflowing) > 0,
                             "vectors": {k: run(e, cfg) for k, cfg in CONFIGS.items()}})
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {OUT}: vocab {len(VOCAB)}, {total} bytes; onnx {onnx.__version__}, onnxruntime {ort.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
