"""taskdb: an embedded database of task embeddings, from Python.

Datasets and models live in one vector space (FUTE): a dataset's task embedding comes from its
(text, label) pairs, a model's from the labels it gives a fixed set of probe texts U, both
through the same surrogate encoder.

    import taskdb
    db = taskdb.open("tasks.taskdb")
    db.ingest_dataset("sst2", "data/sst2.jsonl")                      # a path, dicts or a DataFrame
    db.ingest_model("my-clf", predict=lambda texts: clf.predict(texts))  # any Python model
    db.knn("my-clf", k=5, kind="dataset").to_pandas()

Everything runs in the Rust library (the same code as the `taskdb` command); errors are
`taskdb.Error` subclasses carrying its messages, which name the file, row, field or entry.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _taskdb
from ._taskdb import (  # noqa: F401  (re-exported)
    CorruptError,
    DiskFullError,
    Error,
    FileError,
    IncompatibleError,
    InvalidInputError,
    LockedError,
    ModelError,
    NotFoundError,
    SnapshotInvalidError,
    SurrogateError,
    __version__,
)

__all__ = [
    "open", "Database", "Hit", "Hits", "Entry", "Map", "verify_snapshot", "diff",
    "Error", "NotFoundError", "InvalidInputError", "LockedError", "IncompatibleError",
    "CorruptError", "FileError", "SurrogateError", "ModelError", "DiskFullError",
    "SnapshotInvalidError",
]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Hit:
    """One neighbour: the entry, its kind and its exact similarity in the space searched."""

    id: int
    name: str
    version: int
    kind: str
    score: float
    space: str
    method: str


class Hits(list):
    """A list of `Hit`s, nearest first, with `.to_pandas()`."""

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame([h.__dict__ for h in self],
                            columns=["name", "version", "kind", "score", "space", "method", "id"])


class Map(list):
    """A map of one space: a list of points (dicts with `id`, `name`, `version`, `kind`,
    `role` — dataset, model or llm-prompt —, `tags`, `x`, `y`, `frozen` and `neighbours`),
    with the space, method and layout as attributes, the rendering report when a picture was
    written, and `.to_pandas()`."""

    def __init__(self, m: Dict[str, Any], report: Optional[Dict[str, Any]] = None):
        super().__init__(m["points"])
        self.space: str = m["space"]
        self.method: str = m["method"]
        self.layout: str = m["layout"]
        self.left_out: List[str] = m.get("left_out", [])
        self.report: Optional[Dict[str, Any]] = report

    def to_pandas(self):
        import pandas as pd

        rows = [{**{k: v for k, v in p.items() if k != "neighbours"},
                 "neighbours": [n["name"] for n in p["neighbours"]]} for p in self]
        return pd.DataFrame(rows, columns=["name", "version", "kind", "role", "x", "y", "tags",
                                           "neighbours", "frozen", "id"])


@dataclass(frozen=True)
class Entry:
    """One stored entry. `vectors` maps each method to a numpy array (dense spaces) or, for
    matrix spaces, to a `(u, s)` pair with the matrix `u.T @ diag(s) @ u` (`u` of shape
    `(rank, dim)`). Arrays are read-only views of the library's bytes (no copy)."""

    id: int
    name: str
    version: int
    kind: str
    tags: Dict[str, str]
    provenance: Dict[str, Any]
    created_at_ms: int
    latest: bool
    vectors: Dict[str, Any] = field(repr=False)
    spaces: Dict[str, str] = field(repr=False)


def _progress():
    """A progress callable drawing tqdm bars, or None when tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    state = {"bar": None}

    def report(event: str, name: str, n: Optional[int]) -> None:
        if event == "stage":
            if state["bar"] is not None:
                state["bar"].close()
            state["bar"] = tqdm(total=n, desc=name, leave=False)
        elif event == "advance" and state["bar"] is not None:
            state["bar"].update(n)
        elif event == "done" and state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    return report


def _rows_file(rows: Any, tmp: str) -> str:
    """A JSON-lines file of `rows` (a list of dicts or a pandas DataFrame) for the reader the
    command line uses, so that errors name rows the same way (row 1 is the first)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict(orient="records")
    path = os.path.join(tmp, "rows.jsonl")
    with builtins_open(path, "w", encoding="utf-8") as f:
        for i, r in enumerate(rows):
            if not isinstance(r, Mapping):
                raise InvalidInputError(
                    "row %d: expected a dict of columns (e.g. {'text': ..., 'label': ...}), got %s"
                    % (i + 1, type(r).__name__))
            f.write(json.dumps(_plain(r), ensure_ascii=False) + "\n")
    return path


def _plain(v: Any) -> Any:
    """numpy and pandas scalars as plain Python values, for JSON."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


builtins_open = open  # `open` below is taskdb's


class Database:
    """A taskdb database (or a snapshot, read-only). Use `taskdb.open`. Thread-safe; calls
    release the GIL. A context manager: `with taskdb.open(p) as db: ...` closes it."""

    def __init__(self, inner: "_taskdb.Database"):
        self._db = inner

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return "taskdb.Database(%r)" % self.path

    @property
    def path(self) -> str:
        return self._db.path

    @property
    def read_only(self) -> bool:
        return self._db.read_only

    def close(self) -> None:
        """Saves graphs and releases the file; later calls raise `taskdb.Error`."""
        self._db.close()

    # ---- ingestion -------------------------------------------------------------------------

    def ingest_dataset(self, name: str, data: Union[PathLike, Sequence[Mapping], Any], *,
                       text: str = "text", pair: Optional[str] = None, label: str = "label",
                       task: str = "auto", limit: Optional[int] = 2000, seed: int = 0,
                       methods: Optional[Sequence[str]] = None,
                       tags: Optional[Mapping[str, str]] = None,
                       progress: Union[bool, Callable, None] = True) -> Dict[str, Any]:
        """Computes and stores the task embedding of a labelled dataset.

        `data` is a path (JSONL, CSV or TSV, optionally .gz), a list of dicts, or a pandas
        DataFrame; `text`, `pair` and `label` name its columns. Returns the ingestion report
        (id, version, spaces, timings, warnings)."""
        cb = _progress() if progress is True else (progress or None)
        with tempfile.TemporaryDirectory(prefix="taskdb-") as tmp:
            if isinstance(data, (str, os.PathLike)):
                path, origin = os.fspath(data), ["python", "ingest_dataset", os.fspath(data)]
            else:
                path, origin = _rows_file(data, tmp), ["python", "ingest_dataset", "<in-memory rows>"]
            report = self._db.ingest_dataset_json(
                name, path, text=text, pair=pair, label=label, task=task, limit=limit, seed=seed,
                methods=list(methods) if methods else None, tags=dict(tags or {}),
                progress=cb, provenance=origin)
        return json.loads(report)

    def probe_texts(self) -> List[tuple]:
        """The probe set U that models label: `[(id, text, text_pair or None)]`."""
        return self._db.probe_texts()

    def ingest_model(self, name: str, *, predict: Optional[Callable] = None,
                     command: Optional[str] = None, predictions: Optional[PathLike] = None,
                     batch_size: int = 64, timeout: Optional[float] = None,
                     methods: Optional[Sequence[str]] = None,
                     tags: Optional[Mapping[str, str]] = None,
                     progress: Union[bool, Callable, None] = True) -> Dict[str, Any]:
        """Computes and stores the task embedding of a black-box model from its outputs on U.

        Give exactly one of:
        - `predict(texts) -> outputs`, called with batches of `batch_size` probe texts (a
          text pair arrives as a `(text, text_pair)` tuple); each output is a label (str, int
          or bool) or a dict of scores per label (probabilities);
        - `command`: a shell command speaking the JSON-lines protocol (as `taskdb ingest
          model --command`);
        - `predictions`: a JSON-lines file of `{"id", "label"}` or `{"id", "scores"}`.

        Nothing is written when `predict` raises or returns the wrong number of outputs."""
        given = [x is not None for x in (predict, command, predictions)]
        if sum(given) != 1:
            raise InvalidInputError("give exactly one of predict=, command= or predictions=")
        cb = _progress() if progress is True else (progress or None)
        if predict is None:
            origin = ["python", "ingest_model", "command=" + command if command else
                      "predictions=" + os.fspath(predictions)]
            return json.loads(self._db.ingest_model_json(
                name, command=command, predictions=os.fspath(predictions) if predictions else None,
                timeout=timeout, methods=list(methods) if methods else None,
                tags=dict(tags or {}), progress=cb, provenance=origin))
        texts = self._db.probe_texts()
        with tempfile.TemporaryDirectory(prefix="taskdb-") as tmp:
            path = os.path.join(tmp, "predictions.jsonl")
            with builtins_open(path, "w", encoding="utf-8") as f:
                for start in range(0, len(texts), batch_size):
                    batch = texts[start:start + batch_size]
                    inputs = [t if p is None else (t, p) for (_, t, p) in batch]
                    try:
                        outputs = list(predict(inputs))
                    except Exception as e:
                        raise ModelError("predict raised on probe texts %d..%d: %s: %s; nothing "
                                         "was written" % (start + 1, start + len(batch),
                                                          type(e).__name__, e)) from e
                    if len(outputs) != len(batch):
                        raise ModelError("predict returned %d outputs for a batch of %d probe "
                                         "texts (%d..%d); it must return one per text; nothing "
                                         "was written" % (len(outputs), len(batch), start + 1,
                                                          start + len(batch)))
                    for (pid, _, _), out in zip(batch, outputs):
                        f.write(json.dumps(_reply(pid, out)) + "\n")
            name_of = getattr(predict, "__qualname__", type(predict).__name__)
            return json.loads(self._db.ingest_model_json(
                name, predictions=path, methods=list(methods) if methods else None,
                tags=dict(tags or {}), progress=cb,
                provenance=["python", "ingest_model", "predict=" + name_of]))

    # ---- queries ---------------------------------------------------------------------------

    def knn(self, name: str, k: int = 5, *, kind: Optional[str] = None,
            method: Optional[str] = None) -> Hits:
        """The `k` stored entries nearest `name` (`name` or `name@version`; the query itself
        left out), nearest first, in the default method's space or `method`'s."""
        return Hits(Hit(**h) for h in json.loads(self._db.knn_json(name, k, kind, method)))

    def get(self, name: str) -> Entry:
        """One entry with its provenance (a dict) and vectors (numpy arrays)."""
        meta, raw = self._db.get_raw(name)
        m = json.loads(meta)
        vectors: Dict[str, Any] = {}
        spaces: Dict[str, str] = {}
        for key, space, shape, data in raw:
            arr = np.frombuffer(data, dtype="<f4").reshape(shape)
            method, _, part = key.partition(".")
            spaces[method] = space
            if part == "u":
                vectors[method] = (arr, None)
            elif part == "s":
                vectors[method] = (vectors[method][0], arr)
            else:
                vectors[method] = arr
        return Entry(vectors=vectors, spaces=spaces, **m)

    def list(self, *, kind: Optional[str] = None, prefix: Optional[str] = None,
             tags: Optional[Mapping[str, str]] = None, method: Optional[str] = None,
             all_versions: bool = False) -> List[Dict[str, Any]]:
        """Entries (latest versions unless `all_versions`), as dicts."""
        return json.loads(self._db.list_json(kind, prefix, dict(tags or {}) or None, method,
                                             all_versions))

    def import_jsonl(self, path: PathLike, *, batch_size: int = 1000, replace: bool = False,
                     resume: bool = False) -> Dict[str, int]:
        """Imports precomputed vectors (the `taskdb import` JSON-lines format: `{"name",
        "kind", "space", "vector", "tags"?, "provenance"?}` a line), validated whole before
        the first batch is written. `resume` skips lines identical to their name's latest
        version."""
        imported, skipped, batches = self._db.import_jsonl(os.fspath(path), batch_size, replace,
                                                           resume)
        return {"imported": imported, "skipped": skipped, "batches": batches}

    def remove(self, name: str) -> List[int]:
        """Deletes `name` (all versions) or `name@N`; returns the ids deleted."""
        return self._db.remove(name)

    def stats(self) -> Dict[str, Any]:
        return json.loads(self._db.stats_json())

    def recommend(self, target: str, k: int = 5, *, source_kind: Optional[str] = None,
                  method: Optional[str] = None, use_outcomes: bool = True,
                  lambda_: Optional[float] = None) -> List[Dict[str, Any]]:
        """Which stored tasks to train on before `target`, best first, with the evidence."""
        return json.loads(self._db.recommend_json(target, k, source_kind, method, use_outcomes,
                                                  lambda_))

    def select_prompt(self, dataset: str, *, prefix: Optional[str] = None,
                      tags: Optional[Mapping[str, str]] = None,
                      method: Optional[str] = None) -> List[Dict[str, Any]]:
        """Ranks stored (LLM, prompt) model entries (those named with `prefix`, or carrying
        `tags`) as prompts for `dataset` by FUTE's rule: the similarity of each model's task
        embedding to the dataset's, best first, with each one's output entropy on U beside
        (a prompt that answers one label for everything has entropy 0) and the mutual
        information between U's texts and the model's outputs (`mutual_information`, `mi_rank`;
        `None` for a model ingested before taskdb stored its outputs on U, with a warning)."""
        rows, note = self._db.select_prompt_json(dataset, prefix, dict(tags or {}) or None,
                                                 method)
        if note:
            warnings.warn(note, stacklevel=2)
        return json.loads(rows)

    def model_outputs(self, name: str) -> Optional[Dict[str, Any]]:
        """A model entry's outputs on U as stored at ingestion, or `None` (a dataset, an
        imported entry, or a model ingested before taskdb stored them): `rows` (each answered
        text's index in U, ascending), `labels`, `kind` (`"hard"` or `"soft"`), `probs` (one
        distribution over `labels` per row, shape rows × labels, float32; one-hot for hard
        labels), for hard labels `label_index` too, `probe_rows` and `probe_fingerprint`."""
        o = json.loads(self._db.model_outputs_json(name))
        if o is None:
            return None
        rows = np.asarray(o["rows"], dtype=np.uint32)
        k = len(o["labels"])
        values = o.pop("values")
        if o["kind"] == "hard":
            index = np.asarray(values, dtype=np.uint32)
            o["label_index"] = index
            probs = np.zeros((len(rows), k), dtype=np.float32)
            probs[np.arange(len(rows)), index] = 1.0
        else:
            probs = np.asarray(values, dtype=np.float32).reshape(len(rows), k)
        o["rows"], o["probs"] = rows, probs
        return o

    def compare(self, a: str, b: str) -> Dict[str, Any]:
        """Two tasks side by side: similarity and neighbour ranks per shared space."""
        return json.loads(self._db.compare_json(a, b))

    def add_outcome(self, source: str, target: str, value: float, **kw) -> int:
        """Records what training on `source` did to `target` (`metric`, `baseline`, `model`,
        `seed`, `note` optional); returns its id."""
        return self._db.add_outcome(source, target, value, **kw)

    def outcomes(self) -> List[Dict[str, Any]]:
        return json.loads(self._db.outcomes_json())

    # ---- audits ----------------------------------------------------------------------------

    def snapshot(self, out: PathLike, note: Optional[str] = None) -> Dict[str, Any]:
        """Writes a verifiable snapshot to `out` (which must not exist); returns its manifest
        (its `root` is the value to publish)."""
        return json.loads(self._db.snapshot_json(os.fspath(out), note))

    def export(self, out: PathLike, format: str = "jsonl") -> Dict[str, Any]:
        """Writes every live entry as JSON lines (one file, read back exactly by
        `import_jsonl` and `taskdb import`) or Parquet (a directory, one file per space, for
        pandas, DuckDB or a vector store such as LanceDB). See schema/EXPORT.md."""
        return json.loads(self._db.export_json(os.fspath(out), format))

    def map(self, out: Optional[PathLike] = None, *, method: Optional[str] = None,
            kind: Optional[str] = None, prefix: Optional[str] = None,
            tags: Optional[Mapping[str, str]] = None, layout: str = "tsne",
            neighbours: int = 5, frozen_layout: Optional[PathLike] = None,
            colour_tag: Optional[str] = None, label_top: int = 60, edges: int = 2,
            title: Optional[str] = None) -> "Map":
        """A map of one task space: each entry's coordinates (deterministic: t-SNE started
        from kernel PCA, or `layout="pca"`) from the space's exact similarities, with its
        nearest neighbours. With `out`, the picture is written too: `.svg`, `.png`, `.html`
        (one self-contained file; hover shows neighbours) or `.json`. `frozen_layout`: a map
        JSON file written earlier whose points keep their coordinates (written first when it
        does not exist). `colour_tag` colours points by a tag's value (e.g. "family")."""
        m, report = self._db.map_json(method, kind, prefix, dict(tags or {}) or None, layout,
                                      neighbours,
                                      None if frozen_layout is None else os.fspath(frozen_layout),
                                      None if out is None else os.fspath(out), colour_tag,
                                      label_top, edges, title)
        return Map(json.loads(m), None if report is None else json.loads(report))

    def log(self, since: int = 0) -> List[Dict[str, Any]]:
        """The write log from record `since` on."""
        return json.loads(self._db.log_json(since))

    def verify_log(self) -> Dict[str, Any]:
        """The write log's hash chain checked: `{"records", "last_seq", "head", "problems"}`."""
        return json.loads(self._db.verify_log_json())


def _reply(pid: int, out: Any) -> Dict[str, Any]:
    out = _plain(out)
    if isinstance(out, Mapping):
        return {"id": pid, "scores": {str(k): v for k, v in out.items()}}
    if isinstance(out, bool):
        out = str(out).lower()
    return {"id": pid, "label": out}


def open(path: PathLike, *, read_only: bool = False, surrogate: Optional[PathLike] = None,
         probe: Optional[PathLike] = None, device: str = "cpu", threads: int = 0,
         reference_cache: Optional[PathLike] = None) -> Database:
    """Opens (or creates) the database at `path`, or a snapshot file (verified, held in
    memory, read-only). `surrogate` (a directory with surrogate.json), `probe` (a probe-set
    file), `device` (`cpu` or `cuda[:N]`) and `threads` configure ingestion, as the command
    line's options do; by default the installed all-MiniLM-L6-v2 and the built-in U."""
    f = lambda p: os.fspath(p) if p is not None else None  # noqa: E731
    return Database(_taskdb.open(os.fspath(path), read_only, f(surrogate), f(probe), device,
                                 threads, f(reference_cache)))


def verify_snapshot(path: PathLike, root: Optional[str] = None) -> Dict[str, Any]:
    """Verifies a snapshot offline (against a published `root` when given). Returns the report:
    `ok`, `root`, `problems` (each naming the entry, space or section that failed)."""
    return json.loads(_taskdb.verify_snapshot_json(os.fspath(path), root))


def diff(a: PathLike, b: PathLike, neighbours: Optional[int] = None) -> Dict[str, Any]:
    """What changed from `a` to `b` (each a database or a snapshot)."""
    return json.loads(_taskdb.diff_json(os.fspath(a), os.fspath(b), neighbours))
