#!/usr/bin/env python3
"""Prints which top-level modules of src/ each top-level module uses outside its tests, and the
cycles among them. `crate::a::b` and `crate::{a, b::c}` both count; `main.rs` counts
`tracetopics::`. `config/` and `store/` are split into their files (`config/types`, `store/topics`,
...): the root `Config` gathers every stage's section while the stages use its leaf types, and
`store/` holds, beside the span path's tables, one file of tables per later stage. Test code (`*tests.rs`, `#[cfg(test)] mod ...` blocks) is left out.
Usage: scripts/import_graph.py [src-dir]"""
import os, re, sys

src = sys.argv[1] if len(sys.argv) > 1 else "src"
ROOT_ITEMS = {"RunningSidecar": "app", "Sidecar": "app", "Config": "config"}
SPLIT = {m: sorted(f[:-3] for f in os.listdir(os.path.join(src, m)) if f.endswith(".rs") and f != "mod.rs")
         for m in ("config", "store")}
SUB = "|".join(f"{m}::(?:{'|'.join(files)})\\b" for m, files in SPLIT.items())

def strip_tests(text):
    # Cut each `#[cfg(test)]` item that is a `mod` (inline or file) up to its closing brace.
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*(pub )?mod ", lines[i + 1]):
            if lines[i + 1].rstrip().endswith(";"):
                i += 2
                continue
            depth, i = 0, i + 1
            while i < len(lines):
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
                if depth <= 0:
                    break
            continue
        out.append(lines[i]); i += 1
    return "\n".join(out)

def targets(text, prefix):
    found = set()
    for m in re.finditer(prefix + r"::(\{[^}]*(?:\{[^}]*\}[^}]*)*\}|" + SUB + r"|\w+)", text):
        part = m.group(1).replace("::", "/")
        names = re.findall(r"(?:^|[{,])\s*(" + SUB + r"|\w+)", part) if part.startswith("{") else [part]
        names = [n.replace("::", "/") for n in names]
        for n in names:
            found.add(ROOT_ITEMS.get(n, n))
    return found

units = []
for entry in sorted(os.listdir(src)):
    path = os.path.join(src, entry)
    name = entry[:-3] if entry.endswith(".rs") else entry
    if name == "lib":
        continue
    files = [path] if os.path.isfile(path) else [
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
        if f.endswith(".rs") and not f.endswith("tests.rs")]
    if name in SPLIT:
        units += [(f"{name}/{os.path.basename(f)[:-3]}".replace(f"{name}/mod", name), [f]) for f in sorted(files)]
    else:
        units.append((name, files))

modules = {}
for name, files in units:
    uses = set()
    for f in files:
        text = strip_tests(open(f).read())
        uses |= targets(text, "crate")
        if name == "main":
            uses |= targets(text, "tracetopics")
    modules[name] = sorted(uses - {name})

for name, uses in modules.items():
    print(f"{name:21} -> {' '.join(uses) or '(none)'}")

# Direct two-way edges, then strongly connected components (modules that reach each other).
pairs = sorted({tuple(sorted((a, b))) for a, us in modules.items() for b in us if a in modules.get(b, ())})
print("two-way edges:", ", ".join(f"{a}<->{b}" for a, b in pairs) or "none")
reach = {m: set(u) for m, u in modules.items()}
changed = True
while changed:
    changed = False
    for m in reach:
        extra = set().union(*(reach.get(u, set()) for u in reach[m])) - reach[m]
        if extra:
            reach[m] |= extra; changed = True
components = sorted({tuple(sorted({m} | {o for o in reach[m] if m in reach.get(o, ())}))
                     for m in reach if any(m in reach.get(o, ()) for o in reach[m])})
for c in components:
    print("cycle among:", " ".join(c))
