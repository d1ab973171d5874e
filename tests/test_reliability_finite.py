"""NaN and inf gradients never poison the state when apply_if_finite wraps an optimizer.

Property: for a random optimizer, random tree and a random sequence of
gradients in which some steps carry a NaN, +inf or -inf (never
max_consecutive_errors or more such steps in a row, so every one of them
must be skipped), the wrapped run ends at the same parameters as the inner
optimizer run on the finite gradients alone, every skipped step's update is
zero, and every floating-point leaf of the wrapper's state stays finite.
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_reliability_properties import _assert_close, instantiate, optimizers, trees

import gradtx


def _poison(grads, kind, seed):
    """``grads`` with one element of one non-empty leaf set to NaN/inf; None if none is."""
    leaves, treedef = jax.tree.flatten(grads)
    sizable = [i for i, leaf in enumerate(leaves) if leaf.size > 0]
    if not sizable:
        return None
    rng = np.random.default_rng(seed)
    i = sizable[rng.integers(len(sizable))]
    flat = np.array(leaves[i]).reshape(-1)
    flat[rng.integers(flat.size)] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[kind]
    leaves[i] = jnp.asarray(flat.reshape(leaves[i].shape), leaves[i].dtype)
    return jax.tree.unflatten(treedef, leaves)


@st.composite
def schedules(draw):
    """(max_consecutive_errors, kinds): runs of bad steps shorter than the maximum."""
    max_errors = draw(st.integers(2, 4))
    kinds, run = [], 0
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["ok", "nan", "inf", "-inf"]))
        if kind != "ok" and run + 1 >= max_errors:
            kind = "ok"
        run = run + 1 if kind != "ok" else 0
        kinds.append(kind)
    return max_errors, kinds


@settings(max_examples=25, deadline=None)
@given(optimizers(), trees(), st.integers(0, 2**16), schedules())
def test_apply_if_finite_nonfinite_gradients_never_poison_state(opt, spec, seed, schedule):
    max_errors, kinds = schedule
    wrapped = gradtx.apply_if_finite(opt, max_errors)
    params = ref_params = instantiate(spec, seed)
    state, ref_state = wrapped.init(params), opt.init(params)
    for step, kind in enumerate(kinds):
        grads = instantiate(spec, seed + 1 + step)
        bad = None if kind == "ok" else _poison(grads, kind, seed + step)
        updates, state = wrapped.update(grads if bad is None else bad, state, params)
        params = gradtx.apply_updates(params, updates)
        if bad is None:
            ref_updates, ref_state = opt.update(grads, ref_state, ref_params)
            ref_params = gradtx.apply_updates(ref_params, ref_updates)
        else:
            for u in jax.tree.leaves(updates):
                assert not np.any(np.asarray(u)), (kind, u)
        for leaf in jax.tree.leaves(state):
            if jnp.issubdtype(leaf.dtype, jnp.inexact):
                assert np.all(np.isfinite(np.asarray(leaf, np.complex128))), (kind, leaf)
    _assert_close(params, ref_params)
