#!/usr/bin/env python3
"""NRCLex 4.1.0 (NRC emotion lexicon): scores = share of each of the 8 NRC emotions among the
text's emotion words; "none" when no word is in the lexicon.

NRCLex.load_raw_text needs NLTK punkt/wordnet data (not downloadable here), so we tokenise with a
regex and use NRCLex.load_token_list (no lemmatisation; the lexicon lookup is NRCLex's own).
"""
import re

from _proto import run
from nrclex import NRCLex

EMO = ["anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust"]
lex = NRCLex()
TOK = re.compile(r"[a-z']+")


def one(t):
    lex.load_token_list(TOK.findall(t.lower()))
    raw = {k: v for k, v in lex.raw_emotion_scores.items() if k in EMO}
    tot = sum(raw.values())
    if tot == 0:
        return (None, {"none": 1.0})
    return (None, {k: raw[k] / tot for k in sorted(raw)})


run(lambda ts: [one(t) for t in ts])
