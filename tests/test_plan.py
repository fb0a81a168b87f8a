"""Changing the plan mid-run: `schedules` reads back what a state holds (a
round trip through set_hyperparams, a restore through to_dict/from_dict, by
group), and `branch` makes K stacked states whose training under `jax.vmap`
equals K separate runs that each had that schedule swapped in alone."""

from __future__ import annotations

import contextlib
import io
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6), "b": jnp.ones(2)}
RUN = lrjax.cosine_decay(0.1, warmup_steps=3, decay_steps=40, init_value=0.01)


def _grads(i, params):
  i = jnp.asarray(i, jnp.float32)
  return jax.tree.map(lambda p: p + 0.5 * jnp.sin(7.0 * p + 0.37 * i), params)


def _tx():
  return lrjax.inject_hyperparams(optax.sgd)(learning_rate=RUN, momentum=0.9)


def _step(tx):
  def step(params, state, i):
    updates, state = tx.update(_grads(i, params), state, params)
    return optax.apply_updates(params, updates), state
  return step


def _trained(tx, n, params=PARAMS):
  state, step = tx.init(params), jax.jit(_step(tx))
  for i in range(n):
    params, state = step(params, state, i)
  return params, state


def _assert_same(a, b):
  ta, tb = jax.tree.structure(a), jax.tree.structure(b)
  assert ta == tb, (ta, tb)
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


# --- schedules -----------------------------------------------------------------------


def test_schedules_reads_back_what_the_state_holds():
  _, state = _trained(_tx(), 7)
  held = lrjax.schedules(state)
  assert set(held) == {"learning_rate", "momentum"}
  assert isinstance(held["learning_rate"], type(RUN))
  steps = jnp.arange(60)
  np.testing.assert_array_equal(held["learning_rate"](steps), RUN(steps))
  np.testing.assert_allclose(held["momentum"], 0.9, rtol=1e-7)


def test_set_hyperparams_of_schedules_is_the_identity():
  for n in (0, 7):  # before the first update (the record is rewritten) and after
    _, state = _trained(_tx(), n)
    held = lrjax.schedules(state)
    _assert_same(lrjax.set_hyperparams(state, **held), state)


def test_identity_inside_nnx_optimizer_keeps_its_variables():
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.chain(optax.clip(1.0), _tx()), wrt=nnx.Param)
  held = lrjax.schedules(optimizer.opt_state)
  assert not any(isinstance(x, nnx.Variable) for x in jax.tree.leaves(
      held, is_leaf=lambda x: isinstance(x, nnx.Variable)))
  same = lrjax.set_hyperparams(optimizer.opt_state, learning_rate=held["learning_rate"])
  leaves = lambda t: jax.tree.leaves(t, is_leaf=lambda x: isinstance(x, nnx.Variable))
  assert [type(x) for x in leaves(same)] == [type(x) for x in leaves(optimizer.opt_state)]
  _assert_same(same, optimizer.opt_state)


def test_schedules_survive_a_restore_through_to_dict_and_from_dict():
  # An orbax-free restore: the schedule saved as JSON, the state rebuilt by a
  # fresh init, the schedule swapped in: the run continues as the original.
  tx = _tx()
  params, state = _trained(tx, 9)
  saved = json.dumps(lrjax.schedules(state)["learning_rate"].to_dict())
  fresh = lrjax.set_hyperparams(
      lrjax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.constant(0.5),
                                          momentum=0.9).init(PARAMS),
      learning_rate=lrjax.from_dict(json.loads(saved)))
  restored = fresh._replace(count=state.count, inner_state=state.inner_state,
                            hyperparams=state.hyperparams)
  _assert_same(restored, state)
  step = jax.jit(_step(tx))
  a, b = (params, state), (params, restored)
  for i in range(9, 15):
    a, b = step(*a, i), step(*b, i)
  _assert_same(a, b)


def test_schedules_by_group_and_errors():
  tx = optax.multi_transform({"body": _tx(), "head": lrjax.inject_hyperparams(optax.sgd)(
      learning_rate=lrjax.constant(0.3))}, {"w": "body", "b": "head"})
  state = tx.init(PARAMS)
  np.testing.assert_allclose(lrjax.schedules(state, group="head")["learning_rate"](5), 0.3)
  np.testing.assert_array_equal(lrjax.schedules(state, group="body")["learning_rate"](5),
                                RUN(5))
  with pytest.raises(ValueError, match=r"schedules: opt_state holds 2 inject_hyperparams "
                     r"states in the groups \['body', 'head'\]; pass group="):
    lrjax.schedules(state)
  model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, _tx(), wrt=nnx.Param)
  with pytest.raises(ValueError, match="schedules: opt_state is an nnx.State"):
    lrjax.schedules(nnx.state((model, optimizer)))


# --- branch -------------------------------------------------------------------------

K_SCHEDULES = [lrjax.cosine_decay(0.1, warmup_steps=w, decay_steps=d, end_value=e)
               for w, d, e in ((0, 10, 0.0), (3, 20, 0.01), (1, 5, 0.02))]
MOMENTA = [0.0, 0.5, 0.9]


def test_branch_equals_separate_swaps_bit_for_bit_and_trains_as_them_under_vmap():
  tx = _tx()
  params, state = _trained(tx, 6)  # the common past: a stable checkpoint
  branched = lrjax.branch(state, learning_rate=lrjax.stack(K_SCHEDULES),
                          momentum=jnp.array(MOMENTA))
  separate = [lrjax.set_hyperparams(state, learning_rate=s, momentum=m)
              for s, m in zip(K_SCHEDULES, MOMENTA)]
  for k, alone in enumerate(separate):  # each branch is exactly that swap
    _assert_same(jax.tree.map(lambda x: x[k], branched), alone)

  step = jax.jit(jax.vmap(_step(tx), in_axes=(0, 0, None)))
  p, s = jax.tree.map(lambda x: jnp.stack([x] * 3), params), branched
  for i in range(6, 30):
    p, s = step(p, s, i)
  one = jax.jit(_step(tx))
  for k, alone in enumerate(separate):
    q, r = params, alone
    for i in range(6, 30):
      q, r = one(q, r, i)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[k], b, rtol=1e-6, atol=1e-7),
                 (p, s), (q, r))
  rates = jax.vmap(lambda st: lrjax.hyperparams(st)["learning_rate"])(s)
  np.testing.assert_allclose(rates, [float(x(29)) for x in K_SCHEDULES], rtol=1e-6)


def test_branch_of_a_model_and_optimizer_state_by_group():
  class Net(nnx.Module):
    def __init__(self, rngs):
      self.body = nnx.Linear(3, 4, rngs=rngs)
      self.head = nnx.Linear(4, 2, rngs=rngs)

  model = Net(nnx.Rngs(0))
  tx = optax.multi_transform(
      {"body": lrjax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.constant(0.05)),
       "head": lrjax.inject_hyperparams(optax.sgd)(learning_rate=RUN)},
      lambda ps: jax.tree_util.tree_map_with_path(lambda p, _: p[0].key, ps))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))
  x, h = jnp.ones((2, 3)), jnp.ones((2, 4))

  def step(state):
    model, optimizer = nnx.merge(graphdef, state)
    loss = lambda m: jnp.sum(m.body(x) ** 2) + jnp.sum(m.head(h) ** 2)
    optimizer.update(model, nnx.grad(loss)(model))
    return nnx.state((model, optimizer))

  heads = lrjax.stack(K_SCHEDULES)
  branched = lrjax.branch(state, group="head", learning_rate=heads)
  many = jax.jit(jax.vmap(step))
  for _ in range(4):
    branched = many(branched)
  for k, s in enumerate(K_SCHEDULES):
    alone = lrjax.set_hyperparams(state, group="head", learning_rate=s)
    for _ in range(4):
      alone = jax.jit(step)(alone)
    got = jax.tree.map(lambda a: a[k], branched)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 got, alone)
  body = jax.vmap(lambda st: lrjax.hyperparams(st, group="body")["learning_rate"])(branched)
  np.testing.assert_allclose(body, [0.05] * 3)
  assert many._cache_size() == 1


def _state():
  return _tx().init(PARAMS)


BAD = [
    (lambda: lrjax.branch(_state()), "branch: name at least one hyperparameter"),
    (lambda: lrjax.branch(_state(), learning_rate=RUN),
     "branch: learning_rate must be K schedules stacked by lrjax.stack([...]) or an array "
     "of K numbers"),
    (lambda: lrjax.branch(_state(), momentum=0.9),
     "branch: momentum must be K schedules stacked by lrjax.stack"),
    (lambda: lrjax.branch(_state(), learning_rate=lambda t: 0.1),
     "branch: learning_rate must be an lrjax schedule or a number, got the callable"),
    (lambda: lrjax.branch(_state(), learning_rate=lrjax.stack(K_SCHEDULES),
                          momentum=jnp.array([0.1, 0.2])),
     "branch: every hyperparameter must hold the same number of branches K, got "
     "{'learning_rate': 3, 'momentum': 2}"),
    (lambda: lrjax.branch(_state(), nesterov=jnp.array([0.0, 1.0])),
     "branch: nesterov is not a hyperparameter held in the state"),
    (lambda: lrjax.branch(_state(), group="head", momentum=jnp.array([0.0, 1.0])),
     "branch: group='head' holds no inject_hyperparams state; it has no groups"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m[:50] for _, m in BAD])
def test_bad_input(make, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    make()


def test_a_schedule_read_back_prints_the_call_that_builds_it():
  """The leaves come back as float32 arrays; the repr still reads as the
  hand-written call (shortest float32 text, defaults left out), and that
  text parses back to the schedule."""
  tx = lrjax.inject_hyperparams(optax.sgd)(
      learning_rate=lrjax.cooldown(lrjax.multistep(0.3, milestones=[15, 30], gamma=0.5),
                                   start=20, decay_steps=7))
  back = lrjax.schedules(tx.init(PARAMS))["learning_rate"]
  text = "cooldown(multistep(0.3, milestones=[15, 30], gamma=0.5), start=20, decay_steps=7)"
  assert repr(back) == text
  from lrjax.__main__ import main  # the command line parses the text back
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    assert main(["show", text, "--json"]) == 0
  assert json.loads(out.getvalue()) == {
      "type": "cooldown", "start": 20, "decay_steps": 7, "end_value": 0.0, "shape": "1-sqrt",
      "schedule": {"type": "multistep", "init_value": 0.3, "milestones": [15, 30], "gamma": 0.5}}
