"""The learning-rate range test: one jitted scan over an exponential ramp."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _checks

__all__ = ["RangeTestResult", "lr_range_test"]

_FN = "lr_range_test"


class RangeTestResult(NamedTuple):
  """What `lr_range_test` recorded and suggests (a pytree, like any tuple).

  Steps from `num_valid` on (the step whose loss diverged and those after it)
  hold NaN in `losses` and `smoothed`.
  """

  rates: jax.Array  # shape=(N,), dtype=float32: the rate of each step
  losses: jax.Array  # shape=(N,), dtype=float32: raw loss, before the update
  smoothed: jax.Array  # shape=(N,), dtype=float32: debiased moving average
  num_valid: int  # steps recorded before the loss diverged (N if it did not)
  steepest: float  # rate where the smoothed loss falls fastest per log rate
  valley: float  # fastai's "valley" rate (longest decreasing stretch)
  minimum_div_10: float  # the rate of the lowest smoothed loss, over 10


def lr_range_test(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    batches: Any = None,
    *,
    optimizer: Callable[[Any], optax.GradientTransformation] = optax.sgd,
    min_value: float = 1e-7,
    max_value: float = 10.0,
    num_steps: int | None = None,
    smoothing: float = 0.98,
    diverge_factor: float | None = 4.0,
) -> RangeTestResult:
  """Trains briefly with an exponentially growing rate and records the loss.

  Step ``i`` evaluates the loss and its gradient at the current parameters,
  records the loss, then updates the parameters with rate

  .. math::
    \\eta_i = \\text{min\\_value} \\cdot
      \\left(\\frac{\\text{max\\_value}}{\\text{min\\_value}}\\right)^{i/(N-1)},
    \\qquad i = 0, \\dots, N-1.

  The smoothed loss is the bias-corrected moving average (fastai's
  ``AvgSmoothLoss``), with :math:`\\beta` = `smoothing` and :math:`a_{-1}=0`:

  .. math::
    a_i = \\beta a_{i-1} + (1-\\beta)\\,\\ell_i, \\qquad
    s_i = a_i / (1 - \\beta^{i+1}).

  With :math:`b_i = \\min_{j \\le i} s_j` and :math:`f` = `diverge_factor`, the
  loss diverges at the first step where :math:`s_i` is not finite or
  :math:`s_i > b_i + (f-1)|b_i|` (that is :math:`s_i > f\\,b_i` for a
  non-negative loss, as in fastai; the absolute value keeps a negative loss
  from counting as diverged at once). That step and every later one are not
  counted: the parameters stay frozen and their losses are NaN. All N steps are
  one `jax.lax.scan` in one compiled program (cached for a given `loss_fn`,
  `optimizer` and input shapes); a fresh optimizer state is built from
  `params`, which are read and never modified or donated.

  The suggestions use the smoothed losses of steps ``N // 10`` to
  ``num_valid - 1`` (fastai skips the first tenth too, while the average warms
  up), with fastai's ``lr_find`` rules:

  * `steepest`: :math:`\\eta_k` for the ``k`` minimising
    :math:`(s_{k+1}-s_k)/(\\log\\eta_{k+1}-\\log\\eta_k)`;
  * `valley`: in the longest strictly decreasing subsequence of :math:`s`,
    the rate about halfway in (index start + len/3 + len/6, fastai's
    arithmetic, which starts one step before the subsequence);
  * `minimum_div_10`: the rate of the lowest :math:`s`, divided by 10.

  They are NaN (with a warning) when fewer than two steps are left to use.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``, traceable by JAX; with
      `batches` None, `batch` is None.
    params: the starting parameters, a pytree of float arrays (for a Flax NNX
      model, the ``nnx.State`` from ``nnx.split``).
    batches: a pytree whose leaves share a leading axis of length ``N >= 2``,
      one slice per step; or None, for a loss without data (then `num_steps`
      is required).
    optimizer: called as ``optimizer(learning_rate)`` with a schedule (a
      function of the optimizer's step count), returns an optax
      ``GradientTransformation``: ``optax.sgd``, ``optax.adam``,
      ``functools.partial(optax.sgd, momentum=0.9)``. Its state starts fresh.
    min_value: the first rate, > 0.
    max_value: the last rate, > `min_value`.
    num_steps: how many steps, an integer >= 2; defaults to N, and may be
      fewer than N (the first `num_steps` batches are used).
    smoothing: the moving-average factor :math:`\\beta`, in [0, 1).
    diverge_factor: :math:`f`, > 1; or None to stop only on a non-finite loss.

  Returns:
    A `RangeTestResult`.

  Raises:
    ValueError: if `loss_fn` or `optimizer` is not callable; if `min_value`
      is not > 0 or `max_value` not > `min_value` (or either is not finite);
      if `num_steps` is not an integer >= 2, is missing with `batches` None, or
      exceeds N; if the leaves of `batches` are not arrays with one common
      leading length N >= 2; if `smoothing` is not in [0, 1); if
      `diverge_factor` is not None or a finite number > 1; if `optimizer`
      does not return a ``GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp, lrjax
    >>> loss_fn = lambda w, batch: 2.0 * jnp.sum(w ** 2)  # SGD stable below 0.5
    >>> r = lrjax.lr_range_test(loss_fn, jnp.ones(3), num_steps=100)
    >>> print(f"{r.num_valid} valid, last rate {r.rates[r.num_valid - 1]:.2f}")
    95 valid, last rate 3.94
    >>> print(f"{r.steepest:.2f} {r.valley:.1e} {r.minimum_div_10:.2f}")
    0.07 1.3e-03 0.33

  References:
    Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017
    (the range test); fastai's ``Learner.lr_find`` and its ``steep``,
    ``valley`` and ``minimum`` suggestions; ``torch-lr-finder``'s
    ``LRFinder.range_test``.
  """
  if not callable(loss_fn):
    raise ValueError(f"{_FN}: loss_fn must be callable, got {loss_fn!r}")
  if not callable(optimizer):
    raise ValueError(f"{_FN}: optimizer must be callable, got {optimizer!r}")
  min_value = _checks.check_float(
      _FN, "min_value", min_value, low=0.0, low_open=True
  )
  max_value = _checks.check_float(_FN, "max_value", max_value)
  _checks.check_order(_FN, "max_value", max_value, ">", "min_value", min_value)
  smoothing = _checks.check_float(
      _FN, "smoothing", smoothing, low=0.0, high=1.0, high_open=True
  )
  if diverge_factor is not None:
    diverge_factor = _checks.check_float(
        _FN, "diverge_factor", diverge_factor, low=1.0, low_open=True
    )
  if num_steps is not None:
    num_steps = _checks.check_int(_FN, "num_steps", num_steps, low=2)
  if batches is None:
    if num_steps is None:
      raise ValueError(f"{_FN}: num_steps must be given when batches is None")
  else:
    n = _leading_length(batches)
    if num_steps is None:
      num_steps = n
    elif num_steps > n:
      raise ValueError(
          f"{_FN}: num_steps must be <= the number of batches {n}, got "
          f"{num_steps!r}"
      )
    if num_steps < n:
      batches = jax.tree_util.tree_map(lambda x: x[:num_steps], batches)

  # The ramp in float64, then float32: the rates are the formula's, rounded.
  i = np.arange(num_steps, dtype=np.float64)
  ramp = min_value * (max_value / min_value) ** (i / (num_steps - 1))
  rates = np.asarray(ramp, np.float32)
  factor = math.inf if diverge_factor is None else diverge_factor
  losses, smoothed, ok = _scan(
      loss_fn,
      optimizer,
      params,
      batches,
      jnp.asarray(rates),
      jnp.float32(smoothing),
      jnp.float32(factor),
  )
  num_valid = int(np.sum(np.asarray(ok)))
  steepest, valley, minimum = _suggest(
      rates, np.asarray(smoothed), num_steps // 10, num_valid
  )
  return RangeTestResult(
      rates=jnp.asarray(rates),
      losses=losses,
      smoothed=smoothed,
      num_valid=num_valid,
      steepest=steepest,
      valley=valley,
      minimum_div_10=minimum,
  )


def _leading_length(batches: Any) -> int:
  leaves = jax.tree_util.tree_leaves(batches)
  if not leaves:
    raise ValueError(
        f"{_FN}: batches must be a pytree with array leaves or None, got "
        f"{batches!r}"
    )
  lengths = set()
  for leaf in leaves:
    shape = np.shape(leaf)
    if not shape:
      raise ValueError(
          f"{_FN}: batches leaves must have a leading (step) axis, got a leaf "
          f"of shape {shape}"
      )
    lengths.add(shape[0])
  if len(lengths) > 1:
    raise ValueError(
        f"{_FN}: batches leaves must share one leading length, got "
        f"{sorted(lengths)}"
    )
  (n,) = lengths
  if n < 2:
    raise ValueError(f"{_FN}: batches must hold >= 2 batches, got {n}")
  return n


def _check_transformation(opt: Any) -> optax.GradientTransformation:
  if not (callable(getattr(opt, "init", None))
          and callable(getattr(opt, "update", None))):
    raise ValueError(
        f"{_FN}: optimizer(learning_rate) must return an optax "
        f"GradientTransformation, got {opt!r}"
    )
  return opt


@functools.partial(jax.jit, static_argnums=(0, 1))
def _scan(loss_fn, optimizer, params, batches, rates, beta, factor):
  """Runs the ramp; returns per-step losses, smoothed losses, valid flags."""
  n = rates.shape[0]
  opt = _check_transformation(
      optimizer(lambda count: rates[jnp.clip(count, 0, n - 1)])
  )
  nan = jnp.float32(jnp.nan)

  def live(carry, batch, i):
    p, state, avg, best = carry[:4]
    loss, grads = jax.value_and_grad(loss_fn)(p, batch)
    loss = jnp.asarray(loss).astype(jnp.float32)
    avg_new = beta * avg + (1 - beta) * loss
    s = avg_new / (1 - beta ** (i + 1).astype(jnp.float32))
    best_new = jnp.minimum(best, s)
    limit = jnp.where(
        jnp.isinf(factor), jnp.inf, best_new + (factor - 1) * jnp.abs(best_new)
    )
    bad = ~jnp.isfinite(s) | (s > limit)
    updates, state_new = opt.update(grads, state, p)
    p_new = optax.apply_updates(p, updates)
    keep = lambda new, old: jax.tree_util.tree_map(
        lambda a, b: jnp.where(bad, b, a).astype(b.dtype), new, old
    )
    carry = (keep(p_new, p), keep(state_new, state), avg_new, best_new, bad)
    out = (jnp.where(bad, nan, loss), jnp.where(bad, nan, s), ~bad)
    return carry, out

  def dead(carry, batch, i):
    del batch, i
    return carry, (nan, nan, jnp.bool_(False))

  def body(carry, xs):
    i, batch = xs
    return jax.lax.cond(carry[4], dead, live, carry, batch, i)

  init = (
      params,
      opt.init(params),
      jnp.float32(0.0),
      jnp.float32(jnp.inf),
      jnp.bool_(False),
  )
  _, (losses, smoothed, ok) = jax.lax.scan(
      body, init, (jnp.arange(n, dtype=jnp.int32), batches)
  )
  return losses, smoothed, ok


def _suggest(
    rates: np.ndarray, smoothed: np.ndarray, start: int, stop: int
) -> tuple[float, float, float]:
  """fastai's steep, valley and minimum rules on `smoothed[start:stop]`."""
  if stop - start < 2:
    warnings.warn(
        f"{_FN}: the loss diverged after {stop} of {len(rates)} steps, too "
        f"few to suggest a rate (NaN); lower min_value or raise "
        f"diverge_factor",
        stacklevel=3,
    )
    return math.nan, math.nan, math.nan
  lr = rates[start:stop].astype(np.float64)
  s = smoothed[start:stop].astype(np.float64)
  slopes = np.diff(s) / np.diff(np.log(lr))
  steepest = float(lr[int(np.argmin(slopes))])
  minimum = float(lr[int(np.argmin(s))]) / 10
  return steepest, float(lr[_valley_index(s)]), minimum


def _valley_index(s: np.ndarray) -> int:
  """fastai's ``valley`` index on losses `s`, vectorised over the inner loop.

  ``lds[i]`` is the length of the longest strictly decreasing subsequence
  ending at ``i``; the valley is the first longest one, and the suggestion
  sits at start + len/3 + len/6 (fastai's arithmetic, with start one step
  before the subsequence's first element).
  """
  lds = np.ones(len(s), dtype=np.int64)
  start, end = 0, 0
  for i in range(1, len(s)):
    longer = lds[:i][s[:i] > s[i]]
    if longer.size:
      lds[i] = longer.max() + 1
    if lds[i] > lds[end]:
      start, end = i - int(lds[i]), i
  third = (end - start) / 3
  # max(0, .): fastai's index is -1 (the last rate) for a valley of two.
  return max(0, start + int(third) + int(third / 2))
