"""Schedules by name: the constructor registry, the dict round trip, the call text.

Every public constructor registers here under its name (``@constructor``) and
every schedule class under the name of the constructor that builds it
(`schedule_class` in `_base` calls `register_class`). `from_dict`, the command
line's parser and the gallery look constructors up here; `to_dict`,
`call_text` (a schedule's ``repr`` and its plot label) walk a schedule's
fields. This module imports nothing else from lrjax, so every other module
may use it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np

__all__ = [
    "build",
    "call_text",
    "constructor",
    "from_dict",
    "is_schedule",
    "lookup",
    "names",
    "register_class",
    "signature",
    "to_dict",
]

_F = TypeVar("_F", bound=Callable[..., Any])

# Public constructor functions by name: `from_dict` calls these, so a rebuilt
# schedule goes through the same checks as one built by hand.
_CONSTRUCTORS: dict[str, Callable[..., Any]] = {}
# Schedule classes by the name of their constructor.
_CLASSES: dict[str, type] = {}


def constructor(fn: _F) -> _F:
  """Registers a public constructor under its name (a decorator)."""
  if fn.__name__ in _CONSTRUCTORS:
    raise ValueError(f"constructor: {fn.__name__!r} is registered twice")
  _CONSTRUCTORS[fn.__name__] = fn
  return fn


def register_class(name: str, cls: type) -> None:
  """Records `cls` as the class that constructor `name` builds."""
  if name in _CLASSES:
    raise ValueError(f"register_class: {name!r} is registered twice")
  _CLASSES[name] = cls


def names() -> list[str]:
  """The registered constructor names, sorted."""
  return sorted(_CONSTRUCTORS)


def lookup(name: str, *, fn: str = "lookup") -> Callable[..., Any]:
  """The constructor called `name`.

  Raises:
    ValueError: if no constructor has that name (the message lists them,
      prefixed by `fn`, the caller's name).
  """
  try:
    return _CONSTRUCTORS[name]
  except (KeyError, TypeError):
    raise ValueError(
        f"{fn}: unknown schedule {name!r}; known: {names()}"
    ) from None


def signature(name: str) -> inspect.Signature:
  """The signature of constructor `name`."""
  return inspect.signature(lookup(name, fn="signature"))


def build(name: str, *args: Any, **kwargs: Any) -> Any:
  """Calls constructor `name` (how `Schedule.__mul__` builds a product)."""
  return lookup(name, fn="build")(*args, **kwargs)


def is_schedule(x: Any) -> bool:
  """Whether `x` is an instance of a registered schedule class."""
  return isinstance(x, tuple(_CLASSES.values()))


# --- the dict round trip ---------------------------------------------------------


def to_dict(s: Any) -> dict[str, Any]:
  """``{"type": name, field: value, ...}``, JSON-serialisable."""
  out: dict[str, Any] = {"type": s.name}
  for f in dataclasses.fields(s):
    out[f.name] = _plain(getattr(s, f.name))
  return out


def _plain(x: Any) -> Any:
  if is_schedule(x):
    return to_dict(x)
  if isinstance(x, (tuple, list)):
    return [_plain(v) for v in x]
  if isinstance(x, (jax.Array, np.ndarray, np.generic)):
    return np.asarray(x).tolist()
  return x


def from_dict(d: dict[str, Any]) -> Any:
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
  fn = lookup(name, fn="from_dict")
  kwargs = {k: _rebuild(v) for k, v in kwargs.items()}
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


# --- the call text -----------------------------------------------------------------


def call_text(s: Any) -> str:
  """The call that builds `s`: a schedule's ``repr`` and its plot label.

  The first argument is positional where the constructor takes it so,
  arguments at their defaults are left out, sequences print as lists and
  nested schedules print the same way, so the text reads like hand-written
  code and the command line parses it back to an equal schedule. A traced
  leaf prints as ``<traced float32[]>``.
  """
  params = signature(s.name).parameters
  args = []
  for f in dataclasses.fields(s):
    value = getattr(s, f.name)
    p = params.get(f.name)
    if p is not None and p.kind is p.VAR_POSITIONAL:  # product(*schedules)
      args += [_value_text(v) for v in value]
    elif p is not None and p.kind is p.POSITIONAL_OR_KEYWORD and not args:
      args.append(_value_text(value))
    elif p is not None and _is_default(value, p.default):
      continue
    else:
      args.append(f"{f.name}={_value_text(value)}")
  return f"{s.name}({', '.join(args)})"


def _scalar(x: Any) -> Any:
  """A concrete 0-d array (a leaf read back from an optimizer state) as the
  shortest Python number that its dtype rounds to it: float32 ``0.001``, not
  ``0.0010000000474974513``; anything else as it is."""
  if isinstance(x, (jax.Array, np.ndarray, np.generic)) and not isinstance(
      x, jax.core.Tracer) and np.ndim(x) == 0:
    v = np.asarray(x)[()]
    if isinstance(v, np.bool_):
      return bool(v)
    return int(v) if isinstance(v, np.integer) else float(str(v))
  return x


def _is_default(value: Any, default: Any) -> bool:
  plain = (bool, int, float, str, type(None))
  value = _scalar(value)
  if default is inspect.Parameter.empty:
    return False
  if not isinstance(value, plain) or not isinstance(default, plain):
    return False
  return isinstance(value, bool) == isinstance(default, bool) and value == default


def _value_text(x: Any) -> str:
  if is_schedule(x):
    return call_text(x)
  if isinstance(x, (tuple, list)):
    return "[" + ", ".join(_value_text(v) for v in x) + "]"
  if isinstance(x, jax.core.Tracer):
    return f"<traced {x.dtype}{list(x.shape)}>"
  if np.ndim(x) == 0:
    return repr(_scalar(x))
  return "[" + ", ".join(_value_text(v) for v in np.asarray(x)) + "]" if isinstance(
      x, (jax.Array, np.ndarray)) else repr(_plain(x))
