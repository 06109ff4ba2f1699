#!/usr/bin/env python3
"""Evaluation of a task-embedding space: leave-one-out 1-NN family accuracy and MAP of
same-family retrieval over datasets, and for each model (classifier) its nearest dataset, that
dataset's family, and the rank of the first dataset of the model's family.

Input JSON (file argument or stdin), either form:
  {"entries": [{"name": str, "kind": "dataset"|"model", "family": str}, ...],
   "scores": [[float, ...], ...]}           # square similarity matrix, higher = closer
or
  {"entries": [...], "answers": {name: [neighbour name, ...], ...}}   # ranked knn answers
                                             # (e.g. taskdb knn --json output, names only)
Only datasets are ranked as neighbours (models are skipped in rankings). A dataset query counts
for nn/MAP only when another dataset shares its family. Prints a JSON summary; with --markdown
a table row as well.

Library use: `evaluate(entries, rankings)` where rankings maps name -> ranked neighbour names.
"""
import argparse
import json
import sys


def rankings_from_scores(entries, scores):
    out = {}
    for i, e in enumerate(entries):
        others = [j for j in range(len(entries)) if j != i]
        others.sort(key=lambda j: (-scores[i][j], entries[j]["name"]))
        out[e["name"]] = [entries[j]["name"] for j in others]
    return out


def evaluate(entries, rankings):
    byname = {e["name"]: e for e in entries}
    datasets = [e for e in entries if e["kind"] == "dataset"]
    fam_count = {}
    for e in datasets:
        fam_count[e["family"]] = fam_count.get(e["family"], 0) + 1
    nn_hits, aps, per_dataset = 0, [], {}
    for e in datasets:
        if fam_count[e["family"]] < 2:
            continue
        ranked = [n for n in rankings[e["name"]] if n != e["name"] and byname[n]["kind"] == "dataset"]
        rel = [byname[n]["family"] == e["family"] for n in ranked]
        hit = rel[0]
        nn_hits += hit
        found, ap = 0, 0.0
        for k, r in enumerate(rel, 1):
            if r:
                found += 1
                ap += found / k
        ap /= max(found, 1)
        aps.append(ap)
        per_dataset[e["name"]] = {"nearest": ranked[0], "nearest_family": byname[ranked[0]]["family"],
                                  "hit": bool(hit), "ap": ap}
    models = {}
    for e in entries:
        if e["kind"] != "model":
            continue
        ranked = [n for n in rankings[e["name"]] if byname[n]["kind"] == "dataset"]
        fams = [byname[n]["family"] for n in ranked]
        rank = fams.index(e["family"]) + 1 if e["family"] in fams else None
        models[e["name"]] = {"family": e["family"], "nearest": ranked[0], "nearest_family": fams[0],
                             "match_rank": rank}
    nq = len(aps)
    return {
        "queries": nq,
        "nn": nn_hits / nq if nq else None,
        "map": sum(aps) / nq if nq else None,
        "models_top1": sum(1 for m in models.values() if m["match_rank"] == 1),
        "models": models,
        "datasets": per_dataset,
    }


def markdown_row(name, r):
    ranks = ",".join(str(m["match_rank"]) for _, m in sorted(r["models"].items()))
    mt = f'{r["models_top1"]}/{len(r["models"])}' if r["models"] else "n/a"
    return f'| {name} | {r["nn"]:.2f} | {r["map"]:.3f} | {mt} | {ranks} |'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?")
    ap.add_argument("--markdown", metavar="NAME")
    a = ap.parse_args()
    doc = json.load(open(a.file) if a.file else sys.stdin)
    entries = doc["entries"]
    rk = doc["answers"] if "answers" in doc else rankings_from_scores(entries, doc["scores"])
    r = evaluate(entries, rk)
    print(json.dumps(r, indent=1))
    if a.markdown:
        print(markdown_row(a.markdown, r))


if __name__ == "__main__":
    main()
