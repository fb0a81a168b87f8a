"""Tests specific to `lrjax._decay`: argument checks, traced hyperparameters,
exact integer boundaries, and the real PyTorch and Keras schedulers.

The generic tests (`test_schedules.py`) run every case registered in
`cases.py` against its float64 reference; this file covers what they cannot.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax
import reference as ref

NAN, INF = float("nan"), float("inf")
I32_MAX = 2**31 - 1

# --- argument checks ---------------------------------------------------------

BAD_ARGS = [
    # multistep
    (lrjax.multistep, dict(init_value=-0.1, milestones=[5], gamma=0.5),
     "multistep: init_value must be >= 0"),
    (lrjax.multistep, dict(init_value=INF, milestones=[5], gamma=0.5),
     "multistep: init_value must be finite"),
    (lrjax.multistep, dict(init_value=0.1, milestones=[5, 3], gamma=0.5),
     "multistep: milestones must be sorted"),
    (lrjax.multistep, dict(init_value=0.1, milestones=[-1, 3], gamma=0.5),
     "multistep: milestones[0] must be >= 0"),
    (lrjax.multistep, dict(init_value=0.1, milestones=[], gamma=0.5),
     "multistep: milestones must be non-empty"),
    (lrjax.multistep, dict(init_value=0.1, milestones=[2, 2.5], gamma=0.5),
     "multistep: milestones[1] must be an integer"),
    (lrjax.multistep, dict(init_value=0.1, milestones=[2**31], gamma=0.5),
     "multistep: milestones[0] must be <= 2147483647"),
    (lrjax.multistep, dict(init_value=0.1, milestones=5, gamma=0.5),
     "multistep: milestones must be a sequence"),
    (lrjax.multistep, dict(init_value=0.1, milestones=[5], gamma=-0.5),
     "multistep: gamma must be >= 0"),
    (lrjax.multistep, dict(init_value=0.1, milestones=[5], gamma=NAN),
     "multistep: gamma must be finite"),
    # piecewise_interpolate
    (lrjax.piecewise_interpolate, dict(boundaries=[5, 3], values=[1.0, 0.5, 0.1]),
     "piecewise_interpolate: boundaries must be strictly increasing"),
    (lrjax.piecewise_interpolate, dict(boundaries=[0, 5], values=[1.0, 0.5, 0.1]),
     "piecewise_interpolate: boundaries[0] must be >= 1"),
    (lrjax.piecewise_interpolate, dict(boundaries=[3, 7], values=[1.0, 0.5]),
     "piecewise_interpolate: needs len(values) == len(boundaries) + 1"),
    (lrjax.piecewise_interpolate, dict(boundaries=[3], values=[1.0, -0.5]),
     "piecewise_interpolate: values[1] must be >= 0"),
    (lrjax.piecewise_interpolate, dict(boundaries=[3], values=[1.0, 0.5], shape="cos"),
     "piecewise_interpolate: shape must be one of ('linear', 'cosine')"),
    (lrjax.piecewise_interpolate, dict(boundaries=[3], values=[1.0, 0.5], shape="1-sqrt"),
     "piecewise_interpolate: shape must be one of"),
    # piecewise_constant
    (lrjax.piecewise_constant, dict(boundaries=[5, 5], values=[1.0, 0.5, 0.1]),
     "piecewise_constant: boundaries must be strictly increasing"),
    (lrjax.piecewise_constant, dict(boundaries=[0, 5], values=[1.0, 0.5, 0.1]),
     "piecewise_constant: boundaries[0] must be >= 1"),
    (lrjax.piecewise_constant, dict(boundaries=[], values=[1.0]),
     "piecewise_constant: boundaries must be non-empty"),
    (lrjax.piecewise_constant, dict(boundaries=[3, 7], values=[1.0, 0.5]),
     "piecewise_constant: needs len(values) == len(boundaries) + 1"),
    (lrjax.piecewise_constant, dict(boundaries=[3], values=[1.0, 0.5, 0.1]),
     "piecewise_constant: needs len(values) == len(boundaries) + 1"),
    (lrjax.piecewise_constant, dict(boundaries=[3], values=[1.0, -0.5]),
     "piecewise_constant: values[1] must be >= 0"),
    (lrjax.piecewise_constant, dict(boundaries=[3], values=[NAN, 0.5]),
     "piecewise_constant: values[0] must be finite"),
    (lrjax.piecewise_constant, dict(boundaries=[3], values=0.5),
     "piecewise_constant: values must be a sequence"),
    (lrjax.piecewise_constant, dict(boundaries=[3], values=["a", 0.5]),
     "piecewise_constant: values[0] must be a real number"),
    # exponential_decay
    (lrjax.exponential_decay, dict(init_value=-1.0, decay_steps=10, decay_rate=0.5),
     "exponential_decay: init_value must be >= 0"),
    (lrjax.exponential_decay, dict(init_value=0.1, decay_steps=0, decay_rate=0.5),
     "exponential_decay: decay_steps must be >= 1"),
    (lrjax.exponential_decay, dict(init_value=0.1, decay_steps=-3, decay_rate=0.5),
     "exponential_decay: decay_steps must be >= 1"),
    (lrjax.exponential_decay, dict(init_value=0.1, decay_steps=1.5, decay_rate=0.5),
     "exponential_decay: decay_steps must be an integer"),
    (lrjax.exponential_decay, dict(init_value=0.1, decay_steps=2**31, decay_rate=0.5),
     "exponential_decay: decay_steps must be <= 2147483647"),
    (lrjax.exponential_decay, dict(init_value=0.1, decay_steps=10, decay_rate=0.0),
     "exponential_decay: decay_rate must be > 0"),
    (lrjax.exponential_decay, dict(init_value=0.1, decay_steps=10, decay_rate=-0.5),
     "exponential_decay: decay_rate must be > 0"),
    (lrjax.exponential_decay, dict(init_value=0.1, decay_steps=10, decay_rate=NAN),
     "exponential_decay: decay_rate must be finite"),
    (lrjax.exponential_decay,
     dict(init_value=0.1, decay_steps=10, decay_rate=0.5, staircase="yes"),
     "exponential_decay: staircase must be a bool"),
    (lrjax.exponential_decay,
     dict(init_value=0.1, decay_steps=10, decay_rate=0.5, end_value=-0.01),
     "exponential_decay: end_value must be >= 0"),
    (lrjax.exponential_decay,
     dict(init_value=0.1, decay_steps=10, decay_rate=0.5, end_value=INF),
     "exponential_decay: end_value must be finite"),
    (lrjax.exponential_decay,
     dict(init_value=0.1, decay_steps=10, decay_rate=0.5, end_value=0.2),
     "exponential_decay: end_value must be <= init_value when decay_rate < 1"),
    (lrjax.exponential_decay,
     dict(init_value=0.1, decay_steps=10, decay_rate=1.5, end_value=0.05),
     "exponential_decay: end_value must be >= init_value when decay_rate > 1"),
    # inverse_time_decay
    (lrjax.inverse_time_decay, dict(init_value=-0.1, decay_steps=10, decay_rate=0.5),
     "inverse_time_decay: init_value must be >= 0"),
    (lrjax.inverse_time_decay, dict(init_value=0.1, decay_steps=0, decay_rate=0.5),
     "inverse_time_decay: decay_steps must be >= 1"),
    (lrjax.inverse_time_decay, dict(init_value=0.1, decay_steps=10, decay_rate=-0.5),
     "inverse_time_decay: decay_rate must be >= 0"),
    (lrjax.inverse_time_decay, dict(init_value=0.1, decay_steps=10, decay_rate=INF),
     "inverse_time_decay: decay_rate must be finite"),
    (lrjax.inverse_time_decay,
     dict(init_value=0.1, decay_steps=10, decay_rate=0.5, staircase=1),
     "inverse_time_decay: staircase must be a bool"),
    # polynomial_decay
    (lrjax.polynomial_decay, dict(init_value=NAN, decay_steps=10),
     "polynomial_decay: init_value must be finite"),
    (lrjax.polynomial_decay, dict(init_value=0.1, decay_steps=0),
     "polynomial_decay: decay_steps must be >= 1"),
    (lrjax.polynomial_decay, dict(init_value=0.1, decay_steps=10.5),
     "polynomial_decay: decay_steps must be an integer"),
    (lrjax.polynomial_decay, dict(init_value=0.1, decay_steps=10, end_value=-0.1),
     "polynomial_decay: end_value must be >= 0"),
    (lrjax.polynomial_decay, dict(init_value=0.1, decay_steps=10, power=0.0),
     "polynomial_decay: power must be > 0"),
    (lrjax.polynomial_decay, dict(init_value=0.1, decay_steps=10, power=-1.0),
     "polynomial_decay: power must be > 0"),
    (lrjax.polynomial_decay, dict(init_value=0.1, decay_steps=10, power=INF),
     "polynomial_decay: power must be finite"),
    (lrjax.polynomial_decay, dict(init_value=0.1, decay_steps=10, cycle="no"),
     "polynomial_decay: cycle must be a bool"),
    # linear
    (lrjax.linear, dict(init_value=-0.1, end_value=0.0, steps=10),
     "linear: init_value must be >= 0"),
    (lrjax.linear, dict(init_value=0.1, end_value=NAN, steps=10),
     "linear: end_value must be finite"),
    (lrjax.linear, dict(init_value=0.1, end_value=-1.0, steps=10),
     "linear: end_value must be >= 0"),
    (lrjax.linear, dict(init_value=0.1, end_value=0.0, steps=0),
     "linear: steps must be >= 1"),
    (lrjax.linear, dict(init_value=0.1, end_value=0.0, steps=True),
     "linear: steps must be an integer"),
    # inverse_sqrt
    (lrjax.inverse_sqrt, dict(peak_value=-0.1),
     "inverse_sqrt: peak_value must be >= 0"),
    (lrjax.inverse_sqrt, dict(peak_value=0.1, warmup_steps=-1),
     "inverse_sqrt: warmup_steps must be >= 0"),
    (lrjax.inverse_sqrt, dict(peak_value=0.1, warmup_steps=2.5),
     "inverse_sqrt: warmup_steps must be an integer"),
    (lrjax.inverse_sqrt, dict(peak_value=0.1, warmup_steps=4, init_value=NAN),
     "inverse_sqrt: init_value must be finite"),
]


@pytest.mark.parametrize(
    "fn, kwargs, message", BAD_ARGS,
    ids=[f"{f.__name__}-{m.split(': ')[1]}" for f, _, m in BAD_ARGS])
def test_bad_arguments_raise(fn, kwargs, message):
  with pytest.raises(ValueError) as info:
    fn(**kwargs)
  assert message in str(info.value)


def test_growth_without_ceiling_warns_and_grows():
  with pytest.warns(UserWarning, match="exponential_decay: decay_rate=1.1 > 1"):
    s = lrjax.exponential_decay(0.01, decay_steps=10, decay_rate=1.1)
  np.testing.assert_allclose(s(100), 0.01 * 1.1**10, rtol=1e-6)
  with pytest.warns(UserWarning, match="step_decay: gamma=1.5 > 1 grows the rate"):
    s = lrjax.step_decay(0.01, step_size=10, gamma=1.5)
  np.testing.assert_allclose(s(100), 0.01 * 1.5**10, rtol=1e-6)
  assert np.isinf(s(10**5))  # as the warning says: 1.5**10**4 overflows


def test_a_growth_factor_of_one_or_a_ceiling_does_not_warn():
  # filterwarnings = error: any warning here fails the test.
  lrjax.step_decay(0.1, step_size=10, gamma=1.0)
  lrjax.exponential_decay(0.01, decay_steps=10, decay_rate=1.1, end_value=0.1)
  lrjax.multistep(0.01, milestones=[3], gamma=1.5)  # a finite number of steps


# --- traced hyperparameters ----------------------------------------------------

STEPS = np.arange(45, dtype=np.int64)


def _vmapped(build, *columns):
  """Builds a schedule inside `jax.vmap` (traced arguments) and evaluates it."""
  steps = jnp.asarray(STEPS, jnp.int32)
  cols = [jnp.asarray(c) for c in columns]
  return np.asarray(jax.vmap(lambda *a: build(*a)(steps))(*cols))


def _assert_rows(out, refs):
  assert out.dtype == np.float32
  assert out.shape == (len(refs), STEPS.size)
  for row, expected in zip(out, refs):
    np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-9)


def test_traced_multistep():
  gammas = np.array([0.5, 0.1, 2.0], np.float32)
  milestones = np.array([[3, 9], [0, 40], [10, 10]], np.int32)
  out = _vmapped(lambda g, m: lrjax.multistep(0.2, milestones=m, gamma=g),
                 gammas, milestones)
  _assert_rows(out, [ref.multistep_lr(STEPS, 0.2, list(m), float(g))
                     for g, m in zip(gammas, milestones)])


def test_traced_piecewise_constant():
  bounds = np.array([[1, 2], [5, 30], [20, 21]], np.int32)
  values = np.array([[0.3, 0.2, 0.1], [0.0, 1.0, 0.5], [0.4, 0.04, 0.004]],
                    np.float32)
  out = _vmapped(lambda b, v: lrjax.piecewise_constant(boundaries=b, values=v),
                 bounds, values)
  _assert_rows(out, [ref.piecewise_constant(STEPS, list(b), v.astype(np.float64))
                     for b, v in zip(bounds, values)])


@pytest.mark.parametrize("staircase", [False, True])
def test_traced_exponential_decay(staircase):
  # Row 0 decays to a floor, row 1 grows to a ceiling, row 2 is constant: the
  # clip direction is chosen from the traced decay_rate.
  inits = np.array([0.1, 0.01, 0.2], np.float32)
  steps_ = np.array([4, 3, 7], np.int32)
  rates = np.array([0.5, 1.5, 1.0], np.float32)
  ends = np.array([0.02, 0.05, 0.1], np.float32)
  out = _vmapped(
      lambda i, d, r, e: lrjax.exponential_decay(
          i, decay_steps=d, decay_rate=r, staircase=staircase, end_value=e),
      inits, steps_, rates, ends)
  _assert_rows(out, [
      ref.exponential_decay(STEPS, float(i), int(d), float(r), staircase, float(e))
      for i, d, r, e in zip(inits, steps_, rates, ends)])


@pytest.mark.parametrize("staircase", [False, True])
def test_traced_inverse_time_decay(staircase):
  steps_ = np.array([1, 4, 10], np.int32)
  rates = np.array([0.5, 0.0, 3.0], np.float32)
  out = _vmapped(
      lambda d, r: lrjax.inverse_time_decay(0.1, decay_steps=d, decay_rate=r,
                                            staircase=staircase),
      steps_, rates)
  _assert_rows(out, [ref.inverse_time_decay(STEPS, 0.1, int(d), float(r), staircase)
                     for d, r in zip(steps_, rates)])


@pytest.mark.parametrize("cycle", [False, True])
def test_traced_polynomial_decay(cycle):
  steps_ = np.array([7, 20, 1], np.int32)
  ends = np.array([0.01, 0.0, 0.05], np.float32)
  powers = np.array([0.5, 2.0, 1.0], np.float32)
  out = _vmapped(
      lambda d, e, p: lrjax.polynomial_decay(0.1, decay_steps=d, end_value=e,
                                             power=p, cycle=cycle),
      steps_, ends, powers)
  _assert_rows(out, [ref.polynomial_decay(STEPS, 0.1, int(d), float(e), float(p),
                                          cycle)
                     for d, e, p in zip(steps_, ends, powers)])


def test_traced_linear():
  inits = np.array([0.1, 0.0, 0.3], np.float32)
  ends = np.array([0.01, 0.3, 0.3], np.float32)
  steps_ = np.array([20, 7, 1], np.int32)
  out = _vmapped(lambda i, e, n: lrjax.linear(i, end_value=e, steps=n),
                 inits, ends, steps_)
  _assert_rows(out, [ref.linear_lr(STEPS, 1.0, float(i), float(e), int(n))
                     for i, e, n in zip(inits, ends, steps_)])


def test_traced_inverse_sqrt():
  # warmup_steps 0 (the d2l formula) and > 0 (fairseq) in one traced batch.
  inits = np.array([0.1, 0.2, 0.3], np.float32)
  warmups = np.array([0, 1, 16], np.int32)
  starts = np.array([0.0, 0.05, 0.01], np.float32)
  out = _vmapped(lambda i, w, v: lrjax.inverse_sqrt(i, warmup_steps=w, init_value=v),
                 inits, warmups, starts)
  _assert_rows(out, [ref.inverse_sqrt(STEPS, float(i), int(w), float(v))
                     for i, w, v in zip(inits, warmups, starts)])


# --- specific behaviour ----------------------------------------------------------


def test_repeated_milestones_compound():
  s = lrjax.multistep(1.0, milestones=[10, 10], gamma=0.5)
  np.testing.assert_array_equal(s(jnp.array([0, 9, 10, 11, 1000])),
                                np.array([1.0, 1.0, 0.25, 0.25, 0.25], np.float32))


@pytest.mark.parametrize("gamma", [0.5, 0.9375, 1.0])  # exact in float32
def test_exponential_decay_one_step_is_init_times_gamma_to_the_t(gamma):
  t = np.arange(100)  # 0.1 * 0.5 ** 100 is still a normal float32
  s = lrjax.exponential_decay(0.1, decay_steps=1, decay_rate=gamma)
  np.testing.assert_allclose(s(jnp.asarray(t)), 0.1 * gamma ** t.astype(np.float64),
                             rtol=1e-6)


def test_exponential_decay_rate_is_held_in_float32():
  # 0.9 is not a float32: the schedule decays by float32(0.9), which is 2.6e-8
  # relative below 0.9, so after t steps it is about t * 2.6e-8 below 0.9 ** t
  # (as documented), and within float32 rounding of float32(0.9) ** t.
  t = np.arange(200)
  out = np.asarray(lrjax.exponential_decay(0.1, decay_steps=1, decay_rate=0.9)(t),
                   np.float64)
  g32 = float(np.float32(0.9))
  np.testing.assert_allclose(out, float(np.float32(0.1)) * g32**t, rtol=1e-6)
  drift = 1.0 - out / (0.1 * 0.9**t)
  bound = t * (0.9 - g32) / 0.9
  assert np.all(np.abs(drift - bound) < 1e-6)


def test_exponential_decay_end_value_is_a_floor_and_a_ceiling():
  t = np.arange(200)
  # 0.1 * 0.5 ** (t / 10) passes 0.01 between step 33 and 34.
  down = np.asarray(lrjax.exponential_decay(
      0.1, decay_steps=10, decay_rate=0.5, end_value=0.01)(t))
  assert np.all(down[:34] > np.float32(0.01))
  assert np.all(down[34:] == np.float32(0.01))
  # 0.01 * 1.1 ** (t / 5) passes 0.05 between step 84 and 85.
  up = np.asarray(lrjax.exponential_decay(
      0.01, decay_steps=5, decay_rate=1.1, end_value=0.05)(t))
  assert np.all(up[:85] < np.float32(0.05))
  assert np.all(up[85:] == np.float32(0.05))
  # A ceiling keeps a growing rate finite at any step.
  assert float(lrjax.exponential_decay(
      0.01, decay_steps=5, decay_rate=1.1, end_value=0.05)(I32_MAX)) == np.float32(0.05)
  assert float(lrjax.exponential_decay(
      0.0, decay_steps=1, decay_rate=1.1, end_value=0.05)(I32_MAX)) == 0.0


@pytest.mark.parametrize("step", [0, np.int32(0), np.uint32(0), np.float32(0.0)])
def test_polynomial_cycle_at_step_zero_is_init(step):
  s = lrjax.polynomial_decay(0.1, decay_steps=10, end_value=0.01, power=2.0,
                             cycle=True)
  for out in (s(step), jax.jit(lambda s, t: s(t))(s, step)):
    assert np.isfinite(out)
    np.testing.assert_allclose(out, 0.1, rtol=1e-7)


def test_polynomial_cycle_reaches_end_then_jumps():
  s = lrjax.polynomial_decay(0.1, decay_steps=10, end_value=0.01, power=2.0,
                             cycle=True)
  np.testing.assert_allclose(s(jnp.array([10, 20])), [0.01, 0.01], rtol=1e-7)
  # Step 11: horizon 20, 1 - 11/20 = 9/20.
  np.testing.assert_allclose(s(11), 0.09 * (9 / 20) ** 2 + 0.01, rtol=1e-6)


def test_inverse_sqrt_warmup_starts_at_init_value_and_peaks_at_warmup():
  s = lrjax.inverse_sqrt(0.5, warmup_steps=100)
  np.testing.assert_array_equal(s(jnp.array([0, 100])), np.float32([0.0, 0.5]))
  np.testing.assert_allclose(s(50), 0.25, rtol=1e-7)
  np.testing.assert_allclose(s(400), 0.5 * math.sqrt(100 / 400), rtol=1e-7)
  s = lrjax.inverse_sqrt(0.5, warmup_steps=100, init_value=0.1)
  np.testing.assert_allclose(s(jnp.array([0, 50, 100])), [0.1, 0.3, 0.5], rtol=1e-6)
  # Without warmup, step 0 is peak_value (d2l's (t + 1) ** -0.5).
  np.testing.assert_allclose(lrjax.inverse_sqrt(0.5)(0), 0.5, rtol=1e-7)


BIG = 2**24 + 1  # the first integer float32 cannot hold


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint32])
def test_integer_boundaries_are_exact_beyond_float32(dtype):
  t = jnp.asarray([BIG - 1, BIG, BIG + 1], dtype)
  np.testing.assert_array_equal(
      lrjax.multistep(1.0, milestones=[BIG], gamma=0.5)(t), np.float32([1, 0.5, 0.5]))
  np.testing.assert_array_equal(
      lrjax.piecewise_constant(boundaries=[BIG], values=[0.3, 0.1])(t),
      np.float32([0.3, 0.1, 0.1]))
  np.testing.assert_array_equal(
      lrjax.exponential_decay(1.0, decay_steps=BIG, decay_rate=0.5,
                              staircase=True)(t), np.float32([1, 0.5, 0.5]))
  np.testing.assert_array_equal(
      lrjax.inverse_time_decay(1.0, decay_steps=BIG, decay_rate=1.0,
                               staircase=True)(t), np.float32([1, 0.5, 0.5]))
  cyc = np.asarray(lrjax.polynomial_decay(0.1, decay_steps=BIG, end_value=0.01,
                                          cycle=True)(t))
  assert cyc[1] == np.float32(0.01)  # exactly at the end of the first period
  assert cyc[0] > np.float32(0.01) and cyc[2] > np.float32(0.01)
  np.testing.assert_allclose(cyc, ref.polynomial_decay(
      np.asarray(t, np.int64), 0.1, BIG, 0.01, 1.0, cycle=True), rtol=1e-6)


# --- the real PyTorch schedulers -------------------------------------------------

N_TORCH = 60

TORCH_PAIRS = [
    ("StepLR", 0.1, lambda S, o: S.StepLR(o, step_size=7, gamma=0.5),
     lambda: lrjax.step_decay(0.1, step_size=7, gamma=0.5)),
    ("MultiStepLR", 0.05, lambda S, o: S.MultiStepLR(o, milestones=[10, 30], gamma=0.1),
     lambda: lrjax.multistep(0.05, milestones=[10, 30], gamma=0.1)),
    ("MultiStepLR_repeated", 0.4,
     lambda S, o: S.MultiStepLR(o, milestones=[0, 10, 10, 25], gamma=0.5),
     lambda: lrjax.multistep(0.4, milestones=[0, 10, 10, 25], gamma=0.5)),
    # gamma exact in float32 (see test_exponential_decay_rate_is_held_in_float32)
    ("ExponentialLR", 0.1, lambda S, o: S.ExponentialLR(o, gamma=0.9375),
     lambda: lrjax.exponential_decay(0.1, decay_steps=1, decay_rate=0.9375)),
    ("PolynomialLR", 0.05, lambda S, o: S.PolynomialLR(o, total_iters=50, power=0.9),
     lambda: lrjax.polynomial_decay(0.05, decay_steps=50, power=0.9)),
    ("PolynomialLR_power2", 0.3,
     lambda S, o: S.PolynomialLR(o, total_iters=20, power=2.0),
     lambda: lrjax.polynomial_decay(0.3, decay_steps=20, power=2.0)),
    ("LinearLR_warmup", 0.05,
     lambda S, o: S.LinearLR(o, start_factor=1 / 3, end_factor=1.0, total_iters=5),
     lambda: lrjax.linear(0.05 / 3, end_value=0.05, steps=5)),
    ("LinearLR_decay", 0.2,
     lambda S, o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=30),
     lambda: lrjax.linear(0.2, end_value=0.02, steps=30)),
]


@pytest.mark.parametrize("name, base_lr, make_torch, make_lrjax", TORCH_PAIRS,
                         ids=[p[0] for p in TORCH_PAIRS])
def test_matches_torch_scheduler(name, base_lr, make_torch, make_lrjax):
  del name
  torch = pytest.importorskip("torch")
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=base_lr)
  sched = make_torch(torch.optim.lr_scheduler, opt)
  expected = []
  for _ in range(N_TORCH):
    expected.append(sched.get_last_lr()[0])
    opt.step()
    sched.step()
  out = make_lrjax()(jnp.arange(N_TORCH))
  np.testing.assert_allclose(out, np.array(expected), rtol=1e-6, atol=1e-12)


# --- the real Keras schedules ------------------------------------------------------


@pytest.fixture(scope="module")
def keras_schedules():
  os.environ.setdefault("KERAS_BACKEND", "tensorflow")
  keras = pytest.importorskip("keras")
  return keras


KERAS_STEPS = np.concatenate([np.arange(61), [99, 100, 101, 999, 1000, 12345]])

KERAS_PAIRS = [
    ("ExponentialDecay", lambda K: K.ExponentialDecay(
        np.float64(0.1), decay_steps=10, decay_rate=0.96),
     lambda: lrjax.exponential_decay(0.1, decay_steps=10, decay_rate=0.96)),
    ("ExponentialDecay_staircase", lambda K: K.ExponentialDecay(
        np.float64(0.1), decay_steps=7, decay_rate=0.5, staircase=True),
     lambda: lrjax.exponential_decay(0.1, decay_steps=7, decay_rate=0.5,
                                     staircase=True)),
    ("InverseTimeDecay", lambda K: K.InverseTimeDecay(
        np.float64(0.1), decay_steps=10, decay_rate=0.5),
     lambda: lrjax.inverse_time_decay(0.1, decay_steps=10, decay_rate=0.5)),
    ("InverseTimeDecay_staircase", lambda K: K.InverseTimeDecay(
        np.float64(0.2), decay_steps=3, decay_rate=2.0, staircase=True),
     lambda: lrjax.inverse_time_decay(0.2, decay_steps=3, decay_rate=2.0,
                                      staircase=True)),
    ("PolynomialDecay", lambda K: K.PolynomialDecay(
        np.float64(0.1), decay_steps=50, end_learning_rate=0.001, power=1.0),
     lambda: lrjax.polynomial_decay(0.1, decay_steps=50, end_value=0.001)),
    ("PolynomialDecay_power", lambda K: K.PolynomialDecay(
        np.float64(0.1), decay_steps=30, end_learning_rate=0.01, power=2.5),
     lambda: lrjax.polynomial_decay(0.1, decay_steps=30, end_value=0.01, power=2.5)),
    ("PolynomialDecay_cycle", lambda K: K.PolynomialDecay(
        np.float64(0.1), decay_steps=7, end_learning_rate=0.01, power=0.5,
        cycle=True),
     lambda: lrjax.polynomial_decay(0.1, decay_steps=7, end_value=0.01, power=0.5,
                                    cycle=True)),
]


@pytest.mark.parametrize("name, make_keras, make_lrjax", KERAS_PAIRS,
                         ids=[p[0] for p in KERAS_PAIRS])
def test_matches_keras_schedule(keras_schedules, name, make_keras, make_lrjax):
  del name
  keras = keras_schedules
  # A float64 initial rate makes Keras compute in float64: a true reference.
  schedule = make_keras(keras.optimizers.schedules)
  expected = keras.ops.convert_to_numpy(schedule(KERAS_STEPS.astype(np.float64)))
  assert expected.dtype == np.float64
  out = make_lrjax()(jnp.asarray(KERAS_STEPS, jnp.int32))
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-12)


# --- optax ---------------------------------------------------------------------


def _optax_values(schedule, steps):
  return np.array([float(schedule(int(t))) for t in steps])


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_matches_optax_piecewise_interpolate_schedule(kind):
  optax = pytest.importorskip("optax")
  scales = {10: 0.5, 25: 4.0, 60: 0.01}
  o = optax.piecewise_interpolate_schedule(kind, 0.2, scales)
  steps = np.arange(80)
  # optax multiplies the scales up: the absolute values are their products.
  s = lrjax.piecewise_interpolate(boundaries=[10, 25, 60],
                                  values=[0.2, 0.2 * 0.5, 0.2 * 0.5 * 4.0,
                                          0.2 * 0.5 * 4.0 * 0.01], shape=kind)
  np.testing.assert_allclose(s(jnp.asarray(steps)), _optax_values(o, steps), rtol=1e-5,
                             atol=1e-7)


def test_matches_optax_linear_onecycle_schedule():
  optax = pytest.importorskip("optax")
  total, peak, pct_start, pct_final, div, final_div = 200, 0.3, 0.25, 0.9, 10.0, 100.0
  o = optax.linear_onecycle_schedule(total, peak, pct_start, pct_final, div, final_div)
  s = lrjax.piecewise_interpolate(
      boundaries=[int(pct_start * total), int(pct_final * total), total],
      values=[peak / div, peak, peak / div, peak / div / final_div])
  steps = np.arange(total + 20)
  np.testing.assert_allclose(s(jnp.asarray(steps)), _optax_values(o, steps), rtol=1e-5,
                             atol=1e-8)



@pytest.mark.parametrize("begin,staircase,end", [(0, False, None), (15, True, 0.01)])
def test_matches_optax_warmup_exponential_decay_schedule(begin, staircase, end):
  optax = pytest.importorskip("optax")
  o = optax.warmup_exponential_decay_schedule(0.01, 0.2, 10, 8, 0.5, transition_begin=begin,
                                              staircase=staircase, end_value=end)
  decay = lrjax.exponential_decay(0.2, decay_steps=8, decay_rate=0.5, staircase=staircase,
                                  end_value=end)
  if begin:  # optax holds the peak for transition_begin steps
    decay = lrjax.sequence([lrjax.constant(0.2), decay], boundaries=[begin])
  s = lrjax.warmup(decay, steps=10, init_value=0.01)
  steps = np.arange(120)
  np.testing.assert_allclose(s(jnp.asarray(steps)), _optax_values(o, steps), rtol=1e-5,
                             atol=1e-8)
