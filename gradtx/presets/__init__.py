"""Presets that reproduce other frameworks' optimizers number for number.

``gradtx.presets.torch`` takes ``torch.optim``'s argument names and defaults,
``gradtx.presets.keras`` those of ``keras.optimizers`` (Keras 3).  Each
returns an ordinary gradtx optimizer built from gradtx's public transforms;
neither module imports the other framework.  docs/porting.md tabulates the
conventions on which the frameworks differ.
"""

from . import keras as keras
from . import torch as torch
