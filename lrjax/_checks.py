"""Argument checks, shared by every constructor, and the constants they use.

Each check takes the calling function's name and the argument's name, checks
only concrete values (a hyperparameter traced under `jax.vmap` or `jax.jit`
passes through unchecked) and returns the value normalised: a Python int or
float for a scalar. A failed check raises
``ValueError(f"{fn}: {name} must be ..., got {x!r}")``; a legal but odd
setting warns.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _registry

__all__ = [
    "I32_MAX",
    "SHAPES",
    "check_bool",
    "check_choice",
    "check_float",
    "check_floats",
    "check_int",
    "check_int_sequence",
    "check_order",
    "check_schedule",
    "check_sum",
    "concrete",
    "fail",
    "warn_growth",
    "warn_rising",
]

# The largest count or boundary: steps are int32 (or uint32) without x64.
I32_MAX = int(np.iinfo(np.int32).max)

# The one spelling of a curve's shape (`shape=`, `warmup_shape=`, `decay_shape=`).
SHAPES = ("linear", "cosine", "1-sqrt")


def concrete(x: Any) -> np.ndarray | None:
  """`x` as a NumPy array when its value is known, None when it is not.

  None for ``None`` and for a tracer (a hyperparameter under `jax.jit` or
  `jax.vmap`, whose checks are skipped). A real number (an int, uint or float
  of any width) comes back as float64, exact for every int32 count, so sums
  of counts cannot overflow; anything else keeps its NumPy dtype (a bool, a
  string), and a value NumPy cannot convert comes back as a 0-d object array,
  so that a check rejects it rather than skipping it.
  """
  if x is None or isinstance(x, jax.core.Tracer):
    return None
  try:
    a = np.asarray(x)
  except (TypeError, ValueError, OverflowError):
    a = np.empty((), dtype=object)
    a[()] = x
  if a.dtype != np.bool_ and (
      np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
  ):
    return a.astype(np.float64)
  return a


def fail(fn: str, name: str, what: str, x: Any) -> ValueError:
  """``ValueError(f"{fn}: {name} must be {what}, got {x!r}")``."""
  return ValueError(f"{fn}: {name} must be {what}, got {x!r}")


def _is_scalar_number(x: Any) -> bool:
  return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
      x, bool
  )


def _real(fn: str, name: str, x: Any, what: str) -> np.ndarray | None:
  """`concrete(x)`, or a failure if it is known and not real numbers."""
  a = concrete(x)
  if a is not None and a.dtype != np.float64:
    raise fail(fn, name, what, x)
  return a


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
  a = _real(fn, name, x, "a real number")
  if a is None:
    return x
  if not np.all(np.isfinite(a)):
    raise fail(fn, name, "finite", x)
  if low is not None and not np.all(a > low if low_open else a >= low):
    raise fail(fn, name, f"{'>' if low_open else '>='} {low}", x)
  if high is not None and not np.all(a < high if high_open else a <= high):
    raise fail(fn, name, f"{'<' if high_open else '<='} {high}", x)
  if _is_scalar_number(x):
    return float(x)
  return x if isinstance(x, jax.Array) else jnp.asarray(a, jnp.float32)


def _check_sequence(fn: str, name: str, xs: Any, what: str) -> None:
  if isinstance(xs, (str, bytes)) or not isinstance(
      xs, (Sequence, np.ndarray, jax.Array)
  ):
    raise fail(fn, name, what, xs)


def check_floats(fn: str, name: str, xs: Any, *, low: float = 0.0) -> tuple[Any, ...]:
  """A sequence of finite numbers >= `low`, as a tuple."""
  _check_sequence(fn, name, xs, "a sequence of numbers")
  return tuple(check_float(fn, f"{name}[{i}]", x, low=low) for i, x in enumerate(xs))


def check_int(fn: str, name: str, x: Any, *, low: int = 0) -> Any:
  """An integer-valued count or boundary >= `low` that fits in int32."""
  a = _real(fn, name, x, "an integer")
  if a is None:
    return x
  if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
    raise fail(fn, name, "an integer", x)
  if not np.all(a >= low):
    raise fail(fn, name, f">= {low}", x)
  if not np.all(a <= I32_MAX):
    raise fail(fn, name, f"<= {I32_MAX} (int32)", x)
  if _is_scalar_number(x):
    return int(x)
  return x if isinstance(x, jax.Array) else jnp.asarray(a, jnp.int32)


def check_int_sequence(
    fn: str, name: str, xs: Any, *, low: int = 0, strict: bool = True,
    allow_empty: bool = False,
) -> tuple[Any, ...]:
  """A sorted sequence of integer boundaries (strictly increasing if `strict`)."""
  _check_sequence(fn, name, xs, "a sequence of integers")
  items = tuple(check_int(fn, f"{name}[{i}]", x, low=low) for i, x in enumerate(xs))
  if not items and not allow_empty:
    raise fail(fn, name, "non-empty", xs)
  known = [concrete(x) for x in items]
  if all(k is not None for k in known):
    for prev, cur in zip(known, known[1:]):
      if np.any(cur <= prev) if strict else np.any(cur < prev):
        order = "strictly increasing" if strict else "sorted (non-decreasing)"
        raise fail(fn, name, order, xs)
  return items


def check_sum(fn: str, names: Sequence[str], xs: Sequence[Any]) -> None:
  """Lengths that follow each other must end within int32."""
  known = [concrete(x) for x in xs]
  if all(k is not None for k in known) and np.any(sum(known) > I32_MAX):
    got = " + ".join(repr(x) for x in xs)
    raise ValueError(
        f"{fn}: {' + '.join(names)} must be <= {I32_MAX} (int32), got {got}"
    )


def check_choice(fn: str, name: str, x: Any, choices: Sequence[str]) -> str:
  """One of `choices` (strings)."""
  if not isinstance(x, str) or x not in choices:
    raise fail(fn, name, f"one of {tuple(choices)}", x)
  return x


def check_bool(fn: str, name: str, x: Any) -> bool:
  """A bool (NumPy's too), as a Python bool."""
  if not isinstance(x, (bool, np.bool_)):
    raise fail(fn, name, "a bool", x)
  return bool(x)


def check_schedule(fn: str, name: str, x: Any) -> Any:
  """An lrjax schedule."""
  if not _registry.is_schedule(x):
    raise ValueError(
        f"{fn}: {name} must be an lrjax schedule (build one with e.g. "
        f"lrjax.constant), got {x!r}"
    )
  return x


_ORDERS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def check_order(
    fn: str, name: str, x: Any, op: str, other: str, y: Any, *, when: str = "",
    where: Any = True,
) -> None:
  """``x op y`` (`op` one of ``<``, ``<=``, ``>``, ``>=``) where both are known.

  `where` (a concrete bool, or bool array broadcast against the two) limits
  the check to where it holds; `when` says so in the message:
  ``f"{fn}: {name} must be {op} {other}{when}, got {name}={x!r}, {other}={y!r}"``.
  """
  kx, ky = concrete(x), concrete(y)
  if kx is not None and ky is not None and np.any(where & ~_ORDERS[op](kx, ky)):
    raise ValueError(
        f"{fn}: {name} must be {op} {other}{when}, got {name}={x!r}, {other}={y!r}"
    )


def warn_growth(fn: str, name: str, factor: Any, *, what: str = "the rate",
                hint: str = "") -> None:
  """Warns (at the constructor's caller) when a repeated `factor` above 1 grows
  `what` to inf."""
  k = concrete(factor)
  if k is not None and np.any(k > 1):
    warnings.warn(
        f"{fn}: {name}={factor!r} > 1 grows {what} without bound (to inf){hint}",
        stacklevel=3,
    )


def warn_rising(fn: str, start: str, a: Any, end: str, b: Any) -> None:
  """Warns (at the constructor's caller) when a "decay" ends above its start."""
  ka, kb = concrete(a), concrete(b)
  if ka is not None and kb is not None and np.any(kb > ka):
    warnings.warn(
        f"{fn}: {end}={b!r} > {start}={a!r}: the rate rises instead of decaying",
        stacklevel=3,
    )
