#!/usr/bin/env python3
"""The house rules of issue 9, checked mechanically (run by .ci/run):

* no Rust source file under src/ longer than 700 lines;
* no function under src/ longer than 120 lines (from its `fn` line to its closing brace);
* no import loop between the top-level modules of any crate of the workspace (`crate::a`
  using `crate::b` and `crate::b` using `crate::a`, directly or through others). Sub-modules
  of one module (`db/open.rs`, `db/write.rs`) count as that module; a name re-exported at the
  crate root (`crate::TaskDb`) counts as its module; comments, `#[cfg(test)] mod tests`,
  `lib.rs`, `testing.rs` (test support) and binaries are outside the graph.

Usage: python3 scripts/house_check.py [ROOT]   (exit 1 and a list of offenders if a rule breaks)
"""
import os
import re
import sys

MAX_FILE = 700
MAX_FN = 120

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
problems = []

FN = re.compile(
    r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def strip(line):
    """The line without string/char literals and // comments (enough for brace counting)."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    i = line.find("//")
    return line[:i] if i >= 0 else line


def functions(path):
    """(name, first line, length in lines) of every fn with a body, nested ones included."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    for i, first in enumerate(lines):
        m = FN.match(first)
        if not m:
            continue
        depth, opened = 0, False
        for j in range(i, len(lines)):
            s = strip(lines[j])
            if not opened and ";" in s and "{" not in s:
                break  # a declaration without a body
            for ch in s:
                if ch == "{":
                    depth += 1
                    opened = True
                elif ch == "}":
                    depth -= 1
            if opened and depth <= 0:
                out.append((m.group(7), i + 1, j - i + 1))
                break
    return out


def crate_graph(src, limits):
    """The module graph of one crate (and, with `limits`, the file and function rules)."""
    root_names = {}
    lib = open(os.path.join(src, "lib.rs"), encoding="utf-8").read()
    for m in re.finditer(r"pub use (\w+)::(\{[^}]*\}|\w+);", lib):
        for name in re.findall(r"\w+", m.group(2)):
            root_names[name] = m.group(1)
    uses = {}
    for dirpath, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            text = open(p, encoding="utf-8").read()
            if limits:
                n = text.count("\n")
                if n > MAX_FILE:
                    problems.append(f"{rel}: {n} lines (at most {MAX_FILE})")
                for name, line, length in functions(p):
                    if length > MAX_FN:
                        problems.append(
                            f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_FN})")
            top = os.path.relpath(p, src).split(os.sep)
            if top[0] == "bin" or top[0] in ("lib.rs", "testing.rs", "main.rs"):
                continue
            me = top[0][:-3] if top[0].endswith(".rs") else top[0]
            body = text.split("#[cfg(test)]\nmod tests")[0]
            body = "\n".join(strip(l) for l in body.split("\n"))
            uses.setdefault(me, set())
            for m in re.finditer(r"crate::(\w+)", body):
                other = root_names.get(m.group(1), m.group(1))
                if other != me and other != "testing":
                    uses[me].add(other)
    return uses


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                found.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    return found


crates = [("taskdb", os.path.join(root, "src"), True)]
cdir = os.path.join(root, "crates")
for c in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
    if os.path.isfile(os.path.join(cdir, c, "src", "lib.rs")):
        crates.append((c, os.path.join(cdir, c, "src"), False))
modules = 0
for name, path, limits in crates:
    g = crate_graph(path, limits)
    modules += len(g)
    for c in cycles(g):
        problems.append(f"import loop in {name}: " + " -> ".join(c))

if problems:
    print("house_check: %d problem(s)" % len(problems))
    for p in problems:
        print("  " + p)
    sys.exit(1)
print("house_check: ok (src/: files <= %d lines, functions <= %d lines; no import loop among the "
      "%d modules of %d crates)" % (MAX_FILE, MAX_FN, modules, len(crates)))
