"""The package's layering, checked on the source: no upward and no cyclic import.

The allowed order is written once, in `LAYERS`: a module may import modules of its own
sub-package and of sub-packages on a strictly lower layer, nothing else. Every import
counts, including those inside functions (an import moved into a function to dodge a
cycle is still an upward import). The root ``tfemergent/__init__.py`` imports
everything and is not checked; ``version.py`` sits with ``utils`` at the bottom.
"""

import ast
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent.parent / "tfemergent"

# Bottom to top. One line per layer; sub-packages on one line may not import each other.
LAYERS = (
    ("utils", "version"),
    ("kernels", "geometry"),
    ("initializers", "losses", "regularizers", "datasets", "probes"),
    ("layers", "metrics"),
    ("analysis", "search", "plotting"),
    ("pruning",),
    ("callbacks",),
    ("models",),
    ("experiments",),
    ("cli",),
)

# Upward imports still to be removed, each with the issue that removes it. Empty when
# the layering holds everywhere.
PENDING = {}


def _rank_table(layers):
    return {name: rank for rank, names in enumerate(layers) for name in names}


def module_name(path, package_dir):
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_modules(path, package_dir, known_modules):
    """``(imported module, line)`` for every import of the package in ``path``."""
    name = module_name(path, package_dir)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                yield (candidate if candidate in known_modules else module), node.lineno


def import_graph(package_dir):
    """``{module: {imported module of the same package: first line}}``."""
    package = package_dir.name
    paths = sorted(package_dir.rglob("*.py"))
    known = {module_name(path, package_dir) for path in paths}
    graph = {}
    for path in paths:
        edges = graph.setdefault(module_name(path, package_dir), {})
        for imported, line in _imported_modules(path, package_dir, known):
            if imported == package or imported.startswith(package + "."):
                edges.setdefault(imported, line)
    return graph


def _subpackage(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def upward_imports(package_dir, layers, pending=()):
    """Every import that is not to the module's own sub-package or a lower layer."""
    ranks = _rank_table(layers)
    problems = []
    for module, edges in import_graph(package_dir).items():
        source = _subpackage(module)
        if source is None:  # the root __init__ gathers everything
            continue
        if source not in ranks:
            problems.append(f"{module}: sub-package {source!r} is not in LAYERS")
            continue
        for imported, line in edges.items():
            target = _subpackage(imported)
            if target == source:
                continue
            if target is None or target not in ranks or ranks[target] >= ranks[source]:
                if (module, ".".join(imported.split(".")[:3])) in pending:
                    continue
                problems.append(
                    f"{module} (line {line}) imports {imported}: {source!r} may import only "
                    f"sub-packages below it in LAYERS"
                )
    return problems


def import_cycles(package_dir):
    """The module-level cycles of the import graph, each as a list of modules."""
    graph = {m: set(e) for m, e in import_graph(package_dir).items()}
    cycles, state, stack = [], {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                cycles.append(stack[stack.index(imported):] + [imported])
            elif imported not in state:
                visit(imported)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    assert subpackages | modules == set(_rank_table(LAYERS))


def test_no_upward_import():
    assert upward_imports(PACKAGE_DIR, LAYERS, PENDING) == []


def test_no_import_cycle():
    assert import_cycles(PACKAGE_DIR) == []


def test_pending_exceptions_are_still_needed():
    # An entry of PENDING that no longer matches an import must be deleted.
    graph = import_graph(PACKAGE_DIR)
    for module, target in PENDING:
        assert any(i.startswith(target) for i in graph.get(module, {})), (module, target)


def _write_package(root, files):
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_check_fails_on_an_upward_import(tmp_path):
    package = _write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.high import b  # hidden in a function\n",
        "high/__init__.py": "",
        "high/b.py": "from pkg.low import a\n",
    })
    layers = (("low",), ("high",))
    problems = upward_imports(package, layers)
    assert len(problems) == 1
    assert problems[0].startswith("pkg.low.a (line 2) imports pkg.high.b")
    assert upward_imports(package, (("high",), ("low",))) != []  # and the other way round
    assert import_cycles(package) == [["pkg.high.b", "pkg.low.a", "pkg.high.b"]]


def test_the_check_fails_on_a_relative_upward_import(tmp_path):
    package = _write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "from ..high import b\n",
        "high/__init__.py": "",
        "high/b.py": "",
    })
    assert upward_imports(package, (("low",), ("high",))) == [
        "pkg.low (line 1) imports pkg.high.b: 'low' may import only sub-packages below it "
        "in LAYERS"
    ]


@pytest.mark.parametrize("unknown", ["newpkg"])
def test_the_check_names_a_subpackage_missing_from_layers(tmp_path, unknown):
    package = _write_package(tmp_path, {"__init__.py": "", f"{unknown}/__init__.py": ""})
    assert upward_imports(package, ()) == [f"pkg.{unknown}: sub-package {unknown!r} is not in LAYERS"]
