"""gradtx: composable gradient transformations for JAX.

Every optimizer is a pure pair ``init(params) -> state`` and
``update(updates, state, params=None, **extra) -> (updates, state)``, built
as a short chain of the public transforms below.
"""

from ._averaging import EmaParamsState as EmaParamsState
from ._averaging import LookaheadState as LookaheadState
from ._averaging import ema_params as ema_params
from ._averaging import lookahead as lookahead
from ._base import EmptyState as EmptyState
from ._base import GradientTransformation as GradientTransformation
from ._base import ScheduleState as ScheduleState
from ._base import apply_updates as apply_updates
from ._base import identity as identity
from ._base import transform as transform
from ._clipping import adaptive_grad_clip as adaptive_grad_clip
from ._clipping import clip as clip
from ._clipping import clip_by_block_rms as clip_by_block_rms
from ._clipping import clip_by_global_norm as clip_by_global_norm
from ._clipping import clip_by_leaf_norm as clip_by_leaf_norm
from ._clipping import global_norm as global_norm
from ._combine import ChainState as ChainState
from ._combine import chain as chain
from ._hyperparams import InjectHyperparamsState as InjectHyperparamsState
from ._hyperparams import get_hyperparams as get_hyperparams
from ._hyperparams import inject_hyperparams as inject_hyperparams
from ._hyperparams import set_hyperparams as set_hyperparams
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
from ._partition import MaskedState as MaskedState
from ._partition import PartitionState as PartitionState
from ._partition import freeze as freeze
from ._partition import masked as masked
from ._partition import partition as partition
from ._partition import reset_group as reset_group
from ._partition import set_to_zero as set_to_zero
from ._scaling import scale as scale
from ._scaling import scale_by_learning_rate as scale_by_learning_rate
from ._schedules import constant_schedule as constant_schedule
from ._schedules import cosine_decay_schedule as cosine_decay_schedule
from ._schedules import cosine_onecycle_schedule as cosine_onecycle_schedule
from ._schedules import cosine_restarts_schedule as cosine_restarts_schedule
from ._schedules import exponential_decay as exponential_decay
from ._schedules import inverse_sqrt_schedule as inverse_sqrt_schedule
from ._schedules import inverse_time_decay as inverse_time_decay
from ._schedules import join_schedules as join_schedules
from ._schedules import linear_schedule as linear_schedule
from ._schedules import piecewise_constant_schedule as piecewise_constant_schedule
from ._schedules import polynomial_schedule as polynomial_schedule
from ._schedules import sgdr_schedule as sgdr_schedule
from ._schedules import warmup_cosine_decay_schedule as warmup_cosine_decay_schedule
from ._schedules import warmup_stable_decay_schedule as warmup_stable_decay_schedule
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
from ._sharding import state_shardings as state_shardings
from ._weight_decay import add_decayed_weights as add_decayed_weights
from ._wrappers import AccumulationState as AccumulationState
from ._wrappers import ApplyIfFiniteState as ApplyIfFiniteState
from ._wrappers import ZeroNansState as ZeroNansState
from ._wrappers import accumulate_gradients as accumulate_gradients
from ._wrappers import apply_if_finite as apply_if_finite
from ._wrappers import zero_nans as zero_nans

__version__ = "0.1.0"
