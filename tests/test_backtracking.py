"""scale_by_backtracking_linesearch against a float64 NumPy transcription of Armijo backtracking."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

A = np.diag([1.0, 10.0, 100.0])


def f_np(x):
    return 0.5 * x @ A @ x + np.sum(x**4)


def grad_np(x):
    return A @ x + 4 * x**3


def f(x):
    return 0.5 * x @ jnp.asarray(A) @ x + jnp.sum(x**4)


def _armijo_closed_form(x, steps, max_steps, slope_rtol, decrease, increase, max_lr):
    eta, out = 1.0, []
    for _ in range(steps):
        g = grad_np(x)
        u = -g
        value, slope = f_np(x), u @ g
        eta = min(increase * eta, max_lr)
        for k in range(max_steps + 1):
            if k > 0:
                eta *= decrease
            if f_np(x + eta * u) - value - eta * slope_rtol * slope <= 0:
                break
        x = x + eta * u
        out.append((x, eta, k + 1))
    return out


@pytest.mark.parametrize("store_grad", [False, True])
def test_backtracking_linesearch_matches_closed_form(store_grad, x64):
    kwargs = dict(slope_rtol=0.3, decrease=0.5, increase=2.0, max_lr=1.0)
    x = np.array([1.0, -0.5, 0.2])
    expected = _armijo_closed_form(x, 25, 30, **kwargs)
    opt = gradtx.chain(
        gradtx.sgd(1.0),
        gradtx.scale_by_backtracking_linesearch(30, 0.3, 0.5, 2.0, 1.0, store_grad=store_grad),
    )
    params = jnp.asarray(x)
    state = opt.init(params)
    from_state = gradtx.value_and_grad_from_state(f)

    @jax.jit
    def step(p, s):
        value, grad = from_state(p, state=s) if store_grad else jax.value_and_grad(f)(p)
        return opt.update(grad, s, p, value=value, grad=grad, value_fn=f)

    for want_x, want_eta, want_count in expected:
        updates, state = step(params, state)
        params = gradtx.apply_updates(params, updates)
        search = state.states[-1]
        np.testing.assert_allclose(params, want_x, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(search.learning_rate, want_eta, rtol=1e-15)
        assert int(search.info.num_linesearch_steps) == want_count
    assert {int(c) for _, _, c in expected} != {1}  # it did backtrack
    np.testing.assert_allclose(search.value, f_np(np.asarray(params)), rtol=1e-12)
    if store_grad:
        np.testing.assert_allclose(search.grad, grad_np(np.asarray(params)), rtol=1e-12)
    else:
        assert search.grad is None


def test_backtracking_linesearch_with_nan_losses_takes_no_step():
    opt = gradtx.scale_by_backtracking_linesearch(3)
    x = jnp.array([1.0])
    updates, state = opt.update(
        -x, opt.init(x), x, value=1.0, grad=x, value_fn=lambda p: jnp.sum(p) * jnp.nan
    )
    assert float(updates[0]) == 0.0 and float(state.learning_rate) == 0.0
    assert int(state.info.num_linesearch_steps) == 4


def test_backtracking_linesearch_without_value_fn_raises():
    opt = gradtx.scale_by_backtracking_linesearch(3)
    with pytest.raises(ValueError, match="scale_by_backtracking_linesearch: update needs params"):
        opt.update(jnp.ones(1), opt.init(jnp.ones(1)), jnp.ones(1), value=1.0, grad=jnp.ones(1))


def test_backtracking_linesearch_with_a_keyword_value_fn_does_not_take_raises():
    opt = gradtx.scale_by_backtracking_linesearch(3)
    with pytest.raises(TypeError, match=r"value_fn takes none of the keywords \['batch'\]"):
        opt.update(
            jnp.ones(1),
            opt.init(jnp.ones(1)),
            jnp.ones(1),
            value=1.0,
            grad=jnp.ones(1),
            value_fn=lambda p: jnp.sum(p),
            batch=2,
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decrease_factor": 1.0}, "decrease_factor must be in"),
        ({"increase_factor": 0.5}, "increase_factor must be"),
        ({"max_learning_rate": 0.0}, "max_learning_rate must be"),
    ],
)
def test_backtracking_linesearch_invalid_hyperparameter_raises(kwargs, message):
    with pytest.raises(ValueError, match=f"scale_by_backtracking_linesearch: {message}"):
        gradtx.scale_by_backtracking_linesearch(5, **kwargs)
