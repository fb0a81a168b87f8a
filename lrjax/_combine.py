"""Combinators: warmup, sequence, per-epoch indexing and products."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base
from lrjax._base import Schedule, constructor, schedule_class, static_field
from lrjax._decay import constant


@schedule_class("product")
class Product(Schedule):
  schedules: tuple[Schedule, ...]

  def _value(self, step: jax.Array) -> jax.Array:
    out = _base.f32(1.0)
    for s in self.schedules:
      out = out * s._value(step)  # pylint: disable=protected-access
    return out


@constructor
def product(*schedules: Schedule | float) -> Product:
  """The pointwise product of schedules (numbers become constants).

  .. math::
    \\eta(t) = \\prod_i \\eta_i(t)

  ``a * b``, ``a * 0.5`` and ``0.5 * a`` build the same thing. Multiplying a
  decay by a warmup factor is PyTorch's ``ChainedScheduler`` pattern.

  Args:
    *schedules: at least one schedule or non-negative number.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if no factor is given, or a factor is neither a schedule nor a
      finite non-negative number.

  Example:
    >>> import lrjax
    >>> s = lrjax.step_decay(0.2, step_size=10, gamma=0.5) * 0.5
    >>> print(f"{s(0):.4f} {s(10):.4f}")
    0.1000 0.0500

  References:
    ``torch.optim.lr_scheduler.ChainedScheduler``.
  """
  if not schedules:
    raise ValueError("product: needs at least one schedule, got none")
  factors = []
  for i, s in enumerate(schedules):
    if isinstance(s, Schedule):
      factors.append(s)
    else:
      try:
        factors.append(constant(s))
      except ValueError:
        raise ValueError(
            f"product: schedules[{i}] must be an lrjax schedule or a number "
            f">= 0, got {s!r}"
        ) from None
  return Product(schedules=tuple(factors))


@schedule_class("warmup")
class Warmup(Schedule):
  schedule: Schedule
  steps: Any
  init_value: Any
  shape: str = static_field(default="linear")

  def _value(self, step: jax.Array) -> jax.Array:
    target = self.schedule._value(jnp.zeros((), step.dtype))  # pylint: disable=protected-access
    frac = jnp.clip(_base.f32(step) / jnp.maximum(_base.f32(self.steps), 1.0), 0, 1)
    if self.shape == "cosine":
      frac = 0.5 * (1.0 - jnp.cos(math.pi * frac))
    init = _base.f32(self.init_value)
    ramp = init + (target - init) * frac
    after = self.schedule._value(_base.since(step, self.steps))  # pylint: disable=protected-access
    return jnp.where(_base.reached(step, self.steps), after, ramp)


@constructor
def warmup(
    schedule: Schedule,
    *,
    steps: int,
    init_value: float = 0.0,
    shape: str = "linear",
) -> Warmup:
  """Ramps from `init_value` to ``schedule(0)`` over `steps`, then runs `schedule`.

  .. math::
    \\eta(t) = \\begin{cases}
      v_0 + (s(0) - v_0)\\, r(t / \\text{steps}) & t < \\text{steps} \\\\
      s(t - \\text{steps}) & t \\ge \\text{steps}
    \\end{cases}

  with :math:`r(x) = x` for ``shape="linear"`` and
  :math:`r(x) = (1 - \\cos \\pi x) / 2` for ``shape="cosine"``. The wrapped
  schedule's own step count starts after the warmup, so its ``decay_steps``
  do not include the warmup.

  Args:
    schedule: the schedule to warm up into.
    steps: warmup length, an integer >= 0 (0: `schedule` unchanged).
    init_value: the rate at step 0, >= 0.
    shape: ``"linear"`` or ``"cosine"``.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `schedule` is not a schedule, `steps` is not an integer
      >= 0, `init_value` is negative, or `shape` is unknown.

  Example:
    >>> import lrjax
    >>> s = lrjax.warmup(lrjax.constant(0.4), steps=4)
    >>> print(f"{s(0):.4f} {s(1):.4f} {s(4):.4f}")
    0.0000 0.1000 0.4000

  References:
    Goyal et al. 2017, "Accurate, Large Minibatch SGD" (gradual warmup);
    ``torch.optim.lr_scheduler.LinearLR`` chained with ``SequentialLR``.
  """
  fn = "warmup"
  return Warmup(
      schedule=_base.check_schedule(fn, "schedule", schedule),
      steps=_base.check_int(fn, "steps", steps, low=0),
      init_value=_base.check_float(fn, "init_value", init_value, low=0.0),
      shape=_base.check_choice(fn, "shape", shape, ("linear", "cosine")),
  )


@schedule_class("sequence")
class Sequential(Schedule):
  schedules: tuple[Schedule, ...]
  boundaries: tuple[Any, ...]

  def _value(self, step: jax.Array) -> jax.Array:
    starts = (0,) + tuple(self.boundaries)
    values = jnp.stack([
        jnp.broadcast_to(s._value(_base.since(step, b)), step.shape)  # pylint: disable=protected-access
        for s, b in zip(self.schedules, starts)
    ], axis=-1)
    index = _base.count_reached(step, self.boundaries)
    return jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]


@constructor
def sequence(schedules: Sequence[Schedule], *, boundaries: Sequence[int]) -> Sequential:
  """Runs schedule i on ``[boundaries[i-1], boundaries[i])``, each from its own step 0.

  .. math::
    \\eta(t) = s_i(t - b_{i-1}) \\quad \\text{for } b_{i-1} \\le t < b_i,
    \\quad b_{-1} = 0,\\ b_n = \\infty

  Args:
    schedules: n + 1 schedules.
    boundaries: n strictly increasing integers > 0; schedule ``i + 1`` applies
      from ``step == boundaries[i]`` on.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if an element of `schedules` is not a schedule, if
      ``len(schedules) != len(boundaries) + 1``, or if `boundaries` are not
      strictly increasing positive integers.

  Example:
    >>> import lrjax
    >>> s = lrjax.sequence(
    ...     [lrjax.constant(0.1), lrjax.step_decay(0.05, step_size=2, gamma=0.5)],
    ...     boundaries=[3])
    >>> print(f"{s(2):.4f} {s(3):.4f} {s(5):.4f}")
    0.1000 0.0500 0.0250

  References:
    ``torch.optim.lr_scheduler.SequentialLR``; ``optax.join_schedules``.
  """
  fn = "sequence"
  if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence):
    raise ValueError(f"{fn}: schedules must be a sequence of schedules, got {schedules!r}")
  scheds = tuple(
      _base.check_schedule(fn, f"schedules[{i}]", s) for i, s in enumerate(schedules)
  )
  bounds = _base.check_int_sequence(fn, "boundaries", boundaries, low=1, allow_empty=True)
  if len(scheds) != len(bounds) + 1:
    raise ValueError(
        f"{fn}: needs len(schedules) == len(boundaries) + 1, got "
        f"{len(scheds)} schedules and {len(bounds)} boundaries"
    )
  return Sequential(schedules=scheds, boundaries=bounds)


@schedule_class("per_epoch")
class PerEpoch(Schedule):
  schedule: Schedule
  steps_per_epoch: Any

  def _value(self, step: jax.Array) -> jax.Array:
    epoch = _base.floor_div(step, self.steps_per_epoch)
    return self.schedule._value(epoch.astype(step.dtype))  # pylint: disable=protected-access


@constructor
def per_epoch(schedule: Schedule, *, steps_per_epoch: int) -> PerEpoch:
  """Drives an epoch-indexed schedule by the optimizer's step count.

  .. math::
    \\eta(t) = s(\\lfloor t / \\text{steps\\_per\\_epoch} \\rfloor)

  PyTorch users often call ``scheduler.step()`` once per epoch; this gives the
  same rates to an optax optimizer that counts updates.

  Args:
    schedule: a schedule whose step is the epoch.
    steps_per_epoch: updates per epoch, an integer > 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `schedule` is not a schedule or `steps_per_epoch` is not a
      positive integer.

  Example:
    >>> import lrjax
    >>> s = lrjax.per_epoch(lrjax.multistep(0.3, milestones=[2], gamma=0.5),
    ...                     steps_per_epoch=100)
    >>> print(f"{s(199):.4f} {s(200):.4f}")
    0.3000 0.1500
  """
  fn = "per_epoch"
  return PerEpoch(
      schedule=_base.check_schedule(fn, "schedule", schedule),
      steps_per_epoch=_base.check_int(fn, "steps_per_epoch", steps_per_epoch, low=1),
  )
