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

IDS = [c.id for c in CASES]
I32_MAX = np.iinfo(np.int32).max


def _check(out, ref_values):
  out = np.asarray(out)
  assert out.dtype == np.float32
  assert out.shape == ref_values.shape
  assert np.all(np.isfinite(out))
  scale = float(np.max(np.abs(ref_values))) if ref_values.size else 0.0
  # rtol 1e-6 of each value, plus 1e-6 of the schedule's own scale where a
  # float32 cosine or power of a value near zero cannot hold rtol alone.
  np.testing.assert_allclose(out, ref_values, rtol=1e-6, atol=1e-6 * scale)


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
    grid = np.concatenate([grid, [I32_MAX]])
  expected = case.ref(grid)
  sched = case.make()
  with jax.numpy_dtype_promotion("strict"):
    if dtype == "python":
      out = np.array([_eval(sched, int(t), mode) for t in grid])
      assert out.dtype == np.float32
    else:
      out = _eval(sched, jnp.asarray(grid, dtype), mode)
  _check(out, expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_int64_steps_under_x64(case):
  grid = np.concatenate([case.grid(), [I32_MAX, 2**31 + 5, 2**40 + 3]])
  expected = case.ref(grid)
  with jax.enable_x64(True), jax.numpy_dtype_promotion("strict"):
    sched = case.make()
    steps = jnp.asarray(grid, jnp.int64)
    assert steps.dtype == jnp.int64
    _check(sched(steps), expected)
    _check(_jit_eval(sched, steps), expected)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shape_and_vmap_over_steps(case, shape):
  grid = case.grid()
  steps = np.resize(grid, shape).astype(np.int32)
  sched = case.make()
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

  a = case.make()
  b = _halve_floats(a)
  steps = jnp.asarray(case.grid(), jnp.int32)
  ya, yb = f(a, steps), f(b, steps)
  assert len(traces) == 1
  np.testing.assert_array_equal(ya, a(steps))
  np.testing.assert_array_equal(yb, b(steps))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_stacked_schedules(case):
  a = case.make()
  b = _halve_floats(a)
  steps = jnp.asarray(case.grid(), jnp.int32)
  both = jax.vmap(lambda s: s(steps))(lrjax.stack([a, b]))
  assert both.shape == (2, steps.shape[0])
  np.testing.assert_allclose(both[0], a(steps), rtol=1e-6)
  np.testing.assert_allclose(both[1], b(steps), rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dict_and_repr_round_trip(case):
  sched = case.make()
  d = json.loads(json.dumps(sched.to_dict()))
  again = lrjax.from_dict(d)
  assert again == sched
  assert type(again) is type(sched)
  assert eval(repr(sched), dict(vars(lrjax))) == sched  # pylint: disable=eval-used
  assert repr(sched).startswith(d["type"] + "(")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_optax_sgd_uses_the_rate(case):
  sched = case.make()
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


@pytest.mark.parametrize("case", CASES[:3], ids=IDS[:3])
def test_optax_inject_hyperparams_and_chain(case):
  sched = case.make()
  opt = optax.chain(optax.clip_by_global_norm(100.0),
                    optax.inject_hyperparams(optax.sgd)(learning_rate=sched))
  params = {"w": jnp.ones(2)}
  state = opt.init(params)
  for t in range(3):
    updates, state = opt.update({"w": jnp.ones(2)}, state, params)
    np.testing.assert_allclose(updates["w"], -case.ref(np.array([t]))[0] * np.ones(2),
                               rtol=1e-6)
    lr = state[1].hyperparams["learning_rate"]
    np.testing.assert_allclose(lr, case.ref(np.array([t + 1]))[0], rtol=1e-6)
