"""quantized_state (optimizer state in 8 and 4 bits) and compensated (Kahan updates for bf16).

The codebooks are checked against float64 NumPy transcriptions of the
papers' definitions written here, bit string by bit string; the encoder
against a brute-force nearest-value search over those codebooks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from optimizers import IDS, OPTIMIZERS, typical
from quick_tier import CORE_ROWS

import gradtx

# ----------------------------------------------------------------------------
# Codebooks, transcribed from the definitions


def dynamic_tree_reference(total_bits, signed):
    """Dettmers et al.'s dynamic tree map: [sign] zeros (exponent) 1 (indicator) fraction bits.

    E leading zeros give 10^-E; the r bits after the first one index one of
    2^r equal steps of [0.1, 1], the value being the step's upper end.
    """
    values = []
    for code in range(2**total_bits):
        bits = format(code, f"0{total_bits}b")
        sign = 1.0
        if signed:
            sign = -1.0 if bits[0] == "1" else 1.0
            bits = bits[1:]
        if "1" not in bits:
            values.append(0.0)
            continue
        exponent = bits.index("1")
        fraction = bits[exponent + 1 :]
        j = int(fraction, 2) if fraction else 0
        values.append(sign * 10.0**-exponent * (0.1 + 0.9 * (j + 1) / 2 ** len(fraction)))
    return np.array(values)


def e4m3fn_reference():
    """float8_e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits, no infinities, NaN at S.1111.111."""
    values = []
    for code in range(256):
        sign = -1.0 if code >> 7 else 1.0
        e, m = (code >> 3) & 15, code & 7
        if e == 15 and m == 7:
            values.append(np.nan)
        elif e == 0:
            values.append(sign * 2.0**-6 * m / 8)
        else:
            values.append(sign * 2.0 ** (e - 7) * (1 + m / 8))
    return np.array(values)


REFERENCE_MAPS = {
    "dynamic8": dynamic_tree_reference(8, signed=True),
    "dynamic8_unsigned": dynamic_tree_reference(8, signed=False),
    "de4": dynamic_tree_reference(4, signed=True),
    "linear4": np.arange(1, 17) / 16.0,
    "fp8": e4m3fn_reference(),
}
MAPS = sorted(REFERENCE_MAPS)


def nearest_codes_reference(x, values):
    """Brute force: the code whose value is nearest x; ties to the smaller value, then code."""
    codes = np.flatnonzero(np.isfinite(values))
    order = codes[np.lexsort((codes, values[codes]))]
    distance = np.abs(x[:, None] - values[order][None, :])
    return order[np.argmin(distance, axis=1)]  # argmin takes the first of equals


@pytest.mark.parametrize("name", MAPS)
def test_quantization_map_values_match_definition(name):
    m = gradtx.quantization_map(name)
    np.testing.assert_array_equal(m.values, REFERENCE_MAPS[name].astype(np.float32))
    assert m.top == np.nanmax(REFERENCE_MAPS[name])


def test_quantization_map_de4_is_li_et_al_dynamic_exponent():
    magnitudes = [0.0, 0.01, 0.055, 0.1, 0.325, 0.55, 0.775, 1.0]
    np.testing.assert_allclose(dynamic_tree_reference(4, True)[:8], magnitudes, rtol=1e-15)
    np.testing.assert_allclose(dynamic_tree_reference(4, True)[8:], np.negative(magnitudes))


# Every map's inputs have this length, the number of draws of the unbiasedness test:
# the encoder's operations, run eagerly, compile once for all of these tests.
ENCODER_INPUTS = 20000


def encoder_inputs(values, seed):
    """Random points over the range and over eight decades below its top, the values,
    and each float32 midpoint between neighbours with the float32 on either side
    (where rounding to nearest changes its answer), then more random points over
    the range up to ``ENCODER_INPUTS`` in all, all float32."""
    top = np.nanmax(values)
    distinct = np.unique(values[np.isfinite(values)])
    mid = ((distinct[:-1] + distinct[1:]) / 2).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = np.concatenate(
        [
            rng.uniform(-1.1 * top, 1.1 * top, 4000).astype(np.float32),
            (top * rng.choice([-1, 1], 2000) * 10.0 ** rng.uniform(-8, 0, 2000)).astype(np.float32),
            distinct.astype(np.float32),
            mid,
            np.nextafter(mid, np.float32(-np.inf)),
            np.nextafter(mid, np.float32(np.inf)),
            np.float32([0.0, -0.0, top, -top]),
        ]
    )
    more = rng.uniform(-1.1 * top, 1.1 * top, ENCODER_INPUTS - x.size).astype(np.float32)
    return np.concatenate([x, more])


@pytest.mark.parametrize("name", MAPS)
def test_encode_nearest_matches_brute_force(name):
    values = REFERENCE_MAPS[name]
    x = encoder_inputs(values, 1)
    m = gradtx.quantization_map(name)
    codes = np.asarray(m.encode(jnp.asarray(x)))
    expected = nearest_codes_reference(x.astype(np.float64), values)
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_allclose(np.asarray(m.decode(codes)), values[expected], rtol=2**-24, atol=0)


@pytest.mark.parametrize("name", MAPS)
def test_encode_stochastic_picks_a_neighbour(name):
    values = REFERENCE_MAPS[name]
    distinct = np.unique(values[np.isfinite(values)]).astype(np.float32)
    x = np.clip(encoder_inputs(values, 2), distinct[0], distinct[-1])
    m = gradtx.quantization_map(name)
    decoded = values[np.asarray(m.encode(jnp.asarray(x), jax.random.PRNGKey(4)))].astype(np.float32)
    rank = np.searchsorted(distinct, x, side="right") - 1  # the largest value <= x
    lo = distinct[np.clip(rank, 0, distinct.size - 2)]
    hi = distinct[np.clip(rank, 0, distinct.size - 2) + 1]
    assert ((decoded == lo) | (decoded == hi)).all()
    np.testing.assert_array_equal(decoded[x == lo], x[x == lo])  # a value is kept


@pytest.mark.parametrize("name", ["dynamic8", "de4", "linear4", "fp8"])
def test_encode_stochastic_is_unbiased_between_neighbours(name):
    values = REFERENCE_MAPS[name]
    distinct = np.unique(values[np.isfinite(values)])
    m = gradtx.quantization_map(name)
    rng = np.random.default_rng(2)
    for x in rng.uniform(distinct[0], distinct[-1], 5).astype(np.float32):
        draws = ENCODER_INPUTS
        keys = jax.random.split(jax.random.PRNGKey(7), 1)[0]
        codes = np.asarray(m.encode(jnp.full((draws,), x), keys))
        decoded = values[codes]
        lo = distinct[distinct <= x].max()
        hi = distinct[distinct >= x].min()
        assert set(np.unique(decoded)) <= {lo, hi}
        sigma = (hi - lo) / 2 / np.sqrt(draws)
        assert abs(decoded.mean() - x) < 5 * sigma + 1e-7


@pytest.mark.parametrize(
    "name,block", [("dynamic8", 64), ("linear4", 32), ("de4", 16), ("fp8", 50)]
)
def test_quantized_array_matches_blockwise_reference(name, block):
    rng = np.random.default_rng(3)
    # 999 entries, padded in each case; in blocks of 64, the 16 blocks of the eager
    # tests below, whose compiled operations serve both
    x = rng.standard_normal((27, 37)).astype(np.float32)
    if name == "linear4":
        x = x**2
    q = gradtx.QuantizedArray.quantize(jnp.asarray(x), name, block)
    values = REFERENCE_MAPS[name]
    flat = np.zeros(-(-x.size // block) * block)
    flat[: x.size] = x.reshape(-1)
    blocks = flat.reshape(-1, block)
    scales = np.abs(blocks).max(axis=1) / np.nanmax(values)
    codes = nearest_codes_reference((blocks / scales[:, None]).reshape(-1), values)
    np.testing.assert_allclose(np.asarray(q.scales), scales, rtol=2**-23)
    stored = np.asarray(q.codes)
    if name == "fp8":
        stored = stored.view(np.uint8)
    if gradtx.quantization_map(name).bits == 4:
        codes = codes[0::2] | (codes[1::2] << 4)  # the first entry in the low half
    np.testing.assert_array_equal(stored, codes.astype(np.uint8))
    expected = values[nearest_codes_reference((blocks / scales[:, None]).reshape(-1), values)]
    expected = (expected.reshape(blocks.shape) * scales[:, None]).reshape(-1)[: x.size]
    np.testing.assert_allclose(
        np.asarray(q.dequantize()), expected.reshape(x.shape), rtol=3 * 2**-24, atol=0
    )


def rank1_reference(x, values):
    """Li et al.'s rank-1 normalization in NumPy: per-axis maxima of |x|, each entry
    scaled by the smallest that meets at it, the nearest code of x / scale."""
    a = np.abs(x)
    maxes = [a.max(axis=tuple(o for o in range(x.ndim) if o != k)) for k in range(x.ndim)]
    scale = np.full(x.shape, np.inf, np.float32)
    for k, m in enumerate(maxes):
        scale = np.minimum(scale, m.reshape((1,) * k + (-1,) + (1,) * (x.ndim - k - 1)))
    scale = scale / np.float32(np.nanmax(values))
    codes = nearest_codes_reference((x / scale).reshape(-1).astype(np.float64), values)
    return maxes, codes, values[codes].reshape(x.shape) * scale.astype(np.float64)


@pytest.mark.parametrize(
    "name,shape", [("linear4", (7, 12)), ("linear4", (3, 4, 5)), ("dynamic8_unsigned", (9, 6))]
)
def test_rank1_quantized_array_matches_reference(name, shape):
    rng = np.random.default_rng(12)
    # rows and columns several decades apart, as a second moment's are
    x = np.ones(shape)
    for k, n in enumerate(shape):
        x = x * (10.0 ** rng.uniform(-4, 0, n)).reshape(
            (1,) * k + (-1,) + (1,) * (len(shape) - k - 1)
        )
    x = (x * rng.uniform(0.1, 1.0, shape)).astype(np.float32)
    q = gradtx.Rank1QuantizedArray.quantize(jnp.asarray(x), name)
    maxes, codes, expected = rank1_reference(x, REFERENCE_MAPS[name])
    for got, want in zip(q.maxes, maxes):
        np.testing.assert_array_equal(np.asarray(got), want)
    stored = np.asarray(q.codes)
    if gradtx.quantization_map(name).bits == 4:
        codes = np.concatenate([codes, np.zeros(codes.size % 2, codes.dtype)])
        codes = codes[0::2] | (codes[1::2] << 4)
    np.testing.assert_array_equal(stored, codes.astype(np.uint8))
    np.testing.assert_allclose(np.asarray(q.dequantize()), expected, rtol=3 * 2**-24, atol=0)


def test_rank1_keeps_small_rows_and_columns_that_blocks_lose():
    # A second moment whose rows and columns span four decades: one scale per
    # block of 64 (a row) rounds the row's small entries up to its smallest code,
    # 1/16 of its largest; rank-1 scales each entry by the smaller of its row's
    # and its column's maxima.  Measured median relative errors: 0.15 and 4.4.
    rng = np.random.default_rng(13)
    x = np.outer(10.0 ** rng.uniform(-4, 0, 64), 10.0 ** rng.uniform(-4, 0, 64))
    x = (x * rng.uniform(0.5, 1.0, x.shape)).astype(np.float32)
    block = gradtx.QuantizedArray.quantize(jnp.asarray(x), "linear4", 64).dequantize()
    rank1 = gradtx.Rank1QuantizedArray.quantize(jnp.asarray(x), "linear4").dequantize()
    error = lambda y: np.median(np.abs(np.asarray(y) / x - 1))  # noqa: E731
    assert error(rank1) < 0.3
    assert error(block) > 2.0


def test_quantized_array_block_with_nan_reads_back_as_nan():
    # Eight entries in blocks of two, as in the next test: their eager operations compile once.
    x = jnp.array([1.0, np.nan, -3.0, 3.0, 2.0, -2.0, -4.0, 4.0], jnp.float32)
    out = np.asarray(gradtx.QuantizedArray.quantize(x, "dynamic8", 2).dequantize())
    assert np.isnan(out[:2]).all()
    np.testing.assert_array_equal(out[2:], [-3.0, 3.0, 2.0, -2.0, -4.0, 4.0])


@pytest.mark.parametrize("jit", [False, True])
def test_quantized_array_scale_is_absmax_whatever_the_sign(jit):
    # The scale of a block is max |x| / top, read as the larger of -min and max:
    # a block led by a negative entry, and a block of -0.0 (scale +0, not -0).
    x = jnp.array([-3.0, 1.0, 2.0, -1.0, -0.0, -0.0, 0.5, 4.0], jnp.float32)
    quantize = lambda x: gradtx.QuantizedArray.quantize(x, "dynamic8", 2)  # noqa: E731
    q = (jax.jit(quantize) if jit else quantize)(x)
    np.testing.assert_array_equal(
        np.asarray(q.scales).view(np.uint32), np.float32([3, 2, 0, 4]).view(np.uint32)
    )


def test_quantized_array_keeps_dtype_and_shape():
    # 12 entries padded to one block of 64, as the wrapper tests' "b" below (whose
    # eager operations this test's share)
    x = jnp.asarray(np.arange(12).reshape(3, 4), jnp.bfloat16)
    out = gradtx.QuantizedArray.quantize(x, "dynamic8", 64).dequantize()
    assert out.dtype == jnp.bfloat16 and out.shape == (3, 4)


# ----------------------------------------------------------------------------
# The wrapper


PARAMS = {
    "w": jnp.asarray(np.random.default_rng(4).standard_normal((20, 30)), jnp.float32),
    "b": jnp.zeros(30, jnp.float32),
}


# The wrapper's eager runs in blocks of 64: a 20 x 50 matrix, whose 1000 entries make
# the blocks of the QuantizedArray jit test below, and one block, so that their
# eager quantize operations compile once for these tests.
EAGER_PARAMS = {
    "w": jnp.asarray(np.random.default_rng(15).standard_normal((20, 50)), jnp.float32),
    "b": jnp.asarray(np.random.default_rng(16).standard_normal(64), jnp.float32),
}


def grad_of(params):
    return jax.tree.map(lambda p: 2.0 * (p - 1.0) * (1.0 + 0.5 * p * p), params)


def run(opt, params, steps, jit=True):
    def step(params, state):
        updates, state = opt.update(grad_of(params), state, params)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    state = opt.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return params, state


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(
            np.asarray(x).reshape(-1).view(np.uint8), np.asarray(y).reshape(-1).view(np.uint8)
        )


def test_quantized_state_stores_second_moment_unsigned_and_first_signed():
    state = gradtx.quantized_state(gradtx.adam(0.1), bits=8, min_size=0).init(PARAMS)
    inner = state.inner_state.states[0]
    assert inner.direction.states[0].mu["w"].code == "dynamic8"
    assert inner.preconditioner.nu["w"].code == "dynamic8_unsigned"
    state = gradtx.quantized_state(gradtx.adam(0.1), bits=4, min_size=0).init(PARAMS)
    inner = state.inner_state.states[0]
    assert inner.direction.states[0].mu["w"].code == "de4"
    assert inner.preconditioner.nu["w"].code == "linear4"
    assert inner.preconditioner.nu["w"].codes.shape == (3 * 256 // 2,)  # 600 entries, 3 blocks


def test_quantized_state_rank1_stores_matrix_second_moments_only():
    opt = gradtx.quantized_state(gradtx.adam(0.05), bits=4, min_size=0, normalization="rank1")
    params, state = run(opt, PARAMS, 5)
    inner = state.inner_state.states[0]
    nu, mu = inner.preconditioner.nu, inner.direction.states[0].mu
    assert isinstance(nu["w"], gradtx.Rank1QuantizedArray)
    assert [m.shape for m in nu["w"].maxes] == [(20,), (30,)]
    assert nu["w"].codes.shape == (300,)  # 600 entries, two per byte
    assert isinstance(nu["b"], gradtx.QuantizedArray)  # a vector: in blocks
    assert isinstance(mu["w"], gradtx.QuantizedArray)  # not a second moment
    assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(params))


def test_quantized_state_selects_by_size_or_by_keys():
    state = gradtx.quantized_state(gradtx.adam(0.1), min_size=600).init(PARAMS)
    mu = state.inner_state.states[0].direction.states[0].mu
    assert isinstance(mu["w"], gradtx.QuantizedArray)  # 600 entries
    assert not isinstance(mu["b"], gradtx.QuantizedArray)  # 30 entries
    state = gradtx.quantized_state(gradtx.adam(0.1), keys=("nu",)).init(PARAMS)
    inner = state.inner_state.states[0]
    assert isinstance(inner.preconditioner.nu["b"], gradtx.QuantizedArray)
    assert not isinstance(inner.direction.states[0].mu["w"], gradtx.QuantizedArray)
    assert inner.preconditioner.count.dtype == jnp.int32


@pytest.mark.parametrize("name", MAPS)
@pytest.mark.parametrize("stochastic", [False, True])
def test_quantized_array_under_jit_matches_eager(name, stochastic):
    x = jnp.asarray(np.random.default_rng(11).standard_normal(1000), jnp.float32)
    key = jax.random.PRNGKey(3) if stochastic else None

    def round_trip(x, key):
        q = gradtx.QuantizedArray.quantize(x, name, 64, key)
        return q, q.dequantize()

    assert_trees_equal(jax.jit(round_trip)(x, key), round_trip(x, key))


@pytest.mark.parametrize("bits", [8, 4, "fp8"])
@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_quantized_state_under_jit_matches_eager(bits, rounding):
    # Adam alone differs by an ulp between jit and eager (fused multiply-adds),
    # and such an ulp can move a moment across the boundary between two
    # codes: the tolerance of the shared jit test, and few codes apart.
    opt = gradtx.quantized_state(
        gradtx.adam(0.05), bits=bits, block_size=64, min_size=0, rounding=rounding
    )
    (p_jit, s_jit), (p_eager, s_eager) = (
        run(opt, EAGER_PARAMS, 5, jit=True),
        run(opt, EAGER_PARAMS, 5, jit=False),
    )
    for a, b in zip(jax.tree.leaves(p_jit), jax.tree.leaves(p_eager)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    assert jax.tree.structure(s_jit) == jax.tree.structure(s_eager)
    for a, b in zip(jax.tree.leaves(s_jit), jax.tree.leaves(s_eager)):
        if a.dtype == jnp.float32:  # the scales
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)
        else:
            a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
            assert np.mean(a.view(np.uint8) != b.view(np.uint8)) <= 0.01


@pytest.mark.parametrize(
    "bits,rounding,normalization",
    [
        (8, "nearest", "block"),
        (4, "stochastic", "block"),
        ("fp8", "nearest", "block"),
        (4, "nearest", "rank1"),
    ],
)
def test_quantized_state_init_is_bit_equal_to_eager_quantize(bits, rounding, normalization):
    # An eager init quantizes each leaf in one compiled program: the same bits as
    # QuantizedArray.quantize (or Rank1QuantizedArray's) run op by op on tx.init's
    # leaf, with the key of the leaf's position and step 0.  (The leaves' shapes are
    # those of the eager tests above, whose compiled operations this test reuses; "b"
    # is one block.)
    block_size = 64
    rng = np.random.default_rng(14)
    params = {
        "w": jnp.asarray(rng.standard_normal(1000), jnp.float32),
        "b": jnp.asarray(rng.standard_normal(64), jnp.float32),
        "m": jnp.asarray(rng.standard_normal((7, 12)), jnp.float32),
    }
    for row in [r for r in OPTIMIZERS if r.name in ("adam", "adagrad")]:
        tx = typical(row)
        opt = gradtx.quantized_state(
            tx, bits, block_size, 0, rounding=rounding, normalization=normalization
        )
        stored = jax.tree.leaves(opt.init(params).inner_state, is_leaf=_is_stored)
        leaves = jax.tree.leaves(tx.init(params))
        assert len(stored) == len(leaves)
        for i, (q, x) in enumerate(zip(stored, leaves)):
            if not _is_stored(q):
                assert_trees_equal(q, x)
                continue
            key = None
            if rounding == "stochastic":
                key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(0), 0), i)
            if isinstance(q, gradtx.Rank1QuantizedArray):
                expected = gradtx.Rank1QuantizedArray.quantize(x, q.code, key)
            else:
                expected = gradtx.QuantizedArray.quantize(x, q.code, block_size, key)
            assert_trees_equal(q, expected)
            assert (q.shape, q.dtype) == (expected.shape, expected.dtype)


def _is_stored(x):
    return isinstance(x, (gradtx.QuantizedArray, gradtx.Rank1QuantizedArray))


def test_quantized_state_stochastic_rounding_depends_on_seed_only_through_the_draws():
    a = gradtx.quantized_state(gradtx.adam(0.05), min_size=0, rounding="stochastic", seed=0)
    b = gradtx.quantized_state(gradtx.adam(0.05), min_size=0, rounding="stochastic", seed=1)
    pa, pb = run(a, PARAMS, 5)[0], run(b, PARAMS, 5)[0]
    assert_trees_equal(pa, run(a, PARAMS, 5)[0])  # reproducible
    assert not np.array_equal(np.asarray(pa["w"]), np.asarray(pb["w"]))
    np.testing.assert_allclose(np.asarray(pa["w"]), np.asarray(pb["w"]), atol=0.1)


def test_quantized_state_under_vmap_matches_loop():
    opt = gradtx.quantized_state(gradtx.adam(0.05), bits=4, min_size=0)
    batch = jax.tree.map(lambda p: jnp.stack([p, 2 * p + 0.5, -p]), PARAMS)

    def three_steps(params):
        state = opt.init(params)
        for _ in range(3):
            updates, state = opt.update(grad_of(params), state, params)
            params = gradtx.apply_updates(params, updates)
        return params, state

    batched = jax.jit(jax.vmap(three_steps))(batch)
    for i in range(3):
        one = jax.jit(three_steps)(jax.tree.map(lambda x: x[i], batch))
        assert_trees_equal(jax.tree.map(lambda x: x[i], batched), one)


def test_quantized_state_checkpoint_round_trip_is_bit_exact(tmp_path):
    opt = gradtx.quantized_state(gradtx.adam(0.05), bits=4, min_size=0)
    params, state = run(opt, PARAMS, 3)
    path = tmp_path / "ckpt.npz"
    gradtx.save_checkpoint(path, {"params": params, "opt_state": state})
    loaded = gradtx.load_checkpoint(path, {"params": PARAMS, "opt_state": opt.init(PARAMS)})
    assert_trees_equal(loaded["opt_state"], state)
    step = jax.jit(lambda p, s: opt.update(grad_of(p), s, p))
    assert_trees_equal(step(params, state), step(loaded["params"], loaded["opt_state"]))


@pytest.mark.parametrize("other", [8, "fp8"])
def test_quantized_state_checkpoint_of_another_bit_width_is_refused(tmp_path, other):
    state = gradtx.quantized_state(gradtx.adam(0.05), bits=4, min_size=0).init(PARAMS)
    path = tmp_path / "ckpt.npz"
    gradtx.save_checkpoint(path, state)
    template = gradtx.quantized_state(gradtx.adam(0.05), bits=other, min_size=0).init(PARAMS)
    with pytest.raises(
        gradtx.CheckpointError, match=r"mu\['b'\]\.codes is uint8\[128\] in the checkpoint"
    ):
        gradtx.load_checkpoint(path, template)


_QUADRATIC_START = {
    "m": jnp.asarray(np.random.default_rng(5).standard_normal((6, 5)), jnp.float32),
    "v": jnp.asarray(np.random.default_rng(6).standard_normal(7), jnp.float32),
}


def _loss(params):
    return sum(jnp.sum((p - 0.5) ** 2) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_every_optimizer_wrapped_runs_and_stays_finite(row):
    # Every row at 8 bits; the 4-bit maps on the classic rows (the next test): each case
    # costs a compile, and the maps themselves are tested above.
    _run_wrapped_and_check_finite(row, 8)


@pytest.mark.parametrize(
    "row", [r for r in OPTIMIZERS if r.name in CORE_ROWS], ids=lambda r: r.name
)
def test_classic_optimizer_wrapped_in_4_bits_runs_and_stays_finite(row):
    _run_wrapped_and_check_finite(row, 4)


def _run_wrapped_and_check_finite(row, bits):
    opt = gradtx.quantized_state(typical(row), bits=bits, min_size=0, block_size=16)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(_loss)(params)
        updates, state = opt.update(grad, state, params, value=value)
        return gradtx.apply_updates(params, updates), state

    params, state = _QUADRATIC_START, opt.init(_QUADRATIC_START)
    for _ in range(4):
        params, state = step(params, state)
    for leaf in jax.tree.leaves((params, state)):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert np.isfinite(np.asarray(leaf, np.float32)).all()


def _adam_distance_to_fp32(bits, rounding, steps=300):
    """Max over steps of ||x_q - x_32|| / ||x_0 - x*||, and both final losses, on a quadratic
    with curvatures spread over half a decade."""
    rng = np.random.default_rng(8)
    n = 4096
    curvature = jnp.asarray(10.0 ** rng.uniform(0, 0.5, n), jnp.float32)
    centre = jnp.asarray(rng.standard_normal(n), jnp.float32)
    x0 = jnp.zeros(n, jnp.float32)

    def trajectory(opt):
        def step(carry, _):
            x, state = carry
            u, state = opt.update(curvature * (x - centre), state, x)
            x = gradtx.apply_updates(x, u)
            return (x, state), x

        return jax.jit(lambda x: jax.lax.scan(step, (x, opt.init(x)), None, steps)[1])(x0)

    exact = trajectory(gradtx.adam(0.01))
    quantized = trajectory(
        gradtx.quantized_state(gradtx.adam(0.01), bits=bits, min_size=0, rounding=rounding)
    )
    distance = jnp.linalg.norm(quantized - exact, axis=1) / jnp.linalg.norm(centre - x0)
    loss = lambda xs: float(jnp.sum(curvature * (xs[-1] - centre) ** 2))  # noqa: E731
    return float(distance.max()), loss(quantized), loss(exact)


def test_adam_8bit_trajectory_stays_close_to_fp32():
    # A stored moment is within half a code step of its value: in the top
    # decade of dynamic8 that is 0.45/64 ~ 0.7% of the block's absmax, about
    # 1% relative error on the update.  Measured: 0.022 of the distance to the
    # minimum at the worst of 300 steps, final loss 68.8 against 73.5 in
    # float32; the bounds leave a factor ~2.
    distance, loss_q, loss_32 = _adam_distance_to_fp32(8, "nearest")
    assert distance < 0.05
    assert loss_q < 1.1 * loss_32


def test_adam_4bit_trajectory_with_stochastic_rounding_stays_near_fp32():
    # de4's steps are up to 40% of a value apart: to nearest, an EMA's 10%
    # moves round back to the same code and the moments freeze (measured:
    # distance 0.46, loss 20x float32's).  Stochastic rounding keeps them
    # unbiased; measured: distance 0.15, loss 81.6 against 73.5.
    distance, loss_q, loss_32 = _adam_distance_to_fp32(4, "stochastic")
    assert distance < 0.3
    assert loss_q < 1.3 * loss_32


def _state_bytes_per_param(opt, params):
    shapes = jax.eval_shape(opt.init, params)
    total = sum(np.prod(s.shape) * np.dtype(s.dtype).itemsize for s in jax.tree.leaves(shapes))
    return total / sum(p.size for p in jax.tree.leaves(params))


@pytest.mark.parametrize("bits,bound", [(8, 2.2), (4, 1.2)])
def test_adam_quantized_state_bytes_per_param(bits, bound):
    params = {
        "w": jax.ShapeDtypeStruct((1024, 1024), jnp.float32),
        "b": jax.ShapeDtypeStruct((1024,), jnp.float32),
    }
    measured = _state_bytes_per_param(gradtx.quantized_state(gradtx.adam(1e-3), bits=bits), params)
    assert measured <= bound
    assert _state_bytes_per_param(gradtx.adam(1e-3), params) == pytest.approx(8.0, abs=1e-3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(bits=6), "bits must be 8, 4 or 'fp8', got 6"),
        (dict(bits=True), "bits must be 8, 4 or 'fp8', got True"),
        (dict(block_size=0), "block_size must be an int >= 1, got 0"),
        (dict(bits=4, block_size=33), "block_size must be even for 4 bits"),
        (dict(min_size=-1), "min_size must be an int >= 0, got -1"),
        (dict(keys=(1,)), "keys must be state field names"),
        (dict(rounding="up"), "rounding must be 'nearest' or 'stochastic', got 'up'"),
        (dict(normalization="row"), "normalization must be 'block' or 'rank1', got 'row'"),
    ],
)
def test_quantized_state_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradtx.quantized_state(gradtx.adam(0.1), **kwargs)


def test_quantization_map_unknown_name_raises():
    with pytest.raises(ValueError, match="unknown map 'int8'"):
        gradtx.quantization_map("int8")


def test_quantized_state_with_foreign_state_raises():
    opt = gradtx.quantized_state(gradtx.adam(0.1))
    with pytest.raises(TypeError, match="expected a QuantizedState, got ChainState"):
        opt.update(PARAMS, gradtx.adam(0.1).init(PARAMS), PARAMS)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_state_of_flatten_quantizes_packed_buffer_like_one_vector(bits):
    # flatten packs the leaves, in pytree order, into one buffer; quantized_state
    # stores that buffer: the run is the same optimizer's on the concatenation
    # (to an ulp: the packed step's arithmetic fuses differently).
    params = {"w": PARAMS["w"], "b": jnp.linspace(-1, 1, 30, dtype=jnp.float32)}
    packed = gradtx.quantized_state(
        gradtx.flatten(gradtx.adam(0.05)), bits=bits, min_size=0, block_size=64
    )
    state = packed.init(params)
    buffers = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, gradtx.QuantizedArray))
    assert [b.shape for b in buffers if isinstance(b, gradtx.QuantizedArray)] == [(630,)] * 2
    trained, _ = run(packed, params, 3)
    vector = jnp.concatenate([x.reshape(-1) for x in jax.tree.leaves(params)])
    one = gradtx.quantized_state(gradtx.adam(0.05), bits=bits, min_size=0, block_size=64)
    expected, _ = run(one, vector, 3)
    flat = np.concatenate([np.asarray(x).reshape(-1) for x in jax.tree.leaves(trained)])
    np.testing.assert_allclose(flat, np.asarray(expected), rtol=1e-6, atol=1e-7)


def test_flatten_of_quantized_state_raises():
    with pytest.raises(ValueError, match="quantized_state cannot run on packed buffers: it quan"):
        gradtx.flatten(gradtx.quantized_state(gradtx.adam(0.1)))


@pytest.mark.slow  # a process of its own on 4 simulated devices, like tests/test_sharding.py
def test_quantized_state_sharding_checks_pass_on_4_devices():
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    env["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=4"])
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")] if p])
    checks = root / "tests" / "quantized_sharding_checks.py"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "--tb=short", str(checks)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"tests/quantized_sharding_checks.py on 4 simulated devices failed:\n"
        f"{(proc.stdout + proc.stderr)[-8000:]}"
    )


# ----------------------------------------------------------------------------
# Kahan-compensated updates


def _bf16(x):
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16)


def kahan_reference(p0, updates):
    """The recurrence of ``compensated``'s docstring in NumPy, rounding with ml_dtypes."""
    p = _bf16(p0)
    c = np.zeros_like(p)
    for u in updates:
        y = np.float32(u) + c.astype(np.float32)
        t = _bf16(p.astype(np.float32) + y)
        d = _bf16(t.astype(np.float32) - p.astype(np.float32))
        new = _bf16(p.astype(np.float32) + d.astype(np.float32))
        c = _bf16(y - (new.astype(np.float32) - p.astype(np.float32)))
        p = new
    return p


def test_compensated_matches_kahan_recurrence():
    rng = np.random.default_rng(9)
    p0 = rng.uniform(-4, 4, 64).astype(np.float32)
    steps = [
        (rng.standard_normal(64) * 10.0 ** rng.uniform(-5, 1, 64)).astype(np.float32)
        for _ in range(40)
    ]
    opt = gradtx.compensated(gradtx.identity())
    params = {"w": jnp.asarray(_bf16(p0))}
    state = opt.init(params)
    for u in steps:
        updates, state = opt.update({"w": jnp.asarray(u)}, state, params)
        assert updates["w"].dtype == jnp.bfloat16
        params = gradtx.apply_updates(params, updates)
    np.testing.assert_array_equal(
        np.asarray(params["w"]).view(np.uint16), kahan_reference(p0, steps).view(np.uint16)
    )


def test_compensated_bf16_tracks_fp32_master_weights_on_quadratic():
    rng = np.random.default_rng(10)
    n = 512
    centre = rng.uniform(1.0, 3.0, n).astype(np.float32)
    curvature = rng.uniform(0.5, 2.0, n).astype(np.float32)
    start = np.zeros(n, np.float32)

    def train(opt, dtype):
        x = jnp.asarray(start, dtype)
        state = opt.init(x)

        @jax.jit
        def step(x, state):
            g = (curvature * (x.astype(jnp.float32) - centre)).astype(dtype)
            u, state = opt.update(g, state, x)
            return gradtx.apply_updates(x, u), state

        for _ in range(3000):
            x, state = step(x, state)
        return np.asarray(x, np.float32)

    master = train(gradtx.sgd(1e-3), jnp.float32)
    plain = train(gradtx.sgd(1e-3), jnp.bfloat16)
    kahan = train(gradtx.compensated(gradtx.sgd(1e-3)), jnp.bfloat16)
    err_plain = np.abs(plain - master).max()
    err_kahan = np.abs(kahan - master).max()
    # Plain bf16 stalls where lr * g falls below half an ulp (2^-8 near 2):
    # g < 3.9 stops it far from the centre.  Kahan's error stays within an ulp.
    assert err_plain > 0.3
    assert err_kahan <= 2**-6
    assert err_kahan < err_plain / 30


def test_compensated_leaves_float32_params_alone():
    opt = gradtx.compensated(gradtx.adam(0.1))
    params = {"w": jnp.array([1.0, 2.0])}
    updates, state = opt.update({"w": jnp.array([0.3, -0.2])}, opt.init(params), params)
    expected, _ = gradtx.adam(0.1).update(
        {"w": jnp.array([0.3, -0.2])}, gradtx.adam(0.1).init(params), params
    )
    assert_trees_equal(updates, expected)
    assert state.compensation["w"].shape == ()


def test_compensated_with_int8_coded_compensation_runs():
    # 1000 entries in blocks of 64: the eager quantize operations of the tests above
    opt = gradtx.quantized_state(
        gradtx.compensated(gradtx.sgd(1e-3)), block_size=64, keys=("compensation",)
    )
    ones = np.ones(1000, ml_dtypes.bfloat16)
    params = {"w": jnp.asarray(ones, jnp.bfloat16)}
    state = opt.init(params)
    assert isinstance(state.inner_state.compensation["w"], gradtx.QuantizedArray)
    for _ in range(10):
        updates, state = opt.update({"w": jnp.asarray(-ones, jnp.bfloat16)}, state, params)
        params = gradtx.apply_updates(params, updates)
    np.testing.assert_array_equal(np.asarray(params["w"], np.float32), 1.0078125)


def test_compensated_without_params_raises():
    opt = gradtx.compensated(gradtx.sgd(0.1))
    params = {"w": jnp.ones(2, jnp.bfloat16)}
    with pytest.raises(ValueError, match="compensated: update needs params"):
        opt.update(params, opt.init(params))
