"""cosine_decay, cosine_restarts, warmup_stable_decay and rex: checks, traced
arguments, specific properties, and PyTorch / Keras where installed."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optax

import lrjax
import reference as ref

BAD = [
    # cosine_decay
    (lambda: lrjax.cosine_decay(-0.1, decay_steps=10), "cosine_decay: peak_value must be >= 0.0"),
    (lambda: lrjax.cosine_decay(float("inf"), decay_steps=10), "cosine_decay: peak_value must be finite"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=0), "cosine_decay: decay_steps must be >= 1"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10.5), "cosine_decay: decay_steps must be an integer"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=True), "cosine_decay: decay_steps must be an integer"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=2**31), "cosine_decay: decay_steps must be <= 2147483647"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, end_value=-1e-3), "cosine_decay: end_value must be >= 0.0"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, warmup_steps=-1), "cosine_decay: warmup_steps must be >= 0"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=2**31 - 10, warmup_steps=11),
     "cosine_decay: warmup_steps + decay_steps must be <= 2147483647 (int32), got 11 + 2147483638"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, warmup_steps=2, init_value=float("nan")),
     "cosine_decay: init_value must be finite"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, warmup_steps=2, init_value=-0.01),
     "cosine_decay: init_value must be >= 0.0"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, exponent=0.0),
     "cosine_decay: exponent must be > 0.0"),
    (lambda: lrjax.cosine_decay(0.1, decay_steps=10, exponent=float("inf")),
     "cosine_decay: exponent must be finite"),
    # cosine_restarts
    (lambda: lrjax.cosine_restarts(-1.0, cycle_steps=10), "cosine_restarts: init_value must be >= 0.0"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=0), "cosine_restarts: cycle_steps must be >= 1"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=2.5), "cosine_restarts: cycle_steps must be an integer"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, t_mul=0.0), "cosine_restarts: t_mul must be >= 1.0"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, t_mul=0.5), "cosine_restarts: t_mul must be >= 1.0"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, t_mul=float("inf")), "cosine_restarts: t_mul must be finite"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, m_mul=0.0), "cosine_restarts: m_mul must be > 0.0"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, m_mul=-0.5), "cosine_restarts: m_mul must be > 0.0"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=10, end_value=-0.1), "cosine_restarts: end_value must be >= 0.0"),
    # warmup_stable_decay
    (lambda: lrjax.warmup_stable_decay(peak_value=-1.0, warmup_steps=1, stable_steps=1, decay_steps=1),
     "warmup_stable_decay: peak_value must be >= 0.0"),
    (lambda: lrjax.warmup_stable_decay(peak_value=1.0, warmup_steps=-1, stable_steps=1, decay_steps=1),
     "warmup_stable_decay: warmup_steps must be >= 0"),
    (lambda: lrjax.warmup_stable_decay(peak_value=1.0, warmup_steps=1, stable_steps=1.5, decay_steps=1),
     "warmup_stable_decay: stable_steps must be an integer"),
    (lambda: lrjax.warmup_stable_decay(peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=0),
     "warmup_stable_decay: decay_steps must be >= 1"),
    (lambda: lrjax.warmup_stable_decay(peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                       init_value=-0.5), "warmup_stable_decay: init_value must be >= 0.0"),
    (lambda: lrjax.warmup_stable_decay(peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                       end_value=float("nan")), "warmup_stable_decay: end_value must be finite"),
    (lambda: lrjax.warmup_stable_decay(peak_value=1.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                                       decay_shape="sqrt"), "warmup_stable_decay: decay_shape must be one of"),
    (lambda: lrjax.warmup_stable_decay(peak_value=1.0, warmup_steps=2**30, stable_steps=2**30,
                                       decay_steps=2**30),
     "warmup_stable_decay: warmup_steps + stable_steps + decay_steps must be <= 2147483647"),
    # rex
    (lambda: lrjax.rex(-0.1, decay_steps=10), "rex: peak_value must be >= 0.0"),
    (lambda: lrjax.rex(0.1, decay_steps=10, warmup_steps=3, init_value=-0.1),
     "rex: init_value must be >= 0.0"),
    (lambda: lrjax.rex(0.1, decay_steps=0), "rex: decay_steps must be >= 1"),
    (lambda: lrjax.rex(0.1, decay_steps=10, end_value=-1.0), "rex: end_value must be >= 0.0"),
    (lambda: lrjax.rex(0.1, decay_steps=10, warmup_steps=-2), "rex: warmup_steps must be >= 0"),
    (lambda: lrjax.rex(0.1, decay_steps=2**31 - 1, warmup_steps=1),
     "rex: warmup_steps + decay_steps must be <= 2147483647"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_value_error_naming_the_argument(make, message):
  with pytest.raises(ValueError) as e:
    make()
  assert message in str(e.value)


ODD = [
    (lambda: lrjax.cosine_decay(0.1, decay_steps=5, end_value=0.2), "rises instead of decaying"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=5, m_mul=1.5), "grows the peaks"),
    (lambda: lrjax.cosine_restarts(0.1, cycle_steps=5, end_value=0.3), "rises instead of decaying"),
    (lambda: lrjax.warmup_stable_decay(peak_value=0.1, warmup_steps=1, stable_steps=1,
                                       decay_steps=1, end_value=0.2), "rises instead of decaying"),
    (lambda: lrjax.rex(0.1, decay_steps=5, end_value=0.5), "rises instead of decaying"),
]


@pytest.mark.parametrize("make,message", ODD, ids=[m for _, m in ODD])
def test_odd_but_legal_settings_warn(make, message):
  with pytest.warns(UserWarning, match=message):
    make()


def test_one_step_decay_drops_to_end_value_one_step_after_the_warmup():
  s = lrjax.cosine_decay(0.1, warmup_steps=5, decay_steps=1, end_value=0.01,
                         init_value=0.02)
  out = np.asarray(s(jnp.arange(8)))
  expected = [0.02, 0.036, 0.052, 0.068, 0.084, 0.1, 0.01, 0.01]
  np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_decay_steps_count_after_the_warmup():
  # The vocabulary's own example: warm up 5 steps, decay 20, the end at 25.
  s = lrjax.cosine_decay(0.3, warmup_steps=5, decay_steps=20)
  np.testing.assert_allclose(s(jnp.array([0, 5, 15, 25, 26])), [0.0, 0.3, 0.15, 0.0, 0.0],
                             rtol=1e-6, atol=1e-8)
  assert float(s(24)) > 0.0
  s = lrjax.cosine_decay(0.4, warmup_steps=10, decay_steps=20, end_value=0.1)
  np.testing.assert_allclose(s(10), 0.4, rtol=1e-6)  # peak at warmup_steps
  np.testing.assert_allclose(s(20), 0.25, rtol=1e-6)  # half-way through 20 steps
  np.testing.assert_allclose(s(30), 0.1, rtol=1e-6)  # end_value at W + D
  r = lrjax.rex(0.4, warmup_steps=10, decay_steps=20, end_value=0.1)
  np.testing.assert_allclose(r(10), 0.4, rtol=1e-6)
  np.testing.assert_allclose(r(20), 0.1 + 0.3 * 0.5 / 0.75, rtol=1e-6)
  np.testing.assert_allclose(r(30), 0.1, rtol=1e-6)
  assert float(r(29)) > 0.1


def test_warmup_starts_at_init_value():
  for s in (lrjax.cosine_decay(0.4, warmup_steps=8, decay_steps=20, init_value=0.04),
            lrjax.rex(0.4, warmup_steps=8, decay_steps=20, init_value=0.04),
            lrjax.warmup_stable_decay(0.4, warmup_steps=8, stable_steps=2, decay_steps=20,
                                      init_value=0.04)):
    np.testing.assert_allclose(s(jnp.array([0, 4, 8])), [0.04, 0.22, 0.4], rtol=1e-6,
                               err_msg=repr(s))


def test_wsd_phases_follow_each_other():
  s = lrjax.warmup_stable_decay(1.0, warmup_steps=4, stable_steps=6,
                                decay_steps=16, decay_shape="1-sqrt")
  out = np.asarray(s(jnp.array([0, 2, 4, 9, 10, 14, 26, 27])))
  np.testing.assert_allclose(out, [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-7)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
def test_wsd_decay_shapes_at_a_quarter(shape):
  s = lrjax.warmup_stable_decay(0.2, warmup_steps=0, stable_steps=0,
                                decay_steps=100, end_value=0.1, decay_shape=shape)
  frac = {"linear": 0.75, "cosine": (1 + math.cos(math.pi / 4)) / 2, "1-sqrt": 0.5}[shape]
  np.testing.assert_allclose(s(25), 0.1 + 0.1 * frac, rtol=1e-6)


def test_rex_stays_above_linear_and_below_the_peak():
  s = lrjax.rex(1.0, decay_steps=1000)
  t = np.arange(1001)
  out = np.asarray(s(jnp.asarray(t)))
  linear = 1.0 - t / 1000
  assert np.all(out >= linear - 1e-7)
  assert np.all(out[1:1000] > linear[1:1000])
  assert np.all(np.diff(out) < 0)
  np.testing.assert_allclose(out[500], 2 / 3, rtol=1e-6)


def test_restart_peaks_are_init_times_m_mul_power():
  s = lrjax.cosine_restarts(1.0, cycle_steps=10, t_mul=2.0, m_mul=0.5)
  starts = [0, 10, 30, 70, 150, 310, 630]
  np.testing.assert_array_equal(s(jnp.array(starts)), [0.5**i for i in range(7)])
  # The step before each restart is the last of its cycle, not the floor.
  before = np.asarray(s(jnp.array(starts[1:]) - 1))
  lengths = np.array([10 * 2**i for i in range(6)])
  expected = 0.5 ** np.arange(6) * (1 + np.cos(np.pi * (lengths - 1) / lengths)) / 2
  np.testing.assert_allclose(before, expected, rtol=1e-5)


def _restart_steps(cycle_steps, t_mul, limit):
  """Each restart step below `limit` (the first integer at or after S_i), -1/0/+1."""
  start, length, steps = 0.0, float(cycle_steps), set()
  while start < limit:
    b = math.ceil(start)
    steps.update({b - 1, b, b + 1})
    start, length = start + length, length * t_mul
  return np.array(sorted(t for t in steps if 0 <= t < limit), np.int64)


@pytest.mark.parametrize("t_mul", [2.0, 3.0, 4.0, 7.0, 10.0])
@pytest.mark.parametrize("cycle_steps", [1, 2, 7, 12, 1000])
def test_integer_t_mul_restarts_exactly_below_2_pow_24(cycle_steps, t_mul):
  # float32 estimates the cycle from a logarithm; the correction against the
  # integer restart steps must put every step -1/0/+1 in its cycle.
  steps = _restart_steps(cycle_steps, t_mul, 2**24)
  s = lrjax.cosine_restarts(1.0, cycle_steps=cycle_steps, t_mul=t_mul)
  out = s(jnp.asarray(steps, jnp.int32))
  np.testing.assert_allclose(out, ref.sgdr(steps, 1.0, cycle_steps, t_mul),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("t_mul", [1.25, 1.5, 1.75, 2.5])
def test_fractional_t_mul_restarts_below_2_pow_17(t_mul):
  # Real restart points: exact while float32 resolves them (see the docstring).
  steps = _restart_steps(12, t_mul, 2**17)
  s = lrjax.cosine_restarts(1.0, cycle_steps=12, t_mul=t_mul)
  np.testing.assert_allclose(s(jnp.asarray(steps, jnp.int32)), ref.sgdr(steps, 1.0, 12, t_mul),
                             rtol=1e-6, atol=1e-6)


def test_cosine_end_keeps_relative_precision():
  # (1 + cos(pi z)) / 2 near z = 1 cancels in float32; the schedule does not.
  s = lrjax.cosine_decay(1.0, decay_steps=10**6)
  t = np.array([999_000, 999_990, 999_999])
  np.testing.assert_allclose(s(jnp.asarray(t)), ref.cosine_annealing(t, 1.0, 10**6),
                             rtol=1e-5)


@pytest.mark.parametrize("step", [2**32 - 1, 2**32 - 7])
def test_uint32_steps_past_int32(step):
  s = lrjax.cosine_restarts(0.1, cycle_steps=1000, m_mul=1.0)
  np.testing.assert_allclose(s(jnp.uint32(step)), ref.sgdr([step], 0.1, 1000)[0], rtol=1e-6)


def test_t_mul_one_is_exact_at_huge_int64_steps():
  steps = np.array([2**62 + 3, 2**62 + 999, 2**53 + 1, 7 * 10**17 + 5], np.int64)
  with jax.enable_x64(True):
    s = lrjax.cosine_restarts(0.1, cycle_steps=1000)
    out = np.asarray(s(jnp.asarray(steps, jnp.int64)))
  np.testing.assert_allclose(out, ref.sgdr(steps, 0.1, 1000), rtol=1e-6)


def test_traced_arguments_under_vmap_and_jit():
  values = jnp.array([0.1, 0.2, 0.4])
  out = jax.vmap(lambda v: lrjax.cosine_decay(v, decay_steps=100)(50))(values)
  np.testing.assert_allclose(out, [0.05, 0.1, 0.2], rtol=1e-6)
  steps = jnp.array([10, 30, 70], jnp.int32)  # the decays after a 10-step warmup
  out = jax.vmap(lambda d: lrjax.cosine_decay(1.0, warmup_steps=10, decay_steps=d)(30))(steps)
  np.testing.assert_allclose(
      out, [0.0, (1 + math.cos(math.pi * 20 / 30)) / 2,
            (1 + math.cos(math.pi * 20 / 70)) / 2], rtol=1e-6, atol=1e-7)
  # t_mul 1 and 2 in one batch: the uniform and geometric paths side by side.
  t = np.arange(0, 200)
  out = jax.vmap(lambda m: lrjax.cosine_restarts(0.3, cycle_steps=10, t_mul=m)(t))(
      jnp.array([1.0, 2.0]))
  np.testing.assert_allclose(out[0], ref.sgdr(t, 0.3, 10, 1), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(out[1], ref.sgdr(t, 0.3, 10, 2), rtol=1e-6, atol=1e-7)
  out = jax.vmap(lambda p, w: lrjax.warmup_stable_decay(
      peak_value=p, warmup_steps=w, stable_steps=5, decay_steps=10)(jnp.arange(30)))(
          jnp.array([1.0, 2.0]), jnp.array([0, 5]))
  np.testing.assert_allclose(out[0], ref.wsd(np.arange(30), 1.0, 0, 5, 10), atol=1e-6)
  np.testing.assert_allclose(out[1], ref.wsd(np.arange(30), 2.0, 5, 5, 10), atol=1e-6)
  f = jax.jit(lambda v, d, t: lrjax.rex(v, warmup_steps=4, decay_steps=d)(t))
  np.testing.assert_allclose(f(0.5, 20, 14), ref.rex([14], 0.5, 4 + 20, 0.0, 4)[0], rtol=1e-6)


def test_traced_arguments_skip_the_checks():
  # Concrete values are checked; inside vmap only the structure is.
  out = jax.vmap(lambda m: lrjax.cosine_restarts(1.0, cycle_steps=4, m_mul=m)(4))(
      jnp.array([0.5, 0.25]))
  np.testing.assert_allclose(out, [0.5, 0.25], rtol=1e-6)


# --- PyTorch ---------------------------------------------------------------------


def _torch_lrs(make_scheduler, base_lr, steps):
  torch = pytest.importorskip("torch")
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=base_lr)
  sched = make_scheduler(opt)
  lrs = [sched.get_last_lr()[0]]
  for _ in range(steps - 1):
    opt.step()
    sched.step()
    lrs.append(sched.get_last_lr()[0])
  return np.array(lrs)


@pytest.mark.parametrize("t_max,eta_min", [(100, 0.0), (257, 0.003)])
def test_matches_torch_cosine_annealing_lr(t_max, eta_min):
  torch = pytest.importorskip("torch")
  # PyTorch updates recursively; in float64 it stays within 1e-12 here.
  expected = _torch_lrs(
      lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=t_max, eta_min=eta_min),
      0.1, t_max + 1)
  s = lrjax.cosine_decay(0.1, decay_steps=t_max, end_value=eta_min)
  out = np.asarray(s(jnp.arange(t_max + 1)))
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6 * 0.1)


@pytest.mark.parametrize("t_0,t_mult,eta_min", [(10, 1, 0.0), (10, 2, 0.001), (7, 3, 0.0),
                                                 (1, 2, 0.0)])
def test_matches_torch_cosine_annealing_warm_restarts(t_0, t_mult, eta_min):
  torch = pytest.importorskip("torch")
  expected = _torch_lrs(
      lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
          o, T_0=t_0, T_mult=t_mult, eta_min=eta_min), 0.05, 400)
  s = lrjax.cosine_restarts(0.05, cycle_steps=t_0, t_mul=float(t_mult), end_value=eta_min)
  out = np.asarray(s(jnp.arange(400)))
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6 * 0.05)


# --- Keras -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_schedules():
  keras = pytest.importorskip("keras")
  return keras.optimizers.schedules


def _keras_values(schedule, steps):
  import keras  # pylint: disable=import-outside-toplevel
  return np.array([float(keras.ops.convert_to_numpy(schedule(int(t)))) for t in steps])


@pytest.mark.parametrize("t_mul,m_mul,alpha", [(1.0, 1.0, 0.0), (2.0, 0.5, 0.0),
                                               (2.0, 0.8, 0.1), (1.5, 0.9, 0.05)])
def test_matches_keras_cosine_decay_restarts(keras_schedules, t_mul, m_mul, alpha):
  # float64 in Keras (a float64 initial rate sets the dtype), so that its
  # log-based restart index is not the thing under test.
  k = keras_schedules.CosineDecayRestarts(np.float64(0.2), 12, t_mul=t_mul,
                                          m_mul=m_mul, alpha=alpha)
  steps = np.arange(300)
  expected = _keras_values(k, steps)
  s = lrjax.cosine_restarts(0.2, cycle_steps=12, t_mul=t_mul, m_mul=m_mul,
                            end_value=alpha * 0.2)
  np.testing.assert_allclose(s(jnp.asarray(steps)), expected, rtol=1e-6, atol=1e-6 * 0.2)


@pytest.mark.parametrize("warmup_target,warmup_steps,alpha", [(None, 0, 0.0), (None, 0, 0.2),
                                                              (0.5, 20, 0.1)])
def test_matches_keras_cosine_decay(keras_schedules, warmup_target, warmup_steps, alpha):
  init = 0.01
  target = None if warmup_target is None else np.float64(warmup_target)
  k = keras_schedules.CosineDecay(np.float64(init), 100, alpha=alpha,
                                  warmup_target=target, warmup_steps=warmup_steps)
  steps = np.arange(0, 140)
  expected = _keras_values(k, steps)
  peak = init if warmup_target is None else warmup_target
  # Keras, too, counts its decay_steps after the warmup.
  s = lrjax.cosine_decay(peak, decay_steps=100, end_value=alpha * peak,
                         warmup_steps=warmup_steps, init_value=init)
  np.testing.assert_allclose(s(jnp.asarray(steps)), expected, rtol=1e-6, atol=1e-6 * peak)


# --- optax -----------------------------------------------------------------------


@pytest.mark.parametrize("init,warmup_steps,decay_steps,end,exponent", [
    (0.0, 10, 100, 0.0, 1.0), (0.01, 25, 60, 0.002, 1.0), (0.05, 0, 40, 0.01, 1.0),
    (0.0, 10, 100, 0.0, 2.0), (0.01, 25, 60, 0.002, 0.5)])
def test_matches_optax_warmup_cosine_decay_schedule(init, warmup_steps, decay_steps, end,
                                                    exponent):
  # optax counts the warmup in its decay_steps; lrjax's decay_steps is the rest.
  o = optax.warmup_cosine_decay_schedule(init, 0.3, warmup_steps, decay_steps, end,
                                         exponent=exponent)
  steps = np.arange(decay_steps + 20)
  expected = np.array([float(o(int(t))) for t in steps])
  s = lrjax.cosine_decay(0.3, warmup_steps=warmup_steps,
                         decay_steps=decay_steps - warmup_steps, end_value=end,
                         init_value=init, exponent=exponent)
  np.testing.assert_allclose(s(jnp.asarray(steps)), expected, rtol=1e-5, atol=1e-6 * 0.3)


@pytest.mark.parametrize("alpha,exponent", [(0.0, 1.0), (0.1, 3.0), (0.0, 0.7)])
def test_matches_optax_cosine_decay_schedule(alpha, exponent):
  o = optax.cosine_decay_schedule(0.2, 80, alpha=alpha, exponent=exponent)
  steps = np.arange(100)
  expected = np.array([float(o(int(t))) for t in steps])
  s = lrjax.cosine_decay(0.2, decay_steps=80, end_value=alpha * 0.2, exponent=exponent)
  np.testing.assert_allclose(s(jnp.asarray(steps)), expected, rtol=1e-5, atol=1e-6 * 0.2)

