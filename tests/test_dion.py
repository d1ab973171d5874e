"""Dion and Dion2 (gradtx/_dion.py, gradtx/optimizers/_low_rank.py) against float64 NumPy transcriptions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_low_rank as ref

import gradtx

# Leaves in gradtx's default layout (fan_in, fan_out); the references see their
# transposes, PyTorch's (fan_out, fan_in).
SHAPES = {
    "tall": (12, 5),  # fan_out 5 < fan_in 12: the reference's wide case, transposed
    "wide": (5, 12),
    "square": (6, 6),
}
STEPS = 50


def _relative(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _gradients(shape, steps, seed=0):
    """A fixed sequence of gradients: a drifting low-rank signal plus noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(shape[0], 2)), rng.normal(size=(2, shape[1]))
    return [a @ b * (1 + 0.1 * t) + 0.3 * rng.normal(size=shape) for t in range(steps)]


def _run_gradtx(opt, params, grads):
    state = opt.init(params)
    step = jax.jit(
        lambda p, s, g: (lambda u, s: (gradtx.apply_updates(p, u), s))(*opt.update(g, s, p))
    )
    for g in grads:
        params, state = step(params, state, g)
    return params, state


def _dion_q0(opt_state_q):
    return np.asarray(opt_state_q)[0]


def _dion_state(state):
    """The DionState inside an optimizer's state."""
    found = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, gradtx.DionState))
    return next(s for s in found if isinstance(s, gradtx.DionState))


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
@pytest.mark.parametrize("rank_fraction", [1.0, 0.5])
def test_dion_matches_closed_form(shape_name, rank_fraction, x64):
    shape = SHAPES[shape_name]
    lr, mu, wd = 0.02, 0.9, 0.1
    w0 = np.random.default_rng(1).normal(size=shape)
    grads = _gradients(shape, STEPS)
    opt = gradtx.dion(lr, rank_fraction=rank_fraction, mu=mu, weight_decay=wd, seed=3)
    q0 = _dion_q0(_dion_state(opt.init({"w": jnp.asarray(w0)})).q["w"])
    got, _ = _run_gradtx(opt, {"w": jnp.asarray(w0)}, [{"w": jnp.asarray(g)} for g in grads])
    x, m, q = w0.T, np.zeros_like(w0.T), q0
    for g in grads:
        x, m, q = ref.dion_step(x, g.T, m, q, lr=lr, mu=mu, weight_decay=wd)
    assert q0.shape[1] == (min(shape) if rank_fraction == 1.0 else 3)
    assert _relative(got["w"], x.T) < 1e-10


def test_dion_with_more_power_iterations_and_a_rank_matches_closed_form(x64):
    shape = (8, 10)
    w0 = np.random.default_rng(2).normal(size=shape)
    grads = _gradients(shape, 20, seed=4)
    tx = gradtx.scale_by_dion(rank=2, power_iters=3, mu=0.8)
    opt = gradtx.chain(tx, gradtx.add_decayed_weights(0.05), gradtx.scale_by_learning_rate(0.1))
    q0 = _dion_q0(_dion_state(opt.init({"w": jnp.asarray(w0)})).q["w"])
    got, _ = _run_gradtx(opt, {"w": jnp.asarray(w0)}, [{"w": jnp.asarray(g)} for g in grads])
    x, m, q = w0.T, np.zeros_like(w0.T), q0
    for g in grads:
        x, m, q = ref.dion_step(x, g.T, m, q, lr=0.1, mu=0.8, weight_decay=0.05, power_iters=3)
    assert q0.shape == (8, 2)
    assert _relative(got["w"], x.T) < 1e-10


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
@pytest.mark.parametrize("fraction", [0.25, 1.0])
def test_dion2_matches_closed_form(shape_name, fraction, x64):
    shape = SHAPES[shape_name]
    lr, ef, wd = 0.02, 0.9, 0.1
    w0 = np.random.default_rng(1).normal(size=shape)
    grads = _gradients(shape, STEPS)
    opt = gradtx.dion2(
        lr, fraction=fraction, ef_decay=ef, weight_decay=wd, polar=gradtx.svd_polar()
    )
    got, _ = _run_gradtx(opt, {"w": jnp.asarray(w0)}, [{"w": jnp.asarray(g)} for g in grads])
    x, m = w0.T, np.zeros_like(w0.T)
    for g in grads:
        x, m = ref.dion2_step(x, g.T, m, lr=lr, fraction=fraction, ef_decay=ef, weight_decay=wd)
    assert _relative(got["w"], x.T) < 1e-10


@pytest.mark.parametrize("which", ["dion", "dion2"])
def test_low_rank_on_a_mixed_tree_matches_closed_form_with_adamw_for_vectors(which, x64):
    rng = np.random.default_rng(5)
    params = {"w1": rng.normal(size=(6, 9)), "w2": rng.normal(size=(9, 4)), "b": rng.normal(size=9)}
    grads = [
        {k: g for k, g in zip(params, gs)}
        for gs in zip(
            *(
                _gradients(np.shape(p) if np.ndim(p) == 2 else (1, 9), 30, i)
                for i, p in enumerate(params.values())
            )
        )
    ]
    for g in grads:
        g["b"] = g["b"][0]
    lr, wd = 0.03, 0.05
    if which == "dion":
        opt = gradtx.dion(lr, rank_fraction=0.5, weight_decay=wd)
    else:
        opt = gradtx.dion2(lr, fraction=0.5, weight_decay=wd, polar=gradtx.svd_polar())
    jparams = jax.tree.map(jnp.asarray, params)
    state = opt.init(jparams)
    qs = _dion_state(state).q if which == "dion" else None
    got, _ = _run_gradtx(opt, jparams, [jax.tree.map(jnp.asarray, g) for g in grads])
    refs = {}
    for name in ("w1", "w2"):
        x, m = params[name].T, np.zeros_like(params[name].T)
        q = _dion_q0(qs[name]) if qs is not None else None
        for g in grads:
            if which == "dion":
                x, m, q = ref.dion_step(x, g[name].T, m, q, lr=lr, mu=0.95, weight_decay=wd)
            else:
                x, m = ref.dion2_step(
                    x, g[name].T, m, lr=lr, fraction=0.5, ef_decay=0.95, weight_decay=wd
                )
        refs[name] = x.T
    x, m, v = params["b"], np.zeros(9), np.zeros(9)
    for t, g in enumerate(grads, 1):
        x, m, v = ref.adamw_step(
            x, g["b"], m, v, t, lr=lr, b1=0.9, b2=0.95, eps=1e-8, weight_decay=wd
        )
    refs["b"] = x
    for name in params:
        assert _relative(got[name], refs[name]) < 1e-10, name


def test_dion_with_zero_gradient_keeps_q_and_does_not_move(x64):
    tx = gradtx.scale_by_dion(rank=2, adjust_lr=None)
    g = {"w": jnp.zeros((4, 3))}
    state = tx.init(g)
    u, new = tx.update(g, state)
    q0 = np.asarray(state.q["w"])
    assert np.all(np.asarray(u["w"]) == 0)
    np.testing.assert_allclose(new.q["w"], q0 / (np.linalg.norm(q0, axis=-2, keepdims=True) + 1e-8))


def test_dion_init_is_reproducible_and_seeded():
    params = {"a": jnp.zeros((4, 3)), "b": jnp.zeros((4, 3))}
    q1 = gradtx.scale_by_dion().init(params).q
    q2 = gradtx.scale_by_dion().init(params).q
    q3 = gradtx.scale_by_dion(seed=1).init(params).q
    np.testing.assert_array_equal(q1["a"], q2["a"])
    assert not np.array_equal(q1["a"], q1["b"])  # each leaf its own draw
    assert not np.array_equal(q1["a"], q3["a"])


def test_dion_update_does_not_depend_on_the_signs_of_q(x64):
    g = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(7, 5)))}
    tx = gradtx.scale_by_dion(rank=3)
    state = tx.init(g)
    flipped = state._replace(q={"w": state.q["w"] * jnp.asarray([1.0, -1.0, -1.0])})
    u1, _ = tx.update(g, state)
    u2, _ = tx.update(g, flipped)
    np.testing.assert_allclose(u1["w"], u2["w"], rtol=0, atol=1e-12)


def test_dion2_default_polar_is_polar_express():
    g = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(6, 8)), jnp.float32)}
    a = gradtx.scale_by_dion2()
    b = gradtx.scale_by_dion2(polar=gradtx.polar_express())
    np.testing.assert_array_equal(a.update(g, a.init(g))[0]["w"], b.update(g, b.init(g))[0]["w"])


def test_dion2_moves_only_the_selected_slices():
    g = {"w": jnp.asarray(np.random.default_rng(0).normal(size=(6, 8)), jnp.float32)}
    tx = gradtx.scale_by_dion2(0.25)  # 8 outputs x 6 inputs: 2 of the 6 input rows
    u, state = tx.update(g, tx.init(g))
    moved = np.flatnonzero(np.abs(np.asarray(u["w"])).sum(axis=1))
    expect = np.argsort(-np.abs(np.asarray(g["w"])).sum(axis=1))[:2]
    assert sorted(moved) == sorted(expect)
    decayed = np.isclose(np.asarray(state.momentum["w"]), 0.95 * np.asarray(g["w"]))
    assert decayed[expect].all() and not decayed[np.setdiff1d(np.arange(6), expect)].any()


@pytest.mark.slow
def test_dion_with_bfloat16_params_keeps_dtypes():
    params = {"w": jnp.ones((4, 6), jnp.bfloat16), "b": jnp.ones(4, jnp.bfloat16)}
    for opt in (gradtx.dion(0.01, mu_dtype=jnp.float32), gradtx.dion2(0.01)):
        state = opt.init(params)
        u, state2 = opt.update(params, state, params)
        assert u["w"].dtype == jnp.bfloat16
        assert jax.tree.map(lambda x: x.dtype, state) == jax.tree.map(lambda x: x.dtype, state2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: gradtx.dion(rank_fraction=0.0), "rank_fraction must be in"),
        (lambda: gradtx.dion(rank_fraction=1.5), "rank_fraction must be in"),
        (lambda: gradtx.dion(rank=0), "rank must be an integer >= 1"),
        (lambda: gradtx.dion(rank=2.5), "rank must be an integer >= 1"),
        (lambda: gradtx.dion(rank_multiple_of=0), "rank_multiple_of must be an integer"),
        (lambda: gradtx.dion(power_iters=0), "power_iters must be an integer"),
        (lambda: gradtx.dion(mu=1.5), "mu must be in"),
        (lambda: gradtx.dion(adjust_lr="spectral"), "adjust_lr must be"),
        (lambda: gradtx.dion2(fraction=0.0), "fraction must be in"),
        (lambda: gradtx.dion2(ef_decay=-0.1), "ef_decay must be in"),
        (lambda: gradtx.scale_by_dion2(adjust_lr="rms"), "adjust_lr must be"),
    ],
)
def test_low_rank_bad_hyperparameters_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("tx", [gradtx.scale_by_dion(), gradtx.scale_by_dion2()])
def test_low_rank_transform_on_a_vector_raises_naming_leaf(tx):
    with pytest.raises(ValueError, match=r"leaf \['b'\] has shape \(3,\), not a matrix"):
        tx.init({"b": jnp.zeros(3)})


def test_dion_rank_rounds_up_to_a_multiple():
    q = (
        gradtx.scale_by_dion(rank_fraction=0.25, rank_multiple_of=8)
        .init({"w": jnp.zeros((40, 96))})
        .q
    )
    assert q["w"].shape == (1, 40, 16)  # 0.25 * 40 = 10 -> 16


@pytest.mark.slow
def test_low_rank_under_sharded_jit_equals_one_device():
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=4"])
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run(
        [sys.executable, str(root / "tests" / "sharded_dion_worker.py")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["sharded"], result
    assert result["dion"] < 1e-12 and result["dion2"] < 1e-12, result
