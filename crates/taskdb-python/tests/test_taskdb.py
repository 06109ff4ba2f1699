"""The Python package over the fixtures only (tiny surrogate, small probe set, fake models).

Run by scripts/test_python.sh (part of the README's test command)."""

import importlib.util
import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import taskdb

ROOT = Path(__file__).resolve().parents[3]
FX = ROOT / "fixtures"
MODELS = FX / "models"


def load_rules():
    spec = importlib.util.spec_from_file_location("fixture_rules", MODELS / "_common.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RULES = load_rules()


@pytest.fixture
def db(tmp_path):
    d = taskdb.open(tmp_path / "t.taskdb", surrogate=FX / "surrogate" / "tiny",
                    probe=FX / "probe" / "probe_small.jsonl", reference_cache=tmp_path / "refs")
    yield d
    d.close()


def rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_datasets_from_a_path_dicts_and_a_dataframe_land_in_one_space(db):
    import pandas as pd  # installed by scripts/test_python.sh: a missing one fails, not skips
    r = db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
    assert (r["name"], r["version"], r["kind"]) == ("sent", 1, "dataset")
    # The same rows as dicts: the same content, a second version of another name.
    db.ingest_dataset("sent-dicts", rows(FX / "datasets" / "sentiment_a.jsonl"), progress=False)
    topic = pd.read_csv(FX / "datasets" / "topic.tsv", sep="\t")
    db.ingest_dataset("topic", topic, progress=False)
    hits = db.knn("sent", k=2)
    assert [h.name for h in hits] == ["sent-dicts", "topic"]
    assert hits[0].score > hits[1].score
    assert abs(hits[0].score - 1.0) < 1e-6, "the same rows give the same embedding"
    df = hits.to_pandas()
    assert list(df["name"]) == ["sent-dicts", "topic"]
    # Provenance says where the rows came from.
    assert db.get("sent-dicts").provenance["command_line"][-1] == "<in-memory rows>"


def test_a_python_predict_equals_the_same_model_as_a_command(db):
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
    db.ingest_model("rule-cmd", command="%s %s" % (sys.executable, MODELS / "sentiment_rule.py"),
                    progress=False)
    calls = []

    def predict(texts):
        calls.append(len(texts))
        return [RULES.sentiment(t)[0] for t in texts]

    r = db.ingest_model("rule-py", predict=predict, batch_size=7, progress=False)
    assert r["kind"] == "model" and max(calls) == 7 and sum(calls) == len(db.probe_texts())
    a, b = db.get("rule-cmd"), db.get("rule-py")
    assert set(a.vectors) == set(b.vectors) and len(a.vectors) >= 2
    for m in a.vectors:
        va, vb = a.vectors[m], b.vectors[m]
        pairs = zip(va, vb) if isinstance(va, tuple) else [(va, vb)]
        for x, y in pairs:
            assert x.dtype == np.float32 and np.array_equal(x, y), m
    assert b.provenance["command_line"][-1] == "predict=test_a_python_predict_equals_the_same_model_as_a_command.<locals>.predict"
    # Scores (dicts) work too.
    def soft(texts):
        out = []
        for t in texts:
            pos = RULES.sentiment(t)[0] == "positive"
            out.append({"positive": 0.8 if pos else 0.2, "negative": 0.2 if pos else 0.8})
        return out

    db.ingest_model("soft-py", predict=soft, progress=False)
    assert db.knn("soft-py", k=1)[0].name in {"sent", "rule-cmd", "rule-py"}


def test_a_failing_predict_writes_nothing(db):
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
    before, log = db.list(), db.log()

    def boom(texts):
        raise RuntimeError("model server down")

    with pytest.raises(taskdb.ModelError, match="model server down"):
        db.ingest_model("bad", predict=boom, progress=False)
    with pytest.raises(taskdb.ModelError, match="returned 1 outputs for a batch of 64"):
        db.ingest_model("bad", predict=lambda ts: ["positive"], progress=False)
    with pytest.raises(taskdb.InvalidInputError, match="exactly one"):
        db.ingest_model("bad", progress=False)
    assert db.list() == before and db.log() == log


def test_bad_datasets_raise_naming_the_row(db):
    with pytest.raises(taskdb.InvalidInputError, match="row 4") as e:
        db.ingest_dataset("x", FX / "datasets" / "bad" / "missing_text.jsonl", progress=False)
    assert isinstance(e.value, taskdb.Error)
    with pytest.raises(taskdb.InvalidInputError, match="row 2"):
        db.ingest_dataset("x", [{"text": "good", "label": "a"}, "not a dict"], progress=False)
    with pytest.raises(taskdb.FileError, match="no_such_file.jsonl"):
        db.ingest_dataset("x", FX / "datasets" / "no_such_file.jsonl", progress=False)
    assert db.list() == []


def test_entries_read_list_remove_stats_and_errors(db):
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", tags={"team": "nlp"},
                      progress=False)
    db.ingest_dataset("topic", FX / "datasets" / "topic.tsv", progress=False)
    e = db.get("sent")
    assert (e.name, e.version, e.kind, e.tags, e.latest) == ("sent", 1, "dataset", {"team": "nlp"}, True)
    assert e.provenance["rows_used"] == 120 if "rows_used" in e.provenance else True
    dense = [v for v in e.vectors.values() if isinstance(v, np.ndarray)]
    low_rank = [v for v in e.vectors.values() if isinstance(v, tuple)]
    assert dense and low_rank, e.vectors.keys()
    assert not dense[0].flags.writeable, "a view of the library's bytes"
    u, s = low_rank[0]
    assert u.shape[0] == s.shape[0] and u.ndim == 2
    assert [x["name"] for x in db.list(tags={"team": "nlp"})] == ["sent"]
    assert [x["name"] for x in db.list(kind="dataset", prefix="t")] == ["topic"]
    st = db.stats()
    assert st["datasets"] == 2
    with pytest.raises(taskdb.NotFoundError):
        db.get("nope")
    with pytest.raises(taskdb.NotFoundError):
        db.knn("nope")
    with pytest.raises(taskdb.InvalidInputError):
        db.knn("sent", kind="banana")
    assert len(db.remove("topic")) == 1
    assert [x["name"] for x in db.list()] == ["sent"]


def test_recommend_compare_outcomes_and_the_log(db):
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
    db.ingest_dataset("sent-b", FX / "datasets" / "sentiment_b.csv", text="sentence", progress=False)
    db.ingest_dataset("topic", FX / "datasets" / "topic.tsv", progress=False)
    rec = db.recommend("sent", k=2)
    # (The tiny test encoder says nothing about which source is better: only the shape.)
    assert sorted(r["name"] for r in rec) == ["sent-b", "topic"]
    assert all(r["measured_gain"] is None for r in rec)
    oid = db.add_outcome("topic", "sent", 0.9, baseline=0.5, metric="accuracy")
    assert [o["id"] for o in db.outcomes()] == [oid]
    first = db.recommend("sent", k=1)[0]
    assert (first["name"], first["measured_gain"]) == ("topic", pytest.approx(0.4)), \
        "a measured gain outranks any estimate"
    c = db.compare("sent", "sent-b")
    assert (c["a"]["entry"], c["b"]["entry"]) == ("sent@1", "sent-b@1")
    assert c["spaces"], "they share spaces"
    ops = [r["op"] for r in db.log()]
    assert ops == ["create", "put", "put", "put", "outcome-add"]
    assert db.verify_log()["problems"] == []


def test_snapshots_from_python(db, tmp_path):
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
    db.ingest_dataset("topic", FX / "datasets" / "topic.tsv", progress=False)
    snap = tmp_path / "s.tdbsnap"
    m = db.snapshot(snap, note="from python")
    assert m["note"] == "from python" and len(m["entries"]) == 2
    v = taskdb.verify_snapshot(snap, root=m["root"])
    assert v["ok"] and v["root"] == m["root"]
    with taskdb.open(snap) as s:
        assert s.read_only
        assert [h.name for h in s.knn("sent", k=1)] == [h.name for h in db.knn("sent", k=1)]
        with pytest.raises(taskdb.Error, match="read-only"):
            s.remove("sent")
    db.remove("topic")
    path = db.path
    db.close()  # a database is opened read-only by diff: release it first
    d = taskdb.diff(snap, path)
    assert d["removed"] == ["topic@1"]
    bad = tmp_path / "bad.tdbsnap"
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    assert not taskdb.verify_snapshot(bad)["ok"]
    with pytest.raises(taskdb.SnapshotInvalidError):
        taskdb.open(bad)
    with pytest.raises(taskdb.IncompatibleError):
        taskdb.verify_snapshot(FX / "datasets" / "topic.tsv")


def test_close_context_manager_and_threads(tmp_path):
    p = tmp_path / "c.taskdb"
    with taskdb.open(p, surrogate=FX / "surrogate" / "tiny", probe=FX / "probe" / "probe_small.jsonl",
                     reference_cache=tmp_path / "refs") as db:
        db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
        db.ingest_dataset("topic", FX / "datasets" / "topic.tsv", progress=False)
        # Many threads query one handle at once (each call releases the GIL).
        out, errors = [], []

        def work():
            try:
                for _ in range(20):
                    out.append(db.knn("sent", k=1)[0].name)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        ts = [threading.Thread(target=work) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert not errors and out == ["topic"] * 80
    with pytest.raises(taskdb.Error, match="closed"):
        db.knn("sent")
    # Closed means released: a second writer can open it now.
    with taskdb.open(p, read_only=True) as again:
        assert [x["name"] for x in again.list()] == ["sent", "topic"]


def test_a_second_writer_is_locked_out(tmp_path):
    p = tmp_path / "l.taskdb"
    with taskdb.open(p):
        with pytest.raises(taskdb.LockedError):
            taskdb.open(p)


def test_progress_reaches_a_callable(db):
    events = []
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl",
                      progress=lambda e, name, n: events.append((e, name, n)))
    assert any(e == "stage" for e, _, _ in events) and any(e == "done" for e, _, _ in events)


def test_import_then_read_vectors_bit_exact(tmp_path):
    sample = FX / "engine" / "sample.jsonl"
    with taskdb.open(tmp_path / "i.taskdb") as db:
        r = db.import_jsonl(sample)
        assert r == {"imported": 13, "skipped": 0, "batches": 1}
        first = json.loads(sample.read_text().splitlines()[0])
        e = db.get(first["name"])
        (v,) = e.vectors.values()
        assert np.array_equal(v, np.array(first["vector"], dtype=np.float32))
        assert e.spaces == {next(iter(e.vectors)): "demo"}
        hits = db.knn("sst2", k=3)
        assert len(hits) == 3 and all(isinstance(h, taskdb.Hit) for h in hits)
        assert hits[0].score >= hits[1].score >= hits[2].score
        assert db.import_jsonl(sample, resume=True) == {"imported": 0, "skipped": 13, "batches": 0}
        with pytest.raises(taskdb.InvalidInputError, match="line 1"):
            bad = tmp_path / "bad.jsonl"
            bad.write_text('{"name": "x", "kind": "dataset", "space": "demo", "vector": [1, 2]}\n')
            db.import_jsonl(bad)


def test_progress_bars_with_tqdm(db, capsys):
    import tqdm  # noqa: F401  (installed by scripts/test_python.sh)
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl")  # progress=True: tqdm
    assert db.knn("sent", k=1) == []


def test_export_jsonl_reads_back_exactly_and_parquet_loads(db, tmp_path):
    import pandas as pd

    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
    db.ingest_model("rule", command="%s %s" % (sys.executable, MODELS / "sentiment_rule.py"),
                    progress=False)
    r = db.export(tmp_path / "x.jsonl")
    assert r["entries"] == 2 and r["rows"] >= 4
    with taskdb.open(tmp_path / "copy.taskdb") as copy:
        assert copy.import_jsonl(tmp_path / "x.jsonl")["imported"] == 2
        a = db.snapshot(tmp_path / "a.tdbsnap")["root"]
        b = copy.snapshot(tmp_path / "b.tdbsnap")["root"]
        assert a == b, "the same content, bit for bit"
    p = db.export(tmp_path / "pq", format="parquet")
    assert len(p["files"]) == p["spaces"] >= 2
    # An independent reader (pyarrow, through pandas) reads every file.
    names = set()
    for f in p["files"]:
        df = pd.read_parquet(f)
        names |= set(df["name"])
        assert len(df["index_vector"][0]) > 0
    assert names == {"sent", "rule"}
    with pytest.raises(taskdb.InvalidInputError, match="exists"):
        db.export(tmp_path / "x.jsonl")


def test_select_prompt_ranks_candidates_and_shows_entropy(db):
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)
    # Two "prompts": one that follows the dataset's rule, one that answers one label always.
    db.ingest_model("p-rule", predict=lambda ts: [RULES.sentiment(t)[0] for t in ts],
                    progress=False)
    db.ingest_model("p-constant", predict=lambda ts: ["positive" if i % 50 else "negative"
                                                      for i, _ in enumerate(ts)],
                    progress=False)
    db.ingest_model("other", predict=lambda ts: [RULES.topic(t) for t in ts], progress=False)
    choices = db.select_prompt("sent", prefix="p-")
    # (The tiny test encoder says nothing about which prompt is better: only the shape.)
    assert {c["name"] for c in choices} == {"p-rule", "p-constant"}, "only the prefix"
    assert [c["rank"] for c in choices] == [1, 2]
    assert choices[0]["similarity"] >= choices[1]["similarity"]
    by = {c["name"]: c for c in choices}
    assert by["p-constant"]["output_entropy"] < by["p-rule"]["output_entropy"]
    with pytest.raises(taskdb.NotFoundError):
        db.select_prompt("nope", prefix="p-")


def test_model_outputs_are_stored_and_give_select_prompt_mutual_information(db):
    db.ingest_dataset("sent", FX / "datasets" / "sentiment_a.jsonl", progress=False)

    def soft(texts):
        return [{"positive": 0.8, "negative": 0.2} if RULES.sentiment(t)[0] == "positive"
                else {"positive": 0.3, "negative": 0.7} for t in texts]

    db.ingest_model("p-soft", predict=soft, progress=False)
    db.ingest_model("p-hard", predict=lambda ts: [RULES.sentiment(t)[0] for t in ts],
                    progress=False)
    texts = db.probe_texts()
    o = db.model_outputs("p-soft")
    assert o["kind"] == "soft" and o["labels"] == ["negative", "positive"]
    assert o["rows"].tolist() == list(range(len(texts)))
    assert o["probs"].shape == (len(texts), 2) and o["probs"].dtype == np.float32
    # Exactly what predict returned, row by row of U.
    want = np.array([[0.2, 0.8] if RULES.sentiment(t)[0] == "positive" else [0.7, 0.3]
                     for (_, t, _) in texts], dtype=np.float32)
    assert np.array_equal(o["probs"], want)
    h = db.model_outputs("p-hard")
    assert h["kind"] == "hard" and h["probs"].sum(axis=1).tolist() == [1.0] * len(texts)
    assert db.model_outputs("sent") is None, "a dataset has none"

    def entropy(p):
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    probs = o["probs"].astype(np.float64)
    mi = (entropy(probs.mean(axis=0)) - np.mean([entropy(r) for r in probs])) / np.log(2)
    by = {c["name"]: c for c in db.select_prompt("sent", prefix="p-")}
    assert abs(by["p-soft"]["mutual_information"] - mi) < 1e-6  # f32 rows, f64 sums
    # Hard labels: MI is the label entropy.
    assert abs(by["p-hard"]["mutual_information"] - by["p-hard"]["output_entropy"]) < 1e-9
    assert {by["p-soft"]["mi_rank"], by["p-hard"]["mi_rank"]} == {1, 2}


def test_map_returns_coordinates_and_writes_pictures(tmp_path):
    import pandas as pd

    sample = FX / "engine" / "sample.jsonl"
    with taskdb.open(tmp_path / "m.taskdb") as db:
        db.import_jsonl(sample)
        m = db.map(method="demo")
        assert isinstance(m, taskdb.Map) and len(m) == 13
        assert m.space == "demo" and m.layout == "tsne" and m.report is None
        p = m[0]
        assert {"name", "version", "kind", "role", "x", "y", "tags", "neighbours"} <= set(p)
        # The neighbours are knn's answer.
        hits = db.knn(p["name"], k=5, method="demo")
        assert [n["name"] for n in p["neighbours"]] == [h.name for h in hits]
        # Deterministic, and a DataFrame.
        assert list(db.map(method="demo")) == list(m)
        df = m.to_pandas()
        assert len(df) == 13 and np.isfinite(df["x"]).all()
        # Pictures by extension; a frozen layout keeps old points where they were.
        for ext in ("svg", "png", "html"):
            r = db.map(tmp_path / ("m." + ext), method="demo", label_top=5).report
            assert r["points"] == 13 and r["labelled"] + len(r["unlabelled"]) == 5
            assert (tmp_path / ("m." + ext)).stat().st_size > 1000
        frozen = tmp_path / "layout.json"
        first = db.map(method="demo", frozen_layout=frozen)
        assert frozen.exists()
        again = db.map(method="demo", frozen_layout=frozen, layout="pca")
        assert [(q["x"], q["y"]) for q in again] == [(q["x"], q["y"]) for q in first]
        with pytest.raises(taskdb.InvalidInputError, match=r"\.svg, \.png, \.html or \.json"):
            db.map(tmp_path / "m.bmp", method="demo")
        with pytest.raises(taskdb.InvalidInputError, match="unknown layout"):
            db.map(method="demo", layout="umap")
        with pytest.raises(taskdb.NotFoundError, match="nothing to map"):
            db.map(method="demo", prefix="no-such-")
