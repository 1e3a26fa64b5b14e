#!/usr/bin/env python3
"""The layout rules `make lint` holds the tree to: no Rust source file over
900 lines, and no modules of a crate that refer to each other, directly or
round a longer loop (`use crate::a` or a path `crate::a::f` in b, and the
same of b in a, or through `super::`). A parent and its own child do not
count."""

import pathlib
import re
import sys

MAX_LINES = 900
ROOTS = ["common", "storage-node", "router", "fuse-client", "tests", "bench"]


def module_path(crate_src, file):
    """`fs::listing` for fuse-client/src/fs/listing.rs; "" for lib.rs."""
    parts = list(file.relative_to(crate_src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def imports(file, here):
    """The modules `file` (module path `here`) imports from, as paths."""
    found = set()
    text = file.read_text()
    code = "\n".join(line.split("//")[0] for line in text.splitlines())
    for m in re.finditer(r"(?:use\s+([^;]+);)|((?:crate|super)(?:::\w+)+)", code):
        for path in re.findall(r"((?:crate|super|self)(?:::\w+)+)", m.group(0)):
            parts = path.split("::")
            base = list(here)
            if parts[0] == "crate":
                base, parts = [], parts[1:]
            else:
                while parts and parts[0] in ("super", "self"):
                    if parts.pop(0) == "super":
                        base = base[:-1]
            # The deepest module named: items are lower-case paths we keep,
            # so take every prefix that is a module of the crate.
            for i in range(1, len(parts) + 1):
                found.add(tuple(base + parts[:i]))
    return found


def cycles(edges):
    """One cycle from each strongly connected group of modules (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    problems = []
    for root in ROOTS:
        for src in [pathlib.Path(root) / "src"]:
            if not src.is_dir():
                continue
            files = sorted(src.rglob("*.rs"))
            modules = {tuple(module_path(src, f)): f for f in files}
            graph = {}
            for mod, f in modules.items():
                lines = f.read_text().count("\n")
                if lines > MAX_LINES:
                    problems.append(f"{f}: {lines} lines (at most {MAX_LINES})")
                graph[mod] = {m for m in imports(f, list(mod)) if m in modules and m != mod}
            # Parents and their own children do not count.
            edges = {
                a: {b for b in targets if a != b[: len(a)] and b != a[: len(b)]}
                for a, targets in graph.items()
            }
            for cycle in cycles(edges):
                names = " -> ".join(str(modules[m]) for m in cycle)
                problems.append(f"modules import each other: {names}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
