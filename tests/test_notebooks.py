"""The notebooks in notebooks/ run from a fresh kernel without errors, and their committed
copies carry outputs that are complete and small.

They run with the same machinery that writes the committed outputs
(notebooks/run_all.py); after editing a notebook, run that script and commit.
"""

import base64
import importlib.util
import os

import nbformat
import pytest

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
NOTEBOOKS = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))

_spec = importlib.util.spec_from_file_location("run_all", os.path.join(NOTEBOOK_DIR, "run_all.py"))
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)

MAX_IMAGE_KIB = 200
MAX_NOTEBOOK_KIB = 400


def test_notebooks_folder_holds_the_guides():
    assert NOTEBOOKS == [
        "01_quickstart.ipynb",
        "02_adam_from_parts.ipynb",
        "03_optimizer_zoo.ipynb",
        "04_schedules.ipynb",
        "05_write_your_own.ipynb",
        "06_porting_and_sharding.ipynb",
        "07_frontier.ipynb",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_fresh_without_errors(name):
    # nbclient raises CellExecutionError, with the cell's traceback, if any cell fails.
    nb = run_all.execute(os.path.join(NOTEBOOK_DIR, name), timeout=240)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_complete_small_outputs(name):
    path = os.path.join(NOTEBOOK_DIR, name)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), (
        f"{name}: not every cell was run; run python notebooks/run_all.py {name[:-6]}"
    )
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: cells were run out of order"
    images = []
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"{name}: committed with an error output"
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{name}: committed with warnings on stderr: {out.text[:200]}"
            )
            if "image/png" in out.get("data", {}):
                images.append(len(base64.b64decode(out.data["image/png"])) / 1024)
    assert images, f"{name}: no plot in the committed outputs"
    assert max(images) < MAX_IMAGE_KIB, f"{name}: a {max(images):.0f} KiB PNG; keep plots small"
    assert os.path.getsize(path) / 1024 < MAX_NOTEBOOK_KIB
