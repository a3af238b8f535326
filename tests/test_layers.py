"""The package's floors: a module imports only from its own floor or the ones below
(lazy imports inside functions count too), and no modules import each other in a
cycle. Read from the source with ``ast``; nothing is imported."""
import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "paddle_mmsr"
# Bottom first. A unit is a subpackage or a top-level module of paddle_mmsr.
FLOORS = [
    {"core"},                           # paddle-free facts both flows share: specs, TVAT, tiles,
                                        # the bundle manifest, device names, files, pixels
    {"image", "metrics", "runtime", "locks"},  # paddle-free pixels, measures, process settings
    {"data", "models", "config"},       # training data, the networks (and a bundle's weights),
                                        # the training config
    {"sr"},                             # reconstruction
    {"train"},                          # training (validates with reconstruction)
    {"cli", "notebook", "__init__"},    # entry points; the package root (lazy MMSR)
]
FLOOR = {unit: i for i, units in enumerate(FLOORS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, modules: set) -> list:
    """(line, imported module, at module level) for every import of the package."""
    tree = ast.parse(path.read_text(), str(path))
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from paddle_mmsr.sr import inference" imports the module paddle_mmsr.sr.inference
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                     else node.module for a in node.names]
        else:
            continue
        out += [(node.lineno, n, id(node) in top) for n in names
                if n == "paddle_mmsr" or n.startswith("paddle_mmsr.")]
    return out


def graph() -> dict:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: imports(p, set(files)) for m, p in files.items()}


def test_every_unit_has_a_floor():
    units = {unit(m) for m in graph()}
    assert units <= set(FLOOR), f"put {sorted(units - set(FLOOR))} on a floor in FLOORS"


def upward(g: dict) -> list:
    return [f"{m}:{line} imports {n} ({unit(m)} is on floor {FLOOR[unit(m)]}, "
            f"{unit(n)} on floor {FLOOR[unit(n)]})"
            for m, found in g.items() for line, n, _ in found
            if FLOOR.get(unit(n), 0) > FLOOR.get(unit(m), 0)]


def cycles(g: dict) -> list:
    edges = {m: {n for _, n, _ in found if n != m} for m, found in g.items()}
    state, out = {}, []

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(edges.get(m, ())):
            if state.get(n) == "open":
                out.append(stack[stack.index(n):] + [n])
            elif n in edges and n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    return out


def test_no_import_runs_up_the_floors():
    problems = upward(graph())
    assert not problems, "\n".join(problems)


def test_no_import_cycle():
    found = cycles(graph())
    assert not found, "\n".join(" -> ".join(c) for c in found)


def test_core_imports_only_core_and_no_paddle_at_import():
    for path in (PACKAGE / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] != "paddle", f"{path}: imports {n}"
                if n.startswith("paddle_mmsr"):
                    assert n.startswith("paddle_mmsr.core."), f"{path}: imports {n}"


def test_the_checks_see_violations():
    """Lazy imports are found, and a wrong import or a cycle is reported (else the
    tests above would pass on anything)."""
    lazy = [n for _, n, at_top in graph()["paddle_mmsr"] if not at_top]
    assert "paddle_mmsr.sr.reconstruct" in lazy
    bad = {"paddle_mmsr.core.a": [(3, "paddle_mmsr.sr.route", False)],
           "paddle_mmsr.sr.route": [(1, "paddle_mmsr.core.a", True)]}
    assert upward(bad) == ["paddle_mmsr.core.a:3 imports paddle_mmsr.sr.route (core is on "
                           "floor 0, sr on floor 3)"]
    assert cycles(bad) == [["paddle_mmsr.core.a", "paddle_mmsr.sr.route", "paddle_mmsr.core.a"]]
