"""@recipe: an optimizer declared once, its arguments checked once, by the recipe, in its name."""

import sys

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx import _checks
from gradtx._checks import Decay, Rate, StateDtype, UnitInterval
from gradtx._recipe import recipe


def _checks_of(build, value) -> list:
    """The checks that examined ``value`` (by identity) while ``build()`` ran."""
    seen = []

    def profile(frame, event, arg):
        if (
            event == "call"
            and frame.f_code is _checks._as_number.__code__
            and frame.f_locals.get("value") is value
        ):
            seen.append(frame.f_back.f_back.f_code.co_name)

    sys.setprofile(profile)
    try:
        build()
    finally:
        sys.setprofile(None)
    return seen


@pytest.mark.parametrize(
    "build",
    [
        lambda b: gradtx.adam(1e-3, b2=b),
        lambda b: gradtx.adamw(1e-3, b2=b),
        lambda b: gradtx.amsgrad(1e-3, b2=b),
        lambda b: gradtx.muon(1e-3, adam_b2=b),
        lambda b: gradtx.rmsprop(1e-3, decay=b),
    ],
)
def test_recipe_checks_each_hyperparameter_once(build):
    b2 = 0.987654  # a fresh object, tracked by identity
    assert len(_checks_of(lambda: build(b2), b2)) == 1


def test_transform_outside_a_recipe_still_checks_its_arguments():
    with pytest.raises(ValueError, match=r"^scale_by_rms: decay must be in \[0, 1\), got 1.5"):
        gradtx.scale_by_rms(1.5)


def test_recipe_checks_a_value_its_transform_needs_in_a_narrower_range():
    # The recipe accepts b1 in [0, 1]; a transform asking for [0, 1) still checks it.
    b1 = 1.0

    @recipe
    def strict(learning_rate: Rate, b1: UnitInterval = 0.5):
        return (gradtx.scale_by_rms(b1), gradtx.scale_by_learning_rate(learning_rate))

    with pytest.raises(ValueError, match=r"^scale_by_rms: decay must be in \[0, 1\)"):
        strict(0.1, b1)


def test_recipe_names_itself_and_records_its_arguments():
    @recipe
    def shiny(learning_rate: Rate, b1: Decay = 0.9, mu_dtype: StateDtype = None, *, flag=False):
        return gradtx.scale_by_momentum(b1), gradtx.scale_by_learning_rate(learning_rate)

    opt = shiny(0.1, mu_dtype=jnp.bfloat16)
    assert opt.name == "shiny" and opt.combinator == "chain"
    assert opt.hyperparams == {
        "learning_rate": 0.1,
        "b1": 0.9,
        "mu_dtype": "bfloat16",
        "flag": False,
    }
    assert "mu_dtype" not in shiny(0.1).hyperparams  # None: each parameter's dtype
    with pytest.raises(ValueError, match=r"^shiny: b1 must be in \[0, 1\), got 1.0"):
        shiny(0.1, b1=1.0)
    with pytest.raises(TypeError, match=r"^shiny: missing a required argument: 'learning_rate'"):
        shiny()
    params = {"w": jnp.array([1.0, -2.0])}
    updates, _ = opt.update({"w": jnp.array([1.0, 1.0])}, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.1, -0.1])


def test_recipe_keeps_the_signature_and_docstring():
    import inspect

    assert list(inspect.signature(gradtx.adam).parameters)[:3] == ["learning_rate", "b1", "b2"]
    assert gradtx.adam.__doc__.startswith("Adam:")
    assert gradtx.adam.__module__ == "gradtx.optimizers._adam"
