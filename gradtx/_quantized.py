"""Optimizer state in 8 and 4 bits.

``quantized_state(tx)`` wraps any transform.  Between steps, each selected
floating-point leaf of ``tx``'s state is kept blockwise-quantized: the leaf
is flattened, padded with zeros to a whole number of blocks of
``block_size`` entries, and each block b is stored as one float32 scale
s_b = max_i |x_i| / top (its absmax over the largest code value) and one
integer code per entry, q_i = argmin_k |x_i / s_b - T(k)|, where T is the
codebook of the leaf's map.  Reading it back gives x_i ~ s_b * T(q_i).
``update`` reads the state back, runs ``tx.update`` on it, and quantizes the
new state; ``tx`` itself never sees a code.

The maps (T(k) for every code k, written from the papers' definitions):

* ``"dynamic8"`` (signed) and ``"dynamic8_unsigned"``: Dettmers et al.'s
  dynamic tree map.  Below an optional sign bit, the number E of leading zero
  bits is a decimal exponent, the first one bit ends it, and the r bits that
  remain pick one of 2^r equal steps of the fraction interval [0.1, 1]:
  T = sign * 10^(-E) * (0.1 + 0.9 * (j + 1) / 2^r).  The all-zero magnitude
  is 0.  The step's upper end is taken (Dettmers' code takes the midpoint
  and adds 1 separately), so 1, the block's absmax, is a code and a block's
  largest entry survives every round trip.  The unsigned map spends the sign
  bit on one more exponent: its smallest value is 1e-7 against 1e-6.
* ``"de4"``: the same construction in 4 bits (sign and 3 magnitude bits),
  Li et al.'s dynamic-exponent map for the first moment: 0, +-0.01, +-0.055,
  +-0.1, +-0.325, +-0.55, +-0.775, +-1.
* ``"linear4"``: Li et al.'s linear map for the second moment,
  T(k) = (k + 1) / 16, k = 0..15.  It leaves zero out: a second moment
  rounded to 0 would divide the update by eps alone.
* ``"fp8"``: float8_e4m3fn numbers (every finite one is a code, the code
  being its bit pattern), with the scale mapping the absmax to 448, the
  largest.

Which leaf gets which map: ``bits=8`` uses ``dynamic8_unsigned`` for a
second moment and ``dynamic8`` otherwise; ``bits=4`` uses ``linear4`` for a
second moment and ``de4`` otherwise; ``bits="fp8"`` uses ``fp8`` for all.
A leaf is a second moment when a field on its path (a named-tuple field of
a state) is one of ``second_moments``: by default the fields that gradtx's
states use for averages or sums of squares (``nu``, ``nu_max``,
``exp_avg_sq``, ``sum_of_squares``, ``grad_sum_sq``, ``v_row``, ``v_col``).
Names that some states use for signed quantities (Adan's ``v``, a
difference of gradients) are left out, so such leaves get the signed map.
An unsigned map stores a negative entry as its smallest code.

The zero point: the dynamic maps read an entry below 1e-7 (unsigned) or
1e-6 (signed) of its block's absmax as 0.  For Adam's second moment that
makes the update m / eps, so 8-bit Adam with eps = 1e-8 diverges from
float32 Adam when a block's squared gradients span more than about seven
decades (on a quadratic with curvatures over three decades it did; with
eps = 1e-4 it tracked float32).  ``linear4`` has no zero for this reason.
At 4 bits, rounding to nearest lets an average's small steps round back to
the same code, so the moments freeze; ``rounding="stochastic"`` keeps them
unbiased (tests/test_quantized.py measures both on a quadratic).

A block holding a NaN or an infinity reads back as NaN throughout, so a
non-finite state stays visible.  Rounding is to the nearest code (a tie
goes to the smaller value) or stochastic: up or down with probability
given by the distance, so the stored value is unbiased; its random numbers
come from ``seed``, the wrapper's step count and the leaf's position, so a
step is reproducible.

On a mesh: a leaf sharded along its leading axis only (a parameter split
by rows) flattens into one contiguous run of entries per shard, so its codes
and scales are split the same way, one run of whole blocks per device, as
long as each shard's entry count is a multiple of ``block_size``: no block
mixes entries of two shards and the update needs no communication.  A leaf
sharded along another axis, or whose shards would cut a block, is refused
with an error naming it (on a mesh of ``Auto`` axes under ``jit`` the
wrapper cannot see the layout: there, place the state as an eager ``init``
does).  Table lookups are laid out like their indices, so the wrapper runs
on meshes of ``Explicit`` axes too.

References: Dettmers, Lewis, Shleifer, Zettlemoyer, "8-bit Optimizers via
Block-wise Quantization", 2022, arXiv 2110.02861; Li, Chen, Zhu, "Memory
Efficient Optimizers with 4-bit States", 2023, arXiv 2309.01507.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import GetAttrKey

from ._base import GradientTransformation, update_fn
from ._checks import check_state, check_transformation
from ._numerics import increment, is_traced, new_count
from ._tree import path_str
from ._typing import TransformLike

SECOND_MOMENTS = ("nu", "nu_max", "exp_avg_sq", "sum_of_squares", "grad_sum_sq", "v_row", "v_col")


# ----------------------------------------------------------------------------
# Codebooks


def _dynamic_values(magnitude_bits: int, signed: bool) -> np.ndarray:
    """T(k) of the dynamic tree map for every code k, in float64."""
    half = 1 << magnitude_bits
    values = np.zeros(half * (2 if signed else 1))
    for c in range(1, half):
        r = c.bit_length() - 1  # fraction bits after the indicator bit
        e = magnitude_bits - 1 - r  # leading zeros
        j = c - (1 << r)
        values[c] = 10.0**-e * (0.1 + 0.9 * (j + 1) / 2**r)
    if signed:
        values[half:] = -values[:half]
    return values


def _fp8_values() -> np.ndarray:
    """Each of the 256 bit patterns of float8_e4m3fn as a number (NaN for the two NaNs)."""
    return np.arange(256, dtype=np.uint8).view(jnp.float8_e4m3fn).astype(np.float64)


class QuantizationMap(NamedTuple):
    """A codebook: ``values[k]`` is T(k), the number that code k stands for.

    ``quantization_map(name)`` makes one; ``encode`` and ``decode`` turn
    numbers already divided by their block's scale into codes and back.

    Encoding finds the rank of x among ``thresholds`` (nearest) or among
    ``sorted_values`` (stochastic) without a search.  A 4-bit map's 15 or 16
    entries are compared with x one by one.  For the 8-bit maps, a position
    function p(x) places x among the sorted values (p(v_i) = i at each value,
    linear in between): for the dynamic maps it finds the decade of |x| by
    comparing with the powers of ten and the step within the decade from
    the fraction; for ``fp8`` it is the rank of x cast to float8_e4m3fn.
    Rounded, p(x) is the rank or one off it, and comparing x with the
    entries on either side settles which: a fixed amount of arithmetic and
    two table reads per entry.  The code of a rank is arithmetic too.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> m = gradtx.quantization_map("de4")
      >>> m.values[:8]
      array([0.   , 0.01 , 0.055, 0.1  , 0.325, 0.55 , 0.775, 1.   ], dtype=float32)
      >>> codes = m.encode(jnp.array([-1.0, 0.06, 0.5]))
      >>> codes
      Array([15,  2,  5], dtype=uint8)
      >>> m.decode(codes)
      Array([-1.   ,  0.055,  0.55 ], dtype=float32)
    """

    name: str
    bits: int  # bits per code
    top: float  # the largest code value: a block's absmax is stored as this
    values: np.ndarray  # T(k) for every code k, float32 (NaN for a code never written)
    sorted_values: np.ndarray  # the distinct values, ascending (float32)
    sorted_codes: np.ndarray  # the smallest code of each (uint8)
    thresholds: np.ndarray  # [i]: the largest float32 nearer sorted_values[i] than [i + 1]

    def encode(self, x, key=None) -> jax.Array:
        """The code of each entry of ``x`` (already divided by its block's scale).

        Without ``key``: the code of the nearest value (a tie goes to the
        smaller value).  With a PRNG ``key``: x lies between two neighbouring
        values lo <= x <= hi and gets hi's code with probability
        (x - lo) / (hi - lo), lo's otherwise.  Outside the map's range: the
        nearest end; NaN as above the range.  Returns uint8 codes
        of ``x``'s shape.
        """
        x = jnp.asarray(x, jnp.float32)
        n = self.sorted_values.size
        big = np.finfo(np.float32).max  # NaN ranks as the largest number
        ranked = jnp.where(x <= big, x, big)
        position = _POSITIONS.get(self.name)
        if key is None:  # rank among the thresholds: the rank of the nearest value
            return self._code(_rank(self.thresholds, ranked, position, strict=True))
        # the number of values <= x, less one: the lower neighbour's rank
        if position is None:
            count = _rank(self.sorted_values, ranked, position, strict=False)
            lo = jnp.clip(count - 1, 0, n - 2)
            v_lo, v_hi = _lookup(self.sorted_values, lo), _lookup(self.sorted_values, lo + 1)
        else:
            lo, v_lo, v_hi = _neighbours(self.sorted_values, ranked, position)
        up = jax.random.uniform(key, x.shape, jnp.float32) < (x - v_lo) / (v_hi - v_lo)
        return self._code(jnp.where(up, lo + 1, lo))

    def _code(self, rank) -> jax.Array:
        """sorted_codes[rank], as arithmetic: the codes of the values >= 0 count up
        from 0 in ascending order, those of the negative ones from half the codes
        (2^(bits - 1)) in descending order."""
        zero = int(np.searchsorted(self.sorted_values, 0.0))  # 0's rank, or the smallest's
        half = 1 << (self.bits - 1)
        return jnp.where(rank >= zero, rank - zero, half + zero - rank).astype(jnp.uint8)

    def decode(self, codes) -> jax.Array:
        """T(k) for each code k of ``codes``, in float32."""
        return _lookup(self.values, jnp.asarray(codes).astype(jnp.int32))


def _lookup(table: np.ndarray, index) -> jax.Array:
    """table[index], laid out like ``index`` (on a mesh of explicit axes too)."""
    return jnp.asarray(table).at[index].get(out_sharding=jax.typeof(index).sharding)


def _rank(table: np.ndarray, x, position, strict: bool) -> jax.Array:
    """The number of entries of the ascending ``table`` below x (strict) or at most x.

    A table of up to 16 entries is compared with x entry by entry.  A larger
    one is a map's thresholds (strict; the stochastic encoder's values go
    through ``_neighbours``), where ``position(x)``, x's place p among the
    map's values, makes a guess: threshold i is the midpoint of values i and
    i + 1, at position i + 1/2, so with p within 1/2 of x's exact position the
    count is k or k + 1 for k = ceil(p) - 1, and comparing x with threshold k
    settles it.  (fp8's p, the rank of x rounded to nearest even, is an
    integer whose value is x's nearest or, at a midpoint, the next: again k or
    k + 1.)
    """
    if table.size <= 16:
        return _rank_by_compares(table, x, strict)
    if not strict:
        raise ValueError("_rank: a table of more than 16 entries is counted strictly")
    # the count is k or k + 1: one table read settles it
    k = jnp.clip(jnp.ceil(position(x)) - 1, 0, table.size).astype(jnp.int32)
    return k + (_lookup(np.append(table, np.inf).astype(np.float32), k) < x).astype(jnp.int32)


def _rank_by_compares(table: np.ndarray, x, strict: bool) -> jax.Array:
    """``_rank`` for a short table: compares of x with its entries.

    A table of equally spaced entries (``linear4``'s: (k + 1.5) / 16 and
    (k + 1) / 16) is counted by arithmetic: with a power-of-two step h and
    first entry t0 = m * h, the count is ceil(x / h - m) (strict) or
    floor(x / h - m) + 1, clipped to [0, size]; x / h is exact, and so is
    x / h - m wherever the result is not clipped.  Otherwise, when x < 0
    only the negative entries can be below it and when x >= 0 all of them
    are, so x is compared with one half of the table, the half chosen per
    entry.
    """
    n = table.size
    step = table[1] - table[0] if n > 1 else 0.0
    start = table[0] / step if step else 0.0
    equal = step > 0 and np.all(table == table[0] + step * np.arange(n))
    if equal and np.log2(step) == np.round(np.log2(step)) and start == np.round(2 * start) / 2:
        y = x * np.float32(1 / step) - np.float32(start)
        count = jnp.ceil(y) if strict else jnp.floor(y) + 1
        return jnp.clip(count, 0, n).astype(jnp.int32)
    below = int(np.sum(table < 0))
    halves = max(below, n - below)
    if halves == n:  # all on one side of 0
        pairs = [(t, t) for t in table]
    else:  # entry k of each half, padded with inf (never below x)
        neg = np.concatenate([table[:below], np.full(halves - below, np.inf, np.float32)])
        pos = np.concatenate([table[below:], np.full(halves - (n - below), np.inf, np.float32)])
        pairs = list(zip(neg, pos))
    negative = x < 0
    count = jnp.where(negative, 0, below) if halves < n else jnp.zeros(jnp.shape(x), jnp.int32)
    for t_neg, t_pos in pairs:
        t = t_pos if t_neg == t_pos else jnp.where(negative, np.float32(t_neg), np.float32(t_pos))
        count = count + ((t < x) if strict else (t <= x)).astype(jnp.int32)
    return count


def _neighbours(values: np.ndarray, x, position):
    """lo = clip(#{values <= x} - 1, 0, size - 2), values[lo] and values[lo + 1], in
    two table reads.  Value i sits at position i, so with p within 1/2 of x's
    exact position (see ``_rank``) the count is r + [values[r] <= x] for
    r = round(p); lo is r or r - 1, and the read at r serves as one of the two.
    """
    n = values.size
    r = jnp.clip(jnp.round(position(x)), 0, n - 1).astype(jnp.int32)
    v_r = _lookup(values, r)
    lo = jnp.clip(r - 1 + (v_r <= x).astype(jnp.int32), 0, n - 2)
    at_r = lo == r
    other = _lookup(values, jnp.where(at_r, lo + 1, lo))
    return lo, jnp.where(at_r, v_r, other), jnp.where(at_r, other, v_r)


def _dynamic_position(magnitude_bits: int, signed: bool):
    """p(x) for the dynamic tree map: the code c of a magnitude y in decade e
    (10^-(e+1) <= y <= 10^-e, r = magnitude_bits - 1 - e fraction bits) solves
    y = 10^-e * (0.1 + 0.9 * (c - 2^r + 1) / 2^r); below the smallest value
    10^-(magnitude_bits - 1) it is linear from 0.  In float32 it is within
    1e-4 of the exact c, well inside the 1/2 that ``_rank`` needs."""
    smallest = np.float32(10.0 ** -(magnitude_bits - 1))
    zero = (1 << magnitude_bits) - 1 if signed else 0  # the rank of 0

    def position(x):
        # c = slope_e * y + offset_e: slope_e = 10^e * 2^r / 0.9, offset_e = 2^r * 8/9 - 1,
        # chosen by compares and selects (no table reads); below the smallest value,
        # slope 1 / smallest and offset 0
        y = jnp.abs(x) if signed else jnp.maximum(x, 0)
        slope = jnp.full_like(y, 2.0 ** (magnitude_bits - 1) / 0.9)
        offset = jnp.full_like(y, 2.0 ** (magnitude_bits - 1) * 8 / 9 - 1)
        for e in range(1, magnitude_bits):
            below = y < (np.float32(10.0**-e) if e < magnitude_bits - 1 else smallest)
            if e < magnitude_bits - 1:
                steps = 2.0 ** (magnitude_bits - 1 - e)
                a, b = 10.0**e * steps / 0.9, steps * 8 / 9 - 1
            else:
                a, b = 1 / np.float64(smallest), 0.0
            slope = jnp.where(below, np.float32(a), slope)
            offset = jnp.where(below, np.float32(b), offset)
        c = y * slope + offset
        return zero + jnp.where(x < 0, -c, c) if signed else c

    return position


def _fp8_position(x):
    """p(x) for fp8: the rank of x rounded to float8_e4m3fn (to nearest even)."""
    x8 = jnp.clip(x, -448, 448).astype(jnp.float8_e4m3fn)
    magnitude = (jax.lax.bitcast_convert_type(x8, jnp.uint8) & 127).astype(jnp.float32)
    return 126 + jnp.where(x8 < 0, -magnitude, magnitude)


_POSITIONS = {  # the 8-bit maps' (4-bit ones compare with every entry)
    "dynamic8": _dynamic_position(7, signed=True),
    "dynamic8_unsigned": _dynamic_position(8, signed=False),
    "fp8": _fp8_position,
}


def _thresholds(values: np.ndarray) -> np.ndarray:
    """For consecutive values lo < hi, the largest float32 x with |x - lo| <= |hi - x|
    in float64: at or below it, x rounds to lo."""
    out = []
    for lo, hi in zip(values[:-1], values[1:]):
        t = np.float32((lo + hi) / 2)
        while abs(float(t) - lo) > abs(hi - float(t)):
            t = np.nextafter(t, np.float32(-np.inf))
        while True:
            up = np.nextafter(t, np.float32(np.inf))
            if abs(float(up) - lo) > abs(hi - float(up)):
                break
            t = up
        out.append(t)
    return np.array(out, np.float32)


def _make_map(name: str, bits: int, values: np.ndarray) -> QuantizationMap:
    finite = np.flatnonzero(np.isfinite(values))
    distinct, first = np.unique(values[finite], return_index=True)  # +0 before -0
    return QuantizationMap(
        name=name,
        bits=bits,
        top=float(distinct[-1]),
        values=values.astype(np.float32),
        sorted_values=distinct.astype(np.float32),
        sorted_codes=finite[first].astype(np.uint8),
        thresholds=_thresholds(distinct),
    )


_MAPS = {
    "dynamic8": lambda: (8, _dynamic_values(7, signed=True)),
    "dynamic8_unsigned": lambda: (8, _dynamic_values(8, signed=False)),
    "de4": lambda: (4, _dynamic_values(3, signed=True)),
    "linear4": lambda: (4, (np.arange(16) + 1) / 16),
    "fp8": lambda: (8, _fp8_values()),
}


@functools.cache
def quantization_map(name: str) -> QuantizationMap:
    """The codebook of map ``name``: ``"dynamic8"``, ``"dynamic8_unsigned"``, ``"de4"``,
    ``"linear4"`` or ``"fp8"`` (see the module's description).

    Example:
      >>> import gradtx
      >>> gradtx.quantization_map("linear4").values[[0, 1, 15]]
      array([0.0625, 0.125 , 1.    ], dtype=float32)
    """
    if name not in _MAPS:
        raise ValueError(
            f"quantization_map: unknown map {name!r}; expected one of {', '.join(map(repr, _MAPS))}"
        )
    return _make_map(name, *_MAPS[name]())


# ----------------------------------------------------------------------------
# One quantized array


class _Pytree:
    """The pytree protocol of a quantized array: the first two names in its
    ``__slots__`` are its leaves, the rest its static data, and its
    constructor takes them in that order."""

    __slots__ = ()

    def tree_flatten_with_keys(self):
        leaves, aux = self.tree_flatten()
        return tuple(zip(map(GetAttrKey, self.__slots__[:2]), leaves)), aux

    def tree_flatten(self):
        values = tuple(getattr(self, name) for name in self.__slots__)
        return values[:2], values[2:]

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


@jax.tree_util.register_pytree_with_keys_class
class QuantizedArray(_Pytree):
    """An array stored blockwise-quantized: ``codes`` and ``scales`` are its leaves.

    ``codes`` holds one code per entry (uint8; two per uint8 for a 4-bit
    map, the first entry in the low half; the float8_e4m3fn numbers
    themselves for ``fp8``), for the array flattened and padded with zeros to
    a whole number of blocks; ``scales`` holds one float32 per block.  The
    array's ``shape``, ``dtype``, map name (``code``) and ``block_size`` are
    static: they sit in the pytree structure, not in the leaves, so they
    pass through ``jit``/``vmap`` and a checkpoint template must agree on
    them (a state of another bit width has codes of another dtype or shape).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> q = gradtx.QuantizedArray.quantize(jnp.array([0.5, -2.0, 1.0]), "dynamic8", 2)
      >>> q.codes.shape, q.scales
      ((4,), Array([2., 1.], dtype=float32))
      >>> q.dequantize()
      Array([ 0.5, -2. ,  1. ], dtype=float32)
    """

    __slots__ = ("codes", "scales", "shape", "dtype", "code", "block_size")

    def __init__(self, codes, scales, shape, dtype, code, block_size):
        self.codes = codes
        self.scales = scales
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.code = code
        self.block_size = block_size

    def __repr__(self):
        return (
            f"QuantizedArray(shape={self.shape}, dtype={self.dtype.name}, code={self.code!r}, "
            f"block_size={self.block_size})"
        )

    @classmethod
    def quantize(cls, x, code: str, block_size: int, key=None) -> QuantizedArray:
        """``x`` stored under map ``code`` in blocks of ``block_size``; stochastic rounding with ``key``."""
        m = quantization_map(code)
        x = jnp.asarray(x)
        size = int(np.prod(x.shape, dtype=np.int64))
        n_blocks = -(-size // block_size)
        flat = x.reshape(-1).astype(jnp.float32)
        blocks = jnp.pad(flat, (0, n_blocks * block_size - size)).reshape(n_blocks, block_size)
        absmax = _absmax_rows(blocks)
        scales = jnp.where(jnp.isfinite(absmax), _over_top(absmax, m.top), np.float32(np.nan))
        normed = blocks / jnp.where(scales > 0, scales, np.float32(1))[:, None]
        codes = m.encode(normed, key).reshape(-1)
        if m.bits == 4:
            codes = _pack_pairs(codes)
        return cls(_as_stored(codes, code), scales, x.shape, x.dtype, code, block_size)

    def dequantize(self) -> jax.Array:
        """The stored array: s_b * T(q_i), in its shape and dtype."""
        if self.codes.size == 0:  # a zero-size leaf: no blocks, nothing to decode
            return jnp.zeros(self.shape, self.dtype)
        codes = self.codes.reshape(self.scales.shape[0], -1)
        values = _decode(codes, self.code) * self.scales[:, None]
        size = int(np.prod(self.shape, dtype=np.int64))
        return values.reshape(-1)[:size].reshape(self.shape).astype(self.dtype)


def _as_stored(codes, code: str):
    """Codes as an array stores them: an fp8 map's as float8_e4m3fn numbers."""
    if code == "fp8":
        return jax.lax.bitcast_convert_type(codes, jnp.float8_e4m3fn)
    return codes


def _decode(codes, code: str) -> jax.Array:
    """T(q) of stored codes; a 4-bit map's two codes to a byte unpack along the last axis."""
    m = quantization_map(code)
    if code == "fp8":
        codes = jax.lax.bitcast_convert_type(codes, jnp.uint8)
    if m.bits == 4:
        values = jnp.stack([m.decode(codes & 15), m.decode(codes >> 4)], axis=-1)
        return values.reshape(*codes.shape[:-1], -1)
    return m.decode(codes)


def _over_top(x, top: float) -> jax.Array:
    """x / top, rounded once under jit as eagerly.  XLA turns a division by a
    constant into a product with its reciprocal, rounded twice unless top is a
    power of two (fp8's 448 is not); a barrier hides the constant."""
    divisor = np.float32(top)
    if np.log2(top) != np.round(np.log2(top)):
        divisor = jax.lax.optimization_barrier(divisor)
    return x / divisor


def _absmax_rows(blocks) -> jax.Array:
    """max_i |x_i| of each row, as the larger of -min_i x_i and max_i x_i (0 for
    an empty row, NaN where a row holds one).

    One reduction of two results: XLA:CPU fuses it with the arithmetic that
    makes ``blocks``, where it hands a lone max-reduction to a library kernel
    that reads its input from memory (so the new state would be written out
    first just to be read back).
    """
    largest, smallest = jax.lax.reduce(
        (blocks, blocks),
        (np.float32(0), np.float32(0)),
        lambda a, b: (jnp.maximum(a[0], b[0]), jnp.minimum(a[1], b[1])),
        (1,),
    )
    return jnp.abs(jnp.maximum(largest, -smallest))  # abs: +0, never -0


def _pack_pairs(codes) -> jax.Array:
    """4-bit codes, two per byte: the even entries in the low half, the odd in the high."""
    # Read as little-endian uint16, a pair's first code is the low byte.  (XLA on
    # CPU compiles this to a faster loop than two strided slices.)
    pairs = jax.lax.bitcast_convert_type(codes.reshape(-1, 2), jnp.uint16)
    return ((pairs & 15) | ((pairs >> 8) << 4)).astype(jnp.uint8)


@jax.tree_util.register_pytree_with_keys_class
class Rank1QuantizedArray(_Pytree):
    """A matrix (or tensor) stored with Li et al.'s rank-1 normalization.

    For a matrix x, with row maxima r_i = max_j |x_ij| and column maxima
    c_j = max_i |x_ij|, each entry is normalized by its own scale
    s_ij = min(r_i, c_j) / top and stored as one code, q_ij =
    argmin_k |x_ij / s_ij - T(k)|; it reads back as s_ij * T(q_ij).  An
    entry is at most both maxima, so x_ij / s_ij <= top.  A tensor of more
    axes keeps the maximum over all other axes for each of its axes and takes
    the smallest of those that meet at an entry.  Against one scale per block,
    a small entry in a row and a column of small entries keeps its own
    precision (the second moment's rows and columns often differ by decades).

    Leaves: ``codes`` (as ``QuantizedArray``'s, with no blocks: two 4-bit
    codes per byte, the flattened array padded to an even length) and
    ``maxes``, one float32 vector per axis.  A NaN reads back as NaN along
    its row and column.

    Reference: Li, Chen, Zhu, "Memory Efficient Optimizers with 4-bit
    States", 2023, arXiv 2309.01507, section 4.2.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> x = jnp.array([[1.0, 0.001], [0.002, 0.002]])
      >>> q = gradtx.Rank1QuantizedArray.quantize(x, "linear4")
      >>> q.maxes
      (Array([1.   , 0.002], dtype=float32), Array([1.   , 0.002], dtype=float32))
      >>> q.dequantize()
      Array([[1.   , 0.001],
             [0.002, 0.002]], dtype=float32)
    """

    __slots__ = ("codes", "maxes", "shape", "dtype", "code")

    def __init__(self, codes, maxes, shape, dtype, code):
        self.codes = codes
        self.maxes = tuple(maxes)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.code = code

    def __repr__(self):
        return (
            f"Rank1QuantizedArray(shape={self.shape}, dtype={self.dtype.name}, code={self.code!r})"
        )

    @staticmethod
    def _scales(maxes, top):
        """s_ij = min over the axes of the maxima meeting at each entry, over top."""
        ndim = len(maxes)
        shaped = [m.reshape((1,) * k + (-1,) + (1,) * (ndim - k - 1)) for k, m in enumerate(maxes)]
        return _over_top(functools.reduce(jnp.minimum, shaped), top)

    @classmethod
    def quantize(cls, x, code: str, key=None) -> Rank1QuantizedArray:
        """``x`` (at least 2 axes) stored under map ``code``; stochastic rounding with ``key``."""
        m = quantization_map(code)
        x = jnp.asarray(x)
        a = jnp.abs(x.astype(jnp.float32))
        axes = range(x.ndim)
        maxes = tuple(jnp.max(a, axis=tuple(o for o in axes if o != k)) for k in axes)
        scale = cls._scales(maxes, m.top)
        normed = x.astype(jnp.float32) / jnp.where(scale > 0, scale, np.float32(1))
        codes = m.encode(normed.reshape(-1), key)
        if m.bits == 4:
            codes = _pack_pairs(jnp.pad(codes, (0, codes.size % 2)))
        return cls(_as_stored(codes, code), maxes, x.shape, x.dtype, code)

    def dequantize(self) -> jax.Array:
        """The stored array: s_ij * T(q_ij), in its shape and dtype."""
        if self.codes.size == 0:  # a zero-size leaf: no blocks, nothing to decode
            return jnp.zeros(self.shape, self.dtype)
        size = int(np.prod(self.shape, dtype=np.int64))
        values = _decode(self.codes, self.code).reshape(-1)[:size].reshape(self.shape)
        top = quantization_map(self.code).top
        return (values * self._scales(self.maxes, top)).astype(self.dtype)


def _is_quantized(x) -> bool:
    return isinstance(x, (QuantizedArray, Rank1QuantizedArray))


def _quantize(x, code: str, block_size: int, rank1: bool, key):
    """``x`` as a ``Rank1QuantizedArray`` (``rank1``) or a ``QuantizedArray``."""
    if rank1:
        return Rank1QuantizedArray.quantize(x, code, key)
    return QuantizedArray.quantize(x, code, block_size, key)


# ``_quantize`` as one program per leaf shape, dtype and map, for an eager ``init``
# (one dispatch per leaf, where the encoder's few dozen small operations would be
# dispatched one by one): the same bits, the codes being settled by exact compares
# (see ``_rank``) and the scales by one division.
_quantize_jitted = jax.jit(_quantize, static_argnums=(1, 2, 3))


# ----------------------------------------------------------------------------
# The wrapper


class QuantizedState(NamedTuple):
    """count: steps taken (it seeds stochastic rounding); inner_state: the wrapped
    transform's state, its selected leaves as ``QuantizedArray``."""

    count: jax.Array
    inner_state: Any


_BITS = {8: ("dynamic8", "dynamic8_unsigned"), 4: ("de4", "linear4"), "fp8": ("fp8", "fp8")}


def _check_layout(owner, path, leaf, block_size) -> None:
    """Refuse a state leaf whose shards the flattened blocks would mix.

    A leaf sharded along its leading axis only splits into contiguous runs
    of the flattened array, one per shard, so its codes and scales split the
    same way as long as each run is a whole number of blocks.  A leaf split
    along another axis interleaves its shards in the flattened order.
    """
    if isinstance(leaf, jax.Array) and not is_traced(leaf):
        sharding = leaf.sharding
    else:
        sharding = getattr(jax.typeof(leaf), "sharding", None)
    if not isinstance(sharding, jax.sharding.NamedSharding) or not jnp.ndim(leaf):
        return
    spec = tuple(sharding.spec) + (None,) * (jnp.ndim(leaf) - len(sharding.spec))
    where = f"{owner}: state leaf {path_str(path)} of shape {jnp.shape(leaf)} is sharded {spec}"
    if any(entry is not None for entry in spec[1:]):
        raise ValueError(
            f"{where}: the blocks run along the flattened array, so only a split of the "
            f"leading axis keeps each shard's entries together; shard the parameter along "
            f"axis 0 (or move the split there), or leave this leaf out (keys=, min_size=)"
        )
    axes = () if spec[0] is None else (spec[0],) if isinstance(spec[0], str) else spec[0]
    shards = int(np.prod([sharding.mesh.shape[a] for a in axes], dtype=np.int64))
    per_shard = int(np.prod(jnp.shape(leaf), dtype=np.int64)) // shards
    if shards > 1 and per_shard % block_size:
        raise ValueError(
            f"{where}: each of its {shards} shards holds {per_shard} entries, not a "
            f"multiple of block_size={block_size}, so a block would straddle two shards; "
            f"choose a block_size that divides {per_shard}"
        )


def _fields(path) -> set:
    return {k.name for k in path if isinstance(k, GetAttrKey)}


def quantized_state(
    tx: TransformLike,
    bits: int | str = 8,
    block_size: int = 256,
    min_size: int = 4096,
    keys: tuple[str, ...] | None = None,
    rounding: str = "nearest",
    *,
    normalization: str = "block",
    second_moments: tuple[str, ...] = SECOND_MOMENTS,
    seed: int = 0,
) -> GradientTransformation:
    """``tx`` with its state stored blockwise in 8 or 4 bits between steps.

    ``init`` quantizes ``tx.init``'s state; ``update`` reads the state back
    (s_b * T(q_i), see the module's description), runs ``tx.update`` and
    quantizes the new state.  The updates are ``tx``'s, computed from the
    state as stored.  Counters, other integer leaves, complex leaves and
    leaves not selected stay as they are.

    Args:
      tx: the transform whose state to store (gradtx or optax).
      bits: 8 (dynamic tree maps, Dettmers et al.), 4 (Li et al.'s maps:
        dynamic exponent, linear without zero for second moments) or
        ``"fp8"`` (float8_e4m3fn numbers with a per-block scale).
      block_size: entries per block, each with its own float32 scale (an
        int >= 1, even for 4 bits).
      min_size: without ``keys``, the floating-point leaves with at least
        this many entries are quantized.
      keys: if given, the floating-point leaves whose path has one of these
        state fields (``("mu", "nu")``) are quantized, whatever their size.
      rounding: ``"nearest"`` or ``"stochastic"``.
      normalization: ``"block"`` (one scale per block, above) or ``"rank1"``:
        second-moment leaves of two or more axes are stored as a
        ``Rank1QuantizedArray`` (Li et al.'s rank-1 normalization: each entry
        scaled by the smaller of its row's and its column's maximum), the
        other leaves in blocks.
      second_moments: the state fields whose leaves get the unsigned map
        (``dynamic8_unsigned``, ``linear4``).
      seed: seeds stochastic rounding.

    Returns:
      A transform with state ``QuantizedState(count, inner_state)``.

    With ``flatten``: ``quantized_state(flatten(tx))`` stores flatten's packed
    buffers (one per dtype, blocks running across the leaves packed in it);
    ``flatten(quantized_state(tx))`` is refused, as packing would move the
    blocks' boundaries.

    With the defaults, Adam's state takes 2 * (1 + 4 / 256) bytes per
    parameter at 8 bits and 2 * (0.5 + 4 / 256) at 4 bits, against 8 in
    float32.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.quantized_state(gradtx.adam(0.1), bits=8, min_size=0)
      >>> params = {"w": jnp.array([1.0, -2.0, 3.0])}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.array([0.5, -1.0, 0.25])}, state, params)
      >>> updates["w"]
      Array([-0.1,  0.1, -0.1], dtype=float32)
      >>> state.inner_state.states[0].preconditioner.nu["w"]
      QuantizedArray(shape=(3,), dtype=float32, code='dynamic8_unsigned', block_size=256)
    """
    owner = "quantized_state"
    check_transformation(owner, "tx", tx)
    if bits not in _BITS or isinstance(bits, bool):
        raise ValueError(f"{owner}: bits must be 8, 4 or 'fp8', got {bits!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"{owner}: block_size must be an int >= 1, got {block_size!r}")
    if bits == 4 and block_size % 2:
        raise ValueError(
            f"{owner}: block_size must be even for 4 bits (two codes per byte), got {block_size}"
        )
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
        raise ValueError(f"{owner}: min_size must be an int >= 0, got {min_size!r}")
    if isinstance(keys, str):
        keys = (keys,)
    if keys is not None and not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{owner}: keys must be state field names (strings), got {keys!r}")
    if rounding not in ("nearest", "stochastic"):
        raise ValueError(f"{owner}: rounding must be 'nearest' or 'stochastic', got {rounding!r}")
    if normalization not in ("block", "rank1"):
        raise ValueError(
            f"{owner}: normalization must be 'block' or 'rank1', got {normalization!r}"
        )
    signed_map, unsigned_map = _BITS[bits]
    second = frozenset(second_moments)
    selected = None if keys is None else frozenset(keys)
    inner_update = update_fn(tx)

    def choose(path, leaf):
        """The map for this state leaf, or None to keep it as it is."""
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            return None
        fields = _fields(path)
        if selected is None and np.size(leaf) < min_size:
            return None
        if selected is not None and not fields & selected:
            return None
        return unsigned_map if fields & second else signed_map

    def key_for(count, i):
        if rounding == "nearest":
            return None
        return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), count), i)

    def store(path, leaf, code, key, quantize=_quantize):
        rank1 = normalization == "rank1" and code == unsigned_map and jnp.ndim(leaf) >= 2
        if not rank1:
            _check_layout(owner, path, leaf, block_size)
        return quantize(leaf, code, block_size, rank1, key)

    def init(params):
        count = new_count()
        flat, treedef = jax.tree_util.tree_flatten_with_path(tx.init(params))
        out = []
        for i, (path, leaf) in enumerate(flat):
            code = choose(path, leaf)
            if code is not None:
                # eager: one compiled program per leaf; traced: the operations inline
                quantize = _quantize if is_traced(leaf) else _quantize_jitted
                leaf = store(path, leaf, code, key_for(count, i), quantize)
            out.append(leaf)
        return QuantizedState(count, treedef.unflatten(out))

    def update(updates, state, params=None, **extra):
        check_state(owner, state, QuantizedState)
        flat, treedef = jax.tree_util.tree_flatten_with_path(
            state.inner_state, is_leaf=_is_quantized
        )
        paths, stored = [p for p, _ in flat], [s for _, s in flat]
        inner = treedef.unflatten([s.dequantize() if _is_quantized(s) else s for s in stored])
        updates, new_inner = inner_update(updates, inner, params, **extra)
        count = increment(state.count)
        new = jax.tree.structure(inner).flatten_up_to(new_inner)
        out = [
            store(path, n, s.code, key_for(count, i)) if _is_quantized(s) else n
            for i, (path, s, n) in enumerate(zip(paths, stored, new))
        ]
        return updates, QuantizedState(count, treedef.unflatten(out))

    return GradientTransformation(
        init,
        update,
        name=owner,
        children=(tx,),
        hyperparams={
            "tx": tx,
            "bits": bits,
            "block_size": block_size,
            "min_size": min_size,
            "keys": keys,
            "rounding": rounding,
            "normalization": normalization,
        },
    )
