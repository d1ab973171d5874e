"""A release a user could install: the wheel that `python -m build` makes works on its own.

The slow test builds the sdist and, from it, the wheel (as `python -m build`
does), installs the wheel into a fresh virtual environment and, from a directory
outside the source tree (so nothing can come from the checkout), imports every
module of the installed package and runs the smoke tests there.  The installed
files are the checkout's byte for byte, every one of them, so the package's
doctests, which the suite runs on the checkout, would run the same code again:
the test checks the bytes instead of running them twice.  The environment sees
this interpreter's site-packages (for jax, numpy, pytest), so nothing is
downloaded but the build backend.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

import gradtx

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "CHANGELOG.md", "gradtx")


def _run(args, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def test_release_version_is_set_in_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.M)
    assert 'version = { attr = "gradtx.__version__" }' in pyproject
    assert not re.search(r'^version = "', pyproject, re.M)
    assert re.fullmatch(r"\d+\.\d+\.\d+", gradtx.__version__)
    assert (ROOT / "CHANGELOG.md").exists()
    assert (ROOT / "gradtx" / "py.typed").exists()


@pytest.mark.slow
def test_release_wheel_installs_in_a_fresh_venv_as_the_checkout_and_passes_the_smoke_tests(
    tmp_path,
):
    pytest.importorskip("build")
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, source], cwd=tmp_path)
    (wheel,) = dist.glob("gradtx-*.whl")
    assert wheel.name.startswith(f"gradtx-{gradtx.__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gradtx/py.typed" in names and "gradtx/presets/torch/__init__.py" in names
    assert not [n for n in names if n.startswith("tests/")]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--force-reinstall",
            "--no-warn-conflicts",
            wheel,
        ],
        cwd=tmp_path,
    )

    run = tmp_path / "run"
    run.mkdir()
    where = _run(
        [
            python,
            "-c",
            "import os, gradtx, jax.numpy as jnp\n"
            "opt = gradtx.adam(0.1)\n"
            "p = {'w': jnp.array([1.0, -2.0])}\n"
            "u, _ = opt.update({'w': jnp.array([3.0, -0.5])}, opt.init(p), p)\n"
            "assert jnp.allclose(gradtx.apply_updates(p, u)['w'], jnp.array([0.9, -1.9]))\n"
            "print(os.path.realpath(gradtx.__file__)); print(gradtx.__version__)",
        ],
        cwd=run,
    )
    location, version = where.split()
    assert location.startswith(os.path.realpath(venv)), location
    assert version == gradtx.__version__

    # The installed package is the checkout's files, byte for byte and all of them
    # (compiled caches aside), so its doctests would only repeat the suite's own run.
    package = pathlib.Path(location).parent
    installed, checkout = _package_files(package), _package_files(ROOT / "gradtx")
    assert installed.keys() == checkout.keys()
    assert [n for n, data in installed.items() if data != checkout[n]] == []
    # Every module imports from the installed package, and the smoke tests pass there.
    modules = sorted(
        ".".join(("gradtx", *pathlib.PurePosixPath(n[: -len(".py")]).parts)).removesuffix(
            ".__init__"
        )
        for n in installed
        if n.endswith(".py") and n != "__main__.py"
    )
    _run(
        [python, "-c", f"import importlib\nfor m in {modules!r}: importlib.import_module(m)"],
        cwd=run,
    )
    (run / "tests").mkdir()
    for name in (
        "conftest.py",
        "quick_tier.py",
        "quick_tier_slow.txt",
        "optimizers.py",
        "test_smoke.py",
    ):
        shutil.copy2(ROOT / "tests" / name, run / "tests" / name)
    out = _run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:benchmark",
            "--rootdir",
            run,
            "-c",
            os.devnull,
            run / "tests",
        ],
        cwd=run,
    )
    passed = re.search(r"(\d+) passed", out)
    assert passed and "failed" not in out, out


def _package_files(root: pathlib.Path) -> dict[str, bytes]:
    """Every file under the package (relative POSIX path -> bytes), compiled caches aside."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
