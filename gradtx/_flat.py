"""Packed state: run a transform on one flat buffer per dtype instead of one array per leaf.

A model with thousands of small parameter arrays pays, in every step, for
thousands of small kernels and thousands of state buffers: the arithmetic is
cheap, the bookkeeping is not.  ``flatten(tx)`` packs the leaves of each
dtype into one flat buffer inside the compiled step, runs ``tx`` on those
few buffers, and unpacks the result back into the caller's pytree, so the
optimizer runs a handful of loops whatever the number of leaves.  The state
of ``tx`` is kept packed between steps.  The packing and unpacking are still
one slice or copy per leaf, so the step compiles as fast as a handful of
loops only when the caller keeps the params packed too (``pack``).

The caller's interface does not change: ``init(params)``, and
``update(updates, state, params)`` returning updates shaped like the params.
Inside, ``tx`` sees a ``Packed`` pytree: a node whose children are the flat
buffers, keyed by dtype name (``state.mu["float32"]``), that remembers how to
unpack itself.  A gradtx chain inside keeps both streams (the gradient still
reaches the preconditioners); masks given to gradtx transforms (``mask=`` of
``add_decayed_weights``) are packed the same way as the params.

What packing preserves: any transform that works element by element (all of
gradtx's momentum, second-moment, scaling and weight-decay transforms) gives
the same numbers packed or not, except that a second moment stored in
bfloat16 is rounded stochastically with draws that hash each element's
position, so packed and per-leaf runs agree in distribution there, not
element for element.  A transform that reduces over each leaf
separately (a per-leaf norm, a per-layer trust ratio, a factored second
moment of a matrix) would reduce over the whole buffer instead, so
``flatten`` refuses it, and every transform it cannot vouch for: it runs
only the transforms named in ``ELEMENTWISE``, and chains of them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._base import GradientTransformation, update_fn
from ._checks import check_float_leaves, check_transformation
from ._numerics import is_traced
from ._tree import check_same_structure
from ._typing import PyTree, TransformLike

DEFAULT_MAX_LEAF_SIZE = 65536


class Layout:
    """Where each leaf of a pytree lives among the packed buffers.

    Static (hashable) information only: the tree structure, each leaf's shape
    and dtype, and the entries of the packed tree.  Leaves of at most
    ``max_leaf_size`` elements are concatenated into one flat buffer per dtype
    (key: the dtype name); a larger leaf is an entry of its own, kept whole in
    its own shape (key: its path), since packing it would only add copies.
    """

    __slots__ = ("treedef", "paths", "shapes", "dtypes", "max_leaf_size", "keys", "entries", "_key")

    def __init__(self, treedef, paths, shapes, dtypes, max_leaf_size=DEFAULT_MAX_LEAF_SIZE):
        self.treedef = treedef
        self.paths = tuple(paths)
        self.shapes = tuple(tuple(int(d) for d in s) for s in shapes)
        self.dtypes = tuple(np.dtype(d) for d in dtypes)
        self.max_leaf_size = int(max_leaf_size)
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        by_dtype: dict = {}
        whole = []
        for i, (d, size) in enumerate(zip(self.dtypes, sizes)):
            if size > self.max_leaf_size:
                whole.append(i)
            else:
                by_dtype.setdefault(d, []).append(i)
        # entry: (key, dtype, leaf indices, offsets, sizes, total, packed?)
        entries = []
        for d in sorted(by_dtype, key=lambda d: d.name):
            index = tuple(by_dtype[d])
            sz = tuple(sizes[i] for i in index)
            offsets = tuple(
                int(o) for o in np.concatenate([[0], np.cumsum(sz)[:-1]]).astype(np.int64)
            )
            entries.append((d.name, d, index, offsets, sz, int(sum(sz)), True))
        for i in whole:
            entries.append((paths[i], self.dtypes[i], (i,), (0,), (sizes[i],), sizes[i], False))
        self.entries = tuple(entries)
        self.keys = tuple(e[0] for e in entries)
        self._key = (treedef, self.shapes, self.dtypes, self.max_leaf_size)

    @classmethod
    def of(cls, owner: str, tree, max_leaf_size=DEFAULT_MAX_LEAF_SIZE) -> Layout:
        check_float_leaves(owner, tree, "parameter")
        with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
        paths = [jax.tree_util.keystr(p) if p else "<root>" for p, _ in with_path]
        leaves = [x for _, x in with_path]
        return cls(
            treedef,
            paths,
            [jnp.shape(x) for x in leaves],
            [jnp.result_type(x) for x in leaves],
            max_leaf_size,
        )

    def __eq__(self, other):
        return isinstance(other, Layout) and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self):
        parts = [
            f"{d.name}[{total}] from {len(index)} leaves"
            if packed
            else f"{key}: {d.name}{list(self.shapes[index[0]])}"
            for key, d, index, _, _, total, packed in self.entries
        ]
        return "Layout(" + ", ".join(parts) + ")"

    def pack(self, tree) -> Packed:
        """The packed tree: one flat buffer per dtype, large leaves as they are."""
        leaves = self.treedef.flatten_up_to(tree)
        if not any(is_traced(x) for x in leaves):
            # Outside a trace: one batched transfer and a host concatenation, instead
            # of two dispatched device ops per leaf (25 s at 10,000 leaves on CPU).
            host = jax.device_get(leaves)
            buffers = []
            for _, d, index, _, _, _, packed in self.entries:
                parts = [np.ravel(np.asarray(host[i])).astype(d) for i in index]
                flat = parts[0] if len(parts) == 1 else np.concatenate(parts)
                buffers.append(jnp.asarray(flat if packed else flat.reshape(self.shapes[index[0]])))
            return Packed(self, tuple(buffers))
        buffers = []
        for _, d, index, _, _, _, packed in self.entries:
            if not packed:
                buffers.append(jnp.asarray(leaves[index[0]]).astype(d))
                continue
            parts = [jnp.ravel(jnp.asarray(leaves[i])).astype(d) for i in index]
            buffers.append(parts[0] if len(parts) == 1 else jnp.concatenate(parts))
        return Packed(self, tuple(buffers))

    def unpack(self, buffers, like=None):
        """The pytree the buffers hold; leaves take the dtypes of ``like`` if given."""
        leaves: list = [None] * len(self.shapes)
        for buf, (_, _, index, offsets, sizes, total, packed) in zip(buffers, self.entries):
            for i, start, size in zip(index, offsets, sizes):
                if not packed:
                    leaves[i] = buf
                    continue
                piece = buf if size == total else jax.lax.slice(buf, (start,), (start + size,))
                leaves[i] = piece.reshape(self.shapes[i])
        if like is not None:
            leaves = [x.astype(d) for x, d in zip(leaves, self.dtypes)]
        return self.treedef.unflatten(leaves)

    def pack_mask(self, mask_tree) -> Packed:
        """Pack a pytree of bools shaped like the leaves; uniform entries stay Python bools."""
        try:
            leaves = self.treedef.flatten_up_to(mask_tree)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"flatten: the mask does not match the params ({error}); the "
                f"mask must be a pytree of bools shaped like the params"
            ) from None
        buffers = []
        for _, _, index, _, sizes, _, packed in self.entries:
            values = [leaves[i] for i in index]
            if all(isinstance(v, (bool, np.bool_)) for v in values):
                flags = [bool(v) for v in values]
                if all(flags) or not any(flags):
                    buffers.append(flags[0] if flags else True)
                else:
                    buffers.append(np.repeat(np.asarray(flags), sizes))
            elif not packed:
                buffers.append(
                    jnp.broadcast_to(jnp.asarray(values[0], bool), self.shapes[index[0]])
                )
            else:
                parts = [
                    jnp.ravel(jnp.broadcast_to(jnp.asarray(v, bool), self.shapes[i]))
                    for v, i in zip(values, index)
                ]
                buffers.append(jnp.concatenate(parts) if len(parts) > 1 else parts[0])
        return Packed(self, tuple(buffers))


@jax.tree_util.register_pytree_with_keys_class
class Packed:
    """A pytree packed by ``flatten``: one flat buffer per dtype, keyed by dtype name.

    Leaves too large to pack are entries of their own, keyed by their path.
    ``packed["float32"]`` is a buffer; ``packed.unpack()`` rebuilds the tree.
    Its structure includes the layout, so a state packed for other params is
    told apart from this one by any structure check.
    """

    __slots__ = ("layout", "buffers")

    def __init__(self, layout: Layout, buffers: tuple):
        self.layout = layout
        self.buffers = buffers

    def tree_flatten(self):
        return self.buffers, self.layout

    def tree_flatten_with_keys(self):
        keys = [jax.tree_util.DictKey(k) for k in self.layout.keys]
        return tuple(zip(keys, self.buffers)), self.layout

    @classmethod
    def tree_unflatten(cls, layout, buffers):
        return cls(layout, tuple(buffers))

    def __getitem__(self, key):
        return self.buffers[self.layout.keys.index(key)]

    def keys(self):
        return self.layout.keys

    def unpack(self):
        """The pytree these buffers hold, shaped like the packed params."""
        return self.layout.unpack(self.buffers)

    def pack_mask(self, mask):
        """The mask for these params, packed: ``mask`` is None, a pytree of bools, or a
        function of the (unpacked) params returning one."""
        if mask is None:
            return None
        return self.layout.pack_mask(mask(self.unpack()) if callable(mask) else mask)

    def __repr__(self):
        inner = ", ".join(
            f"{k}: {getattr(b, 'shape', b)}" for k, b in zip(self.layout.keys, self.buffers)
        )
        return f"Packed({inner})"


def pack(tree: PyTree, *, max_leaf_size: int = DEFAULT_MAX_LEAF_SIZE) -> Packed:
    """Pack a pytree of arrays into one flat buffer per dtype (large leaves kept whole).

    Optional: ``flatten`` packs and unpacks inside each step by itself.  A
    training loop that keeps its parameters packed (and calls
    ``params.unpack()`` inside the loss) also skips that copy and hands the
    optimizer one array per dtype instead of one per leaf, which is what
    makes a step over thousands of leaves cheap to dispatch and to compile.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> packed = gradtx.pack({"w": jnp.ones((2, 2)), "b": jnp.zeros(3)})
      >>> packed["float32"].shape, packed.unpack()["w"].shape
      ((7,), (2, 2))
    """
    if isinstance(tree, Packed):
        return tree
    return Layout.of("pack", tree, max_leaf_size).pack(tree)


# What flatten can run exactly, by the name a transform is built with: each
# output element depends only on the same element of its inputs and on
# scalars (counts, schedules), or on a reduction over all leaves together
# (a global norm, an all-finite test), which packing keeps.  Wrappers listed
# here are exact when the transforms they hold are; a combinator (``chain``,
# ``precondition``: every optimizer recipe) when each of its children is.
ELEMENTWISE = frozenset(
    {
        "identity",
        "scale",
        "scale_by_learning_rate",
        "scale_by_schedule",
        "scale_by_momentum",
        "trace",
        "scale_by_nadam_momentum",
        "bias_correction",
        "scale_by_rms",
        "scale_by_centered_rms",
        "scale_by_rss",
        "scale_by_adadelta",
        "scale_by_max_rms",
        "scale_by_rectified_rms",
        "add_decayed_weights",
        "clip",
        "set_to_zero",
        "clip_by_global_norm",
        "apply_if_finite",
        "accumulate_gradients",
        "lookahead",
        "lookahead_in_state",
        "ema_params",
        "flatten",
        "ema",
        "scale_by_sign",
        "scale_by_lion",
        "scale_by_belief",
        "scale_by_infinity_norm",
        "scale_by_adan",
        "scale_by_yogi",
        "scale_by_rprop",
        "scale_by_optimistic_gradient",
        "scale_by_ademamix",
        "scale_by_simplified_ademamix",
        "scale_by_adopt",
        "scale_by_madgrad",
        "scale_by_cocob",
        "schedule_free",
        "diloco",
        "clip_spikes",
        "reset_moments",
    }
)

# Transforms whose numbers depend on where one leaf ends, and why.
PER_LEAF = {
    "clip_by_leaf_norm": "it takes the norm of each leaf",
    "clip_by_block_rms": "it takes the RMS of each leaf",
    "adaptive_grad_clip": "it takes the norms of each leaf",
    "zero_nans": "it records a flag per leaf",
    "masked": "its mask chooses leaf by leaf",
    "freeze": "its mask chooses leaf by leaf",
    "partition": "its labels choose leaf by leaf",
    "scale_by_trust_ratio": "it takes the norms of each leaf",
    "scale_by_param_block_rms": "it takes the RMS of each leaf",
    "scale_by_block_rms": "it takes the mean square of each leaf",
    "scale_by_novograd": "it takes the norm of each leaf",
    "scale_by_factored_rms": "it factors each matrix by its rows and columns",
    "scale_by_sm3": "it keeps one accumulator per axis of each leaf",
    "add_noise": "it draws each leaf's noise from its own key",
    "orthogonalize": "it orthogonalizes each matrix",
    "scale_by_shape": "it scales by each leaf's shape",
    "scale_by_soap": "it preconditions each matrix by its own factors",
    "scale_by_shampoo": "it preconditions each matrix by its own factors",
    "scale_by_psgd_kron": "it preconditions each matrix by its own factors",
    "cautious": "it rescales each leaf by the share of its entries kept",
    "graft": "it takes the norms of each leaf",
    "quantized_state": "it quantizes each leaf in blocks of that leaf's own entries",
}


def _inexact_reason(tx):
    """Why flatten cannot run ``tx`` exactly (naming the transform), or None if it can."""
    if not isinstance(tx, GradientTransformation):
        return (
            f"{type(tx).__name__} is not a gradtx transform, so flatten cannot tell whether "
            f"it works element by element"
        )
    if tx.name in PER_LEAF:
        return f"{tx.name} cannot run on packed buffers: {PER_LEAF[tx.name]}"
    if not (tx.combinator or tx.name in ELEMENTWISE):
        return (
            f"flatten does not know whether {tx.name} works element by element (it is not "
            f"in gradtx._flat.ELEMENTWISE)"
        )
    for inner in tx.children:
        reason = _inexact_reason(inner)
        if reason is not None:
            return reason
    return None


def _packed_layouts(state):
    nodes = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, Packed))
    return [n.layout for n in nodes if isinstance(n, Packed)]


def flatten(
    tx: TransformLike,
    *,
    max_leaf_size: int = DEFAULT_MAX_LEAF_SIZE,
    assume_elementwise: bool = False,
) -> GradientTransformation:
    """Run ``tx`` on one flat buffer per dtype: the same numbers, a few kernels instead of thousands.

    u_t = unpack(tx(pack(g_t))): the leaves of each dtype are concatenated
    into one vector inside the step, ``tx`` updates those vectors, and its
    output is cut back into the caller's pytree.  The state of ``tx`` stays
    packed between steps (``state.mu["float32"]``).  Use it for models with
    many small parameter arrays, where per-leaf work dominates a step; for a
    few large arrays it only adds copies.

    Params kept packed by the caller (``gradtx.pack``) pass straight through.

    Exact for transforms that work element by element (every gradtx
    optimizer) or reduce over all leaves together (``clip_by_global_norm``).
    Anything else is refused when ``flatten`` is built, with an error naming
    the transform: a per-leaf reduction (``clip_by_leaf_norm``,
    ``clip_by_block_rms``, ``adaptive_grad_clip``) would reduce over a whole
    buffer, and a mask or labels (``masked``, ``partition``, ``freeze``)
    choose leaf by leaf; put ``flatten`` inside those instead
    (``masked(flatten(inner), mask)``).  A transform ``flatten`` cannot
    inspect (optax's, or one made by ``inject_hyperparams``) is refused
    unless ``assume_elementwise=True``.  ``None`` leaves are skipped, as
    everywhere in gradtx.

    Compile time: only params kept packed by the caller (``pack``) make the
    compiled step a few loops.  Given unpacked params, the step still slices
    and concatenates every leaf, and compiles slower than the per-leaf step
    (1,000 leaves of 1,024 elements: 3 to 5 times as long on CPU).

    Args:
      tx: the transform to run packed.
      max_leaf_size: leaves of at most this many elements are packed; larger
        leaves stay whole (they already make one efficient loop each, and
        packing them would only add copies).
      assume_elementwise: skip the check above, for a transform ``flatten``
        cannot inspect but that you know works element by element or over
        all leaves together.

    Returns:
      A transform with the interface and numbers of ``tx`` whose state holds
      ``Packed`` buffers.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.flatten(gradtx.adam(0.1))
      >>> params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
      >>> state = opt.init(params)
      >>> gradtx.tree_get(state, "mu")
      Packed(float32: (3,))
      >>> updates, state = opt.update({"w": jnp.array([3.0, -0.5]), "b": jnp.array(1.0)},
      ...                             state, params)
      >>> gradtx.apply_updates(params, updates)["w"]
      Array([ 0.9, -1.9], dtype=float32)
    """
    check_transformation("flatten", "tx", tx)
    if not assume_elementwise:
        reason = _inexact_reason(tx)
        if reason is not None:
            raise ValueError(
                f"flatten: {reason}; packed, it would give other numbers than "
                f"per leaf. Keep it outside flatten, or pass "
                f"assume_elementwise=True if it works element by element"
            )
    inner = update_fn(tx)

    def init(params):
        if not isinstance(params, Packed):
            params = Layout.of("flatten", params, max_leaf_size).pack(params)
        return tx.init(params)

    def update(updates, state, params=None, **extra):
        if isinstance(updates, Packed):  # already packed by the caller: nothing to do
            return inner(updates, state, params, **extra)
        layout = Layout.of("flatten", updates, max_leaf_size)
        for stored in _packed_layouts(state)[:1]:
            if stored != layout:
                raise ValueError(
                    f"flatten: the state was packed for {stored!r} but the updates "
                    f"pack to {layout!r}; was the state made by init on other "
                    f"params (different shapes, dtypes or structure)?"
                )
        packed_u = layout.pack(updates)
        packed_p = None
        if params is not None:
            check_same_structure("flatten", updates, params, "updates", "params")
            packed_p = layout.pack(params)
        out, state = inner(packed_u, state, packed_p, **extra)
        return layout.unpack(out.buffers, like=updates), state

    if not isinstance(max_leaf_size, int) or max_leaf_size < 0:
        raise ValueError(f"flatten: max_leaf_size must be an integer >= 0, got {max_leaf_size!r}")
    return GradientTransformation(
        init,
        update,
        name="flatten",
        children=(tx,),
        hyperparams={"inner": tx, "max_leaf_size": max_leaf_size},
    )
