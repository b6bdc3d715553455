"""The package's two layers, read from the source with ``ast`` (nothing is imported).

- the utility (``lidutils/*.py``) never imports the book layer (``lidutils.book``);
- no import cycle between package modules;
- imports between package modules sit at module top (none inside a function);
- no module imports another module's private (``_underscore``) names. The private
  *modules* ``lidutils._device``, ``_validation``, ``_progress`` are the package's own
  helpers and may be imported anywhere in it;
- the old module paths (``lidutils.claims`` …) are one-line shims, skipped here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lidutils"
BOOK = "book"
SHIM_MARK = "sys.modules[__name__] = _m"


def _module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node, module, is_pkg):
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def package_imports(root):
    """``{module: [(target, names, line, in_function)]}`` for every import of the package by itself."""
    top = root.name
    out = {}
    for path in sorted(root.rglob("*.py")):
        src = path.read_text()
        if SHIM_MARK in src:
            continue
        module = _module_name(path, root)
        tree = ast.parse(src)
        parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        rows = out.setdefault(module, [])
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [(a.name, ()) for a in node.names if a.name.split(".")[0] == top]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(node, module, path.name == "__init__.py")
                if target.split(".")[0] != top:
                    continue
                names = tuple(a.name for a in node.names)
                # `from lidutils import x` imports the module lidutils.x when there is one
                folder = root.parent.joinpath(*target.split("."))
                subs = [n for n in names if (folder / f"{n}.py").exists() or (folder / n).is_dir()]
                targets = [(f"{target}.{n}", ()) for n in subs]
                rest = tuple(n for n in names if n not in subs)
                if rest or not subs:
                    targets.append((target, rest))
            else:
                continue
            p, in_func = parents.get(node), False
            while p is not None:
                in_func = in_func or isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                p = parents.get(p)
            rows += [(t, names, node.lineno, in_func) for t, names in targets]
    return out


def shim_targets(root):
    """``{old path: book module}`` of the one-line shims (an import of a shim is an import of its target)."""
    out = {}
    for path in root.glob("*.py"):
        src = path.read_text()
        if SHIM_MARK in src:
            node = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom))
            out[_module_name(path, root)] = f"{node.module}.{node.names[0].name}"
    return out


def problems(root):
    """Every breach of the layering rules, as readable lines (empty: all kept)."""
    top = root.name
    book = f"{top}.{BOOK}"
    imports = package_imports(root)
    shims = shim_targets(root)
    imports = {m: [(shims.get(t, t), n, line, f) for t, n, line, f in rows] for m, rows in imports.items()}
    bad = []
    graph = {m: set() for m in imports}
    for module, rows in imports.items():
        in_book = module == book or module.startswith(book + ".")
        for target, names, line, in_func in rows:
            if target == top and module != top:
                continue  # `from lidutils import __version__` (modules of the root are resolved above)
            if not in_book and module != top and (target == book or target.startswith(book + ".")):
                bad.append(f"{module}:{line}: utility module imports the book layer ({target})")
            if in_func:
                bad.append(f"{module}:{line}: import of {target} inside a function")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != module:
                bad.append(f"{module}:{line}: private names {private} of {target}")
            if target in graph and target != module and module != top:
                graph[module].add(target)
    # cycles (depth-first search over the module graph)
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                bad.append("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return bad


def test_lidutils_layers_hold():
    assert problems(PACKAGE) == []


def _fake(tmp_path, files):
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", "book/__init__.py": "", **files}.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return root


@pytest.mark.parametrize("files, expected", [
    ({"a.py": "from pkg import b\n", "b.py": "from pkg.a import x\n"}, "import cycle"),
    ({"a.py": "from pkg.book import c\n", "book/c.py": "x = 1\n"}, "utility module imports the book layer"),
    ({"a.py": "def f():\n    from pkg.b import y\n    return y\n", "b.py": "y = 1\n"}, "inside a function"),
    ({"a.py": "from pkg.b import _hidden\n", "b.py": "_hidden = 1\n"}, "private names"),
    ({"book/c.py": "from .d import z\n", "book/d.py": "from pkg.book import c\nz = 1\n"}, "import cycle"),
    ({"a.py": "from pkg import old\n", "book/c.py": "x = 1\n",
      "old.py": "import sys; from pkg.book import c as _m; sys.modules[__name__] = _m\n"},
     "utility module imports the book layer"),
])
def test_the_layer_check_fails_on_a_breach(tmp_path, files, expected):
    bad = problems(_fake(tmp_path, files))
    assert any(expected in line for line in bad), bad


def test_the_layer_check_passes_a_clean_fake(tmp_path):
    root = _fake(tmp_path, {"a.py": "import numpy\nfrom pkg import _helpers\n", "_helpers.py": "x = 1\n",
                            "book/c.py": "from pkg.a import numpy\nfrom . import d\n", "book/d.py": "z = 1\n",
                            "old.py": "import sys; from pkg.book import c as _m; sys.modules[__name__] = _m\n"})
    assert problems(root) == []
