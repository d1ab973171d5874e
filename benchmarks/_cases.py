"""The parameter pytrees the benchmarks time (shapes only; values are arbitrary)."""

from __future__ import annotations

import numpy as np


def one_leaf():
    """One 4096 x 4096 matrix: 16.8M parameters."""
    return {"w": (4096, 4096)}


def transformer_like(layers: int = 12, width: int = 384, vocab: int = 20000, context: int = 1024):
    """A GPT-2-shaped model: 148 leaves, 29.3M parameters.

    Embeddings, then per layer: attention (fused qkv, output projection),
    MLP (4x width), two layer norms, each with weights and biases.
    """
    tree = {
        "embed": (vocab, width),
        "pos": (context, width),
        "ln_f": {"scale": (width,), "bias": (width,)},
    }
    for i in range(layers):
        tree[f"layer{i:02d}"] = {
            "ln1": {"scale": (width,), "bias": (width,)},
            "attn": {
                "qkv": (width, 3 * width),
                "qkv_bias": (3 * width,),
                "out": (width, width),
                "out_bias": (width,),
            },
            "ln2": {"scale": (width,), "bias": (width,)},
            "mlp": {
                "fc": (width, 4 * width),
                "fc_bias": (4 * width,),
                "proj": (4 * width, width),
                "proj_bias": (width,),
            },
        }
    return tree


def many_small(leaves: int = 2000, seed: int = 0):
    """``leaves`` small arrays of 200-1800 values (vectors and small matrices): ~2M parameters."""
    rng = np.random.default_rng(seed)
    tree = {}
    for i in range(leaves):
        size = int(rng.integers(200, 1800))
        if i % 2:
            rows = int(rng.integers(4, 17))
            shape = (rows, max(1, size // rows))
        else:
            shape = (size,)
        tree[f"p{i:05d}"] = shape
    return tree


def mixed(leaves: int = 1000, seed: int = 0):
    """``leaves`` arrays of every rank from 0 to 4, in turn: scalars, vectors, matrices,
    3-d and 4-d arrays of 200-1800 values with random, mostly distinct shapes."""
    rng = np.random.default_rng(seed)
    tree = {}
    for i in range(leaves):
        rank = i % 5
        size = int(rng.integers(200, 1800))
        shape = []
        for _ in range(rank - 1):
            d = int(rng.integers(2, 9))
            shape.append(d)
            size = max(1, size // d)
        if rank:
            shape.append(size)
        tree[f"p{i:05d}"] = tuple(shape)
    return tree


def billion():
    """One 32768 x 32768 matrix: 1.07B parameters (GPU only: 17 GB per float32 Adam copy)."""
    return {"w": (32768, 32768)}


CASES = {
    "one_leaf": one_leaf,
    "transformer": transformer_like,
    "many_small": many_small,
    "billion": billion,
}


# Per-leaf cases by leaf count (bench_per_leaf.py); not part of ``--case all``.
def uniform(leaves: int = 2000, seed: int = 0):
    """``leaves`` vectors of 1,024 values each (seed unused: every shape is the same)."""
    del seed
    return {f"p{i:05d}": (1024,) for i in range(leaves)}


PER_LEAF_CASES = {"mixed": mixed, "many_small": many_small, "uniform": uniform}

# Cases that ``--case all`` runs only on an accelerator (they do not fit this project's CPU
# machine: params, grads and two moments of 1.07B float32 values are 17 GB per implementation).
ACCELERATOR_ONLY = ("billion",)


def default_cases(backend: str) -> list[str]:
    """The cases ``--case all`` runs on ``backend`` ("cpu", "gpu", "tpu")."""
    return [c for c in CASES if backend != "cpu" or c not in ACCELERATOR_ONLY]


def count(shapes) -> tuple[int, int]:
    """(number of leaves, number of parameters) of a shapes pytree."""
    import jax

    leaves = jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple))
    return len(leaves), int(sum(np.prod(s) for s in leaves))


def arrays(shapes, dtype="float32", fill=None, seed=0):
    """Device arrays of the given shapes (random normal, or a constant ``fill``)."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)

    def make(shape):
        if fill is not None:
            return jnp.full(shape, fill, dtype)
        return jnp.asarray(rng.standard_normal(shape, dtype=np.float32), dtype)

    return jax.tree.map(make, shapes, is_leaf=lambda x: isinstance(x, tuple))
