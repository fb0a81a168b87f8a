"""Reduce-on-plateau: an Optax transform that scales updates down when a
monitored metric stops improving, its state and its decision. Feeding it a
metric and reading or changing its scale and settings from anywhere inside an
optimizer state is in `_plateau_state`.

The decision state is one float32 vector, updated by one branch-free
elementwise expression, so under `jax.jit` an observation compiles to a single
small fused kernel (plus a copy of that vector) and a step without an
observation costs only the multiply.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks
from lrjax._opt_state import is_variable, value_of

__all__ = [
    "HINT",
    "SETTINGS",
    "ReduceOnPlateauState",
    "as_metric",
    "check_setting",
    "observe",
    "reduce_on_plateau",
]

# Counts (patience, cooldown, accumulation_size and the counters) are held in
# float32, which represents every integer up to 2**24 exactly.
_MAX_COUNT = 2**24 - 1
_COUNT_CAP = float(2**24)

# How to build an optimizer with a plateau state, for the "none found" error.
HINT = (
    "build the optimizer with lrjax.reduce_on_plateau(...) in it, e.g. "
    "optax.chain(optax.sgd(lr), lrjax.reduce_on_plateau())"
)

# Positions in `ReduceOnPlateauState.stats`.
_SCALE, _BEST, _NUM_BAD, _COOLDOWN_LEFT, _WINDOW_SUM, _WINDOW_COUNT = range(6)
_NUM_STATS = 6
# Positions in `ReduceOnPlateauState.settings`.
(
    _FACTOR,
    _PATIENCE,
    _SIGN,
    _THRESHOLD,
    _REL,
    _COOLDOWN,
    _MIN_SCALE,
    _EPS,
    _SIZE,
    _INV_SIZE,
) = range(10)
_NUM_SETTINGS = 10
# The positions of the settings `reduce_on_plateau` takes as numbers, by
# their keyword names (`mode` and `threshold_mode` are held as sign and rel).
SETTINGS = {
    "factor": _FACTOR,
    "patience": _PATIENCE,
    "threshold": _THRESHOLD,
    "cooldown": _COOLDOWN,
    "min_scale": _MIN_SCALE,
    "eps": _EPS,
    "accumulation_size": _SIZE,
}


class ReduceOnPlateauState(NamedTuple):
  """The state of :func:`reduce_on_plateau`: its statistics and its settings.

  Both fields are float32 vectors whatever the parameters' dtype. Counts are
  whole numbers held exactly (float32 holds every integer up to 2**24). Read
  the statistics through the properties (``state.scale``, ``state.best_value``
  ...) rather than by position. The settings travel with the state, so
  :func:`observe_plateau` (which sees only the state) and a restored
  checkpoint decide with the settings the transform was built with. Under
  ``optax.inject_hyperparams(lrjax.reduce_on_plateau)`` each update writes
  the current hyperparameters into the state.
  """

  # shape=(6,), dtype=float32: scale, best_value, num_bad, cooldown_counter,
  # window_sum, window_count.
  stats: jax.Array
  # shape=(10,), dtype=float32: factor, patience, sign (+1 for "min", -1 for
  # "max"), threshold, rel (1 for "rel", 0 for "abs"), cooldown, min_scale,
  # eps, accumulation_size, 1 / accumulation_size.
  settings: jax.Array

  @property
  def scale(self) -> jax.Array:
    """The factor the updates are multiplied by (1.0 at the start)."""
    return value_of(self.stats)[_SCALE]

  @property
  def best_value(self) -> jax.Array:
    """The best metric seen (+inf for ``"min"``, -inf for ``"max"`` at first)."""
    return value_of(self.stats)[_BEST]

  @property
  def num_bad(self) -> jax.Array:
    """Bad observations since the last improvement, reduction or cooldown."""
    return value_of(self.stats)[_NUM_BAD]

  @property
  def cooldown_counter(self) -> jax.Array:
    """Observations still to be ignored after the last reduction."""
    return value_of(self.stats)[_COOLDOWN_LEFT]

  @property
  def window_sum(self) -> jax.Array:
    """The sum of the values in the current accumulation window."""
    return value_of(self.stats)[_WINDOW_SUM]

  @property
  def window_count(self) -> jax.Array:
    """How many values the current accumulation window holds."""
    return value_of(self.stats)[_WINDOW_COUNT]


def reduce_on_plateau(
    *,
    factor: float = 0.1,
    patience: int = 10,
    mode: str = "min",
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_scale: float = 0.0,
    eps: float = 1e-8,
    accumulation_size: int = 1,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales updates down when a monitored metric stops improving.

  The transform multiplies the incoming updates by its current ``scale``
  (1.0 at the start): ``optax.chain(optax.sgd(lr), reduce_on_plateau())``
  trains with learning rate ``lr * scale``. Feed it the metric either

  * per update, ``tx.update(grads, state, params, value=loss)``: the update
    is scaled by the current scale, then ``value`` is observed, so a decision
    applies from the next update (PyTorch's ``optimizer.step();
    scheduler.step(loss)``); without ``value=`` an update only applies the
    scale; or
  * per epoch, ``opt_state = lrjax.observe_plateau(opt_state, val_metric)``
    (Keras' and PyTorch's usual pattern).

  Both are pure and work eagerly or under `jax.jit`; ``tx.update(g, s,
  value=v)`` equals ``tx.update(g, s)`` followed by ``observe_plateau`` of
  ``v``. Values are averaged over windows of `accumulation_size`
  observations; each full window's mean :math:`v` is one decision. With
  :math:`\sigma = +1` for ``mode="min"``, :math:`-1` for ``"max"`` and
  :math:`\tau` = `threshold`, the mean improves on the best value :math:`b`
  when it is finite and

  .. math::
    \sigma v < \sigma b - \tau \cdot
      \begin{cases} |b| & \text{threshold\_mode="rel"} \\
                    1 & \text{threshold\_mode="abs"} \end{cases}

  (always, for the first finite value). An improvement sets :math:`b = v`
  and the bad count :math:`n = 0`; any other value, NaN and infinities
  included, adds one to :math:`n`. While the cooldown counter :math:`c > 0`,
  :math:`c` drops by one and :math:`n = 0`. When :math:`n > \text{patience}`
  the scale is reduced,

  .. math::
    s' = \max(s \cdot \text{factor}, \text{min\_scale}),
    \quad \text{kept only if } s - s' > \text{eps},

  and :math:`c = \text{cooldown}`, :math:`n = 0`.

  For finite positive values (and a ``rel`` threshold below 1) every decision
  is exactly PyTorch's ``ReduceLROnPlateau``'s, with ``eps`` and
  ``min_scale`` in scale units (as if the initial learning rate were 1), and
  the statistics in float32. Two deliberate differences: in ``rel`` mode
  PyTorch tests ``v < b (1 - threshold)``, which for a negative best value
  counts a worse value as an improvement (``threshold=0.1``, best -10: then
  -9.5 counts in ``min`` mode, as -9.5 < -9); lrjax compares against :math:`b - \tau |b|`, the same for
  positive values and the right direction for negative ones. And a NaN or
  infinite value never becomes the best value (PyTorch takes ``-inf`` as a
  best in ``min`` mode).

  How patience counts, in the three libraries:

  ===============================  ===================  =====================
  library                          reduces when         same as lrjax
  ===============================  ===================  =====================
  PyTorch ``ReduceLROnPlateau``    ``num_bad > p``      ``patience=p``
  Keras ``ReduceLROnPlateau``      ``wait >= p``        ``patience=p - 1``
  ``optax.contrib``                ``count == p``       ``patience=p - 1``
  ===============================  ===================  =====================

  So a Keras model with ``patience=3`` ports as ``patience=2`` here; both
  reduce on the third bad epoch in a row.

  Args:
    factor: the multiplier applied at each reduction, in (0, 1).
    patience: how many bad observations in a row are tolerated; the next one
      reduces the scale. An integer in [0, 2**24 - 1].
    mode: ``"min"`` (lower is better, a loss) or ``"max"`` (higher is better,
      an accuracy).
    threshold: how much better than the best value a value must be to count
      as an improvement; relative or absolute per `threshold_mode`. >= 0.
    threshold_mode: ``"rel"`` or ``"abs"``.
    cooldown: how many observations to ignore after a reduction. An integer
      in [0, 2**24 - 1].
    min_scale: the scale never goes below this. >= 0; at 1 or more the scale
      never changes (a warning says so).
    eps: a reduction smaller than this (in scale units) is skipped. >= 0.
    accumulation_size: how many values are averaged into one decision. An
      integer in [1, 2**24 - 1].

  Returns:
    An `optax.GradientTransformationExtraArgs` whose state is a
    :class:`ReduceOnPlateauState`.

  Raises:
    ValueError: if `factor` is not in (0, 1); `patience` or `cooldown` is not
      an integer in [0, 2**24 - 1]; `accumulation_size` is not an integer in
      [1, 2**24 - 1]; `threshold`, `min_scale` or `eps` is negative or not
      finite; `mode` is not ``"min"``/``"max"``; `threshold_mode` is not
      ``"rel"``/``"abs"``. The update raises it when ``value`` is not a
      real scalar.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(0.1),
    ...                  lrjax.reduce_on_plateau(factor=0.5, patience=1))
    >>> state = tx.init(jnp.zeros(3))
    >>> scales = []
    >>> for val_loss in [1.0, 0.9, 0.95, 0.93, 0.92]:
    ...   state = lrjax.observe_plateau(state, val_loss)
    ...   scales.append(f"{lrjax.plateau_scale(state):.2f}")
    >>> print(*scales)
    1.00 1.00 1.00 0.50 0.50
    >>> updates, state = tx.update(jnp.ones(3), state, value=0.91)
    >>> print(f"{updates[0]:.3f}")
    -0.050

  References:
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``;
    ``keras.callbacks.ReduceLROnPlateau``;
    ``optax.contrib.reduce_on_plateau``.
  """
  fn = "reduce_on_plateau"
  factor = check_setting(fn, "factor", factor)
  patience = check_setting(fn, "patience", patience)
  mode = _checks.check_choice(fn, "mode", mode, ("min", "max"))
  threshold = check_setting(fn, "threshold", threshold)
  threshold_mode = _checks.check_choice(
      fn, "threshold_mode", threshold_mode, ("rel", "abs")
  )
  cooldown = check_setting(fn, "cooldown", cooldown)
  min_scale = check_setting(fn, "min_scale", min_scale)
  eps = check_setting(fn, "eps", eps)
  accumulation_size = check_setting(fn, "accumulation_size", accumulation_size)

  sign = 1.0 if mode == "min" else -1.0
  rel = 1.0 if threshold_mode == "rel" else 0.0
  settings_list = [
      factor, patience, sign, threshold, rel, cooldown, min_scale, eps,
      accumulation_size, 1.0 / accumulation_size,
  ]
  # Hyperparameters given as arrays (``optax.inject_hyperparams`` passes its
  # current values on every update) are written into the state at each
  # update; plain numbers are fixed, so the state's copy is used as it is.
  injected = not all(isinstance(x, (int, float)) for x in settings_list)

  def settings_array() -> jax.Array:
    return jnp.stack([jnp.asarray(x, jnp.float32) for x in settings_list])

  def init_fn(params: optax.Params) -> ReduceOnPlateauState:
    del params
    stats = jnp.array([1.0, sign * np.inf, 0.0, 0.0, 0.0, 0.0], jnp.float32)
    return ReduceOnPlateauState(stats=stats, settings=settings_array())

  def update_fn(
      updates: optax.Updates,
      state: ReduceOnPlateauState,
      params: optax.Params | None = None,
      *,
      value: Any = None,
      **extra_args: Any,
  ) -> tuple[optax.Updates, ReduceOnPlateauState]:
    del params, extra_args
    if injected:
      state = state._replace(settings=settings_array())
    scale = state.stats[_SCALE]
    updates = jax.tree.map(lambda g: g * scale.astype(g.dtype), updates)
    if value is not None:
      stats = observe(state.stats, state.settings, as_metric(fn, value))
      state = ReduceOnPlateauState(stats=stats, settings=state.settings)
    return updates, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --- the decision --------------------------------------------------------------


def _observe(stats: jax.Array, settings: jax.Array, value: jax.Array) -> jax.Array:
  """One observation: the next stats vector, as one branch-free expression.

  Every quantity is a float32 scalar taken from the two vectors and every
  choice is a `jnp.where`, so XLA fuses the whole update into one kernel.
  """
  scale, best, num_bad, cooldown_left, window_sum, window_count = (
      stats[i] for i in range(_NUM_STATS)
  )
  factor, patience, sign, threshold, rel, cooldown, min_scale, eps, size, inv_size = (
      settings[i] for i in range(_NUM_SETTINGS)
  )
  window_sum = window_sum + value
  window_count = window_count + 1.0
  full = window_count >= size
  mean = window_sum * inv_size
  # In "min" orientation (sign = -1 mirrors "max"); the best is +inf at first.
  v, b = sign * mean, sign * best
  margin = threshold * (rel * jnp.abs(b) + (1.0 - rel))
  improved = jnp.isfinite(v) & ((b == jnp.inf) | (v < b - margin))
  new_best = jnp.where(improved, mean, best)
  new_bad = jnp.where(improved, 0.0, jnp.minimum(num_bad + 1.0, _COUNT_CAP))
  in_cooldown = cooldown_left > 0.0
  new_cooldown = jnp.where(in_cooldown, cooldown_left - 1.0, cooldown_left)
  new_bad = jnp.where(in_cooldown, 0.0, new_bad)
  reduce = new_bad > patience
  candidate = jnp.maximum(scale * factor, min_scale)
  new_scale = jnp.where(reduce & (scale - candidate > eps), candidate, scale)
  new_cooldown = jnp.where(reduce, cooldown, new_cooldown)
  new_bad = jnp.where(reduce, 0.0, new_bad)
  zero = jnp.zeros_like(window_sum)
  decided = jnp.stack([new_scale, new_best, new_bad, new_cooldown, zero, zero])
  waiting = jnp.stack([scale, best, num_bad, cooldown_left, window_sum, window_count])
  return jnp.where(full, decided, waiting)


# One observation, `_observe` compiled: eager calls of `observe_plateau` run as
# one kernel; under an outer jit this is inlined.
observe = jax.jit(_observe)


# --- helpers -----------------------------------------------------------------


def check_setting(fn: str, name: str, x: Any) -> Any:
  """`x` checked as `reduce_on_plateau` checks its argument `name`.

  A concrete `min_scale` of 1 or more warns (the scale would never change).

  Raises:
    ValueError: `fn`'s, naming `name`, as listed in `reduce_on_plateau`.
  """
  if name == "factor":
    return _checks.check_float(fn, name, x, low=0.0, high=1.0, low_open=True,
                               high_open=True)
  if name in ("threshold", "min_scale", "eps"):
    x = _checks.check_float(fn, name, x, low=0.0)
    known = _checks.concrete(x)
    if name == "min_scale" and known is not None and np.any(known >= 1.0):
      warnings.warn(f"{fn}: min_scale={x!r} >= 1, so the scale never changes",
                    stacklevel=3)
    return x
  x = _checks.check_int(fn, name, x, low=1 if name == "accumulation_size" else 0)
  known = _checks.concrete(x)
  if known is not None and np.any(known > _MAX_COUNT):
    raise ValueError(f"{fn}: {name} must be <= {_MAX_COUNT} (2**24 - 1), got {x!r}")
  return x


def as_metric(fn: str, value: Any) -> jax.Array:
  """The metric as a float32 scalar; a real scalar of any dtype is accepted.

  Raises:
    ValueError: `fn`'s, if `value` is not a real scalar.
  """
  if is_variable(value):
    value = value.get_value()
  try:
    arr = jnp.asarray(value)
  except (TypeError, ValueError):
    raise ValueError(f"{fn}: value must be a real scalar, got {value!r}") from None
  if arr.size != 1 or not (
      jnp.issubdtype(arr.dtype, jnp.floating)
      or jnp.issubdtype(arr.dtype, jnp.integer)
      or jnp.issubdtype(arr.dtype, jnp.bool_)
  ):
    raise ValueError(
        f"{fn}: value must be a real scalar, got shape {arr.shape} dtype "
        f"{arr.dtype}"
    )
  return arr.reshape(()).astype(jnp.float32)
