"""The event model compiled with mypyc (``simulator.compiled``) gives the same seeded
results as the plain sources, bit for bit, on every path of the model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulator import compiled
from tests.simulator.compiled_runs import digests


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work tree's build when it is current, else a fresh one (about a minute)."""
    if compiled.stale() is None:
        return compiled.DEFAULT_OUT
    out = tmp_path_factory.mktemp("compiled")
    compiled.build(out)
    return out


def test_a_build_knows_when_its_sources_changed(build: Path, tmp_path: Path) -> None:
    assert compiled.stale(build) is None
    root = tmp_path / "root"
    for pkg in compiled.PACKAGES:
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
    out = tmp_path / "out"
    assert "no compiled model" in (compiled.stale(out) or "")
    (out / "simulator" / "model").mkdir(parents=True)
    manifest = {"root": str(root), "files": compiled.sources(root)}
    (out / compiled.MANIFEST).write_text(json.dumps(manifest))
    assert compiled.stale(out) is None
    init = str(out / "simulator" / "model" / "__init__.py")
    compiled.refuse_stale(init)
    (root / "simulator" / "__init__.py").write_text("# edited\n")
    assert "older than simulator/__init__.py" in (compiled.stale(out) or "")
    with pytest.raises(RuntimeError, match="older than simulator/__init__.py"):
        compiled.refuse_stale(init)
    # Outside a build (no manifest above the package), nothing to refuse.
    compiled.refuse_stale(str(root / "simulator" / "model" / "__init__.py"))


def test_compiled_model_gives_the_same_results_bit_for_bit(build: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(build), str(root)])}
    done = subprocess.run(
        [sys.executable, "-m", "tests.simulator.compiled_runs"],
        cwd=build.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    got = json.loads(done.stdout)
    assert got["compiled"] is True
    assert not compiled.is_compiled()
    assert got["digests"] == digests()
