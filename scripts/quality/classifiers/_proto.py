"""taskdb `ingest model --command` protocol helpers (shared by the wrappers in this folder).

Input: JSON lines {"id": N, "text": "...", ["text_pair": "..."]} on stdin.
Output: one JSON line per input on stdout, {"id": N, "label": "..."} or
{"id": N, "scores": {"label": score, ...}}, in input order. Memory is bounded by the chunk size.
"""
import json
import sys


def chunks(size=256):
    buf = []
    for lineno, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
            buf.append((obj["id"], obj["text"]))
        except (ValueError, KeyError) as e:
            sys.stderr.write(f"stdin line {lineno}: expected {{\"id\", \"text\"}} JSON: {e}\n")
            sys.exit(2)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def emit(i, label=None, scores=None):
    if scores is not None:
        sys.stdout.write(json.dumps({"id": i, "scores": scores}) + "\n")
    else:
        sys.stdout.write(json.dumps({"id": i, "label": label}) + "\n")


def run(predict_batch, size=256):
    """predict_batch(list[str]) -> list of (label or None, scores dict or None)."""
    for buf in chunks(size):
        outs = predict_batch([t for _, t in buf])
        for (i, _), (label, scores) in zip(buf, outs):
            emit(i, label, scores)
        sys.stdout.flush()
