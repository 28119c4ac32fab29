"""The package's imports flow one way, room by room, and no two modules import each other (directly or round
a loop). Read from the source with ast: every import counts, also those inside functions.

The flow (docs/architecture.md): config modules -> project -> data -> models -> lit -> evaluation / inference ->
tracking / review -> pipelines -> api; scripts and benchmarks sit above the package and are not walked. A module
may import its own room, a room beside it (same rank) or any room below.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_dlc"

# rooms, lowest first; rooms in one set share a rank
FLOW = [{"config"}, {"project"}, {"data"}, {"models"}, {"lit"}, {"evaluation", "inference"}, {"tracking", "review"},
        {"pipelines"}, {"api"}, {"cli"}]
# modules at the package root decide their room here
ROOT_MODULES = {
    "lightning_dlc": "config",                  # __init__.py: registers the config resolvers, nothing else
    "lightning_dlc.config_resolvers": "config",  # OmegaConf resolvers conf/ uses
    "lightning_dlc.config_compose": "config",    # composes conf/ (stdlib at import; Hydra when called)
    "lightning_dlc.api": "api",
    "lightning_dlc.__main__": "cli",           # python -m lightning_dlc: the console command
}
# The one exception to the flow. DESIGN: evaluation's metrics are plain functions over arrays that lit calls during
# validation, so the number printed while training is the number evaluation reports (one code path). lit may import
# these metric modules, and nothing else of evaluation; they in turn may import each other and nothing else above lit.
LIT_MAY_IMPORT = {f"lightning_dlc.evaluation.{m}"
                  for m in ("metrics", "rmse", "oks_map", "matching", "inputs", "boxes")}


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (a package's name for its __init__.py)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (None: not the package's)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def imports(module: str, path: Path, modules: dict[str, Path]) -> set[tuple[str, int]]:
    """(imported module of the package, line) for every import statement in ``path``, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # "from a.b import c" imports the module a.b.c when there is one, else a name of a.b
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.add((target, node.lineno))
    return found


def rooms(package: Path) -> dict[str, str]:
    """Module -> its room: the folder under the package it sits in, or ROOT_MODULES' word for a root module."""
    found = {}
    for module, path in module_files(package).items():
        folders = path.relative_to(package).parts[:-1]
        if folders:
            found[module] = folders[0]
        elif module in ROOT_MODULES:
            found[module] = ROOT_MODULES[module]
        else:
            raise AssertionError(f"{module}: a module at the package root: give it a room in ROOT_MODULES")
    return found


def rank(room_name: str) -> int:
    for i, rooms in enumerate(FLOW):
        if room_name in rooms:
            return i
    raise AssertionError(f"room {room_name!r} is not in the documented flow (FLOW)")


def graph(package: Path) -> dict[str, set[tuple[str, int]]]:
    modules = module_files(package)
    return {m: imports(m, p, modules) for m, p in modules.items()}


def against_the_flow(edges: dict[str, set[tuple[str, int]]], room: dict[str, str],
                     allowed: set[tuple[str, str]] = frozenset()) -> list[str]:
    """``module:line -> target`` for each import of a room above the importing module's room."""
    wrong = []
    for module, targets in sorted(edges.items()):
        source = rank(room[module])  # every room is in the flow, imports or not
        for target, line in sorted(targets):
            if rank(room[target]) > source and (room[module], target) not in allowed:
                wrong.append(f"{module}:{line} -> {target} ({room[module]} imports {room[target]})")
    return wrong


def cycles(edges: dict[str, set[tuple[str, int]]]) -> list[list[str]]:
    """The import loops: strongly connected components of more than one module (Tarjan)."""
    succ = {m: sorted({t for t, _ in targets}) for m, targets in edges.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def edges():
    return graph(PACKAGE)


def test_every_import_follows_the_flow(edges):
    assert against_the_flow(edges, rooms(PACKAGE), {("lit", m) for m in LIT_MAY_IMPORT}) == []


def test_no_module_imports_itself_round_a_loop(edges):
    assert cycles(edges) == []


def test_the_metric_modules_lit_may_import_exist_and_stay_below_lit(edges):
    for module in sorted(LIT_MAY_IMPORT):
        assert module in edges, f"{module}: renamed or gone: update LIT_MAY_IMPORT"
        room = rooms(PACKAGE)
        above = [target for target, _ in edges[module]
                 if rank(room[target]) > rank("lit") and target not in LIT_MAY_IMPORT]
        assert above == [], f"{module} imports {above}: lit would reach above itself through it"


def test_the_checks_catch_an_upward_import_a_loop_and_an_unranked_module(tmp_path):
    package = tmp_path / "lightning_dlc"
    for folder in ("project", "lit", "tracking"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "project" / "a.py").write_text("def f():\n    from lightning_dlc.lit import b\n")  # in a function
    (package / "lit" / "b.py").write_text("from ..project import a\n")                          # relative
    (package / "tracking" / "c.py").write_text("from lightning_dlc.lit.b import g\n")           # downward: fine
    (package / "api.py").write_text("from lightning_dlc.tracking import c\n")
    edges = graph(package)
    assert against_the_flow(edges, rooms(package)) == [
        "lightning_dlc.project.a:2 -> lightning_dlc.lit.b (project imports lit)"]
    assert cycles(edges) == [["lightning_dlc.lit.b", "lightning_dlc.project.a"]]
    (package / "helpers.py").write_text("")
    with pytest.raises(AssertionError, match="ROOT_MODULES"):
        rooms(package)
