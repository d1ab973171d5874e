"""The orthogonalization transforms (Newton-Schulz, Polar Express, orthogonalize) against NumPy
and the SVD; Muon's sharded run and torch preset.  Muon's own comparisons: test_optimizers_matrix.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_matrix as ref_matrix

import gradtx

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------
# Polar functions.


def _random_matrices(shape, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(n)]


@pytest.mark.parametrize("shape", [(3, 5), (6, 2), (4, 4)])
def test_newton_schulz_matches_closed_form(shape, x64):
    for x in _random_matrices(shape, 3):
        np.testing.assert_allclose(
            gradtx.newton_schulz()(jnp.asarray(x)),
            ref_matrix.newton_schulz(x),
            rtol=1e-12,
            atol=1e-13,
        )


def test_newton_schulz_per_step_coeffs_match_closed_form(x64):
    x = _random_matrices((4, 7), 1)[0]
    coeffs = ((4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377), (3.7418, -5.5913, 2.3037))
    np.testing.assert_allclose(
        gradtx.newton_schulz(coeffs, steps=3)(jnp.asarray(x)),
        ref_matrix.newton_schulz(x, coeffs),
        rtol=1e-12,
        atol=1e-13,
    )


@pytest.mark.parametrize("steps", [3, 5, 10])
def test_polar_express_matches_closed_form(steps, x64):
    for x in _random_matrices((5, 9), 2, seed=steps) + _random_matrices((9, 5), 1, seed=steps):
        np.testing.assert_allclose(
            gradtx.polar_express(steps)(jnp.asarray(x)),
            ref_matrix.polar_express(x, steps),
            rtol=1e-11,
            atol=1e-12,
        )


@pytest.mark.parametrize("shape", [(8, 5), (5, 8)])
def test_polar_express_converges_to_svd_polar(shape, x64):
    x = _random_matrices(shape, 1, seed=3)[0]
    exact = ref_matrix.svd_polar(x)
    np.testing.assert_allclose(gradtx.svd_polar()(jnp.asarray(x)), exact, atol=1e-12)
    # With sigma_min / sigma_max >= 1e-3 the paper's 5 steps leave the
    # singular values within its bound; 10 steps reach polar(X).
    s5 = np.linalg.svd(np.asarray(gradtx.polar_express(5)(jnp.asarray(x))), compute_uv=False)
    assert np.all(np.abs(s5 - 1) < 0.3)
    np.testing.assert_allclose(gradtx.polar_express(10)(jnp.asarray(x)), exact, atol=1e-6)
    # Jordan's quintic does not converge to polar(X), it plateaus.
    s_ns = np.linalg.svd(
        np.asarray(gradtx.newton_schulz(steps=20)(jnp.asarray(x))), compute_uv=False
    )
    assert np.max(np.abs(s_ns - 1)) > 0.1


def test_orthogonalize_batched_equals_leaf_by_leaf():
    rng = np.random.default_rng(5)
    tree = {f"w{i}": jnp.asarray(rng.normal(size=(6, 10)), jnp.float32) for i in range(4)}
    tree["tall"] = jnp.asarray(rng.normal(size=(10, 6)), jnp.float32)
    tx = gradtx.orthogonalize()
    polar = jax.jit(gradtx.newton_schulz())
    batched, _ = jax.jit(tx.update)(tree, tx.init(tree))
    for k, x in tree.items():
        np.testing.assert_allclose(batched[k], polar(x), rtol=1e-5, atol=2e-6)


def test_orthogonalize_with_dimension_numbers_treats_other_axes_as_batch(x64):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4, 5)))
    dims = gradtx.MuonDimensionNumbers(reduction_axis=1, output_axis=2)
    tx = gradtx.orthogonalize(gradtx.svd_polar(), weight_dimension_numbers=dims)
    u, _ = tx.update({"w": x}, tx.init(None))
    for i in range(3):
        np.testing.assert_allclose(u["w"][i], ref_matrix.svd_polar(np.asarray(x[i])), atol=1e-12)


def test_orthogonalize_with_vector_leaf_raises():
    tx = gradtx.orthogonalize()
    with pytest.raises(
        ValueError, match=r"orthogonalize: leaf \['b'\] has shape \(3,\), not a matrix"
    ):
        tx.update({"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, tx.init(None))


def test_orthogonalize_adaptive_scales_by_nuclear_norm(x64):
    x = _random_matrices((4, 6), 1, seed=7)[0]
    tx = gradtx.orthogonalize(gradtx.svd_polar(), adaptive=True)
    u, _ = tx.update(jnp.asarray(x), tx.init(None))
    nuclear = np.sum(np.linalg.svd(x, compute_uv=False))
    np.testing.assert_allclose(u, nuclear * ref_matrix.svd_polar(x), rtol=1e-12)


@pytest.mark.parametrize("consistent_rms, expected", [(None, 2.0), (0.2, 0.2 * 4.0)])
def test_scale_by_shape_factor(consistent_rms, expected):
    tx = gradtx.scale_by_shape(consistent_rms=consistent_rms)
    u, _ = tx.update({"w": jnp.ones((4, 16))}, tx.init(None))
    np.testing.assert_allclose(u["w"], expected, rtol=1e-6)
    torch_layout = gradtx.MuonDimensionNumbers(reduction_axis=1, output_axis=0)
    tx = gradtx.scale_by_shape(torch_layout)
    u, _ = tx.update({"w": jnp.ones((16, 4))}, tx.init(None))
    np.testing.assert_allclose(u["w"], 2.0, rtol=1e-6)  # sqrt(max(1, rows / cols))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gradtx.newton_schulz(((1.0, 2.0),)), "ns_coeffs must have shape"),
        (
            lambda: gradtx.newton_schulz(ref_matrix.JORDAN, preconditioning="qr"),
            "preconditioning must be",
        ),
        (lambda: gradtx.newton_schulz("fast"), "unknown coeffs preset"),
        (lambda: gradtx.polar_express(safety=0.5), "safety must be"),
        (lambda: gradtx.muon(0.1, beta=1.0), "muon: beta must be in"),
        (lambda: gradtx.orthogonalize(polar=3), "polar must be a function"),
    ],
)
def test_orthogonal_bad_hyperparameters_raise(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


# ----------------------------------------------------------------------------
# NorMuon.


def test_scale_by_neuron_rms_equalises_output_neurons_and_keeps_norm(x64):
    o = jnp.asarray(np.random.default_rng(8).normal(size=(5, 3)) * np.array([1.0, 10.0, 0.1]))
    tx = gradtx.scale_by_neuron_rms(0.0, eps=0.0)
    u, state = tx.update({"w": o}, tx.init({"w": o}))
    norms = np.linalg.norm(np.asarray(u["w"]), axis=0)
    np.testing.assert_allclose(norms, norms[0], rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(u["w"]), np.linalg.norm(o), rtol=1e-12)
    assert state.nu["w"].shape == (1, 1, 3)


# ----------------------------------------------------------------------------
# gradtx.presets.torch.muon against torch.optim.Muon (bfloat16 Newton-Schulz).


@pytest.mark.parametrize(
    "kwargs, steps",
    [(dict(), 100), (dict(adjust_lr_fn="match_rms_adamw", nesterov=False, weight_decay=0.0), 30)],
)
def test_torch_muon_preset_matches_torch_step_for_step(kwargs, steps):
    # Teacher-forced: every step starts both from PyTorch's parameters and
    # momentum, so each step's difference is that step's alone.  PyTorch's
    # lerp and gradtx's multiply-add differ in the last float32 bit; when that
    # makes an entry round to the neighbouring bfloat16 (0.4%), five
    # Newton-Schulz steps spread it over the matrix: up to 2.4% of the step's
    # largest entry was measured, so 5% is allowed; most steps agree to
    # float32 round-off (the median is held to 1e-4).
    import torch

    from gradtx.presets import torch as pt

    rng = np.random.default_rng(0)
    shapes = [(8, 4), (4, 8), (6, 6), (12, 6)]
    start = [rng.normal(size=s).astype(np.float32) for s in shapes]
    centre = [rng.normal(size=s).astype(np.float32) for s in shapes]
    curvature = [rng.uniform(0.5, 2, size=s).astype(np.float32) for s in shapes]
    lr = 0.02
    ps = [torch.tensor(p) for p in start]
    opt = torch.optim.Muon(ps, lr=lr, **kwargs)
    tx = pt.muon(lr=lr, **kwargs)
    treedef = jax.tree.structure(tx.init([jnp.asarray(p) for p in start]))  # leaves: momenta
    step = jax.jit(tx.update)
    errors = []
    for t in range(steps):
        grads = [torch.tensor(k) * (p - torch.tensor(c)) for p, c, k in zip(ps, centre, curvature)]
        for p, g in zip(ps, grads):
            p.grad = g
        before = [p.numpy().copy() for p in ps]
        momenta = [
            opt.state[p]["momentum_buffer"].numpy().copy() if t else np.zeros_like(b)
            for p, b in zip(ps, before)
        ]
        state = jax.tree.unflatten(treedef, [jnp.asarray(m) for m in momenta])
        ours, _ = step(
            [jnp.asarray(g.numpy()) for g in grads], state, [jnp.asarray(b) for b in before]
        )
        opt.step()
        theirs = [p.numpy() - b for p, b in zip(ps, before)]
        errors.append(
            max(
                float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))
                for a, b in zip(ours, theirs)
            )
        )
    print(f"\ntorch muon {kwargs}: worst step {max(errors):.2e}, median {np.median(errors):.2e}")
    assert errors[0] < 1e-4  # (p_t+1 - p_t in float32 carries 1e-5 of round-off)
    assert np.median(errors) < 1e-4
    assert max(errors) < 0.05


# ----------------------------------------------------------------------------
# Muon with the orthogonalization split over a mesh axis (ZeRO-1), 8 simulated devices.


def test_muon_sharded_over_8_devices_matches_one_device_and_splits_the_stacks():
    import json
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    env["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=8"])
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run(
        [sys.executable, str(root / "tests" / "sharded_muon_worker.py")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\nsharded muon:", result)
    assert result["max_abs_diff"] < 1e-6
    # 16 matrices of one shape over 8 devices: each device's dots have batch 2,
    # where one device runs them with batch 16.
    assert result["dot_batches"] == [2]
    assert 16 in result["one_device_dot_batches"]


@pytest.mark.parametrize("make", [lambda: gradtx.muon(0.02), lambda: gradtx.normuon(0.02)])
def test_muon_with_a_zero_size_matrix_gives_it_an_empty_update(make):
    opt = make()
    # made in NumPy: device arrays of the same dtype, no eager conversion to compile
    params = {"w": np.ones((3, 2)), "e": np.zeros((0, 4))}
    grads = {"w": np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]]), "e": np.zeros((0, 4))}
    params, grads = jax.tree.map(lambda x: jnp.asarray(np.float32(x), jnp.float32), (params, grads))
    state = opt.init(params)
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
    assert updates["e"].shape == (0, 4)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves((updates, state)))
    # The matrix beside it is orthogonalized as alone.
    alone = make()
    w = {"w": params["w"]}
    alone_updates, _ = alone.update({"w": grads["w"]}, alone.init(w), w)
    np.testing.assert_array_equal(
        make().update(grads, make().init(params), params)[0]["w"], alone_updates["w"]
    )


def test_scale_by_shape_with_a_matrix_without_rows_keeps_it_empty():
    u, _ = gradtx.scale_by_shape().update({"e": jnp.zeros((0, 4))}, gradtx.EmptyState())
    assert u["e"].shape == (0, 4)
