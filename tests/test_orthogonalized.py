"""Scion, AdaMuon and MuonClip (with QK-clip), and muon's polar by name: against float64 NumPy
transcriptions of the papers and pytorch-optimizer 4.1.0 in float32."""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_orthogonalized as ref
from lazy_import import lazy
from problems import PROBLEMS, Problem, assert_trajectories_close, run_jax, run_reference

import gradtx

torch = lazy("torch")

# The mlp's leaves in jax.tree.leaves order: hidden/b, hidden/w (6, 8), out/b, out/w (8, 2).
MLP_NORMS = {
    "spectral_sign": ["bias", "spectral", "bias", "sign"],
    "col_row": ["bias", "col", "bias", "row"],
}


def _tree(problem, values):
    return jax.tree.unflatten(problem.treedef, values)


def _float32(problem):
    """The problem with float32 parameters: its float64 loss on the widened parameters."""

    def loss(params):
        return problem.loss(jax.tree.map(lambda p: p.astype(jnp.float64), params))

    return Problem(problem.name, problem.params, loss, problem.grad_np, problem.lr_scale)


@pytest.fixture
def float32_newton_schulz(monkeypatch):
    """pytorch-optimizer's Newton-Schulz in float32 (its default runs it in bfloat16)."""
    import pytorch_optimizer  # noqa: F401

    for name, module in list(sys.modules.items()):
        original = getattr(module, "zero_power_via_newton_schulz_5", None)
        if name.startswith("pytorch_optimizer") and original is not None:
            patched = functools.partial(original, dtype=torch.float32)
            monkeypatch.setattr(module, "zero_power_via_newton_schulz_5", patched)


def _run_torch_transposed(make, problem, steps, step_kwargs=None):
    """A torch optimizer in float32 on the problem, matrices in PyTorch's (out, in) layout."""
    leaves = [np.asarray(p, np.float32) for p in jax.tree.leaves(problem.params)]
    params = [torch.nn.Parameter(torch.tensor(p.T.copy() if p.ndim == 2 else p)) for p in leaves]
    opt = make(params)
    trajectory = []
    for _ in range(steps):
        current = [p.detach().numpy().astype(np.float64) for p in params]
        current = [c.T if c.ndim == 2 else c for c in current]
        grads = problem.grad_np(current)
        for p, g in zip(params, grads):
            p.grad = torch.tensor(np.asarray(g.T if g.ndim == 2 else g, np.float32))
        opt.step(**(step_kwargs(params) if step_kwargs else {}))
        out = [p.detach().numpy().copy() for p in params]
        trajectory.append([o.T if o.ndim == 2 else o for o in out])
    return trajectory


# ----------------------------------------------------------------------------
# Scion.


@pytest.mark.slow
@pytest.mark.parametrize("norms", list(MLP_NORMS))
@pytest.mark.parametrize("constrained", [True, False])
def test_scion_matches_closed_form(norms, constrained, x64):
    problem = PROBLEMS["mlp"]
    names = MLP_NORMS[norms]
    if constrained:
        opt = gradtx.scion(0.05, 0.2, 3.0, _tree(problem, names))
    else:
        opt = gradtx.scion_unconstrained(0.05, 0.2, 3.0, _tree(problem, names), weight_decay=0.1)
    refs = [ref.scion(0.05, 0.2, 3.0, n, constrained, 0.1) for n in names]
    actual = run_jax(opt, problem, gradtx.apply_updates, steps=25)
    expected = run_reference(refs, problem, steps=25)
    assert_trajectories_close(actual, expected, f"scion {norms} {constrained} vs NumPy")


@pytest.mark.slow
@pytest.mark.parametrize("norms", list(MLP_NORMS))
@pytest.mark.parametrize("constrained", [True, False])
def test_scion_in_float32_matches_pytorch_optimizer(norms, constrained, float32_newton_schulz, x64):
    from pytorch_optimizer import SCION
    from pytorch_optimizer.optimizer.scion import LMONorm

    problem = PROBLEMS["mlp"]
    names = MLP_NORMS[norms]
    kinds = {
        "bias": LMONorm.BIAS,
        "spectral": LMONorm.SPECTRAL,
        "sign": LMONorm.SIGN,
        "col": LMONorm.COL,
        "row": LMONorm.ROW,
    }

    def make(params):
        groups = [{"params": [p], "norm_type": kinds[n]} for p, n in zip(params, names)]
        return SCION(groups, lr=0.05, momentum=0.2, scale=3.0, constraint=constrained)

    factory = gradtx.scion if constrained else gradtx.scion_unconstrained
    actual = run_jax(
        factory(0.05, 0.2, 3.0, _tree(problem, names)),
        _float32(problem),
        gradtx.apply_updates,
        steps=15,
        dtype=np.float32,
    )
    theirs = _run_torch_transposed(make, problem, 15)
    # float32 Newton-Schulz (5 steps, no convergence) amplifies last-bit differences
    # along small singular directions: 1e-4 relative after 15 steps.
    assert_trajectories_close(actual, theirs, f"scion {norms} vs SCION", rtol=1e-4, atol=1e-6)


def test_scion_default_norms_are_spectral_for_matrices_and_bias_for_the_rest(x64):
    problem = PROBLEMS["mlp"]
    actual = run_jax(gradtx.scion(0.05), problem, gradtx.apply_updates, steps=5)
    names = ["bias", "spectral", "bias", "spectral"]
    expected = run_reference([ref.scion(0.05, 0.1, 1.0, n) for n in names], problem, steps=5)
    assert_trajectories_close(actual, expected, "scion defaults vs NumPy")


def test_scale_by_lmo_unknown_norm_raises():
    tx = gradtx.scale_by_lmo({"w": "nuclear"})
    with pytest.raises(ValueError, match=r"norms must be names in \['spectral'"):
        tx.update({"w": jnp.ones((2, 2))}, tx.init(None))


def test_scion_momentum_out_of_range_raises():
    with pytest.raises(ValueError, match=r"scion: momentum must be in \(0, 1\]"):
        gradtx.scion(0.1, momentum=0.0)


def test_scale_by_lmo_torch_layout_dimension_numbers_transpose_the_oracle():
    rng = np.random.default_rng(3)
    g = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    torch_layout = gradtx.MuonDimensionNumbers(reduction_axis=1, output_axis=0)
    for name in ("spectral", "sign", "col", "row"):
        ours = gradtx.scale_by_lmo(name)
        theirs = gradtx.scale_by_lmo(name, weight_dimension_numbers=torch_layout)
        u = ours.update({"w": g}, ours.init(None))[0]["w"]
        v = theirs.update({"w": g.T}, theirs.init(None))[0]["w"]
        np.testing.assert_allclose(v.T, u, rtol=1e-5, atol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------
# AdaMuon.


@pytest.mark.slow
@pytest.mark.parametrize("sign", [False, True])
def test_adamuon_matches_closed_form(sign, x64):
    problem = PROBLEMS["mlp"]
    opt = gradtx.adamuon(0.02, weight_decay=0.1, adam_learning_rate=0.003, sign_momentum=sign)
    actual = run_jax(opt, problem, gradtx.apply_updates, steps=40)
    expected = run_reference(
        ref.adamuon(0.02, weight_decay=0.1, sign=sign, adam_lr=0.003), problem, steps=40
    )
    assert_trajectories_close(actual, expected, f"adamuon sign={sign} vs NumPy")


@pytest.mark.slow
def test_adamuon_in_float32_matches_pytorch_optimizer(float32_newton_schulz, x64):
    from pytorch_optimizer import AdaMuon

    problem = PROBLEMS["mlp"]

    def make(params):
        matrices = [p for p in params if p.ndim == 2]
        vectors = [p for p in params if p.ndim != 2]
        groups = [
            {"params": matrices, "use_muon": True},
            {"params": vectors, "use_muon": False, "lr": 0.003},
        ]
        return AdaMuon(groups, lr=0.02, weight_decay=0.1, adamw_wd=0.0)

    opt = gradtx.adamuon(0.02, weight_decay=0.1, adam_learning_rate=0.003)
    actual = run_jax(opt, _float32(problem), gradtx.apply_updates, steps=30, dtype=np.float32)
    theirs = _run_torch_transposed(make, problem, 30)
    assert_trajectories_close(actual, theirs, "adamuon vs AdaMuon", rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------
# MuonClip and QK-clip.

X = np.random.default_rng(5).normal(size=(4, 6))
TARGET = np.random.default_rng(6).normal(size=(6, 4)) * 3.0


def _attention_params(dtype):
    rng = np.random.default_rng(7)
    return {n: rng.normal(size=(6, 4)).astype(dtype) for n in ("k", "q", "v")}


def _max_logits(q, k):
    """Per head (2 heads of width 2): max_ij (x_i W_q,h) . (x_j W_k,h)."""
    qs, ks = X @ np.asarray(q, np.float64), X @ np.asarray(k, np.float64)
    return np.array([np.max(qs[:, h * 2 : h * 2 + 2] @ ks[:, h * 2 : h * 2 + 2].T) for h in (0, 1)])


def _muonclip_run(opt, params, steps, apply):
    state = opt.init(params)
    trajectory = []
    for _ in range(steps):
        grads = jax.tree.map(lambda p: (np.asarray(p, np.float64) - TARGET).astype(p.dtype), params)
        logits = _max_logits(params["q"], params["k"])
        u, state = opt.update(grads, state, params, max_logits={"q": logits, "k": logits})
        params = apply(params, u)
        trajectory.append([np.asarray(params[n]) for n in ("k", "q", "v")])
    return trajectory


@pytest.mark.slow
def test_muonclip_matches_closed_form(x64):
    labels = {"q": "query", "k": "key", "v": None}
    opt = gradtx.muonclip(0.05, weight_decay=0.1, qk_clip_threshold=2.5, qk_labels=labels)
    params = {n: jnp.asarray(p) for n, p in _attention_params(np.float64).items()}
    actual = _muonclip_run(opt, params, 30, gradtx.apply_updates)

    init, update = ref.muonclip_step(0.05, weight_decay=0.1)
    ps = _attention_params(np.float64)
    states = {n: init(p) for n, p in ps.items()}
    expected, clipped = [], 0
    for _ in range(30):
        logits = _max_logits(ps["q"], ps["k"])
        clipped += int(np.sum(logits > 2.5))
        for n in ps:
            u, states[n] = update(ps[n] - TARGET, states[n], ps[n])
            ps[n] = ps[n] + u
        ps["q"] = ref.qk_clip(ps["q"], logits, 2.5, 0.5)
        ps["k"] = ref.qk_clip(ps["k"], logits, 2.5, 0.5)
        expected.append([ps[n].copy() for n in ("k", "q", "v")])
    assert 0 < clipped < 60  # of 30 steps x 2 heads, some heads clip and some do not
    assert_trajectories_close(actual, expected, "muonclip vs NumPy")


@pytest.mark.slow
def test_muonclip_in_float32_matches_pytorch_optimizer(float32_newton_schulz):
    from pytorch_optimizer import MuonClip

    labels = {"q": "query", "k": "key", "v": None}
    opt = gradtx.muonclip(0.05, weight_decay=0.1, qk_clip_threshold=2.5, qk_labels=labels)
    params = {n: jnp.asarray(p) for n, p in _attention_params(np.float32).items()}
    actual = _muonclip_run(opt, params, 20, gradtx.apply_updates)

    torch_params = {
        n: torch.nn.Parameter(torch.tensor(p.T.copy()))
        for n, p in _attention_params(np.float32).items()
    }
    groups = [
        {
            "params": [torch_params["q"]],
            "use_muon": True,
            "qk_clip": "query",
            "attention_name": "a",
        },
        {"params": [torch_params["k"]], "use_muon": True, "qk_clip": "key", "attention_name": "a"},
        {"params": [torch_params["v"]], "use_muon": True},
    ]
    torch_opt = MuonClip(groups, lr=0.05, weight_decay=0.1, qk_clip_threshold=2.5, foreach=False)
    theirs = []
    for _ in range(20):
        current = {n: p.detach().numpy().T for n, p in torch_params.items()}
        logits = _max_logits(current["q"], current["k"])
        for n, p in torch_params.items():
            p.grad = torch.tensor((current[n].astype(np.float64) - TARGET).T.astype(np.float32))
        torch_opt.step(attention_max_logits={"a": torch.tensor(logits, dtype=torch.float32)})
        theirs.append([torch_params[n].detach().numpy().T.copy() for n in ("k", "q", "v")])
    assert_trajectories_close(actual, theirs, "muonclip vs MuonClip", rtol=1e-5, atol=1e-6)


def test_muonclip_without_max_logits_is_the_muon_step(x64):
    labels = {"q": "query", "k": "key", "v": None}
    params = {n: jnp.asarray(p) for n, p in _attention_params(np.float64).items()}
    grads = jax.tree.map(lambda p: p - TARGET, params)
    clip = gradtx.muonclip(0.05, qk_clip_threshold=1.0, qk_labels=labels)
    plain = gradtx.muonclip(0.05)
    u, _ = clip.update(grads, clip.init(params), params)
    v, _ = plain.update(grads, plain.init(params), params)
    for n in params:
        np.testing.assert_array_equal(u[n], v[n])


def test_qk_clip_below_threshold_passes_updates_bit_for_bit():
    tx = gradtx.qk_clip({"q": "query", "k": "key"}, threshold=100.0)
    p = {"q": jnp.full((2, 4), 0.3), "k": jnp.full((2, 4), 0.7)}
    u = {"q": jnp.full((2, 4), 1e-3), "k": jnp.full((2, 4), -1e-3)}
    out, _ = tx.update(u, tx.init(p), p, max_logits={"q": jnp.array([3.0, 99.0])})
    np.testing.assert_array_equal(out["q"], u["q"])
    np.testing.assert_array_equal(out["k"], u["k"])  # no entry for k: not clipped


def test_qk_clip_per_head_scales_each_head_block():
    tx = gradtx.qk_clip({"attn": {"q": "query", "k": "key"}}, threshold=10.0, alpha=0.25)
    p = {"attn": {"q": jnp.ones((3, 4)), "k": jnp.ones((3, 4))}}
    u = jax.tree.map(jnp.zeros_like, p)
    out, _ = tx.update(u, tx.init(p), p, max_logits={"attn": jnp.array([160.0, 5.0])})
    new = gradtx.apply_updates(p, out)["attn"]
    np.testing.assert_allclose(new["q"][0], [0.5, 0.5, 1.0, 1.0], rtol=1e-6)  # (1/16)^0.25
    np.testing.assert_allclose(new["k"][0], [0.125, 0.125, 1.0, 1.0], rtol=1e-6)  # (1/16)^0.75


def test_qk_clip_without_params_raises_naming_the_leaf():
    tx = gradtx.qk_clip({"q": "query", "k": None})
    u = {"q": jnp.ones((2, 2)), "k": jnp.ones((2, 2))}
    with pytest.raises(
        ValueError, match=r"qk_clip: leaf \['q'\] \(query\) has max_logits but update got no params"
    ):
        tx.update(u, tx.init(None), None, max_logits={"q": jnp.array([200.0])})


def test_qk_clip_heads_that_do_not_divide_the_axis_raise():
    tx = gradtx.qk_clip({"q": "query"})
    p = {"q": jnp.ones((2, 3))}
    with pytest.raises(ValueError, match="not a multiple of the 2 heads"):
        tx.update(p, tx.init(p), p, max_logits={"q": jnp.array([200.0, 1.0])})


def test_qk_clip_unknown_role_raises():
    tx = gradtx.qk_clip({"q": "value"})
    p = {"q": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match=r"labels must be None or one of \['query'"):
        tx.update(p, tx.init(p), p, max_logits={"q": 200.0})


# ----------------------------------------------------------------------------
# Muon's polar by name.


def test_muon_polar_names_match_the_functions(x64):
    rng = np.random.default_rng(2)
    params = {"w": jnp.asarray(rng.normal(size=(4, 6))), "b": jnp.zeros(6)}
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params)

    def step(opt):
        return opt.update(grads, opt.init(params), params)[0]["w"]

    np.testing.assert_array_equal(
        step(gradtx.muon(0.1, polar="newton_schulz")), step(gradtx.muon(0.1))
    )
    np.testing.assert_array_equal(
        step(gradtx.muon(0.1, polar="polar_express", ns_steps=6)),
        step(gradtx.muon(0.1, polar=gradtx.polar_express(6))),
    )


def test_muon_unknown_polar_name_raises_listing_the_names():
    with pytest.raises(
        ValueError,
        match=r"muon: unknown polar 'zolo'; give a function or one of \['newton_schulz', 'polar_express', 'svd'\]",
    ):
        gradtx.muon(0.1, polar="zolo")
