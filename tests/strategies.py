"""Hypothesis strategies: random pytrees and random optimizers and transforms with valid hyperparameters.

Trees are nested dicts, lists, tuples and named tuples with None leaves,
empty containers, zero-size arrays, scalars and mixed dtypes (f16, bf16,
f32, complex64; f64 where asked for).
"""

from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

import gradtx

Pair = namedtuple("Pair", ["first", "second"])
DTYPES = (jnp.float16, jnp.bfloat16, jnp.float32, jnp.complex64)
SHAPES = ((), (0,), (3,), (2, 3), (1, 0))


class Leaf:
    """The dtype and shape of one array of a random tree (not itself a pytree)."""

    def __init__(self, dtype, shape):
        self.dtype, self.shape = jnp.dtype(dtype), shape

    def __repr__(self):
        return f"{self.dtype.name}{list(self.shape)}"

    def make(self, rng, scale):
        real = rng.standard_normal(self.shape) * scale
        if jnp.issubdtype(self.dtype, jnp.complexfloating):
            real = real + 1j * rng.standard_normal(self.shape) * scale
        return jnp.asarray(np.asarray(real).astype(self.dtype))


def trees(dtypes=DTYPES):
    """Random pytrees of Leaf specs.  The root is never a bare None: ``params=None``
    means "no params" to ``update``, not "an empty tree"."""
    leaf = st.builds(Leaf, st.sampled_from(dtypes), st.sampled_from(SHAPES))
    return st.recursive(
        leaf | st.none(),
        lambda kids: st.one_of(
            st.dictionaries(st.sampled_from(["a", "b", "w", "mu"]), kids, max_size=3),
            st.lists(kids, max_size=3),
            st.tuples(kids, kids),
            st.builds(Pair, kids, kids),
        ),
        max_leaves=6,
    ).filter(lambda tree: tree is not None)


def instantiate(spec, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda leaf: leaf.make(rng, scale), spec)


lr = st.floats(0, 1)
unit = st.floats(0, 0.999)
eps = st.sampled_from([0.0, 1e-8, 1e-3])
positive_eps = st.sampled_from([1e-8, 1e-6, 1e-3])
centered_decay = st.floats(0.5, 0.999)
decay = st.floats(0, 0.1)


@st.composite
def optimizers(draw, names=None):
    recipes = {
        "sgd": lambda: gradtx.sgd(draw(lr)),
        "sgd_momentum": lambda: gradtx.sgd(
            draw(lr), momentum=draw(unit), nesterov=draw(st.booleans())
        ),
        "rmsprop": lambda: gradtx.rmsprop(
            draw(lr),
            decay=draw(centered_decay),  # centered: see scale_by_centered_rms below
            eps=draw(positive_eps),
            eps_in_sqrt=draw(st.booleans()),
            centered=draw(st.booleans()),
        ),
        "rmsprop_momentum": lambda: gradtx.rmsprop(
            draw(lr),
            decay=draw(unit),
            eps=draw(eps),
            momentum=draw(unit),
            nesterov=draw(st.booleans()),
        ),
        "adagrad": lambda: gradtx.adagrad(draw(lr), draw(st.floats(0, 1)), draw(eps)),
        "adadelta": lambda: gradtx.adadelta(draw(lr), draw(unit), draw(positive_eps)),
        "adadelta_l2": lambda: gradtx.adadelta(
            draw(lr), draw(unit), draw(positive_eps), weight_decay=draw(decay)
        ),
        "adam": lambda: gradtx.adam(draw(lr), draw(unit), draw(unit), draw(eps), draw(eps)),
        "adamw": lambda: gradtx.adamw(
            draw(lr), draw(unit), draw(unit), draw(eps), draw(eps), weight_decay=draw(decay)
        ),
        "amsgrad": lambda: gradtx.amsgrad(draw(lr), draw(unit), draw(unit), draw(eps), draw(eps)),
    }
    name = draw(st.sampled_from(sorted(names or recipes)))
    return recipes[name]()


@st.composite
def transforms(draw):
    """One public transform with random valid hyperparameters."""
    pool = [
        lambda: gradtx.identity(),
        lambda: gradtx.scale(draw(st.floats(-2, 2))),
        lambda: gradtx.scale_by_learning_rate(draw(lr)),
        lambda: gradtx.scale_by_momentum(draw(unit), ema=draw(st.booleans())),
        lambda: gradtx.scale_by_momentum(draw(unit), ema=draw(st.booleans()), nesterov=True),
        lambda: gradtx.bias_correction(draw(unit)),
        lambda: gradtx.scale_by_rms(
            draw(unit),
            draw(eps),
            eps_in_sqrt=draw(st.booleans()),
            eps_root=draw(eps),
            bias_correction=draw(st.booleans()),
        ),
        # decay >= 0.5 and a positive eps: the centered variance v - m^2 is a cancellation
        # (exactly g^2 - g^2 at decay 0) whose rounding differs between jit and eager, and
        # dividing by it amplifies that difference without bound.
        lambda: gradtx.scale_by_centered_rms(
            draw(centered_decay), draw(positive_eps), eps_root=draw(eps)
        ),
        lambda: gradtx.scale_by_rss(
            draw(st.floats(0, 1)), draw(eps), eps_in_sqrt=draw(st.booleans())
        ),
        lambda: gradtx.scale_by_adadelta(draw(unit), draw(positive_eps)),
        lambda: gradtx.scale_by_max_rms(draw(unit), draw(eps), eps_root=draw(eps)),
        lambda: gradtx.add_decayed_weights(draw(decay)),
    ]
    return draw(st.sampled_from(pool))()


def numpy_leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def assert_close(got, want):
    """Within a few units in the last place of the leaf's dtype (jit may fuse and reorder)."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for x, y in zip(numpy_leaves(got), numpy_leaves(want)):
        assert x.dtype == y.dtype and x.shape == y.shape
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            np.testing.assert_array_equal(x, y)
            continue
        tol = 8 * float(jnp.finfo(x.dtype).eps)
        wide = np.complex128 if jnp.issubdtype(x.dtype, jnp.complexfloating) else np.float64
        np.testing.assert_allclose(x.astype(wide), y.astype(wide), rtol=tol, atol=tol)
