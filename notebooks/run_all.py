"""Execute the notebooks in place, so the committed copies carry fresh outputs.

    python notebooks/run_all.py                     # every notebook in this folder
    python notebooks/run_all.py 03_optimizer_zoo    # the ones named

Each notebook runs top to bottom in a fresh kernel that imports gradtx from this
checkout, as tests/test_notebooks.py does; a cell that fails stops the script
and leaves the file untouched.
"""

from __future__ import annotations

import os
import sys
import time

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def kernel_env() -> dict:
    """The environment of the notebook kernel: this checkout first on the path, inline plots."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.pop("MPLBACKEND", None)                  # a backend set here would hide the plots
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")   # quiet the kernel's debugger
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def execute(path: str, timeout: int = 300):
    """Run the notebook at ``path`` in a fresh kernel; return it with its new outputs."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute(env=kernel_env())
    return nb


def main(names) -> int:
    paths = sorted(os.path.join(HERE, f) for f in os.listdir(HERE) if f.endswith(".ipynb"))
    if names:
        paths = [p for p in paths if os.path.basename(p)[:-6] in names
                 or os.path.basename(p) in names]
    for path in paths:
        start = time.perf_counter()
        nb = execute(path)
        nbformat.write(nb, path)
        size = os.path.getsize(path) / 1024
        print(f"{os.path.basename(path)}: {time.perf_counter() - start:.1f} s, {size:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
