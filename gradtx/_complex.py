"""Complex parameters as pairs of real ones.

gradtx's transforms take complex leaves directly (sizes are moduli, |g|^2 =
g conj(g)).  ``split_real_and_imaginary`` instead runs a transform on the
real and imaginary parts as two independent real parameters, as optax.contrib
does, so a complex parameter is optimised exactly as the pair of reals it
holds.  JAX's gradient of a real loss in a complex parameter is the
conjugate of PyTorch's: conjugate it before ``update`` to follow PyTorch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_state, check_transformation
from ._recipe import transform


class SplitRealAndImaginaryArrays(NamedTuple):
    """The real pair a complex leaf is split into (optax's fields)."""

    real: Any
    imaginary: Any


class SplitRealAndImaginaryState(NamedTuple):
    """inner_state: the inner transform's state over the split tree (optax's field)."""

    inner_state: Any


def _split(x):
    if jnp.iscomplexobj(x):
        return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x))
    return x


def _merge(x):
    if isinstance(x, SplitRealAndImaginaryArrays):
        return jax.lax.complex(x.real, x.imaginary)
    return x


@transform
def split_real_and_imaginary(inner):
    """Run ``inner`` on (Re z, Im z) as two real leaves and return Re u + i Im u.

    Every complex leaf of the updates and params becomes a
    ``SplitRealAndImaginaryArrays(real, imaginary)`` pair before ``inner``
    sees it, and the pair ``inner`` returns is joined back into one complex
    leaf; real leaves pass through unchanged.  So Adam, say, keeps separate
    second moments for the real and imaginary parts instead of one for |g|^2.

    Args:
      inner: the transform to run on the real pairs.

    Returns:
      A transform with state ``SplitRealAndImaginaryState(inner_state)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.split_real_and_imaginary(gradtx.scale_by_rms(eps=0.0))
      >>> params = jnp.zeros(1, jnp.complex64)
      >>> tx.update(jnp.array([3.0 - 0.5j]), tx.init(params), params)[0]   # each part / its rms
      Array([3.1622777-3.1622777j], dtype=complex64)
    """
    owner = "split_real_and_imaginary"
    check_transformation(owner, "inner", inner)

    def init(params):
        return SplitRealAndImaginaryState(inner.init(jax.tree.map(_split, params)))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, SplitRealAndImaginaryState)
        split_params = None if params is None else jax.tree.map(_split, params)
        out, inner_state = inner.update(
            jax.tree.map(_split, updates), state.inner_state, split_params, **extra
        )
        out = jax.tree.map(
            _merge, out, is_leaf=lambda x: isinstance(x, SplitRealAndImaginaryArrays)
        )
        return out, SplitRealAndImaginaryState(inner_state)

    return init, update, (inner,)
