"""Combinators: transforms built from other transforms."""

from __future__ import annotations

from typing import NamedTuple

from ._base import GradientTransformation, as_flow, check_state


class ChainState(NamedTuple):
    """The states of a chain's transforms, in order."""

    states: tuple


def chain(*transforms, name: str = "chain", hyperparams: dict | None = None) -> GradientTransformation:
    """Apply transforms one after another: u = t_n(... t_2(t_1(g))).

    The chain passes each transform the running update and the gradient of
    this step (see ``gradtx._base`` for the roles), so a preconditioner late
    in the chain still measures the raw gradient.  Transforms from optax can
    be mixed in; they see the running update as their input.

    Args:
      *transforms: gradtx or optax gradient transformations.
      name, hyperparams: how the result describes itself (recipes such as
        ``adam`` pass their own).

    Returns:
      A transform whose state is a ``ChainState`` holding one state per part.
    """
    for i, t in enumerate(transforms):
        if not (hasattr(t, "init") and hasattr(t, "update")):
            raise TypeError(f"{name}: argument {i} is not a gradient transformation "
                            f"(no init/update), got {type(t).__name__}")
    flows = [as_flow(t) for t in transforms]

    def init(params):
        return ChainState(tuple(t.init(params) for t in transforms))

    def flow(updates, gradient, state, params, extra):
        check_state(name, state, ChainState)
        if len(state.states) != len(flows):
            raise ValueError(f"{name}: got state for {len(state.states)} transforms but the "
                             f"chain has {len(flows)}; was this state made by another "
                             f"optimizer's init?")
        new_states = []
        for part_flow, part_state in zip(flows, state.states):
            updates, gradient, part_state = part_flow(updates, gradient, part_state, params, extra)
            new_states.append(part_state)
        return updates, gradient, ChainState(tuple(new_states))

    return GradientTransformation(init, flow, name=name, hyperparams=hyperparams,
                                  parts=transforms)
