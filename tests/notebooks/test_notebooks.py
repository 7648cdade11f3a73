"""The notebooks run from top to bottom on the public API, on small parameters, and end with
their conclusion; they are stored without outputs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

# Sizes the tests run each notebook with, injected after its parameters cell as papermill
# does: smaller than the notebooks' own defaults, so that each runs in well under a minute.
SMALL: dict[str, dict[str, Any]] = {
    "scaling.ipynb": {"points": 12, "event_tenants": [300], "horizon_s": 900.0},
    "quotas.ipynb": {
        "sizes": [500, 5_000, 50_000],
        "processes": [1, 4, 16, 64],
        "intervals_s": [300, 1800],
        "push_shares": [0.0, 1.0],
        "onboard_tenants": 10,
        "push_tenants": 100,
    },
    # Reads the shipped load-test tables and simulates nothing.
    "calibration.ipynb": {},
}


def test_every_notebook_has_small_parameters() -> None:
    assert {p.name for p in NOTEBOOKS} == set(SMALL)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"{path.name}: code cells {dirty} were committed with outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one parameters cell (papermill convention)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_ends_with_its_conclusion(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    small = "\n".join(f"{k} = {v!r}" for k, v in SMALL[path.name].items())
    if small:
        injected = nbformat.v4.new_code_cell(small, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(at + 1, injected)
    # A failing cell raises CellExecutionError, naming the cell and its traceback.
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    # The last cell states the conclusion, in words, from the numbers the notebook computed.
    assert nb.cells[-2].cell_type == "markdown" and "Conclusion" in nb.cells[-2].source
    said = "".join(o.text for o in code[-1].outputs if o.output_type == "stream")
    assert said.count("\n- ") >= 2 and any(ch.isdigit() for ch in said), said
    assert not re.search(r"\bnan\b", said, re.IGNORECASE), said
    plots = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert plots, f"{path.name} shows no plot"
