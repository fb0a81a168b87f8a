"""Combinators: warmup, sequence, switch, per-epoch indexing, products and
noise."""

from __future__ import annotations

import collections.abc
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _base, _checks
from lrjax._base import Schedule, schedule_class, static_field
from lrjax._registry import constructor
from lrjax._decay import constant


@schedule_class("product")
class Product(Schedule):
  schedules: tuple[Schedule, ...]

  def value_at(self, step: jax.Array) -> jax.Array:
    out = _base.f32(1.0)
    for s in self.schedules:
      out = out * s.value_at(step)
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
  shift: bool = static_field(default=True)

  def value_at(self, step: jax.Array) -> jax.Array:
    target = self.schedule.value_at(jnp.zeros((), step.dtype))
    ramp = _base.along(self.shape, self.init_value, target, step, 0, self.steps)
    inner = _base.since(step, self.steps) if self.shift else step
    after = self.schedule.value_at(inner)
    return jnp.where(_base.reached(step, self.steps), after, ramp)


@constructor
def warmup(
    schedule: Schedule,
    *,
    steps: int,
    init_value: float = 0.0,
    shape: str = "linear",
    shift: bool = True,
) -> Warmup:
  """Ramps from `init_value` to ``schedule(0)`` over `steps`, then runs `schedule`.

  .. math::
    \\eta(t) = \\begin{cases}
      v_0 + (s(0) - v_0)\\, r(t / \\text{steps}) & t < \\text{steps} \\\\
      s(t - \\text{steps}) & t \\ge \\text{steps},\\ \\text{shift} \\\\
      s(t) & t \\ge \\text{steps},\\ \\text{not shift}
    \\end{cases}

  with :math:`r(x) = x` for ``shape="linear"`` and
  :math:`r(x) = (1 - \\cos \\pi x) / 2` for ``shape="cosine"``. With
  ``shift=True`` the wrapped schedule's own step count starts after the
  warmup, so its ``decay_steps`` do not include the warmup (timm's
  ``warmup_prefix=True``). With ``shift=False`` it counts from step 0 and the
  warmup replaces its first `steps` steps (timm's ``warmup_prefix=False``,
  timm's default for its cosine, tanh and poly schedulers): the rate goes
  from the ramp to ``schedule(steps)``.

  Args:
    schedule: the schedule to warm up into.
    steps: warmup length, an integer >= 0 (0: `schedule` unchanged).
    init_value: the rate at step 0, >= 0.
    shape: ``"linear"`` or ``"cosine"``.
    shift: whether `schedule` counts from the end of the warmup (True) or
      from step 0 (False).

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `schedule` is not a schedule, `steps` is not an integer
      >= 0, `init_value` is negative, `shape` is unknown, or `shift` is not a
      bool.

  Example:
    >>> import lrjax
    >>> s = lrjax.warmup(lrjax.constant(0.4), steps=4)
    >>> print(f"{s(0):.4f} {s(1):.4f} {s(4):.4f}")
    0.0000 0.1000 0.4000
    >>> s = lrjax.warmup(lrjax.cosine_decay(0.1, decay_steps=100), steps=10,
    ...                  shift=False)
    >>> print(f"{s(9):.4f} {s(10):.5f} {s(100):.4f}")
    0.0900 0.09755 0.0000

  References:
    Goyal et al. 2017, "Accurate, Large Minibatch SGD" (gradual warmup);
    ``torch.optim.lr_scheduler.LinearLR`` chained with ``SequentialLR``;
    timm's ``warmup_t``, ``warmup_lr_init`` and ``warmup_prefix``.
  """
  fn = "warmup"
  return Warmup(
      schedule=_checks.check_schedule(fn, "schedule", schedule),
      steps=_checks.check_int(fn, "steps", steps, low=0),
      init_value=_checks.check_float(fn, "init_value", init_value, low=0.0),
      shape=_checks.check_choice(fn, "shape", shape, ("linear", "cosine")),
      shift=_checks.check_bool(fn, "shift", shift),
  )


@schedule_class("sequence")
class Sequence(Schedule):
  schedules: tuple[Schedule, ...]
  boundaries: tuple[Any, ...]

  def value_at(self, step: jax.Array) -> jax.Array:
    starts = (0,) + tuple(self.boundaries)
    values = jnp.stack([
        jnp.broadcast_to(s.value_at(_base.since(step, b)), step.shape)
        for s, b in zip(self.schedules, starts)
    ], axis=-1)
    index = _base.count_reached(step, self.boundaries)
    return jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]


@constructor
def sequence(
    schedules: collections.abc.Sequence[Schedule], *,
    boundaries: collections.abc.Sequence[int],
) -> Sequence:
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
  if isinstance(schedules, (str, bytes)) or not isinstance(
      schedules, collections.abc.Sequence):
    raise ValueError(f"{fn}: schedules must be a sequence of schedules, got {schedules!r}")
  scheds = tuple(
      _checks.check_schedule(fn, f"schedules[{i}]", s) for i, s in enumerate(schedules)
  )
  bounds = _checks.check_int_sequence(fn, "boundaries", boundaries, low=1, allow_empty=True)
  if len(scheds) != len(bounds) + 1:
    raise ValueError(
        f"{fn}: needs len(schedules) == len(boundaries) + 1, got "
        f"{len(scheds)} schedules and {len(bounds)} boundaries"
    )
  return Sequence(schedules=scheds, boundaries=bounds)


@schedule_class("switch")
class Switch(Schedule):
  schedules: tuple[Schedule, ...]
  index: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    values = jnp.stack([jnp.broadcast_to(s.value_at(step), step.shape) for s in self.schedules],
                       axis=-1)
    index = jnp.clip(jnp.asarray(self.index, jnp.int32), 0, len(self.schedules) - 1)
    return jnp.take(values, index, axis=-1)


@constructor
def switch(schedules: collections.abc.Sequence[Schedule], *, index: int) -> Switch:
  """Schedule ``schedules[index]``, the index a leaf of the schedule.

  .. math::
    \\eta(t) = s_{\\text{index}}(t)

  Schedules of different kinds are different pytree structures, so they
  cannot be stacked or swapped into one compiled program; switch schedules
  over the same `schedules` with different indices are one structure: stack them
  (`lrjax.stack`) to sweep schedules of several kinds under `jax.vmap`, or
  swap one for another into an optimizer state (`lrjax.set_hyperparams`)
  without a new trace. All the schedules are evaluated at every step and the
  index picks one (under `jax.vmap`, a select among K scalars).

  Args:
    schedules: one or more schedules.
    index: which one applies, an integer in ``[0, len(schedules))``; a leaf
      (so it may be an array, stacked or traced; a traced index is not
      checked, and is clipped into that range).

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `schedules` is empty or an element is not a schedule, or
      if `index` is not an integer in ``[0, len(schedules))``.

  Example:
    >>> import jax, lrjax
    >>> kinds = [lrjax.constant(0.1), lrjax.cosine_decay(0.3, decay_steps=10)]
    >>> sweep = lrjax.stack([lrjax.switch(kinds, index=i) for i in range(2)])
    >>> print(" ".join(f"{v:.4f}" for v in jax.vmap(lambda s: s(5))(sweep)))
    0.1000 0.1500

  References:
    ``jax.lax.switch``, whose branches are functions where these are values.
  """
  fn = "switch"
  if (isinstance(schedules, (str, bytes))
      or not isinstance(schedules, collections.abc.Sequence) or not schedules):
    raise ValueError(f"{fn}: schedules must be a non-empty sequence of schedules, got {schedules!r}")
  scheds = tuple(
      _checks.check_schedule(fn, f"schedules[{i}]", s) for i, s in enumerate(schedules)
  )
  index = _checks.check_int(fn, "index", index, low=0)
  known = _checks.concrete(index)
  if known is not None and np.any(known >= len(scheds)):
    raise _checks.fail(fn, "index", f"< len(schedules) = {len(scheds)}", index)
  return Switch(schedules=scheds, index=index)


@schedule_class("per_epoch")
class PerEpoch(Schedule):
  schedule: Schedule
  steps_per_epoch: Any

  def value_at(self, step: jax.Array) -> jax.Array:
    epoch = _base.floor_div(step, self.steps_per_epoch)
    return self.schedule.value_at(epoch.astype(step.dtype))


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
      schedule=_checks.check_schedule(fn, "schedule", schedule),
      steps_per_epoch=_checks.check_int(fn, "steps_per_epoch", steps_per_epoch, low=1),
  )


# --- with_noise ------------------------------------------------------------------

NOISE_KINDS = ("normal", "uniform")


def _step_words(step: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The step's integer value as two uint32 words (low, high), any dtype.

  A float step counts as its floor; a 32-bit integer has high word 0, so the
  same step gives the same words whatever its dtype.
  """
  if not jnp.issubdtype(step.dtype, jnp.integer):
    step = jnp.floor(step).astype(jnp.int32)
  if step.dtype.itemsize > 4:
    low = (step & 0xFFFFFFFF).astype(jnp.uint32)
    high = (step >> 32).astype(jnp.uint32)
    return low, high
  return step.astype(jnp.uint32), jnp.zeros(step.shape, jnp.uint32)


@schedule_class("with_noise")
class WithNoise(Schedule):
  schedule: Schedule
  seed: Any
  pct: Any
  std: Any
  kind: str = static_field(default="normal")
  begin_step: Any = 0
  end_step: Any = None

  def noise(self, step: jax.Array) -> jax.Array:
    """The draw ``n`` at each step (`step` already cast), float32."""
    low, high = _step_words(step)
    pct, std = _base.f32(self.pct), _base.f32(self.std)
    bound = jnp.nextafter(pct, jnp.zeros_like(pct))  # |n| < pct strictly
    base = jax.random.key(jnp.asarray(self.seed).astype(jnp.uint32))

    def draw(lo, hi):
      key = jax.random.fold_in(jax.random.fold_in(base, lo), hi)
      if self.kind == "normal":
        z = jax.random.truncated_normal(key, -pct / std, pct / std, (), jnp.float32)
        return z * std
      return pct * jax.random.uniform(key, (), jnp.float32, -1.0, 1.0)

    n = jax.vmap(draw)(low.reshape(-1), high.reshape(-1)).reshape(step.shape)
    return jnp.clip(n, -bound, bound)

  def value_at(self, step: jax.Array) -> jax.Array:
    on = _base.reached(step, self.begin_step)
    if self.end_step is not None:
      on = on & ~_base.reached(step, self.end_step)
    factor = jnp.where(on, 1.0 + self.noise(step), 1.0)
    return self.schedule.value_at(step) * factor


@constructor
def with_noise(
    schedule: Schedule,
    *,
    seed: int,
    pct: float = 0.67,
    std: float = 1.0,
    kind: str = "normal",
    begin_step: int = 0,
    end_step: int | None = None,
) -> WithNoise:
  """`schedule` times ``1 + n``, ``n`` a random draw per step (timm's LR noise).

  .. math::
    \\eta(t) = s(t)\\, (1 + n_t) \\quad \\text{for } b \\le t < e,
    \\qquad \\eta(t) = s(t) \\text{ elsewhere}

  with :math:`b` = `begin_step`, :math:`e` = `end_step` (:math:`\\infty` for
  None) and :math:`n_t` drawn with `jax.random` from the key
  ``fold_in(fold_in(key(seed), lo), hi)``, ``lo`` and ``hi`` the low and high
  32 bits of the step: a pure function of ``(seed, step)``, so the same on
  every device, under `jax.jit` or not, and after a resume. For
  ``kind="normal"``, :math:`n_t \\sim \\mathcal N(0, \\text{std}^2)`
  truncated to :math:`|n_t| < \\text{pct}` (timm resamples until
  ``abs(noise) < noise_pct``); for ``kind="uniform"``, :math:`n_t` is uniform
  on :math:`(-\\text{pct}, \\text{pct})` (`std` unused).

  This is timm's ``noise_range_t=(begin_step, end_step)`` (or
  ``noise_range_t=begin_step`` with ``end_step=None``), ``noise_type=kind``,
  ``noise_pct=pct``, ``noise_seed=seed``, in law, not draw for draw: timm
  seeds a ``torch.Generator`` with ``noise_seed + t``. timm's normal draw is
  ``torch.randn`` (unit variance, whatever its ``noise_std``): ``std=1.0``.

  Args:
    schedule: the schedule to perturb.
    seed: the noise's seed, an integer >= 0.
    pct: the bound on ``|n|``, a number in (0, 1).
    std: the standard deviation of the normal before truncation, > 0.
    kind: ``"normal"`` or ``"uniform"``.
    begin_step: the first noisy step, an integer >= 0.
    end_step: None (noise forever) or the first step without noise again, an
      integer > `begin_step`.

  Returns:
    A `Schedule`.

  Raises:
    ValueError: if `schedule` is not a schedule, `seed` is not an integer
      >= 0, `pct` is not in (0, 1), `std` is not a finite number > 0, `kind`
      is unknown, `begin_step` is not an integer >= 0, or `end_step` is not
      None or an integer > `begin_step`.

  Example:
    >>> import lrjax
    >>> s = lrjax.with_noise(lrjax.constant(0.1), seed=0, begin_step=10)
    >>> print(f"{s(9):.4f}", bool(abs(s(10) - 0.1) < 0.067), bool(s(10) == s(10)))
    0.1000 True True

  References:
    timm ``Scheduler`` (``noise_range_t``, ``noise_type``, ``noise_pct``,
    ``noise_seed``).
  """
  fn = "with_noise"
  schedule = _checks.check_schedule(fn, "schedule", schedule)
  seed = _checks.check_int(fn, "seed", seed, low=0)
  pct = _checks.check_float(fn, "pct", pct, low=0.0, high=1.0, low_open=True,
                            high_open=True)
  std = _checks.check_float(fn, "std", std, low=0.0, low_open=True)
  kind = _checks.check_choice(fn, "kind", kind, NOISE_KINDS)
  begin_step = _checks.check_int(fn, "begin_step", begin_step, low=0)
  if end_step is not None:
    end_step = _checks.check_int(fn, "end_step", end_step, low=1)
    _checks.check_order(fn, "end_step", end_step, ">", "begin_step", begin_step)
  return WithNoise(schedule=schedule, seed=seed, pct=pct, std=std, kind=kind,
                   begin_step=begin_step, end_step=end_step)
