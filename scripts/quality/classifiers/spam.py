#!/usr/bin/env python3
"""pyspam-classifier 0.0.2 (module spam_classifier): count vectoriser + multinomial naive Bayes.

Scores are the naive Bayes class probabilities (predict_proba)."""
from _proto import run
from spam_classifier.models.predict_model import SpamClassifier

c = SpamClassifier()
classes = [str(x) for x in c.naive_bayes.classes_]


def batch(ts):
    P = c.naive_bayes.predict_proba(c.count_vector.transform(ts))
    return [(None, {k: float(v) for k, v in zip(classes, row)}) for row in P]


run(batch)
