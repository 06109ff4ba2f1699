#!/usr/bin/env python3
"""vaderSentiment: compound >= 0.05 positive, <= -0.05 negative, else neutral (VADER's own thresholds)."""
from _proto import run
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

a = SentimentIntensityAnalyzer()


def lab(c):
    return "positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral"


run(lambda ts: [(lab(a.polarity_scores(t)["compound"]), None) for t in ts])
