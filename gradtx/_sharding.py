"""Placing optimizer state on a device mesh, ZeRO stage 1 included.

gradtx runs on JAX's own SPMD engine: a state is a pytree of arrays, so
``jax.jit`` with shardings, ``jax.shard_map`` and multi-process meshes
(``jax.distributed``) handle it like any other pytree.

One rule places the state of every transform, whichever way it is built
(eager ``init``, ``jax.jit(opt.init)``, or planned by ``state_shardings``).
A state leaf belongs to a parameter when it sits in a subtree shaped like
the params (Adam's ``mu``, a group's moments in ``partition`` or ``masked``,
where the other parameters' places hold ``None``); then

* a leaf shaped like its parameter (a moment) is sharded like it;
* a leaf shaped ``(k, *param.shape)`` (a history of k copies, L-BFGS's) is
  sharded like it along its trailing dimensions, its leading one unsplit;
* every other leaf (counters, Kronecker factors and other per-matrix
  statistics, random keys, ``flatten``'s packed buffers) is replicated over
  the params' mesh.

``GradientTransformation`` applies the rule to what every ``init`` returns
(``place_state``): eagerly, on params with a ``NamedSharding``, each leaf is
put where the rule says; under ``jax.jit`` each moment is tied to its
parameter with ``jax.experimental.shard_alike.shard_alike`` on ``Auto``
axes (XLA's sharding propagation then gives it the parameter's sharding,
and the compiled init still only writes constants: the tie reads nothing at
run time) or resharded to the parameter's spec on ``Explicit`` axes.  So a
plain ``jax.jit(opt.init)(params)`` on a mesh returns moments sharded like
their params and the rest replicated over the mesh; ``jax.jit(opt.init,
out_shardings=state_shardings(opt, params, mesh, axis=None))`` gives the
same placement, stated in advance.  ``jax.eval_shape(opt.init,
abstract_params)`` plans the state from ``jax.ShapeDtypeStruct`` params
without allocating it.

The update is elementwise per leaf for most transforms, so a jitted update
whose params, gradients and state share one sharding needs no
communication at all.

``state_shardings`` says where each state leaf should live.  With ``axis``
set, the leaves are split further over that mesh axis, which is ZeRO stage
1 (Rajbhandari et al. 2020): parameters stay replicated across the
data-parallel axis, each device keeps and updates only its slice of the
optimizer state, and XLA inserts the one all-gather of the updated
parameters that this needs.

Two things about JAX's engine that trip people up:

* On a mesh with ``AxisType.Explicit`` axes (``jax.make_mesh``'s default in
  jax 0.10), call ``jax.jit(opt.init)`` inside ``with jax.set_mesh(mesh):``;
  eager ``opt.init(params)`` needs nothing.
* Inside ``jax.shard_map`` with ``check_vma=True`` (the default), the
  gradient of a replicated parameter is already summed over the mesh axis.
  Per-device code that averages with ``jax.lax.pmean`` should first make its
  params device-varying, ``jax.lax.pcast(params, "data", to="varying")``, or
  run with ``check_vma=False`` (pmap-style); otherwise it averages a sum and
  steps with an n-times larger gradient.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.core import Tracer
from jax.experimental.shard_alike import shard_alike
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from ._tree import path_str
from ._typing import PyTree, TransformLike


def state_shardings(
    opt: TransformLike, params: PyTree, mesh: Mesh, axis: str | tuple[str, ...] | None = "data"
) -> PyTree:
    """Shardings for ``opt.init(params)``: each moment like its parameter, split over ``axis``.

    The placement starts from the rule of this module, which eager and jitted
    ``init`` follow too: a moment (a leaf shaped like its parameter, in a
    subtree shaped like the params, or like a group of them in ``partition``,
    ``masked`` or ``muon``) starts from its parameter's ``PartitionSpec``, a
    history ``(k, *shape)`` from that spec behind one unsplit dimension, and
    every other leaf (counters, Kronecker factors, per-matrix statistics)
    starts replicated.  With ``axis`` set, each leaf that
    does not use that axis yet is also split over it, along its largest
    dimension that is unsharded and divisible by the axis size; a leaf with
    no such dimension (a counter, an odd-sized bias) stays as it was.  With
    params replicated over ``axis`` this divides the state memory per device
    by the axis size (ZeRO stage 1).

    Args:
      opt: the gradient transformation whose state is placed.
      params: the parameters, as arrays or ``jax.ShapeDtypeStruct`` (only
        shapes, dtypes and shardings are read; nothing is allocated).  A
        leaf without a ``NamedSharding`` on ``mesh`` counts as replicated.
      mesh: the ``jax.sharding.Mesh`` to place the state on.
      axis: a mesh axis name (or a tuple of names) to split the state over,
        or ``None`` to shard the state exactly like the params.

    Returns:
      A pytree of ``NamedSharding`` shaped like the state, for
      ``jax.jit(..., in_shardings=..., out_shardings=...)`` or
      ``jax.device_put``.

    Example:
      >>> import jax, jax.numpy as jnp, gradtx
      >>> mesh = jax.make_mesh((1,), ("data",))
      >>> params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
      >>> opt = gradtx.adam(1e-3)
      >>> shardings = gradtx.state_shardings(opt, params, mesh, axis="data")
      >>> gradtx.tree_get(shardings, "mu")["w"].spec, gradtx.tree_get(shardings, "preconditioner.count").spec
      (P('data', None), P())
      >>> with jax.set_mesh(mesh):
      ...     state = jax.jit(opt.init, out_shardings=shardings)(params)

    Reference: Rajbhandari, Rasley, Ruwase, He, "ZeRO: Memory Optimizations
    Toward Training Trillion Parameter Models", SC 2020, arXiv:1910.02054.
    """
    owner = "state_shardings"
    if not (hasattr(opt, "init") and hasattr(opt, "update")):
        raise TypeError(
            f"{owner}: opt must be a gradient transformation (with init and "
            f"update), got {type(opt).__name__}"
        )
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{owner}: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    axes = _check_axis(owner, axis, mesh)

    param_leaves, param_def = jax.tree_util.tree_flatten_with_path(params)
    param_specs = [_param_spec(owner, path, p, mesh) for path, p in param_leaves]
    abstract_state = jax.eval_shape(opt.init, params)

    def place(leaf, index):
        if index is None:
            spec = PartitionSpec()
        else:
            extra = len(leaf.shape) - len(param_leaves[index][1].shape)
            spec = _leaf_spec(param_specs[index], extra)
        return NamedSharding(mesh, _split(spec, leaf.shape, axes, mesh))

    return _map_by_param(place, abstract_state, params)


def place_state(state: PyTree, params: PyTree) -> PyTree:
    """``state``, made by an ``init`` on ``params``, placed by the rule of this module.

    Eagerly, nothing moves unless some parameter has a ``NamedSharding``: then
    each moment is put with its parameter's sharding and every other leaf
    replicated over that parameter's mesh.  Under a trace on more than one
    device, each moment is
    tied to its parameter (``shard_alike`` on ``Auto`` axes, ``reshard`` on
    ``Explicit`` ones), and on ``Auto`` axes a state with no moment at all
    ties its first leaf to a replicated entry of the first parameter, so
    that the jitted init runs on the params' devices.  The values are
    unchanged.
    """
    param_leaves = jax.tree.leaves(params)
    if not param_leaves or not jax.tree.leaves(state):
        return state
    if any(isinstance(p, Tracer) for p in param_leaves):
        # One device: nothing to place, and the program stays the one init traced.
        if jax.device_count() == 1:
            return state
        return _tie_traced(state, params, param_leaves)
    mesh = next(
        (
            p.sharding.mesh
            for p in param_leaves
            if isinstance(getattr(p, "sharding", None), NamedSharding)
        ),
        None,
    )
    if mesh is None:
        return state

    def place(leaf, index):
        if not isinstance(leaf, jax.Array):
            return leaf
        target = NamedSharding(mesh, PartitionSpec())
        if index is not None:
            sharding = getattr(param_leaves[index], "sharding", None)
            if not isinstance(sharding, NamedSharding):
                return leaf
            extra = leaf.ndim - param_leaves[index].ndim
            target = NamedSharding(sharding.mesh, _leaf_spec(sharding.spec, extra))
        if leaf.sharding.is_equivalent_to(target, leaf.ndim):
            return leaf
        return jax.device_put(leaf, target)

    return _map_by_param(place, state, params)


def _tie_traced(state, params, param_leaves):
    """The traced half of ``place_state``."""
    tied = []

    def place(leaf, index):
        if index is None or not isinstance(leaf, (jax.Array, Tracer)):
            return leaf
        param = param_leaves[index]
        aval = jax.typeof(param)
        mesh = getattr(getattr(aval, "sharding", None), "mesh", None)
        types = set(getattr(mesh, "axis_types", ()))
        extra = leaf.ndim - aval.ndim
        if AxisType.Manual in types:  # inside shard_map: the state is per device
            return leaf
        if AxisType.Explicit in types:
            spec = _leaf_spec(aval.sharding.spec, extra)
            if _full(jax.typeof(leaf).sharding.spec, leaf.ndim) == _full(spec, leaf.ndim):
                return leaf
            tied.append(True)
            return jax.sharding.reshard(leaf, spec)
        tied.append(True)
        like = param if extra == 0 else jnp.broadcast_to(param, leaf.shape)
        return shard_alike(leaf, like)[0]

    state = _map_by_param(place, state, params)
    if tied:
        return state
    first = next((p for p in param_leaves if p.size and not _explicit_or_manual(p)), None)
    leaves, treedef = jax.tree.flatten(state)
    for i, leaf in enumerate(leaves):
        if first is not None and isinstance(leaf, (jax.Array, Tracer)):
            entry = jnp.broadcast_to(jnp.ravel(first)[0], leaf.shape)
            leaves[i] = shard_alike(leaf, entry)[0]
            break
    return treedef.unflatten(leaves)


def _explicit_or_manual(param):
    mesh = getattr(getattr(jax.typeof(param), "sharding", None), "mesh", None)
    return bool({AxisType.Explicit, AxisType.Manual} & set(getattr(mesh, "axis_types", ())))


def _map_by_param(place, state, params):
    """``place(leaf, i)`` on every leaf of ``state``, ``i`` the parameter it belongs to or None.

    A subtree of ``state`` lines up with the params when the params'
    structure is a prefix of it; places the subtree leaves empty (``None``,
    as in a group's state in ``partition`` or ``masked``) hold no leaves.
    In the deepest subtrees that line up, a leaf belongs to the parameter
    at whose place it stands when it is shaped like it, or ``(k, *shape)``.
    Any other leaf (a counter, a Kronecker factor, Adafactor's placeholder
    for a factored parameter) belongs to none.
    """
    param_leaves, param_def = jax.tree.flatten(params)
    shapes = [tuple(jnp.shape(p)) for p in param_leaves]

    def lined_up(node):
        try:
            parts = param_def.flatten_up_to(node)
        except (ValueError, TypeError, KeyError):
            return None
        owners = []
        for i, part in enumerate(parts):
            for leaf in jax.tree.leaves(part):
                got = tuple(getattr(leaf, "shape", (None,)))
                owners.append(i if got == shapes[i] or got[1:] == shapes[i] else None)
        return owners if any(o is not None for o in owners) else None

    def visit(node):
        """The owners of ``node``'s leaves, and whether some subtree lined up."""
        structure = jax.tree.structure(node)
        if structure.num_leaves == 0:
            return [], False
        if jax.tree_util.treedef_is_leaf(structure):
            owners = lined_up(node)
            return (owners, True) if owners else ([None], False)
        owners, found = [], False
        for child in jax.tree_util.tree_flatten(node, is_leaf=lambda x: x is not node)[0]:
            child_owners, child_found = visit(child)
            owners += child_owners
            found = found or child_found
        if not found:
            mine = lined_up(node)
            if mine is not None:
                return mine, True
        return owners, found

    leaves, state_def = jax.tree.flatten(state)
    owners, _ = visit(state)
    return state_def.unflatten([place(leaf, i) for leaf, i in zip(leaves, owners)])


def _leaf_spec(spec, extra):
    """The spec of a leaf with ``extra`` leading dimensions before its parameter's."""
    return PartitionSpec(*((None,) * extra + tuple(spec))) if extra else spec


def _full(spec, ndim):
    return tuple(spec) + (None,) * (ndim - len(spec))


def _check_axis(owner, axis, mesh):
    if axis is None:
        return ()
    axes = (axis,) if isinstance(axis, str) else tuple(axis)
    for name in axes:
        if name not in mesh.axis_names:
            raise ValueError(
                f"{owner}: axis {name!r} is not an axis of the mesh; its axes "
                f"are {tuple(mesh.axis_names)}"
            )
    return axes


def _param_spec(owner, path, leaf, mesh):
    """The PartitionSpec of a parameter on ``mesh``; replicated if it has none."""
    sharding = getattr(leaf, "sharding", None)
    if sharding is None or isinstance(sharding, SingleDeviceSharding):
        return PartitionSpec()
    if not isinstance(sharding, NamedSharding):
        raise TypeError(
            f"{owner}: parameter {path_str(path)} has a "
            f"{type(sharding).__name__}; expected a NamedSharding on the mesh "
            f"(or no sharding, read as replicated)"
        )
    on = sharding.mesh
    if tuple(on.axis_names) != tuple(mesh.axis_names) or tuple(on.axis_sizes) != tuple(
        mesh.axis_sizes
    ):
        raise ValueError(
            f"{owner}: parameter {path_str(path)} is sharded on a mesh with axes "
            f"{dict(zip(on.axis_names, on.axis_sizes))}, not on the given mesh "
            f"{dict(zip(mesh.axis_names, mesh.axis_sizes))}"
        )
    return sharding.spec


def _used_axes(spec):
    used = set()
    for entry in spec:
        if entry is None:
            continue
        used.update((entry,) if isinstance(entry, str) else entry)
    return used


def _split(spec, shape, axes, mesh):
    """``spec``, also split over ``axes`` along the largest free divisible dimension."""
    if not axes or not shape or _used_axes(spec) & set(axes):
        return spec
    size = math.prod(mesh.shape[name] for name in axes)
    entries = list(spec) + [None] * (len(shape) - len(spec))
    free = [
        d for d in range(len(shape)) if entries[d] is None and shape[d] % size == 0 and shape[d] > 0
    ]
    if not free:
        return spec
    dim = max(free, key=lambda d: shape[d])
    entries[dim] = axes[0] if len(axes) == 1 else axes
    return PartitionSpec(*entries)
