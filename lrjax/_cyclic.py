"""Cyclical schedules: cyclic learning rates (CLR) and the one-cycle policy."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import Schedule, constructor, schedule_class, static_field

_I32_MAX = int(np.iinfo(np.int32).max)


# --- cyclic --------------------------------------------------------------------

_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@schedule_class("cyclic")
class Cyclic(Schedule):
  base_value: Any
  max_value: Any
  step_size_up: Any
  step_size_down: Any
  gamma: Any
  mode: str = static_field(default="triangular")

  def _value(self, step: jax.Array) -> jax.Array:
    up = _base.like_step(step, self.step_size_up)
    period = up + _base.like_step(step, self.step_size_down)
    cycle = _base.floor_div(step, period)  # 0-based: PyTorch's `cycle` - 1
    pos = step - cycle * period  # exact for integer steps
    rise = _base.f32(pos) / jnp.maximum(_base.f32(up), 1.0)
    fall = _base.f32(period - pos) / jnp.maximum(_base.f32(self.step_size_down), 1.0)
    height = jnp.where(pos <= up, rise, fall)
    base = _base.f32(self.base_value)
    amplitude = _base.f32(self.max_value) - base
    if self.mode == "triangular2":
      amplitude = amplitude * _base.f32(0.5) ** _base.f32(cycle)
    elif self.mode == "exp_range":
      amplitude = amplitude * _base.f32(self.gamma) ** _base.f32(step)
    return base + amplitude * height


@constructor
def cyclic(
    *,
    base_value: float,
    max_value: float,
    step_size_up: int,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> Cyclic:
  r"""Cyclical learning rates: triangles between `base_value` and `max_value`.

  .. math::
    \eta(t) = v_b + (v_m - v_b)\, h(t)\, s(t), \quad
    h(t) = \begin{cases}
      p / U & p \le U \\
      (U + D - p) / D & p > U
    \end{cases}, \quad
    p = t \bmod (U + D),\ c = \lfloor t / (U + D) \rfloor

  with :math:`v_b` = `base_value`, :math:`v_m` = `max_value`, :math:`U` =
  `step_size_up`, :math:`D` = `step_size_down`, and the amplitude scale
  :math:`s = 1` (``"triangular"``), :math:`2^{-c}` (``"triangular2"``: halved
  each cycle) or :math:`\gamma^t` (``"exp_range"``: decayed each step).
  Each cycle starts at `base_value` on a multiple of ``U + D`` and peaks
  ``U`` steps later. There is no end: the cycles go on (and on steps past the
  int32 range when the step is int64).

  This is PyTorch's ``CyclicLR(base_lr=base_value, max_lr=max_value,
  step_size_up, step_size_down, mode, gamma)`` for the learning rate
  (momentum cycling is not part of a learning-rate schedule). ``cycle`` and
  the position in it are computed in the step's integer dtype, exact at any
  step. ``"exp_range"`` uses `gamma` rounded to float32, and that rounding is
  amplified ``t`` times in ``gamma**t``: its relative error is up to about
  ``t * 6e-8`` (``1e-4`` at ``t = 2000``; an exactly representable gamma such
  as ``1 - 2**-10`` has none).

  Args:
    base_value: the rate at the start of each cycle (the lower bound), >= 0.
    max_value: the upper bound of the first cycle, >= `base_value`.
    step_size_up: steps from `base_value` up to the peak, an integer > 0.
    step_size_down: steps from the peak back down, an integer >= 0 (0 makes
      a sawtooth); ``None`` means equal to `step_size_up`.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
    gamma: the per-step amplitude factor of ``"exp_range"``, in ``(0, 1]``.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, ``max_value <
      base_value``, `step_size_up` is not an integer > 0, `step_size_down` is
      not ``None`` or an integer >= 0, the two add up past 2**31 - 1, `mode`
      is unknown, or `gamma` is outside ``(0, 1]``.

  Warns:
    UserWarning: if ``gamma != 1`` with a mode other than ``"exp_range"``
      (where it is unused).

  Example:
    >>> import lrjax
    >>> s = lrjax.cyclic(base_value=0.01, max_value=0.1, step_size_up=10,
    ...                  mode="triangular2")
    >>> print(f"{s(0):.4f} {s(5):.4f} {s(10):.4f} {s(20):.4f} {s(30):.4f}")
    0.0100 0.0550 0.1000 0.0100 0.0550

  References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (WACV);
    ``torch.optim.lr_scheduler.CyclicLR``.
  """
  fn = "cyclic"
  base_value = _base.check_float(fn, "base_value", base_value, low=0.0)
  max_value = _base.check_float(fn, "max_value", max_value, low=0.0)
  step_size_up = _base.check_int(fn, "step_size_up", step_size_up, low=1)
  if step_size_down is None:
    step_size_down = step_size_up
  step_size_down = _base.check_int(fn, "step_size_down", step_size_down, low=0)
  mode = _base.check_choice(fn, "mode", mode, _CYCLIC_MODES)
  gamma = _base.check_float(fn, "gamma", gamma, low=0.0, low_open=True, high=1.0)
  kb, km = _base.known(base_value), _base.known(max_value)
  if kb is not None and km is not None and np.any(km < kb):
    raise ValueError(
        f"{fn}: max_value must be >= base_value, got max_value={max_value!r}, "
        f"base_value={base_value!r}"
    )
  ku, kd = _base.known(step_size_up), _base.known(step_size_down)
  if ku is not None and kd is not None and np.any(ku + kd > _I32_MAX):
    raise ValueError(
        f"{fn}: step_size_up + step_size_down must be <= {_I32_MAX} (int32), "
        f"got {step_size_up!r} + {step_size_down!r}"
    )
  kg = _base.known(gamma)
  if mode != "exp_range" and kg is not None and np.any(kg != 1.0):
    warnings.warn(
        f"{fn}: gamma={gamma!r} is used only by mode='exp_range', not "
        f"mode={mode!r}",
        stacklevel=2,
    )
  return Cyclic(
      base_value=base_value,
      max_value=max_value,
      step_size_up=step_size_up,
      step_size_down=step_size_down,
      gamma=gamma,
      mode=mode,
  )


# --- one_cycle -----------------------------------------------------------------


@schedule_class("one_cycle")
class OneCycle(Schedule):
  max_value: Any
  total_steps: Any
  pct_start: Any
  div_factor: Any
  final_div_factor: Any
  anneal: str = static_field(default="cos")
  three_phase: bool = static_field(default=False)

  def _value(self, step: jax.Array) -> jax.Array:
    last = _base.like_step(step, self.total_steps) - 1
    t = _base.f32(jnp.minimum(step, last))  # held from the last step on
    peak = _base.f32(self.max_value)
    initial = peak / _base.f32(self.div_factor)
    low = initial / _base.f32(self.final_div_factor)
    n = _base.f32(self.total_steps)
    pct = _base.f32(self.pct_start)
    # PyTorch's phase table: (end_step, start value, end value); a phase
    # starts where the one before ends, the first at 0.
    if self.three_phase:
      phases = [(pct * n - 1.0, initial, peak), (2.0 * pct * n - 2.0, peak, initial),
                (n - 1.0, initial, low)]
    else:
      phases = [(pct * n - 1.0, initial, peak), (n - 1.0, peak, low)]
    starts = [_base.f32(0.0)] + [end for end, _, _ in phases[:-1]]
    values = [self._anneal(t, s, e, a, b) for s, (e, a, b) in zip(starts, phases)]
    # The first phase whose end_step the step has not passed (PyTorch's rule).
    value = values[-1]
    for (end, _, _), v in reversed(list(zip(phases[:-1], values[:-1]))):
      value = jnp.where(t <= end, v, value)
    return value

  def _anneal(self, t, start, end, a, b):
    """From `a` at ``t == start`` to `b` at ``t == end``."""
    span = end - start
    span = jnp.where(span > 0, span, 1.0)
    done, left = t - start, end - t
    if self.anneal == "cos":
      wa, wb = _base.cosine_weights(done, left, span)
    else:
      wa, wb = left / span, done / span
    return a * wa + b * wb  # no cancellation, rising or falling


@constructor
def one_cycle(
    *,
    max_value: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> OneCycle:
  r"""The one-cycle policy: up to `max_value`, then far below the start.

  With :math:`N` = `total_steps`, :math:`p` = `pct_start`, :math:`v_m` =
  `max_value`, :math:`v_0 = v_m / \text{div\_factor}` and
  :math:`v_{min} = v_0 / \text{final\_div\_factor}`, the phases are PyTorch's
  (each ends at a possibly fractional ``end_step``; a step belongs to the
  first phase whose ``end_step`` it has not passed):

  .. math::
    \begin{array}{lll}
      \text{two-phase:} & v_0 \to v_m \text{ until } pN - 1, &
        v_m \to v_{min} \text{ until } N - 1 \\
      \text{three\_phase:} & v_0 \to v_m \text{ until } pN - 1, &
        v_m \to v_0 \text{ until } 2pN - 2, \quad
        v_0 \to v_{min} \text{ until } N - 1
    \end{array}

  each going from value :math:`a` at its start step :math:`s` to value
  :math:`b` at its end step :math:`e` as
  :math:`b + (a - b)(1 + \cos \pi x)/2` (``"cos"``) or
  :math:`b + (a - b)(1 - x)` (``"linear"``), with
  :math:`x = (t - s) / (e - s)`. The second phase thus starts at step
  ``floor(pct_start * total_steps)``, up to PyTorch's float64 rounding of
  ``pct_start * total_steps`` (the phases meet continuously there, so that
  rounding does not change the rate). Steps ``0 .. total_steps - 1`` equal
  PyTorch's ``OneCycleLR(max_lr=max_value, total_steps, pct_start,
  anneal_strategy=anneal, div_factor, final_div_factor, three_phase)``; from
  ``total_steps - 1`` on the rate is held at :math:`v_{min}` (PyTorch
  extrapolates one step, then raises). There is no separate warmup: the first
  phase is the warmup, and `total_steps` is the whole schedule. Phase ends and
  positions are float32 (`pct_start` rounded to float32), which moves them by
  about ``total_steps * 6e-8`` steps at most.

  Args:
    max_value: the peak rate, >= 0.
    total_steps: the length of the cycle, an integer > 0.
    pct_start: the fraction of `total_steps` spent rising, in ``(0, 1)``
      (``(0, 0.5]`` with `three_phase`), with ``pct_start * total_steps > 1``.
    anneal: ``"cos"`` or ``"linear"``.
    div_factor: the start rate is ``max_value / div_factor``; > 0.
    final_div_factor: the final rate is ``max_value / div_factor /
      final_div_factor``; > 0.
    three_phase: go back down to the start rate first, then anneal to the
      final rate (the original paper), instead of two phases (fastai).

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `max_value` is negative or not finite, `total_steps` is not
      an integer > 0, `pct_start` is outside ``(0, 1)`` (or above 0.5 with
      `three_phase`, where the third phase would be empty), ``pct_start *
      total_steps <= 1`` (the first phase would be empty: PyTorch divides by
      zero or skips it), `anneal` is unknown, a factor is not a finite number
      > 0, or `three_phase` is not a bool.

  Example:
    >>> import lrjax
    >>> s = lrjax.one_cycle(max_value=0.1, total_steps=100, pct_start=0.25,
    ...                     anneal="linear", div_factor=10.0)
    >>> print(f"{s(0):.4f} {s(12):.4f} {s(24):.4f} {s(60):.4f}")
    0.0100 0.0550 0.1000 0.0520
    >>> print(f"{s(99):.2e} {s(5000):.2e}")
    1.00e-06 1.00e-06

  References:
    Smith & Topin 2019, "Super-Convergence: Very Fast Training of Neural
    Networks Using Large Learning Rates"; ``torch.optim.lr_scheduler.OneCycleLR``.
  """
  fn = "one_cycle"
  max_value = _base.check_float(fn, "max_value", max_value, low=0.0)
  total_steps = _base.check_int(fn, "total_steps", total_steps, low=1)
  three_phase = _base.check_bool(fn, "three_phase", three_phase)
  pct_start = _base.check_float(
      fn, "pct_start", pct_start, low=0.0, low_open=True, high=1.0, high_open=True)
  kp, kn = _base.known(pct_start), _base.known(total_steps)
  if three_phase and kp is not None and np.any(kp > 0.5):
    raise ValueError(
        f"{fn}: pct_start must be <= 0.5 with three_phase=True (the third "
        f"phase would be empty), got {pct_start!r}"
    )
  anneal = _base.check_choice(fn, "anneal", anneal, ("cos", "linear"))
  div_factor = _base.check_float(fn, "div_factor", div_factor, low=0.0, low_open=True)
  final_div_factor = _base.check_float(
      fn, "final_div_factor", final_div_factor, low=0.0, low_open=True)
  if kp is not None and kn is not None and np.any(kp * kn <= 1.0):
    raise ValueError(
        f"{fn}: pct_start * total_steps must be > 1 (the first phase ends at "
        f"step pct_start * total_steps - 1), got pct_start={pct_start!r}, "
        f"total_steps={total_steps!r}"
    )
  return OneCycle(
      max_value=max_value,
      total_steps=total_steps,
      pct_start=pct_start,
      div_factor=div_factor,
      final_div_factor=final_div_factor,
      anneal=anneal,
      three_phase=three_phase,
  )
