"""KL-Shampoo, KL-SOAP and one-sided Shampoo against float64 NumPy transcriptions
(tests/reference_kl_shampoo.py) on random gradients over tall, wide, square,
3-D, vector and scalar leaves."""

from __future__ import annotations

import numpy as np
import pytest
import reference_kl_shampoo as ref_kl
from problems import assert_trajectories_close, random_sequence, transform_outputs

import gradtx

STEPS = 40
# Small shapes whose first statistics have null spaces of at most one
# dimension, where eigh's basis is unique up to signs (which the updates
# do not depend on).
TREE = {
    "tall": np.zeros((4, 3)),
    "wide": np.zeros((3, 4)),
    "square": np.zeros((3, 3)),
    "cube": np.zeros((2, 3, 4)),
    "vec": np.zeros(3),
    "scalar": np.zeros(()),
}
MATRICES = {k: v for k, v in TREE.items() if np.ndim(v) >= 2}


def _reference_outputs(make, tree, grads, params):
    """The per-leaf NumPy reference's updates, one list of leaves per step."""
    import jax

    leaves = jax.tree.leaves(tree)
    pairs = [make() for _ in leaves]
    states = [init(np.asarray(p)) for (init, _), p in zip(pairs, jax.tree.leaves(params[0]))]
    out = []
    for g, p in zip(grads, params):
        step = []
        for i, ((_, update), gl, pl) in enumerate(
            zip(pairs, jax.tree.leaves(g), jax.tree.leaves(p))
        ):
            u, states[i] = update(gl, states[i], pl)
            step.append(u)
        out.append(step)
    return out


def _compare(opt, make, tree, what, scale=1.0, seed=3):
    grads = [{k: scale * v for k, v in g.items()} for g in random_sequence(tree, STEPS, seed)]
    params = random_sequence(tree, STEPS, seed + 1)
    actual = transform_outputs(opt, grads, params)
    expected = _reference_outputs(make, tree, grads, params)
    assert_trajectories_close(actual, expected, what)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_kl_shampoo_matches_closed_form(scale, x64):
    # At scale 1e-3 the eigenvalue estimates fall to their floor 1 / max(10, d)^2.
    opt = gradtx.kl_shampoo(0.1, weight_decay=0.1, precondition_frequency=3)
    _compare(
        opt,
        lambda: ref_kl.kl(0.1, weight_decay=0.1, frequency=3),
        TREE,
        f"kl_shampoo (gradients x {scale}) vs NumPy",
        scale,
    )


@pytest.mark.slow
def test_kl_shampoo_other_settings_match_closed_form(x64):
    kw = dict(b1=0.5, b2=0.9, eps=1e-3, shampoo_beta=0.8, init_factor=0.5, eigenvalue_clamp=None)
    opt = gradtx.kl_shampoo(0.1, weight_decay=0.0, precondition_frequency=1, **kw)
    ref_kw = dict(b1=0.5, b2=0.9, eps=1e-3, shampoo_beta=0.8, init_factor=0.5, clamp=None)
    _compare(
        opt, lambda: ref_kl.kl(0.1, frequency=1, **ref_kw), TREE, "kl_shampoo (other) vs NumPy"
    )


@pytest.mark.slow
def test_kl_soap_matches_closed_form(x64):
    opt = gradtx.kl_soap(0.1, weight_decay=0.1, precondition_frequency=3)
    _compare(
        opt,
        lambda: ref_kl.kl(0.1, weight_decay=0.1, frequency=3, soap=True),
        TREE,
        "kl_soap vs NumPy",
    )


@pytest.mark.slow
def test_one_sided_shampoo_matrices_match_closed_form(x64):
    opt = gradtx.one_sided_shampoo(0.1, weight_decay=0.1, precondition_frequency=2)
    _compare(
        opt,
        lambda: ref_kl.one_sided_shampoo(0.1, weight_decay=0.1, frequency=2),
        MATRICES,
        "one_sided_shampoo vs NumPy",
    )


def test_scale_by_one_sided_shampoo_passes_vectors_as_debiased_momentum(x64):
    tree = {"vec": np.zeros(3), "scalar": np.zeros(())}
    _compare(
        gradtx.scale_by_one_sided_shampoo(b1=0.9),
        lambda: ref_kl.one_sided_shampoo(-1.0, b1=0.9),
        tree,
        "scale_by_one_sided_shampoo on vectors vs NumPy",
    )


def test_one_sided_shampoo_sends_vectors_to_adamw(x64):
    tree = {"vec": np.zeros(3), "scalar": np.zeros(())}
    grads = random_sequence(tree, 10, 5)
    params = random_sequence(tree, 10, 6)
    ours = transform_outputs(gradtx.one_sided_shampoo(0.1, adam_weight_decay=0.2), grads, params)
    adamw = gradtx.adamw(0.1, 0.9, 0.95, 1e-8, weight_decay=0.2)
    assert_trajectories_close(ours, transform_outputs(adamw, grads, params), "adam part")


@pytest.mark.slow
def test_kl_shampoo_first_step_only_sets_up_eigenbases(x64):
    g = {"w": np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])}
    opt = gradtx.scale_by_kl_shampoo()
    u, state = opt.update(g, opt.init(g))
    np.testing.assert_array_equal(np.asarray(u["w"]), 0.0)
    # S_L = (1 - 0.98) * 2 / 6 * G G^T = diag(4, 1) / 150: eigenvectors e1, e2 (largest first).
    np.testing.assert_allclose(np.asarray(state.stats["w"][0]), np.diag([4.0, 1.0]) / 150)
    np.testing.assert_allclose(np.abs(np.asarray(state.bases["w"][0])), np.eye(2))
    np.testing.assert_array_equal(np.asarray(state.eigenvalues["w"][1]), 0.1)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gradtx.kl_shampoo(0.1, b1=1.2), "kl_shampoo: b1 must be in"),
        (lambda: gradtx.kl_soap(0.1, eps=-1.0), "kl_soap: eps must be"),
        (lambda: gradtx.scale_by_kl_shampoo(init_factor=0.0), "init_factor must be"),
        (lambda: gradtx.scale_by_kl_soap(eigenvalue_clamp=0.5), "eigenvalue_clamp must be"),
        (
            lambda: gradtx.one_sided_shampoo(0.1, precondition_frequency=0),
            "precondition_frequency must be an integer >= 1",
        ),
    ],
)
def test_kl_shampoo_family_bad_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
