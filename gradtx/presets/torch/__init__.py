"""PyTorch presets: ``torch.optim`` optimizers and schedulers as gradtx recipes.

Each optimizer here takes the arguments of the ``torch.optim`` class of the
same name, with PyTorch's defaults, and returns an ordinary gradtx optimizer:
a ``chain`` of public transforms whose parameter trajectory equals
PyTorch's to round-off (tests/test_presets_torch.py runs both side by side).
This package does not import torch::

    torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    gradtx.presets.torch.adamw(lr=3e-4, weight_decay=0.1)

Conventions PyTorch applies and the recipes reproduce: ``maximize`` negates
the gradient before anything else (``scale(-1)`` first in the chain);
``weight_decay`` is L2 (added to the gradient, so the second moments see it)
except in ``adamw`` and with ``decoupled_weight_decay=True``, where it is
p <- p - lr * wd * p.  ``foreach``, ``fused``, ``capturable`` and
``differentiable`` change how PyTorch computes, not what, and have no
counterpart.  Parameter groups are not modelled here: give each group its
own preset and combine them with a partitioning combinator.

Schedulers and step counting
----------------------------
A PyTorch scheduler rewrites ``param_group["lr"]`` each time
``scheduler.step()`` is called, usually once per epoch after that epoch's
optimizer steps; the first optimizer step runs with the scheduler's value at
k = 0.  A gradtx learning rate is a function of the optimizer step
t = 0, 1, 2, ...  The scheduler functions here return
``lr(t) = f(t // steps_per_epoch)``, where f is PyTorch's closed form at
scheduler step k and ``steps_per_epoch`` is the number of
``optimizer.step()`` calls between two ``scheduler.step()`` calls (1, the
default, when the scheduler is stepped after every batch, as ``OneCycleLR``
always is).  Pass the result as ``lr``.
"""

from ._lbfgs import lbfgs as lbfgs
from ._optimizers import adadelta as adadelta
from ._optimizers import adafactor as adafactor
from ._optimizers import adagrad as adagrad
from ._optimizers import adam as adam
from ._optimizers import adamax as adamax
from ._optimizers import adamw as adamw
from ._optimizers import asgd as asgd
from ._optimizers import asgd_averaged_params as asgd_averaged_params
from ._optimizers import muon as muon
from ._optimizers import nadam as nadam
from ._optimizers import radam as radam
from ._optimizers import rmsprop as rmsprop
from ._optimizers import rprop as rprop
from ._optimizers import sgd as sgd
from ._schedules import cosine_annealing_lr as cosine_annealing_lr
from ._schedules import exponential_lr as exponential_lr
from ._schedules import linear_lr as linear_lr
from ._schedules import one_cycle_lr as one_cycle_lr
from ._schedules import step_lr as step_lr

__all__ = [
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "nadam",
    "radam",
    "muon",
    "adamax",
    "rprop",
    "asgd",
    "asgd_averaged_params",
    "adafactor",
    "lbfgs",
    "step_lr",
    "exponential_lr",
    "cosine_annealing_lr",
    "linear_lr",
    "one_cycle_lr",
]
