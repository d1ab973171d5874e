"""quantized_state on a mesh of 4 simulated CPU devices.

These checks need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set
before jax starts, so they run in a process of their own:
``tests/test_quantized.py`` launches

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m pytest -q tests/quantized_sharding_checks.py

The file name does not match ``test_*.py``, so the main suite (one device)
runs none of these.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradtx

N_DEVICES = 4
START = np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32)


def mesh_of(axis_type):
    assert jax.device_count() == N_DEVICES, (
        f"these checks need {N_DEVICES} devices, found {jax.device_count()}; run them with "
        f"XLA_FLAGS=--xla_force_host_platform_device_count={N_DEVICES}"
    )
    return jax.make_mesh((N_DEVICES,), ("data",), axis_types=(axis_type,))


def moments(state):
    inner = state.inner_state.states[0]
    return inner.direction.states[0].mu["w"], inner.preconditioner.nu["w"]


def train(opt, params, mesh, steps=3):
    def step(params, state):
        grads = jax.tree.map(lambda p: p * (1.0 + 0.5 * p), params)
        updates, state = opt.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    state = opt.init(params)
    with jax.set_mesh(mesh):
        step = jax.jit(step)
        for _ in range(steps):
            params, state = step(params, state)
    return params, state


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto], ids=["explicit", "auto"])
@pytest.mark.parametrize("bits", [8, 4])
def test_row_sharded_param_codes_and_scales_sharded_like_it(axis_type, bits):
    mesh = mesh_of(axis_type)
    opt = gradtx.quantized_state(gradtx.adam(0.05), bits=bits, block_size=64, min_size=0)
    params = {"w": jax.device_put(jnp.asarray(START), NamedSharding(mesh, P("data", None)))}
    trained, state = train(opt, params, mesh)
    # The same steps on one device, unsharded: the same numbers.
    single, single_state = train(opt, {"w": jnp.asarray(START)}, jax.make_mesh((1,), ("one",)))
    np.testing.assert_array_equal(np.asarray(trained["w"]), np.asarray(single["w"]))
    assert trained["w"].sharding.spec == P("data", None)
    for q, q1 in zip(moments(state), moments(single_state)):
        for leaf in (q.codes, q.scales):
            assert leaf.sharding.spec == P("data")
        np.testing.assert_array_equal(np.asarray(q.codes), np.asarray(q1.codes))
        # Each device's codes and scales are those of its own 16 rows, quantized alone:
        # no block mixes entries of two shards.
        rows = np.asarray(q.dequantize())
        codes = {s.device: np.asarray(s.data) for s in q.codes.addressable_shards}
        scales = {s.device: np.asarray(s.data) for s in q.scales.addressable_shards}
        for shard in q.dequantize().addressable_shards:
            alone = gradtx.QuantizedArray.quantize(rows[shard.index], q.code, 64)
            np.testing.assert_array_equal(codes[shard.device], np.asarray(alone.codes))
            np.testing.assert_array_equal(scales[shard.device], np.asarray(alone.scales))


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto], ids=["explicit", "auto"])
def test_block_straddling_shards_raises(axis_type):
    mesh = mesh_of(axis_type)
    opt = gradtx.quantized_state(gradtx.adam(0.05), block_size=512, min_size=0)
    params = {"w": jax.device_put(jnp.asarray(START), NamedSharding(mesh, P("data", None)))}
    with pytest.raises(ValueError, match=r"4 shards holds 768 entries, not a multiple of block_si"):
        opt.init(params)


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto], ids=["explicit", "auto"])
def test_param_sharded_along_second_axis_raises(axis_type):
    mesh = mesh_of(axis_type)
    opt = gradtx.quantized_state(gradtx.adam(0.05), block_size=64, min_size=0)
    params = {"w": jax.device_put(jnp.asarray(START), NamedSharding(mesh, P(None, "data")))}
    with pytest.raises(
        ValueError, match=r"mu\['w'\] of shape \(64, 48\) is sharded \(None, 'data'\)"
    ):
        opt.init(params)


def test_row_sharded_param_with_unsharded_small_leaf_runs():
    # A leaf below min_size stays as it is, whatever its sharding.
    mesh = mesh_of(AxisType.Explicit)
    opt = gradtx.quantized_state(gradtx.adam(0.05), block_size=64, min_size=1000)
    params = {
        "w": jax.device_put(jnp.asarray(START), NamedSharding(mesh, P("data", None))),
        "b": jax.device_put(jnp.ones(48, jnp.float32), NamedSharding(mesh, P("data"))),
    }
    trained, state = train(opt, params, mesh)
    assert isinstance(state.inner_state.states[0].preconditioner.nu["w"], gradtx.QuantizedArray)
    assert np.isfinite(np.asarray(trained["b"])).all()
