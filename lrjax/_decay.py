"""Decay schedules: constant, step and multi-step, piecewise, exponential,
inverse-time, polynomial, linear and inverse square root."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import Schedule, constructor, schedule_class, static_field


@schedule_class("constant")
class Constant(Schedule):
  value: Any

  def _value(self, step: jax.Array) -> jax.Array:
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
  value = _base.check_float("constant", "value", value, low=0.0)
  return Constant(value=value)


@schedule_class("step_decay")
class StepDecay(Schedule):
  init_value: Any
  step_size: Any
  gamma: Any

  def _value(self, step: jax.Array) -> jax.Array:
    k = _base.floor_div(step, self.step_size)
    return _base.f32(self.init_value) * _base.f32(self.gamma) ** _base.f32(k)


@constructor
def step_decay(init_value: float, *, step_size: int, gamma: float) -> StepDecay:
  """Multiplies the rate by `gamma` every `step_size` steps.

  .. math::
    \\eta(t) = \\text{init\\_value} \\cdot
      \\gamma^{\\lfloor t / \\text{step\\_size} \\rfloor}

  The first decay applies from ``step == step_size`` on.

  Args:
    init_value: the rate at step 0, >= 0.
    step_size: steps between decays, an integer > 0.
    gamma: the factor, >= 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` or `gamma` is negative or not finite, or if
      `step_size` is not a positive integer.

  Example:
    >>> import lrjax
    >>> s = lrjax.step_decay(0.1, step_size=30, gamma=0.1)
    >>> print(f"{s(29):.4f} {s(30):.4f} {s(60):.4f}")
    0.1000 0.0100 0.0010

  References:
    ``torch.optim.lr_scheduler.StepLR``.
  """
  fn = "step_decay"
  return StepDecay(
      init_value=_base.check_float(fn, "init_value", init_value, low=0.0),
      step_size=_base.check_int(fn, "step_size", step_size, low=1),
      gamma=_base.check_float(fn, "gamma", gamma, low=0.0),
  )


# --- helpers -------------------------------------------------------------------


def _check_floats(fn: str, name: str, xs: Any, *, low: float = 0.0) -> tuple[Any, ...]:
  """A non-empty sequence of finite numbers >= `low`, as a tuple."""
  if isinstance(xs, (str, bytes)) or not isinstance(
      xs, (Sequence, np.ndarray, jax.Array)
  ):
    raise ValueError(f"{fn}: {name} must be a sequence of numbers, got {xs!r}")
  return tuple(
      _base.check_float(fn, f"{name}[{i}]", x, low=low) for i, x in enumerate(xs)
  )


# --- multistep -----------------------------------------------------------------


@schedule_class("multistep")
class MultiStep(Schedule):
  init_value: Any
  milestones: tuple[Any, ...]
  gamma: Any

  def _value(self, step: jax.Array) -> jax.Array:
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
      init_value=_base.check_float(fn, "init_value", init_value, low=0.0),
      milestones=_base.check_int_sequence(
          fn, "milestones", milestones, low=0, strict=False
      ),
      gamma=_base.check_float(fn, "gamma", gamma, low=0.0),
  )


# --- piecewise_constant ----------------------------------------------------------


@schedule_class("piecewise_constant")
class PiecewiseConstant(Schedule):
  boundaries: tuple[Any, ...]
  values: tuple[Any, ...]

  def _value(self, step: jax.Array) -> jax.Array:
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
  fn = "piecewise_constant"
  bounds = _base.check_int_sequence(fn, "boundaries", boundaries, low=1)
  vals = _check_floats(fn, "values", values)
  if len(vals) != len(bounds) + 1:
    raise ValueError(
        f"{fn}: needs len(values) == len(boundaries) + 1, got {len(vals)} "
        f"values {values!r} and {len(bounds)} boundaries {boundaries!r}"
    )
  return PiecewiseConstant(boundaries=bounds, values=vals)


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

  def _value(self, step: jax.Array) -> jax.Array:
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
  init_value = _base.check_float(fn, "init_value", init_value, low=0.0)
  decay_steps = _base.check_int(fn, "decay_steps", decay_steps, low=1)
  decay_rate = _base.check_float(fn, "decay_rate", decay_rate, low=0.0, low_open=True)
  staircase = _base.check_bool(fn, "staircase", staircase)
  if end_value is not None:
    end_value = _base.check_float(fn, "end_value", end_value, low=0.0)
  init, rate, end = _base.known(init_value), _base.known(decay_rate), _base.known(end_value)
  if init is not None and rate is not None and end is not None:
    if np.any((rate < 1) & (end > init)):
      raise ValueError(
          f"{fn}: end_value must be <= init_value when decay_rate < 1 (it is "
          f"a floor), got end_value={end_value!r}, init_value={init_value!r}"
      )
    if np.any((rate > 1) & (end < init)):
      raise ValueError(
          f"{fn}: end_value must be >= init_value when decay_rate > 1 (it is "
          f"a ceiling), got end_value={end_value!r}, init_value={init_value!r}"
      )
  if end_value is None and rate is not None and np.any(rate > 1):
    warnings.warn(
        f"{fn}: decay_rate={decay_rate!r} > 1 grows the rate without bound "
        "(to inf); pass end_value as a ceiling",
        stacklevel=2,
    )
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

  def _value(self, step: jax.Array) -> jax.Array:
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
      init_value=_base.check_float(fn, "init_value", init_value, low=0.0),
      decay_steps=_base.check_int(fn, "decay_steps", decay_steps, low=1),
      decay_rate=_base.check_float(fn, "decay_rate", decay_rate, low=0.0),
      staircase=_base.check_bool(fn, "staircase", staircase),
  )


# --- polynomial_decay ------------------------------------------------------------


@schedule_class("polynomial_decay")
class PolynomialDecay(Schedule):
  init_value: Any
  decay_steps: Any
  end_value: Any
  power: Any
  cycle: bool = static_field(default=False)

  def _value(self, step: jax.Array) -> jax.Array:
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
      frac = _base.f32(left) / (_base.f32(cycles) * _base.f32(d))
    else:
      frac = _base.f32(d - jnp.minimum(step, d)) / _base.f32(d)
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
) -> PolynomialDecay:
  """Decays from `init_value` to `end_value` along ``(1 - t / decay_steps) ** power``.

  .. math::
    \\eta(t) = (\\text{init\\_value} - \\text{end\\_value})
      \\left(1 - \\frac{\\min(t, T)}{T}\\right)^{\\text{power}}
      + \\text{end\\_value}, \\quad T = \\text{decay\\_steps}

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

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` or `end_value` is negative or not finite,
      `decay_steps` is not a positive integer, `power` is not a finite number
      > 0, or `cycle` is not a bool.

  Example:
    >>> import lrjax
    >>> s = lrjax.polynomial_decay(0.1, decay_steps=100, end_value=0.01, power=2.0)
    >>> print(f"{s(0):.4f} {s(50):.4f} {s(100):.4f} {s(500):.4f}")
    0.1000 0.0325 0.0100 0.0100

  References:
    ``keras.optimizers.schedules.PolynomialDecay``;
    ``torch.optim.lr_scheduler.PolynomialLR``; ``optax.polynomial_schedule``.
  """
  fn = "polynomial_decay"
  return PolynomialDecay(
      init_value=_base.check_float(fn, "init_value", init_value, low=0.0),
      decay_steps=_base.check_int(fn, "decay_steps", decay_steps, low=1),
      end_value=_base.check_float(fn, "end_value", end_value, low=0.0),
      power=_base.check_float(fn, "power", power, low=0.0, low_open=True),
      cycle=_base.check_bool(fn, "cycle", cycle),
  )


# --- linear ------------------------------------------------------------------------


@schedule_class("linear")
class Linear(Schedule):
  init_value: Any
  end_value: Any
  steps: Any

  def _value(self, step: jax.Array) -> jax.Array:
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
      init_value=_base.check_float(fn, "init_value", init_value, low=0.0),
      end_value=_base.check_float(fn, "end_value", end_value, low=0.0),
      steps=_base.check_int(fn, "steps", steps, low=1),
  )


# --- inverse_sqrt ------------------------------------------------------------------


@schedule_class("inverse_sqrt")
class InverseSqrt(Schedule):
  init_value: Any
  warmup_steps: Any

  def _value(self, step: jax.Array) -> jax.Array:
    init, w = _base.f32(self.init_value), _base.f32(self.warmup_steps)
    t = _base.f32(step)
    no_warmup = init / jnp.sqrt(t + 1.0)
    ramp = init * t / jnp.maximum(w, 1.0)
    decay = init * jnp.sqrt(w / jnp.maximum(t, 1.0))
    warm = jnp.where(_base.reached(step, self.warmup_steps), decay, ramp)
    return jnp.where(w == 0.0, no_warmup, warm)


@constructor
def inverse_sqrt(init_value: float, *, warmup_steps: int = 0) -> InverseSqrt:
  """Decays as the inverse square root of the step, after an optional warmup.

  .. math::
    \\eta(t) = \\begin{cases}
      \\text{init\\_value} / \\sqrt{t + 1} & W = 0 \\\\
      \\text{init\\_value} \\cdot t / W & t < W \\\\
      \\text{init\\_value} \\cdot \\sqrt{W / t} & t \\ge W
    \\end{cases}, \\quad W = \\text{warmup\\_steps}

  Without warmup this is the ``SquareRootScheduler`` of "Dive into Deep
  Learning" (the ``+ 1`` keeps step 0 finite). With a warmup it is fairseq's
  ``inverse_sqrt`` with ``warmup_init_lr=0``: a linear ramp from 0, so the rate
  at step 0 is 0, to `init_value` at ``step == warmup_steps``, then
  ``init_value * sqrt(warmup_steps / step)``; the decay is counted from step 0,
  so it includes the warmup.

  Args:
    init_value: the peak rate (at ``step == warmup_steps``), >= 0.
    warmup_steps: an integer >= 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `init_value` is negative or not finite, or `warmup_steps`
      is not an integer >= 0.

  Example:
    >>> import lrjax
    >>> s = lrjax.inverse_sqrt(0.1)
    >>> print(f"{s(0):.4f} {s(3):.4f} {s(99):.4f}")
    0.1000 0.0500 0.0100
    >>> s = lrjax.inverse_sqrt(0.1, warmup_steps=4)
    >>> print(f"{s(0):.4f} {s(2):.4f} {s(4):.4f} {s(16):.4f}")
    0.0000 0.0500 0.1000 0.0500

  References:
    Vaswani et al. 2017, "Attention Is All You Need" (section 5.3); fairseq
    ``InverseSquareRootSchedule``; Zhang et al., "Dive into Deep Learning",
    section 12.11 (``SquareRootScheduler``).
  """
  fn = "inverse_sqrt"
  return InverseSqrt(
      init_value=_base.check_float(fn, "init_value", init_value, low=0.0),
      warmup_steps=_base.check_int(fn, "warmup_steps", warmup_steps, low=0),
  )
