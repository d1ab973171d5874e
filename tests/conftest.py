"""Shared test settings: strict dtype promotion, so silent upcasts fail loudly; x64 on request."""

import jax
import pytest
import quick_tier


def pytest_collection_modifyitems(config, items):
    """The quick tier's two rules (tests/quick_tier.py): core table rows, measured time."""
    listed = quick_tier.measured_slow()
    for item in items:
        callspec = getattr(item, "callspec", None)
        ids = callspec.id.split("-") if callspec is not None else []
        if item.nodeid in listed or quick_tier.outside_core(ids):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def x64():
    """float64 for the test (references included), restored afterwards."""
    with jax.enable_x64(True):
        yield
