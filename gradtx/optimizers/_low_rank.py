"""Low-rank orthonormalized updates: Dion and Dion2.

Like Muon, each matrix moves along an orthonormalized direction; unlike
Muon, only part of its momentum is orthonormalized per step (a rank-r
approximation for Dion, a fraction of its rows or columns for Dion2) and the
rest stays in the buffer by error feedback, which is what makes them cheap
on sharded matrices.  The other leaves (scalars, vectors, >2-D) go to AdamW
through one ``partition`` with ``muon_labels``, as in ``muon``.  Shared
pieces: ``scale_by_dion``, ``scale_by_dion2`` (``_dion``).
"""

from __future__ import annotations

from typing import Annotated

from .._checks import Decay, InRange, NonNegative, OptionalRate, Rate, StateDtype, UnitInterval
from .._dion import scale_by_dion, scale_by_dion2
from .._recipe import recipe
from ._matrix import _muon_partition

Fraction = Annotated[float, InRange(0, 1, low_open=True)]


def _dion(
    step,
    dims,
    learning_rate,
    weight_decay,
    epsilon,
    *,
    mu_dtype,
    adam_learning_rate,
    adam_b1,
    adam_b2,
    adam_weight_decay,
    dion_mask,
    weight_decay_mask,
    **_,
):
    """Dion's and Dion2's routing, from the recipe's arguments: ``step`` on the matrices.

    The other leaves take AdamW with eps ``epsilon`` and weight decay
    ``adam_weight_decay``, or ``weight_decay`` where that is None; the
    arguments of ``step`` are left out (``**_``).
    """
    wd = weight_decay if adam_weight_decay is None else adam_weight_decay
    adam = (adam_learning_rate, adam_b1, adam_b2, epsilon, wd)
    return _muon_partition(
        (step,),
        adam,
        learning_rate,
        weight_decay,
        weight_decay_mask,
        dims,
        dion_mask,
        mu_dtype=mu_dtype,
    )


@recipe
def dion(
    learning_rate: Rate = 0.01,
    rank_fraction: Fraction = 1.0,
    mu: UnitInterval = 0.95,
    weight_decay: NonNegative = 0.01,
    epsilon: NonNegative = 1e-8,
    *,
    rank=None,
    rank_multiple_of=1,
    power_iters=1,
    adjust_lr="spectral_norm",
    seed=0,
    mu_dtype: StateDtype = None,
    adam_learning_rate: OptionalRate = None,
    adam_b1: Decay = 0.9,
    adam_b2: Decay = 0.95,
    adam_weight_decay=None,
    dion_weight_dimension_numbers=None,
    dion_mask=None,
    weight_decay_mask=None,
):
    """Dion: X_t = X_{t-1} - lr (s P_t Q_t^T + weight_decay X_{t-1}) for matrices, AdamW for the rest.

    P_t Q_t^T is ``scale_by_dion``'s rank-r orthonormalized update (one
    power iteration on the momentum buffer from the persistent right factor
    Q, column normalisation, error feedback at rate 1 - mu) and s =
    sqrt(fan_out / fan_in).  Every 2-D leaf is Dion's (``dion_mask`` chooses
    otherwise, as ``muon_mask`` does in ``muon``); the others go to
    ``adamw(adam_learning_rate, adam_b1, adam_b2, epsilon,
    weight_decay=adam_weight_decay)``.  Keywords and defaults are
    microsoft/dion's ``Dion`` (lr 0.01, rank_fraction 1, mu 0.95,
    weight_decay 0.01 for every parameter, betas (0.9, 0.95) for AdamW).

    Verified in float64 for 50 steps against a NumPy transcription of the
    paper's Algorithm 1 (tall, wide, square, rank < min(m, n), a mixed
    pytree): within 1e-10 relative; and by hand in float32 against
    microsoft/dion's single-device ``dion_reference.Dion`` (same Q_0, QR and
    randomized Cholesky QR) for 50 steps: within 3e-6 relative.

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      rank_fraction, mu, epsilon, rank: as in ``scale_by_dion``.
      rank_multiple_of, power_iters, adjust_lr, seed, mu_dtype: as in ``scale_by_dion``.
      weight_decay: decoupled weight decay of the matrices, times lr.
      adam_learning_rate: AdamW's lr; None: ``learning_rate``.
      adam_b1, adam_b2: AdamW's betas.
      adam_weight_decay: AdamW's weight decay; None: ``weight_decay``.
      dion_weight_dimension_numbers: as ``weight_dimension_numbers`` of
        ``scale_by_dion``, where a None entry sends the leaf to AdamW.
      dion_mask: which leaves are Dion's (a pytree of bools or a function of
        the params); None: the 2-D leaves.
      weight_decay_mask: which matrices decay (as ``add_decayed_weights``).

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.dion(0.01, rank_fraction=0.5)
      >>> params = {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}
      >>> u, state = opt.update({"w": jnp.eye(4), "b": jnp.ones(4)}, opt.init(params), params)
      >>> u["w"].shape, float(u["b"][0])
      ((4, 4), -0.01)

    Reference: Ahn, Xu, Abreu, Langford, "Dion: Distributed Orthonormalized
    Updates", 2025, arXiv:2504.05295.
    """
    dims = dion_weight_dimension_numbers
    step = scale_by_dion(
        rank_fraction,
        mu,
        epsilon,
        rank=rank,
        rank_multiple_of=rank_multiple_of,
        power_iters=power_iters,
        adjust_lr=adjust_lr,
        seed=seed,
        mu_dtype=mu_dtype,
        weight_dimension_numbers=dims,
    )
    return _dion(**locals())


@recipe
def dion2(
    learning_rate: Rate = 0.01,
    fraction: Fraction = 0.25,
    ef_decay: UnitInterval = 0.95,
    weight_decay: NonNegative = 0.01,
    epsilon: NonNegative = 1e-8,
    *,
    polar=None,
    adjust_lr="spectral_norm",
    mu_dtype: StateDtype = None,
    adam_learning_rate: OptionalRate = None,
    adam_b1: Decay = 0.9,
    adam_b2: Decay = 0.95,
    adam_weight_decay=None,
    dion_weight_dimension_numbers=None,
    dion_mask=None,
    weight_decay_mask=None,
):
    """Dion2: X_t = X_{t-1} - lr (s polar(M_t[S_t]) + weight_decay X_{t-1}) for matrices, AdamW for the rest.

    ``scale_by_dion2``: the momentum buffer takes the gradient, the
    ``fraction`` of its rows (or columns, whichever side is shorter) with
    the largest L1 norms is orthonormalized and applied in place, and those
    slices of the buffer decay by ``ef_decay``; s = sqrt(fan_out / fan_in).
    The other leaves go to ``adamw(adam_learning_rate, adam_b1, adam_b2,
    epsilon, weight_decay=adam_weight_decay)``.  Keywords and defaults are
    microsoft/dion's ``Dion2`` (lr 0.01, fraction 0.25, ef_decay 0.95,
    weight_decay 0.01, betas (0.9, 0.95) for AdamW, Polar Express).

    Verified in float64 for 50 steps against a NumPy transcription of the
    update (polar by SVD on both sides): within 1e-10 relative; and by hand
    in float32 against microsoft/dion's single-device ``Dion2`` with an SVD
    polar for 50 steps: within 1.1e-4 relative (that code rounds the
    selected submatrix to bfloat16 before orthonormalizing it).

    Args:
      learning_rate: lr, a number >= 0 or a schedule.
      fraction, ef_decay, polar, adjust_lr, mu_dtype: as in ``scale_by_dion2``.
      weight_decay: decoupled weight decay of the matrices, times lr.
      epsilon: AdamW's eps.
      adam_learning_rate: AdamW's lr; None: ``learning_rate``.
      adam_b1, adam_b2: AdamW's betas.
      adam_weight_decay: AdamW's weight decay; None: ``weight_decay``.
      dion_weight_dimension_numbers, dion_mask, weight_decay_mask: as in ``dion``.

    Example:
      >>> import jax.numpy as jnp, gradtx
      >>> opt = gradtx.dion2(0.01, fraction=0.5, weight_decay=0.0)
      >>> params = {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}
      >>> u, state = opt.update({"w": jnp.eye(4), "b": jnp.ones(4)}, opt.init(params), params)
      >>> int((jnp.abs(u["w"]).sum(axis=0) > 0).sum())   # half the columns move
      2

    Reference: Ahn et al., "Dion2: A Simple Method to Shrink Matrix in
    Muon", 2025, arXiv:2512.16928.
    """
    dims = dion_weight_dimension_numbers
    step = scale_by_dion2(
        fraction,
        ef_decay,
        polar=polar,
        adjust_lr=adjust_lr,
        mu_dtype=mu_dtype,
        weight_dimension_numbers=dims,
    )
    return _dion(**locals())
