"""Shared test settings: strict dtype promotion, so silent upcasts fail loudly; x64 on request.

Compiled programs are shared through JAX's persistent compilation cache, in a
directory made for this run: the tests compile the same small programs many
times over (every row's step under jit in several files, eager ops of the same
shapes), and xdist's workers and the subprocesses the tests start (sharding
workers, optax's test files, notebooks) inherit the directory through the
environment, so each distinct program is compiled once per run.  The directory
is removed when the run ends; a directory set by the caller
(``JAX_COMPILATION_CACHE_DIR``) is used as it is and kept.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gradtx-jax-cache-")
# XLA:CPU options for the suite (not for gradtx's users): the suite's programs are
# small and run a few steps, so compiling them, not running them, is most of its
# time.  XLA's older elemental emitters compile them about 2x faster (measured:
# 164 ms -> 70 ms for one AdamW step) and give the same bits on the ops compared
# (exp, log, sqrt, rsqrt, pow, tanh, erf, sin and sigmoid on 1e5 float32 values).
# XLA also splits each program's LLVM module into parts compiled on a thread pool;
# for programs this small the split costs more CPU than it saves, and the suite's
# workers already keep every core busy, so one part per program takes about a fifth
# less compile CPU (measured: 3.3 s -> 2.6 s over ten optimizers' steps; 15% less
# CPU for test_optimizers_adam/_rms), with the same bits (same LLVM IR per kernel).
# (LLVM -O0 as well would save a little more but changes last bits between a
# vmapped and a looped step.)  GRADTX_TEST_XLA_DEFAULT=1 runs on XLA's defaults.
SUITE_XLA_FLAGS = (
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_parallel_codegen_split_count=1",
)


def _xla_accepts(flags: str) -> bool:
    """XLA aborts the process on a flag it does not know (a later jaxlib may drop one):
    try the flags in a child first."""
    probe = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=300)
    return done.returncode == 0


if not os.environ.get("GRADTX_TEST_XLA_DEFAULT"):
    _given = os.environ.get("XLA_FLAGS", "").split()
    _names = {f.split("=")[0] for f in _given}
    _added = [f for f in SUITE_XLA_FLAGS if f.split("=")[0] not in _names]
    if _added:  # xdist's workers inherit the outcome from the controller
        if not _xla_accepts(" ".join(_given + _added)):
            # One flag unknown to this jaxlib: keep the others it accepts.
            _added = [f for f in _added if _xla_accepts(" ".join([*_given, f]))]
        if _added:
            os.environ["XLA_FLAGS"] = " ".join(_given + _added)
        else:
            os.environ["GRADTX_TEST_XLA_DEFAULT"] = "1"
# Cache every program, however quick to compile or small: most of the suite's are.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402
import pytest  # noqa: E402
import quick_tier  # noqa: E402


def pytest_unconfigure(config):
    """The process that made the cache directory (xdist's controller, or the only one) removes it."""
    if _OWN_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_collection_finish(session):
    """Collection imports every module of tests/ (for doctests): none may switch on x64."""
    if jax.config.jax_enable_x64:
        raise pytest.UsageError(
            "a module imported while collecting turned on jax_enable_x64 for every test; "
            "set it under `if __name__ == '__main__':` or inside the test (the x64 fixture)"
        )


def pytest_collection_modifyitems(config, items):
    """The quick tier's two rules (tests/quick_tier.py): core table rows, measured time."""
    listed = quick_tier.measured_slow()
    for item in items:
        callspec = getattr(item, "callspec", None)
        ids = callspec.id.split("-") if callspec is not None else []
        if item.nodeid in listed or quick_tier.outside_core(ids):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    item.stash[_CPU_START] = time.process_time()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Record the test's CPU seconds (setup and call, every thread of the process) as the
    junit property ``cpu_s``: tests/quick_tier.py reads it, as it does not change with
    the load on the machine the way the wall-clock time does."""
    try:
        return (yield)
    finally:
        if _CPU_START in item.stash:
            cpu = time.process_time() - item.stash[_CPU_START]
            item.user_properties.append(("cpu_s", f"{cpu:.3f}"))


_CPU_START = pytest.StashKey[float]()


@pytest.fixture(autouse=True)
def _strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def x64():
    """float64 for the test (references included), restored afterwards."""
    with jax.enable_x64(True):
        yield
