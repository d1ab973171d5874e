"""gradtx.presets.keras reproduces Keras 3 optimizers and schedules number for number.

Each case runs the preset and the real Keras 3 optimizer (JAX backend,
``stateless_apply`` under ``jax.lax.scan``) side by side for 110 steps on
three problems (tests/_porting_problems.py), both in float64, each taking
the gradient at its own parameters, and compares every parameter at every
step to 1e-6 relative.  The presets take Keras's argument names, so each
case passes the very same keywords to both.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _porting_problems import (
    CONST,
    LEAVES,
    STEPS,
    TREEDEF,
    assert_same_trajectory,
    compile_quickly,
    gradtx_trajectory,
    loss,
    ravel,
    unravel,
)

from gradtx.presets import keras as pk

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow

RTOL = 1e-6


def _keras():
    """Keras 3 with the JAX backend, imported on first use (not when the suite is collected).

    Keras picks its backend when it is first imported: select JAX before that,
    then put the environment back so that nothing else sees the variable.
    """
    before = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "jax"
    try:
        import keras
    finally:
        if before is None:
            del os.environ["KERAS_BACKEND"]
        else:
            os.environ["KERAS_BACKEND"] = before
    if keras.backend.backend() != "jax":
        raise RuntimeError(
            f"keras was imported with the {keras.backend.backend()!r} backend before "
            f"this module; these tests need KERAS_BACKEND=jax"
        )
    return keras


@pytest.fixture(scope="module", autouse=True)
def _float64_everywhere():
    """float64 in JAX and as Keras's floatx, for this module only."""
    keras = _keras()
    previous = keras.config.floatx()
    try:
        with jax.enable_x64(True):
            keras.config.set_floatx("float64")
            yield
    finally:
        keras.config.set_floatx(previous)


def keras_trajectory(optimizer, steps=STEPS):
    """Keras's update, ``optimizer.stateless_apply``, scanned; leaves stacked over steps.

    Keras's own code relies on standard dtype promotion, so it runs without
    the strict promotion that the suite imposes on gradtx.
    """
    with jax.numpy_dtype_promotion("standard"):
        return _keras_trajectory(optimizer, steps)


def _keras_trajectory(optimizer, steps):
    const = jax.tree.map(jnp.asarray, CONST)
    grad = jax.grad(lambda leaves: loss(TREEDEF.unflatten(leaves), const, jnp.tanh))
    variables = [_keras().Variable(x, dtype="float64") for x in LEAVES]
    optimizer.build(variables)

    def body(carry, _):
        leaves, state = carry
        leaves, state = optimizer.stateless_apply(state, grad(leaves), leaves)
        return (list(leaves), list(state)), ravel(leaves)

    def run(leaves, state):
        return jax.lax.scan(body, (leaves, state), None, length=steps)[1]

    args = ([v.value for v in variables], [v.value for v in optimizer.variables])
    return unravel(compile_quickly(run, *args)(*args))


# (keras.optimizers class, preset, keywords given to both).  Learning rates
# keep every problem in its stable regime, so round-off is not amplified; a
# large epsilon makes its placement show.
OPTIMIZER_CASES = [
    ("SGD", pk.sgd, dict(learning_rate=1e-3)),
    ("SGD", pk.sgd, dict(learning_rate=1e-3, weight_decay=0.05)),
    ("SGD", pk.sgd, dict(learning_rate=1e-3, momentum=0.9)),
    ("SGD", pk.sgd, dict(learning_rate=1e-3, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("Adam", pk.adam, dict(learning_rate=1e-2)),
    (
        "Adam",
        pk.adam,
        dict(learning_rate=1e-2, beta_1=0.8, beta_2=0.99, epsilon=1e-3, amsgrad=True),
    ),
    ("Adam", pk.adam, dict(learning_rate=1e-2, epsilon=1e-3, weight_decay=0.1)),
    ("AdamW", pk.adamw, dict(learning_rate=1e-2)),
    ("AdamW", pk.adamw, dict(learning_rate=1e-2, weight_decay=0.1, epsilon=1e-3, amsgrad=True)),
    ("RMSprop", pk.rmsprop, dict(learning_rate=1e-3)),
    ("RMSprop", pk.rmsprop, dict(learning_rate=1e-3, rho=0.8, epsilon=1e-3, centered=True)),
    ("RMSprop", pk.rmsprop, dict(learning_rate=1e-3, momentum=0.9, weight_decay=0.05)),
    ("RMSprop", pk.rmsprop, dict(learning_rate=1e-3, momentum=0.5, centered=True)),
    ("Adagrad", pk.adagrad, dict(learning_rate=0.1)),
    (
        "Adagrad",
        pk.adagrad,
        dict(learning_rate=0.1, initial_accumulator_value=0.0, epsilon=1e-3, weight_decay=0.05),
    ),
    ("Adadelta", pk.adadelta, dict(learning_rate=1.0)),
    ("Adadelta", pk.adadelta, dict(learning_rate=0.5, rho=0.9, epsilon=1e-6, weight_decay=0.05)),
    ("Nadam", pk.nadam, dict(learning_rate=1e-2)),
    (
        "Nadam",
        pk.nadam,
        dict(learning_rate=1e-2, beta_1=0.8, beta_2=0.99, epsilon=1e-3, weight_decay=0.05),
    ),
]


def _case_id(case):
    name, _, kwargs = case
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=[_case_id(c) for c in OPTIMIZER_CASES])
def test_keras_preset_trajectory_matches_keras_optimizer(case):
    name, preset, kwargs = case
    theirs = keras_trajectory(getattr(_keras().optimizers, name)(**kwargs))
    ours = gradtx_trajectory(preset(**kwargs))
    assert_same_trajectory(ours, theirs, RTOL)


def float64(kwargs):
    """Schedule keywords with float values as np.float64 (a subclass of float).

    A Keras schedule computes in the dtype of ``initial_learning_rate`` (or of
    ``values``): float32 for a Python float, whatever floatx says.  np.float64
    makes Keras compute in float64 too; the presets take either.
    """

    def convert(v):
        if isinstance(v, float):
            return np.float64(v)
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v

    return {k: convert(v) for k, v in kwargs.items()}


# (keras.optimizers class, preset, optimizer keywords, keras.optimizers.schedules
# class, preset schedule, schedule keywords).
SCHEDULE_CASES = [
    (
        "SGD",
        pk.sgd,
        dict(momentum=0.9),
        "ExponentialDecay",
        pk.exponential_decay,
        dict(initial_learning_rate=1e-3, decay_steps=10, decay_rate=0.5, staircase=True),
    ),
    (
        "Adam",
        pk.adam,
        dict(),
        "CosineDecay",
        pk.cosine_decay,
        dict(
            initial_learning_rate=1e-3,
            decay_steps=80,
            alpha=0.1,
            warmup_target=1e-2,
            warmup_steps=20,
        ),
    ),
    (
        "RMSprop",
        pk.rmsprop,
        dict(momentum=0.9, weight_decay=0.05),
        "PiecewiseConstantDecay",
        pk.piecewise_constant_decay,
        dict(boundaries=[30, 70], values=[1e-3, 5e-4, 2e-4]),
    ),
    (
        "AdamW",
        pk.adamw,
        dict(weight_decay=0.1),
        "InverseTimeDecay",
        pk.inverse_time_decay,
        dict(initial_learning_rate=1e-2, decay_steps=10, decay_rate=0.5),
    ),
]


@pytest.mark.parametrize("case", SCHEDULE_CASES, ids=[f"{c[0]}+{c[3]}" for c in SCHEDULE_CASES])
def test_keras_preset_with_schedule_matches_keras_optimizer(case):
    name, preset, kwargs, schedule_class, schedule, schedule_kwargs = case
    schedule_kwargs = float64(schedule_kwargs)
    keras = _keras()
    schedule_class = getattr(keras.optimizers.schedules, schedule_class)
    theirs = keras_trajectory(
        getattr(keras.optimizers, name)(learning_rate=schedule_class(**schedule_kwargs), **kwargs)
    )
    ours = gradtx_trajectory(preset(learning_rate=schedule(**schedule_kwargs), **kwargs))
    assert_same_trajectory(ours, theirs, RTOL)


FLOAT32 = dict(rtol=1e-6, atol=1e-7)
SCHEDULE_VALUE_CASES = [
    (
        "ExponentialDecay",
        pk.exponential_decay,
        dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.8),
    ),
    (
        "ExponentialDecay",
        pk.exponential_decay,
        dict(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.8, staircase=True),
    ),
    (
        "PiecewiseConstantDecay",
        pk.piecewise_constant_decay,
        dict(boundaries=[10, 25, 26], values=[0.3, 0.2, 0.1, 0.05]),
    ),
    # Keras's ops.cos returns float32 even for float64 input: float32 tolerance.
    (
        "CosineDecay",
        pk.cosine_decay,
        dict(initial_learning_rate=0.1, decay_steps=40),
        FLOAT32,
    ),
    (
        "CosineDecay",
        pk.cosine_decay,
        dict(
            initial_learning_rate=0.0, decay_steps=30, alpha=0.2, warmup_target=0.5, warmup_steps=15
        ),
        FLOAT32,
    ),
    (
        "InverseTimeDecay",
        pk.inverse_time_decay,
        dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.3),
    ),
    (
        "InverseTimeDecay",
        pk.inverse_time_decay,
        dict(initial_learning_rate=0.1, decay_steps=5, decay_rate=0.3, staircase=True),
    ),
]


@pytest.mark.parametrize(
    "case",
    SCHEDULE_VALUE_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(SCHEDULE_VALUE_CASES)],
)
def test_keras_schedule_matches_keras_at_every_step(case):
    schedule_class, schedule, kwargs, *tolerance = case
    schedule_class = getattr(_keras().optimizers.schedules, schedule_class)
    tolerance = tolerance[0] if tolerance else dict(rtol=1e-12, atol=1e-15)
    kwargs = float64(kwargs)
    steps = jnp.arange(60, dtype=jnp.int32)
    with jax.numpy_dtype_promotion("standard"):  # one compilation, not one per step
        theirs = np.asarray(jax.jit(jax.vmap(schedule_class(**kwargs)))(steps))
    ours = np.asarray(jax.vmap(schedule(**kwargs))(steps))
    np.testing.assert_allclose(ours, theirs, **tolerance)


# ----------------------------------------------------------------------------
# Arguments are checked with gradtx's messages.


def test_keras_adamw_without_weight_decay_raises():
    with pytest.raises(
        ValueError, match="keras.adamw: weight_decay must be a number >= 0, got None"
    ):
        pk.adamw(weight_decay=None)


def test_keras_piecewise_constant_decay_with_mismatched_lists_raises():
    with pytest.raises(ValueError, match="values must have one more entry than boundaries"):
        pk.piecewise_constant_decay([10, 20], [0.1, 0.2])
    with pytest.raises(ValueError, match="boundaries must be strictly increasing"):
        pk.piecewise_constant_decay([20, 10], [0.1, 0.2, 0.3])


def test_keras_rmsprop_with_bad_rho_raises():
    with pytest.raises(ValueError, match=r"keras.rmsprop: rho must be in \[0, 1\), got 1.5"):
        pk.rmsprop(rho=1.5)


def test_keras_adam_recipe_reads_as_adam_with_the_epsilon_hat_correction():
    opt = pk.adam(learning_rate=1e-3, weight_decay=0.01)
    assert [part.name for part in opt.children] == [
        "precondition",
        "scale_by_schedule",
        "add_decayed_weights",
        "scale_by_learning_rate",
    ]
    direction, rms = opt.children[0].children
    assert [part.name for part in direction.children] == ["scale_by_momentum", "bias_correction"]
    assert rms.name == "scale_by_rms" and rms.hyperparams["bias_correction"] is False
