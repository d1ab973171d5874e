"""Combinators: transforms built from other transforms."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from ._base import GradientTransformation, Preconditioner, update_fn
from ._checks import check_state, check_transformation
from ._numerics import cast, widen_float16


def check_parts(owner, state, state_type, mismatch) -> None:
    """Raise unless ``state`` is a ``state_type`` whose parts match the combinator's;
    ``mismatch(state)`` says how they differ, None where they do not."""
    check_state(owner, state, state_type)
    differs = mismatch(state)
    if differs is not None:
        raise ValueError(f"{owner}: {differs}; was this state made by another optimizer's init?")


class ChainState(NamedTuple):
    """The states of a chain's transforms, in order."""

    states: tuple


def chain(
    *transforms, name: str = "chain", hyperparams: dict | None = None
) -> GradientTransformation:
    """Apply transforms one after another: u = t_n(... t_2(t_1(g))).

    Each transform receives the previous one's output, and nothing else, as
    in ``optax.chain``: a transform computes the same thing wherever it
    stands, and chains nest freely (``chain(chain(a, b), c)`` computes what
    ``chain(a, b, c)`` does).  optax transforms can be mixed in.

    Args:
      *transforms: gradtx or optax gradient transformations.
      name, hyperparams: how the result describes itself; recipes such as
        ``adam`` pass their own, and errors from a part then name the recipe
        (``adam: scale_by_momentum: ...``).

    Returns:
      A transform whose state is a ``ChainState`` holding one state per part.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.chain(gradtx.clip(1.0), gradtx.scale(0.5))
      >>> tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))[0]
      Array([ 0.5 , -0.25], dtype=float32)
    """
    for i, t in enumerate(transforms):
        check_transformation(name, f"argument {i}", t)
    updates_of = [update_fn(t) for t in transforms]
    recipe = name != "chain"

    def named(error):
        """A part's error prefixed with the recipe's name (once), to name what the user built."""
        if recipe and not str(error).startswith(f"{name}:"):
            return type(error)(f"{name}: {error}")
        return None

    def init(params):
        try:
            return ChainState(tuple(t.init(params) for t in transforms))
        except (ValueError, TypeError) as error:
            renamed = named(error)
            if renamed is None:
                raise
            raise renamed from error

    def update(updates, state, params=None, **extra):
        def mismatch(s):
            if len(s.states) != len(updates_of):
                return (
                    f"got state for {len(s.states)} transforms but the chain has {len(updates_of)}"
                )

        check_parts(name, state, ChainState, mismatch)
        new_states = []
        try:
            for part_update, part_state in zip(updates_of, state.states):
                updates, part_state = part_update(updates, part_state, params, **extra)
                new_states.append(part_state)
        except (ValueError, TypeError) as error:
            renamed = named(error)
            if renamed is None:
                raise
            raise renamed from error
        return updates, ChainState(tuple(new_states))

    return GradientTransformation(
        init, update, name=name, hyperparams=hyperparams, children=transforms, combinator="chain"
    )


class PreconditionState(NamedTuple):
    """direction: the state of the direction; preconditioner: the preconditioner's state."""

    direction: Any
    preconditioner: Any


def precondition(direction, by: Preconditioner) -> GradientTransformation:
    """Divide a direction by a preconditioner measured on the same gradient.

    u_t = d_t / D_t, where d_t = direction(g_t) and D_t is the denominator
    of the preconditioner ``by`` with its statistics updated from g_t.  This
    is how Adam reads as its definition::

        adam = chain(
            precondition(chain(scale_by_momentum(b1, ema=True), bias_correction(b1)),
                         by=scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True)),
            scale_by_learning_rate(lr))

    m_hat_t comes from the direction, sqrt(v_hat_t) + eps from the
    preconditioner, and both see the same g_t.  A serial chain cannot say
    this: ``chain(momentum, rms)`` would take the second moment of the
    momentum.  ``precondition(identity(), by=p)`` is ``p``.

    The direction of a float16 gradient is taken in float32 and the result
    cast back to float16 at the end: a direction such as NAdam's look-ahead
    (about 1.5 g at the first step) can pass float16's maximum where d / D
    does not.

    Args:
      direction: any transform (momentum, bias correction, a chain of them).
      by: a ``Preconditioner``: ``scale_by_rms``, ``scale_by_rss``,
        ``scale_by_max_rms``, ``scale_by_centered_rms``, ``scale_by_adadelta``,
        ``scale_by_rectified_rms``.

    Returns:
      A transform with state ``PreconditionState(direction, preconditioner)``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.precondition(gradtx.scale_by_momentum(0.5), by=gradtx.scale_by_rss(0.0, eps=0.0))
      >>> state = tx.init(jnp.zeros(1))
      >>> u, state = tx.update(jnp.array([2.0]), state)   # m = 2, s = 4
      >>> u, state = tx.update(jnp.array([2.0]), state)   # m = 3, s = 8
      >>> u
      Array([1.0606602], dtype=float32)
    """
    owner = "precondition"
    check_transformation(owner, "direction", direction)
    if not isinstance(by, Preconditioner):
        raise TypeError(
            f"{owner}: by must be a preconditioner (scale_by_rms, scale_by_rss, "
            f"scale_by_max_rms, scale_by_centered_rms, scale_by_adadelta, "
            f"scale_by_rectified_rms), got "
            f"{getattr(by, 'name', type(by).__name__)}"
        )
    direction_update = update_fn(direction)

    def init(params):
        return PreconditionState(direction=direction.init(params), preconditioner=by.init(params))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, PreconditionState)
        d, direction_state = direction_update(
            widen_float16(updates), state.direction, params, **extra
        )
        out, by_state = by.precondition(d, updates, state.preconditioner, params)
        out = jax.tree.map(lambda o, u: cast(o, u.dtype), out, updates)
        return out, PreconditionState(direction=direction_state, preconditioner=by_state)

    return GradientTransformation(
        init, update, name=owner, children=(direction, by), combinator="precondition"
    )


def named_chain(*args) -> GradientTransformation:
    """Apply named transforms one after another: u = t_n(... t_1(g)), state {name_i: s_i}.

    ``chain`` whose state is an ordered dict from each transform's name to
    its state, so ``state["clip"]`` finds a part's state (optax's
    ``named_chain``).

    Args:
      *args: ``(name, transform)`` pairs, names distinct strings.

    Returns:
      A transform whose state is a ``collections.OrderedDict`` {name: state}.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> tx = gradtx.named_chain(("clip", gradtx.clip(1.0)), ("sgd", gradtx.sgd(0.5)))
      >>> u, state = tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))
      >>> u, list(state)
      (Array([-0.5 ,  0.25], dtype=float32), ['clip', 'sgd'])
    """
    owner = "named_chain"
    for i, pair in enumerate(args):
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError(f"{owner}: argument {i} must be a pair (name, transform), got {pair!r}")
        check_transformation(owner, f"argument {i} ({pair[0]!r})", pair[1])
    names = [name for name, _ in args]
    if len(names) != len(set(names)):
        raise ValueError(f"{owner}: the names must be distinct, got {names}")
    updates_of = [(name, update_fn(tx)) for name, tx in args]

    def init(params):
        return collections.OrderedDict((name, tx.init(params)) for name, tx in args)

    def update(updates, state, params=None, **extra):
        if not isinstance(state, Mapping) or set(state) != set(names):
            found = list(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"{owner}: the state holds {found} but the transforms are {names}; "
                f"was this state made by another optimizer's init?"
            )
        new_state = collections.OrderedDict()
        for name, part_update in updates_of:
            updates, new_state[name] = part_update(updates, state[name], params, **extra)
        return updates, new_state

    return GradientTransformation(
        init,
        update,
        name=owner,
        children=tuple(tx for _, tx in args),
        hyperparams={"names": tuple(names)},
    )
