"""`lrjax.plot`: learning rate against step, with matplotlib.

matplotlib is an optional dependency (``pip install 'lrjax[plot]'``): it is
imported when `plot` is called, never when lrjax is imported.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lrjax import _checks, _registry
from lrjax._base import Schedule

__all__ = ["plot"]

_MISSING = (
    "lrjax.plot needs matplotlib, an optional dependency: "
    "pip install 'lrjax[plot]'"
)


def require_matplotlib() -> Any:
  """Imports matplotlib, or raises an ImportError that names the extra."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(_MISSING) from e
  return matplotlib


def plot(
    schedules: Schedule | Callable[..., Any] | Sequence[Schedule | Callable[..., Any]],
    steps: int | Sequence[int] | np.ndarray,
    *,
    ax: Any = None,
    labels: Sequence[str] | None = None,
    log: bool = False,
) -> Any:
  """Draws learning rate against step, one line per schedule.

  Each schedule is evaluated once, on the whole array of steps (one vectorised
  call), so a plot of 100,000 steps costs one call.

  Args:
    schedules: an lrjax schedule, or any callable that maps an array of steps
      to an array of rates (an optax schedule, to compare against), or a
      non-empty list of them, drawn on the same axes.
    steps: an integer ``N > 0`` (steps ``0 .. N-1``) or a 1-D array of steps.
    ax: the matplotlib ``Axes`` to draw on; by default a new figure from
      ``matplotlib.pyplot.subplots()``.
    labels: one legend label per schedule; by default each schedule's call
      (its ``repr``: default arguments left out), e.g.
      ``cosine_decay(0.3, decay_steps=9380)``.
    log: a logarithmic learning-rate axis (zero rates are not drawn).

  Returns:
    The ``Axes``.

  Raises:
    ImportError: if matplotlib is not installed (the message names the
      ``lrjax[plot]`` extra).
    ValueError: if `schedules` is empty or holds a non-callable, if `steps`
      is neither a positive integer nor a non-empty 1-D array, or if `labels`
      does not have one label per schedule.

  Example:
    >>> import lrjax
    >>> from matplotlib.figure import Figure
    >>> s = lrjax.step_decay(0.1, step_size=30, gamma=0.1)
    >>> ax = lrjax.plot(s, 90, ax=Figure().add_subplot())
    >>> x, y = ax.lines[0].get_data()
    >>> print(f"{len(x)} {y[29]:.4f} {y[30]:.4f} {ax.lines[0].get_label()}")
    90 0.1000 0.0100 step_decay(0.1, step_size=30, gamma=0.1)
  """
  fn = "plot"
  if isinstance(schedules, Schedule) or (
      callable(schedules) and not isinstance(schedules, Sequence)
  ):
    schedules = [schedules]
  if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence):
    raise ValueError(
        f"{fn}: schedules must be a schedule or a list of schedules, "
        f"got {schedules!r}"
    )
  schedules = list(schedules)
  if not schedules:
    raise ValueError(f"{fn}: schedules must be non-empty, got []")
  for i, s in enumerate(schedules):
    if not callable(s):
      raise ValueError(
          f"{fn}: schedules[{i}] must be an lrjax schedule or a callable, got {s!r}"
      )
  x = _steps(fn, steps)
  if labels is None:
    labels = [default_label(s) for s in schedules]
  elif isinstance(labels, str) or len(labels) != len(schedules):
    raise ValueError(
        f"{fn}: labels must be a list of {len(schedules)} labels (one per "
        f"schedule), got {labels!r}"
    )
  _checks.check_bool(fn, "log", log)

  require_matplotlib()
  if ax is None:
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    _, ax = plt.subplots()
  for s, label in zip(schedules, labels):
    y = np.asarray(s(x), dtype=np.float64)
    y = np.broadcast_to(y, x.shape)
    if log:
      y = np.where(y > 0, y, np.nan)  # log scale: leave zeros out, no warning
    ax.plot(x, y, label=str(label))
  if log:
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("learning rate")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize="small")
  return ax


def _steps(fn: str, steps: Any) -> np.ndarray:
  """`steps` as a 1-D integer (or float) NumPy array."""
  if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
    _checks.check_int(fn, "steps", steps, low=1)
    return np.arange(int(steps), dtype=np.int32)
  try:
    x = np.asarray(steps)
  except Exception:  # pylint: disable=broad-except
    x = np.asarray(None)
  if x.ndim != 1 or x.size == 0 or not (
      np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
  ):
    raise ValueError(
        f"{fn}: steps must be an integer > 0 or a non-empty 1-D array of "
        f"steps, got {steps!r}"
    )
  if np.issubdtype(x.dtype, np.integer):
    for dtype in (np.int32, np.uint32):  # what the schedules take without x64
      info = np.iinfo(dtype)
      if x.min() >= info.min and x.max() <= info.max:
        return x.astype(dtype)
    raise ValueError(f"{fn}: steps must fit in int32 or uint32, got {steps!r}")
  return x.astype(np.float32)


# --- labels ------------------------------------------------------------------


def default_label(s: Any, width: int = 60) -> str:
  """A schedule's call (its ``repr``) wrapped to `width`; a callable's name."""
  if isinstance(s, Schedule):
    text = _registry.call_text(s)
  else:
    text = getattr(s, "__qualname__", None) or repr(s)
  return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text
