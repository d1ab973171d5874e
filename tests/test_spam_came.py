"""SPAM, Stable-SPAM and CAME, and the transforms they are built from.

Each recipe is compared with a float64 NumPy transcription of its paper
(reference_spam_came.py) over 50 steps of a noisy quadratic whose gradient
spikes, through momentum resets; the transcription is compared with
pytorch-optimizer in float64, and gradtx in float32 with pytorch-optimizer in
float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lazy_import import lazy
from reference_spam_came import Came, Spam, StableSpam

import gradtx

torch = lazy("torch")
pytorch_optimizer = lazy("pytorch_optimizer")

STEPS = 50
SHAPES = [(3, 4), (4,)]
SPIKES = {25: 300.0, 44: -500.0}  # step (from 1) -> factor on one entry of each leaf


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    start = [rng.normal(size=s) for s in SHAPES]
    curvature = [rng.uniform(0.5, 2.0, size=s) for s in SHAPES]
    centre = [rng.normal(size=s) for s in SHAPES]
    noise = [[0.3 * rng.normal(size=s) for s in SHAPES] for _ in range(STEPS)]
    for step, factor in SPIKES.items():
        for leaf in noise[step - 1]:
            leaf.flat[1] += factor

    def grad(params, t):
        return [h * (p - c) + n for p, h, c, n in zip(params, curvature, centre, noise[t])]

    return start, grad


def run_reference(ref):
    params, grad = _problem()
    trajectory = []
    for t in range(STEPS):
        params = ref.step(params, grad(params, t))
        trajectory.append(params)
    return trajectory


def run_gradtx(opt, dtype=np.float64):
    start, grad = _problem()
    params = tuple(jnp.asarray(p, dtype) for p in start)
    state = opt.init(params)
    step = jax.jit(opt.update)
    trajectory = []
    for t in range(STEPS):
        g = tuple(
            jnp.asarray(x, dtype) for x in grad([np.asarray(p, np.float64) for p in params], t)
        )
        updates, state = step(g, state, params)
        params = gradtx.apply_updates(params, updates)
        trajectory.append([np.asarray(p, np.float64) for p in params])
    return trajectory


def run_torch(make, dtype=torch.float64):
    start, grad = _problem()
    params = [torch.tensor(p, dtype=dtype, requires_grad=True) for p in start]
    opt = make(params)
    trajectory = []
    for t in range(STEPS):
        current = [p.detach().numpy().astype(np.float64) for p in params]
        for p, g in zip(params, grad(current, t)):
            p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
        trajectory.append([p.detach().numpy().astype(np.float64) for p in params])
    return trajectory


def worst_error(actual, expected):
    """The largest |a - e| / (1 + |e|) over every entry of every step."""
    return max(
        float(np.max(np.abs(a - e) / (1 + np.abs(e))))
        for step_a, step_e in zip(actual, expected)
        for a, e in zip(step_a, step_e)
    )


SPAM_KW = dict(weight_decay=0.1, warmup=5, threshold=50.0, accu=3, gap=20, eps=1e-3)
STABLE_KW = dict(b2=0.99, theta=0.9, weight_decay=0.1, gap=20, eps=1e-6)
CAME_KW = dict(b2=0.99, b3=0.999, weight_decay=0.1)


def _spam(lr, **kw):
    return gradtx.spam(
        lr,
        weight_decay=kw["weight_decay"],
        warmup_epoch=kw["warmup"],
        threshold=kw["threshold"],
        grad_accu_steps=kw["accu"],
        update_proj_gap=kw["gap"],
        eps=kw["eps"],
    )


def _torch_spam(lr, **kw):
    return lambda params: pytorch_optimizer.SPAM(
        params,
        lr=lr,
        weight_decay=kw["weight_decay"],
        warmup_epoch=kw["warmup"],
        threshold=kw["threshold"],
        grad_accu_steps=kw["accu"],
        update_proj_gap=kw["gap"],
        eps=kw["eps"],
    )


def _stable(lr, **kw):
    return gradtx.stable_spam(
        lr,
        b2=kw["b2"],
        theta=kw["theta"],
        weight_decay=kw["weight_decay"],
        update_proj_gap=kw["gap"],
        eps=kw["eps"],
    )


def _torch_stable(lr, **kw):
    return lambda params: pytorch_optimizer.StableSPAM(
        params,
        lr=lr,
        betas=(0.9, kw["b2"]),
        theta=kw["theta"],
        weight_decay=kw["weight_decay"],
        update_proj_gap=kw["gap"],
        eps=kw["eps"],
    )


def _torch_came(lr, **kw):
    return lambda params: pytorch_optimizer.CAME(
        params, lr=lr, betas=(0.9, kw["b2"], kw["b3"]), weight_decay=kw["weight_decay"]
    )


def test_spam_matches_numpy_transcription_through_clips_and_resets(x64):
    ref = Spam(0.05, **SPAM_KW)
    expected = run_reference(ref)
    assert ref.clipped >= 2 and ref.resets == 2  # both spikes clipped, resets at 20 and 40
    actual = run_gradtx(_spam(0.05, **SPAM_KW))
    err = worst_error(actual, expected)
    assert err <= 1e-10


def test_spam_transcription_matches_pytorch_optimizer_in_float64():
    expected = run_torch(_torch_spam(0.05, **SPAM_KW))
    actual = run_reference(Spam(0.05, torch_style=True, **SPAM_KW))
    err = worst_error(actual, expected)
    assert err <= 1e-10


def test_spam_in_float32_matches_pytorch_optimizer_in_float32():
    # pytorch-optimizer adds eps to sqrt(v) and decays after the step: with eps
    # and weight decay 0 the two conventions agree.
    kw = {**SPAM_KW, "eps": 0.0, "weight_decay": 0.0}
    expected = run_torch(_torch_spam(0.05, **kw), torch.float32)
    actual = run_gradtx(_spam(0.05, **kw), np.float32)
    err = worst_error(actual, expected)
    assert err <= 2e-5


def test_stable_spam_matches_numpy_transcription_through_clips_and_resets(x64):
    ref = StableSpam(0.05, **STABLE_KW)
    expected = run_reference(ref)
    assert ref.clipped >= 2 and ref.resets == 2
    actual = run_gradtx(_stable(0.05, **STABLE_KW))
    err = worst_error(actual, expected)
    assert err <= 1e-10


def test_stable_spam_transcription_matches_pytorch_optimizer_in_float64():
    expected = run_torch(_torch_stable(0.05, **STABLE_KW))
    actual = run_reference(StableSpam(0.05, **STABLE_KW))
    err = worst_error(actual, expected)
    assert err <= 1e-10


def test_stable_spam_in_float32_matches_pytorch_optimizer_in_float32():
    expected = run_torch(_torch_stable(0.05, **STABLE_KW), torch.float32)
    actual = run_gradtx(_stable(0.05, **STABLE_KW), np.float32)
    err = worst_error(actual, expected)
    assert err <= 2e-5


def test_came_matches_numpy_transcription(x64):
    expected = run_reference(Came(0.05, **CAME_KW))
    actual = run_gradtx(gradtx.came(0.05, **CAME_KW))
    err = worst_error(actual, expected)
    assert err <= 1e-10


def test_came_transcription_matches_pytorch_optimizer_in_float64():
    expected = run_torch(_torch_came(0.05, **CAME_KW))
    actual = run_reference(Came(0.05, **CAME_KW))
    err = worst_error(actual, expected)
    assert err <= 1e-10


def test_came_in_float32_matches_pytorch_optimizer_in_float32():
    expected = run_torch(_torch_came(0.05, **CAME_KW), torch.float32)
    actual = run_gradtx(gradtx.came(0.05, **CAME_KW), np.float32)
    err = worst_error(actual, expected)
    assert err <= 2e-5


def test_reset_moments_zeroes_moments_and_keeps_count_unless_asked():
    g = jnp.array([1.0])
    for reset_count, expected_count in [(False, 3), (True, 2)]:
        tx = gradtx.reset_moments(gradtx.scale_by_adam(), every=2, reset_count=reset_count)
        state = tx.init(g)
        for _ in range(3):
            _, state = tx.update(g, state)
        # steps 1, 2 (reset before it), 3: m = 0.1 + 0.09 after the reset at step 2
        np.testing.assert_allclose(gradtx.tree_get(state, "mu"), [0.19], rtol=1e-6)
        counts = [int(x) for x in jax.tree.leaves(state.inner_state) if x.dtype == jnp.int32]
        assert counts and set(counts) == {expected_count}


def test_clip_spikes_restarts_its_second_moment_every_reset_every_steps():
    tx = gradtx.clip_spikes(threshold=4.0, b2=0.5, warmup_steps=1, reset_every=2)
    state = tx.init(jnp.zeros(1))
    u, state = tx.update(jnp.array([1.0]), state)  # step 1: v = 0, the clip gives 0
    assert float(u[0]) == 0.0
    u, state = tx.update(jnp.array([3.0]), state)  # step 2: a reset, the clip is off
    assert float(u[0]) == 3.0 and float(state.nu[0]) == 4.5
    u, _ = tx.update(jnp.array([100.0]), state)  # step 3: sqrt(4 * 4.5)
    np.testing.assert_allclose(u, [np.sqrt(18.0)], rtol=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gradtx.clip_spikes(threshold=-1.0), "clip_spikes: threshold must be"),
        (lambda: gradtx.clip_spikes(warmup_steps=1.5), "warmup_steps must be an int >= 0"),
        (lambda: gradtx.clip_by_running_max(theta=1.0), "clip_by_running_max: theta must be"),
        (lambda: gradtx.scale_by_norm_moments(gamma2=2.0), "gamma2 must be"),
        (lambda: gradtx.reset_moments(gradtx.scale_by_adam(), every=0), "every must be an int"),
        (lambda: gradtx.scale_by_confidence(b3=-0.1), "scale_by_confidence: b3 must be"),
        (lambda: gradtx.spam(b1=1.0), "spam: b1 must be"),
        (lambda: gradtx.stable_spam(theta=1.5), "stable_spam: theta must be"),
        (lambda: gradtx.came(eps1=-1.0), "came: eps1 must be"),
    ],
)
def test_bad_hyperparameters_raise_with_the_owner_and_the_expectation(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
