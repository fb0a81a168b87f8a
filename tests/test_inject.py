"""inject_hyperparams, set_hyperparams, hyperparams: the updates equal optax's
own inject_hyperparams with the same schedules; every catalogue case through it
matches its float64 reference; swaps without a new trace (jit and nnx.jit);
vmapped sweeps; checkpoints; nested states; the plateau transform; bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx, serialization

import lrjax
from cases import CASES

I32_MAX = np.iinfo(np.int32).max
PARAMS = {"w": jnp.linspace(-1.0, 1.0, 16), "b": jnp.ones(3)}


def _grads(i, params):
  """A gradient of ``|p|^2 / 2`` plus a wobble that changes with the step `i`."""
  i = jnp.asarray(i, jnp.float32)
  return jax.tree.map(lambda p: p + 0.5 * jnp.sin(7.0 * p + 0.37 * i), params)


def _steps(n):
  return jnp.arange(n, dtype=jnp.float32)


def _train(make_tx, hps, steps, *, params=PARAMS):
  """`steps` updates under one jitted scan; the hyperparameters (schedules
  included) are arguments of the program, so lrjax and optax compile the
  same arithmetic. Returns the params, every update, every recorded value."""
  state = make_tx(hps).init(params)

  @jax.jit
  def run(hps, params, state):
    tx = make_tx(hps)

    def body(carry, key):
      params, state = carry
      updates, state = tx.update(_grads(key, params), state, params)
      return (optax.apply_updates(params, updates), state), (updates, state.hyperparams)

    (params, _), (updates, recorded) = jax.lax.scan(body, (params, state), _steps(steps))
    return params, updates, recorded

  return run(hps, params, state)


def _assert_trees_close(a, b, rtol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(y))))


_COSINE = lrjax.cosine_decay(0.1, decay_steps=250, warmup_steps=30, init_value=0.01)
_MOMENTUM = lrjax.one_cycle_momentum(total_steps=280)
OPTIMIZERS = {
    "sgd": (optax.sgd, {}, dict(learning_rate=_COSINE)),
    "sgd_momentum": (optax.sgd, {}, dict(learning_rate=_COSINE, momentum=_MOMENTUM)),
    "nesterov": (optax.sgd, {"nesterov": True},
                 dict(learning_rate=_COSINE, momentum=_MOMENTUM)),
    "adam_b1": (optax.adam, {}, dict(learning_rate=_COSINE, b1=_MOMENTUM, b2=0.99)),
    "adamw_weight_decay": (optax.adamw, {}, dict(
        learning_rate=1e-2, weight_decay=lrjax.polynomial_decay(
            0.1, decay_steps=200, end_value=0.001, power=2.0))),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_updates_equal_optax_inject_hyperparams(name):
  factory, fixed, hps = OPTIMIZERS[name]
  ours = _train(lambda h: lrjax.inject_hyperparams(factory)(**h, **fixed), hps, 280)
  theirs = _train(lambda h: optax.inject_hyperparams(factory)(**h, **fixed), hps, 280)
  _assert_trees_close(ours[:2], theirs[:2], rtol=1e-6)
  # Both record the values update t used: the schedule at t (optax 0.2.8).
  t = np.arange(280)
  for key, s in hps.items():
    np.testing.assert_allclose(ours[2][key], theirs[2][key], rtol=1e-6)
    if isinstance(s, lrjax.Schedule):
      np.testing.assert_allclose(ours[2][key], s(t), rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam_b1"])
def test_idiomatic_jitted_updates_equal_optax_to_rounding(name):
  # optax closes over the schedule (its numbers become XLA constants), lrjax
  # reads them from the state: the values used agree to float32 ulps, and so
  # do the updates. (The gradients do not depend on the parameters here, so
  # that an ulp is not amplified by the dynamics.)
  factory, fixed, hps = OPTIMIZERS[name]
  params_out, used = [], []
  for tx in (lrjax.inject_hyperparams(factory)(**hps, **fixed),
             optax.inject_hyperparams(factory)(**hps, **fixed)):
    params, state, record = PARAMS, tx.init(PARAMS), []
    update = jax.jit(tx.update)
    for i in _steps(60):
      updates, state = update(_grads(i, PARAMS), state, params)
      params = optax.apply_updates(params, updates)
      record.append(state.hyperparams)
    params_out.append(params)
    used.append(jax.tree.map(lambda *x: jnp.stack(x), *record))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), *used)
  _assert_trees_close(*params_out, rtol=1e-6)


def test_eager_updates_equal_optax_exactly():
  factory, fixed, hps = OPTIMIZERS["adam_b1"]
  states = [lrjax.inject_hyperparams(factory)(**hps).init(PARAMS),
            optax.inject_hyperparams(factory)(**hps).init(PARAMS)]
  txs = [lrjax.inject_hyperparams(factory)(**hps), optax.inject_hyperparams(factory)(**hps)]
  for key in _steps(8):
    g = _grads(key, PARAMS)
    (ua, states[0]), (ub, states[1]) = (
        txs[0].update(g, states[0], PARAMS), txs[1].update(g, states[1], PARAMS))
    jax.tree.map(np.testing.assert_array_equal, ua, ub)


def _check_rate(out, expected):
  scale = float(np.max(np.abs(expected)))
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_case_through_inject_hyperparams(case):
  # One update at each step of the case's grid (the state's count set to it):
  # the rate used and the update against the float64 reference, and against
  # optax.inject_hyperparams with the same schedule at the same count.
  grid = case.grid()
  grid = grid[grid <= I32_MAX]
  steps = jnp.asarray(grid, jnp.int32)
  sched = case.build()
  g = {"w": jnp.array([1.0, -2.0])}
  ours = lrjax.inject_hyperparams(optax.sgd)(learning_rate=sched)
  theirs = optax.inject_hyperparams(optax.sgd)(learning_rate=sched)

  def ours_at(t):
    state = ours.init(g)._replace(count=t)
    updates, state = ours.update(g, state)
    return updates["w"], lrjax.hyperparams(state)["learning_rate"], state.count

  def theirs_at(t):
    state = theirs.init(g)
    clock = state.hyperparams_states["learning_rate"]._replace(count=t)
    state = state._replace(count=t, hyperparams_states={"learning_rate": clock})
    return theirs.update(g, state)[0]["w"]

  both = jax.jit(lambda t: (jax.vmap(ours_at)(t), jax.vmap(theirs_at)(t)))
  (updates, rate, count), optax_updates = both(steps)
  expected = case.ref(grid)
  _check_rate(rate, expected)
  _check_rate(updates, -expected[:, None] * np.array([1.0, -2.0]))
  np.testing.assert_allclose(updates, optax_updates, rtol=1e-6,
                             atol=1e-6 * float(np.max(np.abs(expected))))
  np.testing.assert_array_equal(count, np.minimum(grid + 1, I32_MAX))  # saturating


def test_state_holds_only_arrays():
  tx = lrjax.inject_hyperparams(optax.adamw)(
      learning_rate=lrjax.one_cycle(peak_value=0.1, total_steps=100),
      b1=lrjax.one_cycle_momentum(total_steps=100), weight_decay=1e-4)
  state = tx.init(PARAMS)
  leaves = jax.tree.leaves(state)
  assert leaves and all(isinstance(x, jax.Array) for x in leaves)
  assert state.count.dtype == jnp.int32
  assert state.schedules["learning_rate"].total_steps.dtype == jnp.int32
  assert state.schedules["learning_rate"].peak_value.dtype == jnp.float32
  assert state.schedules["weight_decay"].dtype == jnp.float32
  assert {k: v.dtype for k, v in state.hyperparams.items()} == dict.fromkeys(
      ["learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"], jnp.float32)
  # Before the first update: the values the first will use.
  hp = lrjax.hyperparams(state)
  np.testing.assert_allclose([hp["learning_rate"], hp["b1"], hp["b2"]],
                             [0.1 / 25.0, 0.95, 0.999], rtol=1e-6)


def test_hyperparam_dtype_casts_the_values_used():
  tx = lrjax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.bfloat16)(
      learning_rate=lrjax.constant(0.1), momentum=0.9)
  params = {"w": jnp.ones(2, jnp.bfloat16)}
  updates, state = tx.update({"w": jnp.ones(2, jnp.bfloat16)}, tx.init(params), params)
  assert {v.dtype for v in lrjax.hyperparams(state).values()} == {jnp.dtype(jnp.bfloat16)}
  assert state.schedules["learning_rate"].value.dtype == jnp.float32  # the schedule
  assert updates["w"].dtype == jnp.bfloat16


# --- one program across schedule swaps -------------------------------------------


def test_swaps_of_one_structure_are_one_trace_under_jit():
  tx = lrjax.inject_hyperparams(optax.sgd)(
      learning_rate=lrjax.cosine_decay(0.1, decay_steps=20), momentum=0.9)
  traces = []

  @jax.jit
  def step(params, state):
    traces.append(1)
    updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    return optax.apply_updates(params, updates), state

  params, state = PARAMS, tx.init(PARAMS)
  swaps = [lrjax.cosine_decay(0.3, decay_steps=7, warmup_steps=2),
           lrjax.cosine_decay(0.05, decay_steps=40, end_value=0.01)]
  used = []
  for new in [None] + swaps:
    if new is not None:
      state = lrjax.set_hyperparams(state, learning_rate=new, momentum=0.5)
    for _ in range(3):
      params, state = step(params, state)
      used.append(float(lrjax.hyperparams(state)["learning_rate"]))
  assert len(traces) == 1
  # The count goes on: the swapped-in schedules are evaluated at 3..5, 6..8.
  expected = [lrjax.cosine_decay(0.1, decay_steps=20)(t) for t in range(3)]
  expected += [swaps[0](t) for t in range(3, 6)] + [swaps[1](t) for t in range(6, 9)]
  np.testing.assert_allclose(used, expected, rtol=1e-6)
  np.testing.assert_allclose(lrjax.hyperparams(state)["momentum"], 0.5)
  # Another structure is allowed: exactly one new trace.
  state = lrjax.set_hyperparams(state, learning_rate=lrjax.constant(0.2))
  params, state = step(params, state)
  assert len(traces) == 2
  np.testing.assert_allclose(lrjax.hyperparams(state)["learning_rate"], 0.2)


class _Model(nnx.Module):

  def __init__(self, rngs):
    self.linear = nnx.Linear(3, 2, rngs=rngs)

  def __call__(self, x):
    return self.linear(x)


def test_swaps_are_one_trace_under_nnx_jit_with_nnx_optimizer():
  model = _Model(nnx.Rngs(0))
  tx = lrjax.inject_hyperparams(optax.sgd)(
      learning_rate=lrjax.one_cycle(peak_value=0.1, total_steps=10),
      momentum=lrjax.one_cycle_momentum(total_steps=10))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  traces = []
  x = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)

  @nnx.jit
  def train_step(model, optimizer, x):
    traces.append(1)
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    optimizer.update(model, grads)

  # The same steps with plain optax, as a reference for the parameters.
  graphdef, params = nnx.split(model)
  params = nnx.as_pure(params)  # plain arrays: a copy the model's updates leave alone
  ref_state = tx.init(params)

  def ref_step(params, state, hps):
    if hps is not None:
      state = lrjax.set_hyperparams(state, **hps)
    g = jax.grad(lambda p: jnp.mean(nnx.merge(graphdef, p)(x) ** 2))(params)
    updates, state = tx.update(g, state, params)
    return optax.apply_updates(params, updates), state

  swaps = [None, dict(learning_rate=lrjax.one_cycle(peak_value=0.3, total_steps=20),
                      momentum=lrjax.one_cycle_momentum(total_steps=20, base_value=0.8)),
           dict(learning_rate=lrjax.one_cycle(peak_value=0.02, total_steps=6))]
  rates = []
  for hps in swaps:
    if hps is not None:
      optimizer.opt_state = lrjax.set_hyperparams(optimizer.opt_state, **hps)
    for i in range(3):
      train_step(model, optimizer, x)
      params, ref_state = ref_step(params, ref_state, hps if i == 0 else None)
      rates.append(float(lrjax.hyperparams(optimizer.opt_state)["learning_rate"]))
  assert len(traces) == 1
  _assert_trees_close(nnx.as_pure(nnx.state(model)), params, rtol=1e-6)
  np.testing.assert_allclose(
      rates, [float(lrjax.one_cycle(peak_value=0.1, total_steps=10)(t)) for t in range(3)]
      + [float(swaps[1]["learning_rate"](t)) for t in range(3, 6)]
      + [float(swaps[2]["learning_rate"](t)) for t in range(6, 9)], rtol=1e-6)
  assert int(optimizer.opt_state.count.get_value()) == 9


# --- sweeps ------------------------------------------------------------------------


def test_vmapped_sweep_of_three_equals_three_runs():
  scheds = [lrjax.cosine_decay(0.1, decay_steps=30), lrjax.cosine_decay(0.3, decay_steps=15),
            lrjax.cosine_decay(0.05, decay_steps=60, warmup_steps=5)]
  momenta = [0.9, 0.5, 0.0]
  make = lambda s, m: lrjax.inject_hyperparams(optax.sgd)(learning_rate=s, momentum=m)
  tx = make(scheds[0], momenta[0])  # any of the three: update reads the state only

  def step(params, state, key):
    updates, state = tx.update(_grads(key, params), state, params)
    return optax.apply_updates(params, updates), state

  def run(params, state, keys):
    return jax.lax.scan(lambda c, k: (step(*c, k), None), (params, state), keys)[0]

  keys = _steps(40)
  run_one = jax.jit(run)
  singles = [run_one(PARAMS, make(s, m).init(PARAMS), keys)[0]
             for s, m in zip(scheds, momenta)]
  # Stacked states, two ways: stack K states, or vmap init over lrjax.stack.
  stacked = jax.tree.map(lambda *x: jnp.stack(x),
                         *[make(s, m).init(PARAMS) for s, m in zip(scheds, momenta)])
  from_stack = jax.vmap(lambda s, m: make(s, m).init(PARAMS))(
      lrjax.stack(scheds), jnp.array(momenta))
  jax.tree.map(np.testing.assert_array_equal, stacked, from_stack)
  params = jax.tree.map(lambda p: jnp.stack([p] * 3), PARAMS)
  params, stacked = jax.jit(jax.vmap(run, in_axes=(0, 0, None)))(params, stacked, keys)
  for k in range(3):
    _assert_trees_close(jax.tree.map(lambda p: p[k], params), singles[k], rtol=1e-6)
  # A stacked state's schedules are swapped under vmap (and only there).
  new = lrjax.stack([lrjax.cosine_decay(v, decay_steps=5) for v in (0.5, 0.6, 0.7)])
  swapped = jax.vmap(lambda st, s: lrjax.set_hyperparams(st, learning_rate=s))(stacked, new)
  np.testing.assert_allclose(swapped.schedules["learning_rate"].peak_value, [0.5, 0.6, 0.7])
  with pytest.raises(ValueError, match="set_hyperparams: opt_state is a stack of states"):
    lrjax.set_hyperparams(stacked, learning_rate=new)
  np.testing.assert_allclose(lrjax.hyperparams(stacked)["learning_rate"],
                             [s(39) for s in scheds], rtol=1e-6)


# --- checkpoints -----------------------------------------------------------------


def _run(tx, params, state, keys):
  update = jax.jit(tx.update)
  for key in keys:
    updates, state = update(_grads(key, params), state, params)
    params = optax.apply_updates(params, updates)
  return params, state


def _checkpoint_setup():
  sched = lrjax.warmup(lrjax.cosine_decay(0.2, decay_steps=12), steps=3)
  tx = lrjax.inject_hyperparams(optax.adam)(learning_rate=sched,
                                            b1=lrjax.one_cycle_momentum(total_steps=15))
  keys = _steps(16)
  whole = _run(tx, PARAMS, tx.init(PARAMS), keys)
  half = _run(tx, PARAMS, tx.init(PARAMS), keys[:8])
  # The restore target comes from a transform built with other numbers (same
  # structure): what continues is what the checkpoint holds.
  other = lrjax.inject_hyperparams(optax.adam)(
      learning_rate=lrjax.warmup(lrjax.cosine_decay(0.9, decay_steps=99), steps=7),
      b1=lrjax.one_cycle_momentum(total_steps=50, base_value=0.5))
  target = (PARAMS, other.init(PARAMS))
  return other, keys, whole, half, target


def _check_resumed(tx, keys, whole, restored):
  params, state = restored
  assert int(state.count) == 8
  np.testing.assert_allclose(state.schedules["learning_rate"].schedule.peak_value, 0.2)
  resumed = _run(tx, params, state, keys[8:])
  jax.tree.map(np.testing.assert_array_equal, resumed, whole)


def test_orbax_checkpoint_mid_run_continues_identically(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  tx, keys, whole, half, target = _checkpoint_setup()
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(tmp_path / "ckpt", half)
    ckpt.wait_until_finished()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = ckpt.restore(tmp_path / "ckpt", abstract)
  _check_resumed(tx, keys, whole, restored)


def test_flax_serialization_mid_run_continues_identically():
  # lrjax registers its schedule classes with flax's state-dict protocol.
  tx, keys, whole, half, target = _checkpoint_setup()
  restored = serialization.from_bytes(target, serialization.to_bytes(half))
  jax.tree.map(lambda a, b: np.testing.assert_equal(a.dtype, b.dtype), restored, half)
  _check_resumed(tx, keys, whole, restored)


# --- nested states ------------------------------------------------------------------


def _inner():
  return lrjax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.constant(0.1))


NESTED = {
    "chain": lambda: optax.chain(optax.clip_by_global_norm(100.0), _inner()),
    "multi_steps": lambda: optax.MultiSteps(_inner(), every_k_schedule=1),
    "masked": lambda: optax.masked(_inner(), {"w": True, "b": True}),
    "chain_of_multi_steps": lambda: optax.chain(
        optax.identity(), optax.MultiSteps(_inner(), every_k_schedule=1).gradient_transformation()),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_set_and_read_hyperparams_inside_nested_states(name):
  tx = NESTED[name]()
  state = tx.init(PARAMS)
  np.testing.assert_allclose(lrjax.hyperparams(state)["learning_rate"], 0.1)
  new = lrjax.exponential_decay(0.4, decay_steps=1, decay_rate=0.5)
  state = lrjax.set_hyperparams(state, learning_rate=new)
  np.testing.assert_allclose(lrjax.hyperparams(state)["learning_rate"], 0.4)  # count 0
  g = jax.tree.map(jnp.ones_like, PARAMS)
  for t in range(3):
    updates, state = tx.update(g, state, PARAMS)
    np.testing.assert_allclose(updates["w"], -0.4 * 0.5**t, rtol=1e-6)
    np.testing.assert_allclose(lrjax.hyperparams(state)["learning_rate"], 0.4 * 0.5**t,
                               rtol=1e-6)


def test_set_hyperparams_keeps_the_record_after_the_first_update():
  tx = _inner()
  g = jax.tree.map(jnp.ones_like, PARAMS)
  _, state = tx.update(g, tx.init(PARAMS), PARAMS)
  state = lrjax.set_hyperparams(state, learning_rate=0.7)
  np.testing.assert_allclose(lrjax.hyperparams(state)["learning_rate"], 0.1)  # last used
  updates, state = tx.update(g, state, PARAMS)
  np.testing.assert_allclose(updates["w"], -0.7, rtol=1e-6)
  np.testing.assert_allclose(lrjax.hyperparams(state)["learning_rate"], 0.7, rtol=1e-6)


def test_set_and_read_hyperparams_in_nnx_optimizer():
  model = _Model(nnx.Rngs(1))
  optimizer = nnx.Optimizer(
      model, optax.chain(optax.clip_by_global_norm(10.0), _inner()), wrt=nnx.Param)
  np.testing.assert_allclose(lrjax.hyperparams(optimizer.opt_state)["learning_rate"], 0.1)
  before = optimizer.opt_state
  optimizer.opt_state = lrjax.set_hyperparams(
      optimizer.opt_state, learning_rate=lrjax.linear(0.5, end_value=0.0, steps=5))
  inject = optimizer.opt_state[1]
  assert isinstance(inject.schedules["learning_rate"].init_value, nnx.OptArray)
  assert isinstance(before[1].schedules["learning_rate"].value, nnx.OptArray)  # untouched
  x = jnp.ones((2, 3))
  w0 = model.linear.kernel.get_value()
  grads = nnx.grad(lambda m: jnp.sum(m(x)))(model)
  optimizer.update(model, grads)
  np.testing.assert_allclose(model.linear.kernel.get_value(),
                             w0 - 0.5 * grads.linear.kernel.get_value(), rtol=1e-6)
  optimizer.update(model, grads)
  np.testing.assert_allclose(lrjax.hyperparams(optimizer.opt_state)["learning_rate"], 0.4,
                             rtol=1e-6)


# --- with reduce_on_plateau ---------------------------------------------------------


def test_chain_with_reduce_on_plateau_applies_rate_times_scale():
  sched = lrjax.cosine_decay(0.2, decay_steps=10)
  tx = optax.chain(lrjax.inject_hyperparams(optax.sgd)(learning_rate=sched),
                   lrjax.reduce_on_plateau(factor=0.5, patience=0))
  state = tx.init(PARAMS)
  g = jax.tree.map(jnp.ones_like, PARAMS)
  update = jax.jit(tx.update)
  expected_scale = 1.0
  for t, loss in enumerate([1.0, 0.9, 0.95, 0.97, 0.5, 0.6]):
    updates, state = update(g, state, PARAMS)
    rate = lrjax.hyperparams(state)["learning_rate"] * lrjax.plateau_scale(state)
    np.testing.assert_allclose(rate, float(sched(t)) * expected_scale, rtol=1e-6)
    np.testing.assert_allclose(updates["w"], -rate, rtol=1e-6)
    state = lrjax.observe_plateau(state, loss)
    expected_scale *= 0.5 if t in (2, 3, 5) else 1.0  # no improvement: halve
  np.testing.assert_allclose(lrjax.plateau_scale(state), 0.125)


def test_observe_plateau_finds_a_plateau_state_inside_the_inject_state():
  # A plateau transform built inside the inner factory lives in inner_state.
  tx = lrjax.inject_hyperparams(
      lambda learning_rate: optax.chain(optax.sgd(learning_rate),
                                        lrjax.reduce_on_plateau(factor=0.1, patience=0)))(
      learning_rate=lrjax.constant(0.3))
  state = tx.init(PARAMS)
  for loss in [1.0, 2.0]:
    state = lrjax.observe_plateau(state, loss)
  np.testing.assert_allclose(lrjax.plateau_scale(state), 0.1)
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)
  np.testing.assert_allclose(updates["w"], -0.03, rtol=1e-6)


# --- bad input --------------------------------------------------------------------


def _state():
  return lrjax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9).init(PARAMS)


BAD = [
    (lambda: lrjax.inject_hyperparams(0.1), "inject_hyperparams: inner_factory must be"),
    (lambda: lrjax.inject_hyperparams(optax.sgd, static_args="mask"),
     "inject_hyperparams: static_args must name arguments of inner_factory"),
    (lambda: lrjax.inject_hyperparams(optax.sgd, static_args=3),
     "inject_hyperparams: static_args must name arguments of inner_factory"),
    (lambda: lrjax.inject_hyperparams(optax.sgd, hyperparam_dtype=jnp.int32),
     "inject_hyperparams: hyperparam_dtype must be None or a float dtype"),
    (lambda: lrjax.inject_hyperparams(optax.sgd)(
        learning_rate=optax.cosine_decay_schedule(0.1, 100)),
     "inject_hyperparams: learning_rate must be an lrjax schedule or a number, got the "
     "callable"),
    (lambda: lrjax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=lambda t: 0.9),
     "inject_hyperparams: momentum must be an lrjax schedule or a number"),
    (lambda: lrjax.inject_hyperparams(optax.adamw)(learning_rate=0.1, mask=lambda p: p),
     "name it in static_args"),
    (lambda: lrjax.set_hyperparams(_state(), learning_rat=0.2),
     "set_hyperparams: learning_rat is not a hyperparameter held in the state (it holds "
     "['learning_rate', 'momentum']"),
    (lambda: lrjax.set_hyperparams(_state(), nesterov=True),
     "set_hyperparams: nesterov must be an lrjax schedule or a number, got the bool True"),
    (lambda: lrjax.set_hyperparams(_state(), learning_rate=optax.constant_schedule(0.1)),
     "set_hyperparams: learning_rate must be an lrjax schedule or a number, got the "
     "callable"),
    (lambda: lrjax.set_hyperparams(_state(), momentum="high"),
     "set_hyperparams: momentum must be an lrjax schedule or a number, got 'high'"),
    (lambda: lrjax.set_hyperparams(optax.sgd(0.1).init(PARAMS), learning_rate=0.2),
     "set_hyperparams: opt_state holds no inject_hyperparams state"),
    (lambda: lrjax.hyperparams(optax.adam(0.1).init(PARAMS)),
     "hyperparams: opt_state holds no inject_hyperparams state"),
    (lambda: lrjax.hyperparams((_state(), _state())),
     "hyperparams: opt_state holds 2 inject_hyperparams states"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_value_error_naming_the_argument(make, message):
  with pytest.raises(ValueError) as e:
    make()
  assert message in str(e.value)


def test_static_args_pass_a_callable_through():
  mask = lambda p: jax.tree.map(lambda x: x.ndim > 0 and x.shape[0] > 5, p)
  tx = lrjax.inject_hyperparams(optax.adamw, static_args="mask")(
      learning_rate=0.1, weight_decay=lrjax.constant(0.5), mask=mask)
  state = tx.init(PARAMS)
  assert "mask" not in state.schedules
  ref = optax.inject_hyperparams(optax.adamw, static_args="mask")(
      learning_rate=0.1, weight_decay=lrjax.constant(0.5), mask=mask)
  g = jax.tree.map(jnp.ones_like, PARAMS)
  jax.tree.map(np.testing.assert_allclose, tx.update(g, state, PARAMS)[0],
               ref.update(g, ref.init(PARAMS), PARAMS)[0])
