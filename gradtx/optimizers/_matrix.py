"""Matrix methods: 2-D weights updated as matrices.  Muon and NorMuon (the polar
factor of the momentum), SOAP, Shampoo and PSGD Kron (Kronecker-factored
preconditioners), KL-Shampoo, KL-SOAP and one-sided Shampoo (factors fitted
by KL minimization, or one side only), SPlus (the sign of the momentum in
Shampoo's eigenbasis), GaLore (Adam on low-rank projections).

Each recipe says what it does with the other leaves (scalars, vectors,
>2-D): Muon routes them to AdamW with ``partition``; the preconditioners
treat them as their docstrings say.  Shared pieces: ``orthogonalize``,
``newton_schulz`` and ``scale_by_shape`` (``_orthogonal``),
``scale_by_soap``, ``scale_by_shampoo``, ``scale_by_psgd_kron``,
``scale_by_galore`` (``_matrix``), ``scale_by_kl_shampoo``, ``scale_by_kl_soap``,
``scale_by_one_sided_shampoo`` (``_kl_shampoo``), ``scale_by_splus`` (``_splus``),
``graft``.
"""

from __future__ import annotations

import jax

from .._averaging import ema_params
from .._checks import (
    Decay,
    FiniteNumbers,
    NonNegative,
    OptionalDecay,
    OptionalRate,
    Rate,
    StateDtype,
    check_transformation,
)
from .._combine import chain
from .._graft import graft
from .._kl_shampoo import scale_by_kl_shampoo, scale_by_kl_soap, scale_by_one_sided_shampoo
from .._matrix import scale_by_galore, scale_by_psgd_kron, scale_by_shampoo, scale_by_soap
from .._momentum import bias_correction, scale_by_momentum, scale_by_nadam_momentum, trace
from .._orthogonal import (
    NS_COEFFS,
    leaf_dimension_numbers,
    newton_schulz,
    orthogonalize,
    polar_function,
    scale_by_neuron_rms,
    scale_by_shape,
)
from .._partition import partition
from .._recipe import recipe
from .._scaling import identity, scale_by_learning_rate
from .._second_moment import (
    scale_by_rss,
)
from .._splus import scale_by_splus, scale_by_splus_shape
from .._tree import is_mask_function
from .._weight_decay import add_decayed_weights
from ._adam import adam_step, adamw


def muon_labels(muon_weight_dimension_numbers=None, muon_mask=None):
    """``params -> labels``: "muon" for the leaves Muon orthogonalizes, "adam" for the rest.

    By default every 2-D leaf is Muon's.  ``muon_mask`` (a pytree of bools
    shaped like the params or a prefix of them, or a function ``params ->
    that pytree``) chooses instead; with ``muon_weight_dimension_numbers``
    (optax's convention) the leaves whose entry is None are AdamW's.
    """

    def labels(params):
        if muon_mask is not None:
            mask = muon_mask(params) if is_mask_function(muon_mask) else muon_mask
            return jax.tree.map(
                lambda m, sub: jax.tree.map(lambda _: "muon" if m else "adam", sub), mask, params
            )
        if muon_weight_dimension_numbers is None:
            return jax.tree.map(lambda p: "muon" if p.ndim == 2 else "adam", params)
        dims = leaf_dimension_numbers(muon_weight_dimension_numbers, params)
        leaves, treedef = jax.tree.flatten(params)
        return treedef.unflatten(["adam" if d is None else "muon" for d in dims])

    return labels


def _muon_partition(
    matrices,
    adam,
    learning_rate,
    weight_decay,
    weight_decay_mask,
    dims=None,
    mask=None,
    *,
    labels=None,
    key="muon",
    **options,
):
    """Muon's routing: ``matrices`` on the matrices, AdamW on the other leaves.

    Args:
      matrices: the matrices' direction, a tuple of transforms; decoupled
        weight decay and the learning rate follow it.
      adam: ``(learning_rate, b1, b2, eps, weight_decay)`` of the AdamW
        on the other leaves; a learning rate of None is ``learning_rate``.
      learning_rate: lr of the matrices.
      weight_decay: decoupled weight decay of the matrices.
      weight_decay_mask: which matrices decay.
      dims, mask: the matrices, as ``muon_labels`` reads them.
      labels: other labels (``key`` for the matrices, ``"adam"`` for the
        others) instead of ``muon_labels(dims, mask)``.
      key: the matrices' label.
      options: AdamW's other keywords.

    Returns:
      The ``partition`` of the two optimizers.
    """
    adam_learning_rate, b1, b2, eps, adam_weight_decay = adam
    steps = chain(
        *matrices,
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )
    others = adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        b1,
        b2,
        eps,
        weight_decay=adam_weight_decay,
        **options,
    )
    labels = muon_labels(dims, mask) if labels is None else labels
    return partition({key: steps, "adam": others}, labels)


@recipe
def muon(
    learning_rate: Rate,
    ns_coeffs: FiniteNumbers = NS_COEFFS,
    ns_steps=5,
    beta: Decay = 0.95,
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.0,
    weight_decay_mask=None,
    mu_dtype: StateDtype = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning="frobenius",
    adam_b1: Decay = 0.9,
    adam_b2: Decay = 0.999,
    adam_eps_root=0.0,
    adam_weight_decay=0.0,
    adam_learning_rate: OptionalRate = None,
    muon_weight_dimension_numbers=None,
    consistent_rms=None,
    muon_mask=None,
    polar=None,
    shard_matrices=None,
):
    """Muon: W_t = W_{t-1} - lr * (s(W) * polar(m_hat_t) + weight_decay * W_{t-1}) for matrices, AdamW for the rest.

    m_hat_t is the (Nesterov) bias-corrected momentum of ``scale_by_muon``,
    polar its Newton-Schulz polar factor and s(W) the shape factor of
    ``scale_by_shape`` (sqrt(max(1, fan_out / fan_in)), or consistent_rms *
    sqrt(max(fan_in, fan_out))).  Every 2-D leaf is Muon's; the others
    (scalars, vectors, >2-D) go to ``adamw(adam_learning_rate, adam_b1,
    adam_b2, eps, adam_eps_root, weight_decay=adam_weight_decay,
    nesterov=nesterov)``, all through one ``partition``.  Embeddings and the
    output head are 2-D but belong to AdamW too (Jordan): pass ``muon_mask``.
    optax's ``optax.contrib.muon``, with its keywords and defaults (note
    nesterov=True also makes the AdamW part NAdamW, as in optax).

    Verified against optax.contrib.muon 0.2.8 for 120 steps on a nested
    quadratic and a small MLP (and Rosenbrock, all AdamW): float64 within
    1e-10 relative (every preconditioning, "dion", adaptive), float32 within
    1e-5 relative plus 1e-6 absolute; and against a float64 NumPy
    transcription within 1e-10.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      ns_coeffs, ns_steps, beta, mu_dtype: as in ``scale_by_muon``.
      eps: as in ``scale_by_muon``, and AdamW's eps.
      nesterov, adaptive, preconditioning: as in ``scale_by_muon``.
      weight_decay: decoupled weight decay of the Muon leaves, times lr.
      weight_decay_mask: which Muon leaves decay (as ``add_decayed_weights``).
      adam_b1, adam_b2, adam_eps_root, adam_weight_decay: AdamW's.
      adam_learning_rate: AdamW's lr; None: ``learning_rate``.
      muon_weight_dimension_numbers: as ``weight_dimension_numbers`` of
        ``orthogonalize``, where a None entry sends the leaf to AdamW.
      consistent_rms: as in ``scale_by_shape`` (0.2 matches AdamW's RMS).
      muon_mask: gradtx's addition: which leaves are Muon's (a pytree of
        bools or a function of the params); None: the 2-D leaves.
      polar: gradtx's addition: a polar function (``polar_express()``) or
        its name: ``"newton_schulz"`` (the default: ``newton_schulz(ns_coeffs,
        ns_steps, eps=eps, preconditioning=preconditioning)``),
        ``"polar_express"`` (``polar_express(ns_steps)``) or ``"svd"``.
      shard_matrices: gradtx's addition: ``(mesh, axis)`` to split the
        orthogonalization over a mesh axis (see ``orthogonalize``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.muon(0.02)
      >>> params = {"w": jnp.eye(2), "b": jnp.zeros(2)}
      >>> u, state = opt.update({"w": jnp.eye(2), "b": jnp.ones(2)}, opt.init(params), params)
      >>> gradtx.apply_updates(params, u)["b"]
      Array([-0.02, -0.02], dtype=float32)

    Reference: Jordan et al., "Muon: An optimizer for hidden layers in neural
    networks", 2024; Liu et al., "Muon is Scalable for LLM Training", 2025,
    arXiv:2502.16982.
    """
    polar = polar_function(
        "muon",
        "newton_schulz" if polar is None else polar,
        ns_coeffs=ns_coeffs,
        ns_steps=ns_steps,
        eps=eps,
        preconditioning=preconditioning,
    )
    dims = muon_weight_dimension_numbers
    if nesterov:
        momentum = scale_by_nadam_momentum(beta, momentum_decay=None, mu_dtype=mu_dtype)
    else:
        momentum = chain(
            scale_by_momentum(beta, ema=True, mu_dtype=mu_dtype), bias_correction(beta)
        )
    matrices = (
        momentum,
        orthogonalize(
            polar, adaptive=adaptive, weight_dimension_numbers=dims, shard_matrices=shard_matrices
        ),
        scale_by_shape(dims, consistent_rms),
    )
    adam = (adam_learning_rate, adam_b1, adam_b2, eps, adam_weight_decay)
    options = {"eps_root": adam_eps_root, "mu_dtype": mu_dtype, "nesterov": nesterov}
    return _muon_partition(
        matrices, adam, learning_rate, weight_decay, weight_decay_mask, dims, muon_mask, **options
    )


@recipe
def normuon(
    learning_rate: Rate = 0.02,
    beta: Decay = 0.95,
    beta2: Decay = 0.95,
    weight_decay: NonNegative = 0.0,
    eps=1e-10,
    *,
    nesterov: bool = True,
    polar=None,
    consistent_rms=None,
    adam_learning_rate: OptionalRate = None,
    adam_b1=0.9,
    adam_b2=0.95,
    adam_eps=1e-10,
    adam_weight_decay=0.0,
    muon_weight_dimension_numbers=None,
    muon_mask=None,
    weight_decay_mask=None,
):
    """NorMuon: Muon with a neuron-wise second moment after the orthogonalization.

    For the matrices (``muon_labels``: 2-D leaves unless told otherwise):
    m_t = beta m_{t-1} + (1 - beta) g_t, d_t = beta m_t + (1 - beta) g_t
    (``nesterov``; else d_t = m_t), O_t = polar(d_t), then
    ``scale_by_neuron_rms(beta2, eps)`` (each output neuron divided by its
    running RMS, the Frobenius norm kept), ``scale_by_shape`` (sqrt(max(1,
    fan_out / fan_in))) and p_t = p_{t-1} - lr (u_t + weight_decay p_{t-1}).
    The other leaves: ``adamw(adam_learning_rate, adam_b1, adam_b2,
    adam_eps, weight_decay=adam_weight_decay)``, adam_learning_rate
    defaulting to lr as in ``muon`` (pytorch-optimizer's ``NorMuon`` uses
    3e-4).  Other defaults are the authors' and pytorch-optimizer's (norm-preserving scaling; the
    paper's Algorithm 1 instead scales to RMS 0.2, ``consistent_rms=0.2``
    here up to the kept norm).  polar defaults to
    ``newton_schulz(eps=1e-7)`` in the input's precision (the authors run it
    in bfloat16: ``newton_schulz(eps=1e-7, dtype=jnp.bfloat16)``).

    Verified in float64 for 120 steps against a NumPy transcription of the
    authors' update (1e-10 relative).

    Args:
      learning_rate: lr of the matrices, a number >= 0 or a schedule.
      beta: the momentum decay, in [0, 1).
      beta2: the decay of the neuron-wise second moment, in [0, 1).
      weight_decay: decoupled weight decay of the matrices, >= 0.
      eps: the neuron-wise normalisation's stabiliser.
      nesterov: use the look-ahead d_t.
      polar: the polar function.
      consistent_rms: as in ``scale_by_shape``.
      adam_learning_rate: AdamW's lr; None: ``learning_rate``.
      adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's.
      muon_weight_dimension_numbers, muon_mask: as in ``muon``.
      weight_decay_mask: which matrices decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.normuon(0.02)
      >>> params = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
      >>> u, state = opt.update({"w": jnp.eye(2), "b": jnp.ones(2)}, opt.init(params), params)
      >>> float(jnp.linalg.norm(u["w"] + 0.02 * jnp.eye(2))) < 0.01
      True

    Reference: Li, Liu, Liang, Chen, Zhao, "NorMuon: Making Muon more
    efficient and scalable", 2025, arXiv:2510.05491.
    """
    polar = newton_schulz(eps=1e-7) if polar is None else polar
    dims = muon_weight_dimension_numbers
    adam = (adam_learning_rate, adam_b1, adam_b2, adam_eps, adam_weight_decay)
    matrices = (
        scale_by_momentum(beta, ema=True, nesterov=nesterov),
        orthogonalize(polar, weight_dimension_numbers=dims),
        scale_by_neuron_rms(beta2, eps, weight_dimension_numbers=dims),
        scale_by_shape(dims, consistent_rms),
    )
    return _muon_partition(
        matrices, adam, learning_rate, weight_decay, weight_decay_mask, dims, muon_mask
    )


@recipe
def soap(
    learning_rate: Rate = 3e-3,
    b1=0.95,
    b2=0.95,
    shampoo_beta=None,
    eps=1e-8,
    weight_decay: NonNegative = 0.01,
    precondition_frequency=10,
    *,
    max_precondition_dim=10000,
    precondition_1d: bool = False,
    weight_decay_mask=None,
):
    """SOAP: p_t = p_{t-1} - lr * (u_t + weight_decay * p_{t-1}), u_t Adam's step in Shampoo's eigenbasis.

    u_t is ``scale_by_soap``'s direction (the first step only sets up the
    eigenbases: u_1 = 0).  Defaults are the authors' (and
    pytorch-optimizer's ``SOAP``): betas (0.95, 0.95), a refresh every 10
    steps, weight decay 0.01.  Weight decay is decoupled, as in ``adamw``,
    and applied at every step; the authors' code decays the already-updated
    parameter and skips the first step, which differs by lr^2 * wd * u_t.
    Vectors and scalars get Adam (with SOAP's bias correction); >2-D leaves
    are rotated along every axis.

    Verified in float64 for 120 steps against a NumPy transcription of the
    equations (worst 4e-9 relative: the second gradient equals the first,
    and Adam's ratio turns the round-off of its null-space components into
    1e-11 differences) and against pytorch-optimizer 4.1.0's ``SOAP``
    (weight_decay=0): 5e-9 without a refresh, 2e-4 with refreshes every 3
    steps, because that code runs its QR in float32.  Where a statistic's
    null space has more than one dimension after the first step (a tall
    matrix's wide side), eigh picks an arbitrary basis of it and no two
    implementations agree there.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, shampoo_beta, eps: as in ``scale_by_soap``.
      precondition_frequency, max_precondition_dim: as in ``scale_by_soap``.
      precondition_1d: as in ``scale_by_soap``.
      weight_decay: decoupled weight decay, >= 0.
      weight_decay_mask: which parameters decay (as ``add_decayed_weights``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.soap(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.eye(2)}
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     u, state = opt.update({"w": jnp.array([[1.0, 0.0], [0.0, -2.0]])}, state, params)
      >>> float(u["w"][0, 0]), float(u["w"][1, 1])
      (-0.1, 0.1)

    Reference: Vyas et al., "SOAP: Improving and Stabilizing Shampoo using
    Adam", 2024, arXiv:2409.11321.
    """
    return (
        scale_by_soap(
            b1,
            b2,
            shampoo_beta,
            eps,
            precondition_frequency,
            max_precondition_dim=max_precondition_dim,
            precondition_1d=precondition_1d,
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


def _grafting(owner, grafting):
    if grafting is None:
        return None
    if isinstance(grafting, str):
        table = {"sgd": identity, "adagrad": lambda: scale_by_rss(0.0, 1e-8)}
        if grafting not in table:
            raise ValueError(
                f"{owner}: grafting must be None, 'sgd', 'adagrad' or a transform, got {grafting!r}"
            )
        return table[grafting]()
    check_transformation(owner, "grafting", grafting)
    return grafting


@recipe
def shampoo(
    learning_rate: Rate = 1e-3,
    beta2=1.0,
    matrix_eps=1e-6,
    precondition_frequency=1,
    *,
    grafting=None,
    momentum: OptionalDecay = None,
    weight_decay: NonNegative = 0.0,
    weight_decay_mask=None,
    exponent_override=None,
    max_precondition_dim=1024,
    precondition_1d: bool = False,
):
    """Shampoo: p_t = p_{t-1} - lr * (graft(G x_a H_a^(-1/2k), M(G)) [+ momentum] + weight_decay * p_{t-1}).

    The direction is ``scale_by_shampoo``'s (a matrix: L^(-1/4) G R^(-1/4));
    with ``grafting`` its length per leaf is the grafted method's:
    ``"adagrad"`` (``scale_by_rss(0.0, 1e-8)``, Anil et al.'s default),
    ``"sgd"`` (the gradient's norm) or any transform; None: no grafting
    (Gupta et al.).  ``momentum`` adds heavy-ball momentum after the graft.
    Defaults are pytorch-optimizer's ``Shampoo`` (lr 1e-3, matrix_eps 1e-6,
    roots every step, no grafting) except which axes are preconditioned:
    those of length at most 1024 in leaves of two or more axes (as Meta's
    Distributed Shampoo's 1024 cap), where pytorch-optimizer's preconditions
    every axis, vectors included (``max_precondition_dim=10000,
    precondition_1d=True`` do so).  Each preconditioned axis of length d
    costs two d x d matrices of state (8 MiB in float32 at d = 1024) and a
    d x d eigendecomposition per root computation (about a second at d =
    1024 on a few CPU cores; raise ``precondition_frequency`` there).

    Verified in float64 against a NumPy transcription of Gupta et al.'s
    Algorithm 2 (scalar, vector, matrix and 3-d leaves) and against
    pytorch-optimizer 4.1.0's ``Shampoo`` (momentum 0, no grafting, every
    axis preconditioned), within
    1e-10 relative for 120 steps (with matrix_eps = 1e-6 on a small MLP,
    1e-8: the inverse roots of eigenvalues near matrix_eps beside ones near
    1 multiply the eigensolver's round-off by 1e6).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      beta2, matrix_eps, precondition_frequency: as in ``scale_by_shampoo``.
      exponent_override, max_precondition_dim: as in ``scale_by_shampoo``.
      precondition_1d: as in ``scale_by_shampoo`` (False: vectors are not
        preconditioned).
      grafting: None, "sgd", "adagrad" or a transform (its step length).
      momentum: None or a heavy-ball coefficient in [0, 1).
      weight_decay: decoupled weight decay, >= 0.
      weight_decay_mask: which parameters decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.shampoo(0.1, grafting="sgd")
      >>> params = {"w": jnp.zeros((2, 2))}
      >>> u, state = opt.update({"w": jnp.array([[3.0, 0.0], [0.0, 4.0]])}, opt.init(params), params)
      >>> float(jnp.linalg.norm(u["w"]))
      0.5

    Reference: Gupta, Koren, Singer, "Shampoo: Preconditioned Stochastic
    Tensor Optimization", ICML 2018, arXiv:1802.09568; Anil, Gupta, Koren,
    Regan, Singer, "Scalable Second Order Optimization for Deep Learning",
    2020, arXiv:2002.09018.
    """
    magnitude = _grafting("shampoo", grafting)
    direction = scale_by_shampoo(
        beta2,
        matrix_eps,
        precondition_frequency,
        exponent_override=exponent_override,
        max_precondition_dim=max_precondition_dim,
        precondition_1d=precondition_1d,
    )
    return (
        direction if magnitude is None else graft(direction, magnitude),
        identity() if momentum is None else trace(momentum),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def psgd_kron(
    learning_rate: Rate = 1e-3,
    b1=0.9,
    weight_decay: NonNegative = 0.0,
    precond_lr: NonNegative = 0.1,
    update_probability=None,
    *,
    max_size_triangular=8192,
    min_ndim_triangular=2,
    seed=0,
    update_with_momentum: bool = True,
    weight_decay_mask=None,
):
    """PSGD-Kron: p_t = p_{t-1} - lr * (clip(P_t m_hat_t) + weight_decay * p_{t-1}).

    P_t = (Q_1^T Q_1) x ... x (Q_k^T Q_k) is a Kronecker-factored whitening
    preconditioner fitted, with probability ``update_probability`` per step,
    to the momentum's second moment (``scale_by_psgd_kron``).  Defaults are
    pytorch-optimizer's ``Kron`` (Evan Walters's kron_torch): lr 1e-3, b1
    0.9, fit step 0.1, always fitting for 500 steps then rarely, triangular
    factors up to 8192 for matrices and larger tensors, diagonal ones for
    vectors and scalars.  Kron decays only leaves of 2 or more axes: pass
    ``weight_decay_mask`` for that.  Kron also rebalances the factors' norms
    at random (1% of fits); gradtx does not (P is unchanged by it).

    Verified in float64 for 120 steps against a NumPy transcription of the
    fit above (1e-10 relative) and against pytorch-optimizer 4.1.0's
    ``Kron`` (balance_prob=0, the same probes), which runs its triangular
    solves in float32: 1e-5 relative.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, precond_lr, update_probability: as in ``scale_by_psgd_kron``.
      max_size_triangular, min_ndim_triangular: as in ``scale_by_psgd_kron``.
      seed, update_with_momentum: as in ``scale_by_psgd_kron``.
      weight_decay: decoupled weight decay, >= 0.
      weight_decay_mask: which parameters decay.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.psgd_kron(0.1)
      >>> params = {"w": jnp.zeros((2, 3))}
      >>> u, state = opt.update({"w": jnp.ones((2, 3))}, opt.init(params), params)
      >>> bool(jnp.sqrt(jnp.mean(u["w"] ** 2)) <= 0.11)
      True

    Reference: Li, "Preconditioned Stochastic Gradient Descent", 2015,
    arXiv:1512.04202; Li, "Black Box Lie Group Preconditioners for SGD",
    2022, arXiv:2211.04422.
    """
    return (
        scale_by_psgd_kron(
            b1,
            precond_lr,
            update_probability,
            max_size_triangular=max_size_triangular,
            min_ndim_triangular=min_ndim_triangular,
            seed=seed,
            update_with_momentum=update_with_momentum,
        ),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def galore(
    learning_rate: Rate,
    rank=128,
    update_proj_gap=200,
    scale=1.0,
    base_optimizer=None,
    weight_decay: Rate = 0.0,
    mask=None,
    weight_dimension_numbers=None,
):
    """GaLore: p_t = p_{t-1} - lr * (scale * P_t adam(P_t^T G_t) + weight_decay * p_{t-1}).

    P_t holds the first r = min(rank, m, n) left singular vectors of the
    m x n gradient G_t (m >= n; for m < n the right ones, and G_t P_t),
    refreshed by an SVD every ``update_proj_gap`` steps (``scale_by_galore``);
    Adam's moments live in the r-dimensional subspace.  Leaves that are not
    projected (by default all but the 2-D ones) take plain Adam steps.  The
    weight decay is decoupled and applied to the full parameters.
    optax's ``optax.contrib.galore``, with its keywords and defaults (its
    SVD runs in float32 even under x64, gradtx's in the leaf's dtype).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      rank, update_proj_gap, scale: as in ``scale_by_galore``.
      base_optimizer: the transform run in the subspace instead of Adam's
        step (b1 = 0.9, b2 = 0.999, eps = 1e-8); gradient-only, as in
        ``scale_by_galore``.
      weight_decay: decoupled weight decay, >= 0 or a schedule.
      mask: which parameters decay (a pytree of bools or a function of params).
      weight_dimension_numbers: which leaves are projected, as in ``scale_by_galore``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.galore(0.1, rank=1)
      >>> params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
      >>> u, state = opt.update({"w": jnp.ones((3, 2)), "b": jnp.ones(2)}, opt.init(params), params)
      >>> jnp.round(gradtx.apply_updates(params, u)["b"], 4)
      Array([-0.1, -0.1], dtype=float32)

    Reference: Zhao, Zhang, Chen, Wang, Anandkumar, Tian, "GaLore:
    Memory-Efficient LLM Training by Gradient Low-Rank Projection", ICML 2024,
    arXiv:2403.03507.
    """
    if base_optimizer is None:
        base_optimizer = adam_step(0.9, 0.999, 1e-8, 0.0)
    return (
        scale_by_galore(rank, update_proj_gap, scale, base_optimizer, weight_dimension_numbers),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def splus(
    learning_rate: Rate = 0.1,
    b1: Decay = 0.9,
    b2: Decay = 0.999,
    weight_decay: NonNegative = 1e-2,
    ema_rate: OptionalDecay = 0.999,
    inverse_steps=100,
    nonstandard_constant: NonNegative = 1e-3,
    max_dim=10000,
    eps: NonNegative = 1e-30,
    *,
    weight_decay_mask=None,
):
    """SPlus: p_t = p_{t-1} - lr * s * (Q_L sign(Q_L^T m_t Q_R) Q_R^T + weight_decay * p_{t-1}).

    The sign of the momentum in the eigenbasis of Shampoo's statistics
    (``scale_by_splus``), scaled by s = 2 / (m + n) for an m x n matrix and
    s = ``nonstandard_constant`` for other leaves (``scale_by_splus_shape``),
    with decoupled weight decay scaled by the same lr * s.  Vectors and
    scalars take signum steps.  With ``ema_rate`` the optimizer is wrapped in
    ``ema_params(..., decay=ema_rate, debias=True)``: ``state.states[0].ema`` holds
    the bias-corrected average of the parameters, the ones to evaluate with
    (pytorch-optimizer's ``eval()``); None keeps no average.  Keywords and
    defaults are pytorch-optimizer's ``SPlus`` (betas split into b1, b2;
    decoupled decay only).  That code decays the already-updated parameter,
    (p - lr s u)(1 - lr s wd), and averages it before the decay: both differ
    from this by lr^2 s^2 wd terms.

    Verified in float64 over 40 steps against a NumPy transcription of the
    equations (1e-10) and against pytorch-optimizer 4.1.0's ``SPlus`` at
    float32 (weight_decay=0; parameters and the evaluation average).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, inverse_steps, max_dim: as in ``scale_by_splus``.
      weight_decay: decoupled weight decay, >= 0.
      ema_rate: the decay of the parameters' average, in [0, 1), or None.
      nonstandard_constant: s of the leaves that are not matrices.
      weight_decay_mask: which parameters decay (as ``add_decayed_weights``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.splus(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.zeros((2, 3))}
      >>> u, state = opt.update({"w": jnp.ones((2, 3))}, opt.init(params), params)
      >>> round(float(u["w"][0, 0]), 6)  # -lr * 2 / (2 + 3)
      -0.04

    Reference: Frans, Levine, Abbeel, "A Stable Whitening Optimizer for
    Efficient Neural Network Training", 2025, arXiv:2506.07254.
    """
    steps = chain(
        scale_by_splus(b1, b2, eps, inverse_steps, max_dim),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_splus_shape(nonstandard_constant, max_dim),
        scale_by_learning_rate(learning_rate),
    )
    return steps if ema_rate is None else ema_params(steps, ema_rate, debias=True)


def _kl_recipe(
    scale_by,
    learning_rate,
    b1,
    b2,
    eps,
    weight_decay,
    precondition_frequency,
    *,
    weight_decay_mask,
    **options,
):
    """``kl_shampoo``'s and ``kl_soap``'s transforms, ``scale_by`` their direction.

    Args:
      scale_by: ``scale_by_kl_shampoo`` or ``scale_by_kl_soap``.
      learning_rate, b1, b2, eps, weight_decay: the recipe's.
      precondition_frequency, weight_decay_mask: the recipe's.
      options: the direction's keywords, as the recipe's.

    Returns:
      The direction, decoupled weight decay and the learning rate.
    """
    return (
        scale_by(b1, b2, eps, precondition_frequency, **options),
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )


@recipe
def kl_shampoo(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.98,
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.01,
    precondition_frequency=10,
    *,
    shampoo_beta: OptionalDecay = None,
    init_factor=0.1,
    eigenvalue_clamp=4000,
    max_precondition_dim=10000,
    precondition_1d: bool = False,
    weight_decay_mask=None,
):
    """KL-Shampoo: p_t = p_{t-1} - lr * (Q_L [Q_L^T m_t Q_R / (sqrt(D_L D_R^T) + eps)] Q_R^T + wd * p_{t-1}).

    The direction is ``scale_by_kl_shampoo``'s: Shampoo's two-sided
    preconditioner S_L^(-1/2) m S_R^(-1/2) with the factors fitted by KL
    minimisation (each to the gradient whitened by the other), their
    eigenvalues estimated every step and their eigenbases refreshed by one
    QR every ``precondition_frequency`` steps; no grafting and no Adam.  The
    first step only sets up the bases (u_1 = 0, so only the decay moves it).
    Defaults are the authors' code's (KLOpt's constructor): betas (0.9,
    0.98), eps 1e-8, weight decay 0.01, a refresh every 10 steps, D_0 = 0.1,
    the eigenvalue clamp 4000.  Weight decay is decoupled and applied at
    every step; the authors' code decays the already-updated parameter and
    skips the first step (a difference of lr^2 * wd * u_t).  Vectors and
    scalars get the diagonal form (m / (sqrt(D) + eps)); >2-D leaves one
    factor per axis.

    Verified in float64 for 40 steps against a NumPy transcription of the
    equations in Kronecker form (tall, wide, square, 3-D, vector and scalar
    leaves; 1e-10 relative) and in float32 against the authors' KLOpt (40
    steps, refreshes every 1, 3, 10): 3e-6 relative (per leaf norm) on
    matrices.  On 3-D leaves KLOpt fits two factors with eigenvalues it has
    already updated in the same step; gradtx updates every factor from the
    previous step's estimates, as it does for matrices (with that change,
    KLOpt agrees to 4e-6 there too).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, precondition_frequency: as in ``scale_by_kl_shampoo``.
      shampoo_beta, init_factor, eigenvalue_clamp: as there too.
      max_precondition_dim, precondition_1d: as there too.
      weight_decay: wd, decoupled weight decay, >= 0.
      weight_decay_mask: which parameters decay (as ``add_decayed_weights``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.kl_shampoo(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.zeros((2, 3))}
      >>> state = opt.init(params)
      >>> for _ in range(3):
      ...     u, state = opt.update({"w": jnp.ones((2, 3))}, state, params)
      >>> bool(jnp.all(u["w"] < 0))
      True

    Reference: Lin, Lowe, Dangel, Eschenhagen, Xu, Grosse, "Understanding and
    Improving Shampoo and SOAP via Kullback-Leibler Minimization", 2025,
    arXiv:2509.03378.
    """
    return _kl_recipe(scale_by_kl_shampoo, **locals())


@recipe
def kl_soap(
    learning_rate: Rate,
    b1: Decay = 0.9,
    b2: Decay = 0.98,
    eps: NonNegative = 1e-8,
    weight_decay: NonNegative = 0.01,
    precondition_frequency=10,
    *,
    shampoo_beta: OptionalDecay = None,
    init_factor=0.1,
    eigenvalue_clamp=4000,
    max_precondition_dim=10000,
    precondition_1d: bool = False,
    weight_decay_mask=None,
):
    """KL-SOAP: p_t = p_{t-1} - lr * (u_t + weight_decay * p_{t-1}), u_t Adam's step in KL-Shampoo's eigenbasis.

    u_t is ``scale_by_kl_soap``'s direction: Adam without bias correction
    run in the eigenbasis of KL-Shampoo's factors (fitted by KL
    minimisation, refreshed by a QR every ``precondition_frequency``
    steps).  The first step only sets up the bases.  Defaults, weight decay
    and leaves of other ranks as in ``kl_shampoo`` (vectors and scalars get
    Adam without bias correction).

    Verified in float64 for 40 steps against a NumPy transcription (1e-10
    relative) and in float32 against the authors' KLOpt(using_klsoap=True):
    4e-6 relative (per leaf norm) on matrices, and on 3-D leaves as
    ``kl_shampoo`` says.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      b1, b2, eps, precondition_frequency: as in ``scale_by_kl_soap``.
      shampoo_beta, init_factor, eigenvalue_clamp: as there too.
      max_precondition_dim, precondition_1d: as there too.
      weight_decay: wd, decoupled weight decay, >= 0.
      weight_decay_mask: which parameters decay (as ``add_decayed_weights``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.kl_soap(0.1, weight_decay=0.0)
      >>> params = {"w": jnp.eye(2)}
      >>> state = opt.init(params)
      >>> for _ in range(2):  # the second step: -lr 0.1 g / sqrt(0.02 g^2)
      ...     u, state = opt.update({"w": jnp.array([[1.0, 0.0], [0.0, -2.0]])}, state, params)
      >>> jnp.round(u["w"], 4) + 0.0
      Array([[-0.0707,  0.    ],
             [ 0.    ,  0.0707]], dtype=float32)

    Reference: Lin, Lowe, Dangel, Eschenhagen, Xu, Grosse, "Understanding and
    Improving Shampoo and SOAP via Kullback-Leibler Minimization", 2025,
    arXiv:2509.03378.
    """
    return _kl_recipe(scale_by_kl_soap, **locals())


def _one_sided_labels(params):
    """ "shampoo" for the leaves of two or more axes, "adam" for vectors and scalars."""
    return jax.tree.map(lambda p: "shampoo" if jax.numpy.ndim(p) >= 2 else "adam", params)


@recipe
def one_sided_shampoo(
    learning_rate: Rate,
    b1: Decay = 0.95,
    b2: Decay = 0.95,
    eps: NonNegative = 1e-12,
    weight_decay: NonNegative = 0.0,
    precondition_frequency=1,
    *,
    max_precondition_dim=10000,
    weight_decay_mask=None,
    adam_learning_rate: OptionalRate = None,
    adam_b1: Decay = 0.9,
    adam_b2: Decay = 0.95,
    adam_eps: NonNegative = 1e-8,
    adam_weight_decay: NonNegative = 0.0,
):
    """One-sided Shampoo: p_t = p_{t-1} - lr * ((H_hat_t + eps I)^(-1/2) m_hat_t + wd * p_{t-1}); AdamW elsewhere.

    The matrices' direction is ``scale_by_one_sided_shampoo``'s: one
    Kronecker factor H = EMA of G G^T / d_b on the shorter side (An et
    al.'s one-sided Shampoo, with a moving average), applied with exponent
    -1/2 to the bias-corrected momentum; with b1 = b2 = 0 it is sqrt(d_b)
    times Muon's polar factor (unit RMS).  Leaves of two or more axes are
    its (along their shortest axis);
    vectors and scalars go to ``adamw(adam_learning_rate, adam_b1, adam_b2,
    adam_eps, weight_decay=adam_weight_decay)`` through one ``partition``,
    as Muon routes them.

    Verified in float64 for 40 steps against a NumPy transcription (tall,
    wide, square and 3-D leaves; 1e-10 relative).

    Args:
      learning_rate: lr of the matrices, a number >= 0 or a schedule.
      b1, b2, eps, precondition_frequency, max_precondition_dim: as in
        ``scale_by_one_sided_shampoo``.
      weight_decay: wd, decoupled weight decay of the matrices, >= 0.
      weight_decay_mask: which matrices decay.
      adam_learning_rate: AdamW's lr; None: ``learning_rate``.
      adam_b1, adam_b2, adam_eps, adam_weight_decay: AdamW's.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.one_sided_shampoo(0.1, b1=0.0, b2=0.0, eps=0.0)
      >>> params = {"w": jnp.zeros((2, 2))}
      >>> u, state = opt.update({"w": jnp.array([[3.0, 0.0], [0.0, 0.5]])}, opt.init(params), params)
      >>> jnp.round(u["w"], 4) + 0.0  # -lr sqrt(2) times G's polar factor
      Array([[-0.1414,  0.    ],
             [ 0.    , -0.1414]], dtype=float32)

    Reference: An, Liu, Pan, Chen, Zhu, Wang, "ASGO: Adaptive Structured
    Gradient Optimization", 2025, arXiv:2503.20762; Lin et al.,
    "Understanding and Improving Shampoo and SOAP via Kullback-Leibler
    Minimization", 2025, arXiv:2509.03378.
    """
    matrices = (
        scale_by_one_sided_shampoo(
            b1, b2, eps, precondition_frequency, max_precondition_dim=max_precondition_dim
        ),
    )
    adam = (adam_learning_rate, adam_b1, adam_b2, adam_eps, adam_weight_decay)
    return _muon_partition(
        matrices,
        adam,
        learning_rate,
        weight_decay,
        weight_decay_mask,
        labels=_one_sided_labels,
        key="shampoo",
    )
