"""The simulator's rooms: each subpackage imports only from the ones below it, states its
public names in a checked ``__all__``, and is used from outside only through those names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = ROOT / "simulator"
# Lowest first: a room may import from the rooms before it, never from those after it.
LAYERS = ["inputs", "model", "fast", "runs", "checks", "render", "report"]
OUTSIDE = ["simulator", "loadtest", "benchmarks", "tests", "mailsync"]


def _imports(path: Path, typing: bool = False) -> list[tuple[str, list[str]]]:
    """Every ``from simulator.… import …`` in a file, at any depth (a function-level import
    is a dependency too); those only for the type checker when ``typing``."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if not typing and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("simulator"):
                found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("simulator")]
    return found


def _room(module: str, names: list[str]) -> list[str]:
    """The rooms an import reaches: ``simulator.fast.analytic`` -> fast;
    ``from simulator.runs import sweep`` -> runs; ``from simulator import cli`` -> none."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return [parts[1]]
    return [n for n in names if n in LAYERS] if module == "simulator" else []


def _modules(room: str) -> list[Path]:
    return sorted((SIMULATOR / room).glob("*.py"))


@pytest.mark.parametrize("room", LAYERS)
def test_a_room_imports_only_from_the_rooms_below_it(room: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(room) + 1])
    wrong = [
        f"{path.name}: {module}"
        for path in _modules(room)
        for module, names in _imports(path)
        if not set(_room(module, names)) <= allowed
    ]
    assert wrong == []


@pytest.mark.parametrize("room", LAYERS)
def test_a_rooms_all_names_what_it_exports(room: str) -> None:
    package = importlib.import_module(f"simulator.{room}")
    exported = package.__all__
    assert exported == sorted(set(exported), key=exported.index), "duplicates in __all__"
    missing = [name for name in exported if not hasattr(package, name)]
    assert missing == []
    assert package.__doc__


def test_other_rooms_use_only_the_public_names() -> None:
    """From outside a room, only names in its ``__all__`` are imported (its modules may be
    imported by path, ``simulator.fast.analytic``, but not their private names)."""
    public = {room: set(importlib.import_module(f"simulator.{room}").__all__) for room in LAYERS}
    wrong = []
    for top in OUTSIDE:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            for module, names in _imports(path):
                parts = module.split(".")
                if len(parts) != 3 or parts[1] not in LAYERS:
                    continue
                if rel.parts[:2] == ("simulator", parts[1]):
                    continue
                wrong += [f"{rel}: {module}.{n}" for n in names if n not in public[parts[1]]]
    assert wrong == []


def test_no_module_imports_itself_back() -> None:
    """No import circles between the simulator's modules, not even through a function-level
    import or one only for the type checker: each module can be read after those it uses."""
    graph: dict[str, set[str]] = {}
    for path in sorted(SIMULATOR.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        deps = set()
        for module, names in _imports(path, typing=True):
            deps.add(module)
            deps.update(f"{module}.{n}" for n in names)
        graph[name] = deps
    modules = set(graph)
    edges = {m: {d for d in deps if d in modules and d != m} for m, deps in graph.items()}
    cycles = []
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join([*path[path.index(d) :], d]))
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert cycles == []
