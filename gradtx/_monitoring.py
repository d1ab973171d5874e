"""Measurements recorded in the state: what the update looked like at a point of a chain.

``snapshot`` stores a function of the update it receives; ``monitor``
stores several, each a function or a transform whose output is the
measurement (``measure_with_ema``: a moving average of one).  Each passes
its input through unchanged, so it can stand anywhere in a chain; read the
values back with ``gradtx.tree_get(state, name)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._accumulation import ema
from ._base import GradientTransformation, is_transformation, stateless, update_fn
from ._checks import check_state
from ._combine import chain
from ._recipe import transform


class SnapshotState(NamedTuple):
    """measurement: {name: the measure of the last update} (optax's field)."""

    measurement: dict


@transform(exclude=("measure",))
def snapshot(measure_name: str, measure: Callable):
    """Record a measure of the update: u_t = g_t, state = {name: measure(g_t)}.

    optax's ``snapshot``; ``init`` records ``measure(params)``.

    Args:
      measure_name: the key the measurement is stored under.
      measure: ``updates -> pytree``, e.g. ``gradtx.global_norm``.

    Returns:
      A transform with state ``SnapshotState({measure_name: value})``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.chain(gradtx.snapshot("norm", gradtx.global_norm), gradtx.clip_by_global_norm(1.0))
      >>> u, state = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
      >>> gradtx.tree_get(state, "norm")
      Array(5., dtype=float32)
    """
    if not isinstance(measure_name, str):
        raise TypeError(f"snapshot: measure_name must be a string, got {measure_name!r}")
    if not callable(measure):
        raise TypeError(f"snapshot: measure must be a function updates -> value, got {measure!r}")

    def init(params):
        return SnapshotState({measure_name: measure(params)})

    def update(updates, state, params=None, **extra):
        check_state("snapshot", state, SnapshotState)
        return updates, SnapshotState({measure_name: measure(updates)})

    return init, update


class MonitorState(NamedTuple):
    """measurements: {name: value}; measure_states: the measures' states, in order (optax's fields)."""

    measurements: dict
    measure_states: tuple


def monitor(measures: dict) -> GradientTransformation:
    """Record several measures of the update: u_t = g_t, state = {name_i: m_i(g_t)}.

    optax's ``monitor``: each measure is a function ``updates -> value`` or
    a transform whose output is the measurement (``measure_with_ema``),
    whose own state is kept in ``measure_states``.  Before the first update
    ``measurements`` is empty.

    Args:
      measures: ``{name: function or transform}``.

    Returns:
      A transform with state ``MonitorState(measurements, measure_states)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.monitor({"norm": gradtx.global_norm,
      ...                      "norm_ema": gradtx.measure_with_ema(gradtx.global_norm, 0.9)})
      >>> u, state = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
      >>> state.measurements["norm"], state.measurements["norm_ema"]
      (Array(5., dtype=float32), Array(5., dtype=float32))
    """
    owner = "monitor"
    if not isinstance(measures, dict):
        raise TypeError(f"{owner}: measures must be a dict {{name: measure}}, got {measures!r}")
    parts = {}
    for name, measure in measures.items():
        if is_transformation(measure):
            parts[name] = measure
        elif callable(measure):
            parts[name] = stateless(lambda u, _, m=measure: m(u))
        else:
            raise TypeError(
                f"{owner}: measures[{name!r}] must be a function or a transform, got {measure!r}"
            )
    names = tuple(parts)
    updates_of = {name: update_fn(tx) for name, tx in parts.items()}

    def init(params):
        return MonitorState({}, tuple(parts[name].init(params) for name in names))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, MonitorState)
        measurements, new_states = {}, []
        for name, part_state in zip(names, state.measure_states):
            measurements[name], part_state = updates_of[name](updates, part_state, params, **extra)
            new_states.append(part_state)
        return updates, MonitorState(measurements, tuple(new_states))

    return GradientTransformation(
        init, update, name=owner, children=tuple(parts.values()), hyperparams={"names": names}
    )


def _as_float(tree: Any):
    """Booleans and integers as floats, so that their moving average is a fraction."""

    def convert(x):
        x = jnp.asarray(x)
        return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))

    return jax.tree.map(convert, tree)


def measure_with_ema(
    measure: Callable, decay, debias: bool = True, accumulator_dtype=None
) -> GradientTransformation:
    """A moving average of a measure of the update: e_t = decay * e_{t-1} + (1 - decay) * m(g_t).

    The output is e_t (divided by 1 - decay^t with ``debias``), not the
    update: use it as a measure of ``monitor``.  A boolean or integer
    measurement is averaged as a float (the fraction of steps it held).
    optax's ``measure_with_ema``.

    Args:
      measure: m, ``updates -> pytree``.
      decay: the decay of the average, in [0, 1].
      debias: divide by 1 - decay^t.
      accumulator_dtype: the dtype e_t is stored in; None: the measurement's.

    Returns:
      ``chain(stateless(m), ema(decay, debias, accumulator_dtype))``, with the
      average started at m(params)'s shape.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.measure_with_ema(lambda u: gradtx.global_norm(u) > 1.0, decay=0.5, debias=False)
      >>> e, state = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
      >>> e
      Array(0.5, dtype=float32)
    """
    measured = stateless(lambda updates, _: _as_float(measure(updates)))
    average = ema(decay, debias, accumulator_dtype)

    def init(params):
        return average.init(_as_float(measure(params)))

    started = GradientTransformation(
        init, average.update, name="ema", hyperparams=average.hyperparams
    )
    return chain(measured, started, name="measure_with_ema", hyperparams={"decay": decay})
