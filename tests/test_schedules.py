"""Generic tests: every registered case, eager and jitted, every step dtype,
vmapped, as a pytree, through optax, against its float64 reference."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from cases import CASES
from lrjax._cli import parse_schedule

IDS = [c.id for c in CASES]
I32_MAX = np.iinfo(np.int32).max


def _atol(ref_values):
  """1e-6 of the schedule's own scale: added to rtol 1e-6 where a float32
  cosine or power of a value near zero cannot hold rtol alone."""
  return 1e-6 * float(np.max(np.abs(ref_values))) if ref_values.size else 0.0


def _check(out, ref_values):
  out = np.asarray(out)
  assert out.dtype == np.float32
  assert out.shape == ref_values.shape
  assert np.all(np.isfinite(out))
  np.testing.assert_allclose(out, ref_values, rtol=1e-6, atol=_atol(ref_values))


# One jitted evaluator for the whole module: it compiles once per schedule
# structure and step type, as a user's jitted train step would.
_jit_eval = jax.jit(lambda s, t: s(t))


def _eval(sched, steps, mode):
  return _jit_eval(sched, steps) if mode == "jit" else sched(steps)


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("dtype", ["int32", "uint32", "float32", "python"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_reference(case, dtype, mode):
  grid = case.grid()
  if dtype == "float32":
    grid = grid[grid < 2**24]  # float32 holds every integer below 2**24
  else:
    grid = case.within(np.concatenate([grid, [I32_MAX]]))
  expected = case.ref(grid)
  sched = case.build()
  with jax.numpy_dtype_promotion("strict"):
    if dtype == "python":
      out = np.array([_eval(sched, int(t), mode) for t in grid])
      assert out.dtype == np.float32
    else:
      out = _eval(sched, jnp.asarray(grid, dtype), mode)
  _check(out, expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_int64_steps_under_x64(case):
  grid = case.within(np.concatenate([case.grid(), [I32_MAX, 2**31 + 5, 2**40 + 3]]))
  expected = case.ref(grid)
  with jax.enable_x64(True), jax.numpy_dtype_promotion("strict"):
    sched = case.build()
    steps = jnp.asarray(grid, jnp.int64)
    assert steps.dtype == jnp.int64
    _check(sched(steps), expected)
    _check(_jit_eval(sched, steps), expected)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shape_and_vmap_over_steps(case, shape):
  grid = case.grid()
  steps = np.resize(grid, shape).astype(np.int32)
  sched = case.build()
  _check(sched(steps), case.ref(steps.astype(np.int64)))
  flat = jnp.asarray(grid, jnp.int32)
  _check(jax.vmap(sched)(flat), case.ref(grid))


def _halve_floats(sched):
  """The same structure with every float leaf halved (counts untouched)."""
  return jax.tree_util.tree_map(
      lambda x: x * 0.5 if isinstance(x, float) else x, sched)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_new_numbers_do_not_recompile(case):
  traces = []

  @jax.jit
  def f(s, t):
    traces.append(1)
    return s(t)

  a = case.build()
  b = _halve_floats(a)
  steps = jnp.asarray(case.grid(), jnp.int32)
  ya, yb = f(a, steps), f(b, steps)
  assert len(traces) == 1
  _check(ya, case.ref(case.grid()))
  assert not np.array_equal(ya, yb)  # the new numbers took effect
  np.testing.assert_array_equal(yb, b(steps))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_stacked_schedules(case):
  a = case.build()
  b = _halve_floats(a)
  steps = jnp.asarray(case.grid(), jnp.int32)
  both = jax.vmap(lambda s: s(steps))(lrjax.stack([a, b]))
  assert both.shape == (2, steps.shape[0])
  _check(both[0], case.ref(case.grid()))
  # b has no reference of its own: its row is its unbatched call, and differs.
  np.testing.assert_allclose(both[1], b(steps), rtol=1e-6)
  assert not np.array_equal(both[0], both[1])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dict_and_repr_round_trip(case):
  sched = case.build()
  d = json.loads(json.dumps(sched.to_dict()))
  with case.expect_warning():  # a rebuilt schedule is checked again
    again = lrjax.from_dict(d)
  assert again == sched
  assert type(again) is type(sched)
  with case.expect_warning():
    assert eval(repr(sched), dict(vars(lrjax))) == sched  # pylint: disable=eval-used
  with case.expect_warning():
    assert parse_schedule(repr(sched)) == sched  # the command line reads it back
  assert repr(sched).startswith(d["type"] + "(")


def _with_count(tree, count):
  """The optax state `tree` with every ``count`` field set to `count`.

  optax keeps the step count in each state NamedTuple that uses it (the
  schedule's, and inject_hyperparams' own and its wrapped schedule's), so a
  test can start an update at any step without running the steps before it.
  """
  if isinstance(tree, tuple) and hasattr(tree, "_fields"):
    tree = type(tree)(*(_with_count(v, count) for v in tree))
    return tree._replace(count=count) if "count" in tree._fields else tree
  if isinstance(tree, (tuple, list)):
    return type(tree)(_with_count(v, count) for v in tree)
  if isinstance(tree, dict):
    return {k: _with_count(v, count) for k, v in tree.items()}
  return tree


def _optimizer_steps(case):
  """The case's grid where an int32 optimizer count can be (and be incremented)."""
  grid = case.grid()
  return grid[grid < I32_MAX]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_optax_sgd_uses_the_rate(case):
  """Update t of ``optax.sgd(schedule)`` scales by ``schedule(t)``: the first
  steps as they run, then from every phase boundary -1/0/+1 and far past the
  end, its count set there."""
  sched = case.build()
  opt = optax.sgd(learning_rate=sched)
  params = {"w": jnp.ones(3)}
  grads = {"w": jnp.full(3, 2.0)}
  state = opt.init(params)
  update = jax.jit(opt.update)
  for t in range(4):
    updates, state = update(grads, state, params)
    expected = -2.0 * case.ref(np.array([t]))[0]
    np.testing.assert_allclose(updates["w"], np.full(3, expected), rtol=1e-6,
                               atol=1e-12)
  steps = _optimizer_steps(case)
  expected = case.ref(steps)
  atol = _atol(expected)
  for t, e in zip(steps, expected):
    updates, _ = update(grads, _with_count(state, jnp.int32(t)), params)
    np.testing.assert_allclose(updates["w"], np.full(3, -2.0 * e), rtol=1e-6,
                               atol=2.0 * atol, err_msg=f"update at step {t}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_optax_inject_hyperparams_and_chain(case):
  """optax 0.2.8's inject_hyperparams evaluates the schedule at its count
  before the update and stores that rate: after update t the state holds
  ``schedule(t)``, the rate update t used (and the count is t + 1)."""
  sched = case.build()
  opt = optax.chain(optax.clip_by_global_norm(100.0),
                    optax.inject_hyperparams(optax.sgd)(learning_rate=sched))
  params = {"w": jnp.ones(2)}
  grads = {"w": jnp.ones(2)}
  state = opt.init(params)
  update = jax.jit(opt.update)
  for t in range(3):
    updates, state = update(grads, state, params)
    used = case.ref(np.array([t]))[0]
    np.testing.assert_allclose(updates["w"], -used * np.ones(2), rtol=1e-6)
    np.testing.assert_allclose(state[1].hyperparams["learning_rate"], used, rtol=1e-6)
    assert int(state[1].count) == t + 1
  steps = _optimizer_steps(case)
  expected = case.ref(steps)
  atol = _atol(expected)
  for t, used in zip(steps, expected):
    updates, after = update(grads, _with_count(state, jnp.int32(t)), params)
    np.testing.assert_allclose(updates["w"], -used * np.ones(2), rtol=1e-6,
                               atol=atol, err_msg=f"update at step {t}")
    np.testing.assert_allclose(after[1].hyperparams["learning_rate"], used,
                               rtol=1e-6, atol=atol, err_msg=f"rate logged at step {t}")
    assert int(after[1].count) == t + 1
