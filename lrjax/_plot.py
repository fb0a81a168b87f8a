"""`lrjax.plot` (learning rate against step) and `lrjax.plot_range_test` (a
range test's loss against rate), with matplotlib.

matplotlib is an optional dependency (``pip install 'lrjax[plot]'``): it is
imported when a plot is drawn, never when lrjax is imported.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lrjax import _checks, _registry
from lrjax._base import Schedule
from lrjax._range_test import RangeTestResult

__all__ = ["plot", "plot_range_test"]

_MISSING = (
    "lrjax.{fn} needs matplotlib, an optional dependency: "
    "pip install 'lrjax[plot]'"
)


def require_matplotlib(fn: str = "plot") -> Any:
  """Imports matplotlib, or raises an ImportError that names the extra."""
  try:
    import matplotlib  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(_MISSING.format(fn=fn)) from e
  return matplotlib


def _new_axes() -> Any:
  """A new figure's ``Axes``, from ``matplotlib.pyplot.subplots()``."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  return plt.subplots()[1]


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
    ax = _new_axes()
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


def plot_range_test(
    result: RangeTestResult, *, ax: Any = None, title: str | None = None
) -> Any:
  """Draws a range test's loss against the rate, its suggestions marked.

  The raw loss (thin, grey) and the smoothed loss against the rate on a
  logarithmic axis, as fastai's ``learn.lr_find()`` and torch-lr-finder's
  ``LRFinder.plot()`` draw them; each finite suggestion (`steepest`, `valley`,
  `minimum_div_10`) is a dashed vertical line labelled with its value. The
  steps from `num_valid` on (NaN) are not drawn. The loss axis runs from the
  lowest loss to a little above the start, so the divergence at the end does
  not squash the curve: with :math:`\\ell` and :math:`s` the finite losses and
  smoothed losses, :math:`n` how many, and
  :math:`h = \\max(s_0, \\dots, s_{\\max(1, \\lfloor n/10 \\rfloor) - 1})`,

  .. math::
    m = \\min(\\min \\ell, \\min s), \\qquad p = 0.05 \\max(h - m, 10^{-3}),
    \\qquad [m - p,\\; h + 4p].

  Args:
    result: what `lr_range_test` returned (a `RangeTestResult`).
    ax: the matplotlib ``Axes`` to draw on; by default a new figure from
      ``matplotlib.pyplot.subplots()``.
    title: the axes' title; none by default.

  Returns:
    The ``Axes``.

  Raises:
    ImportError: if matplotlib is not installed (the message names the
      ``lrjax[plot]`` extra).
    ValueError: if `result` is not a `RangeTestResult`, its `rates`,
      `losses` and `smoothed` are not 1-D arrays of one common length or its
      suggestions are not numbers, or if `title` is neither None nor a string.

  Example:
    >>> import jax.numpy as jnp, lrjax
    >>> from matplotlib.figure import Figure
    >>> loss_fn = lambda w, batch: 2.0 * jnp.sum(w ** 2)
    >>> r = lrjax.lr_range_test(loss_fn, jnp.ones(3), num_steps=100)
    >>> ax = lrjax.plot_range_test(r, ax=Figure().add_subplot())
    >>> print([line.get_label().split(":")[0] for line in ax.lines])
    ['loss', 'smoothed loss', 'steepest', 'valley', 'minimum / 10']
    >>> lo, hi = ax.get_ylim()
    >>> print(f"{ax.get_xscale()} {lo:.2f} {hi:.2f}")  # losses from 6 to ~0
    log -0.30 7.20
  """
  fn = "plot_range_test"
  if not isinstance(result, RangeTestResult):
    raise ValueError(
        f"{fn}: result must be a RangeTestResult (what lr_range_test "
        f"returns), got {type(result).__name__}"
    )
  try:
    rates, losses, smoothed = (np.asarray(a, np.float64) for a in result[:3])
  except (TypeError, ValueError):
    rates = losses = smoothed = np.zeros((0, 0))
  if rates.ndim != 1 or not rates.size or not (
      rates.shape == losses.shape == smoothed.shape
  ):
    raise ValueError(
        f"{fn}: result.rates, result.losses and result.smoothed must be 1-D "
        f"arrays of one length > 0, got shapes {np.shape(result.rates)}, "
        f"{np.shape(result.losses)} and {np.shape(result.smoothed)}"
    )
  try:
    suggestions = [float(v) for v in result[4:]]
  except (TypeError, ValueError):
    suggestions = []
  if len(suggestions) != 3:
    raise ValueError(
        f"{fn}: result.steepest, result.valley and result.minimum_div_10 must "
        f"be numbers (NaN for none), got {tuple(result[4:])!r}"
    )
  if title is not None and not isinstance(title, str):
    raise ValueError(f"{fn}: title must be None or a string, got {title!r}")

  require_matplotlib(fn)
  if ax is None:
    ax = _new_axes()
  ax.plot(rates, losses, color="0.75", lw=0.8, label="loss")
  ax.plot(rates, smoothed, lw=1.8, label="smoothed loss")
  names = ("steepest", "valley", "minimum / 10")
  colors = ("tab:red", "tab:green", "tab:purple")
  for name, value, color in zip(names, suggestions, colors):
    if np.isfinite(value):
      label = f"{name}: {value:.3g}"
      ax.axvline(value, color=color, ls="--", lw=1, label=label)
  valid = np.isfinite(losses) & np.isfinite(smoothed)
  if valid.any():  # from the lowest loss to a little above the start
    lo = min(losses[valid].min(), smoothed[valid].min())
    hi = smoothed[valid][: max(1, valid.sum() // 10)].max()
    pad = 0.05 * max(hi - lo, 1e-3)
    ax.set_ylim(lo - pad, hi + 4 * pad)
  ax.set(xscale="log", xlabel="learning rate", ylabel="training loss")
  if title is not None:
    ax.set_title(title)
  ax.grid(True, alpha=0.3, which="both")
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
