"""Placing optimizer state on a device mesh, ZeRO stage 1 included.

gradtx runs on JAX's own SPMD engine: a state is a pytree of arrays, so
``jax.jit`` with shardings, ``jax.shard_map`` and multi-process meshes
(``jax.distributed``) handle it like any other pytree.  Two facts make that
work:

* ``init`` builds every moment with ``jnp.zeros_like``, so eagerly, on
  sharded params, each moment is sharded like its parameter (nothing is
  gathered onto one device), and ``jax.eval_shape(opt.init,
  abstract_params)`` plans the state from ``jax.ShapeDtypeStruct`` params
  without allocating it.  Under ``jax.jit`` init reads only the params'
  shapes, so on a mesh of ``Auto`` axes a plain ``jax.jit(opt.init)(params)``
  puts the whole state on one device (optax's init does the same); give jit
  the shardings: ``jax.jit(opt.init, out_shardings=state_shardings(opt,
  params, mesh, axis=None))(params)``.
* the update is elementwise per leaf, so a jitted update whose params,
  gradients and state share one sharding needs no communication at all.

``state_shardings`` says where each state leaf should live.  Moments mirror
their parameter's sharding; with ``axis`` they are split further over that
mesh axis, which is ZeRO stage 1 (Rajbhandari et al. 2020): parameters stay
replicated across the data-parallel axis, each device keeps and updates only
its slice of the optimizer state, and XLA inserts the one all-gather of the
updated parameters that this needs.

Two things about JAX's engine that trip people up:

* On a mesh with ``AxisType.Explicit`` axes (``jax.make_mesh``'s default in jax 0.10),
  call ``jax.jit(opt.init)`` inside ``with jax.set_mesh(mesh):``.  ``init``
  reads only the shapes of the params, so jit has no argument to take the
  devices from and fails with "Length of device assignment 1 is not equal to
  the size of the mesh".  Eager ``opt.init(params)`` needs nothing.
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
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from ._tree import path_str
from ._typing import PyTree, TransformLike


def state_shardings(
    opt: TransformLike, params: PyTree, mesh: Mesh, axis: str | tuple[str, ...] | None = "data"
) -> PyTree:
    """Shardings for ``opt.init(params)``: each moment like its parameter, split over ``axis``.

    The state of a gradtx optimizer holds moments shaped like the params (one
    subtree per moment, e.g. Adam's mu and nu) and scalar counters.  For a
    moment leaf the sharding starts from its parameter's ``PartitionSpec``;
    every other leaf starts replicated.  With ``axis`` set, each leaf that
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
    param_shapes = [tuple(p.shape) for _, p in param_leaves]
    abstract_state = jax.eval_shape(opt.init, params)

    def mirrors_params(node):
        leaves, treedef = jax.tree.flatten(node)
        return (
            treedef == param_def
            and [tuple(getattr(x, "shape", ())) for x in leaves] == param_shapes
        )

    nodes, state_def = jax.tree.flatten(abstract_state, is_leaf=mirrors_params)
    placed = []
    for node in nodes:
        if mirrors_params(node):
            shardings = [
                NamedSharding(mesh, _split(spec, leaf.shape, axes, mesh))
                for spec, leaf in zip(param_specs, jax.tree.leaves(node))
            ]
            placed.append(param_def.unflatten(shardings))
        else:
            placed.append(NamedSharding(mesh, _split(PartitionSpec(), node.shape, axes, mesh)))
    return state_def.unflatten(placed)


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
