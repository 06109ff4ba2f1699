#!/usr/bin/env python3
"""A tiny black-box SMS spam filter speaking taskdb's model protocol.

Reads {"id": N, "text": "..."} JSON lines on stdin and writes one
{"id": N, "label": "spam" | "ham"} line per input on stdout. Standard library only.
"""
import json
import re
import sys

SPAM = re.compile(
    r"\b(free|win|won|winner|prize|claim|cash|urgent|txt|text|call now|offer|"
    r"mobile|reply|stop|ringtone|award|guaranteed|click|subscribe|credit|£|\$)\b",
    re.IGNORECASE,
)

for line in sys.stdin:
    if not line.strip():
        continue
    item = json.loads(line)
    text = item["text"]
    hits = len(SPAM.findall(text)) + len(re.findall(r"\d{5,}", text))
    label = "spam" if hits >= 2 else "ham"
    print(json.dumps({"id": item["id"], "label": label}))
