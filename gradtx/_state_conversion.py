"""Converting an optimizer's state to and from optax's layout.

A gradtx optimizer and its optax namesake hold the same numbers in differently
shaped trees.  ``gradtx.adam``'s state is its recipe's
``ChainState(states=(PreconditionState(direction=ChainState(states=(
MomentumState(mu), BiasCorrectionState(count))), preconditioner=RmsState(count,
nu)), EmptyState()))``; optax's is ``(ScaleByAdamState(count, mu, nu),
EmptyState())``.  The chains line up part for part (a recipe chains the parts
optax chains, in the same order), so the conversion goes part by part:

- a part whose states are all empty is optax's ``EmptyState()`` (or optax's
  ``MaskedState(inner_state=EmptyState())`` where optax wraps a masked weight
  decay);
- any other part is one optax state, chosen by the gradtx state types it holds
  (``_OPTAX_TYPE``), whose fields are read by name from those states: ``mu``
  from the momentum, ``nu`` from the preconditioner, ``count`` from the first
  counter.

Going back, each field of a gradtx state is read by name from the optax part:
both of Adam's counters are set from optax's one ``count`` (as separate
buffers), and a field optax does not keep is derived (NAdam's ``b1_product``
is b1^t, which is what gradtx stores for a constant b1) or, for a counter
that optax does not keep because nothing reads it (RMSprop without bias
correction), set to 0.  Fields are read by name, so the optax state may be
optax's own named tuples or a restored dict or list of them (Flax
serialization, Orbax without a template).  The arrays are passed through as
they are: no cast, no copy, except a second use of one counter, and the
noise key of ``noisy_sgd``, which optax keeps as a typed key
(``jax.random.wrap_key_data`` of gradtx's raw uint32 key data).

optax.contrib's optimizers (schedule-free, prodigy, dog, ademamix, sophia,
galore, ...) and ``polyak_sgd`` keep their states in gradtx under optax's own
type and field names, so those convert by walking both trees together, field
by field, nested states (a base optimizer's, a Hessian estimator's) included
(``_MIRRORED``); optax's state is the one state itself where optax does not
chain it.

optax is not a dependency of gradtx.  ``state_to_optax`` returns optax's own
named tuples when optax can be imported, so the result goes straight into an
optax update or an optax-shaped checkpoint; without optax it returns named
tuples of the same type names and fields, which serialize to the same keys.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ._base import EmptyState, GradientTransformation
from ._combine import ChainState, PreconditionState
from ._momentum import _widest_real_dtype
from ._partition import MaskedState

# optax's state types and their fields, by name.
_OPTAX_FIELDS = {
    "EmptyState": (),
    "MaskedState": ("inner_state",),
    "ScaleByScheduleState": ("count",),
    "TraceState": ("trace",),
    "EmaState": ("count", "ema"),
    "AddNoiseState": ("count", "rng_key"),
    "ScaleByAdamState": ("count", "mu", "nu"),
    "ScaleByAmsgradState": ("count", "mu", "nu", "nu_max"),
    "ScaleByRmsState": ("nu",),
    "ScaleByRmsWithCountState": ("count", "nu"),
    "ScaleByRStdDevState": ("mu", "nu"),
    "ScaleByRStdDevWithCountState": ("count", "mu", "nu"),
    "ScaleByRssState": ("sum_of_squares",),
    "ScaleByAdaDeltaState": ("e_g", "e_x"),
    "ScaleByBeliefState": ("count", "mu", "nu"),
    "ScaleByLionState": ("count", "mu"),
    "FactoredState": ("count", "v_row", "v_col", "v"),
    "ScaleBySM3State": ("mu", "nu"),
    "ScaleByNovogradState": ("count", "mu", "nu"),
    "ScaleByAdanState": ("m", "v", "n", "g", "t"),
    "ScaleByRpropState": ("step_sizes", "prev_updates"),
    "ScaleByOptimisticGradientState": ("is_initial_step", "previous_gradient"),
    # optax.contrib's states, which gradtx's namesakes keep under the same
    # type and field names (converted field by field, nested states included).
    "ScheduleFreeState": ("b1", "weight_sum", "step_count", "max_lr", "base_optimizer_state", "z"),
    "ProdigyState": tuple(
        "exp_avg exp_avg_sq grad_sum params0 estim_lr numerator_weighted count".split()
    ),
    "DoGState": ("is_init_step", "init_params", "max_dist", "sum_sq_norm_grads"),
    "DoWGState": ("init_params", "weighted_sq_norm_grads", "estim_sq_dist"),
    "COCOBState": ("init_particles", "cumulative_gradients", "scale", "subgradients", "reward"),
    "ScaleByAdemamixState": ("count", "count_m2", "m1", "m2", "nu"),
    "ScaleBySimplifiedAdEMAMixState": ("t", "m", "n"),
    "MomoState": ("exp_avg", "barf", "gamma", "lb", "count"),
    "MomoAdamState": ("exp_avg", "exp_avg_sq", "barf", "gamma", "lb", "count"),
    "SophiaState": ("count", "mu", "nu", "hessian_fn_state"),
    "HutchinsonState": ("key",),
    "DifferentiallyPrivateAggregateState": ("rng_key",),
    "GaLoreState": ("count", "base_optimizer_state", "projector"),
    "ScaleByLBFGSState": tuple(
        "count params updates diff_params_memory diff_updates_memory weights_memory".split()
    ),
    "ScaleByZoomLinesearchState": ("learning_rate", "value", "grad", "info"),
    "ZoomLinesearchInfo": ("num_linesearch_steps", "decrease_error", "curvature_error"),
    "PartitionState": ("inner_states",),
    "MuonState": ("count", "mu", "ns_coeffs"),
    "MaskedNode": (),
}

# The optax state a part of a gradtx chain becomes, by the gradtx state types
# the part holds (in tree order).
_OPTAX_TYPE = {
    ("ScheduleState",): "ScaleByScheduleState",
    ("TraceState",): "TraceState",
    ("EmaState",): "EmaState",
    ("AddNoiseState",): "AddNoiseState",
    ("MomentumState", "BiasCorrectionState", "RmsState"): "ScaleByAdamState",
    ("NadamMomentumState", "RmsState"): "ScaleByAdamState",
    ("MomentumState", "BiasCorrectionState", "InfinityNormState"): "ScaleByAdamState",
    ("MomentumState", "BiasCorrectionState", "MaxRmsState"): "ScaleByAmsgradState",
    ("ScaleByYogiState",): "ScaleByAdamState",
    ("RmsState",): "ScaleByRmsState",
    ("CenteredRmsState",): "ScaleByRStdDevState",
    ("RssState",): "ScaleByRssState",
    ("AdadeltaState",): "ScaleByAdaDeltaState",
    ("ScaleByBeliefState",): "ScaleByBeliefState",
    ("ScaleByLionState",): "ScaleByLionState",
    ("FactoredState",): "FactoredState",
    ("ScaleBySM3State",): "ScaleBySM3State",
    ("ScaleByNovogradState",): "ScaleByNovogradState",
    ("ScaleByAdanState",): "ScaleByAdanState",
    ("ScaleByRpropState",): "ScaleByRpropState",
    ("ScaleByOptimisticGradientState",): "ScaleByOptimisticGradientState",
}

_MASKED_EMPTY = "masked EmptyState"
_MISSING = object()


def _masked_decay(mask_name, position):
    """optax masks its weight decay when a mask is given: that part is MaskedState(EmptyState())."""

    def parts(h, n):
        if h.get(mask_name) is None:
            return {}
        return {position(n): _MASKED_EMPTY}

    return parts


def _no_overrides(h, n):
    return {}


def _rmsprop(h, n):
    if not h.get("bias_correction"):
        return {}
    counted = "ScaleByRStdDevWithCountState" if h.get("centered") else "ScaleByRmsWithCountState"
    return {0: counted}


def _adafactor(h, n):
    if h.get("weight_decay_rate") is None or h.get("weight_decay_mask") is None:
        return {}
    return {n - 2: _MASKED_EMPTY}


_lars = _masked_decay("weight_decay_mask", lambda n: 0)


_WEIGHT_DECAY_AT_1 = _masked_decay("mask", lambda n: 1)

# The optimizers whose state converts, each with the parts where optax's layout
# depends on the hyperparameters: (hyperparameters, number of parts) ->
# {part: optax type}.
_COVERED = {
    "sgd": _no_overrides,
    "adam": _no_overrides,
    "adamw": _WEIGHT_DECAY_AT_1,
    "nadam": _no_overrides,
    "nadamw": _WEIGHT_DECAY_AT_1,
    "amsgrad": _no_overrides,
    "radam": _no_overrides,
    "adamax": _no_overrides,
    "adamaxw": _WEIGHT_DECAY_AT_1,
    "rmsprop": _rmsprop,
    "adagrad": _no_overrides,
    "adadelta": _no_overrides,
    "adabelief": _no_overrides,
    "yogi": _no_overrides,
    "lion": _no_overrides,
    "lamb": _WEIGHT_DECAY_AT_1,
    "lars": _lars,
    "adafactor": _adafactor,
    "sm3": _no_overrides,
    "novograd": _no_overrides,
    "adan": _no_overrides,
    "sign_sgd": _no_overrides,
    "signum": _no_overrides,
    "fromage": _no_overrides,
    "noisy_sgd": _no_overrides,
    "rprop": _no_overrides,
    "optimistic_gradient_descent": _no_overrides,
    "optimistic_adam": _no_overrides,
    "optimistic_adam_v2": _no_overrides,
}

# Hyperparameters with which optax keeps a state gradtx does not: owner -> names.
_SCHEDULED_DECAY = {"adamw", "nadamw", "adamaxw", "lamb", "lars", "adadelta", "adafactor"}


@functools.cache
def _optax_type(name: str):
    """optax's state type ``name``, or a named tuple with its name and fields without optax."""
    try:
        import optax
        from optax import contrib
        from optax._src import transform
    except ImportError:  # optax is optional: build the same layout on our own tuples
        return collections.namedtuple(name, _OPTAX_FIELDS[name])
    # contrib first: optax's top level still aliases some of contrib's types, deprecated.
    found = getattr(contrib, name, None) or getattr(optax, name, None)
    found = found or getattr(transform, name, None)
    if found is None:  # a future optax that moved the type: keep the layout
        return collections.namedtuple(name, _OPTAX_FIELDS[name])
    return found


def _make(name: str, **fields):
    return _optax_type(name)(**fields)


def _covered(owner: str, opt) -> str:
    if not isinstance(opt, GradientTransformation):
        raise TypeError(
            f"{owner}: expected a gradtx optimizer such as gradtx.adam(1e-3), "
            f"got {type(opt).__name__}"
        )
    name = opt.name
    if name not in _COVERED and name not in _MIRRORED and name != "muon":
        known = ", ".join(sorted({*_COVERED, *_MIRRORED, "muon"}))
        raise ValueError(
            f"{owner}: gradtx.{name} has no optax state layout to convert with; "
            f"the optimizers covered are: {known}"
        )
    hyperparams = opt.hyperparams or {}
    for key in ("weight_decay", "weight_decay_rate"):
        if name in _SCHEDULED_DECAY and callable(hyperparams.get(key)):
            raise ValueError(
                f"{owner}: gradtx.{name} with a scheduled {key} is not covered: optax "
                f"counts the steps of that schedule in a state of its own"
            )
    return name


def _leaf_states(node, path: str):
    """The (path, state) of every state in a part, through chains, preconditions and masks."""
    if isinstance(node, ChainState):
        for i, child in enumerate(node.states):
            yield from _leaf_states(child, f"{path}.states[{i}]")
    elif isinstance(node, PreconditionState):
        yield from _leaf_states(node.direction, f"{path}.direction")
        yield from _leaf_states(node.preconditioner, f"{path}.preconditioner")
    elif isinstance(node, MaskedState):
        yield from _leaf_states(node.inner_state, f"{path}.inner_state")
    else:
        yield path, node


def _is_empty(node) -> bool:
    """Whether an optax part holds no arrays."""
    return not jax.tree.leaves(node)


def _keeps_nothing(part) -> bool:
    """Whether a gradtx part is made of empty states only (whatever the parameters)."""
    return all(isinstance(s, EmptyState) for _, s in _leaf_states(part, ""))


def _signature(part, path: str):
    states = list(_leaf_states(part, path))
    return tuple(type(s).__name__ for _, s in states), states


def _optax_part(owner, name, part, path, override, hyperparams):
    """One part of a gradtx chain in optax's layout."""
    if override == _MASKED_EMPTY or (override is None and isinstance(part, MaskedState)):
        if not _keeps_nothing(part):
            raise ValueError(f"{owner}: gradtx.{name}'s {path} is a masked state that holds arrays")
        return _make("MaskedState", inner_state=_make("EmptyState"))
    if override is None and _keeps_nothing(part):
        return _make("EmptyState")
    signature, states = _signature(part, path)
    target = override or _OPTAX_TYPE.get(signature)
    if target is None:
        raise ValueError(
            f"{owner}: gradtx.{name}'s {path} holds {', '.join(signature)}, which has no "
            f"counterpart in optax.{name}'s state with these hyperparameters "
            f"({_hyperparams_text(hyperparams)})"
        )
    fields = {}
    for _, state in states:
        for field in getattr(state, "_fields", ()):
            fields.setdefault(field, getattr(state, field))
    missing = [f for f in _OPTAX_FIELDS[target] if f not in fields]
    if missing:
        raise ValueError(
            f"{owner}: gradtx.{name}'s {path} has no {', '.join(missing)} for optax's {target}"
        )
    return _make(target, **{f: _optax_value(f, fields[f]) for f in _OPTAX_FIELDS[target]})


def _optax_value(field, value):
    """optax keeps its noise key as a typed key; gradtx keeps the key's raw uint32 data."""
    if field == "rng_key" and not jnp.issubdtype(jnp.result_type(value), jax.dtypes.prng_key):
        return jax.random.wrap_key_data(value)
    return value


def _gradtx_value(field, value):
    if field == "rng_key" and jnp.issubdtype(jnp.result_type(value), jax.dtypes.prng_key):
        return jax.random.key_data(value)
    return value


def _hyperparams_text(hyperparams) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in hyperparams.items())


def _parts(owner: str, opt, state):
    if not isinstance(state, ChainState):
        raise TypeError(
            f"{owner}: expected the state of gradtx.{opt.name} (a ChainState), "
            f"got {type(state).__name__}; was this state made by opt.init?"
        )
    return state.states


def _first_item(state):
    """The first part of a chain state: a gradtx ChainState, a tuple, or a restored dict."""
    if isinstance(state, ChainState):
        state = state.states
    if isinstance(state, Mapping):
        return state.get("0", state.get(0, _MISSING))
    if isinstance(state, Sequence) and not hasattr(state, "_fields") and len(state):
        return state[0]
    return _MISSING


def _template(owner, name, opt, state):
    """The state ``opt.init`` makes, as shapes: of empty params, or of the params ``state`` keeps."""
    params = {}
    if name in _TEMPLATE_FROM_PARAMS:
        first = _first_item(state)
        params = _MISSING if first is _MISSING else _field(first, "params")
        if params is _MISSING:
            raise ValueError(
                f"{owner}: gradtx.{name}'s state is laid out from the params its first part "
                f"keeps, but the state given has no first part with a 'params' field"
            )
    return jax.eval_shape(opt.init, params)


def state_to_optax(opt: GradientTransformation, state: Any) -> tuple:
    """The state of a gradtx optimizer in the layout of its optax namesake.

    ``state_to_optax(gradtx.adam(lr), state)`` is ``(ScaleByAdamState(count,
    mu, nu), EmptyState())``, what ``optax.adam(lr).init`` makes and its
    update keeps: the same arrays (not copied), with gradtx's counters read as
    optax's one ``count``.  The types are optax's own when optax can be
    imported; without it they are named tuples with optax's type names and
    field names, which serialize to the same keys.

    Args:
      opt: a gradtx optimizer that optax also has (``gradtx.adam(1e-3)``,
        ``gradtx.sgd(0.1, momentum=0.9)``, ...; the error lists them), built
        with the hyperparameters the optax one was.
      state: a state of ``opt``, from ``opt.init`` or ``opt.update``.

    Returns:
      A tuple of optax states, one per transform of optax's chain.

    Raises:
      ValueError: ``opt`` has no optax counterpart, or these hyperparameters
        give optax a state gradtx does not keep (both named in the message).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adam(0.1)
      >>> state = opt.init({"w": jnp.zeros(2)})
      >>> [type(s).__name__ for s in gradtx.state_to_optax(opt, state)]
      ['ScaleByAdamState', 'EmptyState']
    """
    owner = "state_to_optax"
    name = _covered(owner, opt)
    hyperparams = dict(opt.hyperparams or {})
    parts = _parts(owner, opt, state)
    expected = _parts(owner, opt, _template(owner, name, opt, state))
    if len(parts) != len(expected):
        raise ValueError(
            f"{owner}: gradtx.{name}'s state has {len(expected)} parts, got {len(parts)}; "
            f"was this state made by another optimizer's init?"
        )
    for i, (part, want) in enumerate(zip(parts, expected)):
        got, _ = _signature(part, "")
        wanted, _ = _signature(want, "")
        if got != wanted:
            raise ValueError(
                f"{owner}: gradtx.{name}'s states[{i}] holds {', '.join(wanted)}, got "
                f"{', '.join(got)}; was this state made by another optimizer's init?"
            )
    if name in _MIRRORED:
        return _mirror_state_to_optax(owner, name, parts, expected, hyperparams)
    if name == "muon":
        return _muon_to_optax(owner, parts, hyperparams)
    overrides = _COVERED[name](hyperparams, len(parts))
    return tuple(
        _optax_part(owner, name, part, f"states[{i}]", overrides.get(i), hyperparams)
        for i, part in enumerate(parts)
    )


# ----------------------------------------------------------------------------
# From optax's layout.


def _field(node, field):
    """``node``'s field by name: a named tuple's field or a restored dict's key."""
    if isinstance(node, Mapping):
        return node.get(field, _MISSING)
    if field not in getattr(node, "_fields", ()):  # not tuple.count, tuple.index
        return _MISSING
    return getattr(node, field)


def _field_names(node) -> tuple:
    if isinstance(node, Mapping):
        return tuple(node)
    return tuple(getattr(node, "_fields", ()))


def _optax_items(owner, name, optax_state, n):
    """The parts of optax's chain state: a tuple or list, or a restored dict keyed '0', '1', ..."""
    if isinstance(optax_state, Mapping):
        keys = sorted(optax_state, key=lambda k: int(k) if str(k).isdigit() else -1)
        if [str(k) for k in keys] != [str(i) for i in range(len(keys))]:
            raise ValueError(
                f"{owner}: expected optax.{name}'s state, a tuple of {n} states (or a restored "
                f"dict keyed '0' to '{n - 1}'), got a dict with keys {sorted(map(str, optax_state))}"
            )
        items = [optax_state[k] for k in keys]
    elif isinstance(optax_state, Sequence) and not hasattr(optax_state, "_fields"):
        items = list(optax_state)
    else:
        raise ValueError(
            f"{owner}: expected optax.{name}'s state, a tuple of {n} states, "
            f"got {type(optax_state).__name__}"
        )
    if len(items) != n:
        raise ValueError(
            f"{owner}: gradtx.{name}'s state has {n} parts but the optax state has "
            f"{len(items)}; was it made by optax.{name} with the same arguments?"
        )
    return items


def _separate(value, used: set):
    """``value``, or a copy of it if it already stands elsewhere in the state."""
    if id(value) in used:
        return jnp.array(value, copy=True)
    used.add(id(value))
    return value


def _kept_nothing(owner, name, template, item, path, with_fields=False):
    """``template``, a part that keeps nothing, once optax's ``item`` is seen to keep
    nothing either."""
    if not _is_empty(item):
        holds = f"arrays (fields {_field_names(item)})" if with_fields else "arrays"
        raise ValueError(
            f"{owner}: the optax state's part {path} holds {holds} where gradtx.{name} "
            f"keeps none; was it made by optax.{name} with the same arguments?"
        )
    return template


def _fill(owner, name, template, item, path, hyperparams):
    """A gradtx part shaped as ``template`` with its fields read by name from optax's ``item``."""
    if _keeps_nothing(template):
        return _kept_nothing(owner, name, template, item, path, with_fields=True)
    if isinstance(template, MaskedState):
        inner = _field(item, "inner_state")
        inner = item if inner is _MISSING else inner
        return MaskedState(_fill(owner, name, template.inner_state, inner, path, hyperparams))
    consumed, used = set(), set()
    count = _field(item, "count")

    def build(node):
        if isinstance(node, ChainState):
            return ChainState(tuple(build(s) for s in node.states))
        if isinstance(node, PreconditionState):
            return PreconditionState(build(node.direction), build(node.preconditioner))
        values = {}
        for field in node._fields:
            value = _field(item, field)
            if value is not _MISSING:
                consumed.add(field)
                values[field] = jax.tree.map(lambda v: _separate(v, used), value)
                values[field] = _gradtx_value(field, values[field])
            elif field == "b1_product" and count is not _MISSING:
                # With optax's constant b1, gradtx stores B_t = b1^t in the
                # widest real dtype of the moments.
                moments = [_field(item, "mu"), _field(item, "nu")]
                dtype = _widest_real_dtype([m for m in moments if m is not _MISSING])
                b1 = jnp.asarray(hyperparams["b1"], dtype)
                values[field] = b1 ** jnp.asarray(count).astype(dtype)
            elif field == "count":
                # optax keeps no counter here because nothing reads it.
                values[field] = jnp.zeros((), jnp.int32)
            else:
                raise ValueError(
                    f"{owner}: the optax state's part {path} has no field {field!r} "
                    f"(it has {_field_names(item)}) for gradtx.{name}'s {type(node).__name__}; "
                    f"was it made by optax.{name} with the same arguments?"
                )
        return type(node)(**values)

    built = build(template)
    left = [f for f in _field_names(item) if f not in consumed and not _is_empty(_field(item, f))]
    if left:
        raise ValueError(
            f"{owner}: the optax state's part {path} holds {', '.join(left)}, which "
            f"gradtx.{name} does not keep; was it made by optax.{name} with the same arguments?"
        )
    return built


def state_from_optax(opt: GradientTransformation, optax_state: Any) -> ChainState:
    """The state of a gradtx optimizer from the state of its optax namesake.

    The inverse of ``state_to_optax``: ``state_from_optax(gradtx.adam(lr),
    optax_state)`` continues the run exactly where ``optax.adam(lr)`` left
    it.  Fields are read by name, so ``optax_state`` may be optax's named
    tuples or a restored dict or list of them (Orbax or Flax serialization
    without a template).  The arrays are used as they are; each of gradtx's
    counters gets optax's ``count`` (a separate buffer for each).

    Args:
      opt: the gradtx optimizer, built with the hyperparameters the optax
        one was.
      optax_state: the optax optimizer's state.

    Returns:
      A state of ``opt``, ready for ``opt.update``.

    Raises:
      ValueError: ``opt`` has no optax counterpart, or ``optax_state`` does
        not have the layout of optax's namesake (both named in the message).

    Example:
      >>> import jax.numpy as jnp, gradtx, optax
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> optax_state = optax.adam(0.1).init(params)
      >>> state = gradtx.state_from_optax(gradtx.adam(0.1), optax_state)
      >>> gradtx.tree_get(state, "nu")
      {'w': Array([0., 0.], dtype=float32)}
    """
    owner = "state_from_optax"
    name = _covered(owner, opt)
    hyperparams = dict(opt.hyperparams or {})
    template = _template(owner, name, opt, optax_state)
    parts = _parts(owner, opt, template)
    if name in _MIRRORED:
        return _mirror_state_from_optax(owner, name, optax_state, parts, hyperparams)
    if name == "muon":
        return _muon_from_optax(owner, optax_state, parts, hyperparams)
    items = _optax_items(owner, name, optax_state, len(parts))
    return ChainState(
        tuple(
            _fill(owner, name, part, item, f"states[{i}]", hyperparams)
            for i, (part, item) in enumerate(zip(parts, items))
        )
    )


# ----------------------------------------------------------------------------
# optax.contrib's optimizers: gradtx keeps their states under optax's type and
# field names, so the conversion walks both trees together, field by field.


def _empties(layout):
    """optax's empty states nested as ``layout`` (a tuple of tuples, ``None`` for one state)."""
    if layout is None:
        return _make("EmptyState")
    return tuple(_empties(part) for part in layout)


def _schedule_free_sgd_empties(h, path):
    # optax's base optimizer is sgd, (identity, scale), after a weight decay if one is given.
    if path != "states[0].base_optimizer_state":
        return _NO_LAYOUT
    return (None, None) if h.get("weight_decay") is None else (None, (None, None))


def _polyak_sgd_empties(h, path):
    # optax chains (sgd(1.0) = (identity, scale), scale_by_polyak).
    return (None, None) if path == "states[0]" else _NO_LAYOUT


def _no_empties(h, path):
    return _NO_LAYOUT


_NO_LAYOUT = object()

# name -> (optax's state is the one part itself rather than a tuple of parts,
# gradtx type names optax keeps under another name, where optax's layout of a
# part that keeps nothing differs from gradtx's: (hyperparameters, path) ->
# nested layout of optax's empty states).
_MIRRORED = {
    "schedule_free_adamw": (True, {"RmsState": "ScaleByRmsWithCountState"}, _no_empties),
    "schedule_free_sgd": (True, {}, _schedule_free_sgd_empties),
    "adopt": (False, {"ScaleByAdoptState": "ScaleByAdamState"}, _no_empties),
    "polyak_sgd": (False, {}, _polyak_sgd_empties),
}
# The others keep gradtx's type names and empty parts: optax's state is the one part
# itself for these,
for _name in ("prodigy", "momo", "momo_adam"):
    _MIRRORED[_name] = (True, {}, _no_empties)
# and a tuple of parts for these.
for _name in (
    "dog",
    "dowg",
    "cocob",
    "ademamix",
    "simplified_ademamix",
    "sophia",
    "acprop",
    "dpsgd",
    "galore",
    "lbfgs",
):
    _MIRRORED[_name] = (False, {}, _no_empties)

# The optimizers whose init fails on empty params: their template is built
# from the params their first part keeps (its ``params`` field).
_TEMPLATE_FROM_PARAMS = {"lbfgs"}


def _is_state(node) -> bool:
    """Whether a field of a state template is itself a state (a template's params are ``{}``)."""
    return isinstance(node, tuple) and hasattr(node, "_fields")


def _mirror_to(owner, name, node, template, path, hyperparams):
    """A gradtx state, walked with its template, in optax's layout."""
    _, renamed, empties = _MIRRORED[name]
    if _keeps_nothing(template):
        layout = empties(hyperparams, path)
        if layout is not _NO_LAYOUT:
            return _empties(layout)
    if isinstance(template, ChainState):
        return tuple(
            _mirror_to(owner, name, n, t, f"{path}.states[{i}]", hyperparams)
            for i, (n, t) in enumerate(zip(node.states, template.states))
        )
    if isinstance(template, EmptyState):
        return _make("EmptyState")
    if isinstance(template, (PreconditionState, MaskedState)):
        return _optax_part(owner, name, node, path, None, hyperparams)
    target = renamed.get(type(template).__name__, type(template).__name__)
    if target not in _OPTAX_FIELDS:
        raise ValueError(
            f"{owner}: gradtx.{name}'s {path} is a {type(template).__name__}, which has no "
            f"counterpart in optax.{name}'s state with these hyperparameters "
            f"({_hyperparams_text(hyperparams)})"
        )
    fields = {}
    for field in _OPTAX_FIELDS[target]:
        if field not in template._fields:
            raise ValueError(f"{owner}: gradtx.{name}'s {path} has no {field} for optax's {target}")
        value, want = getattr(node, field), getattr(template, field)
        if _is_state(want):
            value = _mirror_to(owner, name, value, want, f"{path}.{field}", hyperparams)
        fields[field] = _optax_value(field, value)
    return _make(target, **fields)


def _optax_sequence(owner, name, item, n, path):
    """The parts of a nested optax chain: a tuple or list, or a restored dict keyed '0', '1', ..."""
    if isinstance(item, Mapping):
        if sorted(map(str, item)) != sorted(str(i) for i in range(len(item))):
            item = None
        else:
            item = [item[k] for k in sorted(item, key=lambda k: int(k))]
    elif not isinstance(item, Sequence) or hasattr(item, "_fields"):
        item = None
    if item is None or len(item) != n:
        raise ValueError(
            f"{owner}: the optax state's part {path} is not a chain of {n} states as "
            f"gradtx.{name}'s is; was it made by optax.{name} with the same arguments?"
        )
    return list(item)


def _mirror_from(owner, name, template, item, path, hyperparams):
    """A gradtx state shaped as ``template``, read field by field from optax's ``item``."""
    if _keeps_nothing(template):
        return _kept_nothing(owner, name, template, item, path)
    if isinstance(template, ChainState):
        items = _optax_sequence(owner, name, item, len(template.states), path)
        return ChainState(
            tuple(
                _mirror_from(owner, name, t, i, f"{path}.states[{k}]", hyperparams)
                for k, (t, i) in enumerate(zip(template.states, items))
            )
        )
    if isinstance(template, (PreconditionState, MaskedState)):
        return _fill(owner, name, template, item, path, hyperparams)
    values = {}
    for field in template._fields:
        value = _field(item, field)
        if value is _MISSING:
            raise ValueError(
                f"{owner}: the optax state's part {path} has no field {field!r} "
                f"(it has {_field_names(item)}) for gradtx.{name}'s {type(template).__name__}; "
                f"was it made by optax.{name} with the same arguments?"
            )
        want = getattr(template, field)
        if _is_state(want):
            value = _mirror_from(owner, name, want, value, f"{path}.{field}", hyperparams)
        values[field] = _gradtx_value(field, value)
    left = [f for f in _field_names(item) if f not in values and not _is_empty(_field(item, f))]
    if left:
        raise ValueError(
            f"{owner}: the optax state's part {path} holds {', '.join(left)}, which "
            f"gradtx.{name} does not keep; was it made by optax.{name} with the same arguments?"
        )
    return type(template)(**values)


def _mirror_state_to_optax(owner, name, parts, template, hyperparams):
    single = _MIRRORED[name][0]
    converted = tuple(
        _mirror_to(owner, name, part, want, f"states[{i}]", hyperparams)
        for i, (part, want) in enumerate(zip(parts, template))
    )
    return converted[0] if single else converted


def _mirror_state_from_optax(owner, name, optax_state, template, hyperparams):
    if _MIRRORED[name][0]:
        items = [optax_state]
        if len(template) != 1:
            raise ValueError(f"{owner}: gradtx.{name}'s state has {len(template)} parts, not 1")
    else:
        items = _optax_items(owner, name, optax_state, len(template))
    return ChainState(
        tuple(
            _mirror_from(owner, name, part, item, f"states[{i}]", hyperparams)
            for i, (part, item) in enumerate(zip(template, items))
        )
    )


# ----------------------------------------------------------------------------
# optax.contrib's muon: a partition of the params into "muon" (the matrices)
# and "adam" (the rest).  optax keeps each group's state whole-tree, as
# MaskedState(inner_state=(part, ...)) with MaskedNode() at the other group's
# leaves; gradtx keeps None there.  The "muon" group's first part is optax's
# MuonState(count, mu, ns_coeffs): gradtx's momentum (its b1_product is
# beta^t) with the Newton-Schulz coefficients, which gradtx holds in the
# recipe instead; gradtx's orthogonalize part, which keeps nothing, has no
# part in optax's chain.  optax masks the weight decay when given a mask.


def _is_masked_node(node) -> bool:
    return type(node).__name__ == "MaskedNode"


def _muon_ns_coeffs(hyperparams):
    """The coefficients optax's MuonState keeps: the last ns_steps rows of a (n, 3) table."""
    coeffs = jnp.asarray(hyperparams["ns_coeffs"])
    return coeffs[-hyperparams["ns_steps"] :] if coeffs.ndim == 2 else coeffs


def _muon_group_hyperparams(label, hyperparams):
    """The hyperparameters ``_fill`` reads for a group: its b1 (beta or adam_b1)."""
    b1 = hyperparams["beta"] if label == "muon" else hyperparams["adam_b1"]
    return {**hyperparams, "b1": b1}


def _muon_to_optax(owner, parts, hyperparams):
    if hyperparams.get("polar") is not None:
        raise ValueError(
            f"{owner}: gradtx.muon with a polar function is not covered: optax's muon "
            f"keeps Newton-Schulz coefficients in its state"
        )
    (partition,) = parts
    masked_node = _optax_type("MaskedNode")
    inner_states = {}
    for label, group in partition.states.items():
        h = _muon_group_hyperparams(label, hyperparams)
        if label == "muon":
            fields = {}
            for _, state in _leaf_states(group.states[0], ""):
                for field in state._fields:
                    fields.setdefault(field, getattr(state, field))
            first = _make(
                "MuonState",
                count=fields["count"],
                mu=fields["mu"],
                ns_coeffs=_muon_ns_coeffs(hyperparams),
            )
            rest = [_make("EmptyState") for _ in group.states[2:]]
            if hyperparams.get("weight_decay_mask") is not None:
                rest[1] = _make("MaskedState", inner_state=_make("EmptyState"))
            converted = (first, *rest)
        else:
            overrides = _WEIGHT_DECAY_AT_1({"mask": None}, len(group.states))
            converted = tuple(
                _optax_part(owner, "muon", part, f"{label}.states[{i}]", overrides.get(i), h)
                for i, part in enumerate(group.states)
            )
        converted = jax.tree.map(
            lambda x: masked_node() if x is None else x, converted, is_leaf=lambda x: x is None
        )
        inner_states[label] = _make("MaskedState", inner_state=converted)
    return _make("PartitionState", inner_states=inner_states)


def _muon_from_optax(owner, optax_state, template, hyperparams):
    (partition,) = template
    inner_states = _field(optax_state, "inner_states")
    if not isinstance(inner_states, Mapping) or set(inner_states) != set(partition.states):
        raise ValueError(
            f"{owner}: expected optax.contrib.muon's state, a PartitionState with groups "
            f"{sorted(partition.states)}; was it made by optax.contrib.muon?"
        )
    groups = {}
    for label, group in partition.states.items():
        h = _muon_group_hyperparams(label, hyperparams)
        masked = _field(inner_states[label], "inner_state")
        masked = inner_states[label] if masked is _MISSING else masked
        n = len(group.states) - (label == "muon")
        items = _optax_sequence(owner, "muon", masked, n, f"inner_states[{label!r}]")
        items = jax.tree.map(
            lambda x: None if _is_masked_node(x) else x, items, is_leaf=_is_masked_node
        )
        if label == "muon":
            first = items[0]
            coeffs = _field(first, "ns_coeffs")
            expected = _muon_ns_coeffs(hyperparams)
            if coeffs is _MISSING or not bool(jnp.array_equal(jnp.asarray(coeffs), expected)):
                raise ValueError(
                    f"{owner}: optax's MuonState keeps ns_coeffs {coeffs}, but gradtx.muon "
                    f"was built with ns_coeffs={hyperparams['ns_coeffs']!r}; build it with "
                    f"the coefficients optax ran with"
                )
            first = {f: _field(first, f) for f in _field_names(first) if f != "ns_coeffs"}
            # gradtx's orthogonalize keeps nothing and has no part in optax's chain.
            items = [first, _make("EmptyState"), *items[1:]]
        groups[label] = ChainState(
            tuple(
                _fill(owner, "muon", part, item, f"inner_states[{label!r}][{i}]", h)
                for i, (part, item) in enumerate(zip(group.states, items))
            )
        )
    return ChainState((type(partition)(groups),))
