"""The scaling transforms: scale_by_schedule scales by its schedule's value at the step count.

identity, scale and scale_by_learning_rate meet their closed forms in
test_references.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from problems import GRAD_ROWS, run_rows

import gradtx


def test_scale_by_schedule_scales_by_its_value_at_the_step_count():
    with jax.enable_x64(True):
        ours = run_rows(gradtx.scale_by_schedule(lambda t: 0.5 ** t.astype(jnp.float64)), GRAD_ROWS)
    np.testing.assert_allclose(
        ours, GRAD_ROWS * 0.5 ** np.arange(len(GRAD_ROWS))[:, None], rtol=1e-15
    )


def test_scale_by_schedule_with_a_number_raises():
    with pytest.raises(TypeError, match="scale_by_schedule: step_size_fn must be a function"):
        gradtx.scale_by_schedule(0.5)
