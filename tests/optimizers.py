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

from typing import Callable, NamedTuple

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
    typical: dict   # hyperparameters for the shared tests
    required: dict  # what the factory needs; everything else stays at its default
    elementwise: bool = True
    converges: bool = True


def cautious_adamw(**kwargs):
    """gradtx.cautious around gradtx.adamw (a named factory: rows are keyed by its name)."""
    return gradtx.cautious(gradtx.adamw(**kwargs))


OPTIMIZERS = [
    Row("sgd", gradtx.sgd, dict(learning_rate=0.1), dict(learning_rate=0.1)),
    Row("sgd_nesterov", gradtx.sgd, dict(learning_rate=0.05, momentum=0.9, nesterov=True),
        dict(learning_rate=0.1)),
    Row("rmsprop", gradtx.rmsprop, dict(learning_rate=0.01, decay=0.9, eps=1e-6),
        dict(learning_rate=0.01)),
    Row("rmsprop_centered_momentum", gradtx.rmsprop,
        dict(learning_rate=0.01, centered=True, momentum=0.9, eps=1e-3), dict(learning_rate=0.01)),
    Row("adagrad", gradtx.adagrad, dict(learning_rate=0.1), dict(learning_rate=0.1)),
    Row("adadelta", gradtx.adadelta, dict(learning_rate=1.0, rho=0.9, eps=1e-3), dict()),
    Row("adam", gradtx.adam, dict(learning_rate=0.01, b1=0.9, b2=0.99), dict(learning_rate=1e-3)),
    Row("adamw", gradtx.adamw, dict(learning_rate=0.01, weight_decay=0.1), dict(learning_rate=1e-3)),
    Row("amsgrad", gradtx.amsgrad, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    Row("nadam", gradtx.nadam, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    Row("nadamw", gradtx.nadamw, dict(learning_rate=0.01, weight_decay=0.1),
        dict(learning_rate=1e-3)),
    Row("radam", gradtx.radam, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    # optax's other optimizers (gradtx/_optimizers_optax.py).
    Row("lion", gradtx.lion, dict(learning_rate=0.003, weight_decay=0.01),
        dict(learning_rate=1e-3)),
    Row("sign_sgd", gradtx.sign_sgd, dict(learning_rate=0.01), dict(learning_rate=1e-3),
        converges=False),
    Row("signum", gradtx.signum, dict(learning_rate=0.01), dict(learning_rate=1e-3),
        converges=False),
    Row("lamb", gradtx.lamb, dict(learning_rate=0.01, weight_decay=0.01), dict(learning_rate=1e-3),
        elementwise=False),
    Row("lars", gradtx.lars, dict(learning_rate=0.5, trust_coefficient=0.02),
        dict(learning_rate=0.1), elementwise=False),
    Row("adafactor", gradtx.adafactor, dict(learning_rate=0.01, min_dim_size_to_factor=2),
        dict(learning_rate=0.01), elementwise=False, converges=False),
    Row("adabelief", gradtx.adabelief, dict(learning_rate=0.01, eps=1e-8),
        dict(learning_rate=1e-3)),
    Row("adamax", gradtx.adamax, dict(learning_rate=0.01), dict(learning_rate=1e-3)),
    Row("adamaxw", gradtx.adamaxw, dict(learning_rate=0.01, weight_decay=0.01),
        dict(learning_rate=1e-3)),
    Row("adan", gradtx.adan, dict(learning_rate=0.01), dict(learning_rate=1e-3)),
    Row("novograd", gradtx.novograd, dict(learning_rate=0.01), dict(learning_rate=1e-3),
        elementwise=False),
    Row("yogi", gradtx.yogi, dict(learning_rate=0.01), dict(learning_rate=1e-3)),
    Row("sm3", gradtx.sm3, dict(learning_rate=0.1), dict(learning_rate=0.1), elementwise=False),
    Row("fromage", gradtx.fromage, dict(learning_rate=0.01), dict(learning_rate=0.01),
        elementwise=False, converges=False),
    Row("rprop", gradtx.rprop, dict(learning_rate=0.01), dict(learning_rate=0.01)),
    Row("optimistic_gradient_descent", gradtx.optimistic_gradient_descent,
        dict(learning_rate=0.05), dict(learning_rate=0.05)),
    Row("optimistic_adam", gradtx.optimistic_adam, dict(learning_rate=0.01),
        dict(learning_rate=1e-3)),
    Row("polyak_sgd", polyak_sgd, dict(learning_rate=0.2), dict(), elementwise=False),
    Row("noisy_sgd", gradtx.noisy_sgd, dict(learning_rate=0.05, key=0), dict(learning_rate=0.05),
        elementwise=False, converges=False),
    Row("lbfgs", gradtx.lbfgs, dict(learning_rate=0.5, linesearch=None),
        dict(learning_rate=0.5, linesearch=None), elementwise=False),
    Row("laprop", gradtx.laprop, dict(learning_rate=0.01, b2=0.99), dict(learning_rate=1e-3)),
    Row("mars", gradtx.mars, dict(learning_rate=0.01, weight_decay=0.01), dict(),
        elementwise=False),
    Row("adam_mini", gradtx.adam_mini, dict(learning_rate=0.01, b2=0.99),
        dict(learning_rate=1e-3), elementwise=False),
    Row("cautious_adamw", cautious_adamw,
        dict(learning_rate=0.01, weight_decay=0.1), dict(learning_rate=1e-3), elementwise=False),
]
IDS = [row.name for row in OPTIMIZERS]


def typical(row, **overrides):
    """The row's optimizer with its typical hyperparameters (and ``overrides``)."""
    return row.factory(**{**row.typical, **overrides})
