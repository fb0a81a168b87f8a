"""A plan changed mid-run: `cooldown`, a decay from the rate in effect at any step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _base, _checks
from lrjax._base import Schedule, schedule_class, static_field
from lrjax._registry import constructor


@schedule_class("cooldown")
class Cooldown(Schedule):
  schedule: Schedule
  start: Any
  decay_steps: Any
  end_value: Any
  shape: str = static_field(default="1-sqrt")

  def value_at(self, step: jax.Array) -> jax.Array:
    start = _base.like_step(step, self.start)
    # The rate in effect at `start`, from the wrapped schedule's leaves. The
    # decay weighs the two ends, v0 * f + end * (1 - f): at `start` f is 1 and
    # 1 - f is 0 exactly, so the rate there is v0 whatever end_value is.
    rate_at_start = self.schedule.value_at(start)
    decay = _base.along(self.shape, rate_at_start, self.end_value, step, start,
                        self.decay_steps)
    return jnp.where(_base.reached(step, start), decay, self.schedule.value_at(step))


@constructor
def cooldown(
    schedule: Schedule,
    *,
    start: int,
    decay_steps: int,
    end_value: float = 0.0,
    shape: str = "1-sqrt",
) -> Cooldown:
  r"""`schedule` until `start`, then a decay from the rate in effect there.

  .. math::
    \eta(t) = \begin{cases}
      s(t) & t < S \\
      s(S)\, f(p) + v_e\, (1 - f(p)), \quad p = \frac{t - S}{D}
        & S \le t < S + D \\
      v_e & t \ge S + D
    \end{cases}

  with :math:`s` = `schedule`, :math:`S` = `start`, :math:`D` =
  `decay_steps`, :math:`v_e` = `end_value` and the shape :math:`f(p) = 1 - p`
  (``"linear"``), :math:`(1 + \cos \pi p) / 2` (``"cosine"``) or
  :math:`1 - \sqrt{p}` (``"1-sqrt"``), the decay shapes of Hugging Face's
  ``get_wsd_schedule`` (``decay_type``). This is the cooldown of a
  warmup-stable-decay run decided during the run: train on any schedule and,
  from any step, cool down over a short phase. The decay starts from
  :math:`s(S)`, computed from `schedule`'s leaves in the same call, so the
  rate is continuous at `start`: ``cooldown(s, start=S, ...)(S)`` equals
  ``s(S)`` to float32 rounding whatever `end_value` is (the two ends are
  weighed, never subtracted). `start`, `decay_steps` and `end_value` are
  leaves: cooldowns at K starts stack (:func:`lrjax.stack`) and sweep under
  ``jax.vmap``, and one swaps into an optimizer state
  (:func:`lrjax.set_hyperparams`) without a new trace.

  An `end_value` above ``s(start)`` is legal: the rate rises to it. (Like the
  other combinators, `cooldown` does not evaluate `schedule` when it is built,
  so it does not warn.) This is not `reduce_on_plateau`'s ``cooldown``, the
  number of evaluations it waits after a cut.

  Args:
    schedule: the schedule to follow before `start`, an lrjax schedule.
    start: the first step of the decay, an integer >= 0.
    decay_steps: the length of the decay, an integer >= 1.
    end_value: the rate from ``step == start + decay_steps`` on, >= 0.
    shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `schedule` is not an lrjax schedule (a plain function
      included), `start` is not an integer >= 0, `decay_steps` is not an
      integer >= 1, ``start + decay_steps`` is past 2**31 - 1, `end_value` is
      negative or not finite, or `shape` is unknown.

  Example:
    >>> import lrjax
    >>> run = lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=990,
    ...                                 decay_steps=100)
    >>> s = lrjax.cooldown(run, start=400, decay_steps=100)
    >>> print(f"{s(399):.4f} {s(400):.4f} {s(425):.4f} {s(500):.4f}")
    0.1000 0.1000 0.0500 0.0000
    >>> s = lrjax.cooldown(lrjax.cosine_decay(0.1, decay_steps=100), start=50,
    ...                    decay_steps=10, shape="linear", end_value=0.01)
    >>> print(f"{s(50):.4f} {s(55):.4f} {s(60):.4f}")
    0.0500 0.0300 0.0100

  References:
    Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond
    Fixed Training Durations" (arXiv:2405.18392; the "1-sqrt" cooldown); Hu
    et al. 2024, "MiniCPM" (arXiv:2404.06395; the WSD schedule and its
    decay from a saved checkpoint); Hugging Face ``get_wsd_schedule``.
  """
  fn = "cooldown"
  schedule = _checks.check_schedule(fn, "schedule", schedule)
  start = _checks.check_int(fn, "start", start, low=0)
  decay_steps = _checks.check_int(fn, "decay_steps", decay_steps, low=1)
  _checks.check_sum(fn, ["start", "decay_steps"], [start, decay_steps])
  return Cooldown(
      schedule=schedule,
      start=start,
      decay_steps=decay_steps,
      end_value=_checks.check_float(fn, "end_value", end_value, low=0.0),
      shape=_checks.check_choice(fn, "shape", shape, _checks.SHAPES),
  )
