"""Decay schedules: constant, step and multi-step, piecewise, exponential,
inverse-time, polynomial, linear and inverse square root."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base
from lrjax._base import Schedule, constructor, schedule_class


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
