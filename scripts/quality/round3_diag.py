#!/usr/bin/env python3
"""Diagnostics for issue 8 round 3 (docs/QUALITY-experiment.md): how much data the held-out
transfer figures rest on, and where the classifiers land.

  .cache/quality/venv/bin/python scripts/quality/round3_diag.py [--designs round3,textemb]

For label-free designs (every round-3 row) the similarity matrix does not depend on the split, so
heldout.py's pooled NDCG@3 is a weighted mean of six per-target values (weight = the number of
splits whose half B holds the target's family). This prints: targets in B per split (same splits
as heldout.evaluate_split, seed 0), each design's per-target NDCG@3, an exact sign-flip test of
the per-target NDCG differences against the shipped default (2^6 patterns; unweighted), and each
classifier's three nearest datasets over all 33 (the pool of the all-data column).
"""
import argparse, itertools, os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import heldout as H
import designs as D


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(H.ROOT, ".cache", "quality"))
    ap.add_argument("--data", default=os.path.join(H.ROOT, "..", "shared", "data"))
    ap.add_argument("--designs", default="round3,textemb")
    ap.add_argument("--baseline", default="r3 default: scatter-whitened pairs=absdiff, kmeans")
    a = ap.parse_args()
    U, ents = H.load(a.cache)
    transfer = H.load_transfer(os.path.join(a.data, "transfer", "taskweb_visible.csv"))
    idx = {e["name"]: i for i, e in enumerate(ents)}
    fam = {e["name"]: e["family"] for e in ents}
    targets = sorted(t for t in transfer if t in idx)

    # targets in B per split (heldout.evaluate_split's splits)
    rng = np.random.default_rng(0)
    fams = sorted({e["family"] for e in ents})
    inB = {t: 0 for t in targets}
    counts, nq = [], []
    for _ in range(24):
        perm = list(rng.permutation(fams))
        B = set(perm[len(fams) // 2:])
        k = 0
        for t in targets:
            if fam[t] in B:
                inB[t] += 1; k += 1
        counts.append(k)
        nq.append(sum(e["kind"] == "dataset" and e["family"] in B and
                      sum(x["family"] == e["family"] and x["kind"] == "dataset" for x in ents) >= 2 for e in ents))
    print("transfer targets (family): " + ", ".join(f"{t} ({fam[t]})" for t in targets))
    print(f"targets in B per split (24 splits): {counts}; mean {np.mean(counts):.2f}, "
          f"splits with none {counts.count(0)}")
    print(f"dataset queries (with a family-mate) in B per split: {nq}; pooled {sum(nq)}")
    print("splits holding each target in B: " + ", ".join(f"{t} {inB[t]}" for t in targets))
    wts = np.array([inB[t] for t in targets], float)

    # references that use no embedding: rank a target's candidates by their mean transfer score as a
    # source for the *other* targets (leave-one-target-out source popularity), and stsb first + the
    # rest in random order (expectation over the orders)
    pop, hub = [], []
    for t in targets:
        c = transfer[t]
        pr = {s: np.mean([transfer[u][s] for u in targets if u != t and s in transfer[u]]) for s in c}
        pop.append(H.ndcg_at(c, sorted(c, key=lambda s: (-pr[s], s))))
        rest = sorted(s for s in c if s != "stsb")
        head = ["stsb"] if "stsb" in c else []
        hub.append(np.mean([H.ndcg_at(c, head + list(p)) for p in itertools.permutations(rest)]))
    print("\nreferences without embeddings (NDCG@3 per target, weighted as heldout.py):")
    for name, v in [("source popularity, leave-one-target-out", np.array(pop)), ("stsb first, rest random", np.array(hub))]:
        print(f"  {name}: " + ", ".join(f"{t} {x:.3f}" for t, x in zip(targets, v)) +
              f"; weighted {v @ wts / wts.sum():.3f}, unweighted {v.mean():.3f}")

    ds = D.build(U, ents, a.designs)
    per, orders, apq = {}, {}, {}
    print("\n| design | " + " | ".join(targets) + " | weighted (= held-out NDCG@3) | unweighted |")
    print("|---|" + "---|" * (len(targets) + 2))
    for d in ds:
        if len(d.params) != 1:
            continue
        S = d.sim(None, d.params[0])
        vals = []
        for t in targets:
            names = sorted(transfer[t])
            sims = [S[idx[t], idx[c]] for c in names]
            order = [names[j] for j in np.argsort(-np.array(sims), kind="stable")]
            vals.append(H.ndcg_at(transfer[t], order))
        vals = np.array(vals)
        per[d.name] = vals
        # per-query AP over all 33 (label-free designs: nothing fitted, the all-data pool)
        _, aps, _, _ = H.retrieval_metrics(S, ents, range(len(ents)), range(len(ents)), True)
        qs = [i for i in range(len(ents)) if ents[i]["kind"] == "dataset" and
              sum(e["family"] == ents[i]["family"] and e["kind"] == "dataset" for e in ents) >= 2]
        apq[d.name] = (np.array(aps), [ents[i]["family"] for i in qs])
        orders[d.name] = "; ".join(
            f"{t}: " + " > ".join(sorted(transfer[t], key=lambda c: (-S[idx[t], idx[c]], c))[:3]) for t in targets)
        print(f"| {d.name} | " + " | ".join(f"{v:.3f}" for v in vals) +
              f" | {vals @ wts / wts.sum():.3f} | {vals.mean():.3f} |")
        # classifiers: three nearest datasets (all 33 in the pool)
        if not d.datasets_only:
            lines = []
            for i, e in enumerate(ents):
                if e["kind"] != "model":
                    continue
                cand = [j for j in range(len(ents)) if ents[j]["kind"] == "dataset"]
                cand.sort(key=lambda j: (-S[i, j], ents[j]["name"]))
                rk = next(r for r, j in enumerate(cand, 1) if ents[j]["family"] == e["family"])
                if e["name"] in ("nrclex_emotion", "empath_emotion") or rk > 1:
                    top = ", ".join(f"{ents[j]['name']} {S[i, j]:.3f}" for j in cand[:3])
                    lines.append(f"    {e['name']}: own family at rank {rk}; nearest {top}")
            print("\n".join(f"<!-- {l.strip()} -->" for l in lines))

    print("\npredicted top 3 sources per target:")
    for name, o in orders.items():
        print(f"  {name}: {o}")

    # nrclex on U: how sentiment-like is its labelling? Lexicon valence (joy + trust + anticipation -
    # anger - fear - sadness - disgust) against the sentiment classifiers' labels (+1/0/-1), over the
    # texts where nrclex is not {"none": 1}
    import json
    rd = lambda n: [json.loads(l) for l in open(os.path.join(a.cache, "clfU", n + ".jsonl"))]
    nrc = rd("nrclex_emotion")
    val = np.array([sum(r["scores"].get(k, 0) for k in ("joy", "trust", "anticipation")) -
                    sum(r["scores"].get(k, 0) for k in ("anger", "fear", "sadness", "disgust")) for r in nrc])
    keep = np.array([r["scores"] != {"none": 1.0} for r in nrc])
    cs = []
    for n in ("vader", "afinn_sentiment", "textblob_polarity"):
        y = np.array([{"positive": 1, "negative": -1}.get(r.get("label"), 0) for r in rd(n)])
        cs.append(f"{n} {np.corrcoef(val[keep], y[keep])[0, 1]:.2f}")
    print(f"\nnrclex valence vs sentiment labels on U ({keep.sum()} of {len(keep)} texts labelled): " + ", ".join(cs))

    if a.baseline in per:
        base = per[a.baseline]
        print(f"\nper-target NDCG@3 differences against '{a.baseline}' (exact sign-flip test over "
              f"{len(targets)} targets, two-sided, unweighted mean):")
        for name, v in per.items():
            if name == a.baseline:
                continue
            diff = v - base
            obs = abs(diff.mean())
            flips = [abs((np.array(s) * diff).mean()) for s in itertools.product([1, -1], repeat=len(diff))]
            p = np.mean([f >= obs - 1e-12 for f in flips])
            print(f"  {name}: mean diff {diff.mean():+.3f} (per target {', '.join(f'{x:+.2f}' for x in diff)}), p = {p:.2f}")
        ab, qf = apq[a.baseline]
        fams_q = sorted(set(qf))
        print(f"\nall-33 MAP differences against the baseline, per query family ({', '.join(fams_q)}; "
              f"exact sign-flip test over these {len(fams_q)} family means, two-sided):")
        for name, (ap_, _) in apq.items():
            if name == a.baseline:
                continue
            dd = ap_ - ab
            fm = np.array([dd[[k for k, f in enumerate(qf) if f == g]].mean() for g in fams_q])
            obs = abs(fm.mean())
            flips = [abs((np.array(sg) * fm).mean()) for sg in itertools.product([1, -1], repeat=len(fm))]
            p = np.mean([f >= obs - 1e-12 for f in flips])
            print(f"  {name}: MAP {ap_.mean():.3f} vs {ab.mean():.3f}; per family {', '.join(f'{x:+.3f}' for x in fm)}, p = {p:.2f}")


if __name__ == "__main__":
    main()
