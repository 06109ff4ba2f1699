#!/usr/bin/env python3
"""Build the tiny deterministic ONNX text classifier in fixtures/models/tiny_classifier/.

The model is the tiny BERT-style encoder of scripts/build_tiny_encoder.py (same graph builder,
same seed; 2 layers, width 32, masked attention) over a vocabulary that covers the fixture
datasets' words (fixtures/README.md), plus a classification head written by hand:

    logits[b] = 2 * (-lex[b], +lex[b])          # (negative, positive)
                + W . masked_mean(last_hidden_state[b]) + bias     # W: 0.05-scale seeded noise
    lex[b]    = sum over real tokens (attention_mask = 1) of +1 (positive word) / -1 (negative word)

so the decision follows sentiment_a's rule (positive iff more positive than negative words),
while the encoder term makes every logit depend on the attention mask, padding and token types
(batching bugs show up as parity failures). Output `logits` [batch, 2], classes
(negative, positive) as in labels.txt.

Writes model.onnx, tokenizer.json (truncation to 64 tokens, the position table's size),
labels.txt, reference.json (Python onnxruntime + tokenizers, one input at a time, unpadded: logits
and softmax probabilities), and README.md with the accuracy on fixtures/datasets/sentiment_a.jsonl.

Dev dependencies (only to rebuild the fixture):
    python3 -m venv /tmp/surr-venv && /tmp/surr-venv/bin/pip install onnx numpy onnxruntime==1.31.1 tokenizers
    /tmp/surr-venv/bin/python scripts/build_tiny_classifier.py
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_tiny_encoder as enc  # noqa: E402  (reuse the encoder graph and tokenizer builders)

ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "fixtures", "models", "tiny_classifier")
DATASET = os.path.join(ROOT, "fixtures", "datasets", "sentiment_a.jsonl")
MAX_LEN = enc.MAXPOS  # the position-embedding table's size

POS = ["good", "great", "happy", "love", "nice", "fun"]
NEG = ["bad", "sad", "hate", "awful", "poor", "boring"]
TOPIC = ["game", "team", "ball", "play", "win", "match", "bread", "apple", "soup", "eat", "cake",
         "dinner", "rain", "sun", "wind", "snow", "cold", "hot"]
FILL = ["the", "a", "is", "was", "we", "it", "this", "that", "very", "so", "and", "today", "i",
        "you", "they", "with", "at", "day", "really", "our", "time", "my", "plain", "text", "he",
        "said", "extra", "not", "movie", "review", ".", ",", "!", "?", "'", "-"]
PIECES = ["##s", "##ing", "##ed", "##ly", "##er"]
VOCAB = enc.SPECIALS + POS + NEG + TOPIC + FILL + PIECES
assert len(VOCAB) == len(set(VOCAB)), "duplicate vocabulary entries"
LABELS = ["negative", "positive"]
LEX_SCALE = 2.0
ENC_SCALE = 0.05


def build_tokenizer():
    enc.VOCAB = VOCAB  # build_tiny_encoder.build_tokenizer reads its module-level VOCAB
    tok = enc.build_tokenizer()
    tok.enable_truncation(max_length=MAX_LEN)
    return tok


def build_model(vocab_size):
    model = enc.build_model(vocab_size)
    g = model.graph
    rng = np.random.default_rng(20240607)

    def c(name, arr):
        g.initializer.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def n(op, ins, outs, **kw):
        g.node.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    lex = np.zeros((vocab_size, 1), dtype=np.float32)
    for w in POS:
        lex[VOCAB.index(w), 0] = 1.0
    for w in NEG:
        lex[VOCAB.index(w), 0] = -1.0
    c("head.lex", lex)
    c("head.w", (rng.standard_normal((enc.H, 2)) * ENC_SCALE).astype(np.float32))
    c("head.b", np.array([0.03, -0.03], dtype=np.float32))
    c("head.sign", np.array([-LEX_SCALE, LEX_SCALE], dtype=np.float32))
    c("head.ax1", np.array([1], dtype=np.int64))
    c("head.ax2", np.array([2], dtype=np.int64))

    maskf = n("Cast", ["attention_mask"], ["head.mask"], to=TensorProto.FLOAT)
    mask3 = n("Unsqueeze", [maskf, "head.ax2"], ["head.mask3"])  # [B, L, 1]
    # masked mean of the last hidden state
    hm = n("Mul", ["last_hidden_state", mask3], ["head.hm"])
    hsum = n("ReduceSum", [hm, "head.ax1"], ["head.hsum"], keepdims=0)  # [B, H]
    cnt = n("ReduceSum", [maskf, "head.ax1"], ["head.cnt"], keepdims=1)  # [B, 1]
    pooled = n("Div", [hsum, cnt], ["head.pooled"])
    enc_logits = n("Add", [n("MatMul", [pooled, "head.w"], ["head.mm"]), "head.b"], ["head.enc"])
    # lexicon score over real tokens
    lx = n("Gather", ["head.lex", "input_ids"], ["head.lx"], axis=0)  # [B, L, 1]
    lxm = n("Mul", [lx, mask3], ["head.lxm"])
    lsum = n("ReduceSum", [lxm, "head.ax1"], ["head.lsum"], keepdims=0)  # [B, 1]
    lex_logits = n("Mul", [lsum, "head.sign"], ["head.lexl"])  # [B, 2]
    n("Add", [lex_logits, enc_logits], ["logits"])

    del g.output[:]
    g.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2]))
    g.name = "tiny_classifier"
    model.producer_name = "taskdb build_tiny_classifier.py"
    # drop the encoder's now-unused Identity outputs (hidden_1)
    keep = [nd for nd in g.node if not (nd.op_type == "Identity" and nd.output[0] == "hidden_1")]
    del g.node[:]
    g.node.extend(keep)
    onnx.checker.check_model(model, full_check=True)
    return model


TEXTS = [
    "the movie was really good",
    "bad bad awful day",
    "good great happy but sad",
    "i love the soup and hate the rain",
    "",
    "   ",
    "nice fun time with our team , not boring",
    "UNKNOWNWORD zzz love qqq",
    "PLAY Ball! Win games today",
    " ".join(["poor"] * 70) + " happy",  # truncated at 64 tokens
]
PAIRS = [
    ("good movie", "bad review"),
    ("we hate the cold", "love the sun"),
]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = build_tokenizer()
    tok_path = os.path.join(OUT, "tokenizer.json")
    tok.save(tok_path)
    model = build_model(tok.get_vocab_size(with_added_tokens=True))
    model_path = os.path.join(OUT, "model.onnx")
    onnx.save(model, model_path)
    with open(os.path.join(OUT, "labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")

    rt_tok = Tokenizer.from_file(tok_path)
    rt_tok.no_padding()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])

    def run(inp):
        e = rt_tok.encode(*inp) if isinstance(inp, tuple) else rt_tok.encode(inp)
        feeds = {"input_ids": np.array([e.ids], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask], dtype=np.int64),
                 "token_type_ids": np.array([e.type_ids], dtype=np.int64)}
        logits = sess.run(["logits"], feeds)[0][0]
        return e, [float(x) for x in logits], [float(np.float32(p)) for p in softmax(logits)]

    ref = {"labels": LABELS, "max_length": MAX_LEN, "texts": [], "pairs": []}
    for t in TEXTS:
        e, lg, pr = run(t)
        ref["texts"].append({"text": t, "tokens": len(e.ids), "truncated": len(e.overflowing) > 0,
                             "logits": lg, "probabilities": pr})
    for a, b in PAIRS:
        e, lg, pr = run((a, b))
        ref["pairs"].append({"text": a, "text_pair": b, "tokens": len(e.ids),
                             "truncated": len(e.overflowing) > 0, "logits": lg, "probabilities": pr})
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")

    rows = [json.loads(line) for line in open(DATASET) if line.strip()]
    correct = sum(LABELS[int(np.argmax(run(r["text"])[1]))] == r["label"] for r in rows)
    acc = correct / len(rows)

    readme = f"""# Tiny ONNX text classifier (test fixture)

Built by `scripts/build_tiny_classifier.py` (seeded; needs `onnx numpy onnxruntime==1.31.1
tokenizers`). Synthetic weights, no third-party data.

| file | what |
|---|---|
| `model.onnx` | inputs `input_ids`, `attention_mask`, `token_type_ids` (int64 `[batch, sequence]`); output `logits` (float32 `[batch, 2]`), classes in `labels.txt` order |
| `tokenizer.json` | {len(VOCAB)}-token WordPiece tokenizer covering the fixture datasets' words; truncation to {MAX_LEN} tokens (the position table's size) |
| `labels.txt` | `{LABELS[0]}`, `{LABELS[1]}` (one a line) |
| `reference.json` | Python onnxruntime {ort.__version__} + tokenizers outputs (logits and softmax probabilities), one input at a time without padding: {len(TEXTS)} texts (empty, whitespace-only, unknown words, one truncated) and {len(PAIRS)} pairs |

The model is the tiny 2-layer encoder of `scripts/build_tiny_encoder.py` plus a hand-built head:
`logits = {LEX_SCALE} * (-s, s) + W · masked_mean(last_hidden_state) + b`, where `s` counts the
positive minus the negative words among the real tokens (the lexicon of
`fixtures/datasets/generate.py`) and `W` is small ({ENC_SCALE}-scale seeded noise). The decision
therefore follows `sentiment_a`'s rule, and every logit also depends on the encoder (attention
mask, padding, token types), so batching mistakes change the outputs.

Measured when built: accuracy **{acc:.4f}** ({correct}/{len(rows)}) on
`fixtures/datasets/sentiment_a.jsonl` (argmax of the logits vs the `label` column).

sha256: model.onnx `{sha(model_path)}`, tokenizer.json `{sha(tok_path)}`.

Use: `taskdb ingest model NAME --onnx fixtures/models/tiny_classifier/model.onnx --tokenizer
fixtures/models/tiny_classifier/tokenizer.json --labels negative,positive`.
"""
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(readme)
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {OUT}: vocab {len(VOCAB)}, {total} bytes, sentiment_a accuracy {acc:.4f}; "
          f"onnx {onnx.__version__}, onnxruntime {ort.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
