#!/usr/bin/env python3
"""hatesonar 0.1.0 (TF-IDF + logistic regression, trained on Davidson et al.), class probabilities.

Its ONNX graph's StringNormalizer asks for the en_US.UTF-8 locale, which minimal systems lack;
when the session fails we load the graph with the `onnx` package and set its locale to C.UTF-8
(ASCII lowercasing only; identical for English text).
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
import hatesonar
from _proto import run

path = os.path.join(os.path.dirname(hatesonar.__file__), "model", "model.onnx")
so = ort.SessionOptions()
so.intra_op_num_threads = 1
try:
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
except Exception:  # en_US.UTF-8 locale missing: patch the StringNormalizer's locale
    m = onnx.load(path)
    for n in m.graph.node:
        if n.op_type == "StringNormalizer":
            for a in list(n.attribute):
                if a.name == "locale":
                    n.attribute.remove(a)
            n.attribute.append(onnx.helper.make_attribute("locale", "C.UTF-8"))
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
names = {0: "hate_speech", 1: "offensive_language", 2: "neither"}


def batch(ts):
    out = []
    for t in ts:
        _, probs = sess.run(None, {"text": np.array([t], dtype=object)})
        p = probs[0]
        out.append((None, {names[k]: float(p[k]) for k in sorted(names)}))
    return out


run(batch)
