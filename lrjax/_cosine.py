"""Cosine schedules: cosine decay with warmup, cosine restarts (SGDR),
warmup-stable-decay and REX."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base
from lrjax._base import Schedule, constructor, schedule_class, static_field

_I32_MAX = int(np.iinfo(np.int32).max)


# --- helpers -------------------------------------------------------------------


def _progress(step: jax.Array, start: jax.Array, span: jax.Array):
  """Float32 ``(done, left, span)`` of a phase of `span` steps from `start`.

  `start` and `span` are in the step's dtype; the counts are taken there
  (exact for integer steps) and clipped to ``[0, span]``, then cast. The span
  is at least 1 so that an empty phase does not divide by zero.
  """
  k = jnp.minimum(_base.since(step, start), span)
  done = _base.f32(k)
  left = _base.f32(span - k)
  return done, left, jnp.maximum(_base.f32(span), 1.0)


def _linear_ramp(step: jax.Array, steps: Any, start: jax.Array, target: jax.Array):
  """``start + (target - start) * step / steps`` (used for ``step < steps``)."""
  frac = _base.f32(step) / jnp.maximum(_base.f32(steps), 1.0)
  return start + (target - start) * frac


def _check_order(fn: str, small: str, a: Any, big: str, b: Any) -> None:
  ka, kb = _base.known(a), _base.known(b)
  if ka is not None and kb is not None and np.any(ka > kb):
    raise ValueError(f"{fn}: {small} must be <= {big}, got {small}={a!r}, {big}={b!r}")


def _warn_rising(fn: str, start: str, a: Any, end: str, b: Any) -> None:
  ka, kb = _base.known(a), _base.known(b)
  if ka is not None and kb is not None and np.any(kb > ka):
    warnings.warn(
        f"{fn}: {end}={b!r} > {start}={a!r}: the rate rises instead of decaying",
        stacklevel=3,
    )


def _check_warmup_then_decay(
    fn: str, init_value: Any, decay_steps: Any, end_value: Any, warmup_steps: Any, what: str
) -> tuple[Any, Any, Any, Any]:
  """The checks shared by decays whose `decay_steps` include a warmup."""
  init_value = _base.check_float(fn, "init_value", init_value, low=0.0)
  decay_steps = _base.check_int(fn, "decay_steps", decay_steps, low=1)
  end_value = _base.check_float(fn, "end_value", end_value, low=0.0)
  warmup_steps = _base.check_int(fn, "warmup_steps", warmup_steps, low=0)
  _check_order(fn, "warmup_steps", warmup_steps, "decay_steps", decay_steps)
  w, d = _base.known(warmup_steps), _base.known(decay_steps)
  if w is not None and d is not None and np.any(w == d):
    warnings.warn(
        f"{fn}: warmup_steps == decay_steps == {decay_steps!r} leaves no "
        f"{what} at decay_steps (decay_steps includes the warmup)",
        stacklevel=3,
    )
  _warn_rising(fn, "init_value", init_value, "end_value", end_value)
  return init_value, decay_steps, end_value, warmup_steps


# --- cosine_decay --------------------------------------------------------------


@schedule_class("cosine_decay")
class CosineDecay(Schedule):
  init_value: Any
  decay_steps: Any
  end_value: Any
  warmup_steps: Any
  warmup_init: Any

  def _value(self, step: jax.Array) -> jax.Array:
    init, end = _base.f32(self.init_value), _base.f32(self.end_value)
    w = _base.like_step(step, self.warmup_steps)
    span = _base.like_step(step, self.decay_steps) - w
    up, down = _base.cosine_weights(*_progress(step, w, span))
    decay = init * up + end * down
    ramp = _linear_ramp(step, self.warmup_steps, _base.f32(self.warmup_init), init)
    value = jnp.where(_base.reached(step, self.warmup_steps), decay, ramp)
    return jnp.where(_base.reached(step, self.decay_steps), end, value)


@constructor
def cosine_decay(
    init_value: float,
    *,
    decay_steps: int,
    end_value: float = 0.0,
    warmup_steps: int = 0,
    warmup_init: float = 0.0,
) -> CosineDecay:
  r"""Half a cosine from `init_value` to `end_value`, after an optional warmup.

  .. math::
    \eta(t) = \begin{cases}
      v_w + (v_0 - v_w)\, t / W & t < W \\
      v_e + \tfrac12 (v_0 - v_e)\left(1 + \cos\left(\pi \frac{t - W}{D - W}
        \right)\right) & W \le t < D \\
      v_e & t \ge D
    \end{cases}

  with :math:`v_0` = `init_value`, :math:`v_e` = `end_value`, :math:`v_w` =
  `warmup_init`, :math:`W` = `warmup_steps`, :math:`D` = `decay_steps`.
  `decay_steps` is the total length and **includes the warmup**: the cosine
  runs over the ``decay_steps - warmup_steps`` steps after it and the rate is
  `end_value` from ``step == decay_steps`` on.

  Without warmup this is PyTorch's ``CosineAnnealingLR(T_max=decay_steps,
  eta_min=end_value)`` for steps up to ``T_max`` (PyTorch updates
  recursively, equal to its closed form up to float64 rounding), after which
  PyTorch climbs back up and this schedule holds `end_value`. With warmup it is
  ``CosineScheduler(max_update=decay_steps, base_lr=init_value,
  final_lr=end_value, warmup_steps=warmup_steps,
  warmup_begin_lr=warmup_init)`` of "Dive into Deep Learning". Keras'
  ``CosineDecay(initial_learning_rate, decay_steps, alpha, warmup_target,
  warmup_steps)`` is ``cosine_decay(warmup_target,
  decay_steps=decay_steps + warmup_steps, end_value=alpha * warmup_target,
  warmup_steps=warmup_steps, warmup_init=initial_learning_rate)`` (Keras does
  not count the warmup in its ``decay_steps``, and its ``alpha`` is relative).

  Args:
    init_value: the peak rate, reached at ``step == warmup_steps``; >= 0.
    decay_steps: the total length, warmup included; an integer > 0.
    end_value: the rate from ``step == decay_steps`` on; >= 0.
    warmup_steps: linear warmup length, an integer in ``[0, decay_steps]``.
    warmup_init: the rate at step 0 when ``warmup_steps > 0``; >= 0.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `decay_steps` is not an
      integer > 0, `warmup_steps` is not an integer >= 0, or
      ``warmup_steps > decay_steps``.

  Warns:
    UserWarning: if ``warmup_steps == decay_steps`` (no cosine at all: the
      rate drops from `init_value` to `end_value` at ``step == decay_steps``)
      or ``end_value > init_value`` (the "decay" rises).

  Example:
    >>> import lrjax
    >>> s = lrjax.cosine_decay(0.1, decay_steps=100)
    >>> print(f"{s(0):.4f} {s(50):.4f} {s(100):.4f} {s(500):.4f}")
    0.1000 0.0500 0.0000 0.0000
    >>> s = lrjax.cosine_decay(0.1, decay_steps=110, warmup_steps=10,
    ...                        end_value=0.01)
    >>> print(f"{s(5):.4f} {s(10):.4f} {s(60):.4f} {s(110):.4f}")
    0.0500 0.1000 0.0550 0.0100

  References:
    Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm
    Restarts" (the cosine, without restarts);
    ``torch.optim.lr_scheduler.CosineAnnealingLR``; Zhang et al., "Dive into
    Deep Learning", section 12.11 (``CosineScheduler``);
    ``keras.optimizers.schedules.CosineDecay``;
    ``optax.warmup_cosine_decay_schedule``.
  """
  fn = "cosine_decay"
  init_value, decay_steps, end_value, warmup_steps = _check_warmup_then_decay(
      fn, init_value, decay_steps, end_value, warmup_steps,
      "cosine: the rate drops from init_value to end_value")
  warmup_init = _base.check_float(fn, "warmup_init", warmup_init, low=0.0)
  return CosineDecay(
      init_value=init_value,
      decay_steps=decay_steps,
      end_value=end_value,
      warmup_steps=warmup_steps,
      warmup_init=warmup_init,
  )


# --- cosine_restarts -----------------------------------------------------------


@schedule_class("cosine_restarts")
class CosineRestarts(Schedule):
  init_value: Any
  cycle_steps: Any
  t_mul: Any
  m_mul: Any
  end_value: Any

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

  def _value(self, step: jax.Array) -> jax.Array:
    init, end = _base.f32(self.init_value), _base.f32(self.end_value)
    uniform = _base.f32(self.t_mul) == 1.0
    parts = [
        jnp.where(uniform, a, b)
        for a, b in zip(self._cycles_uniform(step), self._cycles_geometric(step))
    ]
    i, done, left, span = parts
    peak = end + (init - end) * _base.f32(self.m_mul) ** i
    up, down = _base.cosine_weights(done, left, span)
    return peak * up + end * down


@constructor
def cosine_restarts(
    init_value: float,
    *,
    cycle_steps: int,
    t_mul: float = 1.0,
    m_mul: float = 1.0,
    end_value: float = 0.0,
) -> CosineRestarts:
  r"""Cosine annealing with warm restarts (SGDR).

  .. math::
    \eta(t) = v_e + (v_0 - v_e)\, m^{i}\, \tfrac12\left(1 + \cos\left(\pi
      \frac{t - S_i}{T_i}\right)\right), \quad
    T_i = C\, \tau^i, \quad S_i = \sum_{k < i} T_k \le t < S_{i+1}

  with :math:`v_0` = `init_value`, :math:`v_e` = `end_value`, :math:`C` =
  `cycle_steps`, :math:`\tau` = `t_mul`, :math:`m` = `m_mul`. Cycle ``i``
  starts at step :math:`S_i` (the first integer step at or after it, when
  `t_mul` is not an integer), lasts :math:`C \tau^i` steps and starts at
  :math:`v_e + (v_0 - v_e) m^i`, which is ``init_value * m_mul**i`` when
  ``end_value == 0``. There is no warmup and no end: the cycles go on.

  With an integer `t_mul` and ``m_mul=1`` this is PyTorch's
  ``CosineAnnealingWarmRestarts(T_0=cycle_steps, T_mult=t_mul,
  eta_min=end_value)``. It is Keras' ``CosineDecayRestarts(
  initial_learning_rate=init_value, first_decay_steps=cycle_steps, t_mul,
  m_mul, alpha)`` with ``end_value = alpha * init_value`` (Keras' `alpha` is
  relative to the initial rate; Keras, too, scales the amplitude above the
  floor by ``m_mul**i``). Note that Keras' default ``t_mul`` is 2.0; here it
  is 1.0, as in PyTorch.

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

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `cycle_steps` is not an
      integer > 0, ``t_mul < 1`` (shrinking cycles would end the schedule at
      a finite step) or ``m_mul <= 0``.

  Warns:
    UserWarning: if ``m_mul > 1`` (the peaks grow without bound, to ``inf``)
      or ``end_value > init_value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.cosine_restarts(0.1, cycle_steps=10, t_mul=2.0, m_mul=0.5)
    >>> print(f"{s(0):.4f} {s(5):.4f} {s(10):.4f} {s(20):.4f} {s(30):.4f}")
    0.1000 0.0500 0.0500 0.0250 0.0250

  References:
    Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm
    Restarts"; ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``;
    ``keras.optimizers.schedules.CosineDecayRestarts``;
    ``optax.sgdr_schedule``.
  """
  fn = "cosine_restarts"
  init_value = _base.check_float(fn, "init_value", init_value, low=0.0)
  cycle_steps = _base.check_int(fn, "cycle_steps", cycle_steps, low=1)
  t_mul = _base.check_float(fn, "t_mul", t_mul, low=1.0)
  m_mul = _base.check_float(fn, "m_mul", m_mul, low=0.0, low_open=True)
  end_value = _base.check_float(fn, "end_value", end_value, low=0.0)
  km = _base.known(m_mul)
  if km is not None and np.any(km > 1):
    warnings.warn(
        f"{fn}: m_mul={m_mul!r} > 1 grows the peaks without bound (to inf)",
        stacklevel=2,
    )
  _warn_rising(fn, "init_value", init_value, "end_value", end_value)
  return CosineRestarts(
      init_value=init_value,
      cycle_steps=cycle_steps,
      t_mul=t_mul,
      m_mul=m_mul,
      end_value=end_value,
  )


# --- warmup_stable_decay -------------------------------------------------------

_WSD_SHAPES = ("linear", "cosine", "1-sqrt")


@schedule_class("warmup_stable_decay")
class WarmupStableDecay(Schedule):
  peak_value: Any
  warmup_steps: Any
  stable_steps: Any
  decay_steps: Any
  init_value: Any
  end_value: Any
  decay_shape: str = static_field(default="linear")

  def _value(self, step: jax.Array) -> jax.Array:
    peak, end = _base.f32(self.peak_value), _base.f32(self.end_value)
    w = _base.like_step(step, self.warmup_steps)
    start = w + _base.like_step(step, self.stable_steps)
    done, left, span = _progress(step, start, _base.like_step(step, self.decay_steps))
    if self.decay_shape == "linear":
      up, down = left / span, done / span
    elif self.decay_shape == "cosine":
      up, down = _base.cosine_weights(done, left, span)
    else:  # "1-sqrt": 1 - sqrt(p) = (1 - p) / (1 + sqrt(p)), exact near p = 1
      down = jnp.sqrt(done / span)
      up = (left / span) / (1.0 + down)
    decay = peak * up + end * down
    ramp = _linear_ramp(step, self.warmup_steps, _base.f32(self.init_value), peak)
    return jnp.where(_base.reached(step, w), decay, ramp)


@constructor
def warmup_stable_decay(
    *,
    peak_value: float,
    warmup_steps: int,
    stable_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
    decay_shape: str = "linear",
) -> WarmupStableDecay:
  r"""Warmup, a flat stretch at the peak, then a short decay ("WSD").

  .. math::
    \eta(t) = \begin{cases}
      v_i + (v_p - v_i)\, t / W & t < W \\
      v_p & W \le t < W + S \\
      v_e + (v_p - v_e)\, f(p), \quad p = \frac{t - W - S}{D}
        & W + S \le t < W + S + D \\
      v_e & t \ge W + S + D
    \end{cases}

  with :math:`v_i` = `init_value`, :math:`v_p` = `peak_value`, :math:`v_e` =
  `end_value`, :math:`W, S, D` = `warmup_steps`, `stable_steps`,
  `decay_steps`, and the decay shape :math:`f(p) = 1 - p` (``"linear"``),
  :math:`(1 + \cos \pi p) / 2` (``"cosine"``) or :math:`1 - \sqrt{p}`
  (``"1-sqrt"``, the cooldown Hägele et al. found best). The three lengths
  follow each other: `decay_steps` counts the decay phase only and **does not
  include the warmup** (nor the stable phase); the schedule ends at step
  ``warmup_steps + stable_steps + decay_steps`` and holds `end_value` after.

  Args:
    peak_value: the rate of the stable phase, >= 0.
    warmup_steps: linear warmup length, an integer >= 0.
    stable_steps: length of the flat phase, an integer >= 0.
    decay_steps: length of the decay phase, an integer > 0.
    init_value: the rate at step 0 when ``warmup_steps > 0``; >= 0.
    end_value: the rate at the end of the decay and after; >= 0.
    decay_shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, a length is not an
      integer (``decay_steps`` > 0, the others >= 0), the three lengths add up
      past 2**31 - 1, or `decay_shape` is unknown.

  Warns:
    UserWarning: if ``end_value > peak_value`` (the "decay" rises).

  Example:
    >>> import lrjax
    >>> s = lrjax.warmup_stable_decay(peak_value=0.1, warmup_steps=10,
    ...                               stable_steps=80, decay_steps=10,
    ...                               decay_shape="1-sqrt")
    >>> print(f"{s(5):.4f} {s(50):.4f} {s(95):.4f} {s(100):.4f}")
    0.0500 0.1000 0.0293 0.0000

  References:
    Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond
    Fixed Training Durations" (section 3, "1-sqrt" cooldown); Hu et al. 2024,
    "MiniCPM" (the WSD schedule).
  """
  fn = "warmup_stable_decay"
  peak_value = _base.check_float(fn, "peak_value", peak_value, low=0.0)
  warmup_steps = _base.check_int(fn, "warmup_steps", warmup_steps, low=0)
  stable_steps = _base.check_int(fn, "stable_steps", stable_steps, low=0)
  decay_steps = _base.check_int(fn, "decay_steps", decay_steps, low=1)
  init_value = _base.check_float(fn, "init_value", init_value, low=0.0)
  end_value = _base.check_float(fn, "end_value", end_value, low=0.0)
  decay_shape = _base.check_choice(fn, "decay_shape", decay_shape, _WSD_SHAPES)
  lengths = [_base.known(x) for x in (warmup_steps, stable_steps, decay_steps)]
  if all(x is not None for x in lengths) and np.any(sum(lengths) > _I32_MAX):
    raise ValueError(
        f"{fn}: warmup_steps + stable_steps + decay_steps must be <= {_I32_MAX} "
        f"(int32), got {warmup_steps!r} + {stable_steps!r} + {decay_steps!r}"
    )
  _warn_rising(fn, "peak_value", peak_value, "end_value", end_value)
  return WarmupStableDecay(
      peak_value=peak_value,
      warmup_steps=warmup_steps,
      stable_steps=stable_steps,
      decay_steps=decay_steps,
      init_value=init_value,
      end_value=end_value,
      decay_shape=decay_shape,
  )


# --- rex -----------------------------------------------------------------------


@schedule_class("rex")
class Rex(Schedule):
  init_value: Any
  decay_steps: Any
  end_value: Any
  warmup_steps: Any

  def _value(self, step: jax.Array) -> jax.Array:
    init, end = _base.f32(self.init_value), _base.f32(self.end_value)
    w = _base.like_step(step, self.warmup_steps)
    span = _base.like_step(step, self.decay_steps) - w
    done, left, span_f = _progress(step, w, span)
    r, z = left / span_f, done / span_f  # each exact from its integer count
    # factor (1 - z) / (1/2 + (1 - z)/2) = 2r / (1 + r); 1 - factor = z / (1 + r)
    decay = (init * 2.0 * r + end * z) / (1.0 + r)
    ramp = _linear_ramp(step, self.warmup_steps, _base.f32(0.0), init)
    value = jnp.where(_base.reached(step, w), decay, ramp)
    return jnp.where(_base.reached(step, self.decay_steps), end, value)


@constructor
def rex(
    init_value: float,
    *,
    decay_steps: int,
    end_value: float = 0.0,
    warmup_steps: int = 0,
) -> Rex:
  r"""The REX schedule: a decay that stays high longer than linear, then drops.

  .. math::
    \eta(t) = \begin{cases}
      v_0\, t / W & t < W \\
      v_e + (v_0 - v_e) \dfrac{1 - z}{\tfrac12 + \tfrac12 (1 - z)},
        \quad z = \frac{t - W}{D - W} & W \le t < D \\
      v_e & t \ge D
    \end{cases}

  with :math:`v_0` = `init_value`, :math:`v_e` = `end_value`, :math:`W` =
  `warmup_steps`, :math:`D` = `decay_steps`. As in :func:`cosine_decay`,
  `decay_steps` is the total length and **includes the warmup** (a linear
  ramp from 0); the decay runs over the ``decay_steps - warmup_steps`` steps
  after it.

  Args:
    init_value: the peak rate, reached at ``step == warmup_steps``; >= 0.
    decay_steps: the total length, warmup included; an integer > 0.
    end_value: the rate from ``step == decay_steps`` on; >= 0.
    warmup_steps: linear warmup length (from 0), an integer in
      ``[0, decay_steps]``.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if a rate is negative or not finite, `decay_steps` is not an
      integer > 0, `warmup_steps` is not an integer >= 0, or
      ``warmup_steps > decay_steps``.

  Warns:
    UserWarning: if ``warmup_steps == decay_steps`` (no decay phase) or
      ``end_value > init_value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.rex(0.1, decay_steps=100)
    >>> print(f"{s(0):.4f} {s(50):.4f} {s(90):.4f} {s(100):.4f}")
    0.1000 0.0667 0.0182 0.0000

  References:
    Chen, Wolfe & Kyrillidis 2022, "REX: Revisiting Budgeted Training with an
    Improved Schedule" (MLSys 2022).
  """
  init_value, decay_steps, end_value, warmup_steps = _check_warmup_then_decay(
      "rex", init_value, decay_steps, end_value, warmup_steps,
      "decay: the rate drops to end_value")
  return Rex(
      init_value=init_value,
      decay_steps=decay_steps,
      end_value=end_value,
      warmup_steps=warmup_steps,
  )
