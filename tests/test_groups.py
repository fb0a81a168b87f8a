"""Parameter groups: each group's rate, read with ``group=``, equals a float64
reference of PyTorch's per-group schedules (OneCycleLR with a max_lr list,
CyclicLR with base_lr/max_lr lists, LambdaLR with a list, ReduceLROnPlateau
with a min_lr list) and, where torch is installed, its real classes; one
group's schedule swapped without a new trace (jit, nnx.jit) while the other
group trains bit for bit as without the swap; groups through chain,
MultiSteps, masked, nnx.Optimizer and nnx.State; layer decay (`group_rates`)
against timm's formula; every bad input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax
import reference

STEPS = 300
PARAMS = {"body": jnp.linspace(-1.0, 1.0, 8), "head": jnp.linspace(0.5, 1.5, 4),
          "tail": jnp.ones(3)}
LABELS = {"body": "body", "head": "head", "tail": "tail"}


def _grads(i, params):
  i = jnp.asarray(i, jnp.float32)
  return jax.tree.map(lambda p: p + 0.5 * jnp.sin(7.0 * p + 0.37 * i), params)


def _sgd(schedule):
  return lrjax.inject_hyperparams(optax.sgd)(learning_rate=schedule)


def _per_group(groups):
  """multi_transform of one SGD per group, labelled by the top-level key."""
  return optax.multi_transform({g: _sgd(s) for g, s in groups.items()},
                               {k: k for k in groups})


def _rates(tx, params, steps):
  """Each group's recorded rate after each of `steps` jitted updates (the
  rate that update used), and the updates, read with hyperparams_by_group."""
  state = tx.init(params)

  @jax.jit
  def run(state):
    def body(state, i):
      g = _grads(i, params)
      updates, state = tx.update(g, state, params)
      rates = {k: hp["learning_rate"] for k, hp in lrjax.hyperparams_by_group(state).items()}
      return state, (rates, updates, g)
    return jax.lax.scan(body, state, jnp.arange(steps))

  state, (rates, updates, grads) = run(state)
  for group in rates:  # SGD: each group's update is -rate * gradient
    np.testing.assert_allclose(updates[group], -rates[group][:, None] * grads[group],
                               rtol=1e-6)
  return state, rates


# --- per-group schedules against PyTorch's formulas -------------------------------

MAX_LRS = {"body": 0.01, "head": 0.1, "tail": 0.05}


def test_one_cycle_max_lr_list():
  tx = _per_group({g: lrjax.one_cycle(peak_value=m, total_steps=STEPS)
                   for g, m in MAX_LRS.items()})
  state, rates = _rates(tx, {k: PARAMS[k] for k in MAX_LRS}, STEPS)
  t = np.arange(STEPS)
  for g, m in MAX_LRS.items():
    np.testing.assert_allclose(rates[g], reference.one_cycle_lr(t, m, STEPS), rtol=1e-6)
    ref = reference.one_cycle_lr(STEPS - 1, m, STEPS)
    np.testing.assert_allclose(lrjax.hyperparams(state, group=g)["learning_rate"], ref,
                               rtol=1e-6)


BASE_LRS, TOP_LRS = {"body": 1e-4, "head": 1e-3}, {"body": 1e-2, "head": 5e-2}


def test_cyclic_base_lr_and_max_lr_lists():
  tx = _per_group({g: lrjax.cyclic(base_value=BASE_LRS[g], max_value=TOP_LRS[g],
                                   step_size_up=40, step_size_down=60, mode="triangular2")
                   for g in BASE_LRS})
  _, rates = _rates(tx, {k: PARAMS[k] for k in BASE_LRS}, STEPS)
  for g in BASE_LRS:
    ref = reference.cyclic_lr(np.arange(STEPS), BASE_LRS[g], TOP_LRS[g], 40, 60,
                              mode="triangular2")
    np.testing.assert_allclose(rates[g], ref, rtol=1e-6)


# LambdaLR([f_body, f_head]) with base rates 0.1 and 0.01, each lambda as the
# lrjax schedule of the same formula (rates exact in float32, so the float64
# reference sees the numbers the schedules hold).
LAMBDAS = {"body": (0.1, lambda e: 0.96875**e),
           "head": (0.01, lambda e: 1.0 / (1.0 + 0.0625 * e))}


def test_lambda_lr_list():
  tx = _per_group({
      "body": lrjax.exponential_decay(0.1, decay_steps=1, decay_rate=0.96875),
      "head": lrjax.inverse_time_decay(0.01, decay_steps=1, decay_rate=0.0625),
  })
  _, rates = _rates(tx, {k: PARAMS[k] for k in LAMBDAS}, STEPS)
  for g, (base, f) in LAMBDAS.items():
    ref = np.array([base * f(float(e)) for e in range(STEPS)])
    np.testing.assert_allclose(rates[g], ref, rtol=1e-6)


PLATEAU_BASE, PLATEAU_MIN = {"body": 0.1, "head": 0.5}, {"body": 0.02, "head": 0.001}


def _metric_sequence(n, seed=3):
  """A loss that improves, stalls and wobbles, so rates drop several times."""
  rng = np.random.default_rng(seed)
  trend = np.concatenate([np.linspace(1.0, 0.5, n // 3), np.full(n - n // 3, 0.5)])
  return trend + 0.02 * rng.standard_normal(n)


def _torch_plateau_lrs(values, base_lrs, min_lrs, *, factor, patience, threshold=1e-4):
  """ReduceLROnPlateau.step with one lr per group (float64, lr units):
  `_reduce_lr` sets each group's lr to max(lr * factor, min_lr[i]) if that
  lowers it by more than eps (0 here)."""
  lrs, best, num_bad, out = list(base_lrs), math.inf, 0, []
  for v in values:
    if v < best * (1.0 - threshold):
      best, num_bad = v, 0
    else:
      num_bad += 1
    if num_bad > patience:
      lrs = [max(lr * factor, lo) if lr - max(lr * factor, lo) > 0.0 else lr
             for lr, lo in zip(lrs, min_lrs)]
      num_bad = 0
    out.append(list(lrs))
  return np.array(out)


def _plateau_groups(factor, patience):
  return optax.multi_transform(
      {g: optax.chain(_sgd(PLATEAU_BASE[g]),
                      lrjax.reduce_on_plateau(factor=factor, patience=patience, eps=0.0,
                                              min_scale=PLATEAU_MIN[g] / PLATEAU_BASE[g]))
       for g in PLATEAU_BASE},
      {k: k for k in PLATEAU_BASE})


def _plateau_rates(values):
  """Each group's rate after each observation, fed between jitted updates."""
  tx = _plateau_groups(factor=0.5, patience=3)
  params = {k: PARAMS[k] for k in PLATEAU_BASE}
  state = tx.init(params)
  update, observe = jax.jit(tx.update), jax.jit(lrjax.observe_plateau)
  got = []
  for v in values:
    updates, state = update(_grads(0, params), state, params)
    state = observe(state, v)  # no group=: every group's plateau sees it
    got.append([lrjax.hyperparams(state, group=k)["learning_rate"]
                * lrjax.plateau_scale(state, group=k) for k in PLATEAU_BASE])
  return np.array(got)


def test_reduce_on_plateau_min_lr_list():
  values = _metric_sequence(120)
  ref = _torch_plateau_lrs(values, list(PLATEAU_BASE.values()),
                           list(PLATEAU_MIN.values()), factor=0.5, patience=3)
  np.testing.assert_allclose(_plateau_rates(values), ref, rtol=1e-6)
  assert ref[-1, 1] == PLATEAU_MIN["head"] and ref[0, 1] == PLATEAU_BASE["head"]
  assert len(set(ref[:, 0])) >= 3  # body reduced at least twice before its floor


# --- the real torch classes, side by side --------------------------------------------


def _torch_lrs(make_scheduler, base_lrs, steps, metrics=None):
  torch = pytest.importorskip("torch")
  opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr}
                         for lr in base_lrs], lr=base_lrs[0])
  sched = make_scheduler(torch, opt)
  out = []
  for t in range(steps):
    out.append([g["lr"] for g in opt.param_groups])
    opt.step()
    sched.step(*([] if metrics is None else [metrics[t]]))
  return np.array(out)


def test_real_torch_one_cycle_cyclic_lambda():
  one_cycle = _torch_lrs(lambda torch, o: torch.optim.lr_scheduler.OneCycleLR(
      o, max_lr=list(MAX_LRS.values()), total_steps=STEPS), list(MAX_LRS.values()), STEPS)
  tx = _per_group({g: lrjax.one_cycle(peak_value=m, total_steps=STEPS)
                   for g, m in MAX_LRS.items()})
  _, rates = _rates(tx, {k: PARAMS[k] for k in MAX_LRS}, STEPS)
  np.testing.assert_allclose(np.stack([rates[g] for g in MAX_LRS], 1), one_cycle, rtol=1e-5)

  cyclic = _torch_lrs(lambda torch, o: torch.optim.lr_scheduler.CyclicLR(
      o, base_lr=list(BASE_LRS.values()), max_lr=list(TOP_LRS.values()), step_size_up=40,
      step_size_down=60, mode="triangular2", cycle_momentum=False),
      list(BASE_LRS.values()), STEPS)
  tx = _per_group({g: lrjax.cyclic(base_value=BASE_LRS[g], max_value=TOP_LRS[g],
                                   step_size_up=40, step_size_down=60, mode="triangular2")
                   for g in BASE_LRS})
  _, rates = _rates(tx, {k: PARAMS[k] for k in BASE_LRS}, STEPS)
  np.testing.assert_allclose(np.stack([rates[g] for g in BASE_LRS], 1), cyclic, rtol=1e-5)

  lam = _torch_lrs(lambda torch, o: torch.optim.lr_scheduler.LambdaLR(
      o, [f for _, f in LAMBDAS.values()]), [b for b, _ in LAMBDAS.values()], STEPS)
  tx = _per_group({
      "body": lrjax.exponential_decay(0.1, decay_steps=1, decay_rate=0.96875),
      "head": lrjax.inverse_time_decay(0.01, decay_steps=1, decay_rate=0.0625),
  })
  _, rates = _rates(tx, {k: PARAMS[k] for k in LAMBDAS}, STEPS)
  np.testing.assert_allclose(np.stack([rates[g] for g in LAMBDAS], 1), lam, rtol=1e-5)


def test_real_torch_reduce_on_plateau_min_lr_list():
  values = _metric_sequence(120)
  lrs = _torch_lrs(lambda torch, o: torch.optim.lr_scheduler.ReduceLROnPlateau(
      o, factor=0.5, patience=3, min_lr=list(PLATEAU_MIN.values()), eps=0.0),
      list(PLATEAU_BASE.values()), len(values), metrics=values)
  # torch's rate before step t is ours after observation t - 1.
  np.testing.assert_allclose(lrs[1:], _plateau_rates(values)[:-1], rtol=1e-6)


# --- one trace while one group's schedule is swapped ------------------------------------

BODY_HEAD = {"body": PARAMS["body"], "head": PARAMS["head"]}


def _adamw_groups():
  return optax.multi_transform(
      {"body": lrjax.inject_hyperparams(optax.adamw)(
          learning_rate=lrjax.cosine_decay(1e-2, decay_steps=40), weight_decay=0.01),
       "head": lrjax.inject_hyperparams(optax.adamw)(
          learning_rate=lrjax.cosine_decay(1e-1, warmup_steps=5, decay_steps=40))},
      {"body": "body", "head": "head"})


SWAPS = {20: lrjax.cosine_decay(0.3, warmup_steps=2, decay_steps=10),
         30: lrjax.cosine_decay(0.05, decay_steps=5, end_value=0.01)}


def test_jit_one_trace_swapping_one_group_other_group_bit_for_bit():
  tx = _adamw_groups()
  traces = []

  @jax.jit
  def step(params, state, i):
    traces.append(1)  # runs once per trace
    updates, state = tx.update(_grads(i, params), state, params)
    return optax.apply_updates(params, updates), state

  def run(swaps):
    params, state = BODY_HEAD, tx.init(BODY_HEAD)
    heads = []
    for i in range(40):
      if i in swaps:
        state = lrjax.set_hyperparams(state, group="head", learning_rate=swaps[i])
      params, state = step(params, state, i)
      heads.append(float(lrjax.hyperparams(state, group="head")["learning_rate"]))
    return params, heads

  swapped, heads = run(SWAPS)
  plain, _ = run({})
  assert len(traces) == 1
  np.testing.assert_array_equal(swapped["body"], plain["body"])
  assert not np.allclose(swapped["head"], plain["head"])
  for i in (20, 25, 30, 39):  # update i evaluates the schedule in place at count i
    sched = SWAPS[30] if i >= 30 else SWAPS[20]
    np.testing.assert_allclose(heads[i], float(sched(i)), rtol=1e-6)


class _Net(nnx.Module):

  def __init__(self, rngs):
    self.body = nnx.Linear(3, 4, rngs=rngs)
    self.head = nnx.Linear(4, 2, rngs=rngs)

  def __call__(self, x):
    return self.head(jnp.tanh(self.body(x)))


def _nnx_setup():
  model = _Net(nnx.Rngs(0))
  tx = optax.multi_transform(
      {"body": lrjax.inject_hyperparams(optax.sgd)(
          learning_rate=lrjax.cosine_decay(0.05, decay_steps=30), momentum=0.9),
       "head": lrjax.inject_hyperparams(optax.sgd)(
          learning_rate=lrjax.cosine_decay(0.2, decay_steps=30), momentum=0.9)},
      lambda params: jax.tree_util.tree_map_with_path(lambda p, _: p[0].key, params))
  return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


X = jnp.linspace(-1.0, 1.0, 15).reshape(5, 3)
H = jnp.cos(jnp.arange(20.0)).reshape(5, 4)


def _loss(model):
  """Body and head losses apart, so each group's gradient is its own."""
  return jnp.sum(jnp.tanh(model.body(X)) ** 2) + jnp.sum(model.head(H) ** 2)


def test_nnx_jit_one_trace_swapping_one_group_other_group_bit_for_bit():
  traces = []

  @nnx.jit
  def step(model, optimizer):
    traces.append(1)
    grads = nnx.grad(_loss)(model)
    optimizer.update(model, grads)

  def run(swap):
    model, optimizer = _nnx_setup()
    for i in range(12):
      if swap and i in (4, 8):
        optimizer.opt_state = lrjax.set_hyperparams(
            optimizer.opt_state, group="head",
            learning_rate=lrjax.cosine_decay(0.5 / i, decay_steps=10))
      step(model, optimizer)
    return model, optimizer

  model_a, opt_a = run(True)
  traces_swapped = len(traces)
  model_b, _ = run(False)
  assert traces_swapped == 1
  np.testing.assert_array_equal(model_a.body.kernel.get_value(),
                                model_b.body.kernel.get_value())
  assert not np.allclose(model_a.head.kernel.get_value(), model_b.head.kernel.get_value())
  np.testing.assert_allclose(lrjax.hyperparams(opt_a.opt_state, group="head")["learning_rate"],
                             float(lrjax.cosine_decay(0.5 / 8, decay_steps=10)(11)), rtol=1e-6)


def test_nnx_state_of_model_and_optimizer():
  # nnx.state turns the optax NamedTuples into nested mappings: the states are
  # found by their fields, the groups by inner_states, never by other keys.
  model, optimizer = _nnx_setup()
  graphdef, state = nnx.split((model, optimizer))
  assert set(lrjax.hyperparams_by_group(state)) == {"body", "head"}
  np.testing.assert_allclose(lrjax.hyperparams(state, group="head")["learning_rate"], 0.2)
  new = lrjax.cosine_decay(0.7, decay_steps=30)
  state = lrjax.set_hyperparams(state, group="head", learning_rate=new)
  np.testing.assert_allclose(lrjax.hyperparams(state, group="head")["learning_rate"], 0.7)
  np.testing.assert_allclose(lrjax.hyperparams(state, group="body")["learning_rate"], 0.05)

  @jax.jit
  def step(state):
    model, optimizer = nnx.merge(graphdef, state)
    grads = nnx.grad(lambda m: jnp.sum(m(X) ** 2))(model)
    optimizer.update(model, grads)
    return nnx.state((model, optimizer))

  for _ in range(3):
    state = step(state)
  np.testing.assert_allclose(lrjax.hyperparams(state, group="head")["learning_rate"],
                             float(new(2)), rtol=1e-6)
  assert step._cache_size() == 1
  with pytest.raises(ValueError, match="group='opt_state' holds no inject_hyperparams"):
    lrjax.hyperparams(state, group="opt_state")
  with pytest.raises(ValueError, match="must have the structure of the schedule it replaces"):
    lrjax.set_hyperparams(state, group="head", learning_rate=lrjax.constant(0.1))


# --- through chain, MultiSteps, masked ------------------------------------------------

HEAD_SCHED = lrjax.exponential_decay(0.4, decay_steps=1, decay_rate=0.5)


def _two():
  return optax.multi_transform({"body": _sgd(0.01), "head": _sgd(HEAD_SCHED)},
                               {"body": "body", "head": "head"})


WRAPPED = {
    "chain": lambda: optax.chain(optax.clip_by_global_norm(100.0), _two()),
    "masked": lambda: optax.masked(_two(), {"body": True, "head": True}),
    "partition_in_partition": lambda: optax.multi_transform(
        {"all": _two()}, {"body": "all", "head": "all"}),
}


@pytest.mark.parametrize("name", list(WRAPPED))
def test_groups_through_wrappers(name):
  tx = WRAPPED[name]()
  state = tx.init(BODY_HEAD)
  g = jax.tree.map(jnp.ones_like, BODY_HEAD)
  for t in range(3):
    updates, state = tx.update(g, state, BODY_HEAD)
    np.testing.assert_allclose(updates["head"], -0.4 * 0.5**t, rtol=1e-6)
    np.testing.assert_allclose(updates["body"], -0.01, rtol=1e-6)
    np.testing.assert_allclose(lrjax.hyperparams(state, group="head")["learning_rate"],
                               0.4 * 0.5**t, rtol=1e-6)
  state = lrjax.set_hyperparams(state, group="body", learning_rate=0.03)
  updates, state = tx.update(g, state, BODY_HEAD)
  np.testing.assert_allclose(updates["body"], -0.03, rtol=1e-6)
  np.testing.assert_allclose(updates["head"], -0.4 * 0.5**3, rtol=1e-6)


def test_multi_steps_counts_real_updates_only():
  tx = optax.MultiSteps(_two(), every_k_schedule=3)
  state, update = tx.init(BODY_HEAD), jax.jit(tx.update)
  g = jax.tree.map(jnp.ones_like, BODY_HEAD)
  for t in range(9):  # 9 mini-steps: 3 real updates, the last one at count 2
    _, state = update(g, state, BODY_HEAD)
  np.testing.assert_allclose(lrjax.hyperparams(state, group="head")["learning_rate"],
                             0.4 * 0.5**2, rtol=1e-6)
  state = lrjax.set_hyperparams(state, group="head", learning_rate=0.9)
  for _ in range(3):
    updates, state = update(g, state, BODY_HEAD)
  np.testing.assert_allclose(updates["head"], -0.9, rtol=1e-6)


def test_without_group_set_and_observe_act_on_every_group():
  tx = optax.multi_transform(
      {g: optax.chain(_sgd(0.1), lrjax.reduce_on_plateau(factor=0.5, patience=0,
                                                         min_scale=m))
       for g, m in (("body", 0.2), ("head", 0.1))},
      {"body": "body", "head": "head"})
  state = lrjax.set_hyperparams(tx.init(BODY_HEAD), learning_rate=0.3)
  for v in (1.0, 2.0):
    state = lrjax.observe_plateau(state, v)  # both: 1.0 is best, 2.0 halves
  for v in (3.0, 4.0):
    state = lrjax.observe_plateau(state, v, group="body")
  # body: 0.5 -> 0.25 -> its floor 0.2; head saw two values only.
  for g, scale in (("body", 0.2), ("head", 0.5)):
    np.testing.assert_allclose(lrjax.hyperparams(state, group=g)["learning_rate"], 0.3)
    np.testing.assert_allclose(lrjax.plateau_scale(state, group=g), scale, rtol=1e-6)
  one = lrjax.observe_plateau(state, 5.0, group="head")
  jax.tree.map(np.testing.assert_array_equal, one.inner_states["body"],
               state.inner_states["body"])
  np.testing.assert_allclose(lrjax.plateau_scale(one, group="head"), 0.25, rtol=1e-6)


# --- layer decay: group_rates ------------------------------------------------------------

L, DECAY = 4, 0.65


def _layer_params():
  return {f"layer_{i}": jnp.linspace(-1.0, 1.0, 6) * (i + 1) for i in range(L + 1)}


def _layer_of(path):
  return int(path[0].split("_")[1])


def test_group_rates_layer_decay_matches_timm_formula_and_optax():
  base = lrjax.cosine_decay(1e-2, warmup_steps=10, decay_steps=90, init_value=1e-4)
  tx = lrjax.group_rates(optax.adamw, base, multiples={i: DECAY ** (L - i)
                                                       for i in range(L + 1)},
                         labels=_layer_of, weight_decay=0.05)
  params = _layer_params()
  state = tx.init(params)

  @jax.jit
  def run(params, state):
    def body(carry, i):
      params, state = carry
      updates, state = tx.update(_grads(i, params), state, params)
      rates = {k: hp["learning_rate"] for k, hp in lrjax.hyperparams_by_group(state).items()}
      return (optax.apply_updates(params, updates), state), rates
    return jax.lax.scan(body, (params, state), jnp.arange(100))

  (ours, state), rates = run(params, state)
  # timm param_groups_layer_decay: layer_scales[i] = layer_decay ** (layer_max - i);
  # its scheduler sets param_group["lr"] = value * param_group["lr_scale"].
  t = np.arange(100)
  value = reference.optax_warmup_cosine(t, 1e-4, 1e-2, 10, 100)
  for i in range(L + 1):
    np.testing.assert_allclose(rates[i], value * DECAY ** (L - i), rtol=1e-6)
  # The same groups written by hand with optax's own multi_transform.
  theirs = optax.multi_transform(
      {i: optax.adamw(lambda c, m=DECAY ** (L - i): m * base(c), weight_decay=0.05)
       for i in range(L + 1)},
      {k: _layer_of((k,)) for k in params})
  p, s = params, theirs.init(params)
  for i in range(100):
    u, s = theirs.update(_grads(i, p), s, p)
    p = optax.apply_updates(p, u)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ours, p)
  # State size: optax's multi_transform of the same groups, plus each group's
  # count, schedule and values (scalars: adamw's 6 values, 14 schedule leaves).
  def size(tree, big):
    return sum(np.size(x) for x in jax.tree.leaves(tree) if (np.ndim(x) > 0) == big)
  assert size(state, True) == size(s, True)  # the moments, once per parameter
  assert 0 < size(state, False) - size(s, False) <= 24 * (L + 1)


def test_group_rates_with_a_label_tree_and_set_per_group():
  tx = lrjax.group_rates(optax.sgd, lrjax.constant(0.1), multiples={"a": 1.0, "b": 0.1},
                         labels={"body": "a", "head": "b"})
  state = tx.init(BODY_HEAD)
  g = jax.tree.map(jnp.ones_like, BODY_HEAD)
  updates, state = tx.update(g, state, BODY_HEAD)
  np.testing.assert_allclose(updates["body"], -0.1, rtol=1e-6)
  np.testing.assert_allclose(updates["head"], -0.01, rtol=1e-6)
  # A plain set_hyperparams replaces every group's multiple too.
  updates, _ = tx.update(g, lrjax.set_hyperparams(state, learning_rate=0.2), BODY_HEAD)
  np.testing.assert_allclose(updates["head"], -0.2, rtol=1e-6)


# --- bad input -------------------------------------------------------------------------


def _state():
  return _two().init(BODY_HEAD)


def _plateau_state():
  return _plateau_groups(0.5, 1).init({k: PARAMS[k] for k in PLATEAU_BASE})


BAD = [
    (lambda: lrjax.hyperparams(_state()),
     "hyperparams: opt_state holds 2 inject_hyperparams states in the groups "
     "['body', 'head']; pass group= to choose one"),
    (lambda: lrjax.schedules(_state()), "schedules: opt_state holds 2 inject_hyperparams "
     "states in the groups ['body', 'head']; pass group="),
    (lambda: lrjax.plateau_scale(_plateau_state()),
     "plateau_scale: opt_state holds 2 reduce_on_plateau states in the groups "
     "['body', 'head']; pass group="),
    (lambda: lrjax.plateau_settings(_plateau_state()),
     "plateau_settings: opt_state holds 2 reduce_on_plateau states in the groups"),
    (lambda: lrjax.hyperparams(_state(), group="neck"),
     "hyperparams: group='neck' holds no inject_hyperparams state; the groups there are: "
     "['body', 'head']"),
    (lambda: lrjax.set_hyperparams(_state(), group="neck", learning_rate=0.1),
     "set_hyperparams: group='neck' holds no inject_hyperparams state; the groups there "
     "are: ['body', 'head']"),
    (lambda: lrjax.observe_plateau(_plateau_state(), 1.0, group="neck"),
     "observe_plateau: group='neck' holds no reduce_on_plateau state; the groups there are"),
    (lambda: lrjax.plateau_scale(_plateau_state(), group="neck"),
     "plateau_scale: group='neck' holds no reduce_on_plateau state"),
    (lambda: lrjax.set_plateau_settings(_plateau_state(), group="neck", patience=2),
     "set_plateau_settings: group='neck' holds no reduce_on_plateau state"),
    (lambda: lrjax.hyperparams(_sgd(0.1).init(BODY_HEAD), group="head"),
     "hyperparams: group='head' holds no inject_hyperparams state; it has no groups"),
    (lambda: lrjax.set_hyperparams(_state(), group="head", momentum=0.9),
     "set_hyperparams: momentum is not a hyperparameter held in the state of group 'head'"),
    (lambda: lrjax.group_rates(optax.sgd, 0.1, multiples={}, labels={}),
     "group_rates: multiples must be a non-empty mapping"),
    (lambda: lrjax.group_rates(optax.sgd, 0.1, multiples={"a": -1.0}, labels="a"),
     "group_rates: multiples['a'] must be > 0.0"),
    (lambda: lrjax.group_rates(optax.sgd, lambda t: 0.1, multiples={"a": 1.0}, labels="a"),
     "group_rates: schedule must be an lrjax schedule or a number, got the callable"),
    (lambda: lrjax.group_rates(optax.sgd, 0.1, multiples={"a": 1.0}, labels="a",
                               learning_rate=0.2),
     "group_rates: hyperparam='learning_rate' takes schedule times each group's multiple"),
    (lambda: lrjax.group_rates(optax.sgd, 0.1, multiples={"a": 1.0},
                               labels={"body": "a", "head": "b"}),
     "group_rates: labels gives the labels ['b'] that are not in multiples"),
    (lambda: lrjax.group_rates(optax.sgd, 0.1, multiples={"a": 1.0},
                               labels=lambda path: path[0]).init(BODY_HEAD),
     "group_rates: labels gives the labels"),
]


@pytest.mark.parametrize("make,message", BAD, ids=[m[:60] for _, m in BAD])
def test_bad_input(make, message):
  with pytest.raises(ValueError) as e:
    make()
  assert message in str(e.value)
