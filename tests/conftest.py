"""Shared test settings: strict dtype promotion, so silent upcasts fail loudly; x64 on request."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def x64():
    """float64 for the test (references included), restored afterwards."""
    with jax.enable_x64(True):
        yield
