"""`lrjax.cooldown`: continuity at its start, each shape against float64 and
Hugging Face's WSD decay, K starts stacked under `jax.vmap`, one trace for K
cooldowns (in a jitted function and swapped into an optimizer state), bad
input. The generic tests (tests/test_schedules.py) run its registry cases."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
import reference as ref

SHAPES = ("linear", "cosine", "1-sqrt")

# One jitted evaluator: it compiles once per schedule structure and step shape.
_jit_eval = jax.jit(lambda s, t: s(t))


def _ulps(a, b):
  """The distance between float32 values in units in the last place."""
  a = np.asarray(a, np.float32).astype(np.float64)
  b = np.asarray(b, np.float32).astype(np.float64)
  return np.abs(a - b) / np.spacing(np.maximum(np.abs(a), np.abs(b)).astype(np.float32))


# Wrapped schedules of every kind, each with starts of every kind: step 0, a
# boundary of its own and the steps next to it, between boundaries, its end
# and far past it.
WRAPPED = {
    "constant": (lambda: lrjax.constant(0.3), [0, 1, 100]),
    "multistep": (lambda: lrjax.multistep(0.1, milestones=[30, 60], gamma=0.1),
                  [0, 29, 30, 31, 45, 59, 60, 61, 10**6]),
    "wsd": (lambda: lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=1000,
                                              decay_steps=100, init_value=0.01,
                                              decay_shape="1-sqrt"),
            [0, 5, 9, 10, 11, 500, 1009, 1010, 1011, 1050, 1109, 1110, 10**6]),
    "cosine": (lambda: lrjax.cosine_decay(0.2, warmup_steps=5, decay_steps=100,
                                          end_value=1e-4),
               [0, 4, 5, 6, 37, 104, 105, 106, 10**5]),
    "one_cycle": (lambda: lrjax.one_cycle(peak_value=0.3, total_steps=200),
                  [0, 59, 60, 61, 150, 199, 5000]),
    "cyclic": (lambda: lrjax.cyclic(base_value=0.01, max_value=0.1, step_size_up=7,
                                    step_size_down=5, mode="triangular2"),
               [0, 3, 7, 12, 13, 99]),
    "exponential": (lambda: lrjax.exponential_decay(0.1, decay_steps=7, decay_rate=0.9),
                    [0, 3, 70, 7001]),
    "warmup": (lambda: lrjax.warmup(lrjax.tanh_decay(0.2, decay_steps=50), steps=8),
               [0, 4, 8, 9, 40, 58, 300]),
    "noise": (lambda: lrjax.with_noise(lrjax.constant(0.1), seed=3, begin_step=10),
              [0, 9, 10, 11, 777]),
    "cooldown": (lambda: lrjax.cooldown(lrjax.constant(0.3), start=20, decay_steps=40,
                                        shape="cosine", end_value=0.003),
                 [0, 19, 20, 21, 33, 59, 60, 61, 4000]),
}
CONTINUITY = [(kind, start) for kind, (_, starts) in WRAPPED.items() for start in starts]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind,start", CONTINUITY)
def test_continuous_at_start_to_two_ulp(kind, start, shape):
  """cooldown(s, start=S)(S) is s(S), whatever end_value: 0, just below the
  rate at S, equal to it, and far above it (where `end + (v0 - end) f`
  would lose v0 to cancellation)."""
  sched = WRAPPED[kind][0]()
  v0 = float(sched(start))
  steps = np.arange(max(start - 3, 0), start + 4)
  before = np.asarray(sched(steps))
  for end_value in (0.0, v0 * (1 - 2**-20), v0, 1.0, 5.0 + 1000 * v0):
    c = lrjax.cooldown(sched, start=start, decay_steps=50, end_value=end_value,
                       shape=shape)
    assert _ulps(c(start), v0) <= 2, (end_value, float(c(start)), v0)
    # In a vector of steps, jitted, and at the steps before it.
    out = np.asarray(_jit_eval(c, steps))
    at = steps <= start
    assert np.all(_ulps(out[at], before[at]) <= 2), (end_value, out, before)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_shape_matches_float64_at_every_step(shape):
  """Every step of the decay, from a rate between two milestones, to an end
  value above zero."""
  base = lambda u: ref.multistep_lr(u, 0.2, [40, 90], 0.5)
  sched = lrjax.cooldown(lrjax.multistep(0.2, milestones=[40, 90], gamma=0.5),
                         start=55, decay_steps=37, end_value=0.004, shape=shape)
  t = np.arange(0, 120)
  expected = ref.cooldown(t, base, 55, 37, end=0.004, shape=shape)
  np.testing.assert_allclose(sched(t), expected, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(float(sched(55)), 0.1, rtol=1e-7)  # the rate in effect
  assert float(sched(55 + 37)) == np.float32(0.004)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ratio", [0.0, 0.1])
def test_a_cooldown_of_a_constant_is_hugging_face_wsd(shape, ratio):
  """transformers' get_wsd_schedule(num_warmup_steps=0, num_stable_steps=S,
  num_decay_steps=D, decay_type=shape, min_lr_ratio=r) times lr."""
  lr, stable, decay = 0.3, 120, 45
  sched = lrjax.cooldown(lrjax.constant(lr), start=stable, decay_steps=decay,
                         end_value=ratio * lr, shape=shape)
  t = np.arange(0, 200)
  expected = ref.hf_wsd(t, lr, 0, stable, decay, decay_type=shape, min_lr_ratio=ratio)
  np.testing.assert_allclose(sched(t), expected, rtol=1e-6, atol=1e-9)


def test_the_shapes_differ_where_they_should():
  """Half way down, linear is at 1/2, cosine at 1/2, 1-sqrt at 1 - sqrt(1/2);
  a quarter of the way, cosine is above linear (the cases exercise three
  different curves)."""
  at = {s: lrjax.cooldown(lrjax.constant(1.0), start=0, decay_steps=100, shape=s)
        for s in SHAPES}
  np.testing.assert_allclose([float(at[s](50)) for s in SHAPES],
                             [0.5, 0.5, 1 - np.sqrt(0.5)], rtol=1e-6)
  np.testing.assert_allclose([float(at[s](25)) for s in SHAPES],
                             [0.75, (1 + np.cos(np.pi / 4)) / 2, 0.5], rtol=1e-6)


def test_starts_stack_and_sweep_under_vmap():
  """K cooldowns of one schedule at different starts (at, before and past a
  milestone, and at 0), lengths and end values: one stacked schedule, all K
  evaluated at once under jax.vmap, each row its float64 reference."""
  base = lrjax.multistep(0.1, milestones=[30, 60], gamma=0.1)
  base_ref = lambda u: ref.multistep_lr(u, 0.1, [30, 60], 0.1)
  settings = [(0, 10, 0.0), (29, 25, 0.002), (30, 5, 0.0), (61, 40, 1e-5), (500, 1, 0.0)]
  stacked = lrjax.stack([lrjax.cooldown(base, start=s, decay_steps=d, end_value=e)
                         for s, d, e in settings])
  t = np.arange(0, 600)
  out = jax.vmap(lambda c: c(jnp.asarray(t, jnp.int32)))(stacked)
  assert out.shape == (len(settings), t.size)
  for row, (s, d, e) in zip(np.asarray(out), settings):
    np.testing.assert_allclose(row, ref.cooldown(t, base_ref, s, d, end=e),
                               rtol=1e-6, atol=1e-9)
  # and vmapped over starts inside a jitted function, the steps as well
  both = jax.jit(jax.vmap(lambda c, u: c(u)))(stacked, jnp.asarray([0, 35, 30, 70, 500]))
  np.testing.assert_allclose(
      both, [ref.cooldown(np.array([u]), base_ref, s, d, end=e)[0]
             for u, (s, d, e) in zip([0, 35, 30, 70, 500], settings)], rtol=1e-6)


def test_one_trace_for_k_cooldowns_in_a_jitted_function():
  traces = []

  @jax.jit
  def rates(schedule, steps):
    traces.append(1)
    return schedule(steps)

  wsd = lrjax.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=1000,
                                  decay_steps=100)
  wsd_ref = lambda u: ref.wsd(u, 0.1, 10, 1000, 100)
  t = jnp.arange(0, 1200, 7)
  for start, decay, end in [(100, 50, 0.0), (300, 200, 0.001), (700, 1, 0.05),
                            (0, 999, 0.0), (1105, 3, 0.0)]:
    c = lrjax.cooldown(wsd, start=start, decay_steps=decay, end_value=end)
    np.testing.assert_allclose(rates(c, t), ref.cooldown(np.asarray(t), wsd_ref, start,
                                                         decay, end=end),
                               rtol=1e-6, atol=1e-9)
  assert len(traces) == 1


def test_swapped_into_an_optimizer_state_without_a_new_trace():
  """A cooldown branched from a run's state by set_hyperparams: the jitted
  update traces once, and from the swap on uses the cooldown's rate."""
  traces = []
  run = lrjax.constant(0.1)
  tx = lrjax.inject_hyperparams(optax.sgd)(
      learning_rate=lrjax.cooldown(run, start=10**6, decay_steps=1, shape="linear"))

  @jax.jit
  def update(state):
    traces.append(1)
    updates, state = tx.update({"w": jnp.ones(())}, state)
    return updates["w"], state

  state = tx.init({"w": jnp.zeros(())})
  used = []
  for t in range(30):
    if t == 12:  # cool down from here over 10 steps, linearly, to 0.01
      state = lrjax.set_hyperparams(
          state, learning_rate=lrjax.cooldown(run, start=12, decay_steps=10,
                                              end_value=0.01, shape="linear"))
    u, state = update(state)
    used.append(-float(u))
  assert len(traces) == 1
  expected = ref.cooldown(np.arange(30), lambda u: ref.constant(u, 0.1), 12, 10,
                          end=0.01, shape="linear")
  np.testing.assert_allclose(used, expected, rtol=1e-6)


def test_the_nested_schedule_round_trips_through_a_dict():
  c = lrjax.cooldown(lrjax.multistep(0.1, milestones=[30], gamma=0.5), start=40,
                     decay_steps=9, end_value=0.001, shape="cosine")
  d = c.to_dict()
  assert d == {"type": "cooldown",
               "schedule": {"type": "multistep", "init_value": 0.1, "milestones": [30],
                            "gamma": 0.5},
               "start": 40, "decay_steps": 9, "end_value": 0.001, "shape": "cosine"}
  assert lrjax.from_dict(d) == c
  assert repr(c) == ("cooldown(multistep(0.1, milestones=[30], gamma=0.5), start=40, "
                     "decay_steps=9, end_value=0.001, shape='cosine')")


@pytest.mark.parametrize("kwargs,message", [
    (dict(start=-1), "cooldown: start must be >= 0, got -1"),
    (dict(start=2.5), "cooldown: start must be an integer, got 2.5"),
    (dict(decay_steps=0), "cooldown: decay_steps must be >= 1, got 0"),
    (dict(decay_steps=-3), "cooldown: decay_steps must be >= 1, got -3"),
    (dict(start=2**31 - 5, decay_steps=10),
     "cooldown: start + decay_steps must be <= 2147483647 (int32)"),
    (dict(end_value=-0.1), "cooldown: end_value must be >= 0.0, got -0.1"),
    (dict(end_value=float("nan")), "cooldown: end_value must be finite"),
    (dict(shape="sqrt"), "cooldown: shape must be one of ('linear', 'cosine', '1-sqrt'), "
                         "got 'sqrt'"),
    (dict(shape="exp"), "cooldown: shape must be one of"),
    (dict(schedule=lambda step: 0.1), "cooldown: schedule must be an lrjax schedule"),
    (dict(schedule=optax.constant_schedule(0.1)),
     "cooldown: schedule must be an lrjax schedule"),
    (dict(schedule=0.1), "cooldown: schedule must be an lrjax schedule"),
])
def test_bad_input_raises_value_error_naming_the_argument(kwargs, message):
  args = {"schedule": lrjax.constant(0.1), "start": 5, "decay_steps": 10, **kwargs}
  schedule = args.pop("schedule")
  with pytest.raises(ValueError, match=re.escape(message)):
    lrjax.cooldown(schedule, **args)


def test_an_end_value_above_the_rate_rises_without_a_warning():
  # filterwarnings=error: a warning would fail this test.
  c = lrjax.cooldown(lrjax.constant(0.01), start=10, decay_steps=10, end_value=0.1,
                     shape="linear")
  np.testing.assert_allclose(c(np.array([9, 10, 15, 20])), [0.01, 0.01, 0.055, 0.1],
                             rtol=1e-6)


def test_traced_leaves_skip_the_checks():
  """Under jax.vmap the leaves are tracers: built inside, checked by no one,
  evaluated as any other."""
  starts = jnp.asarray([3, 8])
  out = jax.vmap(lambda s: lrjax.cooldown(lrjax.constant(0.2), start=s,
                                          decay_steps=4, shape="linear")(10))(starts)
  np.testing.assert_allclose(out, [0.0, 0.2 * 2 / 4], rtol=1e-6)
