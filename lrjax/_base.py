"""The `Schedule` base: a frozen dataclass registered as a JAX pytree.

Every schedule in lrjax is a value. Its numeric hyperparameters are pytree
leaves (so `jax.jit` does not recompile when they change, `jax.vmap` can sweep
them and a checkpoint can hold them); strings and flags that fix the shape of
the computation are static. This module holds the base class, the step cast,
the exact integer comparisons every schedule uses, the argument checks and the
dict round trip.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Schedule", "from_dict", "stack"]

_T = TypeVar("_T")

# Public constructor functions by name: `from_dict` calls these, so a rebuilt
# schedule goes through the same checks as one built by hand.
_CONSTRUCTORS: dict[str, Callable[..., Schedule]] = {}


def static_field(**kwargs: Any) -> Any:
  """A dataclass field that is pytree metadata (static), not a leaf."""
  return dataclasses.field(metadata={"static": True}, **kwargs)


def schedule_class(name: str) -> Callable[[type[_T]], type[_T]]:
  """Makes `cls` a frozen dataclass pytree whose public constructor is `name`."""

  def wrap(cls: type[_T]) -> type[_T]:
    cls = dataclasses.dataclass(frozen=True, repr=False)(cls)
    cls.name = name  # type: ignore[attr-defined]
    return jax.tree_util.register_dataclass(cls)

  return wrap


def constructor(fn: Callable[..., _T]) -> Callable[..., _T]:
  """Registers a public constructor, so `from_dict` can rebuild its schedules."""
  _CONSTRUCTORS[fn.__name__] = fn
  return fn


class Schedule:
  """A learning-rate schedule: a pure function of the step, and a value.

  Subclasses are frozen dataclasses registered as pytrees (numbers are leaves),
  built by a public constructor such as :func:`lrjax.cosine_decay` that checks
  its arguments. Calling a schedule returns a float32 `jax.Array` of the step's
  shape, eager or under `jax.jit`, for any integer or float step dtype.

  Schedules multiply: ``sched * 0.5``, ``0.5 * sched`` and ``a * b`` are
  schedules (the pointwise product, like PyTorch's ``ChainedScheduler``).
  """

  name: ClassVar[str]

  def _value(self, step: jax.Array) -> jax.Array:
    """The rate at `step` (already cast by `as_step`); any float dtype."""
    raise NotImplementedError

  def __call__(self, step: Any) -> jax.Array:
    return _evaluate(self, step)

  def __mul__(self, other: Any) -> Schedule:
    from lrjax._combine import product  # _combine builds on this module.

    return product(self, other)

  def __rmul__(self, other: Any) -> Schedule:
    from lrjax._combine import product

    return product(other, self)

  def to_dict(self) -> dict[str, Any]:
    """A JSON-serialisable dict; `lrjax.from_dict` rebuilds an equal schedule."""
    out: dict[str, Any] = {"type": self.name}
    for f in dataclasses.fields(self):  # type: ignore[arg-type]
      out[f.name] = _plain(getattr(self, f.name))
    return out

  def __repr__(self) -> str:
    params = inspect.signature(_CONSTRUCTORS[self.name]).parameters
    args = []
    for f in dataclasses.fields(self):  # type: ignore[arg-type]
      value = getattr(self, f.name)
      p = params.get(f.name)
      if p is not None and p.kind is p.VAR_POSITIONAL:  # product(*schedules)
        args += [_plain_repr(v) for v in value]
      else:
        args.append(f"{f.name}={_plain_repr(value)}")
    return f"{self.name}({', '.join(args)})"


@functools.partial(jax.jit, inline=True)
def _evaluate(schedule: Schedule, step: Any) -> jax.Array:
  step = as_step(step)
  value = schedule._value(step)  # pylint: disable=protected-access
  return jnp.broadcast_to(value, step.shape).astype(jnp.float32)


def _plain(x: Any) -> Any:
  if isinstance(x, Schedule):
    return x.to_dict()
  if isinstance(x, (tuple, list)):
    return [_plain(v) for v in x]
  if isinstance(x, (jax.Array, np.ndarray, np.generic)):
    return np.asarray(x).tolist()
  return x


def _plain_repr(x: Any) -> str:
  if isinstance(x, Schedule):
    return repr(x)
  if isinstance(x, tuple):
    inner = ", ".join(_plain_repr(v) for v in x)
    return f"({inner},)" if len(x) == 1 else f"({inner})"
  if isinstance(x, jax.core.Tracer):
    return f"<traced {x.dtype}{list(x.shape)}>"
  return repr(_plain(x))


def from_dict(d: dict[str, Any]) -> Schedule:
  """Rebuilds a schedule from `Schedule.to_dict()` output (or parsed JSON).

  Args:
    d: a dict with key ``"type"`` naming a constructor (``"cosine_decay"``)
      and that constructor's arguments; nested schedules are nested dicts.

  Returns:
    The schedule, built through its public constructor (so checked).

  Raises:
    ValueError: if `d` is not such a dict, names no lrjax schedule, or its
      arguments are rejected by the constructor.

  Example:
    >>> import lrjax
    >>> s = lrjax.from_dict({"type": "exponential_decay", "init_value": 0.1,
    ...                      "decay_steps": 10, "decay_rate": 0.5})
    >>> print(f"{s(20):.4f}")
    0.0250
  """
  if not isinstance(d, dict) or "type" not in d:
    raise ValueError(f"from_dict: expected a dict with key 'type', got {d!r}")
  kwargs = dict(d)
  name = kwargs.pop("type")
  if name not in _CONSTRUCTORS:
    raise ValueError(
        f"from_dict: unknown schedule {name!r}; known: {sorted(_CONSTRUCTORS)}"
    )
  kwargs = {k: _rebuild(v) for k, v in kwargs.items()}
  fn = _CONSTRUCTORS[name]
  args = []
  for p in inspect.signature(fn).parameters.values():
    if p.kind is p.VAR_POSITIONAL and p.name in kwargs:  # product(*schedules)
      args = list(kwargs.pop(p.name))
  try:
    return fn(*args, **kwargs)
  except TypeError as e:  # unknown or missing keyword
    raise ValueError(f"from_dict: bad arguments for {name}: {e}") from None


def _rebuild(x: Any) -> Any:
  if isinstance(x, dict) and "type" in x:
    return from_dict(x)
  if isinstance(x, list):
    return [_rebuild(v) for v in x]
  return x


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
    check_schedule("stack", f"schedules[{i}]", s)
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


def cosine_weights(done: jax.Array, left: jax.Array, span: jax.Array):
  """``(w, 1 - w)`` for ``w = (1 + cos(pi z)) / 2``, ``z = done / span``.

  With ``1 - z = left / span`` taken from its own count, ``w = sin(pi (1 - z)
  / 2) ** 2`` and ``1 - w = sin(pi z / 2) ** 2`` each keep float32 relative
  precision at both ends (``1 + cos`` cancels near ``z = 1``), and ``a * w +
  b * (1 - w)`` goes from `a` to `b` without cancelling whichever is larger.
  """
  w = jnp.sin((0.5 * math.pi) * (left / span))
  v = jnp.sin((0.5 * math.pi) * (done / span))
  return w * w, v * v


# --- argument checks ---------------------------------------------------------
# Each takes the calling function's name and the argument's name, checks only
# concrete values (a traced hyperparameter under vmap passes through), and
# returns the value normalised: Python int or float for scalars.


def known(x: Any) -> np.ndarray | None:
  """`x` as a float64 array when concrete, None when traced (or None)."""
  if x is None or isinstance(x, jax.core.Tracer):
    return None
  return np.asarray(x, dtype=np.float64)


def _concrete(x: Any) -> np.ndarray | None:
  if isinstance(x, jax.core.Tracer):
    return None
  try:
    return np.asarray(x)
  except Exception:  # pylint: disable=broad-except
    return None


def _fail(fn: str, name: str, what: str, x: Any) -> ValueError:
  return ValueError(f"{fn}: {name} must be {what}, got {x!r}")


def _is_scalar_number(x: Any) -> bool:
  return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
      x, bool
  )


def check_float(
    fn: str,
    name: str,
    x: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
  """A real number within [low, high] (ends open where asked); finite."""
  a = _concrete(x)
  if a is None:
    return x
  if a.dtype == np.bool_ or not (
      np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
  ):
    raise _fail(fn, name, "a real number", x)
  a = a.astype(np.float64)
  if not np.all(np.isfinite(a)):
    raise _fail(fn, name, "finite", x)
  if low is not None and not np.all(a > low if low_open else a >= low):
    raise _fail(fn, name, f"{'>' if low_open else '>='} {low}", x)
  if high is not None and not np.all(a < high if high_open else a <= high):
    raise _fail(fn, name, f"{'<' if high_open else '<='} {high}", x)
  if _is_scalar_number(x):
    return float(x)
  return x if isinstance(x, jax.Array) else jnp.asarray(a, jnp.float32)


def check_int(fn: str, name: str, x: Any, *, low: int = 0) -> Any:
  """An integer-valued count or boundary >= `low` that fits in int32."""
  a = _concrete(x)
  if a is None:
    return x
  if a.dtype == np.bool_ or not (
      np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
  ):
    raise _fail(fn, name, "an integer", x)
  af = a.astype(np.float64)
  if not np.all(np.isfinite(af)) or not np.all(af == np.round(af)):
    raise _fail(fn, name, "an integer", x)
  if not np.all(af >= low):
    raise _fail(fn, name, f">= {low}", x)
  if not np.all(af <= np.iinfo(np.int32).max):
    raise _fail(fn, name, f"<= {np.iinfo(np.int32).max} (int32)", x)
  if _is_scalar_number(x):
    return int(x)
  return x if isinstance(x, jax.Array) else jnp.asarray(af, jnp.int32)


def check_int_sequence(
    fn: str, name: str, xs: Any, *, low: int = 0, strict: bool = True,
    allow_empty: bool = False,
) -> tuple[Any, ...]:
  """A sorted sequence of integer boundaries (strictly increasing if `strict`)."""
  if isinstance(xs, (str, bytes)) or not isinstance(
      xs, (Sequence, np.ndarray, jax.Array)
  ):
    raise _fail(fn, name, "a sequence of integers", xs)
  items = tuple(check_int(fn, f"{name}[{i}]", x, low=low) for i, x in enumerate(xs))
  if not items and not allow_empty:
    raise _fail(fn, name, "non-empty", xs)
  concrete = [_concrete(x) for x in items]
  if all(c is not None for c in concrete):
    for i in range(1, len(items)):
      prev, cur = concrete[i - 1], concrete[i]
      bad = np.any(cur <= prev) if strict else np.any(cur < prev)
      if bad:
        order = "strictly increasing" if strict else "sorted (non-decreasing)"
        raise _fail(fn, name, order, xs)
  return items


def check_choice(fn: str, name: str, x: Any, choices: Sequence[str]) -> str:
  if x not in choices:
    raise _fail(fn, name, f"one of {tuple(choices)}", x)
  return x


def check_bool(fn: str, name: str, x: Any) -> bool:
  if not isinstance(x, (bool, np.bool_)):
    raise _fail(fn, name, "a bool", x)
  return bool(x)


def check_schedule(fn: str, name: str, x: Any) -> Schedule:
  if not isinstance(x, Schedule):
    raise ValueError(
        f"{fn}: {name} must be an lrjax schedule (build one with e.g. "
        f"lrjax.constant), got {x!r}"
    )
  return x
