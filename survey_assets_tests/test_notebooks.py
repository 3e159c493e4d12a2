"""Every notebook in notebooks/ runs top to bottom against the lab survey's warehouse."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from survey_assets.lab import world as W
from survey_assets.settings import PROJECT_ROOT

# The first test that asks for lab_survey builds it: fourteen lab days and the warehouse, about
# five minutes on two busy cores, more than the default per-test timeout.
pytestmark = pytest.mark.timeout(900)
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


def test_there_is_a_notebook_to_start_from():
    assert PROJECT_ROOT / "notebooks" / "start_here.ipynb" in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(lab_survey, path: Path, monkeypatch):
    monkeypatch.setenv("SURVEY_DATA_DIR", str(lab_survey))  # the kernel inherits it
    before = (lab_survey / "warehouse.duckdb").stat().st_mtime_ns
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert str(lab_survey / "warehouse.duckdb") in text
    assert "domains with DNSSEC-validated MX" in text
    if path.name == "start_here.ipynb":  # its provider story is the lab's new DANE provider
        day = W.date_of(W.Day.DANE_ON)
        assert f"mailnova.lab-net. first served a DANE-enabled domain on {day}" in text
    assert (lab_survey / "warehouse.duckdb").stat().st_mtime_ns == before  # opened read-only
    assert os.environ["SURVEY_DATA_DIR"] == str(lab_survey)
