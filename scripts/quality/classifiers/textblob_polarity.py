#!/usr/bin/env python3
"""textblob pattern-lexicon polarity: > 0 positive, < 0 negative, 0 neutral (needs no NLTK data)."""
from _proto import run
from textblob import TextBlob


def lab(p):
    return "positive" if p > 0 else "negative" if p < 0 else "neutral"


run(lambda ts: [(lab(TextBlob(t).sentiment.polarity), None) for t in ts])
