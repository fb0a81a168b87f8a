"""Tests for `lrjax.reduce_on_plateau`, `observe_plateau`, `plateau_scale`,
`plateau_settings` and `set_plateau_settings`.

Expected scales come from PyTorch's documented ``ReduceLROnPlateau`` algorithm:
hand-written tables, and `reference_scales` below, a float64 reimplementation
of ``ReduceLROnPlateau.step`` (learning rate = scale, initial learning rate 1,
``min_lr`` = ``min_scale``) with lrjax's two documented differences (the
``rel`` threshold for negative best values, non-finite values never best).
Where torch is installed, its real scheduler is compared too.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

NAN, INF = float("nan"), float("inf")

# --- the reference -------------------------------------------------------------


def reference_scales(values, *, changes=None, **settings):
  """The scale after each value, per PyTorch's ReduceLROnPlateau.step (float64).

  `settings` are `reduce_on_plateau`'s (its defaults where not given);
  `changes` maps an index to settings assigned before that value is observed,
  as a PyTorch user assigns ``scheduler.patience = ...`` mid-run. Returns a
  list of (scale, best, num_bad, cooldown_counter) after each value.
  """
  cfg = dict(factor=0.1, patience=10, mode="min", threshold=1e-4, threshold_mode="rel",
             cooldown=0, min_scale=0.0, eps=1e-8, accumulation_size=1)
  cfg.update(settings)

  def is_better(a, best):
    threshold, mode = cfg["threshold"], cfg["mode"]
    if not math.isfinite(a):  # lrjax: NaN and infinities are never better
      return False
    if math.isinf(best):  # the first finite value
      return True
    if mode == "min" and cfg["threshold_mode"] == "rel":
      return a < best - threshold * abs(best)  # torch: a < best * (1 - t)
    if mode == "min":
      return a < best - threshold
    if cfg["threshold_mode"] == "rel":
      return a > best + threshold * abs(best)  # torch: a > best * (1 + t)
    return a > best + threshold

  scale, num_bad, cooldown_counter = 1.0, 0, 0
  best = INF if cfg["mode"] == "min" else -INF
  window, out = [], []
  for i, v in enumerate(values):
    cfg.update((changes or {}).get(i, {}))
    window.append(float(v))
    if len(window) == cfg["accumulation_size"]:
      current = sum(window) / cfg["accumulation_size"]
      window = []
      if is_better(current, best):
        best, num_bad = current, 0
      else:
        num_bad += 1
      if cooldown_counter > 0:
        cooldown_counter -= 1
        num_bad = 0
      if num_bad > cfg["patience"]:
        new_scale = max(scale * cfg["factor"], cfg["min_scale"])
        if scale - new_scale > cfg["eps"]:
          scale = new_scale
        cooldown_counter = cfg["cooldown"]
        num_bad = 0
    out.append((scale, best, num_bad, cooldown_counter))
  return out


# --- hand tables -----------------------------------------------------------------
# (id, settings, values, the scale after each value), worked out by hand from
# the algorithm in the docstring of `reference_scales`.

TABLES = [
    ("min_rel", dict(factor=0.5, patience=2),
     [10, 9, 9, 9, 9, 8, 8, 8, 8, 8],
     [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]),
    ("min_rel_threshold", dict(factor=0.5, patience=1, threshold=0.1),
     # 0.95 is not below 1.0 * 0.9; 0.89 is; 0.80 < 0.801; 0.79, 0.75 > 0.72
     [1.0, 0.95, 0.89, 0.85, 0.80, 0.79, 0.75],
     [1, 1, 1, 1, 1, 1, 0.5]),
    ("min_abs", dict(factor=0.1, patience=0, threshold=0.5, threshold_mode="abs"),
     [5.0, 4.6, 4.4, 4.0, 3.8],
     [1, 0.1, 0.1, 0.01, 0.01]),
    ("max_rel", dict(mode="max", factor=0.5, patience=1, threshold=0.01),
     [0.50, 0.60, 0.605, 0.61, 0.70, 0.69, 0.70],
     [1, 1, 1, 1, 1, 1, 0.5]),
    ("max_abs", dict(mode="max", factor=0.5, patience=0, threshold=0.02,
                     threshold_mode="abs"),
     [0.5, 0.51, 0.53, 0.54, 0.56],
     [1, 0.5, 0.5, 0.25, 0.25]),
    ("cooldown", dict(factor=0.5, patience=1, cooldown=2, threshold=0.0),
     [1.0] * 10,
     [1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]),
    ("improve_in_cooldown", dict(factor=0.5, patience=0, cooldown=1, threshold=0.0),
     [3, 3, 2, 2, 2],
     [1, 0.5, 0.5, 0.25, 0.25]),
    ("min_scale", dict(factor=0.5, patience=0, min_scale=0.3),
     [1, 1, 1, 1],
     [1, 0.5, 0.3, 0.3]),
    ("eps", dict(factor=0.1, patience=0, eps=0.005),
     [1] * 6,
     [1, 0.1, 0.01, 0.001, 0.001, 0.001]),
    ("negative_worsening", dict(factor=0.5, patience=1),
     # torch counts -9.5 and -9 as improvements (-9.5 < -10 * 0.9999)
     [-10, -9.5, -9],
     [1, 1, 0.5]),
    ("negative_improving", dict(factor=0.5, patience=1),
     [-1, -2, -3, -3, -3],
     [1, 1, 1, 1, 0.5]),
    ("negative_max", dict(mode="max", factor=0.5, patience=0),
     [-5, -4, -4.5, -4.2],
     [1, 1, 0.5, 0.25]),
    ("nonfinite", dict(factor=0.5, patience=1),
     [1.0, NAN, INF, 0.5, -INF, NAN],
     [1, 1, 0.5, 0.5, 0.5, 0.25]),
    ("nan_first", dict(factor=0.5, patience=0),
     [NAN, NAN, 1.0, 1.0],
     [0.5, 0.25, 0.25, 0.125]),
    ("inf_max", dict(mode="max", factor=0.5, patience=0),
     [1.0, INF, 2.0],
     [1, 0.5, 0.5]),
    ("window", dict(factor=0.5, patience=0, accumulation_size=3),
     # window means 2, 2 (bad: reduce), 0.8333 (better)
     [3, 2, 1, 2, 2, 2, 1, 1, 0.5],
     [1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5]),
    ("window_nan", dict(factor=0.5, patience=0, accumulation_size=2),
     [1, 2, 1, NAN, 0.5, 0.5],
     [1, 1, 1, 0.5, 0.5, 0.5]),
]
TABLE_IDS = [t[0] for t in TABLES]


def _observe_all(settings, values, *, eager=True):
  """Scales, best values and windows after each `observe_plateau` call, made
  one by one eagerly or in a jitted `lax.scan`."""
  tx = optax.chain(optax.sgd(1.0), lrjax.reduce_on_plateau(**settings))
  state = tx.init(jnp.zeros(2))

  def observe(state, v):
    state = lrjax.observe_plateau(state, v)
    plateau = state[1]
    return state, (lrjax.plateau_scale(state), plateau.best_value, plateau.window_count)

  if eager:
    out = []
    for v in values:
      state, row = observe(state, v)
      out.append([float(x) for x in row])
    return tuple(np.array(out).T)
  scan = jax.jit(lambda s, vs: jax.lax.scan(observe, s, vs)[1])
  return tuple(np.asarray(x) for x in scan(state, jnp.asarray(values, jnp.float32)))


@pytest.mark.parametrize("case", TABLES, ids=TABLE_IDS)
def test_reference_matches_hand_tables(case):
  _, settings, values, expected = case
  got = [s for s, *_ in reference_scales(values, **settings)]
  np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("case", TABLES, ids=TABLE_IDS)
def test_observe_plateau_tables(case):
  _, settings, values, expected = case
  scales, bests, windows = _observe_all(settings, values)
  np.testing.assert_allclose(scales, expected, rtol=1e-6)
  ref = reference_scales(values, **settings)
  np.testing.assert_allclose(bests, [r[1] for r in ref], rtol=1e-6)
  size = settings.get("accumulation_size", 1)
  np.testing.assert_array_equal(windows, np.arange(1, len(values) + 1) % size)


@pytest.mark.parametrize("case", TABLES, ids=TABLE_IDS)
def test_update_value_tables_under_jit_scan(case):
  """`value=` on every update, in a jitted lax.scan: same scales; each update
  is scaled by the scale from before its own value."""
  _, settings, values, expected = case
  lr = 0.5
  tx = optax.chain(optax.sgd(lr), lrjax.reduce_on_plateau(**settings))
  grads = jnp.array([1.0, -2.0], jnp.float32)

  @jax.jit
  def run(values):
    def step(state, v):
      updates, state = tx.update(grads, state, value=v)
      return state, (updates, lrjax.plateau_scale(state))

    return jax.lax.scan(step, tx.init(grads), values)[1]

  updates, scales = run(jnp.asarray(values, jnp.float32))
  np.testing.assert_allclose(scales, expected, rtol=1e-6)
  before = np.concatenate([[1.0], expected[:-1]])
  np.testing.assert_allclose(
      updates, -lr * before[:, None] * np.asarray(grads)[None, :], rtol=1e-6
  )


# --- random sequences against the reference and against torch ------------------


def _random_metric(seed, n, *, negative=False):
  """A noisy, improving-then-flat metric: plateaus trigger reductions."""
  rng = np.random.default_rng(seed)
  trend = 1.0 + 4.0 * np.exp(-np.arange(n) / 30.0)
  noise = rng.normal(0.0, 0.03, n) * (rng.random(n) < 0.8)
  values = (trend + noise).astype(np.float32)
  return -values if negative else values


RANDOM_SETTINGS = [
    dict(),
    dict(factor=0.5, patience=3),
    dict(factor=0.5, patience=2, threshold=0.01, cooldown=2),
    dict(factor=0.3, patience=1, threshold=0.02, threshold_mode="abs"),
    dict(factor=0.5, patience=0, min_scale=0.02),
    dict(factor=0.5, patience=1, eps=0.01),
    dict(factor=0.5, patience=2, mode="max"),
    dict(factor=0.7, patience=4, mode="max", threshold=0.05,
         threshold_mode="abs", cooldown=3),
]


@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("settings", RANDOM_SETTINGS, ids=repr)
def test_random_sequences_match_reference(settings, negative):
  values = _random_metric(len(repr(settings)), 300, negative=negative)
  if settings.get("mode") == "max":
    values = -values  # an accuracy-like metric, rising then flat
  for size in (1, 4):
    kw = dict(settings, accumulation_size=size)
    ref = reference_scales(values, **kw)
    scales, bests, _ = _observe_all(kw, values, eager=False)
    np.testing.assert_allclose(scales, [r[0] for r in ref], rtol=1e-5)
    np.testing.assert_allclose(bests, [r[1] for r in ref], rtol=1e-5)
    assert len({r[0] for r in ref}) > 1, "the sequence never reduces: a weak test"


@pytest.mark.parametrize("settings", RANDOM_SETTINGS, ids=repr)
def test_random_sequences_match_torch(settings):
  torch = pytest.importorskip("torch")
  values = _random_metric(7 + len(repr(settings)), 300)
  if settings.get("mode") == "max":
    values = 10.0 - values
  kw = dict(settings)
  if "min_scale" in kw:
    kw["min_lr"] = kw.pop("min_scale")
  opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
  torch_scales = []
  for v in values:
    sched.step(float(v))
    torch_scales.append(opt.param_groups[0]["lr"])
  scales, _, _ = _observe_all(settings, values, eager=False)
  np.testing.assert_allclose(scales, torch_scales, rtol=1e-5)
  assert len(set(torch_scales)) > 1


# --- the transform ----------------------------------------------------------------


def test_update_without_value_only_scales():
  tx = lrjax.reduce_on_plateau(factor=0.5, patience=0)
  grads = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(-3.0)}
  state = tx.init(grads)
  for v in (1.0, 2.0):  # the second value is worse: scale 0.5
    state = lrjax.observe_plateau(state, v)
  updates, new_state = tx.update(grads, state)
  np.testing.assert_allclose(updates["w"], [0.5, 1.0])
  np.testing.assert_allclose(updates["b"], -1.5)
  np.testing.assert_array_equal(new_state.stats, state.stats)
  assert float(state.scale) == 0.5
  assert float(state.num_bad) == 0 and float(state.best_value) == 1.0


def test_state_fields_and_dtypes():
  tx = lrjax.reduce_on_plateau(mode="max", patience=3, cooldown=2, accumulation_size=2)
  state = tx.init({"w": jnp.zeros(3, jnp.bfloat16)})
  assert isinstance(state, lrjax.ReduceOnPlateauState)
  assert state.stats.dtype == jnp.float32 and state.settings.dtype == jnp.float32
  assert float(state.scale) == 1.0 and float(state.best_value) == -INF
  for v in (0.5, 0.7, 0.1):
    state = lrjax.observe_plateau(state, v)
  # one window (mean 0.6) decided, one value (0.1) waiting
  np.testing.assert_allclose(float(state.best_value), 0.6, rtol=1e-6)
  assert float(state.window_count) == 1.0
  np.testing.assert_allclose(float(state.window_sum), 0.1, rtol=1e-6)
  assert float(state.num_bad) == 0.0 and float(state.cooldown_counter) == 0.0


def test_bf16_params_keep_float32_statistics():
  """Improvements of 0.1% per step: bf16 (8-bit mantissa) rounds them away,
  float32 statistics see every one, so the scale never drops."""
  params = jnp.ones(4, jnp.bfloat16)
  tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(factor=0.5, patience=2))
  state = tx.init(params)
  values = [1.0 - 0.001 * i for i in range(30)]
  grads = jnp.ones(4, jnp.bfloat16)
  update = jax.jit(lambda s, v: tx.update(grads, s, params, value=v))
  for v in values:
    updates, state = update(state, v)
  assert updates.dtype == jnp.bfloat16
  assert state[1].stats.dtype == jnp.float32
  expected = reference_scales(values, factor=0.5, patience=2)[-1][0]
  assert expected == 1.0
  assert float(lrjax.plateau_scale(state)) == expected
  np.testing.assert_allclose(float(state[1].best_value), values[-1], rtol=1e-6)
  # with the values rounded to bf16, as a bf16 statistic would hold them, the
  # same algorithm reduces: the float32 statistics are what prevent it
  rounded = [float(jnp.asarray(v, jnp.bfloat16)) for v in values]
  assert reference_scales(rounded, factor=0.5, patience=2)[-1][0] < 1.0


def test_scale_cast_to_update_dtype():
  tx = lrjax.reduce_on_plateau(factor=0.1, patience=0)
  state = tx.init(None)
  for v in (1.0, 1.0):
    state = lrjax.observe_plateau(state, v)
  g = {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
  updates, _ = tx.update(g, state)
  assert updates["a"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float32
  assert float(updates["a"][0]) == float(jnp.asarray(0.1, jnp.bfloat16))
  np.testing.assert_allclose(updates["b"], 0.1, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True])
def test_feeding_styles_agree(jit):
  """update(value=v) == update() then observe_plateau(v), step by step."""
  settings = dict(factor=0.5, patience=1, cooldown=1, accumulation_size=2)
  tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(**settings))
  values = _random_metric(3, 160)
  grads = jnp.array([1.0, -1.0, 0.5])
  with_value = lambda s, v: tx.update(grads, s, value=v)
  then_observe = lambda s, v: (lambda u, s: (u, lrjax.observe_plateau(s, v)))(
      *tx.update(grads, s)
  )
  if jit:
    with_value, then_observe = jax.jit(with_value), jax.jit(then_observe)
  s1 = s2 = tx.init(grads)
  for v in values:
    u1, s1 = with_value(s1, v)
    u2, s2 = then_observe(s2, v)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(s1[1].stats, s2[1].stats)
  ref = reference_scales(values, **settings)[-1][0]
  np.testing.assert_allclose(float(lrjax.plateau_scale(s1)), ref, rtol=1e-6)
  assert ref < 1.0


def test_metric_forms():
  tx = lrjax.reduce_on_plateau(factor=0.5, patience=0)
  state = tx.init(None)
  for v in (2, np.float64(3.0), jnp.array([4.0]), jnp.asarray(5.0, jnp.bfloat16)):
    state = lrjax.observe_plateau(state, v)
  assert float(state.scale) == 0.5**3 and float(state.best_value) == 2.0


def test_counters_saturate():
  """A bad-count at 2**24 stays there (float32 would round 2**24 + 1 down
  anyway; it must never become inf, NaN or negative)."""
  tx = lrjax.reduce_on_plateau(patience=5)
  state = tx.init(None)
  state = lrjax.observe_plateau(state, 1.0)
  big = 2.0**24
  # a patience beyond what the constructor allows, set by hand
  state = state._replace(
      stats=state.stats.at[2].set(big), settings=state.settings.at[1].set(2 * big)
  )
  for _ in range(3):
    state = lrjax.observe_plateau(state, 2.0)
  assert float(state.num_bad) == big and float(state.scale) == 1.0


def test_jitted_observe_uses_each_states_settings():
  # A function of this test's own: jax.jit(lrjax.observe_plateau) would share its
  # trace cache with every other test that jits the same function.
  observe = jax.jit(lambda state, value: lrjax.observe_plateau(state, value))
  a = lrjax.reduce_on_plateau(factor=0.5, patience=0).init(None)
  b = lrjax.reduce_on_plateau(factor=0.1, patience=1, mode="max").init(None)
  values = [1.0, 0.5, 0.6, 0.7]
  for v in values:
    a, b = observe(a, v), observe(b, v)
  ref_a = reference_scales(values, factor=0.5, patience=0)[-1][0]
  ref_b = reference_scales(values, factor=0.1, patience=1, mode="max")[-1][0]
  assert (ref_a, ref_b) == (0.25, 0.1)
  got = [float(a.scale), float(b.scale)]
  np.testing.assert_allclose(got, [ref_a, ref_b], rtol=1e-6)
  if hasattr(observe, "_cache_size"):  # one trace served both settings
    assert observe._cache_size() == 1  # pylint: disable=protected-access


# --- nested states ----------------------------------------------------------------


def _nested_optimizers():
  plateau = lambda: lrjax.reduce_on_plateau(factor=0.5, patience=0)
  return {
      "bare": plateau(),
      "chain": optax.chain(optax.sgd(0.1), plateau()),
      "inject_outer": optax.chain(
          optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), plateau()
      ),
      "inject_inner": optax.inject_hyperparams(
          lambda learning_rate: optax.chain(optax.sgd(learning_rate), plateau())
      )(learning_rate=0.1),
      "multisteps": optax.MultiSteps(
          optax.chain(optax.adam(0.1), plateau()), every_k_schedule=2
      ),
      "masked": optax.chain(
          optax.sgd(0.1), optax.masked(plateau(), {"w": True, "b": False})
      ),
  }


@pytest.mark.parametrize("name", list(_nested_optimizers()))
def test_observe_and_scale_find_nested_state(name):
  tx = _nested_optimizers()[name]
  params = {"w": jnp.ones(3), "b": jnp.zeros(())}
  state = tx.init(params)
  for v in (1.0, 2.0, 3.0):  # two bad values, patience 0: 0.25
    state = lrjax.observe_plateau(state, v)
  assert float(lrjax.plateau_scale(state)) == 0.25
  jitted = jax.jit(lrjax.observe_plateau)(state, 4.0)
  assert float(jax.jit(lrjax.plateau_scale)(jitted)) == 0.125
  assert jax.tree.structure(jitted) == jax.tree.structure(state)


def test_chain_update_uses_observed_scale():
  tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(factor=0.5, patience=0))
  params = jnp.ones(2)
  state = tx.init(params)
  for v in (1.0, 1.0):
    state = lrjax.observe_plateau(state, v)
  updates, _ = tx.update(jnp.array([1.0, 2.0]), state, params)
  np.testing.assert_allclose(updates, [-0.05, -0.1], rtol=1e-6)


# --- bad input --------------------------------------------------------------------

BAD_ARGS = [
    (dict(factor=0.0), "factor must be > 0"),
    (dict(factor=1.0), "factor must be < 1"),
    (dict(factor=1.5), "factor must be < 1"),
    (dict(factor=NAN), "factor must be finite"),
    (dict(patience=-1), "patience must be >= 0"),
    (dict(patience=1.5), "patience must be an integer"),
    (dict(patience=True), "patience must be an integer"),
    (dict(patience=2**24), "patience must be <= 16777215"),
    (dict(cooldown=-2), "cooldown must be >= 0"),
    (dict(threshold=-1e-4), "threshold must be >= 0"),
    (dict(threshold=INF), "threshold must be finite"),
    (dict(min_scale=-0.1), "min_scale must be >= 0"),
    (dict(eps=-1e-8), "eps must be >= 0"),
    (dict(accumulation_size=0), "accumulation_size must be >= 1"),
    (dict(accumulation_size=2**24), "accumulation_size must be <= 16777215"),
    (dict(mode="mean"), "mode must be one of ('min', 'max')"),
    (dict(threshold_mode="relative"), "threshold_mode must be one of ('rel', 'abs')"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=r"^reduce_on_plateau: " + re.escape(message)):
    lrjax.reduce_on_plateau(**kwargs)


def test_min_scale_at_least_one_warns():
  with pytest.warns(UserWarning, match="min_scale=1.0 >= 1"):
    lrjax.reduce_on_plateau(min_scale=1.0)


@pytest.mark.parametrize(
    "fn", [lrjax.observe_plateau, lambda s, v: lrjax.plateau_scale(s)]
)
def test_no_plateau_state_raises(fn):
  state = optax.chain(optax.sgd(0.1), optax.scale(0.5)).init(jnp.ones(2))
  with pytest.raises(ValueError, match="holds no reduce_on_plateau state"):
    fn(state, 1.0)


def test_two_plateau_states():
  tx = optax.chain(lrjax.reduce_on_plateau(patience=0, factor=0.5),
                   lrjax.reduce_on_plateau(patience=1, factor=0.5))
  state = tx.init(jnp.ones(2))
  for v in (1.0, 2.0):
    state = lrjax.observe_plateau(state, v)  # both observe
  assert [float(s.scale) for s in state] == [0.5, 1.0]
  with pytest.raises(ValueError, match="holds 2 reduce_on_plateau states"):
    lrjax.plateau_scale(state)


@pytest.mark.parametrize("value", [jnp.ones(2), "1.0", 1j, None])
def test_bad_value_raises(value):
  tx = lrjax.reduce_on_plateau()
  state = tx.init(None)
  with pytest.raises(ValueError, match="value must be a real scalar"):
    lrjax.observe_plateau(state, value)
  if value is not None:
    with pytest.raises(ValueError, match="value must be a real scalar"):
      tx.update(jnp.ones(2), state, value=value)


# --- checkpoints ------------------------------------------------------------------


def test_checkpoint_round_trip_mid_plateau():
  serialization = pytest.importorskip("flax.serialization")
  settings = dict(factor=0.5, patience=3, cooldown=2, accumulation_size=2)
  tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(**settings))
  params = jnp.ones(3)
  values = _random_metric(11, 240)
  state = tx.init(params)
  for v in values[:151]:  # mid-window, mid-plateau
    state = lrjax.observe_plateau(state, v)
  assert float(state[1].window_count) == 1.0
  blob = serialization.to_bytes(state)
  restored = serialization.from_bytes(tx.init(params), blob)
  np.testing.assert_array_equal(restored[1].stats, state[1].stats)
  for v in values[151:]:
    state = lrjax.observe_plateau(state, v)
    restored = lrjax.observe_plateau(restored, v)
    np.testing.assert_array_equal(restored[1].stats, state[1].stats)
  ref = [r[0] for r in reference_scales(values, **settings)]
  np.testing.assert_allclose(float(restored[1].scale), ref[-1], rtol=1e-6)
  assert ref[150] != ref[-1], "no reduction after the restore: a weak test"


# --- Flax NNX ---------------------------------------------------------------------


def test_nnx_optimizer():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  tx = optax.chain(
      optax.sgd(0.1), lrjax.reduce_on_plateau(mode="max", factor=0.5, patience=0)
  )
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
  loss_fn = lambda m: jnp.mean((m(x) - y) ** 2)

  def kernel():
    return np.asarray(model.kernel[...])

  @nnx.jit
  def observe(opt, acc):
    opt.opt_state = lrjax.observe_plateau(opt.opt_state, acc)
    return lrjax.plateau_scale(opt.opt_state)

  @nnx.jit
  def train_step(model, opt, value):
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads, value=value)
    return loss

  # eager: 0.5 then a worse 0.4 -> scale 0.5
  for acc in (0.5, 0.4):
    opt.opt_state = lrjax.observe_plateau(opt.opt_state, acc)
  assert float(lrjax.plateau_scale(opt.opt_state)) == 0.5
  grads = nnx.grad(loss_fn)(model)
  before = kernel()
  opt.update(model, grads)
  step = 0.1 * 0.5 * np.asarray(grads.kernel[...])
  np.testing.assert_allclose(kernel(), before - step, rtol=1e-6)
  # under nnx.jit: another worse value -> 0.25, used by the next update
  assert float(observe(opt, 0.3)) == 0.25
  assert float(lrjax.plateau_scale(opt.opt_state)) == 0.25
  grads = nnx.grad(loss_fn)(model)
  before = kernel()
  train_step(model, opt, jnp.float32(0.2))  # scaled by 0.25, then observes 0.2
  step = 0.1 * 0.25 * np.asarray(grads.kernel[...])
  np.testing.assert_allclose(kernel(), before - step, rtol=1e-5)
  assert float(lrjax.plateau_scale(opt.opt_state)) == 0.125
  assert int(opt.step[...]) == 2


# --- traced and injected hyperparameters --------------------------------------------


def test_vmap_over_factor():
  values = [1.0, 2.0, 3.0]

  def final_scale(factor):
    state = lrjax.reduce_on_plateau(factor=factor, patience=0).init(None)
    for v in values:
      state = lrjax.observe_plateau(state, v)
    return state.scale

  factors = [0.1, 0.5, 0.9]
  got = jax.vmap(final_scale)(jnp.asarray(factors, jnp.float32))
  expected = [reference_scales(values, factor=f, patience=0)[-1][0] for f in factors]
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_inject_hyperparams_changes_take_effect():
  tx = optax.inject_hyperparams(lrjax.reduce_on_plateau)(factor=0.5, patience=0)
  grads = jnp.ones(2)
  update = jax.jit(lambda s, v: tx.update(grads, s, value=v))
  state = tx.init(grads)
  for v in (1.0, 2.0, 3.0):  # two bad values: 0.25
    _, state = update(state, v)
  assert float(lrjax.plateau_scale(state)) == 0.25
  state.hyperparams["factor"] = jnp.asarray(0.1, jnp.float32)
  updates, state = update(state, 4.0)  # scaled by 0.25, then reduced by 0.1
  np.testing.assert_allclose(updates, [0.25, 0.25])
  np.testing.assert_allclose(float(lrjax.plateau_scale(state)), 0.025, rtol=1e-6)
  state = lrjax.observe_plateau(state, 5.0)  # the state now carries 0.1
  np.testing.assert_allclose(float(lrjax.plateau_scale(state)), 0.0025, rtol=1e-6)


# --- settings inside a state; the scale or a default -------------------------------

# Settings assigned mid-run (before the value at each index), as a PyTorch user
# assigns ``scheduler.patience = 1`` etc.
CHANGES = {60: dict(patience=1, factor=0.2),
           120: dict(threshold=0.01, cooldown=2, min_scale=0.05, eps=1e-3)}
START = dict(factor=0.5, patience=5)


def _observe_with_changes(values, changes):
  """Scales after each value: a jitted observe_plateau, settings set between."""
  tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(**START))
  state = tx.init(jnp.ones(2))
  # A function of this test's own (jit's cache is shared by all jits of one
  # function, and other tests jit lrjax.observe_plateau itself).
  observe = jax.jit(lambda state, v: lrjax.observe_plateau(state, v))
  scales = []
  for i, v in enumerate(values):
    if i in changes:
      state = lrjax.set_plateau_settings(state, **changes[i])
    state = observe(state, v)
    scales.append(float(lrjax.plateau_scale(state)))
  assert observe._cache_size() == 1  # the settings are values: no new trace
  return scales, state


def test_set_plateau_settings_changes_decisions_as_the_reference():
  values = _random_metric(5, 240)
  scales, state = _observe_with_changes(values, CHANGES)
  ref = [r[0] for r in reference_scales(values, changes=CHANGES, **START)]
  np.testing.assert_allclose(scales, ref, rtol=1e-6)
  unchanged = [r[0] for r in reference_scales(values, **START)]
  assert ref != unchanged, "the changes change no decision: a weak test"
  got = lrjax.plateau_settings(state)
  expected = dict(factor=0.2, patience=1, threshold=0.01, cooldown=2, min_scale=0.05,
                  eps=1e-3, accumulation_size=1)
  assert set(got) == set(expected)
  for name, value in expected.items():
    assert got[name].dtype == jnp.float32
    np.testing.assert_allclose(got[name], value, rtol=1e-7)


def test_set_plateau_settings_against_real_torch_attributes():
  torch = pytest.importorskip("torch")
  values = _random_metric(5, 240)
  opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **START)
  torch_scales = []
  for i, v in enumerate(values):
    for name, value in CHANGES.get(i, {}).items():
      if name == "min_scale":
        sched.min_lrs = [value]
      else:
        setattr(sched, name, value)
    sched.step(float(v))
    torch_scales.append(opt.param_groups[0]["lr"])
  scales, _ = _observe_with_changes(values, CHANGES)
  np.testing.assert_allclose(scales, torch_scales, rtol=1e-6)


def test_set_plateau_settings_traced_and_by_group():
  tx = optax.multi_transform(
      {g: optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(patience=4, factor=0.5))
       for g in ("a", "b")}, {"w": "a", "b": "b"})
  state = tx.init({"w": jnp.ones(2), "b": jnp.ones(1)})

  @jax.jit
  def set_and_observe(state, patience, v):
    state = lrjax.set_plateau_settings(state, group="a", patience=patience)
    return lrjax.observe_plateau(state, v)

  for v in (1.0, 2.0):
    state = set_and_observe(state, jnp.float32(0.0), v)
  np.testing.assert_allclose(lrjax.plateau_scale(state, group="a"), 0.5)
  np.testing.assert_allclose(lrjax.plateau_scale(state, group="b"), 1.0)
  np.testing.assert_allclose(lrjax.plateau_settings(state, group="a")["patience"], 0.0)
  np.testing.assert_allclose(lrjax.plateau_settings(state, group="b")["patience"], 4.0)


def test_plateau_scale_default():
  params = jnp.ones(2)
  none = optax.sgd(0.1).init(params)
  got = lrjax.plateau_scale(none, default=1.0)
  assert got.dtype == jnp.float32 and float(got) == 1.0
  assert float(jax.jit(lambda s: lrjax.plateau_scale(s, default=1.0))(none)) == 1.0
  tx = optax.chain(optax.sgd(0.1), lrjax.reduce_on_plateau(factor=0.5, patience=0))
  state = tx.init(params)
  for v in (1.0, 2.0):
    state = lrjax.observe_plateau(state, v)
  assert float(lrjax.plateau_scale(state, default=1.0)) == 0.5  # the scale, not 1
  mixed = optax.multi_transform({"a": tx, "b": optax.sgd(0.1)}, {"w": "a", "b": "b"})
  mixed_state = mixed.init({"w": params, "b": params})
  assert float(lrjax.plateau_scale(mixed_state, group="b", default=1.0)) == 1.0
  with pytest.raises(ValueError, match="plateau_scale: opt_state holds no reduce_on_plateau"):
    lrjax.plateau_scale(none)


def test_plateau_functions_on_an_nnx_state():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.chain(
      optax.sgd(0.1), lrjax.reduce_on_plateau(factor=0.5, patience=3)), wrt=nnx.Param)
  graphdef, state = nnx.split((model, opt))
  state = lrjax.set_plateau_settings(state, patience=0)
  for v in (1.0, 2.0, 3.0):
    state = jax.jit(lrjax.observe_plateau)(state, v)
  assert float(lrjax.plateau_scale(state)) == 0.25
  model, opt = nnx.merge(graphdef, state)
  assert float(lrjax.plateau_scale(opt.opt_state)) == 0.25
  assert float(lrjax.plateau_settings(opt.opt_state)["patience"]) == 0.0


def _plateau():
  return lrjax.reduce_on_plateau().init(None)


BAD_SETTINGS = [
    (dict(), "set_plateau_settings: give at least one of ['factor', 'patience', "
     "'threshold', 'cooldown', 'min_scale', 'eps']"),
    (dict(patiense=2), "set_plateau_settings: patiense is not a setting of "
     "reduce_on_plateau; settable: ['factor'"),
    (dict(mode="max"), "set_plateau_settings: mode is fixed when reduce_on_plateau is built"),
    (dict(accumulation_size=2),
     "set_plateau_settings: accumulation_size is fixed when reduce_on_plateau is built"),
    (dict(factor=1.5), "set_plateau_settings: factor must be < 1"),
    (dict(patience=-1), "set_plateau_settings: patience must be >= 0"),
    (dict(cooldown=0.5), "set_plateau_settings: cooldown must be an integer"),
    (dict(threshold=-0.1), "set_plateau_settings: threshold must be >= 0"),
    (dict(eps=NAN), "set_plateau_settings: eps must be finite"),
]


@pytest.mark.parametrize("kwargs,message", BAD_SETTINGS, ids=[m for _, m in BAD_SETTINGS])
def test_set_plateau_settings_bad_input(kwargs, message):
  with pytest.raises(ValueError) as e:
    lrjax.set_plateau_settings(_plateau(), **kwargs)
  assert message in str(e.value)


def test_set_plateau_settings_min_scale_at_least_one_warns():
  with pytest.warns(UserWarning, match="set_plateau_settings: min_scale=1.0 >= 1"):
    lrjax.set_plateau_settings(_plateau(), min_scale=1.0)
