"""Muon's relatives and LMO methods: Scion (norm-constrained linear minimization
oracles per layer), AdaMuon (an elementwise second moment on the polar factor)
and MuonClip (Muon with QK-clip).

Shared pieces: ``scale_by_lmo`` (``_lmo``), ``orthogonalize``,
``scale_by_orthogonal_rms``, ``scale_by_shape`` and ``polar_function``
(``_orthogonal``), ``qk_clip`` (``_qk_clip``).  Muon and NorMuon themselves
are in ``_matrix``.
"""

from __future__ import annotations

from typing import Annotated

from .._checks import (
    Decay,
    FiniteNumbers,
    InRange,
    NonNegative,
    OptionalRate,
    Positive,
    Rate,
    StateDtype,
    UnitInterval,
)
from .._lmo import scale_by_lmo
from .._momentum import scale_by_momentum, trace
from .._orthogonal import (
    NS_COEFFS,
    orthogonalize,
    polar_function,
    scale_by_orthogonal_rms,
    scale_by_shape,
)
from .._qk_clip import qk_clip
from .._recipe import recipe
from .._scaling import identity, scale_by_learning_rate
from .._sign import scale_by_sign
from .._weight_decay import add_decayed_weights
from ._matrix import _muon_partition

# Scion's momentum alpha, the weight of the new gradient: in (0, 1].
NewWeight = Annotated[float, InRange(0, 1, low_open=True)]


def _scion_polar(owner, polar):
    """pytorch-optimizer's Newton-Schulz (5 steps of Jordan's quintic, X / max(||X||_F, 1e-7))."""
    if polar is None or polar == "newton_schulz":
        return polar_function(owner, "newton_schulz", eps=1e-7, eps_clamp=True)
    return polar_function(owner, polar)


def _clamped_polar(owner, polar, ns_coeffs, ns_steps):
    """``polar``, or by default Newton-Schulz with eps 1e-7 clamped (pytorch-optimizer's)."""
    return polar_function(
        owner,
        "newton_schulz" if polar is None else polar,
        ns_coeffs=ns_coeffs,
        ns_steps=ns_steps,
        eps=1e-7,
        eps_clamp=True,
    )


def _scion(
    owner,
    learning_rate,
    momentum,
    radius,
    norms,
    weight_decay=1.0,
    *,
    eps,
    polar,
    weight_dimension_numbers,
    weight_decay_mask=None,
    mu_dtype,
):
    """Scion's transforms, from the recipe's arguments (``scion``: weight decay 1)."""
    return (
        scale_by_momentum(1 - momentum, ema=True, mu_dtype=mu_dtype),
        scale_by_lmo(
            norms,
            radius,
            eps=eps,
            polar=_scion_polar(owner, polar),
            weight_dimension_numbers=weight_dimension_numbers,
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def scion(
    learning_rate: Rate = 1e-3,
    momentum: NewWeight = 0.1,
    radius=1.0,
    norms=None,
    *,
    eps: NonNegative = 1e-8,
    polar=None,
    weight_dimension_numbers=None,
    mu_dtype: StateDtype = None,
):
    """Scion: x_t = (1 - lr) x_{t-1} + lr * (-radius * lmo(d_t)), d_t = (1 - momentum) d_{t-1} + momentum g_t.

    The constrained (conditional-gradient, Frank-Wolfe-like) form: every
    step moves x toward the point -radius * lmo(d_t) of the norm ball, so
    the weights stay in (converge to) the ball of radius ``radius``.  lmo is
    chosen per leaf by ``norms`` (``scale_by_lmo``): by default
    ``"spectral"`` for 2-D leaves and ``"bias"`` for the others; the paper
    uses ``"col"`` (or ``"sign"``) for the embedding, ``"spectral"`` for the
    hidden matrices and ``"sign"`` for the output head, each with its own
    radius.  As an update: u_t = -lr (radius lmo(d_t) + x_{t-1})
    (``add_decayed_weights(1.0)``).  pytorch-optimizer's
    ``SCION(constraint=True)``; see ``scion_unconstrained`` for the
    unconstrained form.

    Verified against a float64 NumPy transcription of the paper's
    algorithm (1e-10 relative) and against pytorch-optimizer 4.1.0's
    ``SCION`` in float32 (its Newton-Schulz run in float32 instead of
    bfloat16; 1e-5 relative).

    Args:
      learning_rate: lr (gamma), in [0, 1] for the iterates to stay in the
        ball; a number or a schedule.
      momentum: alpha, the weight of the new gradient, in (0, 1]
        (1 - the usual momentum; 1: no averaging).
      radius: rho, > 0, or a pytree or function of radii (as ``norms``).
      norms: the oracle of each leaf, as in ``scale_by_lmo``.
      eps: the stabiliser of the ``"col"``, ``"row"`` and ``"bias"`` oracles.
      polar: the polar function of ``"spectral"``, a function or a name
        (``polar_function``); None: ``newton_schulz(eps=1e-7,
        eps_clamp=True)``.
      weight_dimension_numbers: as in ``orthogonalize``.
      mu_dtype: the dtype d_t is stored in; None: each parameter's dtype.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.scion(0.1, norms={"w": "sign", "b": "bias"})
      >>> params = {"w": jnp.ones((1, 2)), "b": jnp.zeros(2)}
      >>> u, state = opt.update({"w": jnp.ones((1, 2)), "b": jnp.ones(2)}, opt.init(params), params)
      >>> gradtx.apply_updates(params, u)["w"]
      Array([[0.8, 0.8]], dtype=float32)

    Reference: Pethick, Xie, Erdogan, Antonakopoulos, Silveti-Falls, Cevher,
    "Training Deep Learning Models with Norm-Constrained LMOs", 2025,
    arXiv:2502.07529.
    """
    return _scion("scion", **locals())


@recipe
def scion_unconstrained(
    learning_rate: Rate = 1e-3,
    momentum: NewWeight = 0.1,
    radius=1.0,
    norms=None,
    weight_decay: NonNegative = 0.0,
    *,
    eps: NonNegative = 1e-8,
    polar=None,
    weight_dimension_numbers=None,
    weight_decay_mask=None,
    mu_dtype: StateDtype = None,
):
    """Unconstrained Scion: x_t = x_{t-1} - lr (radius lmo(d_t) + weight_decay x_{t-1}).

    d_t = (1 - momentum) d_{t-1} + momentum g_t and lmo as in ``scion``; the
    step is the oracle's direction alone (the paper's uSCG), with optional
    decoupled weight decay.  pytorch-optimizer's ``SCION(constraint=False)``
    (its default).  ``SCIONLight`` keeps d in the gradient buffers instead,
    d_t = (1 - momentum) d_{t-1} + g_t, the same direction up to the eps of
    the oracles: ``chain(trace(1 - momentum), scale_by_lmo(...), ...)``.

    Verified as ``scion``: a float64 NumPy transcription (1e-10 relative)
    and pytorch-optimizer 4.1.0's ``SCION`` in float32.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      momentum, radius, norms, eps, polar: as in ``scion``.
      weight_dimension_numbers, mu_dtype: as in ``scion``.
      weight_decay: decoupled weight decay, times lr, >= 0.
      weight_decay_mask: which leaves decay (as ``add_decayed_weights``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.scion_unconstrained(0.1, norms="sign")
      >>> params = {"w": jnp.ones((1, 2))}
      >>> u, state = opt.update({"w": jnp.array([[1.0, -2.0]])}, opt.init(params), params)
      >>> gradtx.apply_updates(params, u)["w"]
      Array([[0.9, 1.1]], dtype=float32)

    Reference: Pethick, Xie, Erdogan, Antonakopoulos, Silveti-Falls, Cevher,
    "Training Deep Learning Models with Norm-Constrained LMOs", 2025,
    arXiv:2502.07529.
    """
    return _scion("scion_unconstrained", **locals())


@recipe
def adamuon(
    learning_rate: Rate = 0.02,
    b1: Decay = 0.9,
    b2: Decay = 0.95,
    eps: NonNegative = 1e-10,
    weight_decay: NonNegative = 0.0,
    *,
    sign_momentum: bool = False,
    ns_coeffs: FiniteNumbers = NS_COEFFS,
    ns_steps=5,
    polar=None,
    consistent_rms=0.2,
    adam_learning_rate: OptionalRate = None,
    adam_b1: Decay = 0.9,
    adam_b2: Decay = 0.999,
    adam_eps: NonNegative = 1e-10,
    adam_weight_decay: NonNegative = 0.0,
    muon_weight_dimension_numbers=None,
    muon_mask=None,
    weight_decay_mask=None,
    mu_dtype: StateDtype = None,
):
    """AdaMuon: Muon with an elementwise second moment of the polar factor.

    For the matrices (``muon_labels``: 2-D leaves unless told otherwise):
    m_t = b1 m_{t-1} + (1 - b1) g_t, O_t = polar(m_t) (polar(sign(m_t))
    with ``sign_momentum``), v_t = b2 v_{t-1} + (1 - b2) O_t^2,
    O'_t = O_t / (sqrt(v_t / (1 - b2^t)) + eps), and the step
    -lr (0.2 sqrt(m n) O'_t / (||O'_t||_F + eps) + weight_decay W): the
    update has RMS 0.2, as AdamW's typically does (``scale_by_orthogonal_rms``
    then ``scale_by_shape(consistent_rms=0.2)``).  The other leaves:
    ``adamw(adam_learning_rate, adam_b1, adam_b2, adam_eps,
    weight_decay=adam_weight_decay)``, adam_learning_rate defaulting to lr
    as in ``muon`` (pytorch-optimizer's ``AdaMuon`` uses 3e-4).  The
    defaults are pytorch-optimizer's, whose ``AdaMuon`` orthogonalizes m_t
    itself; the paper's sign-stabilised form orthogonalizes sign(m_t)
    (``sign_momentum=True``).

    Verified against a float64 NumPy transcription (1e-10 relative, both
    forms) and against pytorch-optimizer 4.1.0's ``AdaMuon`` in float32
    (its Newton-Schulz run in float32 instead of bfloat16).

    Args:
      learning_rate: lr of the matrices, a number >= 0 or a schedule.
      b1: the momentum decay, in [0, 1).
      b2: the decay of the second moment, in [0, 1).
      eps: added to sqrt(v_hat) and to the norm.
      weight_decay: decoupled weight decay of the matrices, >= 0.
      sign_momentum: orthogonalize sign(m_t) (the paper's form).
      ns_coeffs, ns_steps: the Newton-Schulz iteration (eps 1e-7, clamped).
      polar: another polar function or its name (``polar_function``).
      consistent_rms: the RMS of the update, as in ``scale_by_shape``.
      adam_learning_rate: AdamW's lr; None: ``learning_rate``.
      adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's.
      muon_weight_dimension_numbers, muon_mask: as in ``muon``.
      weight_decay_mask: which matrices decay.
      mu_dtype: the dtype m_t is stored in; None: each parameter's dtype.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.adamuon(0.02)
      >>> params = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
      >>> u, state = opt.update({"w": jnp.eye(2), "b": jnp.ones(2)}, opt.init(params), params)
      >>> [round(float(x), 4) for x in jnp.diag(u["w"])]   # RMS 0.2 * lr on the diagonal
      [-0.0057, -0.0057]

    Reference: Si, Zhang, Li, Lin, Chen, Lu, "AdaMuon: Adaptive Muon
    Optimizer", 2025, arXiv:2507.11005.
    """
    dims = muon_weight_dimension_numbers
    polar = _clamped_polar("adamuon", polar, ns_coeffs, ns_steps)
    adam = (adam_learning_rate, adam_b1, adam_b2, adam_eps, adam_weight_decay)
    matrices = (
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),
        scale_by_sign() if sign_momentum else identity(),
        orthogonalize(polar, weight_dimension_numbers=dims),
        scale_by_orthogonal_rms(b2, eps, weight_dimension_numbers=dims),
        scale_by_shape(dims, consistent_rms),
    )
    return _muon_partition(
        matrices, adam, learning_rate, weight_decay, weight_decay_mask, dims, muon_mask
    )


@recipe
def muonclip(
    learning_rate: Rate = 0.02,
    beta: Decay = 0.95,
    weight_decay: NonNegative = 0.0,
    qk_clip_threshold: Positive = 100.0,
    qk_clip_alpha: UnitInterval = 0.5,
    qk_labels=None,
    *,
    nesterov: bool = False,
    ns_coeffs: FiniteNumbers = NS_COEFFS,
    ns_steps=5,
    polar=None,
    consistent_rms=0.2,
    qk_head_axis=1,
    adam_learning_rate: OptionalRate = None,
    adam_b1: Decay = 0.9,
    adam_b2: Decay = 0.95,
    adam_eps: NonNegative = 1e-10,
    adam_weight_decay: NonNegative = 0.0,
    muon_weight_dimension_numbers=None,
    muon_mask=None,
    weight_decay_mask=None,
    mu_dtype: StateDtype = None,
):
    """MuonClip: Muon, then QK-clip: W_q <- gamma_h^alpha W_q, W_k <- gamma_h^(1 - alpha) W_k per head.

    For the matrices (``muon_labels``): m_t = beta m_{t-1} + g_t (with
    ``nesterov`` d_t = g_t + beta m_t, else d_t = m_t), O_t = polar(d_t),
    the step -lr (0.2 sqrt(max(fan_in, fan_out)) O_t + weight_decay W)
    (Moonlight's RMS matching, ``consistent_rms``); the other leaves
    ``adamw(adam_learning_rate, adam_b1, adam_b2, adam_eps,
    weight_decay=adam_weight_decay)``.  Then ``qk_clip``: the model passes
    the largest pre-softmax logit S_h of each head as
    ``update(grads, state, params, max_logits=...)``, and the query and key
    weights labelled by ``qk_labels`` of the heads with S_h > tau are
    shrunk by gamma_h = tau / S_h (split alpha, 1 - alpha).  An update
    without ``max_logits`` is the Muon step alone.  The defaults are
    pytorch-optimizer's ``MuonClip`` (adam_learning_rate defaults to lr as
    in ``muon``; theirs is 3e-4).

    Verified against a float64 NumPy transcription (1e-10 relative) and
    against pytorch-optimizer 4.1.0's ``MuonClip`` in float32 (its
    Newton-Schulz run in float32 instead of bfloat16).

    Args:
      learning_rate: lr of the matrices, a number >= 0 or a schedule.
      beta: the momentum decay, in [0, 1).
      weight_decay: decoupled weight decay of the matrices, >= 0.
      qk_clip_threshold: tau, > 0.
      qk_clip_alpha: alpha, in [0, 1].
      qk_labels: the leaves' roles, as ``labels`` of ``qk_clip``
        (``"query"``, ``"key"``, ``"query_rotary"``, ``"key_rotary"`` or
        None); None: nothing is clipped.
      nesterov: orthogonalize d_t = g_t + beta m_t.
      ns_coeffs, ns_steps: the Newton-Schulz iteration (eps 1e-7, clamped).
      polar: another polar function or its name (``polar_function``).
      consistent_rms: as in ``scale_by_shape``.
      qk_head_axis: the axis of the q/k weights that holds the heads (as
        ``head_axis`` of ``qk_clip``).
      adam_learning_rate: AdamW's lr; None: ``learning_rate``.
      adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's.
      muon_weight_dimension_numbers, muon_mask: as in ``muon``.
      weight_decay_mask: which matrices decay.
      mu_dtype: the dtype m_t is stored in; None: each parameter's dtype.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.muonclip(0.02, qk_clip_threshold=10.0, qk_labels={"q": "query", "k": "key"})
      >>> params = {"q": jnp.eye(2), "k": jnp.eye(2)}
      >>> u, _ = opt.update(params, opt.init(params), params, max_logits={"q": 40.0, "k": 40.0})
      >>> bool(jnp.all(gradtx.apply_updates(params, u)["q"] <= 0.5))
      True

    Reference: Kimi Team, "Kimi K2: Open Agentic Intelligence", 2025,
    arXiv:2507.20534; Liu et al., "Muon is Scalable for LLM Training", 2025,
    arXiv:2502.16982.
    """
    dims = muon_weight_dimension_numbers
    polar = _clamped_polar("muonclip", polar, ns_coeffs, ns_steps)
    adam = (adam_learning_rate, adam_b1, adam_b2, adam_eps, adam_weight_decay)
    matrices = (
        trace(beta, nesterov=nesterov, accumulator_dtype=mu_dtype),
        orthogonalize(polar, weight_dimension_numbers=dims),
        scale_by_shape(dims, consistent_rms),
    )
    return (
        _muon_partition(
            matrices, adam, learning_rate, weight_decay, weight_decay_mask, dims, muon_mask
        ),
        qk_clip(qk_labels, qk_clip_threshold, qk_clip_alpha, head_axis=qk_head_axis),
    )
