"""optax's own tests, run with optax's names resolved to gradtx's (tests/optax_suite.py)."""

import importlib.util
import types

import pytest

from tests import optax_suite

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _report(results):
    return "\n".join(
        f"{r.file} {name}: {message}"
        for r in results.values()
        for name, message in r.failed.items()
    )


def _unused_exclusions(results):
    """Exclusions for these files that left out no test (stale after a rename)."""
    shorts = {f.rsplit("/", 1)[-1][: -len(".py")]: f for f in results}
    unused = []
    for key in optax_suite.EXCLUDED:
        short, test = key.split("::", 1)
        if short in shorts and not any(
            name.startswith(test.rstrip("*")) for name in results[shorts[short]].excluded
        ):
            unused.append(key)
    return unused


def test_optax_quick_files_pass_on_gradtx():
    # One subprocess for all of them: each file's own tests take a second or two, and
    # starting a subprocess (python, pytest, jax, optax) about three.
    results = optax_suite.run_files(optax_suite.QUICK_FILES)
    assert _report(results) == ""
    assert [f for f in optax_suite.QUICK_FILES if not results[f].passed] == [], "no test ran"
    assert _unused_exclusions(results) == []


SLOW_PARTS = [
    (file, (i, n))
    for file in optax_suite.SLOW_FILES
    for n in [optax_suite.PARTS.get(file, 1)]
    for i in range(n)
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "file, part",
    SLOW_PARTS,
    ids=[f if n == 1 else f"{f}:{i + 1}of{n}" for f, (i, n) in SLOW_PARTS],
)
def test_optax_slow_file_passes_on_gradtx_wherever_it_passes_on_optax(file, part):
    # optax itself runs (in the same process, after gradtx) only what did not pass on
    # gradtx, to tell a gradtx failure (or a test that skips itself on gradtx) from one
    # of optax's own.
    ours = optax_suite.run_files([file], part=part, baseline="unsure")
    result = ours[file]
    assert result.passed, f"{file}: no test ran"
    unsure = sorted(set(result.failed) | set(result.skipped))
    theirs = result.baseline
    assert sorted([*theirs.passed, *theirs.failed, *theirs.skipped]) == unsure
    if unsure:
        broken = set(result.failed) - set(theirs.failed)
        assert not broken, "\n".join(f"{file} {n}: {result.failed[n]}" for n in broken)
        # A test that passes on optax must pass on gradtx, not skip itself.
        missing = set(theirs.passed) - set(result.passed) - set(result.excluded)
        assert not missing, f"{file}: passed on optax, not on gradtx: {sorted(missing)}"
    assert _unused_exclusions(ours) == []


def test_optax_suite_proxy_resolves_shared_names_to_gradtx_and_others_to_optax():
    import optax
    from optax._src import alias, transform

    import gradtx

    assert optax_suite.proxy(alias).adam is gradtx.adam
    assert optax_suite.proxy(transform).trace is gradtx.trace
    assert optax_suite.proxy(transform).ScaleByAdamState is transform.ScaleByAdamState
    assert optax_suite.proxy(optax).schedules.linear_schedule is gradtx.linear_schedule
    assert isinstance(optax_suite.proxy(optax).losses, types.ModuleType)
    assert optax_suite.proxy(optax).losses.l2_loss is optax.losses.l2_loss


def test_optax_suite_loaded_test_module_sees_gradtx_at_import_time():
    module = optax_suite.load_test_module("optax._src.update_test")
    assert module.update.apply_updates.__module__.startswith("gradtx")
    assert importlib.util.find_spec("optax._src.update_test") is not None


def test_optax_suite_every_exclusion_names_a_selected_file_and_a_reason():
    shorts = {f.rsplit("/", 1)[-1][: -len(".py")] for f in optax_suite.FILES}
    for key, reason in optax_suite.EXCLUDED.items():
        assert key.split("::", 1)[0] in shorts, key
        assert len(reason) > 20, key
