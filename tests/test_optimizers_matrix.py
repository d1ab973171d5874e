"""The matrix methods: SOAP, Shampoo (with graft), PSGD-Kron, Muon and NorMuon, against NumPy
transcriptions, optax.contrib.muon and PyTorch implementations."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference_matrix as ref_matrix
from lazy_import import lazy
from problems import (
    PROBLEMS,
    assert_trajectories_close,
    assert_transform_matches,
    run_jax,
    run_reference,
)

import gradtx

torch = lazy("torch")

# Trajectories or integration runs of several seconds each: the full suite runs them,
# the quick tier (-m 'not slow') leaves them out.
pytestmark = pytest.mark.slow


def _run_torch(make_opt, problem, steps=120):
    """A torch.optim-style optimizer on the problem's gradients (float64)."""
    leaves = [torch.tensor(np.asarray(p, np.float64)) for p in jax.tree.leaves(problem.params)]
    for p in leaves:
        p.requires_grad_(True)
    opt = make_opt(leaves)
    trajectory = []
    for _ in range(steps):
        grads = problem.grad_np([p.detach().numpy().copy() for p in leaves])
        for p, g in zip(leaves, grads):
            p.grad = torch.tensor(np.asarray(g, np.float64))
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in leaves])
    return trajectory


# SOAP's second gradient equals its first (the first step does not move), so
# its components along the null space of the first statistics are zero in
# exact arithmetic and round-off (1e-16) elsewhere; Adam's ratio
# m / (sqrt(v) + eps) turns that noise into update differences of about
# 1e-11 absolute.  Hence rtol 1e-8, atol 1e-10 for SOAP.
SOAP_TOL = dict(rtol=1e-8, atol=1e-10)

# The mlp's 8-wide axes would have a statistic with a null space of more than
# one dimension after the first gradient, where eigh's basis is arbitrary:
# max_precondition_dim=6 leaves them unrotated.
SOAP_CASES = {
    "nested_quadratic": dict(precondition_frequency=3),
    "mlp": dict(precondition_frequency=5, max_precondition_dim=6),
}


@pytest.mark.parametrize("problem_name", list(SOAP_CASES))
def test_soap_matches_closed_form(problem_name, x64):
    problem, kw = PROBLEMS[problem_name], SOAP_CASES[problem_name]
    actual = run_jax(gradtx.soap(0.01, weight_decay=0.0, **kw), problem, gradtx.apply_updates)
    expected = run_reference(
        ref_matrix.soap(
            0.01,
            frequency=kw["precondition_frequency"],
            max_dim=kw.get("max_precondition_dim", 10000),
        ),
        problem,
    )
    assert_trajectories_close(actual, expected, f"soap on {problem_name} vs NumPy", **SOAP_TOL)
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-2


# pytorch-optimizer's refresh casts the power-iteration product to float32 for
# its QR, so after the first refresh its bases carry float32 round-off, which
# 1 / sqrt(v) amplifies along directions of small curvature: without a refresh
# the two agree to round-off (atol 1e-8), with refreshes to 2e-4 relative (entries
# near zero: within 1e-5; how far depends on the CPU's LAPACK kernels, 4e-6 seen).
@pytest.mark.parametrize(
    "frequency, tol", [(1000, dict(rtol=1e-7, atol=1e-8)), (3, dict(rtol=5e-4, atol=1e-5))]
)
def test_soap_matches_pytorch_optimizer(frequency, tol, x64):
    from pytorch_optimizer import SOAP

    problem = PROBLEMS["nested_quadratic"]
    actual = run_jax(
        gradtx.soap(0.01, weight_decay=0.0, precondition_frequency=frequency),
        problem,
        gradtx.apply_updates,
    )
    theirs = _run_torch(
        lambda ps: SOAP(ps, lr=0.01, weight_decay=0.0, precondition_frequency=frequency), problem
    )
    assert_trajectories_close(
        actual, theirs, f"soap (refresh every {frequency}) vs pytorch-optimizer", **tol
    )


def test_soap_weight_decay_matches_closed_form(x64):
    # Decoupled as in adamw, from the first step on (whose direction is zero).
    problem = PROBLEMS["nested_quadratic"]
    actual = run_jax(
        gradtx.soap(0.01, weight_decay=0.1, precondition_frequency=4), problem, gradtx.apply_updates
    )
    expected = run_reference(ref_matrix.soap(0.01, weight_decay=0.1, frequency=4), problem)
    assert_trajectories_close(actual, expected, "soap weight decay vs NumPy", **SOAP_TOL)


def test_soap_first_step_sets_up_bases_without_moving():
    opt = gradtx.soap(0.1, weight_decay=0.0)
    params = {"w": jnp.ones((3, 2))}
    u, state = opt.update({"w": jnp.arange(6.0).reshape(3, 2)}, opt.init(params), params)
    np.testing.assert_array_equal(u["w"], 0.0)
    soap_state = state[0][0]
    assert int(soap_state.count) == 1
    q = np.asarray(soap_state.bases["w"][0])
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-6)


# ----------------------------------------------------------------------------
# Shampoo and graft.


# The mlp's 8 x 8 statistics have rank <= 6 per step: with matrix_eps = 1e-6
# their smallest eigenvalues sit near 1e-6 beside ones near 1, and the inverse
# fourth root multiplies the eigensolver's round-off by 1e6 (trajectories then
# agree to 1e-8); matrix_eps = 1e-3 keeps the comparison at 1e-10.
@pytest.mark.parametrize("problem_name, matrix_eps", [("nested_quadratic", 1e-6), ("mlp", 1e-3)])
def test_shampoo_matches_closed_form_and_pytorch_optimizer(problem_name, matrix_eps, x64):
    from pytorch_optimizer import Shampoo

    problem = PROBLEMS[problem_name]
    lr = 0.01
    # pytorch-optimizer's Shampoo preconditions every axis, vectors included.
    every_axis = dict(max_precondition_dim=10000, precondition_1d=True)
    actual = run_jax(
        gradtx.shampoo(lr, matrix_eps=matrix_eps, **every_axis), problem, gradtx.apply_updates
    )
    expected = run_reference(ref_matrix.shampoo(lr, eps=matrix_eps), problem)
    assert_trajectories_close(actual, expected, f"shampoo on {problem_name} vs NumPy")
    theirs = _run_torch(lambda ps: Shampoo(ps, lr=lr, matrix_eps=matrix_eps), problem)
    assert_trajectories_close(actual, theirs, f"shampoo on {problem_name} vs pytorch-optimizer")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-2


def test_shampoo_grafted_onto_adagrad_matches_closed_form(x64):
    problem = PROBLEMS["nested_quadratic"]
    actual = run_jax(
        gradtx.shampoo(
            0.05,
            beta2=0.9,
            precondition_frequency=3,
            grafting="adagrad",
            max_precondition_dim=10000,
            precondition_1d=True,
        ),
        problem,
        gradtx.apply_updates,
    )
    expected = run_reference(
        ref_matrix.shampoo(0.05, beta2=0.9, frequency=3, graft=ref_matrix.adagrad_step()), problem
    )
    # 1e-9: the inverse fourth roots come from two eigendecompositions (LAPACK's in NumPy,
    # XLA's in gradtx) whose round-off differs by CPU; 101 steps reached 2.8e-10 on one.
    assert_trajectories_close(
        actual, expected, "shampoo grafted onto adagrad vs NumPy", rtol=1e-9, atol=1e-12
    )


def test_shampoo_with_unknown_grafting_raises():
    with pytest.raises(ValueError, match="shampoo: grafting must be None, 'sgd', 'adagrad'"):
        gradtx.shampoo(grafting="adam")


# ----------------------------------------------------------------------------
# PSGD-Kron.  The probes are gradtx's documented draws,
# normal(fold_in(fold_in(PRNGKey(seed), t), i)) for leaf i at step t; the
# references receive the same ones.


def _probes(problem, seed=0):
    shapes = [np.shape(p) for p in jax.tree.leaves(problem.params)]
    key = jax.random.PRNGKey(seed)
    return lambda t, i: np.asarray(
        jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, t), i), shapes[i], jnp.float64)
    )


@functools.cache
def _psgd_trajectory(problem_name):
    assert jax.config.jax_enable_x64, "call under the x64 fixture"
    return run_jax(
        gradtx.psgd_kron(0.01, update_probability=1.0), PROBLEMS[problem_name], gradtx.apply_updates
    )


@pytest.mark.parametrize("problem_name", ["nested_quadratic", "mlp"])
def test_psgd_kron_matches_closed_form(problem_name, x64):
    problem = PROBLEMS[problem_name]
    probes = _probes(problem)
    n = len(jax.tree.leaves(problem.params))
    actual = _psgd_trajectory(problem_name)
    refs = [ref_matrix.psgd_kron(0.01, probe=lambda t, shape, i=i: probes(t, i)) for i in range(n)]
    expected = run_reference(refs, problem)
    assert_trajectories_close(actual, expected, f"psgd_kron on {problem_name} vs NumPy")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-2


def test_psgd_kron_matches_pytorch_optimizer_kron(x64, monkeypatch):
    from pytorch_optimizer import Kron

    problem = PROBLEMS["nested_quadratic"]
    probes = _probes(problem)
    n = len(jax.tree.leaves(problem.params))
    calls = iter(range(10**6))

    def randn_like(x, dtype=None):  # Kron draws one probe per leaf, in order, per step
        k = next(calls)
        return torch.tensor(probes(k // n, k % n), dtype=dtype or x.dtype)

    monkeypatch.setattr("torch.randn_like", randn_like)
    actual = _psgd_trajectory("nested_quadratic")
    theirs = _run_torch(
        lambda ps: Kron(
            ps,
            lr=0.01,
            pre_conditioner_update_probability=1.0,
            balance_prob=0.0,
            precondition_dtype=torch.float64,
        ),
        problem,
    )
    # Kron solves its triangular systems in float32.
    assert_trajectories_close(
        actual, theirs, "psgd_kron vs pytorch-optimizer Kron", rtol=1e-5, atol=1e-7
    )


def test_psgd_kron_fits_with_the_update_probability(x64):
    # With p = 0 the factors never move: P = I, the update is clipped momentum.
    opt = gradtx.psgd_kron(0.1, update_probability=0.0)
    params = {"w": jnp.zeros((2, 3))}
    g = {"w": jnp.asarray(np.arange(6.0).reshape(2, 3) / 10)}
    state = opt.init(params)
    update = jax.jit(opt.update)
    for _ in range(3):
        u, state = update(g, state, params)
    np.testing.assert_array_equal(state[0][0].qs["w"][0], np.eye(2))
    np.testing.assert_allclose(u["w"], -0.1 * g["w"], rtol=1e-12)


# ----------------------------------------------------------------------------
# Muon and NorMuon.


MUON_CASES = {
    "default": (dict(), dict()),
    "no_nesterov": (dict(nesterov=False), dict(nesterov=False)),
    "decay_consistent_rms": (
        dict(weight_decay=0.1, consistent_rms=0.2),
        dict(weight_decay=0.1, consistent_rms=0.2),
    ),
    "adam_learning_rate": (dict(adam_learning_rate=0.003), dict(adam_lr=0.003)),
}


# optax-only options (no NumPy transcription): compared with optax alone.
OPTAX_ONLY = {
    "dion": dict(ns_coeffs="dion"),
    "aol": dict(preconditioning="aol"),
    "schatten": dict(preconditioning="schatten"),
    "spectral_adaptive": dict(preconditioning="spectral", adaptive=True),
}


@pytest.mark.parametrize(
    "case, problem_name", [("default", "mlp")] + [(case, "nested_quadratic") for case in MUON_CASES]
)
def test_muon_matches_closed_form_and_optax(case, problem_name, x64):
    problem, (kwargs, ref_kwargs) = PROBLEMS[problem_name], MUON_CASES[case]
    lr = 0.01 * problem.lr_scale
    expected = run_reference(ref_matrix.muon(lr, **ref_kwargs), problem)
    actual = run_jax(gradtx.muon(lr, **kwargs), problem, gradtx.apply_updates)
    assert_trajectories_close(actual, expected, f"muon {case} on {problem_name} vs NumPy")
    with jax.numpy_dtype_promotion("standard"):
        theirs = run_jax(optax.contrib.muon(lr, **kwargs), problem, optax.apply_updates)
    assert_trajectories_close(actual, theirs, f"muon {case} on {problem_name} vs optax")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-2


@pytest.mark.parametrize("case", list(OPTAX_ONLY))
def test_muon_options_match_optax(case, x64):
    problem = PROBLEMS["nested_quadratic"]
    actual = run_jax(gradtx.muon(0.01, **OPTAX_ONLY[case]), problem, gradtx.apply_updates)
    with jax.numpy_dtype_promotion("standard"):
        theirs = run_jax(optax.contrib.muon(0.01, **OPTAX_ONLY[case]), problem, optax.apply_updates)
    # aol and schatten rescale inside the first step: a few more roundings.
    assert_trajectories_close(actual, theirs, f"muon {case} vs optax", rtol=1e-9)


def test_muon_on_rosenbrock_is_adamw_and_matches_optax(x64):
    # No matrix at all: the whole tree is AdamW's (NAdamW with nesterov).
    problem = PROBLEMS["rosenbrock"]
    lr = 0.01 * problem.lr_scale
    actual = run_jax(gradtx.muon(lr), problem, gradtx.apply_updates)
    with jax.numpy_dtype_promotion("standard"):
        theirs = run_jax(optax.contrib.muon(lr), problem, optax.apply_updates)
    assert_trajectories_close(actual, theirs, "muon on rosenbrock vs optax")


def test_muon_in_float32_matches_optax():
    # float32 round-off differs in the last bit (XLA fuses the batched and the
    # per-leaf iterations differently); Newton-Schulz amplifies differences
    # along small singular directions, so entries near zero are compared
    # with an absolute floor of 1e-6.
    problem_name = "nested_quadratic"
    problem = PROBLEMS[problem_name]
    actual = run_jax(gradtx.muon(0.001), problem, gradtx.apply_updates, dtype=np.float32)
    with jax.numpy_dtype_promotion("standard"):
        theirs = run_jax(optax.contrib.muon(0.001), problem, optax.apply_updates, dtype=np.float32)
    assert all(a.dtype == np.float32 for a in actual[-1])
    assert_trajectories_close(
        actual, theirs, f"muon float32 on {problem_name} vs optax", rtol=1e-5, atol=1e-6
    )


def test_muon_mask_routes_embedding_to_adamw(x64):
    rng = np.random.default_rng(4)
    params = {
        "embed": jnp.asarray(rng.normal(size=(10, 4))),
        "w": jnp.asarray(rng.normal(size=(4, 4))),
        "b": jnp.zeros(4),
    }
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params)
    mask = {"embed": False, "w": True, "b": False}
    opt = gradtx.muon(0.02, adam_learning_rate=1e-3, muon_mask=mask)
    u, state = opt.update(grads, opt.init(params), params)
    adam = gradtx.nadamw(1e-3, weight_decay=0.0)
    expected_embed, _ = adam.update(grads["embed"], adam.init(params["embed"]), params["embed"])
    np.testing.assert_allclose(u["embed"], expected_embed, rtol=1e-12)
    init, update = ref_matrix.muon(0.02)
    expected_w, _ = update(np.asarray(grads["w"]), init(np.asarray(params["w"])), params["w"])
    np.testing.assert_allclose(u["w"], expected_w, rtol=1e-10)


def test_muon_with_a_whole_model_weight_decay_mask_matches_optax(x64):
    # optax code passes a mask shaped like all the params; only the Muon
    # leaves' entries matter (the AdamW leaves take adam_weight_decay).
    params = {
        "w": jnp.full((3, 3), 0.5),
        "b": jnp.ones(3),
        "v": jnp.arange(8.0).reshape(2, 4) / 7,
    }
    mask = {"w": True, "b": False, "v": False}
    finals = []
    for make in (optax.contrib.muon, gradtx.muon):
        opt = make(0.1, weight_decay=0.1, weight_decay_mask=mask)
        p, state = params, opt.init(params)
        for i in range(5):
            g = jax.tree.map(lambda x, i=i: jnp.cos(3 * x + float(i)), p)
            with jax.numpy_dtype_promotion("standard"):  # optax's muon mixes dtypes
                u, state = opt.update(g, state, p)
            p = optax.apply_updates(p, u)
        finals.append(p)
    for name in params:
        np.testing.assert_allclose(finals[1][name], finals[0][name], rtol=1e-10, atol=1e-14)
    assert not np.allclose(finals[1]["w"], params["w"])


@pytest.mark.parametrize("problem_name", ["nested_quadratic", "mlp"])
def test_normuon_matches_closed_form(problem_name, x64):
    problem = PROBLEMS[problem_name]
    opt = gradtx.normuon(0.01, weight_decay=0.1, adam_learning_rate=0.003)
    actual = run_jax(opt, problem, gradtx.apply_updates)
    expected = run_reference(ref_matrix.normuon(0.01, weight_decay=0.1, adam_lr=0.003), problem)
    assert_trajectories_close(actual, expected, f"normuon on {problem_name} vs NumPy")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-2


# ----------------------------------------------------------------------------
# GaLore.  optax's SVD runs in float32 even under x64, so the float64 check is
# against the NumPy transcription (1e-10); optax's runs are compared in float32
# (tests/test_optax_names.py) and, with one SVD, in float64 at float32 tolerance.


def _jax_signs(mat, proj):
    """proj's singular vectors with the signs jnp.linalg.svd gives them.

    The SVD fixes each singular vector only up to sign, and NumPy's LAPACK may
    choose otherwise than XLA's; with momentum carried across a refresh the
    sign changes the step, so the reference adopts the solver's convention.
    """
    u, _, vh = jnp.linalg.svd(jnp.asarray(mat), full_matrices=False)
    theirs = np.asarray(u if mat.shape[0] >= mat.shape[1] else vh.T)[:, : proj.shape[1]]
    return proj * np.sign(np.sum(proj * theirs, axis=0))


def _flipped_signs(mat, proj):
    """The solver's signs with every other singular vector flipped."""
    return _jax_signs(mat, proj) * (-1.0) ** np.arange(proj.shape[1])


def _galore_reference(problem, lr, dims=None, **kwargs):
    leaves = jax.tree.leaves(problem.params)
    if dims is None:
        dims = [((0,), (1,)) if np.ndim(p) == 2 else None for p in leaves]
    return [ref_matrix.galore(lr, d, **kwargs) for d in dims]


# The nested quadratic's leaves in order: cube (2, 3, 2), matrix (3, 4), scalar, vector.
GALORE_DIMS = {
    "nested": {
        "cube": gradtx.GaLoreDimensionNumbers(reduction_axis=(0, 2), output_axis=1),
        "matrix": gradtx.GaLoreDimensionNumbers(reduction_axis=1, output_axis=0),
    },
    "scalar": None,
    "vector": None,
}
GALORE_REF_DIMS = [((0, 2), (1,)), ((1,), (0,)), None, None]

GALORE_CASES = {
    "refresh_every_5_mlp": ("mlp", dict(rank=2, update_proj_gap=5), {}),
    "decay_scale": (
        "nested_quadratic",
        dict(rank=1, update_proj_gap=4, scale=0.5, weight_decay=0.1),
        {},
    ),
    "dimension_numbers": (
        "nested_quadratic",
        dict(rank=2, update_proj_gap=7, weight_dimension_numbers=GALORE_DIMS),
        dict(dims=GALORE_REF_DIMS),
    ),
}


@pytest.mark.parametrize("case", list(GALORE_CASES))
def test_galore_matches_closed_form(case, x64):
    problem_name, kwargs, ref_extra = GALORE_CASES[case]
    problem = PROBLEMS[problem_name]
    lr = 0.01 * problem.lr_scale
    actual = run_jax(gradtx.galore(lr, **kwargs), problem, gradtx.apply_updates)
    ref_kwargs = dict(
        rank=kwargs["rank"],
        gap=kwargs["update_proj_gap"],
        scale=kwargs.get("scale", 1.0),
        weight_decay=kwargs.get("weight_decay", 0.0),
        sign=_jax_signs,
        **ref_extra,
    )
    expected = run_reference(_galore_reference(problem, lr, **ref_kwargs), problem)
    assert_trajectories_close(actual, expected, f"galore {case} vs NumPy")
    start = jax.tree.leaves(problem.params)
    assert max(np.max(np.abs(a - b)) for a, b in zip(actual[-1], start)) > 1e-2


def _flips_between_refreshes():
    """The solver's signs, with every other singular vector flipped at every other
    refresh of each leaf (leaves told apart by their matrix's shape)."""
    calls = {}

    def sign(mat, proj):
        calls[mat.shape] = calls.get(mat.shape, 0) + 1
        return _flipped_signs(mat, proj) if calls[mat.shape] % 2 else _jax_signs(mat, proj)

    return sign


@pytest.mark.parametrize("problem_name", ["nested_quadratic", "mlp"])
def test_galore_update_does_not_depend_on_singular_vector_signs(problem_name, x64):
    """Flipping P's column i flips row i of R, of Adam's m and of its step N: P N is unchanged.

    So signs other than the solver's, kept the same at every refresh, give
    gradtx's trajectory; signs that change between refreshes do too when no
    momentum is carried across them (b1 = 0: Adam's step is scale_by_rms
    with bias correction), and not otherwise.
    """
    problem = PROBLEMS[problem_name]
    lr = 0.01 * problem.lr_scale

    def reference(sign, **kwargs):
        return run_reference(_galore_reference(problem, lr, rank=2, sign=sign, **kwargs), problem)

    def run(**kwargs):
        return run_jax(gradtx.galore(lr, rank=2, **kwargs), problem, gradtx.apply_updates)

    one_svd = run(update_proj_gap=1000)
    expected = reference(_flipped_signs, gap=1000)
    assert_trajectories_close(one_svd, expected, f"galore, one SVD, on {problem_name}")

    refreshed = run(update_proj_gap=3)
    expected = reference(_flipped_signs, gap=3)
    assert_trajectories_close(refreshed, expected, f"galore, flipped signs, on {problem_name}")

    rms = gradtx.scale_by_rms(0.999, 1e-8, eps_in_sqrt=False, bias_correction=True)
    no_momentum = run(update_proj_gap=3, base_optimizer=rms)
    expected = reference(_flips_between_refreshes(), gap=3, b1=0.0)
    assert_trajectories_close(no_momentum, expected, f"galore, b1 = 0, on {problem_name}")

    expected = reference(_flips_between_refreshes(), gap=3)
    assert max(np.max(np.abs(a - b)) for a, b in zip(refreshed[-1], expected[-1])) > 1e-4


def test_galore_float64_matches_optax_with_one_svd(x64):
    """optax's SVD runs in float32 (sgesdd), gradtx's in float64 (dgesdd): the two
    may sign singular vectors differently, which changes the step once momentum
    is carried across a refresh; with one SVD for the run the signs cancel.
    optax's projector carries float32 round-off: 1e-5 relative, 1e-5 absolute."""
    for problem_name in ("nested_quadratic", "mlp"):
        problem = PROBLEMS[problem_name]
        kwargs = dict(rank=2, update_proj_gap=1000, scale=0.5, weight_decay=0.1)
        actual = run_jax(gradtx.galore(0.01, **kwargs), problem, gradtx.apply_updates)
        with jax.numpy_dtype_promotion("standard"):
            theirs = run_jax(optax.contrib.galore(0.01, **kwargs), problem, optax.apply_updates)
        assert_trajectories_close(
            actual, theirs, f"galore on {problem_name} vs optax", rtol=1e-5, atol=1e-5
        )


def test_scale_by_galore_matches_optax_with_another_base_and_state_layout():
    """A callable weight_dimension_numbers and AdaMax in the subspace, on random
    gradients, in float32 (the same SVD in both, so the same signs)."""

    def dims(params):
        return jax.tree.map(lambda _: None, params) | {"nested": GALORE_DIMS["nested"]}

    kwargs = dict(rank=2, update_proj_gap=3, scale=0.25, weight_dimension_numbers=dims)
    ours = gradtx.scale_by_galore(base_optimizer=gradtx.scale_by_adamax(), **kwargs)
    theirs = optax.contrib.scale_by_galore(base_optimizer=optax.scale_by_adamax(), **kwargs)
    tree = PROBLEMS["nested_quadratic"].params
    actual = assert_transform_matches(
        ours, theirs, tree, "scale_by_galore vs optax", rtol=1e-5, atol=1e-6
    )
    assert actual[-1][0].dtype == np.float32

    params = jax.tree.map(jnp.asarray, tree)
    state, their_state = ours.init(params), theirs.init(params)
    assert isinstance(state, gradtx.GaLoreState) and state._fields == their_state._fields
    shapes = jax.tree.map(jnp.shape, state.projector)
    assert shapes == jax.tree.map(jnp.shape, their_state.projector)
    assert shapes["nested"] == {"cube": (4, 2), "matrix": (4, 2)}
    assert shapes["scalar"] == shapes["vector"] == (0, 0)


def test_scale_by_galore_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"^scale_by_galore: rank must be an integer >= 1, got 0"):
        gradtx.scale_by_galore(rank=0)
    with pytest.raises(ValueError, match="update_proj_gap must be an integer >= 1, got 2.5"):
        gradtx.scale_by_galore(update_proj_gap=2.5)
    with pytest.raises(TypeError, match="base_optimizer must be a gradient transformation"):
        gradtx.scale_by_galore(base_optimizer=0.1)
    tx = gradtx.scale_by_galore(weight_dimension_numbers=gradtx.GaLoreDimensionNumbers())
    with pytest.raises(ValueError, match=r"leaf \['c'\] of shape \(2, 3, 4\).*name every axis"):
        tx.init({"c": jnp.zeros((2, 3, 4))})
    tx = gradtx.scale_by_galore(weight_dimension_numbers={"v": gradtx.GaLoreDimensionNumbers()})
    with pytest.raises(ValueError, match=r"leaf \['v'\] has shape \(3,\); GaLore needs rank >= 2"):
        tx.init({"v": jnp.zeros(3)})


def test_galore_keeps_bfloat16_params_and_float32_state():
    params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.ones(3, jnp.bfloat16)}
    opt = gradtx.galore(0.1, rank=2)
    state = opt.init(params)
    updates, state = opt.update(params, state, params)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    assert state.states[0].projector["w"].dtype == jnp.float32


# ----------------------------------------------------------------------------
# Edge cases: leaves without entries, state of other params, complex params, defaults.


@pytest.mark.parametrize(
    "make",
    [
        lambda: gradtx.shampoo(0.1, precondition_1d=True),
        lambda: gradtx.soap(0.1, precondition_1d=True),
        lambda: gradtx.psgd_kron(0.1),
        lambda: gradtx.galore(0.1, rank=1),
    ],
    ids=["shampoo", "soap", "psgd_kron", "galore"],
)
def test_matrix_method_with_zero_size_leaves_gives_them_empty_updates(make):
    opt = make()
    params = {"w": jnp.ones((3, 2)), "e": jnp.zeros((0, 4)), "v": jnp.zeros((0,))}
    grads = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]]), **params}
    grads = {**grads, "e": jnp.zeros((0, 4)), "v": jnp.zeros((0,))}
    state = opt.init(params)
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
    assert updates["e"].shape == (0, 4) and updates["v"].shape == (0,)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((updates, state)))


def test_shampoo_defaults_precondition_only_axes_up_to_1024_of_matrices():
    # A (2048,) bias and a (2048, 8) weight's long axis keep no statistic: a
    # preconditioned (2048,) would hold two 2048 x 2048 matrices.
    opt = gradtx.scale_by_shampoo()
    state = opt.init({"bias": jnp.zeros(2048), "w": jnp.zeros((2048, 8))})
    assert state.stats["bias"] == {}
    assert list(state.stats["w"]) == [1] and state.stats["w"][1].shape == (8, 8)
    assert gradtx.shampoo().hyperparams["precondition_1d"] is False


@pytest.mark.parametrize(
    "make, owner", [(gradtx.shampoo, "scale_by_shampoo"), (gradtx.soap, "scale_by_soap")]
)
def test_matrix_method_with_grads_of_other_shape_raises_naming_leaf(make, owner):
    opt = make(0.1)
    params = {"w": jnp.ones((3, 2))}
    state = opt.init(params)
    _, state = opt.update(params, state, params)
    with pytest.raises(
        ValueError, match=rf"^\w+: {owner}: updates leaf \['w'\] has shape \(2, 3\)"
    ):
        opt.update({"w": jnp.ones((2, 3))}, state, params)


def test_shampoo_with_state_of_other_params_raises_naming_leaf():
    opt = gradtx.shampoo(0.1)
    state = opt.init({"w": jnp.ones((3, 2)), "b": jnp.ones((2, 2))})
    with pytest.raises(
        ValueError,
        match=r"^shampoo: scale_by_shampoo: updates do not match the state's statistics: "
        r"updates lack leaf \['b'\]",
    ):
        opt.update({"w": jnp.ones((3, 2))}, state, {"w": jnp.ones((3, 2))})


def test_psgd_kron_with_complex_params_raises_naming_leaf():
    with pytest.raises(
        TypeError,
        match=r"^psgd_kron: scale_by_psgd_kron: complex parameters are not supported .*params leaf "
        r"\['z'\] has dtype complex64",
    ):
        gradtx.psgd_kron().init({"x": jnp.ones(2), "z": jnp.ones((2, 2), jnp.complex64)})
