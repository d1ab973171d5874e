"""The composition laws: a transform means one thing wherever it stands.

* identity: ``identity()``, ``scale(1.0)`` and a clip that never fires,
  inserted at any position of any chain or recipe, change nothing, bit for bit;
* associativity: ``chain(chain(a, b), c) == chain(a, chain(b, c)) == chain(a, b, c)``;
* interchangeability with optax: ``optax.chain(a, b, c) == gradtx.chain(a, b, c)``
  for gradtx pieces, and optax pieces inside gradtx combinators behave as in optax;
* locality: a transform's output depends on its own input, state and params
  only: running each piece alone on the previous piece's output gives the chain's.

Runs are eager (op by op), so "equal" means equal bits.  The exhaustive check
over ordered triples of pieces is marked slow; a random sample of triples
(hypothesis) and every recipe of the shared table run in the quick tier.

Where a no-op goes in is what the identity law is about: what it stands between.
The exhaustive check puts each no-op at each position between each ordered pair
of pieces (and before or after each piece), not at each position of each triple:
the third piece, away from the no-op, is the locality law's business, which every
triple checks.  In a recipe, each position of each chain gets one no-op, the four
taking turns, so that every no-op stands in every recipe with at least four positions.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizers import IDS, OPTIMIZERS, typical

import gradtx

STEPS = 3
PARAMS = {
    "s": jnp.asarray(0.5),
    "v": jnp.linspace(-1.0, 2.0, 4),
    "m": jnp.arange(6.0).reshape(2, 3) / 7 - 0.3,
}


def _grads(k):
    return jax.tree.map(lambda p: jnp.cos((k + 1) * 3.0 * p + k) * (1.5 + k), PARAMS)


# The gradients of the STEPS steps, computed once: every run reads the same ones;
# so too the losses passed as ``value=``.
GRADS = [_grads(k) for k in range(STEPS)]
VALUES = [jnp.float32(1.0 + k) for k in range(STEPS)]


def _no_ops():
    return {
        "identity": gradtx.identity(),
        "scale(1.0)": gradtx.scale(1.0),
        "clip_by_global_norm(1e9)": gradtx.clip_by_global_norm(1e9),
        "clip(1e9)": gradtx.clip(1e9),
    }


# Pieces of every kind: rewrites, accumulators, preconditioners, the learning
# rate, decay that reads params, per-leaf reductions, and a combinator.
PIECES = {
    "scale(-0.5)": lambda: gradtx.scale(-0.5),
    "clip(0.8)": lambda: gradtx.clip(0.8),
    "clip_by_global_norm(1.0)": lambda: gradtx.clip_by_global_norm(1.0),
    "clip_by_leaf_norm(0.7)": lambda: gradtx.clip_by_leaf_norm(0.7),
    "scale_by_momentum(0.9)": lambda: gradtx.scale_by_momentum(0.9),
    "scale_by_momentum(0.8, ema, nesterov)": lambda: gradtx.scale_by_momentum(
        0.8, ema=True, nesterov=True
    ),
    "bias_correction(0.9)": lambda: gradtx.bias_correction(0.9),
    "scale_by_rms(0.9)": lambda: gradtx.scale_by_rms(0.9),
    "scale_by_rss()": lambda: gradtx.scale_by_rss(),
    "scale_by_adadelta(0.9, 1e-3)": lambda: gradtx.scale_by_adadelta(0.9, 1e-3),
    "add_decayed_weights(0.1)": lambda: gradtx.add_decayed_weights(0.1),
    "scale_by_learning_rate(schedule)": lambda: gradtx.scale_by_learning_rate(
        lambda t: 0.1 / (1.0 + t.astype(jnp.float32))
    ),
    "precondition(momentum, by=rms)": lambda: gradtx.precondition(
        gradtx.scale_by_momentum(0.9, ema=True),
        by=gradtx.scale_by_rms(0.99, 1e-3, eps_in_sqrt=False),
    ),
}
EXHAUSTIVE = [
    "scale(-0.5)",
    "clip_by_global_norm(1.0)",
    "scale_by_momentum(0.9)",
    "bias_correction(0.9)",
    "scale_by_rms(0.9)",
    "add_decayed_weights(0.1)",
    "scale_by_learning_rate(schedule)",
    "precondition(momentum, by=rms)",
]


def _run(tx):
    """The updates of STEPS eager steps, params moving, as bytes per leaf (a tuple per step).

    A loss is passed as ``value=`` (polyak_sgd needs one; the others ignore it).
    """
    params, state, out = PARAMS, tx.init(PARAMS), []
    for k in range(STEPS):
        updates, state = tx.update(GRADS[k], state, params, value=VALUES[k])
        params = gradtx.apply_updates(params, updates)
        out.append(tuple(np.asarray(u).tobytes() for u in jax.tree.leaves(updates)))
    return tuple(out)


def _run_pieces_alone(pieces):
    """Each piece run on its own, fed the previous piece's output: what locality predicts."""
    params = PARAMS
    states = [p.init(PARAMS) for p in pieces]
    out = []
    for k in range(STEPS):
        x = GRADS[k]
        for i, piece in enumerate(pieces):
            x, states[i] = piece.update(x, states[i], params)
        params = gradtx.apply_updates(params, x)
        out.append(tuple(np.asarray(u).tobytes() for u in jax.tree.leaves(x)))
    return tuple(out)


def _check_laws(names, no_op_positions=None):
    """All four laws for the chain of the named pieces; returns the number of checks.

    ``no_op_positions``: for each no-op, the positions it is inserted at (all by default).
    """
    make = [PIECES[n] for n in names]
    want = _run(gradtx.chain(*(m() for m in make)))
    checks = 0
    a, b, c = make
    for variant in (
        gradtx.chain(gradtx.chain(a(), b()), c()),
        gradtx.chain(a(), gradtx.chain(b(), c())),
    ):
        assert _run(variant) == want, ("associativity", names)
        checks += 1
    for i, no_op_name in enumerate(_no_ops()):
        positions = range(len(make) + 1) if no_op_positions is None else no_op_positions[i]
        for position in positions:
            parts = [m() for m in make]
            parts.insert(position, _no_ops()[no_op_name])
            assert _run(gradtx.chain(*parts)) == want, ("identity", no_op_name, position, names)
            checks += 1
    assert _run(optax.chain(*(m() for m in make))) == want, ("optax.chain", names)
    assert _run_pieces_alone([m() for m in make]) == want, ("locality", names)
    return checks + 2


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(sorted(PIECES)), min_size=3, max_size=3))
def test_chain_random_triple_obeys_composition_laws(names):
    _check_laws(names)


def _turn(indices, no_op):
    """The one position (of 4) where the no-op numbered ``no_op`` goes into this triple."""
    return (sum(indices) + no_op) % 4


def _placements(indices):
    """Where each no-op goes into this triple: (no-op, position, piece before, piece after)."""
    padded = (None, *(EXHAUSTIVE[i] for i in indices), None)
    return {
        (j, p, padded[p], padded[p + 1]) for j in range(len(_no_ops())) for p in [_turn(indices, j)]
    }


def test_no_op_rotation_puts_each_no_op_between_each_ordered_pair():
    # Each no-op goes in at each position, between each ordered pair of pieces
    # (after each piece at the start, before each at the end), over all triples.
    triples = itertools.product(range(len(EXHAUSTIVE)), repeat=3)
    placed = set().union(*(_placements(indices) for indices in triples))
    n, k = len(EXHAUSTIVE), len(_no_ops())
    assert len(placed) == k * (2 * n + 2 * n * n)


TRIPLE_PARTS = 4  # the ordered triples by first piece, in parts xdist can spread


@pytest.mark.slow
@pytest.mark.parametrize("part", range(TRIPLE_PARTS))
def test_chain_every_ordered_triple_obeys_composition_laws(part):
    triples = [
        indices
        for indices in itertools.product(range(len(EXHAUSTIVE)), repeat=3)
        if indices[0] % TRIPLE_PARTS == part
    ]
    checks = 0
    for indices in triples:
        names = [EXHAUSTIVE[i] for i in indices]
        turns = [[_turn(indices, j)] for j in range(len(_no_ops()))]
        checks += _check_laws(names, turns)
    print(f"\n{len(triples)} ordered triples, {checks} law checks")
    assert len(triples) == len(EXHAUSTIVE) ** 3 // TRIPLE_PARTS
    assert checks == len(triples) * (2 + len(_no_ops()) + 2)


# ----------------------------------------------------------------------------
# Every recipe: a no-op inserted at every position of every chain inside it.


def _with_no_op(tx, no_op):
    """Every variant of ``tx`` with ``no_op`` inserted at one position of one of its chains."""
    if tx.combinator == "chain":
        children = list(tx.children)
        for position in range(len(children) + 1):
            parts = children[:position] + [no_op] + children[position:]
            yield gradtx.chain(*parts, name=tx.name, hyperparams=tx.hyperparams)
        for i, child in enumerate(children):
            if isinstance(child, gradtx.GradientTransformation):
                for inner in _with_no_op(child, no_op):
                    parts = children[:i] + [inner] + children[i + 1 :]
                    yield gradtx.chain(*parts, name=tx.name, hyperparams=tx.hyperparams)
    elif tx.combinator == "precondition":
        direction, by = tx.children
        yield gradtx.precondition(gradtx.chain(no_op, direction), by=by)
        yield gradtx.precondition(gradtx.chain(direction, no_op), by=by)
        for inner in _with_no_op(direction, no_op):
            yield gradtx.precondition(inner, by=by)


# Recipes that are chains (every optimizer but wrappers such as cautious(...),
# whose inner recipe is a chain of its own and is covered by its own row).
CHAIN_ROWS = [row for row in OPTIMIZERS if typical(row).combinator == "chain"]


@functools.cache
def _recipe_run(name):
    """``_run`` of the row's recipe, once per row: both recipe tests below compare with it."""
    return _run(typical(OPTIMIZERS[IDS.index(name)]))


def test_most_recipes_are_chains():
    assert len(CHAIN_ROWS) >= len(OPTIMIZERS) - 3


@pytest.mark.parametrize("row", CHAIN_ROWS, ids=[row.name for row in CHAIN_ROWS])
def test_recipe_with_a_no_op_anywhere_is_bitwise_unchanged(row):
    opt = typical(row)
    want = _recipe_run(row.name)
    # Each no-op gives the same positions, in the same order; the i-th goes to no-op i mod 4.
    by_no_op = [list(_with_no_op(opt, no_op)) for no_op in _no_ops().values()]
    variants = [by_no_op[i % len(by_no_op)][i] for i in range(len(by_no_op[0]))]
    for variant in variants:
        assert _run(variant) == want, (row.name, repr(variant))
    assert len(variants) >= len(opt.children) + 1


# optax.chain forwards extra keywords only to optax's GradientTransformationExtraArgs,
# so inside it polyak_sgd's loss (value=) never reaches scale_by_polyak.
NO_EXTRA = [row for row in CHAIN_ROWS if row.name != "polyak_sgd"]


@pytest.mark.parametrize("row", NO_EXTRA, ids=[row.name for row in NO_EXTRA])
def test_recipe_children_in_optax_chain_compute_the_recipe(row):
    opt = typical(row)
    assert _run(optax.chain(*opt.children)) == _recipe_run(row.name)


# ----------------------------------------------------------------------------
# optax pieces inside gradtx combinators behave as inside optax's.


def _optax_run(tx):
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32 counts
        return _run(tx)


MASK = {"s": False, "v": True, "m": True}
LABELS = {"s": "slow", "v": "fast", "m": "fast"}
OPTAX_INSIDE = {
    "chain": (
        lambda: gradtx.chain(optax.clip(1.0), optax.trace(0.9), optax.scale(-0.1)),
        lambda: optax.chain(optax.clip(1.0), optax.trace(0.9), optax.scale(-0.1)),
    ),
    "masked": (
        lambda: gradtx.masked(optax.adam(0.1), MASK),
        lambda: optax.masked(optax.adam(0.1), MASK),
    ),
    "partition": (
        lambda: gradtx.partition({"fast": optax.adam(0.1), "slow": optax.sgd(0.01)}, LABELS),
        lambda: optax.partition({"fast": optax.adam(0.1), "slow": optax.sgd(0.01)}, LABELS),
    ),
    "apply_if_finite": (
        lambda: gradtx.apply_if_finite(optax.adam(0.1), 3),
        lambda: optax.apply_if_finite(optax.adam(0.1), 3),
    ),
    "accumulate_gradients": (
        lambda: gradtx.accumulate_gradients(optax.sgd(0.1, 0.9), 1),
        lambda: optax.MultiSteps(optax.sgd(0.1, 0.9), 1),
    ),
}


def _assert_runs_close(got, want):
    """Within float32 round-off: one side ran compiled code (a lax.cond), the other eager ops."""
    for g_step, w_step in zip(got, want):
        for g, w in zip(g_step, w_step):
            np.testing.assert_allclose(
                np.frombuffer(g, np.float32), np.frombuffer(w, np.float32), rtol=1e-6, atol=1e-7
            )


# optax's apply_if_finite and MultiSteps run the inner update inside a compiled
# lax.cond, so they are compared within round-off; the rest bit for bit.
COMPILED_IN_OPTAX = ("apply_if_finite", "accumulate_gradients")


@pytest.mark.parametrize("name", [n for n in OPTAX_INSIDE if n not in COMPILED_IN_OPTAX])
def test_optax_pieces_inside_gradtx_combinator_behave_as_in_optax(name):
    ours, theirs = OPTAX_INSIDE[name]
    assert _optax_run(ours()) == _optax_run(theirs())


@pytest.mark.parametrize("name", COMPILED_IN_OPTAX)
def test_optax_pieces_inside_gradtx_step_wrapper_behave_as_in_optax(name):
    ours, theirs = OPTAX_INSIDE[name]
    _assert_runs_close(_optax_run(ours()), _optax_run(theirs()))


def test_gradtx_adam_inside_optax_chain_with_optax_clip_is_clipped_optax_adam():
    ours = optax.chain(optax.clip_by_global_norm(1.0), gradtx.adam(0.1))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    _assert_runs_close(_optax_run(ours), _optax_run(theirs))
