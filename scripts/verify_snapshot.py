#!/usr/bin/env python3
"""Independent verifier of taskdb snapshot files (format 1).

Written only from schema/SNAPSHOT.md (and schema/FORMAT.md, "Vector record"), standard library
only, without taskdb; it runs the checks of SNAPSHOT.md "Verifying" in order.

    python3 scripts/verify_snapshot.py FILE [--root HEX] [--json]

Exit 0 and `ok root <hex>` when valid; else exit 12 and `problem: <what>: <detail>` per problem;
exit 6 when FILE does not start with the magic or is an intact snapshot of a newer format.
--json prints {"ok", "root", "entries", "spaces", "outcomes", "log_records", "problems"} instead.
"""
import argparse, hashlib, json, math, struct, sys, zlib

MAGIC = b"TDBSNAP\x00"
HEADER, FOOTER = 16, 48  # magic, format u32, flags u32 | manifest_offset u64, file_digest, magic
KINDS = {1: "space", 2: "entry", 3: "outcome", 4: "history", 5: "write-log", 6: "manifest"}
GROUPS = {1: "spaces", 2: "entries", 3: "outcomes"}  # the content kinds, and their manifest lists


class Bad(Exception):
    """A payload that does not decode or fails a check."""


def need(cond, msg):
    if not cond:
        raise Bad(msg)


def sha(data):
    return hashlib.sha256(data).digest()


def digest_ok(data):
    return data.endswith(MAGIC) and sha(data[:-40]) == data[-40:-8]


def mth(ds):
    """RFC 6962 Merkle tree hash over the leaf hashes ds."""
    if len(ds) <= 1:
        return ds[0] if ds else sha(b"")
    k = 1 << ((len(ds) - 1).bit_length() - 1)  # the largest power of two < len(ds)
    return sha(b"\x01" + mth(ds[:k]) + mth(ds[k:]))


def no_constant(name):
    raise ValueError("%s is not JSON" % name)


def load_json(payload):
    """A JSON object (NaN and Infinity, which Python would accept, are not JSON)."""
    try:
        v = json.loads(payload.decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise Bad("payload is not JSON: %s" % e)
    need(isinstance(v, dict), "payload is not a JSON object")
    return v


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


NUM = (int, float)
TYPES = {int: "an integer", str: "a string", list: "a list", dict: "an object", NUM: "a number"}  # for messages


def has(obj, what, **fields):
    """Checks that the JSON object obj has these fields, of these types; returns obj."""
    for f, t in fields.items():
        v = obj.get(f) if isinstance(obj, dict) else None
        need(is_int(v) if t is int else isinstance(v, t) and not isinstance(v, bool),
             "%s lacks %s %r" % (what, TYPES[t], f))
    return obj


def check_vector(raw, space, where):
    """One vector record: dense (tag 0) or low rank (tag 1), FORMAT.md "Vector record"."""
    need(len(raw) >= 9, "%s: vector record of %d bytes is too short" % (where, len(raw)))
    tag, dim, rank = raw[0], struct.unpack_from("<I", raw, 1)[0], struct.unpack_from("<I", raw, 5)[0]
    need(tag in (0, 1), "%s: unknown vector tag %d" % (where, tag))
    start, count = (5, dim) if tag == 0 else (9, dim * rank + rank)
    need(len(raw) == start + 4 * count + 4, "%s: %d bytes, but tag %d dim %d%s needs %d" % (
        where, len(raw), tag, dim, " rank %d" % rank if tag else "", start + 4 * count + 4))
    need(zlib.crc32(raw[:-4]) & 0xFFFFFFFF == struct.unpack_from("<I", raw, len(raw) - 4)[0],
         "%s: CRC-32 does not match" % where)
    kind = space["embedding"]["type"]
    need((tag == 1) == (kind == "low_rank"), "%s: tag %d in a %s space" % (where, tag, kind))
    need(dim == space["dim"], "%s: dim %d, space %r has dim %d" % (where, dim, space["name"], space["dim"]))
    values = struct.unpack_from("<%df" % count, raw, start)
    need(all(math.isfinite(v) for v in values), "%s: a value is not finite" % where)
    norm = values[dim * rank:] if tag else values
    # A vector whose every value is zero or subnormal (|x| < 2**-126) counts as zero.
    need(any(abs(v) >= 2.0 ** -126 for v in norm), "%s: norm is zero (or every value subnormal)" % where)


def check_entry(payload, spaces):
    """An entry payload: head_len u32, head JSON, vector records; returns "name@version"."""
    need(len(payload) >= 4, "payload shorter than head_len")
    head_len = struct.unpack_from("<I", payload, 0)[0]
    need(4 + head_len <= len(payload), "head_len %d runs past the payload (%d bytes)" % (head_len, len(payload)))
    head = has(load_json(payload[4:4 + head_len]), "the head", name=str, version=int, kind=str, tags=list,
               provenance=str, vectors=list)
    need(head["kind"] in ("dataset", "model"), "the head's kind %r is not dataset or model" % head["kind"])
    need(all(isinstance(t, list) and len(t) == 2 for t in head["tags"]), "the head's tags are not [key, value] pairs")
    vecs = [has(v, "a vector in the head", method=str, space=str, bytes=int) for v in head["vectors"]]
    need(all(v["bytes"] >= 0 for v in vecs), "a vector in the head has negative bytes")
    outputs = head.get("outputs")
    need(outputs is None or (is_int(outputs) and outputs >= 0 and head["kind"] == "model"),
         "the head's outputs is not a model's byte count")
    pos, total = 4 + head_len, sum(v["bytes"] for v in vecs) + (outputs or 0)
    need(pos + total == len(payload), "the head gives its vectors and outputs %d bytes, the payload has %d "
         "after the head" % (total, len(payload) - pos))
    for v in vecs:
        where = "vector %r" % v["method"]
        need(v["space"] in spaces, "%s: space %r is not a space record" % (where, v["space"]))
        check_vector(payload[pos:pos + v["bytes"]], spaces[v["space"]], where)
        pos += v["bytes"]
    if outputs is not None:
        check_outputs(payload[pos:pos + outputs])
    return "%s@%s" % (head["name"], head["version"])


def check_outputs(raw):
    """A model's outputs on U, FORMAT.md "Model outputs record": magic, layout, CRC-32."""
    need(len(raw) >= 27 and raw[:4] == b"TDo1", "outputs on U: no TDo1 magic")
    need(zlib.crc32(raw[:-4]) & 0xFFFFFFFF == struct.unpack_from("<I", raw, len(raw) - 4)[0],
         "outputs on U: CRC-32 does not match")
    kind, probe_rows, n, k, flen = struct.unpack_from("<BIIIH", raw, 4)
    need(kind in (0, 1, 2), "outputs on U: unknown kind %d" % kind)
    pos = 19 + flen
    for _ in range(k):
        need(pos + 4 <= len(raw) - 4, "outputs on U: labels run past the record")
        pos += 4 + struct.unpack_from("<I", raw, pos)[0]
    width = {0: 2 * n, 1: 4 * n * k, 2: 4 * n}[kind]
    need(pos + 4 * n + width == len(raw) - 4, "outputs on U: %d rows of %d labels do not fill the record" % (n, k))
    rows = struct.unpack_from("<%dI" % n, raw, pos)
    need(all(a < b for a, b in zip(rows, rows[1:])) and all(r < probe_rows for r in rows),
         "outputs on U: rows not ascending inside U")


def check_payload(r, spaces, by):
    """Step 6 for r = (offset, kind, payload, digest, index in its kind); returns a content record's name."""
    if r[1] == 1:
        s = has(load_json(r[2]), "the space", name=str, dim=int, embedding=dict)
        need(s["embedding"].get("type") in ("dense", "low_rank"), "the space's embedding type is not dense or low_rank")
        need(s["name"] not in spaces, "space %r appears twice" % s["name"])
        spaces[s["name"]] = s
        return s["name"]
    if r[1] == 2:
        return check_entry(r[2], spaces)
    if r[1] == 3:
        o = has(load_json(r[2]), "the outcome", source=str, target=str, value=NUM)
        return "%s -> %s" % (o["source"], o["target"])
    if r[1] == 4:
        h = has(load_json(r[2]), "the history", db_uuid=str, generation=int, next_id=int, next_space_id=int,
                name_seq=list, spaces=list, entries=list, outcomes=list)
        need(len(h["db_uuid"]) == 32 and set(h["db_uuid"]) <= set("0123456789abcdef"), "db_uuid is not 16 bytes' hex")
        for k, key in GROUPS.items():
            n = len(by[k])
            need(len(h[key]) == n, "%s lists %d items for %d %s records" % (key, len(h[key]), n, KINDS[k]))
    if r[1] == 5:
        rec = has(load_json(r[2]), "the record", seq=int, time_ms=int, op=str, generation=int, command=str,
                  taskdb_version=str, prev=str)  # entries, outcomes and detail may be absent
        for e in has(rec, "the record", entries=list)["entries"] if "entries" in rec else []:
            has(e, "an item of entries", id=int, name=str, version=int)
    if r[1] == 6:
        m = has(load_json(r[2]), "the manifest", format=int, taskdb_version=str, created_at_ms=int,
                source_db_uuid=str, generation=int, log_seq=int, root=str, history_sha256=str, spaces=list,
                entries=list, outcomes=list, log_records=int)
        for key in GROUPS.values():
            for it in m[key]:
                has(it, "an item of %s" % key, name=str, sha256=str)


def verify(data, want_root, bad):
    """Runs every check, calling bad(what, detail) for each problem; returns (root or None, records)."""
    # 1-2. header and footer
    if len(data) < HEADER + FOOTER:
        bad("file", "%d bytes, too short for a header and a footer" % len(data))
        return None, []
    if not data.startswith(MAGIC):  # one byte off (main sent back anything further off)
        bad("header", "its magic bytes are damaged")
    fmt, flags = struct.unpack_from("<II", data, 8)
    if fmt != 1:  # (main has already sent back a larger format with a good file_digest)
        bad("header", "format is %d, expected 1" % fmt)
    if flags != 0:
        bad("header", "flags are %#x, expected 0" % flags)
    if not data.endswith(MAGIC):
        bad("footer", "does not end with the magic (truncated or damaged)")
    elif not digest_ok(data):
        bad("footer", "file_digest does not match the file")
    # 3. framing, kind order, record digests
    body_end = len(data) - FOOTER
    records, pos, seen, last, misplaced = [], HEADER, {}, 0, []
    while pos < body_end:
        kind = data[pos]
        n = struct.unpack_from("<Q", data, pos + 1)[0] if pos + 9 <= body_end else None
        if n is None or pos + 9 + n + 32 > body_end:
            bad("framing", "the record at offset %d (kind %d, len %s) runs past the end of the records at %d "
                "(truncated, or a length damaged)" % (pos, kind, n, body_end))
            return None, records
        seen[kind] = seen.get(kind, 0) + 1
        records.append((pos, kind, data[pos + 9:pos + 9 + n], data[pos + 9 + n:pos + 41 + n], seen[kind] - 1))
        if kind not in KINDS or kind < last or last == 6:
            misplaced.append(records[-1])
        last = max(last, kind)
        pos += 41 + n
    by = {k: [r for r in records if r[1] == k] for k in KINDS}
    for k in (4, 6):
        if len(by[k]) != 1:
            bad("framing", "%d %s records, expected exactly one" % (len(by[k]), KINDS[k]))
    manifest = None  # stays None when there is no readable manifest to compare with
    if records and records[-1][1] == 6:
        try:
            manifest = load_json(records[-1][2])
        except Bad as e:
            bad("manifest", str(e))
    elif records:
        bad("framing", "the last record has kind %d, not the manifest" % records[-1][1])
    m = manifest or {}

    def item(r):  # the manifest's leaf-list item for content record r, or {}
        lst = m.get(GROUPS.get(r[1]))
        return lst[r[4]] if isinstance(lst, list) and r[4] < len(lst) and isinstance(lst[r[4]], dict) else {}

    def label(r):  # "entry 3 of 13 (sst2@1)", named as in the manifest
        k, name = r[1], item(r).get("name")
        if k in GROUPS or k == 5:
            return "%s %s%d of %d%s" % (KINDS[k], "record " if k == 5 else "", r[4] + 1, len(by[k]),
                                       " (%s)" % name if name is not None else "")
        return KINDS.get(k, "the record at offset %d" % r[0])

    for r in misplaced:
        bad(label(r), "unknown kind %d" % r[1] if r[1] not in KINDS else
            "out of order (spaces, entries, outcomes, history, write-log, manifest)")
    for r in records:
        if sha(b"\x00" + bytes([r[1]]) + r[2]) != r[3]:
            bad(label(r), "the record digest does not match its kind and payload")
    # 4. manifest: position, leaf lists, history_sha256, log_records
    manifest_offset = struct.unpack_from("<Q", data, body_end)[0]
    if manifest is not None:
        if records[-1][0] != manifest_offset:
            bad("manifest", "manifest_offset is %d, the manifest is at %d" % (manifest_offset, records[-1][0]))
        if m.get("format") != 1:
            bad("manifest", "format is %s, expected 1" % m.get("format"))
        for k, key in GROUPS.items():
            lst = m.get(key)
            if not isinstance(lst, list) or len(lst) != len(by[k]):
                bad("manifest", "%s lists %s items, the file has %d %s records"
                    % (key, len(lst) if isinstance(lst, list) else "no", len(by[k]), KINDS[k]))
                continue
            for r in by[k]:
                if item(r).get("sha256") != r[3].hex():
                    bad(label(r), "the manifest's sha256 does not match the record digest")
        if by[4] and m.get("history_sha256") != by[4][0][3].hex():
            bad("history", "the manifest's history_sha256 does not match the history record digest")
        if m.get("log_records") != len(by[5]):
            bad("manifest", "log_records is %s, the file has %d write-log records" % (m.get("log_records"), len(by[5])))
    # 5. root
    root = mth([r[3] for r in records if r[1] in GROUPS]).hex()
    if manifest is not None and m.get("root") != root:
        bad("root", "the manifest says %s, the records give %s" % (m.get("root"), root))
    if want_root is not None and want_root.lower() != root:
        bad("root", "expected %s (--root), the records give %s" % (want_root, root))
    # 6. payloads
    spaces = {}
    for r in records:
        try:
            name, listed = check_payload(r, spaces, by), item(r).get("name")
            need(listed in (None, name), "the payload names %s, the manifest %s" % (name, listed))
        except Bad as e:
            bad(label(r), str(e))
    # 7. write-log chain
    prev = "0" * 64
    for i, r in enumerate(by[5]):
        try:
            rec = load_json(r[2])
            need(is_int(rec.get("seq")) and rec["seq"] == i + 1, "seq is %s, expected %d" % (rec.get("seq"), i + 1))
            need(rec.get("prev") == prev, "prev is %s, expected %s" % (rec.get("prev"), prev))
        except Bad as e:
            bad(label(r), str(e))
        prev = hashlib.sha256(r[2]).hexdigest()
    if by[5] and manifest is not None:
        if m.get("log_head") != prev:
            bad("write-log", "the manifest's log_head is %s, the last record hashes to %s" % (m.get("log_head"), prev))
        if m.get("log_seq") != len(by[5]):
            bad("write-log", "the manifest's log_seq is %s, the last record's seq %d" % (m.get("log_seq"), len(by[5])))
    return root, records


def main():
    ap = argparse.ArgumentParser(description="Verify a taskdb snapshot (schema/SNAPSHOT.md).")
    ap.add_argument("file")
    ap.add_argument("--root", help="the root the snapshot must have (hex)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:
        print("error: cannot read %s: %s" % (args.file, e), file=sys.stderr)
        return 2
    head = data[:8]
    if not head or sum(a == b for a, b in zip(head, MAGIC)) < len(head) - 1:
        print("error: %s is not a taskdb snapshot (it does not start with TDBSNAP)" % args.file, file=sys.stderr)
        return 6
    fmt = struct.unpack_from("<I", data, 8)[0] if len(data) >= HEADER + FOOTER else 1
    if fmt > 1 and digest_ok(data):
        print("error: %s is snapshot format %d, newer than this verifier: upgrade taskdb" % (args.file, fmt),
              file=sys.stderr)
        return 6
    problems, root, records = [], None, []
    try:
        root, records = verify(data, args.root, lambda what, detail: problems.append((what, detail)))
    except Exception as e:  # damaged input must never end in a traceback
        problems.append(("internal", "%s: %s" % (type(e).__name__, e)))
    count = lambda k: sum(1 for r in records if r[1] == k)
    if args.json:
        print(json.dumps({"ok": not problems, "root": root, "entries": count(2), "spaces": count(1),
                          "outcomes": count(3), "log_records": count(5),
                          "problems": [{"what": w, "detail": d} for w, d in problems]}))
    else:
        for w, d in problems:
            print("problem: %s: %s" % (w, d))
        if not problems:
            print("ok root %s" % root)
    return 12 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
