"""The package is lint-clean (ruff), formatted (ruff format) and type-checks (pyright, basic)."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_check_finds_nothing():
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_unchanged():
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_pyright_basic_finds_no_error_in_the_package():
    result = _run("pyright", "gradtx")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
