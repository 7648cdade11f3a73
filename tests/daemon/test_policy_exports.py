"""``daemon.policy`` states its public names: ``__all__`` is every public name of its
submodules, each importable from the package, and the package stays pure."""

from __future__ import annotations

import ast
import pkgutil
import sys
from pathlib import Path

import daemon.policy as policy

SUBMODULES = sorted(m.name for m in pkgutil.iter_modules(policy.__path__))
HERE = Path(policy.__file__ or "").parent


def _defined(module: str) -> set[str]:
    """Public names a submodule defines at its top level."""
    tree = ast.parse((HERE / f"{module}.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def test_all_is_every_public_name_of_the_submodules() -> None:
    assert SUBMODULES == ["calls", "failures", "profiles", "quotas", "scheduling"]
    defined = set().union(*(_defined(m) for m in SUBMODULES))
    assert sorted(policy.__all__) == sorted(defined)
    assert len(policy.__all__) == len(set(policy.__all__))


def test_every_name_resolves_to_its_submodule() -> None:
    for name in policy.__all__:
        obj = getattr(policy, name)
        owner = [m for m in SUBMODULES if name in vars(sys.modules[f"daemon.policy.{m}"])]
        assert owner, name
        assert obj is getattr(sys.modules[f"daemon.policy.{owner[0]}"], name)


def test_policy_imports_nothing_with_io() -> None:
    allowed = {"__future__", "collections", "dataclasses", "enum", "math", "random", "typing"}
    for m in SUBMODULES:
        source = (HERE / f"{m}.py").read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
                if node.module and node.module.startswith("daemon.policy"):
                    continue
            else:
                continue
            assert roots <= allowed, (m, roots)
