#!/usr/bin/env python3
"""Zero-shot prompt selection with a real LLM (issue 11): does taskdb's choice of prompt
(FUTE's rule: the (LLM, prompt) model entry whose task embedding is most similar to the
target dataset's) pick prompts that work? Run by scripts/quality/prompt_selection.sh, which
provisions everything; see docs/QUALITY-prompts.md for the result and the protocol.

Steps (every LLM answer is cached in WORK/llm-cache.jsonl, so a rerun costs no LLM time):
1. Oracle: each prompt's accuracy on ORACLE_ROWS labelled rows of each target (a seeded
   sample), scored by the same adapter (examples/llm/verbalizer_llm.py) and mapped to
   labels by the prompt's verbalizers exactly as taskdb maps them (sum a label's words).
   The label-free baselines on the same rows, labels unseen: mutual information between
   inputs and outputs (Sorensen et al. 2022) and the entropy of the mean output.
2. taskdb: the targets ingested as datasets (all their rows), each prompt ingested as a
   model entry with `taskdb ingest prompts --command <adapter> --probe-limit N`; then
   `taskdb select-prompt TARGET --tag llm=smollm2 --json` per target.
3. Effectiveness = accuracy of the chosen prompt / accuracy of the best prompt, per
   target, for taskdb's choice, the MI and entropy choices, and a random prompt (exact
   expectation), written to docs/QUALITY-prompts.md.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = {
    "sst2_glue": "sentiment/sst2_glue.jsonl",
    "mr_rotten_tomatoes": "sentiment/mr_rotten_tomatoes.jsonl",
    "cr_customer_reviews": "sentiment/cr_customer_reviews.jsonl",
    "uci_yelp": "sentiment/uci_yelp.jsonl",
}


def log(msg):
    print(f"[prompts {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def fill(template, text):
    """taskdb's PromptTemplate::render for templates with {text} only ({{ and }} literal)."""
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if template.startswith("{{", i):
            out.append("{"); i += 2
        elif template.startswith("}}", i):
            out.append("}"); i += 2
        elif template.startswith("{text}", i):
            out.append(text); i += 6
        else:
            out.append(c); i += 1
    return "".join(out)


def verbalize(verbalizers, scores):
    """Per-label distribution from per-word scores, as taskdb's Verbalizers::map_scores."""
    per = {}
    for spec in verbalizers:
        label, words = spec.split("=", 1)
        per.setdefault(label, 0.0)
        ws = {w.strip().lower() for w in words.split("|")}
        for word, s in scores.items():
            if " ".join(word.split()).lower() in ws:
                per[label] += s
    z = sum(per.values())
    return {k: v / z for k, v in per.items()} if z > 0 else None


def entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def run_adapter(args, prompts):
    """Runs the adapter once over a list of filled-in prompts; returns their scores."""
    lines = "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(prompts))
    r = subprocess.run(args.adapter, shell=True, input=lines, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"adapter failed ({r.returncode}): {r.stderr[-2000:]}")
    log(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "adapter done")
    out = [None] * len(prompts)
    for line in r.stdout.splitlines():
        d = json.loads(line)
        out[d["id"]] = d["scores"]
    return out


def oracle(args, prompts):
    from concurrent.futures import ThreadPoolExecutor

    res = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for part in pool.map(lambda t: oracle_one(args, prompts, t), TARGETS):
            res.update(part)
    return res


def oracle_one(args, prompts, t):
    res = {}
    rel = TARGETS[t]
    rows = [json.loads(l) for l in open(os.path.join(args.data, "datasets", rel), encoding="utf-8")]
    sample = [rows[i] for i in sorted(random.Random(0).sample(range(len(rows)), args.oracle_rows))]
    filled = [fill(p["prompt"], r["text"]) for p in prompts for r in sample]
    log(f"oracle {t}: {len(filled)} prompts x rows")
    counts = {}
    for r in sample:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    res[(t, "")] = {"majority": max(counts.values()) / len(sample)}
    scores = run_adapter(args, filled)
    for j, p in enumerate(prompts):
        dists = [verbalize(p["verbalizers"], s) for s in scores[j * len(sample):(j + 1) * len(sample)]]
        labels = sorted(dists[0])
        right = sum(max(d, key=lambda k: (d[k], k)) == r["label"] for d, r in zip(dists, sample))
        mean = [sum(d[l] for d in dists) / len(dists) for l in labels]
        h_mean = entropy(mean)
        h_cond = sum(entropy([d[l] for l in labels]) for d in dists) / len(dists)
        norm = math.log(len(labels))
        res[(t, p["name"])] = {"acc": right / len(sample), "mi": (h_mean - h_cond) / norm,
                               "entropy": h_mean / norm}
    return res


def taskdb(args, *cmd, capture=True):
    r = subprocess.run([args.taskdb, "--db", args.db, *cmd], capture_output=capture, text=True)
    if r.returncode != 0:
        sys.exit(f"taskdb {' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def ingest(args):
    have = {e["name"] for e in json.loads(taskdb(args, "list", "--json"))} if os.path.exists(args.db) else set()
    for t, rel in TARGETS.items():
        if t not in have:
            log(f"ingest dataset {t}")
            taskdb(args, "ingest", "dataset", t, os.path.join(args.data, "datasets", rel), "-q")
    todo = [p for p in args.prompt_list if p["name"] not in have]
    if todo:
        part = os.path.join(args.work, "prompts-todo.jsonl")
        with open(part, "w", encoding="utf-8") as f:
            for p in todo:
                f.write(json.dumps(p) + "\n")
        log(f"ingest prompts: {len(todo)} (LLM over {args.probe_limit} probe texts each)")
        taskdb(args, "ingest", "prompts", part, "--command", args.adapter,
               "--probe-limit", str(args.probe_limit), "-q", capture=False)


def select(args):
    out = {}
    for t in TARGETS:
        out[t] = json.loads(taskdb(args, "select-prompt", t, "--tag", "llm=smollm2", "-k", "100", "--json"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--work", default=os.path.join(ROOT, ".cache", "prompt-selection"))
    ap.add_argument("--taskdb", default=os.path.join(ROOT, "target", "release", "taskdb"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--prompts", default=os.path.join(ROOT, "scripts", "quality", "prompts", "smollm2_sentiment.jsonl"))
    ap.add_argument("--oracle-rows", type=int, default=200)
    ap.add_argument("--probe-limit", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=2, help="adapter processes at once (oracle)")
    ap.add_argument("--step", choices=["all", "oracle", "ingest"], default="all")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    args.db = os.path.join(args.work, "prompts.taskdb")
    args.prompt_list = [json.loads(l) for l in open(args.prompts, encoding="utf-8") if l.strip()]
    words = sorted({w.strip().lower() for p in args.prompt_list for v in p["verbalizers"]
                    for w in v.split("=", 1)[1].split("|")})
    args.adapter = (f"{args.python} {os.path.join(ROOT, 'examples', 'llm', 'verbalizer_llm.py')} "
                    f"--words {','.join(words)} --case-variants "
                    f"--cache {os.path.join(args.work, 'llm-cache.jsonl')}")
    t0 = time.time()
    if args.step in ("all", "ingest"):
        ingest(args)
    t1 = time.time()
    res = oracle(args, args.prompt_list) if args.step in ("all", "oracle") else {}
    t2 = time.time()
    if args.step != "all":
        return
    sel = select(args)
    out = {"oracle": {f"{t}\t{p}": v for (t, p), v in res.items() if p},
           "majority": {t: v["majority"] for (t, p), v in res.items() if not p}, "select": sel,
           "prompts": args.prompt_list, "oracle_rows": args.oracle_rows,
           "probe_limit": args.probe_limit, "ingest_s": t1 - t0, "oracle_s": t2 - t1}
    with open(os.path.join(args.work, "result.json"), "w") as f:
        json.dump(out, f, indent=1)
    log(f"wrote {os.path.join(args.work, 'result.json')}")


if __name__ == "__main__":
    main()
