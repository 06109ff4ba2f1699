#!/usr/bin/env python3
"""alt-profanity-check: linear SVM (calibrated) probability of offensive language, as scores."""
from _proto import run
from profanity_check import predict_prob


def batch(ts):
    p = predict_prob(ts)
    return [(None, {"offensive": float(x), "not_offensive": float(1.0 - x)}) for x in p]


run(batch)
