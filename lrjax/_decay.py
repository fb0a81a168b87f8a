"""Decay schedules: constant, step and multi-step, piecewise constant and
piecewise interpolated, exponential, inverse-time, polynomial, linear,
inverse square root and tanh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base, _checks
from lrjax._base import Schedule, schedule_class, static_field
from lrjax._registry import constructor


@schedule_class("constant")
class Constant(Schedule):
  value: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    return _base.f32(self.value)


@constructor
def constant(value: float) -> Constant:
  """A fixed learning rate.

  .. math::
    \\eta(t) = \\text{value}

  Args:
    value: the rate, a finite number >= 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `value` is negative or not finite.

  Example:
    >>> import lrjax
    >>> s = lrjax.constant(0.3)
    >>> print(f"{s(1000):.4f}")
    0.3000

  References:
    ``torch.optim.lr_scheduler.ConstantLR`` with ``factor=1``;
    ``optax.constant_schedule``.
  """
  value = _checks.check_float("constant", "value", value, low=0.0)
  return Constant(value=value)


@schedule_class("step_decay")
class StepDecay(Schedule):
  init_value: Any
  step_size: Any
  gamma: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    k = _base.floor_div(step, self.step_size)
    return _base.f32(self.init_value) * _base.f32(self.gamma) ** _base.f32(k)


@constructor
def step_decay(init_value: float, *, step_size: int, gamma: float) -> StepDecay:
  """Multiplies the rate by `gamma` every `step_size` steps.

  .. math::
    \\eta(t) = \\text{init\\_value} \\cdot
      \\gamma^{\\lfloor t / \\text{step\\_size} \\rfloor}

  The first decay applies from ``step == step_size`` on. ``gamma > 1`` is a
  legal growing schedule; it reaches ``inf`` eventually, so it warns.

  Args:
    init_value: the rate at step 0, >= 0.
    step_size: steps between decays, an integer > 0.
    gamma: the factor, >= 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` or `gamma` is negative or not finite, or if
      `step_size` is not a positive integer.

  Warns:
    UserWarning: if ``gamma > 1`` (the rate grows without bound).

  Example:
    >>> import lrjax
    >>> s = lrjax.step_decay(0.1, step_size=30, gamma=0.1)
    >>> print(f"{s(29):.4f} {s(30):.4f} {s(60):.4f}")
    0.1000 0.0100 0.0010

  References:
    ``torch.optim.lr_scheduler.StepLR``.
  """
  fn = "step_decay"
  gamma = _checks.check_float(fn, "gamma", gamma, low=0.0)
  _checks.warn_growth(fn, "gamma", gamma)
  return StepDecay(
      init_value=_checks.check_float(fn, "init_value", init_value, low=0.0),
      step_size=_checks.check_int(fn, "step_size", step_size, low=1),
      gamma=gamma,
  )


# --- multistep -----------------------------------------------------------------


@schedule_class("multistep")
class MultiStep(Schedule):
  init_value: Any
  milestones: tuple[Any, ...]
  gamma: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    k = _base.count_reached(step, self.milestones)
    return _base.f32(self.init_value) * _base.f32(self.gamma) ** _base.f32(k)


@constructor
def multistep(
    init_value: float, *, milestones: Sequence[int], gamma: float
) -> MultiStep:
  """Multiplies the rate by `gamma` at each milestone.

  .. math::
    \\eta(t) = \\text{init\\_value} \\cdot \\gamma^{\\,|\\{i :\\ m_i \\le t\\}|}

  Milestone ``m`` applies from ``step == m`` on. A milestone listed twice
  counts twice: with ``milestones=[10, 10]`` the rate is multiplied by
  ``gamma**2`` at step 10, as in PyTorch. A milestone 0 is allowed (the rate is
  ``init_value * gamma`` from step 0 on), also as in PyTorch.

  Args:
    init_value: the rate at step 0, >= 0.
    milestones: a non-empty sequence of integers >= 0, sorted non-decreasing.
    gamma: the factor per milestone, >= 0 (> 1 raises the rate).

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` or `gamma` is negative or not finite, or if
      `milestones` is not a sequence, is empty, holds a non-integer or a
      negative number, or is not sorted.

  Example:
    >>> import lrjax
    >>> s = lrjax.multistep(0.05, milestones=[30, 80], gamma=0.1)
    >>> print(f"{s(29):.4f} {s(30):.4f} {s(80):.5f}")
    0.0500 0.0050 0.00050

  References:
    ``torch.optim.lr_scheduler.MultiStepLR``.
  """
  fn = "multistep"
  return MultiStep(
      init_value=_checks.check_float(fn, "init_value", init_value, low=0.0),
      milestones=_checks.check_int_sequence(
          fn, "milestones", milestones, low=0, strict=False
      ),
      gamma=_checks.check_float(fn, "gamma", gamma, low=0.0),
  )


# --- piecewise_constant ----------------------------------------------------------


@schedule_class("piecewise_constant")
class PiecewiseConstant(Schedule):
  boundaries: tuple[Any, ...]
  values: tuple[Any, ...]

  def value_at(self, step: jax.Array) -> jax.Array:
    values = jnp.stack([_base.f32(v) for v in self.values])
    return values[_base.count_reached(step, self.boundaries)]


@constructor
def piecewise_constant(
    *, boundaries: Sequence[int], values: Sequence[float]
) -> PiecewiseConstant:
  """``values[i]`` on ``[boundaries[i-1], boundaries[i])``.

  .. math::
    \\eta(t) = v_i \\quad \\text{for } b_{i-1} \\le t < b_i,
    \\quad b_{-1} = 0,\\ b_n = \\infty

  Value ``i + 1`` applies from ``step == boundaries[i]`` on, as in
  ``optax.piecewise_constant_schedule``. Keras' ``PiecewiseConstantDecay``
  switches one step later (it keeps ``values[i]`` while ``step <= b_i``).

  Args:
    boundaries: n strictly increasing integers >= 1.
    values: n + 1 rates, each >= 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `boundaries` is not a non-empty, strictly increasing
      sequence of integers >= 1, if `values` is not a sequence of finite
      numbers >= 0, or if ``len(values) != len(boundaries) + 1``.

  Example:
    >>> import lrjax
    >>> s = lrjax.piecewise_constant(boundaries=[100, 110], values=[1.0, 0.5, 0.1])
    >>> print(f"{s(99):.4f} {s(100):.4f} {s(110):.4f}")
    1.0000 0.5000 0.1000

  References:
    ``optax.piecewise_constant_schedule`` (with absolute values);
    ``keras.optimizers.schedules.PiecewiseConstantDecay``.
  """
  bounds, vals = _check_pieces("piecewise_constant", boundaries, values)
  return PiecewiseConstant(boundaries=bounds, values=vals)


# --- piecewise_interpolate -------------------------------------------------------


@schedule_class("piecewise_interpolate")
class PiecewiseInterpolate(Schedule):
  boundaries: tuple[Any, ...]
  values: tuple[Any, ...]
  shape: str = static_field(default="linear")

  def value_at(self, step: jax.Array) -> jax.Array:
    n = len(self.boundaries)
    i = _base.count_reached(step, self.boundaries)  # the segment, n: after the last
    starts = jnp.stack([_base.like_step(step, b) for b in (0,) + self.boundaries])
    ends = jnp.stack([_base.like_step(step, b) for b in self.boundaries + (1,)])
    values = jnp.stack([_base.f32(v) for v in self.values])
    a = values[i]
    b = values[jnp.minimum(i + 1, n)]  # the last segment holds: a == b
    start = starts[i]
    span = jnp.where(i < n, ends[i] - start, jnp.ones_like(start))
    up, down = _base.shape_weights(self.shape, *_base.progress(step, start, span))
    return a * up + b * down


@constructor
def piecewise_interpolate(
    *, boundaries: Sequence[int], values: Sequence[float], shape: str = "linear"
) -> PiecewiseInterpolate:
  """From ``values[i]`` at ``boundaries[i-1]`` to ``values[i+1]`` at ``boundaries[i]``.

  .. math::
    \\eta(t) = v_i + (v_{i+1} - v_i)\\, (1 - f(p)), \\quad
    p = \\frac{t - b_{i-1}}{b_i - b_{i-1}} \\quad
    \\text{for } b_{i-1} \\le t < b_i, \\quad b_{-1} = 0

  and :math:`v_n` from :math:`b_{n-1}` on, with :math:`f(p) = 1 - p`
  (``"linear"``) or :math:`(1 + \\cos \\pi p) / 2` (``"cosine"``). As in
  :func:`piecewise_constant`, `values` is one longer than `boundaries`:
  ``values[0]`` at step 0, ``values[i + 1]`` reached at ``boundaries[i]``, and
  the last value held after the last boundary.

  This is optax's ``piecewise_interpolate_schedule(interpolate_type,
  init_value, boundaries_and_scales)`` with absolute values instead of
  cumulative scales: ``values[0] = init_value`` and each next value the one
  before times the boundary's scale.

  Args:
    boundaries: n strictly increasing integers >= 1.
    values: n + 1 rates, each >= 0.
    shape: ``"linear"`` or ``"cosine"``, the curve within each segment.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `boundaries` is not a non-empty, strictly increasing
      sequence of integers >= 1, if `values` is not a sequence of finite
      numbers >= 0, if ``len(values) != len(boundaries) + 1``, or if `shape`
      is unknown.

  Example:
    >>> import lrjax
    >>> s = lrjax.piecewise_interpolate(boundaries=[4, 8], values=[1.0, 0.1, 0.001])
    >>> print(f"{s(0):.4f} {s(2):.4f} {s(4):.4f} {s(6):.5f} {s(10):.4f}")
    1.0000 0.5500 0.1000 0.05050 0.0010

  References:
    ``optax.piecewise_interpolate_schedule``.
  """
  fn = "piecewise_interpolate"
  bounds, vals = _check_pieces(fn, boundaries, values)
  shape = _checks.check_choice(fn, "shape", shape, ("linear", "cosine"))
  return PiecewiseInterpolate(boundaries=bounds, values=vals, shape=shape)


def _check_pieces(fn: str, boundaries: Any, values: Any) -> tuple[tuple, tuple]:
  """Strictly increasing boundaries >= 1 and one more value than boundaries."""
  bounds = _checks.check_int_sequence(fn, "boundaries", boundaries, low=1)
  vals = _checks.check_floats(fn, "values", values)
  if len(vals) != len(bounds) + 1:
    raise ValueError(
        f"{fn}: needs len(values) == len(boundaries) + 1, got {len(vals)} "
        f"values {values!r} and {len(bounds)} boundaries {boundaries!r}"
    )
  return bounds, vals


# --- exponential_decay -----------------------------------------------------------


def _exponent(step: jax.Array, decay_steps: Any, staircase: bool) -> jax.Array:
  """``step / decay_steps`` in float32, floored exactly when `staircase`."""
  if staircase:
    return _base.f32(_base.floor_div(step, decay_steps))
  return _base.f32(step) / _base.f32(decay_steps)


@schedule_class("exponential_decay")
class ExponentialDecay(Schedule):
  init_value: Any
  decay_steps: Any
  decay_rate: Any
  staircase: bool = static_field(default=False)
  end_value: Any = None

  def value_at(self, step: jax.Array) -> jax.Array:
    init = _base.f32(self.init_value)
    rate = _base.f32(self.decay_rate)
    p = _exponent(step, self.decay_steps, self.staircase)
    # init == 0 stays 0 where a growing rate ** p overflows (0 * inf = nan).
    value = jnp.where(init > 0, init * rate**p, jnp.zeros_like(p))
    if self.end_value is not None:
      end = _base.f32(self.end_value)
      value = jnp.where(
          rate < 1,
          jnp.maximum(value, end),
          jnp.where(rate > 1, jnp.minimum(value, end), value),
      )
    return value


@constructor
def exponential_decay(
    init_value: float,
    *,
    decay_steps: int,
    decay_rate: float,
    staircase: bool = False,
    end_value: float | None = None,
) -> ExponentialDecay:
  """Multiplies the rate by `decay_rate` every `decay_steps`, continuously.

  .. math::
    \\eta(t) = \\text{init\\_value} \\cdot
      \\text{decay\\_rate}^{\\,t / \\text{decay\\_steps}}

  with :math:`\\lfloor t / \\text{decay\\_steps} \\rfloor` (exact integer
  division) when `staircase`. With ``decay_steps=1`` this is PyTorch's
  ``ExponentialLR(gamma=decay_rate)``. `end_value` clips the rate: a floor when
  ``decay_rate < 1``, a ceiling when ``decay_rate > 1`` (unused at 1).
  ``decay_rate > 1`` is a legal growing schedule; without `end_value` it
  overflows to ``inf`` eventually, so it warns.

  The arithmetic is float32, so `decay_rate` is rounded to float32 (by up to
  :math:`2^{-24}` relative) and after :math:`p` periods the rate is off by
  about :math:`p` times that rounding from a float64 reference: ``0.9`` drifts
  by 1e-6 relative after about 40 periods, while a float32-exact rate such as
  ``0.5`` or ``0.9375`` stays within a few float32 ulps.

  Args:
    init_value: the rate at step 0, >= 0.
    decay_steps: steps per factor of `decay_rate`, an integer > 0.
    decay_rate: the factor per `decay_steps`, > 0.
    staircase: decay in discrete jumps at multiples of `decay_steps`.
    end_value: ``None`` (no clip) or a number >= 0: the floor when decaying
      (<= `init_value`), the ceiling when growing (>= `init_value`).

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` is negative or not finite, `decay_steps` is
      not a positive integer, `decay_rate` is not a finite number > 0,
      `staircase` is not a bool, `end_value` is negative or not finite, or
      `end_value` lies on the wrong side of `init_value` (above it while
      decaying, below it while growing).

  Warns:
    UserWarning: if ``decay_rate > 1`` and `end_value` is ``None``.

  Example:
    >>> import lrjax
    >>> s = lrjax.exponential_decay(0.1, decay_steps=10, decay_rate=0.5)
    >>> print(f"{s(5):.4f} {s(10):.4f} {s(20):.4f}")
    0.0707 0.0500 0.0250
    >>> s = lrjax.exponential_decay(0.1, decay_steps=10, decay_rate=0.5,
    ...                             staircase=True, end_value=0.02)
    >>> print(f"{s(9):.4f} {s(10):.4f} {s(30):.4f}")
    0.1000 0.0500 0.0200

  References:
    ``tf.compat.v1.train.exponential_decay``;
    ``keras.optimizers.schedules.ExponentialDecay``;
    ``torch.optim.lr_scheduler.ExponentialLR``; ``optax.exponential_decay``.
  """
  fn = "exponential_decay"
  init_value = _checks.check_float(fn, "init_value", init_value, low=0.0)
  decay_steps = _checks.check_int(fn, "decay_steps", decay_steps, low=1)
  decay_rate = _checks.check_float(fn, "decay_rate", decay_rate, low=0.0, low_open=True)
  staircase = _checks.check_bool(fn, "staircase", staircase)
  if end_value is not None:
    end_value = _checks.check_float(fn, "end_value", end_value, low=0.0)
  rate = _checks.concrete(decay_rate)
  if rate is not None:
    _checks.check_order(fn, "end_value", end_value, "<=", "init_value", init_value,
                        when=" when decay_rate < 1 (it is a floor)", where=rate < 1)
    _checks.check_order(fn, "end_value", end_value, ">=", "init_value", init_value,
                        when=" when decay_rate > 1 (it is a ceiling)", where=rate > 1)
  if end_value is None:
    _checks.warn_growth(fn, "decay_rate", decay_rate,
                        hint="; pass end_value as a ceiling")
  return ExponentialDecay(
      init_value=init_value,
      decay_steps=decay_steps,
      decay_rate=decay_rate,
      staircase=staircase,
      end_value=end_value,
  )


# --- inverse_time_decay ----------------------------------------------------------


@schedule_class("inverse_time_decay")
class InverseTimeDecay(Schedule):
  init_value: Any
  decay_steps: Any
  decay_rate: Any
  staircase: bool = static_field(default=False)

  def value_at(self, step: jax.Array) -> jax.Array:
    p = _exponent(step, self.decay_steps, self.staircase)
    return _base.f32(self.init_value) / (1.0 + _base.f32(self.decay_rate) * p)


@constructor
def inverse_time_decay(
    init_value: float,
    *,
    decay_steps: int,
    decay_rate: float,
    staircase: bool = False,
) -> InverseTimeDecay:
  """Divides the rate by ``1 + decay_rate * t / decay_steps``.

  .. math::
    \\eta(t) = \\frac{\\text{init\\_value}}
      {1 + \\text{decay\\_rate} \\cdot t / \\text{decay\\_steps}}

  with :math:`\\lfloor t / \\text{decay\\_steps} \\rfloor` (exact integer
  division) when `staircase`.

  Args:
    init_value: the rate at step 0, >= 0.
    decay_steps: steps per unit of `decay_rate`, an integer > 0.
    decay_rate: >= 0 (0 is a constant rate).
    staircase: decay in discrete jumps at multiples of `decay_steps`.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` or `decay_rate` is negative or not finite,
      `decay_steps` is not a positive integer, or `staircase` is not a bool.

  Example:
    >>> import lrjax
    >>> s = lrjax.inverse_time_decay(0.1, decay_steps=10, decay_rate=0.5)
    >>> print(f"{s(10):.4f} {s(15):.4f} {s(20):.4f}")
    0.0667 0.0571 0.0500

  References:
    ``keras.optimizers.schedules.InverseTimeDecay``;
    ``tf.compat.v1.train.inverse_time_decay``.
  """
  fn = "inverse_time_decay"
  return InverseTimeDecay(
      init_value=_checks.check_float(fn, "init_value", init_value, low=0.0),
      decay_steps=_checks.check_int(fn, "decay_steps", decay_steps, low=1),
      decay_rate=_checks.check_float(fn, "decay_rate", decay_rate, low=0.0),
      staircase=_checks.check_bool(fn, "staircase", staircase),
  )


# --- polynomial_decay ------------------------------------------------------------


@schedule_class("polynomial_decay")
class PolynomialDecay(Schedule):
  init_value: Any
  decay_steps: Any
  end_value: Any
  power: Any
  cycle: bool = static_field(default=False)
  k_decay: Any = 1.0

  def value_at(self, step: jax.Array) -> jax.Array:
    d = _base.like_step(step, self.decay_steps)
    # frac = 1 - t / horizon, as (horizon - t) / horizon with the difference
    # taken exactly in the step's dtype (no float cancellation, no underflow).
    if self.cycle:
      q = _base.floor_div(step, self.decay_steps).astype(step.dtype)
      rem = step - q * d
      partial = rem > 0
      first = step == jnp.zeros_like(step)  # Keras: one period at step 0
      cycles = jnp.where(first, jnp.ones_like(q), q + partial.astype(step.dtype))
      left = jnp.where(first, d, jnp.where(partial, d - rem, jnp.zeros_like(rem)))
      horizon = _base.f32(cycles) * _base.f32(d)
      frac = _base.f32(left) / horizon
      z = jnp.where(first, 0.0, _base.f32(step) / horizon)
    else:
      frac = _base.f32(d - jnp.minimum(step, d)) / _base.f32(d)
      z = _base.f32(jnp.minimum(step, d)) / _base.f32(d)
    # timm's k-decay: 1 - z becomes 1 - z**k.
    _, frac = _base.power_weights(z, frac, self.k_decay)
    init, end = _base.f32(self.init_value), _base.f32(self.end_value)
    return (init - end) * frac ** _base.f32(self.power) + end


@constructor
def polynomial_decay(
    init_value: float,
    *,
    decay_steps: int,
    end_value: float = 0.0,
    power: float = 1.0,
    cycle: bool = False,
    k_decay: float = 1.0,
) -> PolynomialDecay:
  """Decays from `init_value` to `end_value` along ``(1 - t / decay_steps) ** power``.

  .. math::
    \\eta(t) = (\\text{init\\_value} - \\text{end\\_value})
      \\left(1 - \\left(\\frac{\\min(t, T)}{T}\\right)^{\\kappa}
      \\right)^{\\text{power}}
      + \\text{end\\_value}, \\quad T = \\text{decay\\_steps}

  with :math:`\\kappa` = `k_decay` (1: the plain position; timm's
  ``k_decay``, arXiv 2004.05909).

  and `end_value` from ``step == decay_steps`` on. With ``cycle=True``,
  :math:`T = \\text{decay\\_steps} \\cdot \\lceil t / \\text{decay\\_steps}
  \\rceil` (and ``decay_steps`` at step 0) with no ``min``, as Keras: the rate
  reaches `end_value` at each multiple of `decay_steps`, then jumps up and
  decays again over a longer horizon. With ``end_value=0`` and no cycle this is
  PyTorch's ``PolynomialLR(total_iters=decay_steps, power=power)``.
  `end_value` above `init_value` is allowed (a rising ramp).

  Args:
    init_value: the rate at step 0, >= 0.
    decay_steps: the decay length, an integer > 0.
    end_value: the rate from ``step == decay_steps`` on, >= 0.
    power: the exponent, > 0 (1 is linear).
    cycle: restart as Keras ``PolynomialDecay(cycle=True)`` does.
    k_decay: the power of the position ``t / T``, a finite number > 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` or `end_value` is negative or not finite,
      `decay_steps` is not a positive integer, `power` or `k_decay` is not a
      finite number > 0, or `cycle` is not a bool.

  Example:
    >>> import lrjax
    >>> s = lrjax.polynomial_decay(0.1, decay_steps=100, end_value=0.01, power=2.0)
    >>> print(f"{s(0):.4f} {s(50):.4f} {s(100):.4f} {s(500):.4f}")
    0.1000 0.0325 0.0100 0.0100
    >>> s = lrjax.polynomial_decay(0.1, decay_steps=100, k_decay=2.0)
    >>> print(f"{s(50):.4f}")
    0.0750

  References:
    ``keras.optimizers.schedules.PolynomialDecay``;
    ``torch.optim.lr_scheduler.PolynomialLR``; ``optax.polynomial_schedule``;
    timm ``PolyLRScheduler``.
  """
  fn = "polynomial_decay"
  return PolynomialDecay(
      init_value=_checks.check_float(fn, "init_value", init_value, low=0.0),
      decay_steps=_checks.check_int(fn, "decay_steps", decay_steps, low=1),
      end_value=_checks.check_float(fn, "end_value", end_value, low=0.0),
      power=_checks.check_float(fn, "power", power, low=0.0, low_open=True),
      cycle=_checks.check_bool(fn, "cycle", cycle),
      k_decay=_checks.check_float(fn, "k_decay", k_decay, low=0.0, low_open=True),
  )


# --- linear ------------------------------------------------------------------------


@schedule_class("linear")
class Linear(Schedule):
  init_value: Any
  end_value: Any
  steps: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    init, end = _base.f32(self.init_value), _base.f32(self.end_value)
    frac = _base.f32(step) / _base.f32(self.steps)
    ramp = init + (end - init) * frac
    return jnp.where(_base.reached(step, self.steps), end, ramp)


@constructor
def linear(init_value: float, *, end_value: float, steps: int) -> Linear:
  """A straight line from `init_value` at step 0 to `end_value` at `steps`, then held.

  .. math::
    \\eta(t) = \\text{init\\_value} + (\\text{end\\_value} - \\text{init\\_value})
      \\frac{\\min(t, \\text{steps})}{\\text{steps}}

  Either direction: a decay (``end_value < init_value``) or a ramp up. This is
  PyTorch's ``LinearLR(start_factor, end_factor, total_iters)`` in absolute
  values: ``init_value = start_factor * lr``, ``end_value = end_factor * lr``,
  ``steps = total_iters``.

  Args:
    init_value: the rate at step 0, >= 0.
    end_value: the rate from ``step == steps`` on, >= 0.
    steps: the length of the line, an integer > 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` or `end_value` is negative or not finite, or
      `steps` is not a positive integer.

  Example:
    >>> import lrjax
    >>> s = lrjax.linear(0.1, end_value=0.01, steps=10)
    >>> print(f"{s(0):.4f} {s(5):.4f} {s(10):.4f} {s(99):.4f}")
    0.1000 0.0550 0.0100 0.0100

  References:
    ``torch.optim.lr_scheduler.LinearLR``; ``optax.linear_schedule``.
  """
  fn = "linear"
  return Linear(
      init_value=_checks.check_float(fn, "init_value", init_value, low=0.0),
      end_value=_checks.check_float(fn, "end_value", end_value, low=0.0),
      steps=_checks.check_int(fn, "steps", steps, low=1),
  )


# --- inverse_sqrt ------------------------------------------------------------------


@schedule_class("inverse_sqrt")
class InverseSqrt(Schedule):
  peak_value: Any
  warmup_steps: Any
  init_value: Any
  timescale: Any = None

  def value_at(self, step: jax.Array) -> jax.Array:
    peak, w = _base.f32(self.peak_value), _base.f32(self.warmup_steps)
    t = _base.f32(step)
    ramp = _base.along("linear", self.init_value, peak, step, 0, self.warmup_steps)
    if self.timescale is not None:  # Hugging Face: sqrt(tau / (t - W + tau))
      tau = _base.f32(self.timescale)
      after = _base.f32(_base.since(step, self.warmup_steps))
      decay = peak * jnp.sqrt(tau / (after + tau))
      return jnp.where(_base.reached(step, self.warmup_steps), decay, ramp)
    no_warmup = peak / jnp.sqrt(t + 1.0)
    decay = peak * jnp.sqrt(w / jnp.maximum(t, 1.0))
    warm = jnp.where(_base.reached(step, self.warmup_steps), decay, ramp)
    return jnp.where(w == 0.0, no_warmup, warm)


@constructor
def inverse_sqrt(
    peak_value: float,
    *,
    warmup_steps: int = 0,
    init_value: float = 0.0,
    timescale: float | None = None,
) -> InverseSqrt:
  """Decays as the inverse square root of the step, after an optional warmup.

  .. math::
    \\eta(t) = \\begin{cases}
      v_p / \\sqrt{t + 1} & W = 0 \\\\
      v_i + (v_p - v_i)\\, t / W & t < W \\\\
      v_p \\sqrt{W / t} & t \\ge W
    \\end{cases}
    \\qquad \\text{or, with a timescale } \\tau, \\qquad
    \\eta(t) = \\begin{cases}
      v_i + (v_p - v_i)\\, t / W & t < W \\\\
      v_p \\Big/ \\sqrt{(t - W + \\tau) / \\tau} & t \\ge W
    \\end{cases}

  with :math:`v_p` = `peak_value`, :math:`v_i` = `init_value`, :math:`W` =
  `warmup_steps`. Without warmup this is the ``SquareRootScheduler`` of "Dive
  into Deep Learning" (the ``+ 1`` keeps step 0 finite; `init_value` is
  unused). With a warmup it is fairseq's ``inverse_sqrt`` with
  ``warmup_init_lr=init_value``: a linear ramp from `init_value` at step 0 to
  `peak_value` at ``step == warmup_steps``, then
  ``peak_value * sqrt(warmup_steps / step)``; the decay is counted from step
  0, so it includes the warmup.

  With a `timescale` it is Hugging Face's ``get_inverse_sqrt_schedule(
  num_warmup_steps=warmup_steps, timescale=timescale)`` (big_vision's
  ``rsqrt``): the decay counts from the end of the warmup, at `peak_value`
  there. ``timescale=None`` keeps the forms above, not Hugging Face's default
  ``timescale = num_warmup_steps or 10_000``.

  Args:
    peak_value: the rate the warmup reaches at ``step == warmup_steps`` (the
      rate at step 0 without warmup); >= 0.
    warmup_steps: the length of the linear warmup, an integer >= 0.
    init_value: the rate at step 0 when ``warmup_steps > 0``; >= 0.
    timescale: None, or the decay's time scale, a finite number > 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `warmup_steps` is not
      an integer >= 0, or `timescale` is not None or a finite number > 0.

  Example:
    >>> import lrjax
    >>> s = lrjax.inverse_sqrt(0.1)
    >>> print(f"{s(0):.4f} {s(3):.4f} {s(99):.4f}")
    0.1000 0.0500 0.0100
    >>> s = lrjax.inverse_sqrt(0.1, warmup_steps=4)
    >>> print(f"{s(0):.4f} {s(2):.4f} {s(4):.4f} {s(16):.4f}")
    0.0000 0.0500 0.1000 0.0500
    >>> s = lrjax.inverse_sqrt(0.1, warmup_steps=4, timescale=10)
    >>> print(f"{s(2):.4f} {s(4):.4f} {s(34):.4f}")
    0.0500 0.1000 0.0500

  References:
    Vaswani et al. 2017, "Attention Is All You Need" (section 5.3); fairseq
    ``InverseSquareRootSchedule``; Zhang et al., "Dive into Deep Learning",
    section 12.11 (``SquareRootScheduler``); Hugging Face
    ``get_inverse_sqrt_schedule``.
  """
  fn = "inverse_sqrt"
  if timescale is not None:
    timescale = _checks.check_float(fn, "timescale", timescale, low=0.0,
                                    low_open=True)
  return InverseSqrt(
      peak_value=_checks.check_float(fn, "peak_value", peak_value, low=0.0),
      warmup_steps=_checks.check_int(fn, "warmup_steps", warmup_steps, low=0),
      init_value=_checks.check_float(fn, "init_value", init_value, low=0.0),
      timescale=timescale,
  )


# --- tanh_decay --------------------------------------------------------------------


@schedule_class("tanh_decay")
class TanhDecay(Schedule):
  init_value: Any
  decay_steps: Any
  end_value: Any
  lower: Any
  upper: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    init, end = _base.f32(self.init_value), _base.f32(self.end_value)
    low, up = _base.f32(self.lower), _base.f32(self.upper)
    done, left, span = _base.progress(step, 0, self.decay_steps)
    x = low * (left / span) + up * (done / span)
    # (1 - tanh(x)) / 2 == sigmoid(-2 x), precise where tanh(x) is near 1.
    value = end + (init - end) * jax.nn.sigmoid(-2.0 * x)
    return jnp.where(_base.reached(step, self.decay_steps), end, value)


@constructor
def tanh_decay(
    init_value: float,
    *,
    decay_steps: int,
    end_value: float = 0.0,
    lower: float = -7.0,
    upper: float = 3.0,
) -> TanhDecay:
  """A hyperbolic-tangent decay from `init_value` towards `end_value`.

  .. math::
    \\eta(t) = \\begin{cases}
      v_e + \\tfrac12 (v_0 - v_e) \\left(1 - \\tanh\\left(L (1 - z) + U z
        \\right)\\right), \\quad z = t / T & t < T \\\\
      v_e & t \\ge T
    \\end{cases}

  with :math:`v_0` = `init_value`, :math:`v_e` = `end_value`, :math:`T` =
  `decay_steps`, :math:`L` = `lower`, :math:`U` = `upper`. The tanh runs over
  ``[lower, upper]``, so the rate starts at ``(1 - tanh(lower)) / 2`` of the
  way from `end_value` to `init_value` (``1 - 8.3e-7`` for the default
  ``lower=-7``) and is ``(1 - tanh(upper)) / 2`` of it (``0.0025`` for
  ``upper=3``) just before `decay_steps`, where it drops to `end_value`.

  This is timm's ``TanhLRScheduler(t_initial=decay_steps, lb=lower,
  ub=upper, lr_min=end_value)`` with timm's default ``cycle_limit=1`` (no
  restarts: `end_value` from ``t_initial`` on).

  Args:
    init_value: the rate's scale (the rate at step 0, up to the factor above),
      >= 0.
    decay_steps: the decay length, an integer > 0.
    end_value: the rate from ``step == decay_steps`` on, >= 0.
    lower: where the tanh starts, a finite number < `upper`.
    upper: where the tanh ends, a finite number > `lower`.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `decay_steps` is not a
      positive integer, `lower` or `upper` is not finite, or
      ``lower >= upper``.

  Warns:
    UserWarning: if ``end_value > init_value`` (the "decay" rises).

  Example:
    >>> import lrjax
    >>> s = lrjax.tanh_decay(0.1, decay_steps=100)
    >>> print(f"{s(0):.4f} {s(70):.4f} {s(99):.5f} {s(100):.4f}")
    0.1000 0.0500 0.00030 0.0000

  References:
    Hsueh et al. 2019, "Stochastic Gradient Descent with Hyperbolic-Tangent
    Decay on Classification" (arXiv 1806.01593); timm ``TanhLRScheduler``.
  """
  fn = "tanh_decay"
  init_value = _checks.check_float(fn, "init_value", init_value, low=0.0)
  decay_steps = _checks.check_int(fn, "decay_steps", decay_steps, low=1)
  end_value = _checks.check_float(fn, "end_value", end_value, low=0.0)
  lower = _checks.check_float(fn, "lower", lower)
  upper = _checks.check_float(fn, "upper", upper)
  _checks.check_order(fn, "lower", lower, "<", "upper", upper)
  _checks.warn_rising(fn, "init_value", init_value, "end_value", end_value)
  return TanhDecay(
      init_value=init_value,
      decay_steps=decay_steps,
      end_value=end_value,
      lower=lower,
      upper=upper,
  )
