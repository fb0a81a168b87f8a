"""Cosine schedules: cosine decay with warmup, cosine restarts (SGDR),
warmup-stable-decay and REX."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base, _checks
from lrjax._base import Schedule, schedule_class, static_field
from lrjax._registry import constructor


def _check_warmup_decay(
    fn: str, peak_value: Any, warmup_steps: Any, decay_steps: Any,
    init_value: Any, end_value: Any, *, stable_steps: Any = None,
) -> tuple[Any, Any, Any, Any, Any, Any]:
  """The checks of a warmup to `peak_value`, a flat part (unless None), a decay."""
  peak_value = _checks.check_float(fn, "peak_value", peak_value, low=0.0)
  warmup_steps = _checks.check_int(fn, "warmup_steps", warmup_steps, low=0)
  if stable_steps is not None:
    stable_steps = _checks.check_int(fn, "stable_steps", stable_steps, low=0)
  decay_steps = _checks.check_int(fn, "decay_steps", decay_steps, low=1)
  init_value = _checks.check_float(fn, "init_value", init_value, low=0.0)
  end_value = _checks.check_float(fn, "end_value", end_value, low=0.0)
  lengths = {"warmup_steps": warmup_steps, "stable_steps": stable_steps,
             "decay_steps": decay_steps}
  if stable_steps is None:  # the constructors without a flat part
    del lengths["stable_steps"]
  _checks.check_sum(fn, list(lengths), list(lengths.values()))
  _checks.warn_rising(fn, "peak_value", peak_value, "end_value", end_value)
  return peak_value, warmup_steps, stable_steps, decay_steps, init_value, end_value


# --- cosine_decay --------------------------------------------------------------


@schedule_class("cosine_decay")
class CosineDecay(Schedule):
  peak_value: Any
  decay_steps: Any
  end_value: Any
  warmup_steps: Any
  init_value: Any
  exponent: Any = 1.0
  cycles: Any = 0.5
  k_decay: Any = 1.0

  def value_at(self, step: jax.Array) -> jax.Array:
    w = self.warmup_steps
    ramp = _base.along("linear", self.init_value, self.peak_value, step, 0, w)
    up, down = _base.cosine_weights(*_base.progress(step, w, self.decay_steps),
                                    cycles=self.cycles, k=self.k_decay)
    # optax's exponent: the cosine's weight w becomes w**exponent.
    up_e, down_e = _base.power_weights(up, down, self.exponent)
    decay = _base.f32(self.peak_value) * up_e + _base.f32(self.end_value) * down_e
    return jnp.where(_base.reached(step, w), decay, ramp)


@constructor
def cosine_decay(
    peak_value: float,
    *,
    decay_steps: int,
    end_value: float = 0.0,
    warmup_steps: int = 0,
    init_value: float = 0.0,
    exponent: float = 1.0,
    cycles: float = 0.5,
    k_decay: float = 1.0,
) -> CosineDecay:
  r"""Half a cosine from `peak_value` to `end_value`, after an optional warmup.

  .. math::
    \eta(t) = \begin{cases}
      v_i + (v_p - v_i)\, t / W & t < W \\
      v_e + (v_p - v_e) \left(\tfrac12 \left(1 + \cos\left(2 \pi c\,
        z^\kappa \right)\right)\right)^k, \quad z = \frac{t - W}{D}
        & W \le t < W + D \\
      \eta(W + D) & t \ge W + D
    \end{cases}

  with :math:`v_p` = `peak_value`, :math:`v_e` = `end_value`, :math:`v_i` =
  `init_value`, :math:`W` = `warmup_steps`, :math:`D` = `decay_steps`,
  :math:`k` = `exponent` (1: the plain cosine; optax's ``exponent``),
  :math:`c` = `cycles` (0.5: half a wave, down to `end_value`; Hugging Face's
  ``num_cycles``) and :math:`\kappa` = `k_decay` (1: the plain position;
  timm's ``k_decay``, arXiv 2004.05909). After the decay the rate holds the
  value it reached at its end, which is `end_value` for ``cycles=0.5`` (for
  other `cycles` Hugging Face's formula goes on along the cosine). Each
  length counts its own phase: a linear warmup of `warmup_steps` from
  `init_value` to `peak_value`, then the cosine over the `decay_steps` after
  it; the rate is `end_value` from ``step == warmup_steps + decay_steps`` on.
  Without warmup the rate at step 0 is `peak_value` (`init_value` is unused).

  Without warmup this is PyTorch's ``CosineAnnealingLR(T_max=decay_steps,
  eta_min=end_value)`` for steps up to ``T_max`` (PyTorch updates
  recursively, equal to its closed form up to float64 rounding), after which
  PyTorch climbs back up and this schedule holds `end_value`. With warmup it is
  ``CosineScheduler(max_update=warmup_steps + decay_steps, base_lr=peak_value,
  final_lr=end_value, warmup_steps=warmup_steps, warmup_begin_lr=init_value)``
  of "Dive into Deep Learning", and Keras' ``CosineDecay(
  initial_learning_rate=init_value, decay_steps, alpha, warmup_target=peak_value,
  warmup_steps)`` with ``end_value = alpha * peak_value``. optax's
  ``warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps,
  decay_steps, end_value, exponent)`` counts the warmup in its
  ``decay_steps``: it is ``cosine_decay(peak_value,
  decay_steps=decay_steps - warmup_steps, ...)``; optax's
  ``cosine_decay_schedule(init_value, decay_steps, alpha, exponent)`` is
  ``cosine_decay(init_value, decay_steps=decay_steps,
  end_value=alpha * init_value, exponent=exponent)``.

  Args:
    peak_value: the rate the warmup reaches at ``step == warmup_steps`` (the
      rate at step 0 without warmup); >= 0.
    decay_steps: the length of the cosine after the warmup, an integer > 0.
    end_value: the rate from ``step == warmup_steps + decay_steps`` on; >= 0.
    warmup_steps: the length of the linear warmup, an integer >= 0.
    init_value: the rate at step 0 when ``warmup_steps > 0``; >= 0.
    exponent: the power of the cosine's weight, a finite number > 0.
    cycles: the number of cosine waves over the decay, a finite number > 0
      (0.5: half a wave).
    k_decay: the power of the position in the decay, a finite number > 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `decay_steps` is not an
      integer > 0, `warmup_steps` is not an integer >= 0,
      ``warmup_steps + decay_steps`` is past 2**31 - 1, or `exponent`,
      `cycles` or `k_decay` is not a finite number > 0.

  Warns:
    UserWarning: if ``end_value > peak_value`` (the "decay" rises).

  Example:
    >>> import lrjax
    >>> s = lrjax.cosine_decay(0.1, decay_steps=100)
    >>> print(f"{s(0):.4f} {s(50):.4f} {s(100):.4f} {s(500):.4f}")
    0.1000 0.0500 0.0000 0.0000
    >>> s = lrjax.cosine_decay(0.1, warmup_steps=10, decay_steps=100,
    ...                        end_value=0.01)
    >>> print(f"{s(5):.4f} {s(10):.4f} {s(60):.4f} {s(110):.4f}")
    0.0500 0.1000 0.0550 0.0100
    >>> s = lrjax.cosine_decay(0.1, decay_steps=100, exponent=2.0)
    >>> print(f"{s(50):.4f}")
    0.0250
    >>> s = lrjax.cosine_decay(0.1, decay_steps=100, cycles=1.0)
    >>> print(f"{s(25):.4f} {s(50):.4f} {s(100):.4f}")
    0.0500 0.0000 0.1000
    >>> s = lrjax.cosine_decay(0.1, decay_steps=100, k_decay=2.0)
    >>> print(f"{s(50):.4f}")
    0.0854

  References:
    Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm
    Restarts" (the cosine, without restarts);
    ``torch.optim.lr_scheduler.CosineAnnealingLR``; Zhang et al., "Dive into
    Deep Learning", section 12.11 (``CosineScheduler``);
    ``keras.optimizers.schedules.CosineDecay``;
    ``optax.warmup_cosine_decay_schedule``; Hugging Face
    ``get_cosine_schedule_with_warmup`` (``num_cycles``); timm
    ``CosineLRScheduler`` (``k_decay``); Zhang et al. 2020, "k-decay: A New
    Method For Learning Rate Schedule" (arXiv 2004.05909).
  """
  peak_value, warmup_steps, _, decay_steps, init_value, end_value = (
      _check_warmup_decay("cosine_decay", peak_value, warmup_steps, decay_steps,
                          init_value, end_value))
  exponent = _checks.check_float("cosine_decay", "exponent", exponent, low=0.0,
                                 low_open=True)
  cycles = _checks.check_float("cosine_decay", "cycles", cycles, low=0.0,
                               low_open=True)
  k_decay = _checks.check_float("cosine_decay", "k_decay", k_decay, low=0.0,
                                low_open=True)
  return CosineDecay(
      peak_value=peak_value,
      decay_steps=decay_steps,
      end_value=end_value,
      warmup_steps=warmup_steps,
      init_value=init_value,
      exponent=exponent,
      cycles=cycles,
      k_decay=k_decay,
  )


# --- cosine_restarts -----------------------------------------------------------


@schedule_class("cosine_restarts")
class CosineRestarts(Schedule):
  init_value: Any
  cycle_steps: Any
  t_mul: Any
  m_mul: Any
  end_value: Any
  cycle_limit: Any = None
  k_decay: Any = 1.0
  scale_peak: bool = static_field(default=False)

  def _cycles_uniform(self, step: jax.Array):
    """Cycle index and position for ``t_mul == 1``, exact in the step's dtype."""
    c = _base.like_step(step, self.cycle_steps)
    i = _base.floor_div(step, c)
    pos = step - i * c
    return _base.f32(i), _base.f32(pos), _base.f32(c - pos), _base.f32(c)

  def _cycles_geometric(self, step: jax.Array):
    """Cycle index and position for ``t_mul != 1``, in float32.

    Cycle i starts at ``S_i = C (m^i - 1) / (m - 1)``. The index comes from the
    logarithm, then is corrected against ``S_i`` and ``S_{i+1}``, so it is
    exact wherever those are (for an integer `t_mul`: below 2**24).
    """
    m = _base.f32(self.t_mul)
    m = jnp.where(m == 1.0, 2.0, m)  # this branch is unused at 1; keep it finite
    c = _base.f32(self.cycle_steps)
    t = _base.f32(step)
    integral = m == jnp.round(m)
    m_int = jnp.round(jnp.clip(m, 2.0, 2.0**30)).astype(jnp.int32)

    def start(i):
      p = m**i
      g = (p - 1.0) / (m - 1.0)  # cycles 0 .. i-1 in units of C
      # For an integer t_mul the sum is an integer: take it in int32 while
      # t_mul**i fits (float32 rounds t_mul**i - 1 past 2**24).
      p_int = jnp.power(m_int, jnp.clip(i, 0.0, 62.0).astype(jnp.int32))
      g_int = _base.f32((p_int - 1) // (m_int - 1))
      g = jnp.where(integral, jnp.where(p < 2.0**30, g_int, jnp.round(g)), g)
      return c * g

    x = jnp.maximum(t * (m - 1.0) / c, 0.0)
    i = jnp.maximum(jnp.floor(jnp.log1p(x) / jnp.log(m)), 0.0)
    i = jnp.where(start(i) > t, jnp.maximum(i - 1.0, 0.0), i)
    i = jnp.where(start(i + 1.0) <= t, i + 1.0, i)
    s0, s1 = start(i), start(i + 1.0)
    return i, t - s0, s1 - t, s1 - s0

  def value_at(self, step: jax.Array) -> jax.Array:
    init, end = _base.f32(self.init_value), _base.f32(self.end_value)
    uniform = _base.f32(self.t_mul) == 1.0
    parts = [
        jnp.where(uniform, a, b)
        for a, b in zip(self._cycles_uniform(step), self._cycles_geometric(step))
    ]
    i, done, left, span = parts
    factor = _base.f32(self.m_mul) ** i
    peak = init * factor if self.scale_peak else end + (init - end) * factor
    up, down = _base.cosine_weights(done, left, span, k=self.k_decay)
    value = peak * up + end * down
    if self.cycle_limit is None:
      return value
    return jnp.where(i < _base.f32(self.cycle_limit), value, end)


@constructor
def cosine_restarts(
    init_value: float,
    *,
    cycle_steps: int,
    t_mul: float = 1.0,
    m_mul: float = 1.0,
    end_value: float = 0.0,
    cycle_limit: int | None = None,
    k_decay: float = 1.0,
    scale_peak: bool = False,
) -> CosineRestarts:
  r"""Cosine annealing with warm restarts (SGDR).

  .. math::
    \eta(t) = \begin{cases}
      v_e + (P_i - v_e)\, \tfrac12\left(1 + \cos\left(\pi
        \left(\frac{t - S_i}{T_i}\right)^\kappa\right)\right) & i < L \\
      v_e & i \ge L
    \end{cases}, \quad
    T_i = C\, \tau^i, \quad S_i = \sum_{j < i} T_j \le t < S_{i+1}

  with :math:`v_0` = `init_value`, :math:`v_e` = `end_value`, :math:`C` =
  `cycle_steps`, :math:`\tau` = `t_mul`, :math:`m` = `m_mul`, :math:`\kappa`
  = `k_decay` (timm's, arXiv 2004.05909), :math:`L` = `cycle_limit`
  (:math:`\infty` for None), and the peak of cycle ``i``
  :math:`P_i = v_e + (v_0 - v_e) m^i` (`m_mul` scales the amplitude above
  `end_value`, as Keras does) or, with ``scale_peak=True``,
  :math:`P_i = v_0 m^i` (timm's ``cycle_decay``; the two agree when
  ``end_value == 0``). Cycle ``i`` starts at step :math:`S_i` (the first
  integer step at or after it, when `t_mul` is not an integer) and lasts
  :math:`C \tau^i` steps. There is no warmup; without `cycle_limit` the
  cycles go on, with it the rate is `end_value` from the start of cycle
  `cycle_limit` on (timm's ``cycle_limit``).

  With an integer `t_mul` and ``m_mul=1`` this is PyTorch's
  ``CosineAnnealingWarmRestarts(T_0=cycle_steps, T_mult=t_mul,
  eta_min=end_value)``. It is Keras' ``CosineDecayRestarts(
  initial_learning_rate=init_value, first_decay_steps=cycle_steps, t_mul,
  m_mul, alpha)`` with ``end_value = alpha * init_value`` (Keras' `alpha` is
  relative to the initial rate; Keras, too, scales the amplitude above the
  floor by ``m_mul**i``). Note that Keras' default ``t_mul`` is 2.0; here it
  is 1.0, as in PyTorch. timm's ``CosineLRScheduler(t_initial, lr_min,
  cycle_mul, cycle_decay, cycle_limit, k_decay)`` (without warmup) is
  ``cosine_restarts(lr, cycle_steps=t_initial, t_mul=cycle_mul,
  m_mul=cycle_decay, end_value=lr_min, cycle_limit=cycle_limit,
  k_decay=k_decay, scale_peak=True)``.

  Precision: with ``t_mul == 1`` the cycle and the position in it are
  computed in the step's integer dtype, exact at any step. Otherwise they are
  float32. For an integer `t_mul` the restarts are integers, found exactly
  below 2**24 steps. For a non-integer `t_mul` they are real numbers held in
  float32, so a step within about ``S_i * 6e-8`` of one (0.04 steps near
  step 600,000) may be counted in the neighbouring cycle: a jump between the
  floor and the peak. Past 2**24 steps the position within a cycle is off by
  about ``2**-23 * t_mul / (t_mul - 1)`` of the cycle's length (``2.4e-7``
  for ``t_mul=2``), so a `t_mul` close to 1 loses precision far out.
  ``m_mul**i`` uses `m_mul` rounded to float32.

  Args:
    init_value: the rate at step 0, >= 0.
    cycle_steps: the first cycle's length, an integer > 0.
    t_mul: each cycle is `t_mul` times longer than the one before; >= 1.
    m_mul: each cycle's amplitude above `end_value` is `m_mul` times the one
      before; > 0.
    end_value: the floor each cycle decays towards, >= 0.
    cycle_limit: None (no limit) or the number of cycles, an integer >= 1,
      after which the rate holds at `end_value`.
    k_decay: the power of the position in each cycle, a finite number > 0.
    scale_peak: `m_mul` scales each cycle's peak (timm) instead of its
      amplitude above `end_value` (Keras).

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `cycle_steps` is not an
      integer > 0, ``t_mul < 1`` (shrinking cycles would end the schedule at
      a finite step), ``m_mul <= 0``, `cycle_limit` is not None or an
      integer >= 1, `k_decay` is not a finite number > 0, or `scale_peak` is
      not a bool.

  Warns:
    UserWarning: if ``m_mul > 1`` (the peaks grow without bound, to ``inf``)
      or ``end_value > init_value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.cosine_restarts(0.1, cycle_steps=10, t_mul=2.0, m_mul=0.5)
    >>> print(f"{s(0):.4f} {s(5):.4f} {s(10):.4f} {s(20):.4f} {s(30):.4f}")
    0.1000 0.0500 0.0500 0.0250 0.0250
    >>> s = lrjax.cosine_restarts(0.1, cycle_steps=10, m_mul=0.5,
    ...                           end_value=0.02, scale_peak=True, cycle_limit=2)
    >>> print(f"{s(10):.4f} {s(15):.4f} {s(20):.4f} {s(99):.4f}")
    0.0500 0.0350 0.0200 0.0200

  References:
    Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm
    Restarts"; ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``;
    ``keras.optimizers.schedules.CosineDecayRestarts``;
    ``optax.sgdr_schedule``; timm ``CosineLRScheduler``.
  """
  fn = "cosine_restarts"
  init_value = _checks.check_float(fn, "init_value", init_value, low=0.0)
  cycle_steps = _checks.check_int(fn, "cycle_steps", cycle_steps, low=1)
  t_mul = _checks.check_float(fn, "t_mul", t_mul, low=1.0)
  m_mul = _checks.check_float(fn, "m_mul", m_mul, low=0.0, low_open=True)
  end_value = _checks.check_float(fn, "end_value", end_value, low=0.0)
  if cycle_limit is not None:
    cycle_limit = _checks.check_int(fn, "cycle_limit", cycle_limit, low=1)
  k_decay = _checks.check_float(fn, "k_decay", k_decay, low=0.0, low_open=True)
  scale_peak = _checks.check_bool(fn, "scale_peak", scale_peak)
  _checks.warn_growth(fn, "m_mul", m_mul, what="the peaks")
  _checks.warn_rising(fn, "init_value", init_value, "end_value", end_value)
  return CosineRestarts(
      init_value=init_value,
      cycle_steps=cycle_steps,
      t_mul=t_mul,
      m_mul=m_mul,
      end_value=end_value,
      cycle_limit=cycle_limit,
      k_decay=k_decay,
      scale_peak=scale_peak,
  )


# --- warmup_stable_decay -------------------------------------------------------


@schedule_class("warmup_stable_decay")
class WarmupStableDecay(Schedule):
  peak_value: Any
  warmup_steps: Any
  stable_steps: Any
  decay_steps: Any
  init_value: Any
  end_value: Any
  decay_shape: str = static_field(default="linear")
  warmup_shape: str = static_field(default="linear")

  def value_at(self, step: jax.Array) -> jax.Array:
    w = _base.like_step(step, self.warmup_steps)
    start = w + _base.like_step(step, self.stable_steps)
    # The warmup's weight on the peak is f(1 - p) for the decay shape f (p,
    # (1 - cos pi p) / 2, 1 - sqrt(1 - p)): the shape's weights with the
    # counts done and left swapped.
    done, left, span = _base.progress(step, 0, w)
    to_peak, to_init = _base.shape_weights(self.warmup_shape, left, done, span)
    ramp = _base.f32(self.peak_value) * to_peak + _base.f32(self.init_value) * to_init
    decay = _base.along(self.decay_shape, self.peak_value, self.end_value, step,
                        start, self.decay_steps)
    return jnp.where(_base.reached(step, w), decay, ramp)


@constructor
def warmup_stable_decay(
    peak_value: float,
    *,
    warmup_steps: int,
    stable_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
    decay_shape: str = "linear",
    warmup_shape: str = "linear",
) -> WarmupStableDecay:
  r"""Warmup, a flat stretch at the peak, then a short decay ("WSD").

  .. math::
    \eta(t) = \begin{cases}
      v_i + (v_p - v_i)\, g(t / W) & t < W \\
      v_p & W \le t < W + S \\
      v_e + (v_p - v_e)\, f(p), \quad p = \frac{t - W - S}{D}
        & W + S \le t < W + S + D \\
      v_e & t \ge W + S + D
    \end{cases}

  with :math:`v_i` = `init_value`, :math:`v_p` = `peak_value`, :math:`v_e` =
  `end_value`, :math:`W, S, D` = `warmup_steps`, `stable_steps`,
  `decay_steps`, and the decay shape :math:`f(p) = 1 - p` (``"linear"``),
  :math:`(1 + \cos \pi p) / 2` (``"cosine"``) or :math:`1 - \sqrt{p}`
  (``"1-sqrt"``, the cooldown Hägele et al. found best), and the warmup shape
  :math:`g(p) = p` (``"linear"``), :math:`(1 - \cos \pi p) / 2`
  (``"cosine"``) or :math:`1 - \sqrt{1 - p}` (``"1-sqrt"``), Hugging Face's
  warmup formulas. Each length counts
  its own phase, one after the other: the schedule ends at step
  ``warmup_steps + stable_steps + decay_steps`` and holds `end_value` after.

  Hugging Face's ``get_wsd_schedule(num_warmup_steps, num_decay_steps,
  num_stable_steps=S, warmup_type, decay_type, min_lr_ratio=r)`` is
  ``warmup_stable_decay(lr, warmup_steps=num_warmup_steps, stable_steps=S,
  decay_steps=num_decay_steps, init_value=r * lr, end_value=r * lr,
  warmup_shape=warmup_type, decay_shape=decay_type)`` (its ``num_cycles``
  other than 0.5 has no counterpart here).

  Args:
    peak_value: the rate the warmup reaches and the stable phase holds, >= 0.
    warmup_steps: linear warmup length, an integer >= 0.
    stable_steps: length of the flat phase, an integer >= 0.
    decay_steps: length of the decay phase, an integer > 0.
    init_value: the rate at step 0 when ``warmup_steps > 0``; >= 0.
    end_value: the rate at the end of the decay and after; >= 0.
    decay_shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.
    warmup_shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, a length is not an
      integer (``decay_steps`` > 0, the others >= 0), the three lengths add up
      past 2**31 - 1, or `decay_shape` or `warmup_shape` is unknown.

  Warns:
    UserWarning: if ``end_value > peak_value`` (the "decay" rises).

  Example:
    >>> import lrjax
    >>> s = lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=80,
    ...                               decay_steps=10, decay_shape="1-sqrt")
    >>> print(f"{s(5):.4f} {s(50):.4f} {s(95):.4f} {s(100):.4f}")
    0.0500 0.1000 0.0293 0.0000
    >>> s = lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=80,
    ...                               decay_steps=10, warmup_shape="1-sqrt")
    >>> print(f"{s(5):.4f} {s(10):.4f}")
    0.0293 0.1000

  References:
    Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond
    Fixed Training Durations" (section 3, "1-sqrt" cooldown); Hu et al. 2024,
    "MiniCPM" (the WSD schedule); Hugging Face ``get_wsd_schedule``.
  """
  fn = "warmup_stable_decay"
  peak_value, warmup_steps, stable_steps, decay_steps, init_value, end_value = (
      _check_warmup_decay(fn, peak_value, warmup_steps, decay_steps, init_value,
                          end_value, stable_steps=stable_steps))
  decay_shape = _checks.check_choice(fn, "decay_shape", decay_shape, _checks.SHAPES)
  warmup_shape = _checks.check_choice(fn, "warmup_shape", warmup_shape, _checks.SHAPES)
  return WarmupStableDecay(
      peak_value=peak_value,
      warmup_steps=warmup_steps,
      stable_steps=stable_steps,
      decay_steps=decay_steps,
      init_value=init_value,
      end_value=end_value,
      decay_shape=decay_shape,
      warmup_shape=warmup_shape,
  )


# --- rex -----------------------------------------------------------------------


@schedule_class("rex")
class Rex(Schedule):
  peak_value: Any
  decay_steps: Any
  end_value: Any
  warmup_steps: Any
  init_value: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    peak, end = _base.f32(self.peak_value), _base.f32(self.end_value)
    w = self.warmup_steps
    done, left, span = _base.progress(step, w, self.decay_steps)
    r, z = left / span, done / span  # each exact from its integer count
    # factor (1 - z) / (1/2 + (1 - z)/2) = 2r / (1 + r); 1 - factor = z / (1 + r)
    decay = (peak * 2.0 * r + end * z) / (1.0 + r)
    ramp = _base.along("linear", self.init_value, peak, step, 0, w)
    return jnp.where(_base.reached(step, w), decay, ramp)


@constructor
def rex(
    peak_value: float,
    *,
    decay_steps: int,
    end_value: float = 0.0,
    warmup_steps: int = 0,
    init_value: float = 0.0,
) -> Rex:
  r"""The REX schedule: a decay that stays high longer than linear, then drops.

  .. math::
    \eta(t) = \begin{cases}
      v_i + (v_p - v_i)\, t / W & t < W \\
      v_e + (v_p - v_e) \dfrac{1 - z}{\tfrac12 + \tfrac12 (1 - z)},
        \quad z = \frac{t - W}{D} & W \le t < W + D \\
      v_e & t \ge W + D
    \end{cases}

  with :math:`v_p` = `peak_value`, :math:`v_e` = `end_value`, :math:`v_i` =
  `init_value`, :math:`W` = `warmup_steps`, :math:`D` = `decay_steps`. As in
  :func:`cosine_decay`, each length counts its own phase: a linear warmup of
  `warmup_steps`, then the decay over the `decay_steps` after it.

  Args:
    peak_value: the rate the warmup reaches at ``step == warmup_steps`` (the
      rate at step 0 without warmup); >= 0.
    decay_steps: the length of the decay after the warmup, an integer > 0.
    end_value: the rate from ``step == warmup_steps + decay_steps`` on; >= 0.
    warmup_steps: the length of the linear warmup, an integer >= 0.
    init_value: the rate at step 0 when ``warmup_steps > 0``; >= 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `decay_steps` is not an
      integer > 0, `warmup_steps` is not an integer >= 0, or
      ``warmup_steps + decay_steps`` is past 2**31 - 1.

  Warns:
    UserWarning: if ``end_value > peak_value`` (the "decay" rises).

  Example:
    >>> import lrjax
    >>> s = lrjax.rex(0.1, decay_steps=100)
    >>> print(f"{s(0):.4f} {s(50):.4f} {s(90):.4f} {s(100):.4f}")
    0.1000 0.0667 0.0182 0.0000

  References:
    Chen, Wolfe & Kyrillidis 2022, "REX: Revisiting Budgeted Training with an
    Improved Schedule" (MLSys 2022).
  """
  peak_value, warmup_steps, _, decay_steps, init_value, end_value = (
      _check_warmup_decay("rex", peak_value, warmup_steps, decay_steps,
                          init_value, end_value))
  return Rex(
      peak_value=peak_value,
      decay_steps=decay_steps,
      end_value=end_value,
      warmup_steps=warmup_steps,
      init_value=init_value,
  )
