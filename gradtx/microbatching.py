"""Microbatching: evaluate a function on a large batch one slice at a time.

``microbatch(f, argnums, k)`` returns a function that splits the batch axis of
the chosen arguments into n = B / k microbatches of k rows, evaluates f on
each in turn inside a ``lax.fori_loop`` (so only one microbatch's
activations are alive at a time) and combines the n results with an
accumulator: their sum, their mean, a running mean, or their concatenation
back into batch order.  ``micro_vmap`` is ``jax.vmap`` run that way, and
``micro_grad`` gives per-example gradients, transformed (clipped, squared,
...) before they are accumulated.

Microbatch i holds the rows i, i + n, i + 2n, ... of the batch (a
column-major split of the batch axis), so a batch axis sharded over devices
stays sharded inside every microbatch.  A function that is a sum or a mean
over its rows gives the same result microbatched; one that mixes rows
(``x[:-1] @ x[1:]``) does not.

These are optax's ``optax.microbatching`` names, keywords and defaults, with
optax's results.
"""

from __future__ import annotations

import dataclasses
import enum
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._numerics import is_traced

__all__ = [
    "AccumulationType",
    "Accumulator",
    "reshape_batch_axis",
    "microbatch",
    "micro_vmap",
    "micro_grad",
]


class AccumulationType(enum.Enum):
    """How the results y_0 .. y_{n-1} of the n microbatches are combined."""

    MEAN = enum.auto()
    """(1/n) * sum_i y_i, summed first and divided once (floating-point outputs only)."""
    SUM = enum.auto()
    """sum_i y_i."""
    RUNNING_MEAN = enum.auto()
    """m_i = m_{i-1} * i/(i+1) + y_i / (i+1): the mean of the microbatches actually run
    (``num_real_microbatches`` of them when given; floating-point outputs only)."""
    CONCAT = enum.auto()
    """The y_i joined along their leading axis, rows back in batch order."""


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """A rule that combines per-microbatch results: c_0 = init(y), c_{i+1} = update(c_i, y_i, i),
    result = finalize(c_n).

    ``microbatch`` runs ``init`` once on the shapes and dtypes of one result
    (a pytree of ``jax.ShapeDtypeStruct``), ``update`` once per microbatch
    inside a ``lax.fori_loop`` (so the carry must keep its shapes and dtypes),
    and ``finalize`` on the last carry.  ``aggregate`` reduces a result whose
    leaves carry a leading batch axis to what the rule would give for those
    rows (``micro_vmap`` applies it inside each microbatch).

    An Accumulator placed at a node of the ``accumulator`` tree receives that
    node's whole subtree of the result.

    Attributes:
      init: shapes/dtypes of one result -> initial carry.
      update: (carry, result of microbatch i, i) -> new carry.
      finalize: last carry -> returned value.
      aggregate: result with a leading batch axis -> reduced result.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gradtx import microbatching as mb
      >>> largest = mb.Accumulator(
      ...     init=lambda s: jnp.full(s.shape, -jnp.inf, s.dtype),
      ...     update=lambda c, y, i: jnp.maximum(c, y),
      ...     finalize=lambda c: c,
      ...     aggregate=lambda y: jnp.max(y, axis=0),
      ... )
      >>> mb.microbatch(jnp.max, 0, 2, largest)(jnp.array([3.0, 1.0, 4.0, 1.0]))
      Array(4., dtype=float32)
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]
    finalize: Callable[[Any], Any]
    aggregate: Callable[[Any], Any]


AccumulatorSpec = Accumulator | AccumulationType | Any  # or a pytree of these (a prefix)


# ----------------------------------------------------------------------------
# The batch split


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _explicit_sharding(x) -> jax.sharding.NamedSharding | None:
    """x's sharding where x lives on a mesh whose axes are all explicit, else None."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    if not isinstance(sharding, jax.sharding.NamedSharding):
        return None
    mesh = sharding.mesh
    if mesh.empty or not mesh.are_all_axes_explicit:
        return None
    return sharding


def _split_sharding(owner: str, x, axis: int, microbatch_size: int):
    """The out_sharding that keeps an explicitly sharded batch axis on the rows of each
    microbatch (None when ``x`` is not on a mesh with explicit axes)."""
    sharding = _explicit_sharding(x)
    if sharding is None:
        return None
    spec = tuple(sharding.spec) + (None,) * (x.ndim - len(sharding.spec))
    shards = x.shape[axis] // sharding.shard_shape(x.shape)[axis]
    if microbatch_size % shards:
        raise ValueError(
            f"{owner}: the batch axis is split over {shards} devices, which must divide "
            f"microbatch_size={microbatch_size} (every microbatch keeps the batch sharding)"
        )
    new_spec = spec[:axis] + (None, spec[axis]) + spec[axis + 1 :]
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*new_spec))


def _split_leaf(owner: str, x, microbatch_size: int, axis: int):
    """(..., B, ...) -> (..., n, k, ...) with [..., i, j, ...] = [..., i + n*j, ...]."""
    shape = tuple(x.shape)
    rows = shape[axis]
    if rows % microbatch_size:
        raise ValueError(
            f"{owner}: batch size {rows} is not divisible by microbatch_size="
            f"{microbatch_size}; pad or trim the batch to a multiple of it"
        )
    new_shape = shape[:axis] + (rows // microbatch_size, microbatch_size) + shape[axis + 1 :]
    out_sharding = _split_sharding(owner, x, axis, microbatch_size)
    # Column-major: the row index b becomes (b mod n, b div n).
    return jnp.reshape(x, new_shape, order="F", out_sharding=out_sharding)


def _normalize_axis(owner: str, where: str, x, axis: int) -> int:
    ndim = jnp.ndim(x)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{owner}: {where} has shape {jnp.shape(x)}, with no axis {axis} to split "
            f"into microbatches; check in_axes"
        )
    return axis % ndim


def reshape_batch_axis(tree: Any, microbatch_size: int, axis: int = 0) -> Any:
    """Split a batch axis into microbatches: x[..., B, ...] -> x[..., n, k, ...] with
    x'[..., i, j, ...] = x[..., i + n*j, ...], n = B / k.

    Axis ``axis`` of every leaf becomes two axes at the same place: the
    microbatch index i (n of them) and the row within it j (k of them).
    Microbatch i holds rows i, i + n, i + 2n, ..., so where the batch axis is
    sharded (explicitly) over devices, the k rows keep that sharding and the
    n axis is replicated.

    Args:
      tree: a pytree of arrays, each with a batch axis of the same size B.
      microbatch_size: k, the rows per microbatch; must divide B.
      axis: the batch axis (negative counts from the end).

    Returns:
      The pytree with each leaf's batch axis split in two.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradtx.microbatching import reshape_batch_axis
      >>> reshape_batch_axis(jnp.arange(6), 3)
      Array([[0, 2, 4],
             [1, 3, 5]], dtype=int32)
    """
    owner = "reshape_batch_axis"
    if not _is_int(microbatch_size) or microbatch_size < 1:
        raise ValueError(f"{owner}: microbatch_size must be an int >= 1, got {microbatch_size!r}")
    if not _is_int(axis):
        raise ValueError(f"{owner}: axis must be an int, got {axis!r}")

    def split(path, x):
        where = f"leaf {jax.tree_util.keystr(path) or '(root)'}"
        return _split_leaf(owner, x, microbatch_size, _normalize_axis(owner, where, x, axis))

    return jax.tree_util.tree_map_with_path(split, tree)


# ----------------------------------------------------------------------------
# The accumulators


def _floating(owner: str, kind: str):
    def check(shape_dtype):
        if not jnp.issubdtype(shape_dtype.dtype, jnp.floating):
            raise ValueError(
                f"{owner}: accumulator {kind} averages, so it needs floating-point outputs; "
                f"fun returned {shape_dtype.dtype} of shape {tuple(shape_dtype.shape)} "
                f"(use SUM, or cast that output to a float)"
            )
        return jnp.zeros_like(shape_dtype)

    return check


def _leafwise(init, update, finalize, aggregate) -> Accumulator:
    """An Accumulator over a pytree from the rule for one array."""
    return Accumulator(
        init=lambda value: jax.tree.map(init, value),
        update=lambda carry, value, i: jax.tree.map(lambda c, y: update(c, y, i), carry, value),
        finalize=lambda carry: jax.tree.map(finalize, carry),
        aggregate=lambda values: jax.tree.map(aggregate, values),
    )


def _add(carry, value, i):
    return carry + value


def _same(x):
    return x


def _running_mean_update(carry, value, i):
    w = i / (i + 1)  # weight of the i results already averaged
    return carry * w + value * (1 - w)


def _merge_leading(carry):
    """(n, k, ...) -> (n*k, ...), undoing the column-major split of the batch."""
    sharding = _explicit_sharding(carry)
    out_sharding = None
    if sharding is not None:
        out_sharding = jax.sharding.NamedSharding(
            sharding.mesh, jax.sharding.PartitionSpec(*tuple(sharding.spec)[1:])
        )
    return jnp.reshape(carry, (-1, *carry.shape[2:]), order="F", out_sharding=out_sharding)


def _builtin(kind: AccumulationType, num_microbatches: int, owner: str) -> Accumulator:
    n = num_microbatches
    if kind in (AccumulationType.MEAN, AccumulationType.CONCAT) and n <= 0:
        raise ValueError(
            f"{owner}: accumulator {kind.name} needs at least one microbatch, but the batch "
            f"is empty (0 rows)"
        )
    if kind is AccumulationType.SUM:
        return _leafwise(jnp.zeros_like, _add, _same, lambda y: jnp.sum(y, axis=0))
    if kind is AccumulationType.MEAN:
        return _leafwise(
            _floating(owner, kind.name), _add, lambda c: c / n, lambda y: jnp.mean(y, axis=0)
        )
    if kind is AccumulationType.RUNNING_MEAN:
        return _leafwise(
            _floating(owner, kind.name),
            _running_mean_update,
            _same,
            lambda y: jnp.mean(y, axis=0),
        )

    def stack(shape_dtype):
        return jnp.broadcast_to(jnp.zeros_like(shape_dtype), (n, *shape_dtype.shape))

    return _leafwise(stack, lambda c, y, i: c.at[i].set(y), _merge_leading, _same)


def _check_accumulator(owner: str, accumulator) -> None:
    for leaf in jax.tree.leaves(accumulator):
        if not isinstance(leaf, (Accumulator, AccumulationType)):
            raise ValueError(
                f"{owner}: accumulator must be an Accumulator, an AccumulationType or a "
                f"pytree of them, got a leaf {leaf!r}"
            )


def _resolve(owner: str, accumulator, num_microbatches: int) -> Accumulator:
    """One Accumulator for the whole result, from a pytree prefix of rules."""
    treedef = jax.tree.structure(accumulator)
    rules = [
        leaf if isinstance(leaf, Accumulator) else _builtin(leaf, num_microbatches, owner)
        for leaf in jax.tree.leaves(accumulator)
    ]

    def parts(tree, what):
        try:
            return treedef.flatten_up_to(tree)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"{owner}: the accumulator tree {treedef} is not a prefix of the structure "
                f"of {what} {jax.tree.structure(tree)}; give one AccumulationType, or a "
                f"pytree of them shaped like fun's output"
            ) from error

    def each(method, tree, what, *extra):
        return treedef.unflatten(
            [getattr(r, method)(t, *extra) for r, t in zip(rules, parts(tree, what))]
        )

    def update(carry, value, i):
        pairs = zip(rules, parts(carry, "the carry"), parts(value, "fun's output"))
        return treedef.unflatten([r.update(c, y, i) for r, c, y in pairs])

    return Accumulator(
        init=lambda value: each("init", value, "fun's output"),
        update=update,
        finalize=lambda carry: each("finalize", carry, "the carry"),
        aggregate=lambda values: each("aggregate", values, "fun's output"),
    )


# ----------------------------------------------------------------------------
# microbatch


def _as_tuple(value) -> tuple:
    if isinstance(value, (str, numbers.Integral)):
        return (value,)
    return tuple(value)


def _check_num_real(owner: str, num_real_microbatches) -> None:
    if num_real_microbatches is None or is_traced(num_real_microbatches):
        return
    if jnp.ndim(num_real_microbatches) != 0 or not jnp.issubdtype(
        jnp.result_type(num_real_microbatches), jnp.integer
    ):
        raise ValueError(
            f"{owner}: num_real_microbatches must be an integer scalar or None, "
            f"got {num_real_microbatches!r}"
        )
    if int(num_real_microbatches) < 0:
        raise ValueError(
            f"{owner}: num_real_microbatches must be >= 0, got {int(num_real_microbatches)}"
        )


def _microbatch(
    owner, fun, argnums, microbatch_size, accumulator, argnames, in_axes, num_real_microbatches
):
    if microbatch_size is None:
        return fun
    if not _is_int(microbatch_size) or microbatch_size < 1:
        raise ValueError(
            f"{owner}: microbatch_size must be an int >= 1 or None, got {microbatch_size!r}"
        )
    argnums = _as_tuple(argnums)
    argnames = _as_tuple(argnames)
    if not all(_is_int(i) for i in argnums):
        raise ValueError(f"{owner}: argnums must be an int or a sequence of ints, got {argnums}")
    if not all(isinstance(name, str) for name in argnames):
        raise ValueError(f"{owner}: argnames must be a str or a sequence of str, got {argnames!r}")
    count = len(argnums) + len(argnames)
    in_axes = (in_axes,) * count if _is_int(in_axes) else tuple(in_axes)
    if len(in_axes) != count or not all(_is_int(ax) for ax in in_axes):
        raise ValueError(
            f"{owner}: in_axes must be an int or a sequence of {count} ints, one per entry of "
            f"argnums + argnames {argnums + argnames}, got {in_axes!r}"
        )
    _check_accumulator(owner, accumulator)
    _check_num_real(owner, num_real_microbatches)

    def run(*args, **kwargs):
        args = list(args)
        batch = []  # (label, container, key, axis) of each batch argument
        for i, ax in zip(argnums, in_axes[: len(argnums)]):
            if not -len(args) <= i < len(args):
                raise TypeError(
                    f"{owner}: argnums names positional argument {i}, but the function "
                    f"was called with {len(args)} positional arguments"
                )
            batch.append((f"argument {i}", args, i, ax))
        for name, ax in zip(argnames, in_axes[len(argnums) :]):
            if name not in kwargs:
                raise TypeError(
                    f"{owner}: argnames names {name!r}, but the function was called "
                    f"without that keyword argument (keyword arguments: {sorted(kwargs)})"
                )
            batch.append((f"argument {name!r}", kwargs, name, ax))

        sizes = []  # (where, size)
        axes = []  # per batch argument, a pytree of normalized axes
        for label, container, key, ax in batch:

            def axis_of(path, x, label=label, ax=ax):
                where = f"{label}{jax.tree_util.keystr(path)}"
                axis = _normalize_axis(owner, where, x, ax)
                sizes.append((where, jnp.shape(x)[axis]))
                return axis

            axes.append(jax.tree_util.tree_map_with_path(axis_of, container[key]))
        if len({size for _, size in sizes}) > 1:
            listed = ", ".join(f"{where}: {size}" for where, size in sizes)
            raise ValueError(
                f"{owner}: the batch arguments must share one batch size, got {listed}"
            )
        if not sizes:
            raise ValueError(
                f"{owner}: no batch argument holds an array (argnums={argnums}, "
                f"argnames={argnames}); name at least one argument with a batch axis"
            )
        batch_size = sizes[0][1]
        if batch_size % microbatch_size:
            raise ValueError(
                f"{owner}: batch size {batch_size} is not divisible by microbatch_size="
                f"{microbatch_size}; pad or trim the batch to a multiple of it"
            )
        n = batch_size // microbatch_size
        if not (num_real_microbatches is None or is_traced(num_real_microbatches)):
            if int(num_real_microbatches) > n:
                raise ValueError(
                    f"{owner}: num_real_microbatches={int(num_real_microbatches)} exceeds the "
                    f"{n} microbatches of the batch ({batch_size} rows / microbatch_size="
                    f"{microbatch_size})"
                )
        rule = _resolve(owner, accumulator, n)

        for (_, container, key, _), tree_axes in zip(batch, axes):
            container[key] = jax.tree.map(
                lambda x, ax: _split_leaf(owner, x, microbatch_size, ax),
                container[key],
                tree_axes,
            )

        def evaluate(i):
            call_args, call_kwargs = list(args), dict(kwargs)
            for (_, container, key, _), tree_axes in zip(batch, axes):
                target = call_args if container is args else call_kwargs
                target[key] = jax.tree.map(
                    lambda x, ax: lax.dynamic_index_in_dim(x, i, ax, keepdims=False),
                    container[key],
                    tree_axes,
                )
            return fun(*call_args, **call_kwargs)

        steps = n if num_real_microbatches is None else num_real_microbatches
        carry = rule.init(jax.eval_shape(evaluate, 0))
        carry = lax.fori_loop(0, steps, lambda i, c: rule.update(c, evaluate(i), i), carry)
        return rule.finalize(carry)

    return run


def microbatch(
    fun: Callable[..., Any],
    argnums: int | Sequence[int],
    microbatch_size: int | None,
    accumulator: AccumulatorSpec = AccumulationType.SUM,
    *,
    argnames: str | Sequence[str] = (),
    in_axes: int | Sequence[int] = 0,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., Any]:
    """Evaluate f on a batch in microbatches: F(x) = A(f(x_0), ..., f(x_{n-1})), where x_i
    holds the rows i, i + n, ... of the batch and A is the accumulator.

    The returned function takes the same arguments as ``fun``.  It splits
    the batch axis of the arguments named by ``argnums`` and ``argnames``
    (every other argument is passed whole to each call) into n = B / k
    microbatches (``reshape_batch_axis``), evaluates ``fun`` on one at a time
    in a ``lax.fori_loop``, and combines the results: with SUM, F(x) =
    sum_i f(x_i), so for an f that sums over its rows F equals f on the full
    batch while holding only one microbatch's intermediates in memory.

    Args:
      fun: f, any function of arrays.
      argnums: index or indices of the positional arguments that carry a batch axis.
      microbatch_size: k, the rows per microbatch; it must divide the batch size B.
        None returns ``fun`` itself.
      accumulator: A, how the n results are combined: an ``AccumulationType``
        (SUM, MEAN, RUNNING_MEAN, CONCAT), an ``Accumulator``, or a pytree of
        them that is a prefix of f's output (one rule per subtree).
      argnames: name or names of keyword arguments that carry a batch axis.
      in_axes: the batch axis of each argument of ``argnums + argnames``, in
        that order; an int applies to all.
      num_real_microbatches: run only the first this many microbatches (may be
        a traced value, to vary the work without recompiling).  MEAN still
        divides by n; RUNNING_MEAN averages the ones run; CONCAT leaves zeros
        in the rows not run.

    Returns:
      A function with ``fun``'s signature returning the accumulated result.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradtx import microbatching as mb
      >>> fun = lambda x: (x + 1, jnp.sum(3 * x))
      >>> rules = (mb.AccumulationType.CONCAT, mb.AccumulationType.SUM)
      >>> mb.microbatch(fun, argnums=0, microbatch_size=2, accumulator=rules)(jnp.arange(4))
      (Array([1, 2, 3, 4], dtype=int32), Array(18, dtype=int32))

    Reference:
      optax's ``optax.microbatching.microbatch`` (same keywords, defaults and results).
    """
    owner = "microbatch"
    return _microbatch(
        owner, fun, argnums, microbatch_size, accumulator, argnames, in_axes, num_real_microbatches
    )


# ----------------------------------------------------------------------------
# micro_vmap and micro_grad


def micro_vmap(
    fun: Callable[..., Any],
    in_axes: int | Sequence[int | None] = 0,
    out_axes: Any = 0,
    *,
    microbatch_size: int | None = None,
    vmap_fn: Callable[..., Callable[..., Any]] = jax.vmap,
    accumulator: AccumulatorSpec = AccumulationType.CONCAT,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., Any]:
    """``jax.vmap`` in microbatches: F(x) = A(vmap(f)(x_0), ..., vmap(f)(x_{n-1})).

    With the default CONCAT, F(x) equals ``jax.vmap(f, in_axes)(x)`` while
    only k rows are mapped at a time; SUM, MEAN and RUNNING_MEAN reduce the
    mapped outputs over the batch instead (sum_b f(x_b), its mean), so the
    full per-row output is never held.  Keyword arguments are mapped along
    their axis 0, as ``jax.vmap`` does.

    Args:
      fun: f, the function to map.
      in_axes: the mapped axis of each positional argument (None: not mapped);
        an int maps every positional argument along that axis.
      out_axes: must be 0: outputs are stacked (or reduced) along axis 0.
      microbatch_size: k, the rows per microbatch (None: one vmap over the whole batch).
      vmap_fn: a function with ``jax.vmap``'s signature, used for each microbatch.
      accumulator: how the mapped outputs are combined over the batch; CONCAT
        (default) stacks them like ``jax.vmap``.  A pytree prefix of f's output
        picks one rule per subtree.
      num_real_microbatches: run only the first this many microbatches (see
        ``microbatch``).

    Returns:
      A function with ``fun``'s arguments, each mapped one carrying a batch axis.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradtx import microbatching as mb
      >>> mb.micro_vmap(lambda x: x**2, microbatch_size=2)(jnp.arange(6))
      Array([ 0,  1,  4,  9, 16, 25], dtype=int32)

    Reference: optax's ``optax.microbatching.micro_vmap`` (same keywords, defaults and results).
    """
    owner = "micro_vmap"
    return _micro_vmap(
        owner, fun, in_axes, out_axes, microbatch_size, vmap_fn, accumulator, num_real_microbatches
    )


def _micro_vmap(
    owner, fun, in_axes, out_axes, microbatch_size, vmap_fn, accumulator, num_real_microbatches
):
    if not (_is_int(out_axes) and out_axes == 0):
        raise NotImplementedError(
            f"{owner}: out_axes must be 0 (outputs are stacked or reduced along their axis 0), "
            f"got {out_axes!r}"
        )
    if not _is_int(in_axes):
        if in_axes is None or not all(ax is None or _is_int(ax) for ax in in_axes):
            raise ValueError(
                f"{owner}: in_axes must be an int or a sequence of ints and Nones "
                f"(one per positional argument), got {in_axes!r}"
            )
        in_axes = tuple(in_axes)
    _check_accumulator(owner, accumulator)
    _check_num_real(owner, num_real_microbatches)

    def mapped(*args, kwargs):
        out = vmap_fn(fun, in_axes, out_axes)(*args, **kwargs)
        return _resolve(owner, accumulator, 1).aggregate(out)

    def run(*args, **kwargs):
        axes = (in_axes,) * len(args) if _is_int(in_axes) else in_axes
        batched = [(i, ax) for i, ax in enumerate(axes) if ax is not None]
        f = _microbatch(
            owner,
            mapped,
            tuple(i for i, _ in batched),
            microbatch_size,
            accumulator,
            ("kwargs",),
            tuple(ax for _, ax in batched) + (0,),
            num_real_microbatches,
        )
        return f(*args, kwargs=kwargs)

    return run


class MicroGradAux(NamedTuple):
    """The per-example outputs of ``micro_grad``: values: f(theta, x_b); metrics: m(g_b);
    aux: f's auxiliary output (None without has_aux)."""

    values: Any
    metrics: Any
    aux: Any


def micro_grad(
    fun: Callable[..., Any],
    has_aux: bool = False,
    argnums: int | Sequence[int] = 0,
    *,
    batch_argnums: int | Sequence[int] = 1,
    keep_batch_dim: bool = True,
    microbatch_size: int | None = None,
    accumulator: AccumulatorSpec = AccumulationType.SUM,
    transform_fn: Callable[[Any], Any] = lambda x: x,
    metrics_fn: Callable[[Any], Any] = lambda x: None,
    num_real_microbatches: int | jax.Array | None = None,
) -> Callable[..., tuple[Any, MicroGradAux]]:
    """Accumulated transformed per-example gradients: G = A_b T(g_b), g_b = grad_theta f(theta,
    x_b), one example x_b at a time in microbatches of k.

    Each example's gradient g_b is computed separately (``jax.vmap`` of
    ``jax.value_and_grad`` within a microbatch of k examples), transformed by
    T (clip it, square it, ...) and accumulated with A (SUM by default):
    per-example clipping for DP-SGD, or gradient moments, on batches too large
    for a single vmap.  The loss value, m(g_b) and f's aux are returned per
    example.

    Args:
      fun: f(theta, x, ...), a scalar loss.
      has_aux: whether f returns (loss, aux).
      argnums: index or indices of the arguments to differentiate (theta).
      batch_argnums: index or indices of the arguments with a batch axis 0 (x).
      keep_batch_dim: pass each example to f with a batch axis of size 1 (True)
        or without it (False).
      microbatch_size: k, the examples per microbatch (None: all at once).
      accumulator: A, how the T(g_b) are combined (a pytree prefix of T's output).
      transform_fn: T, applied to each example's gradient.
      metrics_fn: m, applied to each example's gradient (before T); returned
        per example, so keep it small (a norm).
      num_real_microbatches: run only the first this many microbatches (see
        ``microbatch``).

    Returns:
      A function of f's arguments returning ``(G, aux)`` with ``aux`` a
      ``MicroGradAux(values, metrics, aux)`` of per-example outputs.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradtx import microbatching as mb
      >>> loss = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
      >>> grad_fn = mb.micro_grad(loss, batch_argnums=(1, 2), microbatch_size=2,
      ...                         transform_fn=lambda g: jnp.clip(g, -1.0, 1.0))
      >>> g, aux = grad_fn(jnp.zeros(1), jnp.ones((4, 1)), jnp.array([0.0, 0.5, 2.0, 3.0]))
      >>> g, aux.values
      (Array([-2.5], dtype=float32), Array([0.   , 0.125, 2.   , 4.5  ], dtype=float32))

    Reference:
      optax's ``optax.microbatching.micro_grad`` (same keywords, defaults and results);
      per-example gradient transforms as in Abadi et al., "Deep Learning with
      Differential Privacy", 2016 (arXiv:1607.00133).
    """
    owner = "micro_grad"
    batch_argnums = _as_tuple(batch_argnums)
    if not batch_argnums or not all(_is_int(i) and i >= 0 for i in batch_argnums):
        raise ValueError(
            f"{owner}: batch_argnums must be a non-negative int or a non-empty sequence of "
            f"them, got {batch_argnums!r}"
        )

    def with_aux(*args, **kwargs):
        return fun(*args, **kwargs) if has_aux else (fun(*args, **kwargs), None)

    value_and_grad = jax.value_and_grad(with_aux, argnums, has_aux=True)

    def per_example(*args, **kwargs):
        (value, aux), grad = value_and_grad(*args, **kwargs)
        return transform_fn(grad), MicroGradAux(value, metrics_fn(grad), aux)

    def run(*args, **kwargs):
        if max(batch_argnums) >= len(args):
            raise TypeError(
                f"{owner}: batch_argnums={batch_argnums} names positional argument "
                f"{max(batch_argnums)}, but the function was called with {len(args)} "
                f"positional arguments"
            )
        in_axes = [0 if i in batch_argnums else None for i in range(len(args))]
        if keep_batch_dim:
            args = [
                jax.tree.map(lambda x: jnp.expand_dims(x, 1), a) if i in batch_argnums else a
                for i, a in enumerate(args)
            ]
        f = _micro_vmap(
            owner,
            per_example,
            in_axes,
            0,
            microbatch_size,
            jax.vmap,
            (accumulator, AccumulationType.CONCAT),
            num_real_microbatches,
        )
        return f(*args, **kwargs)

    return run
