"""lrjax: learning-rate schedules for JAX and Optax, as pytree values.

Every schedule is an immutable pytree: call it with a step (eager or under
`jax.jit`), pass it into jitted functions without recompiling, `jax.vmap` over
a stack of them, save it with `to_dict` and rebuild it with `from_dict`.
"""

import importlib.metadata

# The base, the dict round trip.
from lrjax._base import Schedule as Schedule
from lrjax._base import stack as stack
from lrjax._registry import from_dict as from_dict

# Decay schedules.
from lrjax._decay import constant as constant
from lrjax._decay import exponential_decay as exponential_decay
from lrjax._decay import inverse_sqrt as inverse_sqrt
from lrjax._decay import inverse_time_decay as inverse_time_decay
from lrjax._decay import linear as linear
from lrjax._decay import multistep as multistep
from lrjax._decay import piecewise_constant as piecewise_constant
from lrjax._decay import piecewise_interpolate as piecewise_interpolate
from lrjax._decay import polynomial_decay as polynomial_decay
from lrjax._decay import step_decay as step_decay
from lrjax._decay import tanh_decay as tanh_decay

# Cosine schedules.
from lrjax._cosine import cosine_decay as cosine_decay
from lrjax._cosine import cosine_restarts as cosine_restarts
from lrjax._cosine import rex as rex
from lrjax._cosine import warmup_stable_decay as warmup_stable_decay

# Cyclic schedules.
from lrjax._cyclic import cyclic as cyclic
from lrjax._cyclic import cyclic_momentum as cyclic_momentum
from lrjax._cyclic import one_cycle as one_cycle
from lrjax._cyclic import one_cycle_momentum as one_cycle_momentum

# Combinators.
from lrjax._combine import per_epoch as per_epoch
from lrjax._combine import product as product
from lrjax._combine import sequence as sequence
from lrjax._combine import switch as switch
from lrjax._combine import warmup as warmup
from lrjax._combine import with_noise as with_noise
from lrjax._cooldown import cooldown as cooldown

# Schedules inside optax optimizers.
from lrjax._inject import InjectHyperparamsState as InjectHyperparamsState
from lrjax._inject import inject_hyperparams as inject_hyperparams
from lrjax._groups import group_rates as group_rates
from lrjax._hyperparams import branch as branch
from lrjax._hyperparams import hyperparams as hyperparams
from lrjax._hyperparams import hyperparams_by_group as hyperparams_by_group
from lrjax._hyperparams import schedules as schedules
from lrjax._hyperparams import set_hyperparams as set_hyperparams

# Reduce on plateau.
from lrjax._plateau import ReduceOnPlateauState as ReduceOnPlateauState
from lrjax._plateau import reduce_on_plateau as reduce_on_plateau
from lrjax._plateau_state import observe_plateau as observe_plateau
from lrjax._plateau_state import plateau_scale as plateau_scale
from lrjax._plateau_state import plateau_settings as plateau_settings
from lrjax._plateau_state import set_plateau_settings as set_plateau_settings

# Tools.
from lrjax._plot import plot as plot
from lrjax._plot import plot_range_test as plot_range_test
from lrjax._range_test import RangeTestResult as RangeTestResult
from lrjax._range_test import lr_range_test as lr_range_test

__version__ = importlib.metadata.version("lrjax")

# Flax serialization of every schedule, without importing flax.
from lrjax import _flax

_flax.install()
del _flax

__all__ = [
    # The base, the dict round trip.
    "Schedule",
    "stack",
    "from_dict",
    # Decay schedules.
    "constant",
    "exponential_decay",
    "inverse_sqrt",
    "inverse_time_decay",
    "linear",
    "multistep",
    "piecewise_constant",
    "piecewise_interpolate",
    "polynomial_decay",
    "step_decay",
    "tanh_decay",
    # Cosine schedules.
    "cosine_decay",
    "cosine_restarts",
    "rex",
    "warmup_stable_decay",
    # Cyclic schedules.
    "cyclic",
    "cyclic_momentum",
    "one_cycle",
    "one_cycle_momentum",
    # Combinators.
    "cooldown",
    "per_epoch",
    "product",
    "sequence",
    "switch",
    "warmup",
    "with_noise",
    # Schedules inside optax optimizers.
    "InjectHyperparamsState",
    "inject_hyperparams",
    "group_rates",
    "branch",
    "hyperparams",
    "hyperparams_by_group",
    "schedules",
    "set_hyperparams",
    # Reduce on plateau.
    "ReduceOnPlateauState",
    "reduce_on_plateau",
    "observe_plateau",
    "plateau_scale",
    "plateau_settings",
    "set_plateau_settings",
    # Tools.
    "plot",
    "plot_range_test",
    "RangeTestResult",
    "lr_range_test",
]
