"""The Schedule base and the combinators: checks, exactness, pytree behaviour."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax


BAD = [
    (lambda: lrjax.constant(-0.1), "constant: value must be >= 0.0"),
    (lambda: lrjax.constant(float("nan")), "constant: value must be finite"),
    (lambda: lrjax.constant("0.1"), "constant: value must be a real number"),
    (lambda: lrjax.constant(True), "constant: value must be a real number"),
    (lambda: lrjax.step_decay(0.1, step_size=0, gamma=0.5), "step_decay: step_size must be >= 1"),
    (lambda: lrjax.step_decay(0.1, step_size=2.5, gamma=0.5), "step_decay: step_size must be an integer"),
    (lambda: lrjax.step_decay(0.1, step_size=2**31, gamma=0.5), "step_decay: step_size must be <= 2147483647"),
    (lambda: lrjax.step_decay(0.1, step_size=3, gamma=-1.0), "step_decay: gamma must be >= 0.0"),
    (lambda: lrjax.product(), "product: needs at least one schedule"),
    (lambda: lrjax.product(lrjax.constant(1.0), "x"), "product: schedules[1] must be"),
    (lambda: lrjax.constant(1.0) * -2.0, "product: schedules[1] must be"),
    (lambda: lrjax.warmup(0.1, steps=3), "warmup: schedule must be an lrjax schedule"),
    (lambda: lrjax.warmup(lrjax.constant(0.1), steps=-1), "warmup: steps must be >= 0"),
    (lambda: lrjax.warmup(lrjax.constant(0.1), steps=3, shape="exp"), "warmup: shape must be one of"),
    (lambda: lrjax.warmup(lrjax.constant(0.1), steps=3, init_value=-1.0), "warmup: init_value must be >= 0.0"),
    (lambda: lrjax.sequence([lrjax.constant(0.1)], boundaries=[3]),
     "sequence: needs len(schedules) == len(boundaries) + 1"),
    (lambda: lrjax.sequence([lrjax.constant(0.1)] * 3, boundaries=[5, 5]),
     "sequence: boundaries must be strictly increasing"),
    (lambda: lrjax.sequence([lrjax.constant(0.1)] * 2, boundaries=[0]), "sequence: boundaries[0] must be >= 1"),
    (lambda: lrjax.sequence([lrjax.constant(0.1), 0.2], boundaries=[4]), "sequence: schedules[1] must be"),
    (lambda: lrjax.sequence(lrjax.constant(0.1), boundaries=[]), "sequence: schedules must be a sequence"),
    (lambda: lrjax.sequence([lrjax.constant(0.1)] * 2, boundaries=4), "sequence: boundaries must be a sequence"),
    (lambda: lrjax.switch([], index=0), "switch: schedules must be a non-empty sequence"),
    (lambda: lrjax.switch(lrjax.constant(0.1), index=0), "switch: schedules must be a non-empty sequence"),
    (lambda: lrjax.switch([lrjax.constant(0.1), 0.2], index=0), "switch: schedules[1] must be"),
    (lambda: lrjax.switch([lrjax.constant(0.1)] * 2, index=2), "switch: index must be < len(schedules) = 2, got 2"),
    (lambda: lrjax.switch([lrjax.constant(0.1)] * 2, index=-1), "switch: index must be >= 0, got -1"),
    (lambda: lrjax.switch([lrjax.constant(0.1)] * 2, index=0.5), "switch: index must be an integer"),
    (lambda: lrjax.switch([lrjax.constant(0.1)] * 2, index=np.array([0, 2])),
     "switch: index must be < len(schedules) = 2"),
    (lambda: lrjax.per_epoch(lrjax.constant(0.1), steps_per_epoch=0), "per_epoch: steps_per_epoch must be >= 1"),
    (lambda: lrjax.per_epoch("cosine", steps_per_epoch=3), "per_epoch: schedule must be an lrjax schedule"),
    (lambda: lrjax.from_dict([1, 2]), "from_dict: expected a dict with key 'type'"),
    (lambda: lrjax.from_dict({"type": "nope"}), "from_dict: unknown schedule 'nope'"),
    (lambda: lrjax.from_dict({"type": "constant", "valu": 1.0}), "from_dict: bad arguments for constant"),
    (lambda: lrjax.from_dict({"type": "constant", "value": -1.0}), "constant: value must be >= 0.0"),
    (lambda: lrjax.stack([]), "stack: schedules must be non-empty"),
    (lambda: lrjax.stack([lrjax.constant(0.1), 0.2]), "stack: schedules[1] must be"),
    (lambda: lrjax.stack([lrjax.constant(0.1), lrjax.step_decay(0.1, step_size=2, gamma=0.5)]),
     "stack: schedules[1] = step_decay("),
    (lambda: lrjax.stack([lrjax.warmup(lrjax.constant(0.1), steps=2),
                          lrjax.warmup(lrjax.constant(0.1), steps=2, shape="cosine")]),
     "differs in structure"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_value_error_naming_the_argument(make, message):
  with pytest.raises(ValueError) as e:
    make()
  assert message in str(e.value)


def test_integral_float_counts_are_accepted_as_ints():
  s = lrjax.step_decay(0.1, step_size=30.0, gamma=0.1)
  assert s.step_size == 30 and isinstance(s.step_size, int)
  assert isinstance(lrjax.constant(1).value, float)


def test_schedules_are_immutable():
  s = lrjax.constant(0.1)
  with pytest.raises(dataclasses.FrozenInstanceError):
    s.value = 0.2  # type: ignore[misc]


def test_traced_hyperparameters_skip_checks_and_work_under_vmap():
  values = jnp.array([0.1, 0.2, 0.4])

  def rate(v, size):
    return lrjax.step_decay(v, step_size=size, gamma=0.5)(7)

  out = jax.vmap(rate)(values, jnp.array([3, 7, 8]))
  np.testing.assert_allclose(out, [0.1 * 0.25, 0.2 * 0.5, 0.4], rtol=1e-6)


def test_integer_boundaries_beyond_float32_precision_are_exact():
  # 2**24 + 1 is not a float32: a schedule that rounded the step would switch
  # one step early.
  b = 2**24 + 1
  s = lrjax.sequence([lrjax.constant(1.0), lrjax.constant(2.0)], boundaries=[b])
  steps = jnp.array([b - 1, b, b + 1], jnp.int32)
  np.testing.assert_array_equal(s(steps), [1.0, 2.0, 2.0])
  np.testing.assert_array_equal(s(steps.astype(jnp.uint32)), [1.0, 2.0, 2.0])


def test_uint32_steps_past_int32_range():
  s = lrjax.step_decay(1.0, step_size=2**31 - 1, gamma=0.5)
  steps = jnp.array([2**31 - 2, 2**31 - 1, 3_000_000_000, 2**32 - 1], jnp.uint32)
  # floor(t / (2**31 - 1)) = 0, 1, 1, 2
  np.testing.assert_array_equal(s(steps), [1.0, 0.5, 0.5, 0.25])


@pytest.mark.parametrize("dtype", [jnp.int8, jnp.uint8, jnp.int16, jnp.bfloat16, jnp.float16])
def test_small_step_dtypes(dtype):
  s = lrjax.step_decay(0.8, step_size=10, gamma=0.5)
  out = s(jnp.array([0, 9, 10, 20], dtype))
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, [0.8, 0.8, 0.4, 0.2], rtol=1e-6)


def test_python_int_step_returns_a_float32_scalar_array():
  out = lrjax.constant(0.25)(3)
  assert isinstance(out, jax.Array) and out.shape == () and out.dtype == jnp.float32


def test_sequence_restarts_each_schedule_at_its_boundary():
  decay = lrjax.step_decay(0.5, step_size=3, gamma=0.1)
  s = lrjax.sequence([lrjax.constant(0.05), decay, decay], boundaries=[4, 10])
  t = np.arange(16)
  expected = np.where(t < 4, 0.05,
                      np.where(t < 10, 0.5 * 0.1 ** ((t - 4) // 3), 0.5 * 0.1 ** ((t - 10) // 3)))
  np.testing.assert_allclose(s(t), expected, rtol=1e-6)


def test_switches_of_several_kinds_stack_and_sweep_under_vmap():
  # Three kinds (three pytree structures) as one: each row of the stack is
  # its own kind's curve, computed here in float64.
  kinds = [lrjax.constant(0.1), lrjax.step_decay(0.3, step_size=4, gamma=0.5),
           lrjax.cosine_decay(0.2, decay_steps=9)]
  stacked = lrjax.stack([lrjax.switch(kinds, index=i) for i in (2, 0, 1, 2)])
  steps = np.arange(15)
  got = np.asarray(jax.vmap(lambda s: jax.vmap(s)(jnp.asarray(steps)))(stacked))
  t = steps.astype(np.float64)
  curves = [np.full(t.shape, 0.1), 0.3 * 0.5 ** np.floor(t / 4),
            0.1 * (1 + np.cos(np.pi * np.minimum(t, 9) / 9))]
  np.testing.assert_allclose(got, np.stack([curves[i] for i in (2, 0, 1, 2)]), rtol=1e-6, atol=1e-7)
  # One structure, so one compiled program for any index, traced or not.
  traces = []

  @jax.jit
  def at(s, step):
    traces.append(1)
    return s(step)

  for i, curve in enumerate(curves):
    np.testing.assert_allclose(float(at(lrjax.switch(kinds, index=i), 7)), curve[7], rtol=1e-6)
  assert len(traces) == 1


def test_warmup_into_a_schedule_shifts_its_steps():
  s = lrjax.warmup(lrjax.step_decay(0.3, step_size=5, gamma=0.5), steps=10, init_value=0.03)
  t = np.arange(30)
  expected = np.where(t < 10, 0.03 + (0.3 - 0.03) * t / 10, 0.3 * 0.5 ** ((t - 10) // 5))
  np.testing.assert_allclose(s(t), expected, rtol=1e-6)


def test_product_multiplies_pointwise_and_scalars_commute():
  a = lrjax.step_decay(1.0, step_size=2, gamma=0.5)
  b = lrjax.step_decay(1.0, step_size=3, gamma=0.1)
  t = np.arange(12)
  expected = 0.5 ** (t // 2) * 0.1 ** (t // 3)
  np.testing.assert_allclose((a * b)(t), expected, rtol=1e-6)
  np.testing.assert_allclose((0.3 * a)(t), 0.3 * 0.5 ** (t // 2), rtol=1e-6)
  assert (a * 0.3)(5) == (0.3 * a)(5)


def test_repr_reads_like_the_call():
  # The first argument positional, defaults left out, nested calls the same.
  s = lrjax.warmup(lrjax.constant(0.1) * 2, steps=5)
  assert repr(s) == "warmup(product(constant(0.1), constant(2.0)), steps=5)"
  s = lrjax.warmup(lrjax.constant(0.1), steps=5, init_value=0.01, shape="cosine")
  assert repr(s) == "warmup(constant(0.1), steps=5, init_value=0.01, shape='cosine')"
  s = lrjax.multistep(0.1, milestones=[3, 7], gamma=0.5)
  assert repr(s) == "multistep(0.1, milestones=[3, 7], gamma=0.5)"


def test_repr_of_a_traced_schedule_names_the_traced_leaves():
  seen = []

  @jax.jit
  def f(v):
    s = lrjax.step_decay(v, step_size=3, gamma=0.5)
    seen.append(repr(s))
    return s(4)

  np.testing.assert_allclose(f(0.2), 0.1, rtol=1e-6)
  assert seen == ["step_decay(<traced float32[]>, step_size=3, gamma=0.5)"]


def test_stacked_schedules_round_trip_through_dicts():
  s = lrjax.stack([lrjax.step_decay(0.1, step_size=2, gamma=0.5),
                   lrjax.step_decay(0.3, step_size=5, gamma=0.1)])
  again = lrjax.from_dict(s.to_dict())
  t = jnp.arange(12)
  out = jax.vmap(lambda s: s(t))(again)
  np.testing.assert_allclose(out[0], 0.1 * 0.5 ** (np.arange(12) // 2), rtol=1e-6)
  np.testing.assert_allclose(out[1], 0.3 * 0.1 ** (np.arange(12) // 5), rtol=1e-6)


def test_eager_call_compiles_once_per_signature():
  # Eager calls go through one cached jitted evaluation: new numbers reuse it.
  s1 = lrjax.step_decay(0.1, step_size=2, gamma=0.5)
  s1(3)
  before = lrjax._base._evaluate._cache_size()  # pylint: disable=protected-access
  for v in (0.2, 0.3, 0.4):
    lrjax.step_decay(v, step_size=3, gamma=0.9)(5)
  assert lrjax._base._evaluate._cache_size() == before  # pylint: disable=protected-access
