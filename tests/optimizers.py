"""The one table of every optimizer, read by every cross-optimizer test.

Each row names a case, its factory, typical hyperparameters for the shared
tests and the fewest arguments it needs (its defaults otherwise).  Flags say
which shared properties apply:

* ``elementwise``: the update of each entry depends on that entry alone
  (so ``flatten`` computes it exactly);
* ``converges``: it reaches the minimum of the shared convex problems with
  its typical hyperparameters.

A new optimizer adds one row here; the shared properties then cover it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import gradtx


def polyak_sgd(learning_rate=1.0, **kwargs):
    """gradtx.polyak_sgd with its largest step size as the learning rate the shared tests vary.

    Its update needs the loss, which the shared tests pass as ``value=`` to
    every optimizer (the others ignore it).
    """
    return gradtx.polyak_sgd(max_learning_rate=learning_rate, **kwargs)


class Row(NamedTuple):
    name: str
    factory: Callable
    typical: dict  # hyperparameters for the shared tests
    required: dict  # what the factory needs; everything else stays at its default
    elementwise: bool = True
    converges: bool = True


def cautious_adamw(**kwargs):
    """gradtx.cautious around gradtx.adamw (a named factory: rows are keyed by its name)."""
    return gradtx.cautious(gradtx.adamw(**kwargs))


def sam_sgd(learning_rate, rho=0.05):
    """SAM with SGD outside and a normalised ascent of radius rho (optax's documented use)."""
    return gradtx.chain(
        gradtx.sam(gradtx.sgd(learning_rate), gradtx.chain(gradtx.normalize(), gradtx.sgd(rho))),
        name="sam_sgd",
    )


def diloco_adamw(learning_rate, sync_period=3, outer_learning_rate=0.7, outer_momentum=0.9):
    """gradtx.diloco on one worker (axis_name=None): AdamW inside, DiLoCo's Nesterov SGD outside
    (a named chain, as sam_sgd: errors then name the row first)."""
    outer = gradtx.sgd(outer_learning_rate, outer_momentum, nesterov=True)
    return gradtx.chain(
        gradtx.diloco(gradtx.adamw(learning_rate), outer, sync_period=sync_period),
        name="diloco_adamw",
    )


OPTIMIZERS = [
    Row("sgd", gradtx.sgd, dict(learning_rate=0.1), dict(learning_rate=0.1)),
    Row(
        "sgd_nesterov",
        gradtx.sgd,
        dict(learning_rate=0.05, momentum=0.9, nesterov=True),
        dict(learning_rate=0.1),
    ),
    Row(
        "rmsprop",
        gradtx.rmsprop,
        dict(learning_rate=0.01, decay=0.9, eps=1e-6),
        dict(learning_rate=0.01),
    ),
    Row(
        "rmsprop_centered_momentum",
        gradtx.rmsprop,
        dict(learning_rate=0.01, centered=True, momentum=0.9, eps=1e-3),
        dict(learning_rate=0.01),
    ),
    Row("adagrad", gradtx.adagrad, dict(learning_rate=0.1), dict(learning_rate=0.1)),
    Row("adadelta", gradtx.adadelta, dict(learning_rate=1.0, rho=0.9, eps=1e-3), dict()),
    Row("adam", gradtx.adam, dict(learning_rate=0.01, b1=0.9, b2=0.99), dict(learning_rate=1e-3)),
    Row(
        "adamw", gradtx.adamw, dict(learning_rate=0.01, weight_decay=0.1), dict(learning_rate=1e-3)
    ),
    Row("amsgrad", gradtx.amsgrad, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    Row("nadam", gradtx.nadam, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    Row(
        "nadamw",
        gradtx.nadamw,
        dict(learning_rate=0.01, weight_decay=0.1),
        dict(learning_rate=1e-3),
    ),
    Row("radam", gradtx.radam, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    # optax's other optimizers (gradtx/_optimizers_optax.py).
    Row(
        "lion", gradtx.lion, dict(learning_rate=0.003, weight_decay=0.01), dict(learning_rate=1e-3)
    ),
    Row(
        "sign_sgd",
        gradtx.sign_sgd,
        dict(learning_rate=0.01),
        dict(learning_rate=1e-3),
        converges=False,
    ),
    Row(
        "signum", gradtx.signum, dict(learning_rate=0.01), dict(learning_rate=1e-3), converges=False
    ),
    Row(
        "lamb",
        gradtx.lamb,
        dict(learning_rate=0.01, weight_decay=0.01),
        dict(learning_rate=1e-3),
        elementwise=False,
    ),
    Row(
        "lars",
        gradtx.lars,
        dict(learning_rate=0.5, trust_coefficient=0.02),
        dict(learning_rate=0.1),
        elementwise=False,
    ),
    Row(
        "adafactor",
        gradtx.adafactor,
        dict(learning_rate=0.01, min_dim_size_to_factor=2),
        dict(learning_rate=0.01),
        elementwise=False,
        converges=False,
    ),
    Row(
        "adabelief", gradtx.adabelief, dict(learning_rate=0.01, eps=1e-8), dict(learning_rate=1e-3)
    ),
    Row("adamax", gradtx.adamax, dict(learning_rate=0.01), dict(learning_rate=1e-3)),
    Row(
        "adamaxw",
        gradtx.adamaxw,
        dict(learning_rate=0.01, weight_decay=0.01),
        dict(learning_rate=1e-3),
    ),
    Row("adan", gradtx.adan, dict(learning_rate=0.01), dict(learning_rate=1e-3)),
    Row(
        "novograd",
        gradtx.novograd,
        dict(learning_rate=0.01),
        dict(learning_rate=1e-3),
        elementwise=False,
    ),
    Row("yogi", gradtx.yogi, dict(learning_rate=0.01), dict(learning_rate=1e-3)),
    Row("sm3", gradtx.sm3, dict(learning_rate=0.1), dict(learning_rate=0.1), elementwise=False),
    Row(
        "fromage",
        gradtx.fromage,
        dict(learning_rate=0.01),
        dict(learning_rate=0.01),
        elementwise=False,
        converges=False,
    ),
    Row("rprop", gradtx.rprop, dict(learning_rate=0.01), dict(learning_rate=0.01)),
    Row(
        "optimistic_gradient_descent",
        gradtx.optimistic_gradient_descent,
        dict(learning_rate=0.05),
        dict(learning_rate=0.05),
    ),
    Row(
        "optimistic_adam",
        gradtx.optimistic_adam,
        dict(learning_rate=0.01),
        dict(learning_rate=1e-3),
    ),
    Row(
        "optimistic_adam_v2",
        gradtx.optimistic_adam_v2,
        dict(learning_rate=0.01),
        dict(learning_rate=1e-3),
    ),
    Row("polyak_sgd", polyak_sgd, dict(learning_rate=0.2), dict(), elementwise=False),
    Row(
        "noisy_sgd",
        gradtx.noisy_sgd,
        dict(learning_rate=0.05, key=0),
        dict(learning_rate=0.05),
        elementwise=False,
        converges=False,
    ),
    Row(
        "lbfgs",
        gradtx.lbfgs,
        dict(learning_rate=0.5, linesearch=None),
        dict(learning_rate=0.5, linesearch=None),
        elementwise=False,
    ),
    Row("laprop", gradtx.laprop, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    Row(
        "mars", gradtx.mars, dict(learning_rate=0.01, weight_decay=0.01), dict(), elementwise=False
    ),
    Row(
        "adam_mini",
        gradtx.adam_mini,
        dict(learning_rate=0.01, b2=0.99),
        dict(learning_rate=1e-3),
        elementwise=False,
    ),
    Row(
        "cautious_adamw",
        cautious_adamw,
        dict(learning_rate=0.01, weight_decay=0.1),
        dict(learning_rate=1e-3),
        elementwise=False,
    ),
    # optax.contrib's optimizers.
    Row(
        "schedule_free_adamw", gradtx.schedule_free_adamw, dict(learning_rate=0.05, b2=0.99), dict()
    ),
    Row(
        "schedule_free_sgd",
        gradtx.schedule_free_sgd,
        dict(learning_rate=0.1, weight_decay=1e-3),
        dict(learning_rate=0.1),
    ),
    Row(
        "ademamix",
        gradtx.ademamix,
        dict(learning_rate=0.01, b2=0.99, b3=0.999),
        dict(learning_rate=1e-3),
    ),
    Row(
        "simplified_ademamix",
        gradtx.simplified_ademamix,
        dict(learning_rate=0.002, b1=0.9, alpha=1.0),
        dict(learning_rate=1e-3),
    ),
    Row("adopt", gradtx.adopt, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    Row(
        "prodigy",
        gradtx.prodigy,
        dict(learning_rate=1.0, estim_lr0=1e-3),
        dict(),
        elementwise=False,
    ),
    Row(
        "dadapt_adamw",
        gradtx.dadapt_adamw,
        dict(learning_rate=1.0, estim_lr0=1e-3),
        dict(),
        elementwise=False,
    ),
    Row("madgrad", gradtx.madgrad, dict(learning_rate=0.01), dict(learning_rate=0.01)),
    Row(
        "sam",
        sam_sgd,
        dict(learning_rate=0.05, rho=0.01),
        dict(learning_rate=0.05),
        elementwise=False,
    ),
    # DoG's default first distance, 1e-6 (1 + ||x_0||), takes more than the 20
    # steps of the defaults test to grow.
    Row(
        "dog",
        gradtx.dog,
        dict(learning_rate=0.5, init_step=("distance", 0.1)),
        dict(init_step=("distance", 0.1)),
        elementwise=False,
    ),
    Row("dowg", gradtx.dowg, dict(learning_rate=1.0), dict(), elementwise=False),
    # COCOB is blind to the gradient's scale (the learning rate's) while |g| > eps:
    # a large eps lets the shared derivative test see the learning rate.
    Row("cocob", gradtx.cocob, dict(learning_rate=0.5, eps=10.0), dict()),
    # end of optax.contrib's optimizers.
    # Frontier optimizers: matrix methods (not elementwise).
    Row(
        "muon",
        gradtx.muon,
        dict(learning_rate=0.02),
        dict(learning_rate=0.02),
        elementwise=False,
        converges=False,
    ),
    Row(
        "muon_polar_express",
        gradtx.muon,
        dict(learning_rate=0.02, polar=gradtx.polar_express(), consistent_rms=0.2),
        dict(learning_rate=0.02),
        elementwise=False,
        converges=False,
    ),
    Row(
        "normuon",
        gradtx.normuon,
        dict(learning_rate=0.02),
        dict(),
        elementwise=False,
        converges=False,
    ),
    # SOAP's first step only sets up its bases: with weight decay it would only decay.
    Row(
        "soap",
        gradtx.soap,
        dict(learning_rate=0.01, precondition_frequency=2),
        dict(weight_decay=0.0),
        elementwise=False,
    ),
    # Shampoo in float32: jit fuses a vector's outer product g g^T into its
    # running sum (one FMA, one ulp off eager), and an inverse root H^(-1/p)
    # amplifies a change of H by about dH / lambda_min; with the default
    # matrix_eps = 1e-6 that reaches percents along directions without
    # curvature yet.  For the shared 1e-6 jit/eager check: matrix_eps = 1 and
    # vectors not preconditioned.
    Row(
        "shampoo",
        gradtx.shampoo,
        dict(learning_rate=0.05, matrix_eps=1.0, precondition_1d=False),
        dict(),
        elementwise=False,
    ),
    Row(
        "shampoo_graft_adagrad",
        gradtx.shampoo,
        dict(
            learning_rate=0.05,
            beta2=0.9,
            precondition_frequency=2,
            grafting="adagrad",
            momentum=0.5,
            matrix_eps=1.0,
            precondition_1d=False,
        ),
        dict(),
        elementwise=False,
    ),
    Row(
        "psgd_kron",
        gradtx.psgd_kron,
        dict(learning_rate=0.01, update_probability=0.5),
        dict(),
        elementwise=False,
        converges=False,
    ),
    # GaLore moves a matrix only within the subspace of its last refresh: no
    # convergence claim on the shared problems' few steps.
    Row(
        "galore",
        gradtx.galore,
        dict(learning_rate=0.01, rank=1, update_proj_gap=3),
        dict(learning_rate=0.01),
        elementwise=False,
        converges=False,
    ),
    Row(
        "diloco_adamw",
        diloco_adamw,
        dict(learning_rate=0.01, sync_period=3),
        dict(learning_rate=1e-3),
    ),
    Row(
        "spam",
        gradtx.spam,
        dict(learning_rate=0.01, update_proj_gap=6, warmup_epoch=2, grad_accu_steps=2),
        dict(),
    ),
    # Stable-SPAM and CAME rescale each leaf by statistics of the whole leaf.
    Row(
        "stable_spam",
        gradtx.stable_spam,
        dict(learning_rate=0.01, update_proj_gap=6),
        dict(),
        elementwise=False,
    ),
    Row("came", gradtx.came, dict(learning_rate=0.01), dict(), elementwise=False),
    # Low-rank orthonormalized updates: matrices move by s P Q^T (Dion) or by
    # a polar factor on a fraction of their slices (Dion2), the rest by AdamW.
    Row(
        "dion",
        gradtx.dion,
        dict(learning_rate=0.02, rank_fraction=0.5),
        dict(),
        elementwise=False,
    ),
    Row(
        "dion2",
        gradtx.dion2,
        dict(learning_rate=0.02, fraction=0.5),
        dict(),
        elementwise=False,
    ),
    # Muon's relatives and LMO methods (not elementwise; the constrained Scion
    # shrinks toward its norm ball, so no convergence claim for it).
    Row(
        "scion",
        gradtx.scion,
        dict(learning_rate=0.05, momentum=0.5),
        dict(),
        elementwise=False,
        converges=False,
    ),
    Row(
        "scion_unconstrained",
        gradtx.scion_unconstrained,
        dict(learning_rate=0.02, momentum=0.5),
        dict(),
        elementwise=False,
        converges=False,
    ),
    Row(
        "adamuon",
        gradtx.adamuon,
        dict(learning_rate=0.02),
        dict(),
        elementwise=False,
        converges=False,
    ),
    Row(
        "muonclip",
        gradtx.muonclip,
        dict(learning_rate=0.02),
        dict(),
        elementwise=False,
        converges=False,
    ),
    # SPlus takes fixed-size sign steps (no convergence claim on the shared
    # problems); its state holds the parameters' average (ema_params).
    Row(
        "splus",
        gradtx.splus,
        dict(learning_rate=0.05, inverse_steps=2),
        dict(),
        elementwise=False,
        converges=False,
    ),
    Row(
        "conda",
        gradtx.conda,
        dict(learning_rate=0.01, update_proj_gap=2),
        dict(),
        elementwise=False,
    ),
    # KL-Shampoo and KL-SOAP: the first step only sets up the bases (with
    # weight decay it would only decay).
    Row(
        "kl_shampoo",
        gradtx.kl_shampoo,
        dict(learning_rate=0.01, precondition_frequency=2),
        dict(learning_rate=0.01, weight_decay=0.0),
        elementwise=False,
    ),
    Row(
        "kl_soap",
        gradtx.kl_soap,
        dict(learning_rate=0.01, precondition_frequency=2),
        dict(learning_rate=0.01, weight_decay=0.0),
        elementwise=False,
    ),
    Row(
        "one_sided_shampoo",
        gradtx.one_sided_shampoo,
        dict(learning_rate=0.01, eps=1e-8),
        dict(learning_rate=0.01),
        elementwise=False,
    ),
]
IDS = [row.name for row in OPTIMIZERS]


def typical(row, **overrides):
    """The row's optimizer with its typical hyperparameters (and ``overrides``)."""
    return row.factory(**{**row.typical, **overrides})
