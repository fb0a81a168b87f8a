"""The learning-rate range test, checked on a quadratic whose gradient-descent
trajectory is known in closed form (references in float64 NumPy, written from
Smith 2017 and fastai's lr_find, never from lrjax)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

L = 4.0  # curvature: gradient descent on the quadratic is stable iff lr < 2/L
W0 = np.array([1.0, -2.0, 0.5], np.float32)
F32_MAX = float(np.finfo(np.float32).max)


def quadratic(w, batch):
  del batch
  return 0.5 * L * jnp.sum(w**2)


# --- float64 references ----------------------------------------------------


def ref_rates(lo, hi, n):
  """Smith's exponential ramp, from lo at step 0 to hi at step n - 1."""
  return lo * (hi / lo) ** (np.arange(n) / (n - 1))


def ref_quadratic_losses(rates, curvature=L, w0=W0):
  """Gradient descent, w_{i+1} = (1 - r_i L) w_i, so
  f(w_i) = f(w_0) prod_{s<i} (1 - r_s L)^2."""
  f0 = 0.5 * curvature * np.sum(np.asarray(w0, np.float64) ** 2)
  factors = (1.0 - np.asarray(rates, np.float64) * curvature) ** 2
  return f0 * np.concatenate([[1.0], np.cumprod(factors[:-1])])


def ref_smoothed(losses, beta):
  """fastai AvgSmoothLoss: avg = beta avg + (1 - beta) loss, debiased."""
  out, avg = [], 0.0
  for i, x in enumerate(losses):
    avg = beta * avg + (1 - beta) * x
    out.append(avg / (1 - beta ** (i + 1)))
  return np.array(out)


def ref_num_valid(smoothed, factor):
  """Steps before s_i > b_i + (factor - 1)|b_i|, b_i = min_{j<=i} s_j."""
  best = np.minimum.accumulate(smoothed)
  bad = ~np.isfinite(smoothed) | (smoothed > best + (factor - 1) * np.abs(best))
  return int(np.argmax(bad)) if bad.any() else len(smoothed)


def ref_steep(lrs, losses):
  """fastai steep: the left rate of the steepest segment in log rate."""
  g = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
  return lrs[np.argmin(g)]


def ref_minimum(lrs, losses):
  """fastai minimum: the rate of the lowest loss, over 10."""
  return lrs[np.argmin(losses)] / 10


def ref_valley(lrs, losses):
  """fastai valley: its double loop (longest decreasing subsequence)."""
  n = len(losses)
  lds = [1] * n
  lo, hi = 0, 0
  for i in range(1, n):
    for j in range(i):
      if losses[i] < losses[j] and lds[i] < lds[j] + 1:
        lds[i] = lds[j] + 1
      if lds[hi] < lds[i]:
        hi = i
        lo = hi - lds[hi]
  third = (hi - lo) / 3
  return lrs[lo + int(third) + int(third / 2)]


# --- the quadratic -----------------------------------------------------------

LO, HI, N = 1e-6, 1e2, 120


@functools.cache
def quadratic_run():
  return lrjax.lr_range_test(
      quadratic, jnp.asarray(W0), min_value=LO, max_value=HI, num_steps=N
  )


def test_rates_follow_the_exponential_ramp():
  r = quadratic_run()
  assert r.rates.shape == (N,) and r.rates.dtype == jnp.float32
  np.testing.assert_allclose(r.rates, ref_rates(LO, HI, N), rtol=1e-6)


def test_losses_follow_gradient_descent_in_closed_form():
  r = quadratic_run()
  k = r.num_valid
  ref = ref_quadratic_losses(np.float32(ref_rates(LO, HI, N)))
  losses, smoothed = np.asarray(r.losses), np.asarray(r.smoothed)
  assert losses.dtype == np.float32 and losses.shape == (N,)
  np.testing.assert_allclose(losses[:5], ref[:5], rtol=1e-6)
  # Over the whole valid part: near lr = 1/L the factor 1 - lr L cancels, so
  # float32's rounding of the rate costs a few 1e-6 per step.
  np.testing.assert_allclose(losses[:k], ref[:k], rtol=1e-4)
  np.testing.assert_allclose(
      smoothed[:k], ref_smoothed(ref, 0.98)[:k], rtol=1e-4
  )
  assert np.all(np.isnan(losses[k:])) and np.all(np.isnan(smoothed[k:]))


def test_divergence_is_detected_above_two_over_l():
  r = quadratic_run()
  ref = ref_quadratic_losses(np.float32(ref_rates(LO, HI, N)))
  expected = ref_num_valid(ref_smoothed(ref, 0.98), 4.0)
  assert 0 < expected < N  # the setting does diverge
  assert r.num_valid == expected
  # The loss only grows once a rate above 2/L was used, and the smoothed loss
  # of a non-increasing loss cannot rise: so the step that diverged, and the
  # one before it, ran above 2/L.
  assert float(r.rates[r.num_valid - 1]) > 2 / L


def test_suggestions_land_in_the_stable_range():
  r = quadratic_run()
  for name in ("steepest", "valley", "minimum_div_10"):
    value = getattr(r, name)
    assert isinstance(value, float)
    assert LO <= value < 2 / L, (name, value)


def test_suggestions_follow_fastai_rules():
  r = quadratic_run()
  start, stop = N // 10, r.num_valid
  lrs = ref_rates(LO, HI, N)[start:stop]
  s = np.asarray(r.smoothed, np.float64)[start:stop]
  rtol = 1e-6  # rates are float32
  np.testing.assert_allclose(r.steepest, ref_steep(lrs, s), rtol=rtol)
  np.testing.assert_allclose(r.valley, ref_valley(lrs, s), rtol=rtol)
  np.testing.assert_allclose(r.minimum_div_10, ref_minimum(lrs, s), rtol=rtol)


@pytest.mark.parametrize("plateaus", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_valley_on_a_noisy_curve(seed, plateaus):
  # A bumpy curve, whose longest decreasing subsequence skips many steps
  # (with plateaus: equal losses, which the valley must not count as lower):
  # fastai's double loop as the reference.
  rng = np.random.default_rng(seed)
  n = 60
  target = np.abs(rng.normal(size=n)).cumsum()[::-1] + rng.normal(size=n) * 3
  if plateaus:
    target = np.round(target / 4)

  def loss_fn(w, batch):
    return w * 0.0 + batch  # the loss is the batch: the curve is `target`

  r = lrjax.lr_range_test(
      loss_fn, jnp.float32(0.0), jnp.asarray(target, jnp.float32),
      smoothing=0.0, diverge_factor=None, min_value=1e-3, max_value=1.0,
  )
  assert r.num_valid == n
  lrs = ref_rates(1e-3, 1.0, n)[n // 10:]
  s = target.astype(np.float32).astype(np.float64)[n // 10:]
  np.testing.assert_allclose(r.valley, ref_valley(lrs, s), rtol=1e-6)
  np.testing.assert_allclose(r.steepest, ref_steep(lrs, s), rtol=1e-6)


def test_negative_loss_is_not_diverged_at_once():
  shift = 10.0  # the loss goes from 10.5 - 10 down to -10

  def loss_fn(w, batch):
    return quadratic(w, batch) - shift

  r = lrjax.lr_range_test(
      loss_fn, jnp.asarray(W0), min_value=LO, max_value=HI, num_steps=N
  )
  ref = ref_quadratic_losses(np.float32(ref_rates(LO, HI, N))) - shift
  expected = ref_num_valid(ref_smoothed(ref, 0.98), 4.0)
  assert np.min(ref_smoothed(ref, 0.98)[:expected]) < 0  # it went negative
  assert r.num_valid == expected
  assert float(r.rates[r.num_valid - 1]) > 2 / L


def test_no_diverge_factor_runs_until_the_loss_overflows():
  r = lrjax.lr_range_test(
      quadratic, jnp.asarray(W0), min_value=LO, max_value=1e4, num_steps=N,
      diverge_factor=None,
  )
  ref = ref_quadratic_losses(np.float32(ref_rates(LO, 1e4, N)))
  k = r.num_valid
  assert k < N
  assert ref[k - 1] < F32_MAX / 100 and ref[k] > F32_MAX  # clear of the edge
  assert np.all(np.isfinite(np.asarray(r.losses)[:k]))
  assert ref_num_valid(ref_smoothed(ref, 0.98), 4.0) < k


def test_early_divergence_warns_and_suggests_nan():
  def loss_fn(w, batch):
    del batch
    return jnp.sum(w) * jnp.nan

  with pytest.warns(UserWarning, match="lr_range_test: the loss diverged"):
    r = lrjax.lr_range_test(loss_fn, jnp.ones(2), num_steps=10)
  assert r.num_valid == 0
  assert np.isnan([r.steepest, r.valley, r.minimum_div_10]).all()


# --- the caller's state, batches, optimizers, compilation -------------------


def test_callers_params_are_untouched():
  params = {"w": jnp.asarray(W0), "b": np.array([0.25], np.float32)}
  before = jax.tree_util.tree_map(lambda x: np.array(x, copy=True), params)

  def loss_fn(p, batch):
    return quadratic(p["w"], batch) + jnp.sum(p["b"] ** 2)

  lrjax.lr_range_test(loss_fn, params, num_steps=20, max_value=1.0)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), params,
      before,
  )
  assert not params["w"].is_deleted()  # not donated


def _regression_batches(num_batches, batch_size=16, seed=0):
  rng = np.random.default_rng(seed)
  true_w = np.array([2.0, -1.0, 0.5], np.float32)
  x = rng.normal(size=(num_batches, batch_size, 3)).astype(np.float32)
  y = x @ true_w + 0.1 * rng.normal(size=(num_batches, batch_size))
  return {"x": x, "y": y.astype(np.float32)}


def _mse(params, batch):
  pred = batch["x"] @ params["w"] + params["b"]
  return jnp.mean((pred - batch["y"]) ** 2)


@pytest.mark.parametrize(
    "optimizer",
    [optax.sgd, functools.partial(optax.sgd, momentum=0.9), optax.adam],
    ids=["sgd", "momentum", "adam"],
)
def test_minibatch_regression(optimizer):
  batches = _regression_batches(80)
  params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
  r = lrjax.lr_range_test(
      _mse, params, batches, optimizer=optimizer, min_value=1e-5,
      max_value=100.0,
  )
  k = r.num_valid
  assert r.losses.shape == (80,) and 20 < k < 80  # learns, then diverges
  assert np.all(np.isfinite(np.asarray(r.losses)[:k]))
  # Step 0's loss is the mean of y**2 over the first batch (params are zero).
  np.testing.assert_allclose(
      r.losses[0], np.mean(batches["y"][0].astype(np.float64) ** 2), rtol=1e-6
  )
  for value in (r.steepest, r.valley, r.minimum_div_10):
    assert 1e-5 <= value <= 100.0


def test_num_steps_takes_the_first_batches():
  batches = _regression_batches(30)
  params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
  r = lrjax.lr_range_test(_mse, params, batches, num_steps=12, max_value=1e-3)
  assert r.losses.shape == (12,)
  np.testing.assert_allclose(r.rates[-1], 1e-3, rtol=1e-6)
  np.testing.assert_allclose(
      r.losses[0], np.mean(batches["y"][0].astype(np.float64) ** 2), rtol=1e-6
  )


def test_one_trace_per_shape():
  traces = []

  def loss_fn(w, batch):
    traces.append(1)
    return quadratic(w, batch)

  w = jnp.asarray(W0)
  lrjax.lr_range_test(loss_fn, w, num_steps=16)
  assert len(traces) == 1  # one scan, not a Python loop
  lrjax.lr_range_test(
      loss_fn, w, num_steps=16, min_value=1e-3, max_value=1.0, smoothing=0.5,
      diverge_factor=None,
  )
  assert len(traces) == 1  # numbers are arguments, not constants
  lrjax.lr_range_test(loss_fn, w, num_steps=17)
  assert len(traces) == 2


def test_result_is_a_pytree():
  r = lrjax.lr_range_test(quadratic, jnp.asarray(W0), num_steps=8)
  assert isinstance(r, lrjax.RangeTestResult)
  assert len(jax.tree_util.tree_leaves(r)) == 7


# --- argument checks ---------------------------------------------------------

_GOOD = dict(num_steps=10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(min_value=0.0), "min_value must be > 0"),
        (dict(min_value=-1e-3), "min_value must be > 0"),
        (dict(min_value=float("nan")), "min_value must be finite"),
        (dict(max_value=1e-8), "max_value must be > min_value"),
        (dict(max_value=float("inf")), "max_value must be finite"),
        (dict(num_steps=1), "num_steps must be >= 2"),
        (dict(num_steps=2.5), "num_steps must be an integer"),
        (dict(num_steps=None), "num_steps must be given"),
        (dict(smoothing=1.0), "smoothing must be < 1"),
        (dict(smoothing=-0.1), "smoothing must be >= 0"),
        (dict(diverge_factor=1.0), "diverge_factor must be > 1"),
        (dict(diverge_factor="4"), "diverge_factor must be a real number"),
        (dict(optimizer="sgd"), "optimizer must be callable"),
        (dict(optimizer=lambda lr: lr), "must return an optax"),
    ],
)
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=f"lr_range_test: .*{match}"):
    lrjax.lr_range_test(quadratic, jnp.asarray(W0), **{**_GOOD, **kwargs})


@pytest.mark.parametrize(
    "batches, kwargs, match",
    [
        ({"x": np.zeros((5, 2)), "y": np.zeros(4)}, {}, "share one leading"),
        ({"x": np.zeros((1, 2))}, {}, ">= 2 batches"),
        ({"x": np.float32(1.0)}, {}, "leading .step. axis"),
        ({}, {}, "array leaves"),
        ({"x": np.zeros((5, 2))}, dict(num_steps=6), "num_steps must be <= "),
    ],
)
def test_bad_batches(batches, kwargs, match):
  with pytest.raises(ValueError, match=f"lr_range_test: .*{match}"):
    lrjax.lr_range_test(quadratic, jnp.asarray(W0), batches, **kwargs)


def test_bad_loss_fn():
  with pytest.raises(ValueError, match="lr_range_test: loss_fn must be call"):
    lrjax.lr_range_test(None, jnp.asarray(W0), num_steps=4)
