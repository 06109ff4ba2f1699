#!/usr/bin/env python3
"""A tiny black-box sentiment classifier speaking taskdb's model protocol.

Reads {"id": N, "text": "..."} JSON lines on stdin and writes one
{"id": N, "scores": {"positive": p, "negative": 1-p}} line per input on stdout.
Standard library only; a stand-in for any real classifier you wrap the same way.
"""
import json
import math
import re
import sys

POS = set("""good great love loved excellent amazing awesome best nice friendly delicious
fantastic perfect wonderful happy enjoy enjoyed recommend fresh tasty pleasant fun beautiful
brilliant superb favorite fine glad impressive incredible lovely outstanding solid worth""".split())
NEG = set("""bad worst terrible awful horrible poor disappointing disappointed rude slow cold
bland boring hate hated never mediocre overpriced sick dirty gross nasty waste wasted wrong
ugly sad angry annoying broken fail failed stupid unfortunately problem""".split())
WORD = re.compile(r"[a-z']+")

for line in sys.stdin:
    if not line.strip():
        continue
    item = json.loads(line)
    words = WORD.findall(item["text"].lower())
    s = sum(w in POS for w in words) - sum(w in NEG for w in words)
    if "not" in words or "n't" in item["text"].lower():
        s -= 0.5
    p = 1.0 / (1.0 + math.exp(-1.5 * s))
    print(json.dumps({"id": item["id"], "scores": {"positive": p, "negative": 1.0 - p}}), flush=False)
sys.stdout.flush()
