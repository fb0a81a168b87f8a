"""lrjax: learning-rate schedules for JAX and Optax, as pytree values.

Every schedule is an immutable pytree: call it with a step (eager or under
`jax.jit`), pass it into jitted functions without recompiling, `jax.vmap` over
a stack of them, save it with `to_dict` and rebuild it with `from_dict`.
"""

from lrjax._base import Schedule as Schedule
from lrjax._base import from_dict as from_dict
from lrjax._base import stack as stack
from lrjax._combine import per_epoch as per_epoch
from lrjax._combine import product as product
from lrjax._combine import sequence as sequence
from lrjax._combine import warmup as warmup
from lrjax._decay import constant as constant
from lrjax._decay import step_decay as step_decay

__version__ = "0.1.0"

__all__ = [
    "Schedule",
    "constant",
    "from_dict",
    "per_epoch",
    "product",
    "sequence",
    "stack",
    "step_decay",
    "warmup",
]
