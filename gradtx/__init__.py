"""gradtx: composable gradient transformations for JAX.

Every optimizer is a pure pair ``init(params) -> state`` and
``update(updates, state, params=None, **extra) -> (updates, state)``, built
as a short chain of the public transforms below.
"""

from ._base import EmptyState as EmptyState
from ._base import GradientTransformation as GradientTransformation
from ._base import ScheduleState as ScheduleState
from ._base import apply_updates as apply_updates
from ._base import identity as identity
from ._base import transform as transform
from ._combine import ChainState as ChainState
from ._combine import chain as chain
from ._flat import Packed as Packed
from ._flat import flatten as flatten
from ._flat import pack as pack
from ._momentum import BiasCorrectionState as BiasCorrectionState
from ._momentum import MomentumState as MomentumState
from ._momentum import bias_correction as bias_correction
from ._momentum import scale_by_momentum as scale_by_momentum
from ._momentum import scale_by_nesterov_momentum as scale_by_nesterov_momentum
from ._optimizers import adadelta as adadelta
from ._optimizers import adagrad as adagrad
from ._optimizers import adam as adam
from ._optimizers import adamw as adamw
from ._optimizers import amsgrad as amsgrad
from ._optimizers import rmsprop as rmsprop
from ._optimizers import sgd as sgd
from ._scaling import scale as scale
from ._scaling import scale_by_learning_rate as scale_by_learning_rate
from ._second_moment import AdadeltaState as AdadeltaState
from ._second_moment import CenteredRmsState as CenteredRmsState
from ._second_moment import MaxRmsState as MaxRmsState
from ._second_moment import RmsState as RmsState
from ._second_moment import RssState as RssState
from ._second_moment import scale_by_adadelta as scale_by_adadelta
from ._second_moment import scale_by_centered_rms as scale_by_centered_rms
from ._second_moment import scale_by_max_rms as scale_by_max_rms
from ._second_moment import scale_by_rms as scale_by_rms
from ._second_moment import scale_by_rss as scale_by_rss
from ._weight_decay import add_decayed_weights as add_decayed_weights

__version__ = "0.1.0"
