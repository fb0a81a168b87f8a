"""The `Schedule` base: a frozen dataclass registered as a JAX pytree.

Every schedule in lrjax is a value. Its numeric hyperparameters are pytree
leaves (so `jax.jit` does not recompile when they change, `jax.vmap` can sweep
them and a checkpoint can hold them); strings and flags that fix the shape of
the computation are static. This module holds the base class, `stack`, the
step cast and the exact integer arithmetic on steps that every schedule uses,
and the curve shapes (linear, cosine, 1-sqrt) between two rates.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import jax
import jax.numpy as jnp

from lrjax import _checks, _registry

__all__ = ["Schedule", "stack"]

_T = TypeVar("_T")


def static_field(**kwargs: Any) -> Any:
  """A dataclass field that is pytree metadata (static), not a leaf."""
  return dataclasses.field(metadata={"static": True}, **kwargs)


def schedule_class(name: str) -> Callable[[type[_T]], type[_T]]:
  """Makes `cls` a frozen dataclass pytree whose public constructor is `name`."""

  def wrap(cls: type[_T]) -> type[_T]:
    cls = dataclasses.dataclass(frozen=True, repr=False)(cls)
    cls.name = name  # type: ignore[attr-defined]
    _registry.register_class(name, cls)
    return jax.tree_util.register_dataclass(cls)

  return wrap


class Schedule:
  """A learning-rate schedule: a pure function of the step, and a value.

  Subclasses are frozen dataclasses registered as pytrees (numbers are leaves),
  built by a public constructor such as :func:`lrjax.cosine_decay` that checks
  its arguments. Calling a schedule returns a float32 `jax.Array` of the step's
  shape, eager or under `jax.jit`, for any integer or float step dtype.

  Schedules multiply: ``sched * 0.5``, ``0.5 * sched`` and ``a * b`` are
  schedules (:func:`lrjax.product`, the pointwise product, like PyTorch's
  ``ChainedScheduler``). ``repr`` is the call that builds the schedule.
  """

  name: ClassVar[str]

  def value_at(self, step: jax.Array) -> jax.Array:
    """The rate at a step already cast by `as_step`, not broadcast or cast.

    What each subclass implements, and what a schedule that wraps others
    (`warmup`, `sequence`, `product`) evaluates them with.
    """
    raise NotImplementedError

  def __call__(self, step: Any) -> jax.Array:
    return _evaluate(self, step)

  def __mul__(self, other: Any) -> Schedule:
    return _registry.build("product", self, other)

  def __rmul__(self, other: Any) -> Schedule:
    return _registry.build("product", other, self)

  def to_dict(self) -> dict[str, Any]:
    """A JSON-serialisable dict; `lrjax.from_dict` rebuilds an equal schedule."""
    return _registry.to_dict(self)

  def __repr__(self) -> str:
    return _registry.call_text(self)


@functools.partial(jax.jit, inline=True)
def _evaluate(schedule: Schedule, step: Any) -> jax.Array:
  step = as_step(step)
  value = schedule.value_at(step)
  return jnp.broadcast_to(value, step.shape).astype(jnp.float32)


def stack(schedules: Sequence[Schedule]) -> Schedule:
  """Stacks schedules of one structure into one with a leading batch axis.

  The result's leaves have shape ``(K, ...)``: evaluate all K at once with
  ``jax.vmap(lambda s: s(step))(stacked)``, or vmap a whole train step over it.

  Args:
    schedules: a non-empty sequence of schedules with the same constructor and
      the same static settings (only numbers may differ).

  Returns:
    One schedule whose leaves are stacked arrays.

  Raises:
    ValueError: if `schedules` is empty, holds a non-schedule, or mixes
      structures.

  Example:
    >>> import jax, lrjax
    >>> s = lrjax.stack([lrjax.constant(0.1), lrjax.constant(0.3)])
    >>> print(jax.vmap(lambda s: s(0))(s))
    [0.1 0.3]
  """
  schedules = list(schedules)
  if not schedules:
    raise ValueError("stack: schedules must be non-empty")
  for i, s in enumerate(schedules):
    _checks.check_schedule("stack", f"schedules[{i}]", s)
  tree0 = jax.tree_util.tree_structure(schedules[0])
  for i, s in enumerate(schedules[1:], 1):
    if jax.tree_util.tree_structure(s) != tree0:
      raise ValueError(
          f"stack: schedules[{i}] = {s!r} differs in structure from "
          f"schedules[0] = {schedules[0]!r}; only numbers may differ"
      )
  return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *schedules)


# --- steps -----------------------------------------------------------------


def as_step(step: Any) -> jax.Array:
  """Casts a step once: integers stay integers (exact), floats become float32.

  Small integer types widen to int32; int32, uint32 and (under x64) 64-bit
  integers keep their dtype, so boundary tests are exact over their range.
  """
  step = jnp.asarray(step)
  dtype = step.dtype
  if jnp.issubdtype(dtype, jnp.integer):
    if dtype.itemsize < 4:
      return step.astype(jnp.int32)
    return step
  if jnp.issubdtype(dtype, jnp.bool_):
    return step.astype(jnp.int32)
  return step.astype(jnp.float32)


def like_step(step: jax.Array, x: Any) -> jax.Array:
  """A count or boundary in the step's dtype (counts are checked >= 0)."""
  return jnp.asarray(x).astype(step.dtype)


def f32(x: Any) -> jax.Array:
  """A leaf (or step) as float32."""
  return jnp.asarray(x).astype(jnp.float32)


def reached(step: jax.Array, boundary: Any) -> jax.Array:
  """``step >= boundary``, exact for integer steps."""
  return step >= like_step(step, boundary)


def count_reached(step: jax.Array, boundaries: Sequence[Any]) -> jax.Array:
  """How many of `boundaries` the step has reached (exact for integers)."""
  if not boundaries:
    return jnp.zeros(step.shape, jnp.int32)
  b = jnp.stack([like_step(step, x) for x in boundaries])
  return jnp.sum(step[..., None] >= b, axis=-1, dtype=jnp.int32)


def floor_div(step: jax.Array, n: Any) -> jax.Array:
  """``step // n``: integer division for integer steps, floor for floats."""
  if jnp.issubdtype(step.dtype, jnp.integer):
    return step // like_step(step, n)
  return jnp.floor(step / f32(n))


def since(step: jax.Array, start: Any) -> jax.Array:
  """``max(step - start, 0)`` in the step's dtype (no unsigned underflow)."""
  s = like_step(step, start)
  return jnp.where(step >= s, step - s, jnp.zeros_like(step))


def power_weights(x: jax.Array, rest: jax.Array, k: Any):
  """``(x**k, 1 - x**k)`` given ``x`` and ``rest = 1 - x``, each computed on its own.

  At ``k == 1`` they are `x` and `rest` themselves; otherwise ``1 - x**k`` is
  ``-expm1(k log x)``, which keeps its precision near ``x = 1`` where
  ``1 - x**k`` would cancel. `k` is a leaf (any float, traced or not).
  """
  k = f32(k)
  one = k == 1.0
  return (jnp.where(one, x, x**k),
          jnp.where(one, rest, -jnp.expm1(k * log_from(x, rest))))


def cosine_weights(done: jax.Array, left: jax.Array, span: jax.Array, *,
                   cycles: Any = 0.5, k: Any = 1.0):
  """``(w, 1 - w)``, ``w = (1 + cos(2 pi c z**k)) / 2``, ``z = done / span``.

  `c` = `cycles` (0.5: half a wave, from 1 down to 0) and `k` the power of
  the position (timm's k-decay), both leaves. With ``1 - z = left / span``
  taken from its own count, for ``c == 0.5`` each weight is a squared sine of
  its own position, ``w = sin(pi (1 - z**k) / 2) ** 2`` and ``1 - w = sin(pi
  z**k / 2) ** 2``, so both keep float32 relative precision at both ends
  (``1 + cos`` cancels near ``z = 1``) and ``a * w + b * (1 - w)`` goes from
  `a` to `b` without cancelling whichever is larger; for other `c`, ``cos(pi
  c z**k) ** 2`` and ``sin(pi c z**k) ** 2``.
  """
  zk, rk = power_weights(done / span, left / span, k)
  c = f32(cycles)
  half = c == 0.5
  w = jnp.where(half, jnp.sin((0.5 * math.pi) * rk), jnp.cos(math.pi * c * zk))
  v = jnp.where(half, jnp.sin((0.5 * math.pi) * zk), jnp.sin(math.pi * c * zk))
  return w * w, v * v


def progress(step: jax.Array, start: Any, span: Any):
  """Float32 ``(done, left, span)`` of a phase of `span` steps from `start`.

  The counts are taken in the step's dtype (exact for integer steps) and
  clipped to ``[0, span]``, then cast; the returned span is at least 1, so an
  empty phase does not divide by zero.
  """
  span = like_step(step, span)
  k = jnp.minimum(since(step, start), span)
  return f32(k), f32(span - k), jnp.maximum(f32(span), 1.0)


def shape_weights(shape: str, done: jax.Array, left: jax.Array, span: jax.Array):
  """``(f(p), 1 - f(p))`` at ``p = done / span`` for a curve's `shape`.

  ``f`` goes from 1 at ``p = 0`` to 0 at ``p = 1``: ``1 - p`` (``"linear"``),
  ``(1 + cos(pi p)) / 2`` (``"cosine"``) or ``1 - sqrt(p)`` (``"1-sqrt"``).
  Each weight is computed from its own count, so both keep float32 relative
  precision at both ends.
  """
  if shape == "linear":
    return left / span, done / span
  if shape == "cosine":
    return cosine_weights(done, left, span)
  if shape == "1-sqrt":  # 1 - sqrt(p) = (1 - p) / (1 + sqrt(p)), exact near p = 1
    root = jnp.sqrt(done / span)
    return (left / span) / (1.0 + root), root
  raise ValueError(f"shape_weights: shape must be one of {_checks.SHAPES}, got {shape!r}")


def along(shape: str, a: Any, b: Any, step: jax.Array, start: Any, span: Any) -> jax.Array:
  """The rate on a curve of `shape` from `a` at `start` to `b` at ``start + span``.

  `a` before `start`, `b` from ``start + span`` on (for ``span >= 1``).
  """
  up, down = shape_weights(shape, *progress(step, start, span))
  return f32(a) * up + f32(b) * down


def log_from(x: jax.Array, rest: jax.Array) -> jax.Array:
  """``log(x)`` given ``x`` and ``rest = 1 - x``, each computed on its own.

  ``log1p(-rest)`` where ``x > 1/2``: ``log`` of a float32 `x` near 1 would
  lose the relative precision that `rest` keeps.
  """
  return jnp.where(x > 0.5, jnp.log1p(-rest), jnp.log(x))
