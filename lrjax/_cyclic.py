"""Cyclical schedules: cyclic learning rates (CLR), the one-cycle policy, and
the momentum curves that PyTorch cycles against each of them."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base, _checks
from lrjax._base import Schedule, schedule_class, static_field
from lrjax._registry import constructor

# --- cyclic --------------------------------------------------------------------

_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def _cyclic_wave(s: Any, step: jax.Array) -> jax.Array:
  """The fraction of the band a cyclic curve has reached: ``h(t) s(t)`` in [0, 1]."""
  up = _base.like_step(step, s.step_size_up)
  period = up + _base.like_step(step, s.step_size_down)
  cycle = _base.floor_div(step, period)  # 0-based: PyTorch's `cycle` - 1
  pos = step - cycle * period  # exact for integer steps
  rise = _base.f32(pos) / jnp.maximum(_base.f32(up), 1.0)
  fall = _base.f32(period - pos) / jnp.maximum(_base.f32(s.step_size_down), 1.0)
  height = jnp.where(pos <= up, rise, fall)
  if s.mode == "triangular2":
    return height * _base.f32(0.5) ** _base.f32(cycle)
  if s.mode == "exp_range":
    return height * _base.f32(s.gamma) ** _base.f32(step)
  return height


# Two classes, not a subclass: JAX compares the tree structure of a subclass
# of a registered dataclass equal to its parent's, so `jax.jit` would reuse one
# compiled curve for the other.
@schedule_class("cyclic")
class Cyclic(Schedule):
  base_value: Any
  max_value: Any
  step_size_up: Any
  step_size_down: Any
  gamma: Any
  mode: str = static_field(default="triangular")

  def value_at(self, step: jax.Array) -> jax.Array:
    base = _base.f32(self.base_value)
    return base + (_base.f32(self.max_value) - base) * _cyclic_wave(self, step)


@schedule_class("cyclic_momentum")
class CyclicMomentum(Schedule):
  base_value: Any
  max_value: Any
  step_size_up: Any
  step_size_down: Any
  gamma: Any
  mode: str = static_field(default="triangular")

  def value_at(self, step: jax.Array) -> jax.Array:
    top = _base.f32(self.max_value)
    return top - (top - _base.f32(self.base_value)) * _cyclic_wave(self, step)


def _check_band(
    fn: str, base_value: Any, max_value: Any, *, high: float | None
) -> tuple[Any, Any]:
  """A band `base_value` <= `max_value`, both >= 0 (and <= `high`)."""
  base_value = _checks.check_float(fn, "base_value", base_value, low=0.0, high=high)
  max_value = _checks.check_float(fn, "max_value", max_value, low=0.0, high=high)
  _checks.check_order(fn, "max_value", max_value, ">=", "base_value", base_value)
  return base_value, max_value


def _check_cyclic(
    fn: str, base_value: Any, max_value: Any, step_size_up: Any,
    step_size_down: Any, mode: Any, gamma: Any, *, high: float | None = None,
) -> dict[str, Any]:
  """The checks `cyclic` and `cyclic_momentum` share; the fields they build."""
  base_value, max_value = _check_band(fn, base_value, max_value, high=high)
  step_size_up = _checks.check_int(fn, "step_size_up", step_size_up, low=1)
  if step_size_down is None:
    step_size_down = step_size_up
  step_size_down = _checks.check_int(fn, "step_size_down", step_size_down, low=0)
  _checks.check_sum(fn, ["step_size_up", "step_size_down"], [step_size_up, step_size_down])
  mode = _checks.check_choice(fn, "mode", mode, _CYCLIC_MODES)
  gamma = _checks.check_float(fn, "gamma", gamma, low=0.0, low_open=True, high=1.0)
  kg = _checks.concrete(gamma)
  if mode != "exp_range" and kg is not None and (kg != 1.0).any():
    warnings.warn(
        f"{fn}: gamma={gamma!r} is used only by mode='exp_range', not "
        f"mode={mode!r}",
        stacklevel=3,
    )
  return dict(base_value=base_value, max_value=max_value, step_size_up=step_size_up,
              step_size_down=step_size_down, gamma=gamma, mode=mode)


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
  step_size_up, step_size_down, mode, gamma)`` for the learning rate; the
  momentum it cycles against the rate (``cycle_momentum=True``) is
  :func:`cyclic_momentum`. ``cycle`` and the position in it are computed in
  the step's integer dtype, exact at any step. ``"exp_range"`` uses `gamma`
  rounded to float32, and that rounding is amplified ``t`` times in
  ``gamma**t``: its relative error is up to about ``t * 6e-8`` (``1e-4`` at
  ``t = 2000``; an exactly representable gamma such as ``1 - 2**-10`` has
  none).

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
  return Cyclic(**_check_cyclic(
      "cyclic", base_value, max_value, step_size_up, step_size_down, mode, gamma))


@constructor
def cyclic_momentum(
    *,
    base_value: float = 0.8,
    max_value: float = 0.9,
    step_size_up: int,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> CyclicMomentum:
  r"""The momentum PyTorch's ``CyclicLR`` cycles against the rate.

  .. math::
    m(t) = v_m - (v_m - v_b)\, h(t)\, s(t)

  with :math:`h`, :math:`s`, :math:`U`, :math:`D` exactly as in
  :func:`cyclic` (pass it the same `step_size_up`, `step_size_down`, `mode`
  and `gamma`): the momentum is at `max_value` where the rate is at its base
  and at `base_value` where the rate peaks. This is the ``momentum`` (or
  Adam's ``beta1``) that ``CyclicLR(..., cycle_momentum=True,
  base_momentum=base_value, max_momentum=max_value)`` writes into the
  parameter group at every step. Use it as ``momentum=`` of ``optax.sgd`` or
  ``b1=`` of ``optax.adam`` through :func:`lrjax.inject_hyperparams`.

  Args:
    base_value: the momentum at the peak of the rate (the lower bound), in
      ``[0, 1]``.
    max_value: the momentum at the start of each cycle, in ``[0, 1]``, >=
      `base_value`.
    step_size_up: steps of the rate's rise (the momentum's fall), an integer
      > 0.
    step_size_down: steps of the rate's fall, an integer >= 0; ``None``
      means equal to `step_size_up`.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"`` (the swing
      shrinks as the rate's does).
    gamma: the per-step amplitude factor of ``"exp_range"``, in ``(0, 1]``.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a momentum is outside ``[0, 1]`` or not finite,
      ``max_value < base_value``, or a length, `mode` or `gamma` is rejected
      as by :func:`cyclic`.

  Warns:
    UserWarning: if ``gamma != 1`` with a mode other than ``"exp_range"``.

  Example:
    >>> import lrjax
    >>> m = lrjax.cyclic_momentum(step_size_up=10)
    >>> print(f"{m(0):.3f} {m(5):.3f} {m(10):.3f} {m(20):.3f}")
    0.900 0.850 0.800 0.900

  References:
    Smith 2018, "A disciplined approach to neural network hyper-parameters:
    Part 1" (arXiv:1803.09820); ``torch.optim.lr_scheduler.CyclicLR``.
  """
  return CyclicMomentum(**_check_cyclic(
      "cyclic_momentum", base_value, max_value, step_size_up, step_size_down, mode,
      gamma, high=1.0))


# --- one_cycle -----------------------------------------------------------------

_ONE_CYCLE_SHAPES = ("cosine", "linear")


def _one_cycle_curve(
    step: jax.Array, total_steps: Any, pct_start: Any, three_phase: bool, shape: str,
    v0: jax.Array, v1: jax.Array, v2: jax.Array,
) -> jax.Array:
  """PyTorch's one-cycle phases through `v0` -> `v1` -> `v2`.

  Two phases: `v0` to `v1` until ``pN - 1``, then to `v2` until ``N - 1``;
  three: `v0` to `v1`, back to `v0` until ``2pN - 2``, then to `v2`. Held
  from step ``N - 1`` on.
  """
  last = _base.like_step(step, total_steps) - 1
  t = _base.f32(jnp.minimum(step, last))  # held from the last step on
  n = _base.f32(total_steps)
  pct = _base.f32(pct_start)
  # PyTorch's phase table: (end_step, start value, end value); a phase
  # starts where the one before ends, the first at 0.
  if three_phase:
    phases = [(pct * n - 1.0, v0, v1), (2.0 * pct * n - 2.0, v1, v0), (n - 1.0, v0, v2)]
  else:
    phases = [(pct * n - 1.0, v0, v1), (n - 1.0, v1, v2)]
  starts = [_base.f32(0.0)] + [end for end, _, _ in phases[:-1]]
  values = []
  for start, (end, a, b) in zip(starts, phases):
    span = end - start
    span = jnp.where(span > 0, span, 1.0)
    wa, wb = _base.shape_weights(shape, t - start, end - t, span)
    values.append(a * wa + b * wb)  # no cancellation, rising or falling
  # The first phase whose end_step the step has not passed (PyTorch's rule).
  value = values[-1]
  for (end, _, _), v in reversed(list(zip(phases[:-1], values[:-1]))):
    value = jnp.where(t <= end, v, value)
  return value


@schedule_class("one_cycle")
class OneCycle(Schedule):
  peak_value: Any
  total_steps: Any
  pct_start: Any
  div_factor: Any
  final_div_factor: Any
  shape: str = static_field(default="cosine")
  three_phase: bool = static_field(default=False)

  def value_at(self, step: jax.Array) -> jax.Array:
    peak = _base.f32(self.peak_value)
    initial = peak / _base.f32(self.div_factor)
    low = initial / _base.f32(self.final_div_factor)
    return _one_cycle_curve(step, self.total_steps, self.pct_start, self.three_phase,
                            self.shape, initial, peak, low)


@schedule_class("one_cycle_momentum")
class OneCycleMomentum(Schedule):
  total_steps: Any
  base_value: Any
  max_value: Any
  pct_start: Any
  shape: str = static_field(default="cosine")
  three_phase: bool = static_field(default=False)

  def value_at(self, step: jax.Array) -> jax.Array:
    top = _base.f32(self.max_value)
    return _one_cycle_curve(step, self.total_steps, self.pct_start, self.three_phase,
                            self.shape, top, _base.f32(self.base_value), top)


def _check_one_cycle(
    fn: str, total_steps: Any, pct_start: Any, shape: Any, three_phase: Any
) -> tuple[Any, Any, str, bool]:
  """The phase checks `one_cycle` and `one_cycle_momentum` share."""
  total_steps = _checks.check_int(fn, "total_steps", total_steps, low=1)
  three_phase = _checks.check_bool(fn, "three_phase", three_phase)
  pct_start = _checks.check_float(
      fn, "pct_start", pct_start, low=0.0, low_open=True, high=1.0, high_open=True)
  kp, kn = _checks.concrete(pct_start), _checks.concrete(total_steps)
  if three_phase and kp is not None and (kp > 0.5).any():
    raise ValueError(
        f"{fn}: pct_start must be <= 0.5 with three_phase=True (the third "
        f"phase would be empty), got {pct_start!r}"
    )
  shape = _checks.check_choice(fn, "shape", shape, _ONE_CYCLE_SHAPES)
  if kp is not None and kn is not None and (kp * kn <= 1.0).any():
    raise ValueError(
        f"{fn}: pct_start * total_steps must be > 1 (the first phase ends at "
        f"step pct_start * total_steps - 1), got pct_start={pct_start!r}, "
        f"total_steps={total_steps!r}"
    )
  return total_steps, pct_start, shape, three_phase


@constructor
def one_cycle(
    *,
    peak_value: float,
    total_steps: int,
    pct_start: float = 0.3,
    shape: str = "cosine",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> OneCycle:
  r"""The one-cycle policy: up to `peak_value`, then far below the start.

  With :math:`N` = `total_steps`, :math:`p` = `pct_start`, :math:`v_p` =
  `peak_value`, :math:`v_0 = v_p / \text{div\_factor}` and
  :math:`v_{min} = v_0 / \text{final\_div\_factor}`, the phases are PyTorch's
  (each ends at a possibly fractional ``end_step``; a step belongs to the
  first phase whose ``end_step`` it has not passed):

  .. math::
    \begin{array}{lll}
      \text{two-phase:} & v_0 \to v_p \text{ until } pN - 1, &
        v_p \to v_{min} \text{ until } N - 1 \\
      \text{three\_phase:} & v_0 \to v_p \text{ until } pN - 1, &
        v_p \to v_0 \text{ until } 2pN - 2, \quad
        v_0 \to v_{min} \text{ until } N - 1
    \end{array}

  each going from value :math:`a` at its start step :math:`s` to value
  :math:`b` at its end step :math:`e` as
  :math:`b + (a - b)(1 + \cos \pi x)/2` (``"cosine"``) or
  :math:`b + (a - b)(1 - x)` (``"linear"``), with
  :math:`x = (t - s) / (e - s)`. The second phase thus starts at step
  ``floor(pct_start * total_steps)``, up to PyTorch's float64 rounding of
  ``pct_start * total_steps`` (the phases meet continuously there, so that
  rounding does not change the rate). Steps ``0 .. total_steps - 1`` equal
  PyTorch's ``OneCycleLR(max_lr=peak_value, total_steps, pct_start,
  anneal_strategy="cos" or "linear", div_factor, final_div_factor,
  three_phase)``; from ``total_steps - 1`` on the rate is held at
  :math:`v_{min}` (PyTorch extrapolates one step, then raises). The momentum
  PyTorch cycles against it (``cycle_momentum=True``) is
  :func:`one_cycle_momentum`. There is no separate warmup: the first phase is
  the warmup, and `total_steps` is the whole schedule. Phase ends and
  positions are float32 (`pct_start` rounded to float32), which moves them by
  about ``total_steps * 6e-8`` steps at most.

  Args:
    peak_value: the peak rate, >= 0.
    total_steps: the length of the cycle, an integer > 0.
    pct_start: the fraction of `total_steps` spent rising, in ``(0, 1)``
      (``(0, 0.5]`` with `three_phase`), with ``pct_start * total_steps > 1``.
    shape: ``"cosine"`` or ``"linear"`` (PyTorch's ``anneal_strategy``
      ``"cos"`` / ``"linear"``).
    div_factor: the start rate is ``peak_value / div_factor``; > 0.
    final_div_factor: the final rate is ``peak_value / div_factor /
      final_div_factor``; > 0.
    three_phase: go back down to the start rate first, then anneal to the
      final rate (the original paper), instead of two phases (fastai).

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `peak_value` is negative or not finite, `total_steps` is
      not an integer > 0, `pct_start` is outside ``(0, 1)`` (or above 0.5
      with `three_phase`, where the third phase would be empty), ``pct_start *
      total_steps <= 1`` (the first phase would be empty: PyTorch divides by
      zero or skips it), `shape` is unknown, a factor is not a finite number
      > 0, or `three_phase` is not a bool.

  Example:
    >>> import lrjax
    >>> s = lrjax.one_cycle(peak_value=0.1, total_steps=100, pct_start=0.25,
    ...                     shape="linear", div_factor=10.0)
    >>> print(f"{s(0):.4f} {s(12):.4f} {s(24):.4f} {s(60):.4f}")
    0.0100 0.0550 0.1000 0.0520
    >>> print(f"{s(99):.2e} {s(5000):.2e}")
    1.00e-06 1.00e-06

  References:
    Smith & Topin 2019, "Super-Convergence: Very Fast Training of Neural
    Networks Using Large Learning Rates"; ``torch.optim.lr_scheduler.OneCycleLR``.
  """
  fn = "one_cycle"
  peak_value = _checks.check_float(fn, "peak_value", peak_value, low=0.0)
  total_steps, pct_start, shape, three_phase = _check_one_cycle(
      fn, total_steps, pct_start, shape, three_phase)
  div_factor = _checks.check_float(fn, "div_factor", div_factor, low=0.0, low_open=True)
  final_div_factor = _checks.check_float(
      fn, "final_div_factor", final_div_factor, low=0.0, low_open=True)
  return OneCycle(
      peak_value=peak_value,
      total_steps=total_steps,
      pct_start=pct_start,
      div_factor=div_factor,
      final_div_factor=final_div_factor,
      shape=shape,
      three_phase=three_phase,
  )


@constructor
def one_cycle_momentum(
    *,
    total_steps: int,
    base_value: float = 0.85,
    max_value: float = 0.95,
    pct_start: float = 0.3,
    shape: str = "cosine",
    three_phase: bool = False,
) -> OneCycleMomentum:
  r"""The momentum PyTorch's ``OneCycleLR`` cycles against the rate.

  With :math:`v_b` = `base_value`, :math:`v_m` = `max_value` and the phases
  of :func:`one_cycle` (pass it the same `total_steps`, `pct_start`, `shape`
  and `three_phase`), each annealed the same way:

  .. math::
    \begin{array}{lll}
      \text{two-phase:} & v_m \to v_b \text{ until } pN - 1, &
        v_b \to v_m \text{ until } N - 1 \\
      \text{three\_phase:} & v_m \to v_b \text{ until } pN - 1, &
        v_b \to v_m \text{ until } 2pN - 2, \quad
        v_m \text{ until } N - 1
    \end{array}

  so the momentum is at its maximum while the rate is at its minimum, and at
  `base_value` while the rate peaks; from ``total_steps - 1`` on it is held
  at `max_value`. This is the ``momentum`` (or Adam's ``beta1``) that
  ``OneCycleLR(..., cycle_momentum=True, base_momentum=base_value,
  max_momentum=max_value)`` writes into the parameter group at every step.
  Use it as ``momentum=`` of ``optax.sgd`` or ``b1=`` of ``optax.adam``
  through :func:`lrjax.inject_hyperparams`.

  Args:
    total_steps: the length of the cycle, an integer > 0.
    base_value: the momentum at the rate's peak, in ``[0, 1]``.
    max_value: the momentum at the start and the end, in ``[0, 1]``, >=
      `base_value`.
    pct_start: the fraction of `total_steps` spent with the rate rising (the
      momentum falling), as in :func:`one_cycle`.
    shape: ``"cosine"`` or ``"linear"``.
    three_phase: PyTorch's three phases (see above) instead of two.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a momentum is outside ``[0, 1]`` or not finite,
      ``max_value < base_value``, or `total_steps`, `pct_start`, `shape` or
      `three_phase` is rejected as by :func:`one_cycle`.

  Example:
    >>> import lrjax
    >>> m = lrjax.one_cycle_momentum(total_steps=100, pct_start=0.25,
    ...                              shape="linear")
    >>> print(f"{m(0):.3f} {m(12):.3f} {m(24):.3f} {m(99):.3f}")
    0.950 0.900 0.850 0.950

  References:
    Smith 2018, "A disciplined approach to neural network hyper-parameters:
    Part 1" (arXiv:1803.09820); ``torch.optim.lr_scheduler.OneCycleLR``.
  """
  fn = "one_cycle_momentum"
  base_value, max_value = _check_band(fn, base_value, max_value, high=1.0)
  total_steps, pct_start, shape, three_phase = _check_one_cycle(
      fn, total_steps, pct_start, shape, three_phase)
  return OneCycleMomentum(
      total_steps=total_steps,
      base_value=base_value,
      max_value=max_value,
      pct_start=pct_start,
      shape=shape,
      three_phase=three_phase,
  )
