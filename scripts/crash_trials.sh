#!/usr/bin/env bash
# SIGKILL crash trials (issue 10): kill taskdb at a random moment of a write, then check that
# the database opens, `check` passes, every write that had reported success is present
# (nothing lost) and no write is half-present (nothing partial).
#
#   bash scripts/crash_trials.sh [TRIALS] [SEED]        (default 100 trials, seed 1)
#
# Trials cycle through five writes, each on a fresh copy of one base database: `import` of
# 3,000 entries in batches of 50, `ingest dataset` and `ingest model` (the tiny fixture
# surrogate and probe set of the tests, the fixture model `topic_rule.py`), `rm` of a name
# with two versions, and `compact` of a database of ~2,300 entries holding 100 deletions. The
# kill moment is uniform over 0 to 1.2 times the write's measured uncut duration (so some writes finish
# first; they must then be complete). Checks after each kill:
#   * `check --json` (a writable open, which recovers) exits 0 with "ok": true;
#   * every entry of the base database is still there, unchanged in version count (except
#     the one an `rm` deletes);
#   * import: whole batches only, in file order, at least every batch reported on stderr
#     (`committed batch B`), all 3,000 when it exited 0;
#   * ingest: the new entry is absent, or present with every vector a completed run stores
#     (same methods and spaces, each vector readable); present when it exited 0;
#   * rm: both versions of the name present or both gone; gone when it exited 0;
#   * compact: the same live entries; tombstones all there or all purged; purged when it
#     exited 0;
#   * `knn` answers.
# Prints per-write figures (trials; killed or finished first; applied: the write is in the
# database afterwards) and `lost=L partial=P trials=N` (plus `check_failed=C` and
# `errors=E`, a database that does not open or answer); exits 1 unless all are 0.
#
# SMALL=1: a smaller base database and import (600 entries, 300 in the base, 20 deletions),
# for the short variant. TASKDB_BIN: the binary (default: $CARGO_TARGET_DIR or target, release if built, else
# debug). KEEP=1 keeps the work directory. Not part of `cargo test` (minutes);
# tests/reliability_crash_trials.rs runs a short variant.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS="${1:-100}"
SEED="${2:-1}"
if [[ -z "${TASKDB_BIN:-}" ]]; then
    t="${CARGO_TARGET_DIR:-target}"
    if [[ -x "$t/release/taskdb" ]]; then TASKDB_BIN="$t/release/taskdb"; else TASKDB_BIN="$t/debug/taskdb"; fi
fi
[[ -x "$TASKDB_BIN" ]] || { echo "error: no taskdb binary at $TASKDB_BIN (cargo build first, or set TASKDB_BIN)" >&2; exit 2; }
export TASKDB_BIN TRIALS SEED
exec python3 - <<'PY'
import json, os, random, shutil, signal, subprocess, sys, tempfile, time

BIN = os.path.abspath(os.environ["TASKDB_BIN"])
TRIALS = int(os.environ["TRIALS"])
rng = random.Random(int(os.environ["SEED"]))
ROOT = os.getcwd()
FX = os.path.join(ROOT, "fixtures")
TINY = ["--surrogate", f"{FX}/surrogate/tiny", "--probe", f"{FX}/probe/probe_small.jsonl", "--quiet"]
work = tempfile.mkdtemp(prefix="taskdb-crash-")
SMALL = os.environ.get("SMALL") == "1"  # the short variant of the test suite
BATCH = 50
N_IMPORT, N_BASE, N_TOMBS = (600, 300, 20) if SMALL else (3000, 2000, 100)


def tdb(db, *args, check=True):
    p = subprocess.run([BIN, "--db", db, *args], capture_output=True, text=True, cwd=ROOT)
    if check and p.returncode != 0:
        raise RuntimeError(f"taskdb {' '.join(args)} exit {p.returncode}: {p.stderr.strip()}")
    return p


def jline(name, space, v, kind="dataset"):
    return json.dumps({"name": name, "kind": kind, "space": space, "vector": v})


def vec(i, dim=16):
    r = random.Random(i)
    return [round(r.uniform(-1, 1), 6) for _ in range(dim)]


# ---- the base database ----
base = os.path.join(work, "base")
os.makedirs(base)
bdb = os.path.join(base, "db.taskdb")
tdb(bdb, "ingest", "dataset", "sentiment_a", f"{FX}/datasets/sentiment_a.jsonl", *TINY)
tdb(bdb, "ingest", "dataset", "topic", f"{FX}/datasets/topic.tsv", *TINY)
tdb(bdb, "ingest", "model", "sentiment_rule", "--command", f"python3 {FX}/models/sentiment_rule.py", *TINY)
with open(os.path.join(work, "base.jsonl"), "w") as f:
    for i in range(N_BASE):
        f.write(jline(f"x{i:04d}", "ext", vec(i)) + "\n")
    for i in range(20):
        f.write(jline(f"r{i:02d}", "ext", vec(1000 + i)) + "\n")
    for i in range(N_TOMBS):
        f.write(jline(f"tomb{i:03d}", "ext", vec(5000 + i)) + "\n")
tdb(bdb, "import", os.path.join(work, "base.jsonl"))
with open(os.path.join(work, "v2.jsonl"), "w") as f:
    for i in range(20):
        f.write(jline(f"r{i:02d}", "ext", vec(3000 + i)) + "\n")
tdb(bdb, "import", os.path.join(work, "v2.jsonl"))
for i in range(N_TOMBS):
    tdb(bdb, "rm", f"tomb{i:03d}")
big = os.path.join(work, "big.jsonl")
with open(big, "w") as f:
    for i in range(N_IMPORT):
        f.write(jline(f"n{i:05d}", "ext", vec(10000 + i)) + "\n")


def entries(db):
    """{name: [versions]} of the live entries (all versions)."""
    out = {}
    for e in json.loads(tdb(db, "list", "--all-versions", "--json").stdout):
        out.setdefault(e["name"], []).append(e["version"])
    return out


def tombstones(db):
    return json.loads(tdb(db, "stats", "--json").stdout)["tombstones"]


def vector_shape(db, name):
    v = json.loads(tdb(db, "show", name, "--json").stdout)["vectors"]
    return sorted((m, x["space"], x["embedding"], x.get("dim")) for m, x in v.items())


BASE = entries(bdb)
BASE_TOMBS = tombstones(bdb)
assert BASE_TOMBS == N_TOMBS, BASE_TOMBS

OPS = {
    "import": ["import", big, "--batch-size", str(BATCH)],
    "ingest dataset": ["ingest", "dataset", "trial_ds", f"{FX}/datasets/sentiment_b.csv", "--text", "sentence", *TINY],
    "ingest model": ["ingest", "model", "trial_model", "--command", f"python3 {FX}/models/topic_rule.py", *TINY],
    "rm": None,  # chosen per trial
    "compact": ["compact"],
}
NEW = {"ingest dataset": "trial_ds", "ingest model": "trial_model"}


def fresh(tag):
    d = os.path.join(work, tag)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(base, d)
    return os.path.join(d, "db.taskdb")


# Uncut durations and the shape of a completed ingest.
DUR, SHAPE = {}, {}
for op, args in OPS.items():
    db = fresh("measure")
    args = args or ["rm", "r00"]
    t0 = time.monotonic()
    tdb(db, *args)
    DUR[op] = time.monotonic() - t0
    if op in NEW:
        SHAPE[op] = vector_shape(db, NEW[op])
print("uncut durations (s): " + ", ".join(f"{k} {v:.2f}" for k, v in DUR.items()), flush=True)

stats = {op: {"trials": 0, "killed": 0, "finished": 0, "lost": 0, "partial": 0, "check_failed": 0, "errors": 0, "applied": 0} for op in OPS}
lost = partial = check_failed = errors = 0
order = list(OPS)
for t in range(TRIALS):
    op = order[t % len(order)]
    s = stats[op]
    s["trials"] += 1
    db = fresh("trial")
    victim = f"r{rng.randrange(20):02d}"
    args = OPS[op] or ["rm", victim]
    delay = rng.uniform(0, 1.2 * DUR[op])
    err_path = os.path.join(work, "trial.stderr")
    with open(err_path, "w") as err:
        p = subprocess.Popen([BIN, "--db", db, *args], stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
                             start_new_session=False)
        time.sleep(delay)
        killed = p.poll() is None
        if killed:
            p.send_signal(signal.SIGKILL)
        rc = p.wait()
    s["killed" if killed else "finished"] += 1
    success = (not killed) and rc == 0
    if not killed and rc != 0:
        print(f"trial {t} ({op}): exited {rc} without a kill: {open(err_path).read().strip()}", flush=True)
        s["errors"] += 1
        errors += 1
        continue
    what = []
    try:
        c = tdb(db, "check", "--json", check=False)
        rep = json.loads(c.stdout) if c.stdout.strip() else {}
        if c.returncode != 0 or not rep.get("ok"):
            s["check_failed"] += 1
            check_failed += 1
            what.append(f"check exit {c.returncode}: {c.stdout.strip()} {c.stderr.strip()}")
        now = entries(db)
        l = p_ = 0
        for name, vers in BASE.items():
            if op == "rm" and name == victim:
                continue
            if now.get(name) != vers:
                l += 1
                what.append(f"base entry {name} {vers} is now {now.get(name)}")
        if op == "import":
            got = sorted(n for n in now if n.startswith("n"))
            reported = 0
            for line in open(err_path):
                if line.startswith("committed batch "):
                    reported = max(reported, int(line.split()[2]))
            if got != [f"n{i:05d}" for i in range(len(got))] or len(got) % BATCH:
                p_ += 1
                what.append(f"import: {len(got)} entries, not whole batches in file order")
            applied = len(got) > 0
            if len(got) < reported * BATCH or (success and len(got) != N_IMPORT):
                l += 1
                what.append(f"import: {len(got)} entries, {reported} batches reported, exit {rc}")
        elif op in NEW:
            name = NEW[op]
            applied = name in now
            if name in now:
                if now[name] != [1] or vector_shape(db, name) != SHAPE[op]:
                    p_ += 1
                    what.append(f"{op}: {name} present but not as a completed run stores it")
            elif success:
                l += 1
                what.append(f"{op}: reported success, {name} missing")
        elif op == "rm":
            vers = now.get(victim)
            applied = vers is None
            if vers not in (None, BASE[victim]):
                p_ += 1
                what.append(f"rm {victim}: versions {vers} of {BASE[victim]} left")
            if success and vers is not None:
                l += 1
                what.append(f"rm {victim}: reported success, still present")
        elif op == "compact":
            tombs = tombstones(db)
            applied = tombs == 0
            if tombs not in (0, BASE_TOMBS):
                p_ += 1
                what.append(f"compact: {tombs} of {BASE_TOMBS} tombstones left")
            if success and tombs != 0:
                l += 1
                what.append(f"compact: reported success, {tombs} tombstones left")
        tdb(db, "knn", "x0000", "-k", "3")
        s["applied"] += int(applied)
        s["lost"] += l
        s["partial"] += p_
        lost += l
        partial += p_
    except Exception as e:  # a database that does not open or answer
        s["errors"] += 1
        errors += 1
        what.append(f"error: {e}")
    if what:
        print(f"trial {t} ({op}, kill at {delay:.3f}s, {'killed' if killed else 'finished'}): " + "; ".join(what), flush=True)

for op, s in stats.items():
    print(f"{op:15s} " + " ".join(f"{k}={v}" for k, v in s.items()))
print(f"lost={lost} partial={partial} trials={TRIALS} check_failed={check_failed} errors={errors}")
if os.environ.get("KEEP") == "1":
    print(f"work directory kept: {work}")
else:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if lost == partial == check_failed == errors == 0 else 1)
PY
