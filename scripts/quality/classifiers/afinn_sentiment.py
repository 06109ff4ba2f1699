#!/usr/bin/env python3
"""afinn: sum of AFINN-111 word valences; > 0 positive, < 0 negative, 0 neutral."""
from _proto import run
from afinn import Afinn

a = Afinn()


def lab(s):
    return "positive" if s > 0 else "negative" if s < 0 else "neutral"


run(lambda ts: [(lab(a.score(t)), None) for t in ts])
