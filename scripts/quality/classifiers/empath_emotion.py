#!/usr/bin/env python3
"""empath 0.89 restricted to the six basic-emotion categories of dair-ai/emotion (joy, sadness,
anger, fear, love, surprise): scores = share of each category's hits; "none" when no hit."""
from _proto import run
from empath import Empath

CATS = ["anger", "fear", "joy", "love", "sadness", "surprise"]
e = Empath()


def one(t):
    r = e.analyze(t, categories=CATS, normalize=False) or {}
    tot = sum(r.values())
    if tot == 0:
        return (None, {"none": 1.0})
    return (None, {k: r[k] / tot for k in CATS if r.get(k, 0) > 0})


run(lambda ts: [one(t) for t in ts])
