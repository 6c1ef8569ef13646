"""The layout's import rules (docs/architecture.md, "Packages and the directions of imports"), checked over the
source of every module in src/: every import counts, function-local and `TYPE_CHECKING` ones too.

- no circles: no module imports itself through others (`from pkg import mod` imports `pkg` first, so it counts
  as an import of the package's `__init__` too);
- layers: a module imports only its own layer and those below it, never one above (core imports no domain;
  domains import no entry point or the wiring that assembles the application);
- the application never imports the benchmarks (they live outside src/ and build apps of their own);
- imports are at the top of a module: one inside a function only where it keeps a heavy dependency out of every
  start-up (LOCAL_IMPORTS says which and why).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

# Top to bottom. A module belongs to the first layer naming it or a package above it; the middle layer is
# everything else.
LAYERS = (
    ("entry points and assembly", ("retento.api", "retento.cli", "retento.worker", "retento.bootstrap",
                                   "retento.models", "retento.migrate", "retento.migrations")),
    ("domains", ()),
    ("core", ("retento.core",)),
)
OUTSIDE = ("benchmarks", "tests")  # never imported by the application
LOCAL_IMPORTS = {  # (module, what it imports inside a function): why
    ("retento.segments.ltv", "lifetimes"): "pulls in pandas and scipy (seconds), for the LTV figures only",
}


def modules(root: Path) -> dict[str, Path]:
    mods = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def imported(name: str, path: Path) -> set[str]:
    """Every absolute module name the file imports (and, for `from x import y`, `x.y` as well: it may be a
    module; callers keep the names that are)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between the modules under root, every name each module imports)."""
    mods = modules(root)
    names = {m: imported(m, p) for m, p in mods.items()}
    edges = {m: set() for m in mods}
    for m, targets in names.items():
        for t in targets:
            while t and t not in mods:  # `import retento.db` -> retento.db; `a.b.func` -> a.b
                t = t.rpartition(".")[0]
            if t and t != m:
                edges[m].add(t)
    return edges, names


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return sorted(found)


def layer(module: str, layers=LAYERS) -> int:
    middle = next(i for i, (_, prefixes) in enumerate(layers) if not prefixes)
    for i, (_, prefixes) in enumerate(layers):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return middle


def upward(edges: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """Imports of a layer above the importer's: 'importer -> imported (layer -> layer)'."""
    out = []
    for m in sorted(edges):
        for t in sorted(edges[m]):
            if layer(t, layers) < layer(m, layers):
                out.append(f"{m} -> {t} ({layers[layer(m, layers)][0]} -> {layers[layer(t, layers)][0]})")
    return out


def outside(names: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {n}" for m, ns in names.items() for n in ns if n.split(".")[0] in OUTSIDE)


def local_imports(root: Path) -> list[tuple[str, str]]:
    """(module, imported module) for every import inside a function."""
    out = []
    for name, path in modules(root).items():
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                out += [(name, n.module or "." if isinstance(n, ast.ImportFrom) else n.names[0].name)
                        for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
    return sorted(set(out))


EDGES, NAMES = graph(SRC)


def test_no_import_circles():
    assert circles(EDGES) == []


def test_no_module_imports_a_layer_above_its_own():
    assert upward(EDGES) == []


def test_the_application_does_not_import_benchmarks_or_tests():
    assert outside(NAMES) == []


def test_imports_inside_functions_only_where_listed():
    assert [i for i in local_imports(SRC) if i not in LOCAL_IMPORTS] == []


def test_every_module_is_checked():
    assert len(EDGES) > 150 and "retento.core.http" in EDGES and "retento.segments.service" in EDGES
    assert layer("retento.core.http") == 2 and layer("retento.cli") == 0 and layer("retento.orders.service") == 1


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checks_find_a_circle_an_upward_import_and_an_import_of_benchmarks(tmp_path):
    root = _tree(tmp_path, {
        "retento/__init__.py": "",
        "retento/api.py": "",
        "retento/cli.py": "from retento.orders import service\n",
        "retento/core/__init__.py": "",
        "retento/core/db.py": "def f():\n    from retento.orders.models import Order\n",  # function-local
        "retento/orders/__init__.py": "",
        "retento/orders/models.py": "from retento.core import db\n",
        "retento/orders/service.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                     "    from retento.api import app\nimport benchmarks.targets\n",
        "retento/sites/__init__.py": "from retento.sites import service\n",
        "retento/sites/service.py": "from . import models\n",
        "retento/sites/models.py": "from retento.sites import service\n",
    })
    edges, names = graph(root)
    assert circles(edges) == [["retento.core.db", "retento.orders.models"],
                              ["retento.sites", "retento.sites.models", "retento.sites.service"]]
    assert upward(edges) == [
        "retento.core.db -> retento.orders.models (core -> domains)",
        "retento.orders.service -> retento.api (domains -> entry points and assembly)",
    ]
    assert outside(names) == ["retento.orders.service -> benchmarks.targets"]
    assert local_imports(root) == [("retento.core.db", "retento.orders.models")]
    assert circles(graph(SRC)[0]) == circles(EDGES)  # deterministic


if __name__ == "__main__":  # python tests/unit/test_architecture.py: the findings, one a line
    for c in circles(EDGES):
        print("circle:", " <-> ".join(c))
    for line in upward(EDGES) + outside(NAMES):
        print("upward:", line)
    local = [f"{m} imports {i} in a function" for m, i in local_imports(SRC) if (m, i) not in LOCAL_IMPORTS]
    for line in local:
        print("local:", line)
    sys.exit(bool(circles(EDGES) or upward(EDGES) or outside(NAMES) or local))
