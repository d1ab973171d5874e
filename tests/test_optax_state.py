"""state_to_optax / state_from_optax against optax itself.

For every covered optimizer: optax runs a few steps, its state is converted,
and gradtx continues; optax's own continuation is the reference.  The round
trip optax -> gradtx -> optax gives back the same arrays, bit for bit, in
optax's own types.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradtx

_LR = 0.05
_SCHEDULE = optax.linear_schedule(0.05, 0.01, 10)

# (id, gradtx optimizer, optax optimizer): the same name and arguments.
CASES = [
    ("sgd", gradtx.sgd(_LR), optax.sgd(_LR)),
    ("sgd_momentum", gradtx.sgd(_LR, momentum=0.9), optax.sgd(_LR, momentum=0.9)),
    (
        "sgd_nesterov",
        gradtx.sgd(_LR, momentum=0.9, nesterov=True),
        optax.sgd(_LR, momentum=0.9, nesterov=True),
    ),
    ("sgd_schedule", gradtx.sgd(_SCHEDULE, momentum=0.5), optax.sgd(_SCHEDULE, momentum=0.5)),
    ("adam", gradtx.adam(_LR), optax.adam(_LR)),
    ("adam_nesterov", gradtx.adam(_LR, nesterov=True), optax.adam(_LR, nesterov=True)),
    ("adam_schedule", gradtx.adam(_SCHEDULE), optax.adam(_SCHEDULE)),
    ("adamw", gradtx.adamw(_LR, weight_decay=0.1), optax.adamw(_LR, weight_decay=0.1)),
    (
        "adamw_mask",
        gradtx.adamw(_LR, weight_decay=0.1, mask={"w": True, "b": False}),
        optax.adamw(_LR, weight_decay=0.1, mask={"w": True, "b": False}),
    ),
    ("nadam", gradtx.nadam(_LR), optax.nadam(_LR)),
    ("nadamw", gradtx.nadamw(_LR, weight_decay=0.1), optax.nadamw(_LR, weight_decay=0.1)),
    ("amsgrad", gradtx.amsgrad(_LR), optax.amsgrad(_LR)),
    ("radam", gradtx.radam(_LR, threshold=4.5), optax.radam(_LR, threshold=4.5)),
    ("adamax", gradtx.adamax(_LR), optax.adamax(_LR)),
    ("adamaxw", gradtx.adamaxw(_LR), optax.adamaxw(_LR)),
    ("rmsprop", gradtx.rmsprop(_LR), optax.rmsprop(_LR)),
    ("rmsprop_centered", gradtx.rmsprop(_LR, centered=True), optax.rmsprop(_LR, centered=True)),
    (
        "rmsprop_momentum",
        gradtx.rmsprop(_LR, momentum=0.9, nesterov=True),
        optax.rmsprop(_LR, momentum=0.9, nesterov=True),
    ),
    (
        "rmsprop_bias_correction",
        gradtx.rmsprop(_LR, bias_correction=True),
        optax.rmsprop(_LR, bias_correction=True),
    ),
    (
        "rmsprop_centered_bias_correction",
        gradtx.rmsprop(_LR, centered=True, bias_correction=True),
        optax.rmsprop(_LR, centered=True, bias_correction=True),
    ),
    ("adagrad", gradtx.adagrad(_LR), optax.adagrad(_LR)),
    ("adadelta", gradtx.adadelta(1.0), optax.adadelta(1.0)),
    ("adabelief", gradtx.adabelief(_LR), optax.adabelief(_LR)),
    ("yogi", gradtx.yogi(_LR), optax.yogi(_LR)),
    ("lion", gradtx.lion(_LR), optax.lion(_LR)),
    ("lamb", gradtx.lamb(_LR), optax.lamb(_LR)),
    ("lars", gradtx.lars(_LR), optax.lars(_LR)),
    (
        "adafactor",
        gradtx.adafactor(_LR, min_dim_size_to_factor=2),
        optax.adafactor(_LR, min_dim_size_to_factor=2),
    ),
    (
        "adafactor_momentum_decay",
        gradtx.adafactor(
            _LR,
            min_dim_size_to_factor=2,
            momentum=0.9,
            weight_decay_rate=0.1,
            weight_decay_mask={"w": True, "b": False},
        ),
        optax.adafactor(
            _LR,
            min_dim_size_to_factor=2,
            momentum=0.9,
            weight_decay_rate=0.1,
            weight_decay_mask={"w": True, "b": False},
        ),
    ),
    ("sm3", gradtx.sm3(_LR), optax.sm3(_LR)),
    ("novograd", gradtx.novograd(_LR), optax.novograd(_LR)),
    ("adan", gradtx.adan(_LR), optax.adan(_LR)),
    ("sign_sgd", gradtx.sign_sgd(_LR), optax.sign_sgd(_LR)),
    ("signum", gradtx.signum(_LR), optax.signum(_LR)),
    ("fromage", gradtx.fromage(_LR), optax.fromage(_LR)),
    ("noisy_sgd", gradtx.noisy_sgd(_LR, key=3), optax.noisy_sgd(_LR, key=jax.random.key(3))),
    ("rprop", gradtx.rprop(_LR), optax.rprop(_LR)),
    (
        "optimistic_gradient_descent",
        gradtx.optimistic_gradient_descent(_LR),
        optax.optimistic_gradient_descent(_LR),
    ),
    ("optimistic_adam", gradtx.optimistic_adam(_LR), optax.optimistic_adam(_LR)),
    ("optimistic_adam_v2", gradtx.optimistic_adam_v2(_LR), optax.optimistic_adam_v2(_LR)),
    # optax.contrib's, and optax's own outside its main list.
    (
        "schedule_free_adamw",
        gradtx.schedule_free_adamw(_LR, weight_decay=0.1),
        optax.contrib.schedule_free_adamw(_LR, weight_decay=0.1),
    ),
    (
        "schedule_free_sgd",
        gradtx.schedule_free_sgd(_LR),
        optax.contrib.schedule_free_sgd(_LR),
    ),
    (
        "schedule_free_sgd_weight_decay",
        gradtx.schedule_free_sgd(_LR, weight_decay=0.1),
        optax.contrib.schedule_free_sgd(_LR, weight_decay=0.1),
    ),
    ("prodigy", gradtx.prodigy(1.0), optax.contrib.prodigy(1.0)),
    ("dog", gradtx.dog(1.0), optax.contrib.dog(1.0)),
    ("dowg", gradtx.dowg(1.0), optax.contrib.dowg(1.0)),
    ("cocob", gradtx.cocob(1.0), optax.contrib.cocob(1.0)),
    ("ademamix", gradtx.ademamix(_LR), optax.contrib.ademamix(_LR)),
    (
        "simplified_ademamix",
        gradtx.simplified_ademamix(_LR),
        optax.contrib.simplified_ademamix(_LR),
    ),
    ("adopt", gradtx.adopt(_LR), optax.contrib.adopt(_LR)),
    ("momo", gradtx.momo(_LR), optax.contrib.momo(_LR)),
    ("momo_adam", gradtx.momo_adam(_LR), optax.contrib.momo_adam(_LR)),
    ("sophia", gradtx.sophia(_LR, update_interval=2), optax.contrib.sophia(_LR, update_interval=2)),
    ("acprop", gradtx.acprop(_LR), optax.contrib.acprop(_LR)),
    (
        "galore",
        gradtx.galore(_LR, rank=2, update_proj_gap=2),
        optax.contrib.galore(_LR, rank=2, update_proj_gap=2),
    ),
    ("polyak_sgd", gradtx.polyak_sgd(1.0), optax.polyak_sgd(1.0)),
    ("muon", gradtx.muon(_LR), optax.contrib.muon(_LR)),
    (
        "muon_momentum_decay",
        gradtx.muon(_LR, nesterov=False, weight_decay=0.1),
        optax.contrib.muon(_LR, nesterov=False, weight_decay=0.1),
    ),
    ("lbfgs", gradtx.lbfgs(), optax.lbfgs()),
    ("lbfgs_memory", gradtx.lbfgs(_LR, memory_size=2), optax.lbfgs(_LR, memory_size=2)),
]
IDS = [case[0] for case in CASES]
# The cases whose updates take a line search's keywords (see ``_run``).
_LINESEARCH = {"lbfgs", "lbfgs_memory"}


def _params(dtype):
    rng = np.random.default_rng(0)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)).astype(dtype), dtype),
        "b": jnp.asarray(rng.normal(size=(3,)).astype(dtype), dtype),
    }


def _loss(params):
    """sum(p^2 / 2 + sin(3 p) / 3) over every leaf."""
    return sum(jnp.sum(p * p / 2 + jnp.sin(3 * p) / 3) for p in jax.tree.leaves(params))


def _grad(params):
    """The gradient of ``_loss``: moves every optimizer differently each step.  In NumPy,
    in the leaves' dtype: gradtx and optax get the same gradients, and it compiles nothing."""

    def grad(p):
        p = np.asarray(p)
        return jnp.asarray(p + np.cos(3 * p), p.dtype)

    return jax.tree.map(grad, params)


def _run(opt, params, state, steps, grad=_grad, linesearch=False):
    """``steps`` updates; optax's own run under standard dtype promotion, as optax is written.

    Every update gets the loss (``value=``) and the loss function (``obj_fn=``):
    momo and polyak_sgd read the one, sophia the other, the rest neither.
    With ``linesearch`` it gets what lbfgs's line search reads instead (optax's
    rejects any other keyword): the loss, its gradient and ``value_fn=``.
    """
    promotion = "strict" if isinstance(opt, gradtx.GradientTransformation) else "standard"
    path = []
    with jax.numpy_dtype_promotion(promotion):
        for _ in range(steps):
            gradient = grad(params)
            if linesearch:
                extra = {"value": _loss(params), "grad": gradient, "value_fn": _loss}
            else:
                extra = {"value": _loss(params), "obj_fn": _loss}
            updates, state = opt.update(gradient, state, params, **extra)
            params = optax.apply_updates(params, updates)
            path.append(params)
    return params, state, path


def _raw(leaf):
    leaf = jnp.asarray(leaf)
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(leaf))
    return np.asarray(leaf)


def _assert_bit_equal(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert jnp.asarray(a).dtype == jnp.asarray(e).dtype
        np.testing.assert_array_equal(_raw(a), _raw(e))


def _assert_close(actual, expected, rtol):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        a, e = _raw(a), _raw(e)
        if not np.issubdtype(e.dtype, np.inexact):
            np.testing.assert_array_equal(a, e)
            continue
        scale = float(np.max(np.abs(e))) if e.size else 0.0
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * max(scale, 1.0))


def _continue_both(name, gtx, otx, dtype, rtol, before=3, after=4):
    params, ls = _params(dtype), name in _LINESEARCH
    params, optax_state, _ = _run(otx, params, otx.init(params), before, linesearch=ls)
    state = gradtx.state_from_optax(gtx, optax_state)
    ours, our_state, our_path = _run(gtx, params, state, after, linesearch=ls)
    theirs, their_state, their_path = _run(otx, params, optax_state, after, linesearch=ls)
    for mine, reference in zip(our_path, their_path):
        _assert_close(mine, reference, rtol)
    _assert_close(gradtx.state_to_optax(gtx, our_state), their_state, rtol)


# In float32 gradtx's and optax's radam differ by ~1e-5 from a fresh start: the
# rectification term cancels (rho_t - 4 near the threshold) and the two round
# it differently.  In float64 (below) they agree to 1e-10.
_FLOAT32_RTOL = {"radam": 3e-5}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_from_optax_continues_as_optax_does(case):
    name, gtx, otx = case
    _continue_both(name, gtx, otx, jnp.float32, _FLOAT32_RTOL.get(name, 1e-6))


@pytest.mark.parametrize(
    "name",
    [
        "sgd_nesterov",
        "adam",
        "adamw",
        "nadam",
        "amsgrad",
        "radam",
        "rmsprop_centered",
        "lion",
        "schedule_free_adamw",
        "prodigy",
        "ademamix",
    ],
)
def test_state_from_optax_continues_as_optax_does_in_float64(name, x64):
    _, gtx, otx = CASES[IDS.index(name)]
    _continue_both(name, gtx, otx, jnp.float64, 1e-10)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_round_trip_through_gradtx_is_bit_equal(case):
    name, gtx, otx = case
    params = _params(jnp.float32)
    _, optax_state, _ = _run(otx, params, otx.init(params), 3, linesearch=name in _LINESEARCH)
    back = gradtx.state_to_optax(gtx, gradtx.state_from_optax(gtx, optax_state))
    _assert_bit_equal(back, optax_state)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_to_optax_of_init_is_optax_init(case):
    _, gtx, otx = case
    params = _params(jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        expected = otx.init(params)
    _assert_bit_equal(gradtx.state_to_optax(gtx, gtx.init(params)), expected)


def test_state_from_optax_sets_both_adam_counters_from_optax_count():
    params = _params(jnp.float32)
    otx = optax.adam(_LR)
    _, optax_state, _ = _run(otx, params, otx.init(params), 3)
    state = gradtx.state_from_optax(gradtx.adam(_LR), optax_state)
    direction_count = state.states[0].direction.states[1].count
    preconditioner_count = state.states[0].preconditioner.count
    assert int(direction_count) == int(preconditioner_count) == 3
    assert direction_count is not preconditioner_count  # separate buffers (donation)
    assert gradtx.tree_get(state, "mu")["w"] is optax_state[0].mu["w"]
    assert gradtx.tree_get(state, "nu")["w"] is optax_state[0].nu["w"]


def test_state_from_optax_nadam_b1_product_is_what_gradtx_stores():
    params = _params(jnp.float32)
    gtx = gradtx.nadam(_LR)
    _, state, _ = _run(gtx, params, gtx.init(params), 3)
    back = gradtx.state_from_optax(gtx, gradtx.state_to_optax(gtx, state))
    _assert_bit_equal(back, state)


def test_state_from_optax_reads_a_restored_state_dict():
    from flax import serialization

    params = _params(jnp.float32)
    gtx, otx = (
        gradtx.adamw(_LR, mask={"w": True, "b": False}),
        optax.adamw(_LR, mask={"w": True, "b": False}),
    )
    _, optax_state, _ = _run(otx, params, otx.init(params), 2)
    restored = serialization.to_state_dict(optax_state)
    assert isinstance(restored, dict)
    _assert_bit_equal(
        gradtx.state_from_optax(gtx, restored), gradtx.state_from_optax(gtx, optax_state)
    )


@pytest.mark.filterwarnings("ignore:Sharding info not provided when restoring:UserWarning")
def test_state_from_optax_continues_an_orbax_checkpoint_of_optax(tmp_path):
    import orbax.checkpoint as ocp

    params = _params(jnp.float32)
    gtx, otx = gradtx.adam(_LR), optax.adam(_LR)
    params, optax_state, _ = _run(otx, params, otx.init(params), 3)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "opt_state", optax_state)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "opt_state", otx.init(params))
    state = gradtx.state_from_optax(gtx, restored)
    _assert_bit_equal(gradtx.state_to_optax(gtx, state), optax_state)
    ours, _, _ = _run(gtx, params, state, 4)
    theirs, _, _ = _run(otx, params, optax_state, 4)
    _assert_close(ours, theirs, 1e-6)
    untemplated = ocp.PyTreeCheckpointer().restore(tmp_path / "opt_state")
    _assert_bit_equal(gradtx.state_from_optax(gtx, untemplated), state)


def test_state_to_optax_without_optax_keeps_optax_names(monkeypatch):
    import builtins

    from gradtx import _state_conversion

    real_import = builtins.__import__

    def no_optax(name, *args, **kwargs):
        if name == "optax" or name.startswith("optax."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    _state_conversion._optax_type.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_optax)
    try:
        params = _params(jnp.float32)
        gtx = gradtx.adam(_LR)
        converted = gradtx.state_to_optax(gtx, gtx.init(params))
    finally:
        monkeypatch.undo()
        _state_conversion._optax_type.cache_clear()
    assert not isinstance(converted[0], optax.ScaleByAdamState)
    assert type(converted[0]).__name__ == "ScaleByAdamState"
    assert converted[0]._fields == ("count", "mu", "nu")
    assert type(converted[1]).__name__ == "EmptyState"
    _assert_bit_equal(tuple(converted[0]), tuple(optax.adam(_LR).init(params)[0]))


def test_state_to_optax_optimizer_without_counterpart_raises():
    opt = gradtx.normuon(_LR)
    with pytest.raises(ValueError, match="gradtx.normuon has no optax state layout"):
        gradtx.state_to_optax(opt, opt.init(_params(jnp.float32)))
    with pytest.raises(ValueError, match="gradtx.normuon has no optax state layout"):
        gradtx.state_from_optax(opt, ())


def test_state_from_optax_muon_other_ns_coeffs_raises():
    optax_state = optax.contrib.muon(_LR, ns_coeffs=(3.0, -3.2, 1.2)).init(_params(jnp.float32))
    with pytest.raises(ValueError, match=r"MuonState keeps ns_coeffs .* gradtx.muon was built"):
        gradtx.state_from_optax(gradtx.muon(_LR), optax_state)


def test_state_to_optax_scheduled_weight_decay_raises():
    opt = gradtx.adamw(_LR, weight_decay=_SCHEDULE)
    with pytest.raises(ValueError, match="gradtx.adamw with a scheduled weight_decay"):
        gradtx.state_to_optax(opt, opt.init(_params(jnp.float32)))


def test_state_from_optax_state_of_another_optimizer_raises():
    params = _params(jnp.float32)
    with pytest.raises(
        ValueError, match="gradtx.adam's state has 2 parts but the optax state has 3"
    ):
        gradtx.state_from_optax(gradtx.adam(_LR), optax.adamw(_LR).init(params))
    with pytest.raises(ValueError, match=r"part states\[0\] has no field 'mu'.*optax.adam"):
        gradtx.state_from_optax(gradtx.adam(_LR), optax.rmsprop(_LR).init(params)[:2])
    with pytest.raises(ValueError, match=r"part states\[0\] holds nu_max, which gradtx.adam"):
        gradtx.state_from_optax(gradtx.adam(_LR), optax.amsgrad(_LR).init(params))


def test_state_to_optax_not_a_gradtx_optimizer_raises():
    with pytest.raises(TypeError, match="state_to_optax: expected a gradtx optimizer"):
        gradtx.state_to_optax(optax.adam(_LR), ())


def test_state_to_optax_state_of_another_optimizer_raises():
    params = _params(jnp.float32)
    with pytest.raises(
        ValueError, match=r"gradtx.adam's states\[0\] holds MomentumState, .* got RssState"
    ):
        gradtx.state_to_optax(gradtx.adam(_LR), gradtx.adagrad(_LR).init(params))


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam", "amsgrad", "radam", "lamb"])
def test_adam_moments_found_by_name_in_gradtx_and_optax(name):
    params = _params(jnp.float32)
    gtx, otx = getattr(gradtx, name)(_LR), getattr(optax, name)(_LR)
    _, optax_state, _ = _run(otx, params, otx.init(params), 2)
    state = gradtx.state_from_optax(gtx, optax_state)
    for moment in ("mu", "nu"):
        expected = optax.tree.get(optax_state, moment)
        _assert_bit_equal(gradtx.tree_get(state, moment), expected)
        _assert_bit_equal(optax.tree.get(state, moment), expected)
        _assert_bit_equal(gradtx.tree_get(optax_state, moment), expected)


def _per_example_grads(params):
    """Two examples' gradients per leaf (dpsgd clips each one): _grad and half of it."""

    def two(g):
        g = np.asarray(g)
        return jnp.asarray(np.stack([g, g / 2]), g.dtype)

    return jax.tree.map(two, _grad(params))


def test_dpsgd_state_from_optax_continues_as_optax_does():
    gtx = gradtx.dpsgd(_LR, l2_norm_clip=1.0, noise_multiplier=0.5, seed=3)
    otx = optax.contrib.dpsgd(_LR, l2_norm_clip=1.0, noise_multiplier=0.5, seed=3)
    params = _params(jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        _assert_bit_equal(gradtx.state_to_optax(gtx, gtx.init(params)), otx.init(params))
    params, optax_state, _ = _run(otx, params, otx.init(params), 3, _per_example_grads)
    state = gradtx.state_from_optax(gtx, optax_state)
    _assert_bit_equal(gradtx.state_to_optax(gtx, state), optax_state)
    _, our_state, our_path = _run(gtx, params, state, 4, _per_example_grads)
    _, their_state, their_path = _run(otx, params, optax_state, 4, _per_example_grads)
    for mine, reference in zip(our_path, their_path):
        _assert_close(mine, reference, 1e-6)
    _assert_close(gradtx.state_to_optax(gtx, our_state), their_state, 1e-6)


def test_state_from_optax_lbfgs_without_params_raises():
    with pytest.raises(ValueError, match=r"gradtx.lbfgs's state is laid out from the params"):
        gradtx.state_from_optax(gradtx.lbfgs(), ())
